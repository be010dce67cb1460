"""Fault tests (issue 19): what a hostile but fair user does to a run, and what the tool must still promise.

Originals are never written, moved or deleted; hand edits survive; exports carry no source metadata; a killed
export leaves nothing behind after the next run. Every fixture is made here with Pillow.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import RenderConfig, load_config
from photopoet.core.cache import Cache
from photopoet.errors import RunError
from photopoet.pipeline import run
from photopoet.records import Post, Understood
from photopoet.stages.ingest import ingest
from photopoet.stages.render import render_report, write_post_folders

SECRET = "Secret garden at 12 Rue Example, Anna"


def _post(pid: str, paths: list[str]) -> Post:
    return Post(id=pid, photos=list(paths), cover=paths[0], caption="Highlights.")


@pytest.fixture
def commented(tmp_path: Path):
    """Two photos whose JPEG comment, EXIF and XMP hold a place and a name, ingested into a private cache."""
    src = tmp_path / "photos"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010E] = SECRET  # ImageDescription
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>{SECRET}</rdf:Description></x:xmpmeta>'
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40)]):
        im = Image.new("RGB", (800, 800), colour)  # square: no padding happens on export
        im.save(src / f"p{i}.jpg", quality=90, comment=SECRET, exif=exif, xmp=xmp.encode())
    with Image.open(src / "p0.jpg") as im:
        assert im.info.get("comment") == SECRET.encode()
    cache = Cache(tmp_path / "cache.sqlite3")
    res = ingest(src, load_config().ingest, cache, progress=False)
    by_path = {p.path: Understood(photo=p) for p in res.photos}
    yield by_path, cache
    cache.close()


# --- 1. a photo folder at OUT/posts is never moved --------------------------------------------------------------


@pytest.mark.parametrize("inside", ["posts", "posts/day1"])
def test_photo_folder_at_or_inside_out_posts_is_refused_and_untouched(tmp_path: Path, inside: str, snapshot):
    trap = tmp_path / "trap"
    (trap / "posts" / "day1").mkdir(parents=True)
    Image.new("RGB", (64, 48), (10, 20, 30)).save(trap / "posts" / "day1" / "a.jpg")
    before = snapshot(trap)
    with pytest.raises(RunError, match="photo folder") as e:
        run(trap / inside, trap, load_config(), progress=False)
    assert "\n" not in str(e.value) and "posts" in str(e.value)
    assert snapshot(trap) == before
    assert not (trap / "posts" / ".stale").exists()


# --- 2. a hand-edited caption never vanishes ---------------------------------------------------------------------


def test_stale_twice_keeps_both_hand_edited_captions(commented, tmp_path: Path):
    by_path, _ = commented
    paths = sorted(by_path)
    out = tmp_path / "out"
    cfg = RenderConfig(export_size=320)
    write_post_folders(out, [_post("01-aaaaaa", paths[:1])], by_path, cfg, progress=False)
    (out / "posts" / "01-aaaaaa" / "caption.txt").write_text("my first edit\n", encoding="utf-8")
    write_post_folders(out, [_post("02-bbbbbb", paths[1:])], by_path, cfg, progress=False)  # 01 goes stale
    write_post_folders(out, [_post("01-aaaaaa", paths[:1])], by_path, cfg, progress=False)  # 01 comes back
    (out / "posts" / "01-aaaaaa" / "caption.txt").write_text("my second edit\n", encoding="utf-8")
    write_post_folders(out, [_post("02-bbbbbb", paths[1:])], by_path, cfg, progress=False)  # stale again
    kept = sorted(p.read_text(encoding="utf-8") for p in (out / "posts" / ".stale").rglob("caption.txt"))
    assert "my first edit\n" in kept and "my second edit\n" in kept


# --- 3. exports carry no source metadata -------------------------------------------------------------------------


def _no_secret(data: bytes) -> None:
    assert SECRET.encode() not in data
    with Image.open(io.BytesIO(data)) as im:
        assert "comment" not in im.info and "exif" not in im.info and "xmp" not in im.info
        assert "icc_profile" not in im.info


def test_exported_photos_montage_and_report_thumbnails_carry_no_comment(commented, tmp_path: Path):
    by_path, cache = commented
    paths = sorted(by_path)
    out = tmp_path / "out"
    cfg = RenderConfig(export_size=640)
    posts = [_post("01-aaaaaa", paths)]
    write_post_folders(out, posts, by_path, cfg, progress=False)
    d = out / "posts" / "01-aaaaaa"
    meta = json.loads((d / "post.json").read_text(encoding="utf-8"))
    assert not any(f.get("fit") for f in meta["files"])  # no padding: the case where the comment survived
    for f in ["01.jpg", "02.jpg", "montage.jpg"]:
        _no_secret((d / f).read_bytes())
    report = render_report(out, "t", posts, by_path, [], cache, cfg, n_files=2)
    html = report.read_text(encoding="utf-8")
    uris = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", html)
    assert len(uris) >= 2
    for u in uris:
        _no_secret(base64.b64decode(u))


# --- 6. leftovers of a killed export go away ---------------------------------------------------------------------


def test_tmp_files_of_a_killed_export_are_removed_by_the_next_run(commented, tmp_path: Path):
    by_path, _ = commented
    paths = sorted(by_path)
    out = tmp_path / "out"
    cfg = RenderConfig(export_size=320)
    posts = [_post("01-aaaaaa", paths)]
    write_post_folders(out, posts, by_path, cfg, progress=False)
    d = out / "posts" / "01-aaaaaa"
    # what atomic_write_bytes leaves when killed between mkstemp and os.replace
    for name in [".01.jpg.k2j3h4.tmp", ".montage.jpg.x9y8.tmp", ".post.json.abc.tmp", ".caption.txt.q.tmp"]:
        (d / name).write_bytes(b"half")
    (d / "notes.tmp").write_text("the user's own file", encoding="utf-8")
    write_post_folders(out, posts, by_path, cfg, progress=False)
    assert sorted(p.name for p in d.glob(".*.tmp")) == []
    assert (d / "notes.tmp").exists()  # only photopoet's own leftovers go


# --- 4. a damaged cache is set aside with one line, or a bad entry is a miss --------------------------------------


def _truncate(db: Path) -> None:
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])


def _garbage(db: Path) -> None:
    db.write_bytes(bytes(range(256)) * (db.stat().st_size // 256))


def _pages(db: Path) -> None:  # page 1 (the header and schema) intact, every later page overwritten
    data = bytearray(db.read_bytes())
    data[4096:] = bytes((i * 7 + 3) % 256 for i in range(len(data) - 4096))
    db.write_bytes(bytes(data))


def _table_pages(db: Path) -> None:
    """Only the pages of the vectors table overwritten: the file opens and ingest reads it, then the features
    stage meets "database disk image is malformed" part-way through the run."""
    with sqlite3.connect(db) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'vectors'")]
    conn.close()
    assert pages and 1 not in pages
    data = bytearray(db.read_bytes())
    for n in pages:
        data[(n - 1) * size : n * size] = bytes([0x5A]) * size
    db.write_bytes(bytes(data))
    with Cache(db) as c:  # it opens: the damage shows only when the vectors are read
        assert c.get_metas([]) == {}


def _sql(stmt: str):
    def damage(db: Path) -> None:
        with sqlite3.connect(db) as conn:
            assert conn.execute(stmt).rowcount > 0
        conn.close()

    return damage


FILE_DAMAGE = {"truncated": _truncate, "garbage": _garbage, "pages": _pages, "table-pages": _table_pages}
ROW_DAMAGE = {
    "meta": _sql("UPDATE photos SET meta = '{\"width\": 3' WHERE rowid = (SELECT MIN(rowid) FROM photos)"),
    "vector": _sql("UPDATE vectors SET data = x'0102'"),
    "shape": _sql("UPDATE vectors SET shape = 'not json'"),
    "json": _sql("UPDATE json_values SET value = '{bad'"),
}


@pytest.fixture(scope="module")
def dedupe_setup(tmp_path_factory):
    """Three photos, a config with its own cache, a clean cache file and the clean `dedupe --json` output."""
    root = tmp_path_factory.mktemp("damage")
    photos = root / "photos"
    photos.mkdir()
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        Image.new("RGB", (400, 300), colour).save(photos / f"p{i}.jpg")
    cfg = root / "config.yaml"
    cfg.write_text(f"cache:\n  dir: {root / 'cache'}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["dedupe", str(photos), "-c", str(cfg), "--json", "-q"])
    assert res.exit_code == 0, res.output
    clean = root / "clean.sqlite3"
    shutil.copy(root / "cache" / "cache.sqlite3", clean)
    return photos, cfg, root / "cache", clean, json.loads(res.stdout)


def _dedupe_on_damaged(dedupe_setup, damage):
    photos, cfg, cache_dir, clean, expected = dedupe_setup
    for p in cache_dir.glob("cache.sqlite3*"):
        p.unlink()
    db = cache_dir / "cache.sqlite3"
    shutil.copy(clean, db)
    damage(db)
    res = CliRunner().invoke(app, ["dedupe", str(photos), "-c", str(cfg), "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and res.exception is None
    assert json.loads(res.stdout) == expected
    with Cache(db) as c:
        assert c.integrity_check() == "ok"
    return res, db


@pytest.mark.parametrize("kind", sorted(FILE_DAMAGE))
def test_a_damaged_cache_file_is_set_aside_with_one_line_and_rebuilt(dedupe_setup, kind):
    res, db = _dedupe_on_damaged(dedupe_setup, FILE_DAMAGE[kind])
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert str(db) in lines[0] and "damaged" in lines[0] and "moved it to cache.sqlite3.damaged-" in lines[0]
    aside = list(db.parent.glob("cache.sqlite3.damaged-*"))
    assert len(aside) >= 1 and any(p.stat().st_size > 0 for p in aside)  # kept, not deleted


@pytest.mark.parametrize("kind", sorted(ROW_DAMAGE))
def test_a_damaged_cache_entry_is_a_miss_and_recomputed(dedupe_setup, kind):
    res, db = _dedupe_on_damaged(dedupe_setup, ROW_DAMAGE[kind])
    assert res.stderr.strip() == ""
    assert not list(db.parent.glob("cache.sqlite3.damaged-*"))


def test_bad_rows_read_as_misses(tmp_path: Path):
    with Cache(tmp_path / "c.sqlite3") as c:
        c.put_photo("a", {"w": 1}, b"x")
        c.put_photo("b", {"w": 2}, b"y")
        c.put_vectors("v", {"a": np.ones(4), "b": np.ones(4)})
        c.put_json("k", {"a": 1, "b": 2})
        c.conn.execute("UPDATE photos SET meta = '[1' WHERE sha = 'a'")
        c.conn.execute("UPDATE vectors SET data = x'01' WHERE sha = 'a'")
        c.conn.execute("UPDATE json_values SET value = 'nan-ish' WHERE sha = 'a'")
        assert c.get_metas(["a", "b"]) == {"b": {"w": 2}}
        assert list(c.get_vectors("v", ["a", "b"])) == ["b"]
        assert c.get_json("k", ["a", "b"]) == {"b": 2}
        c.put_json("k", {"a": 3})  # recomputed: overwritten
        assert c.get_json("k", ["a"]) == {"a": 3}


def test_cache_of_a_newer_version_is_one_line_not_a_traceback(dedupe_setup, tmp_path: Path):
    photos, _, _, clean, _ = dedupe_setup
    d = tmp_path / "c"
    d.mkdir()
    shutil.copy(clean, d / "cache.sqlite3")
    with sqlite3.connect(d / "cache.sqlite3") as conn:
        conn.execute("UPDATE cache_info SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cache:\n  dir: {d}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["dedupe", str(photos), "-c", str(cfg), "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.count("\n") == 1 and "newer photopoet" in res.stderr


# --- the whole tool on a hostile folder: every file accounted for, nothing crashes --------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_fuzz_folder(root: Path) -> None:
    """Malformed and odd entries of every kind a real folder (or a hostile one) holds."""
    import os
    import struct
    import zlib

    rng = np.random.default_rng(19)
    root.mkdir()
    good = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    buf = io.BytesIO()
    good.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    (root / "good.jpg").write_bytes(jpeg)
    for i, cut in enumerate([2, 10, 200, len(jpeg) // 2, len(jpeg) - 2]):
        (root / f"cut-{i}.jpg").write_bytes(jpeg[:cut])
    (root / "empty.jpg").write_bytes(b"")
    (root / "random.jpg").write_bytes(rng.bytes(5000))
    (root / "random.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(3000))
    (root / "text.png").write_text("not a picture\n", encoding="utf-8")
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    (root / "pixel-bomb.png").write_bytes(bomb + _png_chunk(b"IEND", b""))
    text_bomb = io.BytesIO()
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "A" * 5_000_000, zip=True)
    good.save(text_bomb, "PNG", pnginfo=info)
    (root / "text-bomb.png").write_bytes(text_bomb.getvalue())
    Image.new("RGB", (1, 1)).save(root / "one-pixel.png")
    Image.new("RGB", (1, 400), (10, 200, 10)).save(root / "sliver.png")
    Image.fromarray((rng.integers(0, 65535, (60, 80))).astype(np.uint16)).save(root / "sixteen-bit.png")
    good.convert("CMYK").save(root / "cmyk.jpg")
    pal = good.convert("P")
    pal.info["transparency"] = 0
    pal.save(root / "palette.png", transparency=0)
    good.save(root / "anim.gif", save_all=True, append_images=[good.rotate(90)], duration=50)
    good.save(root / "pages.tif", save_all=True, append_images=[good.rotate(180)])
    exif = Image.Exif()
    exif[0x0112] = 99  # an orientation that does not exist
    exif[0x0132] = "2024:13:45 99:99:99"  # an impossible date
    good.save(root / "bad-exif.jpg", exif=exif)
    good.save(root / "jpeg-named.bmp", "JPEG")
    good.save(root / "commented.jpg", comment=SECRET)
    (root / "sub.jpg").mkdir()  # a folder with an image's name
    good.save(root / "sub.jpg" / "inside.webp")
    good.save(root / "two\nlines.jpg")
    good.save(root / "holiday\u202egpj.exe.jpg")
    good.save(root / "caf\u00e9 \u4e2d\u6587.jpg")
    (root / "notes.txt").write_text("shot list\n", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    os.symlink(root / "missing.jpg", root / "broken-link.jpg")
    os.symlink(root, root / "loop")
    os.mkfifo(root / "pipe.jpg")
    with open(os.fsencode(root) + b"/latin1-\xe9.jpg", "wb") as f:
        f.write(jpeg)


def _all_entries(root: Path) -> set[str]:
    """Every file-like entry the walk should account for (folders and the followed loop excluded)."""
    import os

    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            found.add(os.fsencode(os.path.join(dirpath, name)).decode("utf-8", "backslashreplace"))
    return found


@pytest.fixture(scope="module")
def run_cfg(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("faultcfg")
    p = d / "config.yaml"
    p.write_text(
        f"cache:\n  dir: {d / 'cache'}\ncaption:\n  event: Fault Week\n  mode: template\nhaiku:\n  enabled: false\n",
        encoding="utf-8",
    )
    return p


def test_a_hostile_folder_runs_without_a_crash_and_every_file_is_accounted_for(tmp_path, run_cfg, snapshot):
    root = tmp_path / "fuzz"
    make_fuzz_folder(root)
    before = snapshot(root)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(root), "--out", str(out), "--config", str(run_cfg), "-q"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and res.exception is None
    assert "\u202e" not in res.output and "two\nlines" not in res.output
    doc = json.loads((out / "posts.json").read_text(encoding="utf-8"))
    listed = {p["path"] for p in doc["photos"]} | {e["path"] for e in doc["excluded"]}
    assert listed == _all_entries(root)
    reasons = {Path(e["path"]).name: e["reason"] for e in doc["excluded"]}
    assert reasons["text-bomb.png"].startswith("too large: a compressed text chunk")
    assert reasons["pixel-bomb.png"].startswith("too large: 100000 x 100000 px")
    assert reasons["pipe.jpg"] == "not a regular file (named pipe)" and reasons["broken-link.jpg"] == "broken symlink"
    formats = {Path(p["path"]).name: p["format"] for p in doc["photos"]}
    assert formats["jpeg-named.bmp"] == "JPEG" and formats["anim.gif"] == "GIF" and formats["cmyk.jpg"] == "JPEG"
    assert snapshot(root) == before  # not one byte, name or time changed
    for f in (out / "posts").rglob("*.jpg"):
        assert SECRET.encode() not in f.read_bytes()


# --- kill -9 at every stage: the next run resumes and writes the same posts.json ---------------------------------

_KILLER = """
import os, signal, sys
from pathlib import Path
from photopoet.config import load_config
from photopoet import pipeline
from photopoet.stages import render

photos, out, cfg_path, where = sys.argv[1:5]
def die():
    os.kill(os.getpid(), signal.SIGKILL)

if where == "mid-ingest":  # after the first batch of working copies reached the cache
    from photopoet.core.cache import Cache
    real = Cache.put_photos
    def put(self, items):
        real(self, items)
        if items:
            die()
    Cache.put_photos = put
if where == "mid-export":  # after three files of the post folders were written
    real_write = render.atomic_write_bytes
    n = [0]
    def write(path, data):
        real_write(path, data)
        n[0] += 1
        if n[0] == 3:
            die()
    render.atomic_write_bytes = write

def on_stage(name):
    if name == where:
        die()

cfg = load_config(cfg_path, {"ingest": {"workers": 1}})
pipeline.run(photos, out, cfg, progress=False, on_stage=on_stage)
print("finished without being killed")
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, run_cfg):
    from photopoet.samples import make_samples

    d = tmp_path_factory.mktemp("killref")
    photos = d / "photos"
    make_samples(photos)
    run(photos, d / "out", load_config(run_cfg), progress=False)
    return photos, (d / "out" / "posts.json").read_bytes()


@pytest.mark.parametrize("where", ["mid-ingest", "understand", "cull", "group", "write", "render", "mid-export"])
def test_a_run_killed_at_each_stage_resumes_to_the_same_posts_json(reference, tmp_path, where):
    import signal
    import subprocess
    import sys

    photos, expected = reference
    cfg = tmp_path / "config.yaml"
    # a cache of its own, started empty: the killed run leaves it part-filled, the resumed run completes it
    cfg.write_text(
        f"cache:\n  dir: {tmp_path / 'cache'}\ncaption:\n  event: Fault Week\n  mode: template\n"
        "haiku:\n  enabled: false\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(photos), str(out), str(cfg), where],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    if where == "render":  # as if killed inside atomic_write_bytes of posts.json and report.html
        (out / ".posts.json.k1ll.tmp").write_bytes(b"{half")
        (out / ".report.html.k1ll.tmp").write_bytes(b"<html")
    res = run(photos, out, load_config(cfg), progress=False)
    assert (out / "posts.json").read_bytes() == expected
    assert not list(out.rglob("*.tmp")) and not (out / "posts" / ".stale").exists()
    assert res.excluded and len(res.photos) + len(res.excluded) == 13
    with Cache(tmp_path / "cache" / "cache.sqlite3") as c:
        assert c.integrity_check() == "ok"
