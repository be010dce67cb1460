"""End to end: `photopoet run` on the sample folder, with the real offline models and a private cache."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.errors import RunError
from photopoet.pipeline import run
from photopoet.samples import make_samples


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("samples")
    make_samples(d)
    return d


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cfg")
    p = d / "config.yaml"
    # template captions, no haiku: this module checks the stages' plumbing without converting Gemma into a fresh
    # cache (the generative parts are covered by tests/cli/test_write.py)
    p.write_text(
        f"cache:\n  dir: {d / 'cache'}\ncaption:\n  event: Sample Week\n  mode: template\nhaiku:\n  enabled: false\n",
        encoding="utf-8",
    )
    return p


@pytest.fixture(scope="module")
def first_run(sample_dir, cfg_path, tmp_path_factory):
    before = tree_state(sample_dir)
    out = tmp_path_factory.mktemp("out")
    res = run(sample_dir, out, load_config(cfg_path), progress=False)
    return res, before


def test_every_file_is_accounted_for(first_run, sample_dir):
    res, _ = first_run
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    files = {str(p) for p in sample_dir.rglob("*") if p.is_file()}
    listed = {p["path"] for p in doc["photos"]} | {e["path"] for e in doc["excluded"]}
    assert listed == files
    reasons = {Path(e["path"]).name: e["reason"] for e in doc["excluded"]}
    assert set(reasons) == {"broken-transfer.jpg", "notes.txt"}
    assert "truncated" in reasons["broken-transfer.jpg"]
    # every kept photo is in exactly one post; culled photos are listed with their verdict but in no post
    in_posts = [x for p in doc["posts"] for x in p["photos"]]
    assert sorted(in_posts) == sorted(p["path"] for p in doc["photos"] if p["verdict"] == "keep")


def test_coffee_re_export_is_culled_as_a_duplicate(first_run, sample_dir):
    res, _ = first_run
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    verdicts = {Path(p["path"]).name: p for p in doc["photos"]}
    export = verdicts["coffee-export.jpg"]
    assert export["verdict"] == "duplicate"
    assert export["duplicate_of"] == str(sample_dir / "cafe" / "coffee.jpg")
    assert "duplicate of coffee.jpg" in export["reason"]
    assert verdicts["coffee.jpg"]["verdict"] == "keep"
    assert export["path"] not in {x for p in doc["posts"] for x in p["photos"]}
    assert res.set_aside >= 1
    html = (res.out / "report.html").read_text(encoding="utf-8")
    assert "Set aside" in html and "coffee-export.jpg" in html and "duplicate of coffee.jpg" in html


def test_posts_json_v1_shape(first_run):
    res, _ = first_run
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    assert doc["version"] == 1
    for ph in doc["photos"]:
        assert {"path", "sha256", "width", "height", "taken_at", "labels", "verdict", "reason", "duplicate_of"} <= set(
            ph
        )
        assert len(ph["sha256"]) == 64 and ph["width"] > 0
        # at most topk labels, each past the calibrated threshold
        threshold = load_config().understand.threshold
        assert len(ph["labels"]) <= 3 and all(isinstance(lab["score"], float) for lab in ph["labels"])
        assert all(lab["score"] >= threshold for lab in ph["labels"])
    for post in doc["posts"]:
        assert {"id", "photos", "cover", "caption", "hashtags", "haiku", "poem", "scores"} <= set(post)
        assert post["photos"][0] == post["cover"]
        assert 1 <= len(post["photos"]) <= 10
        assert "Sample Week" in post["caption"] and "#SampleWeek" in post["hashtags"]


def test_posts_respect_capture_days(first_run):
    res, _ = first_run
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    taken = {p["path"]: p["taken_at"] for p in doc["photos"]}
    for post in doc["posts"]:
        hours = {taken[x][:13] for x in post["photos"]}
        # the three shoots are hours or days apart: no post mixes them
        assert len({h[:10] for h in hours}) == 1
        assert max(int(h[11:13]) for h in hours) - min(int(h[11:13]) for h in hours) < 3


def test_post_folders(first_run):
    res, _ = first_run
    for post in res.posts:
        d = res.out / "posts" / post.id
        jpgs = sorted(p.name for p in d.glob("*.jpg"))
        assert jpgs == sorted([f"{i:02d}.jpg" for i in range(1, len(post.photos) + 1)] + ["montage.jpg"])
        meta = json.loads((d / "post.json").read_text(encoding="utf-8"))
        assert meta["photos"] == post.photos
        assert meta["instagram"]["ok"] is True and meta["instagram"]["kind"] in ("image", "carousel")
        caption = (d / "caption.txt").read_text(encoding="utf-8")
        assert caption.startswith(post.caption) and post.hashtags[0] in caption
        with Image.open(d / "01.jpg") as im:
            assert max(im.size) <= 1080
            assert not im.getexif().get(0x8825)  # no GPS block in exports


def test_sideways_photo_is_exported_upright(first_run, sample_dir):
    res, _ = first_run
    horse = str(sample_dir / "trip" / "horse-sideways.jpg")
    with Image.open(horse) as raw:
        assert raw.height > raw.width  # stored rotated
    (post,) = [p for p in res.posts if horse in p.photos]
    with Image.open(res.out / "posts" / post.id / f"{post.photos.index(horse) + 1:02d}.jpg") as im:
        assert im.width > im.height


def test_report_is_self_contained(first_run):
    res, _ = first_run
    html = (res.out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") >= len(res.photos)
    assert "http://" not in html and "https://" not in html
    assert "broken-transfer.jpg" in html and "truncated" in html


def test_photo_folder_untouched(first_run, sample_dir):
    _, before = first_run
    assert tree_state(sample_dir) == before


def test_rerun_uses_cache_and_loads_no_image_model(first_run, sample_dir, cfg_path, monkeypatch):
    res, _ = first_run

    def boom(*a, **k):
        raise AssertionError("image model loaded on a rerun")

    monkeypatch.setattr("photopoet.models.create_image_encoder", boom)
    again = run(sample_dir, res.out, load_config(cfg_path), progress=False)
    assert again.decoded == 0 and again.embedded == 0
    assert again.reused == len(res.photos)
    assert [p.to_json() for p in again.posts] == [p.to_json() for p in res.posts]


def test_stale_post_folders_are_moved_aside(first_run, sample_dir, cfg_path):
    res, _ = first_run
    stray = res.out / "posts" / "99-zzzzzz"
    stray.mkdir()
    (stray / "note.txt").write_text("mine", encoding="utf-8")
    run(sample_dir, res.out, load_config(cfg_path), progress=False)
    assert not stray.exists()
    assert (res.out / "posts" / ".stale" / "99-zzzzzz" / "note.txt").read_text(encoding="utf-8") == "mine"


def test_output_inside_photo_folder_is_refused(sample_dir, cfg_path):
    with pytest.raises(RunError, match="inside the photo folder"):
        run(sample_dir, sample_dir / "out", load_config(cfg_path), progress=False)
    assert not (sample_dir / "out").exists()


def test_cli_run_and_errors(sample_dir, cfg_path, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(sample_dir), "--out", str(tmp_path / "o"), "--config", str(cfg_path), "-q"])
    assert res.exit_code == 0, res.output
    assert "13 files: 11 photos" in res.output and "2 excluded" in res.output
    # the summary says how many photos were set aside: those in posts.json that no post holds
    doc = json.loads((tmp_path / "o" / "posts.json").read_text(encoding="utf-8"))
    in_posts = {p for post in doc["posts"] for p in post["photos"]}
    aside = [p for p in doc["photos"] if p["path"] not in in_posts]
    assert aside and f"{len(aside)} set aside" in res.output
    missing = runner.invoke(app, ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "no such folder" in missing.output
    assert not (tmp_path / "o2").exists()


def test_help_on_every_command():
    import typer

    def paths(cmd, prefix: list[str]):
        yield prefix
        for name, sub in getattr(cmd, "commands", {}).items():  # a group (typer's own click classes)
            yield from paths(sub, [*prefix, name])

    runner = CliRunner()
    every = list(paths(typer.main.get_command(app), []))
    assert ["train", "style"] in every and ["data", "triplets"] in every and len(every) > 20
    for args in every:
        res = runner.invoke(app, [*args, "--help"], terminal_width=80)
        assert res.exit_code == 0 and "Usage" in res.output, args
        # flags read as flags (no "<bool>" placeholder), and no help line runs past the terminal
        assert "<bool>" not in res.output and max(map(len, res.output.splitlines())) <= 80, args


def test_outputs_get_normal_file_permissions(first_run):
    # temp-file-then-rename must not leave outputs private (mkstemp's 0600)
    res, _ = first_run
    umask = os.umask(0o022)
    os.umask(umask)
    for f in (res.out / "posts.json", res.out / "report.html", next((res.out / "posts").glob("*/01.jpg"))):
        assert os.stat(f).st_mode & 0o777 == 0o666 & ~umask, f


def test_event_is_the_folder_name_unless_that_only_says_photos(tmp_path, monkeypatch):
    from photopoet.stages.write.template import event_from_folder

    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    night = tmp_path / "Freshers Night 2024"
    for sub in ("images", "DCIM/100CANON", "Camera Roll", "photos/export"):
        (night / sub).mkdir(parents=True)
        assert event_from_folder(night / sub) == "Freshers Night 2024", sub
    assert event_from_folder(night) == "Freshers Night 2024"
    deep = night / "photos" / "images" / "DCIM"  # three generic names: the event is not looked for further up
    deep.mkdir(parents=True)
    assert event_from_folder(deep) is None
    (tmp_path / "home" / "Pictures").mkdir(parents=True)  # never the user's home folder's name
    assert event_from_folder(tmp_path / "home" / "Pictures") is None


def test_a_folder_called_images_is_not_the_event(tmp_path, sample_dir, cfg_path):
    import shutil

    photos = tmp_path / "Photo Walk 2024" / "images"
    shutil.copytree(sample_dir, photos)
    text = cfg_path.read_text(encoding="utf-8").replace("  event: Sample Week\n", "")
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    res = run(photos, tmp_path / "out", load_config(tmp_path / "c.yaml"), progress=False)
    assert res.posts and all("Photo Walk 2024" in p.caption and "images" not in p.caption for p in res.posts)
    assert all("#images" not in [t.lower() for t in p.hashtags] for p in res.posts)


def test_scene_in_posts_json_and_report(first_run):
    res, _ = first_run
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    for ph in doc["photos"]:
        sc = ph["scene"]
        assert sc["kind"] in {"poster", "photo"} and isinstance(sc["colours"], list) and sc["faces"] >= 0
        assert sc["concepts"] == ph["concepts"]
    by_name = {Path(ph["path"]).name: ph["scene"] for ph in doc["photos"]}
    astronaut = next(v for k, v in by_name.items() if k.startswith("astronaut"))
    assert astronaut["faces"] >= 1 and astronaut["kind"] == "photo"
    html = (res.out / "report.html").read_text(encoding="utf-8")
    assert html.count("What the tool saw") == len(doc["posts"])
    for post in doc["posts"]:
        assert post["scene"]["photos"] == len(post["photos"]) and post["scene"]["line"]
        assert post["scene"]["line"].replace("“", "&#8220;") in html or post["scene"]["line"] in html
    # the records carry them for the writers: per photo, and a summary per post
    assert all(u.scene is not None for u in res.photos) and all(p.scene is not None for p in res.posts)


def test_text_read_by_a_reader_reaches_posts_json_and_the_report(first_run, sample_dir, cfg_path, tmp_path):
    from photopoet.records import TextLine

    class SignReader:
        name = "sign-reader"

        def read(self, image):
            return [TextLine("LAUNCH NIGHT 2024", 0.95, (0.1, 0.1, 0.8, 0.2))]

    cfg = load_config(cfg_path, overrides={"scene": {"ocr_min_score": 0.0}})  # every photo read
    res = run(sample_dir, tmp_path / "out", cfg, progress=False, reader=SignReader())
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    assert all(ph["scene"]["text"][0]["text"] == "LAUNCH NIGHT 2024" for ph in doc["photos"])
    assert all(post["scene"]["text"] == ["LAUNCH NIGHT 2024"] for post in doc["posts"])
    assert "read: “LAUNCH NIGHT 2024”" in (res.out / "report.html").read_text(encoding="utf-8")


def test_the_run_reads_text_with_the_shipped_ocr_unless_it_is_off_or_missing(monkeypatch, caplog):
    import importlib.util

    from photopoet import pipeline
    from photopoet.models import ocr

    reader = pipeline.default_reader(load_config())
    assert isinstance(reader, ocr.LazyTextReader) and reader._reader is None  # nothing loaded before a read
    assert reader.name == ocr.reader_id(ocr.DEFAULT_DET_SIDE, 0.5)  # cached under the real reader's name
    assert pipeline.default_reader(load_config(overrides={"scene": {"ocr": False}})) is None
    monkeypatch.setattr(pipeline, "_OCR_WARNED", set())
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "rapidocr" else real(m, *a))
    with caplog.at_level("WARNING"):
        assert pipeline.default_reader(load_config()) is None
    assert "rapidocr, which is not installed" in caplog.text
