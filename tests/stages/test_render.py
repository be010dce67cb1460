"""Post folders (montage, Instagram limits, hand-edited captions) and the report, on small real photos."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from photopoet.config import RenderConfig, load_config
from photopoet.core.cache import Cache
from photopoet.instagram import (
    MAX_CAPTION_CHARS,
    aspect_ok,
    caption_text,
    check_post,
    fit_aspect,
    fit_caption,
    hashtags_in,
)
from photopoet.records import Post, Understood
from photopoet.stages.ingest import ingest
from photopoet.stages.render import make_montage, render_report, write_post_folders

# --- the limits themselves -------------------------------------------------------------------------------------


def test_hashtags_over_30_are_capped_with_a_warning_keeping_the_first():
    tags = [f"#tag{i}" for i in range(35)]
    fitted = fit_caption("A night at the theatre.", tags)
    assert fitted.hashtags == tags[:30]
    assert len(fitted.warnings) == 1 and "capped at 30" in fitted.warnings[0] and "#tag34" in fitted.warnings[0]
    assert len(hashtags_in(fitted.text)) == 30
    assert check_post(3, fitted.text) == []


def test_hashtags_inside_the_caption_count_towards_30():
    fitted = fit_caption("Great #show by the #drama #club", [f"#t{i}" for i in range(30)])
    assert len(fitted.hashtags) == 27 and len(hashtags_in(fitted.text)) == 30


def test_long_caption_is_cut_at_a_word_boundary_to_fit_with_its_hashtags():
    words = ["moment"] * 600  # 4,199 characters
    caption = " ".join(words)
    tags = ["#photoclub", "#techniche2024"]
    fitted = fit_caption(caption, tags)
    assert len(fitted.text) <= MAX_CAPTION_CHARS
    assert fitted.hashtags == tags and fitted.text.endswith("#photoclub #techniche2024")
    assert fitted.caption.endswith("moment\u2026")  # whole words only, then an ellipsis
    assert fitted.caption[:-1].split() == ["moment"] * len(fitted.caption[:-1].split())
    assert any("trimmed from 4199" in w for w in fitted.warnings)
    assert check_post(2, fitted.text) == []
    short = fit_caption("A short caption.", tags)
    assert short.warnings == [] and short.text == caption_text("A short caption.", tags)


def test_check_post_counts_items_and_caption_limits():
    assert check_post(1, "ok") == [] and check_post(10, "ok") == []
    assert "at most 10" in check_post(11, "ok")[0] and "move 1" in check_post(11, "ok")[0]
    assert "no photos" in check_post(0, "ok")[0]
    assert "2,200" in check_post(2, "x" * 2201)[0] or "2200" in check_post(2, "x" * 2201)[0]
    assert "31 hashtags" in check_post(2, " ".join(f"#a{i}" for i in range(31)))[0]
    assert "21 @mentions" in check_post(2, " ".join(f"@a{i}" for i in range(21)))[0]


@pytest.mark.parametrize(
    ("size", "mode", "expect"),
    [
        ((600, 1200), "pad", (960, 1200)),  # 1:2 portrait padded out to 4:5
        ((600, 1200), "crop", (600, 750)),  # ... or cropped to 4:5
        ((1200, 400), "pad", (1200, 628)),  # a 3:1 panorama padded to 1.91:1
        ((1200, 400), "crop", (764, 400)),
        ((1080, 1080), "pad", (1080, 1080)),  # fits already: untouched
        ((600, 1200), "none", (600, 1200)),
    ],
)
def test_fit_aspect(size, mode, expect):
    img = Image.new("RGB", size, (200, 30, 30))
    out, note = fit_aspect(img, mode, "#000000")
    assert out.size == expect
    assert (note is None) == (size == expect)
    if mode != "none":
        assert aspect_ok(*out.size)
    if mode == "pad" and note:
        assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((expect[0] // 2, expect[1] // 2)) == (200, 30, 30)


def test_montage_grid_and_more_count():
    imgs = [Image.new("RGB", (300, 200), (i * 20, 100, 100)) for i in range(12)]
    m = make_montage(imgs[:4], tile=100, max_tiles=9, gap=4)
    assert m.size == (204, 204)  # 2 x 2
    assert make_montage(imgs[:3], tile=100, max_tiles=9, gap=4).size == (308, 100)  # one row
    assert make_montage(imgs[:1], tile=100, max_tiles=9, gap=4).size == (100, 100)
    full = make_montage(imgs, tile=100, max_tiles=9, gap=4, total=12)
    assert full.size == (308, 308)
    # tile 1 keeps its colour; the last tile is dimmed under the "+4" count (9 shown, 3 more + the covered one)
    assert full.getpixel((50, 50)) == pytest.approx((0, 100, 100), abs=3)
    last = np.asarray(full.crop((208, 208, 308, 308)))
    plain = np.asarray(imgs[8].resize((100, 100)))
    assert last.mean() < 0.8 * plain.mean()
    assert (last.min(axis=2) > 200).sum() > 20  # the count is drawn in white
    with pytest.raises(ValueError):
        make_montage([], tile=100, max_tiles=9, gap=4)


# --- post folders and report on real photos --------------------------------------------------------------------


@pytest.fixture
def records(photo_dir, tmp_path):
    """The five fixture photos plus a tall one, ingested into a private cache."""
    tall = photo_dir / "tall.jpg"
    Image.new("RGB", (500, 1000), (40, 120, 200)).save(tall, quality=90)
    cache = Cache(tmp_path / "cache.sqlite3")
    res = ingest(photo_dir, load_config().ingest, cache, progress=False)
    by_path = {p.path: Understood(photo=p) for p in res.photos}
    yield by_path, cache
    cache.close()


def _post(pid, paths, **kw):
    return Post(id=pid, photos=list(paths), cover=paths[0], caption=kw.pop("caption", "Highlights."), **kw)


def test_post_folder_holds_montage_and_instagram_section(records, tmp_path):
    by_path, _ = records
    paths = sorted(by_path)
    cfg = RenderConfig(montage_tile=120, montage_gap=4, export_size=640)  # the 500x1000 photo comes out 320x640
    tags = [f"#t{i}" for i in range(33)]
    tall = next(x for x in paths if x.endswith("tall.jpg"))
    posts = [_post("01-aaaaaa", [x for x in paths if x != tall][:4], hashtags=tags), _post("02-bbbbbb", [tall])]
    out = tmp_path / "out"
    res = write_post_folders(out, posts, by_path, cfg, progress=False)
    d = out / "posts" / "01-aaaaaa"
    with Image.open(d / "montage.jpg") as m:
        assert m.size == (2 * 120 + 4, 2 * 120 + 4)
    meta = json.loads((d / "post.json").read_text(encoding="utf-8"))
    assert meta["montage_file"] == "montage.jpg"
    assert meta["instagram"]["kind"] == "carousel" and meta["instagram"]["ok"] is True
    assert any("capped at 30" in w for w in meta["instagram"]["warnings"])
    assert len(meta["hashtags"]) == 30 and res["01-aaaaaa"] == meta["instagram"]
    caption = (d / "caption.txt").read_text(encoding="utf-8")
    assert len(hashtags_in(caption)) == 30 and "#t32" not in caption
    single = json.loads((out / "posts" / "02-bbbbbb" / "post.json").read_text(encoding="utf-8"))
    assert single["instagram"]["kind"] == "image"
    with Image.open(out / "posts" / "02-bbbbbb" / "montage.jpg") as m:
        assert m.size == (120, 120)
    # every exported photo is a JPEG Instagram takes; the tall one was padded and says so
    for f in out.glob("posts/*/[0-9][0-9].jpg"):
        with Image.open(f) as im:
            assert im.format == "JPEG" and aspect_ok(*im.size), f
    (entry,) = single["files"]
    assert entry["source"] == tall and entry["fit"] == "padded from 320x640 to 4:5"
    assert any("01.jpg: padded from 320x640" in w for w in single["instagram"]["warnings"])
    with Image.open(out / "posts" / "02-bbbbbb" / "01.jpg") as im:
        assert im.size == (512, 640)


def test_post_of_more_than_10_photos_is_refused_with_a_message(records, tmp_path):
    by_path, _ = records
    paths = sorted(by_path)
    many = (paths * 3)[:12]
    out = tmp_path / "out"
    res = write_post_folders(out, [_post("01-big000", many)], by_path, RenderConfig(montage_tile=64), progress=False)
    ig = res["01-big000"]
    assert ig["ok"] is False and "12 photos" in ig["errors"][0] and "at most 10" in ig["errors"][0]
    # nothing is dropped behind the editor's back: all 12 are exported, the montage says +N
    assert len(list((out / "posts" / "01-big000").glob("[0-9][0-9].jpg"))) == 12


def test_hand_edited_caption_survives_a_rerun(records, tmp_path):
    by_path, _ = records
    paths = sorted(by_path)
    out = tmp_path / "out"
    cfg = RenderConfig(montage_tile=64)
    posts = [_post("01-aaaaaa", paths[:2], hashtags=["#club"])]
    write_post_folders(out, posts, by_path, cfg, progress=False)
    f = out / "posts" / "01-aaaaaa" / "caption.txt"
    assert f.read_text(encoding="utf-8") == "Highlights.\n\n#club\n"
    f.write_text("Our editor's own words.\n\n#club #edited\n", encoding="utf-8")
    res = write_post_folders(out, posts, by_path, cfg, progress=False)
    assert f.read_text(encoding="utf-8") == "Our editor's own words.\n\n#club #edited\n"
    meta = json.loads((out / "posts" / "01-aaaaaa" / "post.json").read_text(encoding="utf-8"))
    assert meta["caption_edited"] is True and any("edited by hand" in w for w in res["01-aaaaaa"]["warnings"])
    # asked to replace it (the web UI's export), the edited file is moved aside first, not lost
    write_post_folders(out, posts, by_path, cfg, progress=False, keep_edited_captions=False)
    assert f.read_text(encoding="utf-8") == "Highlights.\n\n#club\n"
    (aside,) = (out / "posts" / "01-aaaaaa").glob("caption.edited-*.txt")
    assert aside.read_text(encoding="utf-8") == "Our editor's own words.\n\n#club #edited\n"
    # an unedited caption is simply rewritten when the post's text changes
    posts[0].caption = "New words."
    write_post_folders(out, posts, by_path, cfg, progress=False)
    assert f.read_text(encoding="utf-8") == "New words.\n\n#club\n"


class _Loads(HTMLParser):
    """Every URL the page would load: src/href/srcset/poster attributes, CSS url(...) and @import."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data", "action") and v:
                self.urls.append(v)
            if k == "style" and v:
                self.css.append(v)
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def test_report_shows_everything_and_loads_nothing_from_the_network(records, tmp_path):
    by_path, cache = records
    paths = sorted(by_path)
    poem = {
        "text": "床前明月光，疑是地上霜。",
        "title": "靜夜思",
        "author": "李白",
        "dynasty": "唐",
        "score": 0.912,
        "generated": False,
    }
    gen = {
        "text": "山風吹月影，夜色滿江城。",
        "title": "",
        "author": "",
        "dynasty": "",
        "score": 0.71,
        "generated": True,
    }
    posts = [
        _post(
            "01-aaaaaa",
            paths[:3],
            hashtags=["#club", "#night"],
            haiku=["a", "b", "c"],
            poem=poem,
            scores={"caption_agreement": 0.8612},
            labels=["stage"],
        ),
        _post("02-bbbbbb", (paths * 3)[:11], poem=gen),
    ]
    out = tmp_path / "out"
    cfg = RenderConfig(montage_tile=120)
    write_post_folders(out, posts, by_path, cfg, progress=False)
    aside = [Understood(photo=by_path[paths[-1]].photo, verdict="duplicate", reason="duplicate of x.jpg")]
    plots = [{"title": "Choosing the number of posts", "uri": "data:image/png;base64,iVBORw0KGgo="}]
    target = render_report(out, "Club night", posts, by_path, [], cache, cfg, n_files=6, set_aside=aside, plots=plots)
    html = target.read_text(encoding="utf-8")
    for text in (
        "Club night",
        "Highlights.",
        "#club #night",
        "床前明月光",
        "李白",
        "(唐)",
        "《靜夜思》",
        "retrieved",
        "generated",
        "caption agreement",
        "0.861",
        "poem score",
        "0.912",
        "Haiku",
        "cover",
        "duplicate of x.jpg",
        "Choosing the number of posts",
        "11 photos: an Instagram carousel holds at most 10",
        "not publishable",
        "montage of post 1",
        "montage of post 2",
    ):
        assert text in html, text
    assert html.count("montage of post") == 2
    parser = _Loads()
    parser.feed(html)
    assert parser.urls, "the report shows images"
    for url in parser.urls:
        assert url.startswith(("data:", "#")), url
    css = "\n".join(parser.css)
    assert "@import" not in css
    assert all(u.strip("'\" ").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html.replace("&#34;", '"'), re.I)
    assert "<script" not in html  # no JavaScript at all, let alone a framework
    assert 'name="viewport"' in html and "@media (max-width" in html
