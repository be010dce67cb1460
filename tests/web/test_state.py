"""The review state (OUT/review.json) and the web app's safety checks, without a server or models."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from photopoet.errors import UnsafePath
from photopoet.web import state as st
from photopoet.web.safety import check_upload, clean_filename, is_loopback, safe_path


def _run_out(tmp_path: Path, n_posts: int = 2, per_post: int = 3) -> Path:
    """An OUT folder holding a posts.json as a run writes it (photos are not needed for the review state)."""
    out = tmp_path / "out"
    out.mkdir()
    photos, posts = [], []
    k = 0
    for i in range(n_posts):
        paths = []
        for _ in range(per_post):
            k += 1
            p = f"/photos/p{k:02d}.jpg"
            photos.append({"path": p, "sha256": f"{k:064x}", "width": 640, "height": 480, "labels": [], "concepts": []})
            paths.append(p)
        posts.append({"id": f"0{i + 1}-x", "photos": paths, "cover": paths[0], "caption": f"caption {i}"})
    photos.append({"path": "/photos/dup.jpg", "sha256": "f" * 64, "width": 1, "height": 1, "verdict": "duplicate"})
    doc = {"version": 1, "photos": photos, "posts": posts, "excluded": [{"path": "/photos/bad.jpg", "reason": "x"}]}
    (out / "posts.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


@pytest.fixture
def store(tmp_path: Path) -> st.ReviewStore:
    out = _run_out(tmp_path)
    s = st.ReviewStore(out)
    s.start(st.review_from_posts_json(out, "/photos", "Club Night"))
    return s


def test_fresh_review_puts_every_photo_in_one_place(store: st.ReviewStore):
    doc = store.load()
    assert [p["id"] for p in doc["posts"]] == ["01-x", "02-x"]
    assert doc["aside"] == ["/photos/dup.jpg"]
    assert doc["posts"][0]["cover"] == "/photos/p01.jpg"
    assert doc["revision"] == 1 and not store.posts_json_changed()


def test_every_edit_is_saved_and_read_back_by_a_new_store(store: st.ReviewStore):
    store.change(lambda d: st.exclude_photo(d, "01-x", "/photos/p02.jpg"))
    store.change(lambda d: st.set_cover(d, "01-x", "/photos/p03.jpg"))
    store.change(lambda d: st.move_photo(d, "/photos/p04.jpg", "01-x"))
    new_id = store.change(lambda d: st.move_photo(d, "/photos/dup.jpg", "new"))
    store.change(lambda d: st.reorder_photo(d, "02-x", "/photos/p06.jpg", -1))
    store.change(lambda d: st.edit_text(d, "02-x", "  Our night out  ", "club, #Night #night"))

    again = st.ReviewStore(store.out).load()  # what a restarted server reads
    a, b = again["posts"][0], again["posts"][1]
    assert a["photos"] == ["/photos/p03.jpg", "/photos/p01.jpg", "/photos/p04.jpg"]
    assert a["cover"] == "/photos/p03.jpg" and a["excluded"] == ["/photos/p02.jpg"]
    assert b["photos"] == ["/photos/p06.jpg", "/photos/p05.jpg"] and b["cover"] == "/photos/p06.jpg"
    assert b["caption"] == "Our night out" and b["hashtags"] == ["#club", "#Night"]
    assert b["caption_mode"] == "edited" and set(b["edited"]) == {"photos", "caption", "hashtags"}
    assert new_id == "new-1" and again["posts"][2]["photos"] == ["/photos/dup.jpg"] and again["aside"] == []
    assert again["revision"] == 7
    store.change(lambda d: st.include_photo(d, "01-x", "/photos/p02.jpg"))
    assert st.ReviewStore(store.out).load()["posts"][0]["photos"][-1] == "/photos/p02.jpg"


def test_refused_edits_leave_the_saved_review_unchanged(store: st.ReviewStore):
    before = store.path.read_bytes()
    with pytest.raises(st.ReviewError, match="not among the photos"):
        store.change(lambda d: st.exclude_photo(d, "01-x", "/photos/p04.jpg"))
    with pytest.raises(st.ReviewError, match="no post"):
        store.change(lambda d: st.set_cover(d, "nope", "/photos/p01.jpg"))
    with pytest.raises(st.ReviewError, match="not a photo of this run"):
        store.change(lambda d: st.move_photo(d, "/etc/passwd", "01-x"))
    with pytest.raises(st.ReviewError, match="at most 30"):
        store.change(lambda d: st.edit_text(d, "01-x", "x", " ".join(f"#t{i}" for i in range(31))))
    with pytest.raises(st.ReviewError, match="2200"):
        store.change(lambda d: st.edit_text(d, "01-x", "x" * 2200, "#a"))
    with pytest.raises(st.ReviewError, match="only letters"):
        store.change(lambda d: st.edit_text(d, "01-x", "x", "#ok #not-ok"))
    assert store.path.read_bytes() == before


def test_a_post_holds_at_most_ten_photos(tmp_path: Path):
    out = _run_out(tmp_path, n_posts=2, per_post=10)
    s = st.ReviewStore(out)
    s.start(st.review_from_posts_json(out, "/photos", "E"))
    with pytest.raises(st.ReviewError, match="10 photos"):
        s.change(lambda d: st.move_photo(d, "/photos/p11.jpg", "01-x"))


def test_emptied_post_can_be_removed_and_is_not_exported(store: st.ReviewStore):
    for p in ["/photos/p01.jpg", "/photos/p02.jpg", "/photos/p03.jpg"]:
        store.change(lambda d, p=p: st.move_photo(d, p, "02-x"))
    doc = store.load()
    assert doc["posts"][0]["photos"] == [] and doc["posts"][0]["cover"] is None
    store.change(lambda d: st.delete_empty_post(d, "01-x"))
    assert [p["id"] for p in store.load()["posts"]] == ["02-x"]


def test_a_new_review_archives_the_old_one(store: st.ReviewStore):
    store.change(lambda d: st.edit_text(d, "01-x", "mine", ""))
    store.start(st.review_from_posts_json(store.out, "/photos", "E"))
    hist = list((store.out / "review-history").glob("review-*.json"))
    assert len(hist) == 1 and json.loads(hist[0].read_text())["posts"][0]["caption"] == "mine"
    assert store.load()["posts"][0]["caption"] == "caption 0"


def test_a_rerun_outside_the_ui_is_noticed(store: st.ReviewStore):
    doc = json.loads((store.out / "posts.json").read_text())
    doc["posts"][0]["caption"] = "rerun"
    (store.out / "posts.json").write_text(json.dumps(doc))
    assert store.posts_json_changed()


def test_a_damaged_review_is_reported_not_overwritten(tmp_path: Path):
    out = _run_out(tmp_path)
    (out / "review.json").write_text("{not json", encoding="utf-8")
    s = st.ReviewStore(out)
    with pytest.raises(st.ReviewError, match="review.json: cannot read the saved review"):
        s.load()
    assert (out / "review.json").read_text() == "{not json"


# -- safety ----------------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.jpg").write_bytes(b"a")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "s.jpg").write_bytes(b"s")
    os.symlink(outside / "s.jpg", root / "link.jpg")
    os.symlink(outside, root / "linkdir")
    os.symlink(root / "sub" / "a.jpg", root / "inner.jpg")
    return root, outside


@pytest.mark.parametrize(
    "rel",
    [
        "../secret/s.jpg",
        "sub/../../secret/s.jpg",
        "./sub/a.jpg",
        "/etc/passwd",
        "C:/Windows/win.ini",
        "sub\\a.jpg",
        "link.jpg",
        "linkdir/s.jpg",
        "sub",
        "missing.jpg",
        "",
        "sub/a.jpg\x00.png",
    ],
)
def test_safe_path_refuses_what_leaves_the_root(tree, rel: str):
    root, _ = tree
    with pytest.raises(UnsafePath):
        safe_path(root, rel)


def test_safe_path_serves_files_under_the_root(tree):
    root, _ = tree
    assert safe_path(root, "sub/a.jpg") == (root / "sub" / "a.jpg").resolve()
    assert safe_path(root, "inner.jpg") == (root / "sub" / "a.jpg").resolve()  # a link that stays inside


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


def test_uploads_are_checked_by_decoding_not_by_name():
    assert check_upload(_encoded("JPEG"), 10**6) == "JPEG"
    assert check_upload(_encoded("PNG"), 10**6) == "PNG"
    with pytest.raises(ValueError, match="contents were checked"):
        check_upload(b"<html><script>alert(1)</script></html>", 10**6)
    with pytest.raises(ValueError, match="contents were checked"):
        check_upload(_encoded("JPEG")[:200], 10**6)  # truncated
    with pytest.raises(ValueError, match="not accepted"):
        check_upload(_encoded("GIF"), 10**6)
    with pytest.raises(ValueError, match=r"^0\.1 MB; at most 1e-05 MB$"):  # never reads as the limit or less
        check_upload(_encoded("PNG"), 10)
    with pytest.raises(ValueError, match="empty"):
        check_upload(b"", 10)


def test_upload_names_are_cleaned():
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\me\\IMG 0001.JPG") == "IMG_0001"
    assert clean_filename(".hidden.jpg") == "hidden"
    assert clean_filename("") == "photo"


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
