import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photopoet.config import IngestConfig
from photopoet.core.cache import SCHEMA_VERSION, Cache
from photopoet.errors import CacheError
from photopoet.stages import ingest as ingest_mod
from photopoet.stages.ingest import ingest, load_working_copy

CFG = IngestConfig(thumb_size=96, workers=2)


def make_photos(root: Path, n: int, start: int = 0) -> list[Path]:
    """`n` distinct small JPEGs (crops of one sample photo at different offsets)."""
    import skimage.data

    src = skimage.data.astronaut()
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        y, x = divmod(i * 7, 300)
        p = root / f"img{i:03d}.jpg"
        Image.fromarray(src[y : y + 160, x : x + 200]).save(p, quality=85)
        paths.append(p)
    return paths


def no_decoding(monkeypatch) -> None:
    def fail(*a, **k):
        raise AssertionError("decoded although the cache had it")

    monkeypatch.setattr(ingest_mod, "decode_photo", fail)


# -- the store itself ------------------------------------------------------------------------------------------


def test_store_roundtrip(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite3"
    with Cache(path) as c:
        assert c.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.lookup_sha("/p/a.jpg", 10, 123) is None
        c.remember_sha("/p/a.jpg", 10, 123, "aa")
        assert c.lookup_sha("/p/a.jpg", 10, 123) == "aa"
        assert c.lookup_sha("/p/a.jpg", 10, 124) is None  # touched
        assert c.lookup_sha("/p/a.jpg", 11, 123) is None  # rewritten

        c.put_photo("aa", {"width": 3, "gps": [1.5, -2.0], "name": "café"}, b"\xff\xd8thumb")
        assert c.get_meta("aa") == {"width": 3, "gps": [1.5, -2.0], "name": "café"}
        assert c.get_thumb("aa") == b"\xff\xd8thumb"
        assert c.get_meta("bb") is None and c.get_thumb("bb") is None

        m = np.arange(6, dtype=np.float64).reshape(2, 3)
        c.put_vectors("feat:x", {"aa": m, "bb": np.ones(4, np.float32)})
        got = c.get_vectors("feat:x", ["aa", "bb", "cc"])
        assert set(got) == {"aa", "bb"}
        assert got["aa"].dtype == np.float32 and got["aa"].shape == (2, 3) and np.array_equal(got["aa"], m)
        got["aa"][0, 0] = 7  # a writable copy
        assert c.get_vectors("feat:y", ["aa"]) == {}

        c.put_json("score", {"aa": {"blur": 0.5}, "bb": [1, "x"]})
        assert c.get_json("score", ["aa", "bb", "zz"]) == {"aa": {"blur": 0.5}, "bb": [1, "x"]}
        many = [f"{i:064x}" for i in range(1200)]  # more than one IN (...) chunk
        c.put_json("many", dict.fromkeys(many, 1))
        assert len(c.get_json("many", many + many)) == 1200

        s = c.stats()
        assert (s["photos"], s["stat_memo"], s["vectors"], s["json"]["score"]) == (1, 1, {"feat:x": 2}, 2)
        assert s["bytes"] > 0
    with pytest.raises(CacheError, match="closed"):
        c.get_meta("aa")
    with Cache(path) as c:  # persisted
        assert c.get_meta("aa")["width"] == 3 and c.integrity_check() == "ok"


def test_batch_is_one_transaction(tmp_path):
    path = tmp_path / "c.sqlite3"
    with Cache(path) as c:
        with pytest.raises(RuntimeError), c.batch():
            c.put_json("k", {"a": 1})
            c.put_json("k", {"b": 2})
            raise RuntimeError("killed half way")
        assert c.get_json("k", ["a", "b"]) == {}
        with c.batch():
            c.put_json("k", {"a": 1})
            c.remember_sha("/x", 1, 1, "a")
        assert c.get_json("k", ["a"]) == {"a": 1}


def test_memory_cache():
    with Cache.memory() as c:
        c.put_photo("s", {"w": 1}, b"x")
        assert c.get_meta("s") == {"w": 1} and c.stats()["bytes"] == 0


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "cache.sqlite3"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CacheError) as e:
        Cache(bad)
    assert str(bad) in str(e.value) and "Delete" in str(e.value)


def test_foreign_database_and_newer_schema_are_refused(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(CacheError, match="not a photopoet cache"):
        Cache(other)
    newer = tmp_path / "newer.sqlite3"
    Cache(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE cache_info SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(CacheError, match="newer photopoet") as e:
        Cache(newer)
    assert str(newer) in str(e.value)


# -- ingest on top of it ---------------------------------------------------------------------------------------


def test_rerun_reuses_everything(tmp_path, photo_dir, monkeypatch):
    cache_path = tmp_path / "cache" / "c.sqlite3"
    with Cache(cache_path) as c:
        first = ingest(photo_dir, CFG, c, progress=False)
    assert (first.decoded, first.reused) == (5, 0)
    no_decoding(monkeypatch)
    monkeypatch.setattr(ingest_mod, "file_sha256", lambda p: pytest.fail(f"re-hashed unchanged {p}"))
    with Cache(cache_path) as c:
        second = ingest(photo_dir, CFG, c, progress=False)
        assert load_working_copy(c, second.photos[0].sha256).size == (96, 64)
    assert (second.decoded, second.reused) == (0, 5)
    assert second.photos == first.photos and second.excluded == first.excluded


def test_only_new_or_changed_photos_are_decoded(tmp_path, images):
    root = tmp_path / "p"
    make_photos(root, 4)
    with Cache(tmp_path / "c.sqlite3") as c:
        assert ingest(root, CFG, c, progress=False).decoded == 4
        images["coffee"].save(root / "new.jpg")
        res = ingest(root, CFG, c, progress=False)
        assert (res.decoded, res.reused) == (1, 4)
        old = {p.path: p.sha256 for p in res.photos}
        images["rocket"].save(root / "img000.jpg")  # same path, new content
        res = ingest(root, CFG, c, progress=False)
        assert (res.decoded, res.reused) == (1, 4)
        assert {p.path: p.sha256 for p in res.photos}[str(root / "img000.jpg")] != old[str(root / "img000.jpg")]
        res = ingest(root, IngestConfig(thumb_size=64), c, progress=False)  # another working size: remade
        assert res.decoded == 5
        assert max(load_working_copy(c, res.photos[0].sha256).size) == 64


def test_excluded_files_are_retried_not_cached(tmp_path):
    root = tmp_path / "p"
    (good,) = make_photos(root, 1)
    (root / "later.jpg").write_bytes(good.read_bytes()[:500])
    with Cache(tmp_path / "c.sqlite3") as c:
        assert len(ingest(root, CFG, c, progress=False).excluded) == 1
        (root / "later.jpg").write_bytes(good.read_bytes())  # the copy finished
        res = ingest(root, CFG, c, progress=False)
    assert res.excluded == [] and len(res.photos) == 2 and res.photos[0].sha256 == res.photos[1].sha256


_CHILD = textwrap.dedent(
    """
    import sys, time
    from photopoet.core.cache import Cache
    from photopoet.config import IngestConfig
    from photopoet.stages import ingest as m

    root, cache_path, batch, delay, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    real = m.decode_photo
    def slow(*a, **k):
        time.sleep(delay)
        return real(*a, **k)
    m.decode_photo = slow
    from pathlib import Path
    while go != "-" and not Path(go).exists():
        time.sleep(0.005)
    with Cache(cache_path) as c:
        res = m.ingest(root, IngestConfig(thumb_size=96, workers=1), c, progress=False, batch_size=batch)
        c.put_vectors("v", {p.sha256: [float(len(p.path))] for p in res.photos})
    print(len(res.photos), res.decoded, res.reused)
    """
)


def child(root: Path, cache: Path, batch: int, delay: float, go: str = "-") -> subprocess.Popen:
    cmd = [sys.executable, "-c", _CHILD, str(root), str(cache), str(batch), str(delay), go]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_killed_run_leaves_a_sound_cache_and_resumes(tmp_path, monkeypatch):
    root = tmp_path / "p"
    n = 40
    make_photos(root, n)
    db = tmp_path / "c.sqlite3"
    proc = child(root, db, batch=4, delay=0.05)
    deadline = time.monotonic() + 30
    while count_rows(db) == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with Cache(db) as c:
        assert c.integrity_check() == "ok"
        stored = c.stats()["photos"]
        assert 4 <= stored < n and stored % 4 == 0  # whole batches only
        res = ingest(root, CFG, c, progress=False)
        assert (res.decoded, res.reused) == (n - stored, stored)
        assert len(res.photos) == n and c.stats()["photos"] == n and c.integrity_check() == "ok"


def test_two_processes_write_one_cache(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_photos(a, 24)
    make_photos(b, 24, start=12)  # 12 photos of b are copies of a's: both write those rows
    db = tmp_path / "shared" / "c.sqlite3"
    go = tmp_path / "go"
    procs = [child(a, db, batch=1, delay=0.0, go=str(go)), child(b, db, batch=1, delay=0.0, go=str(go))]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.split()[0] == "24"
    with Cache(db) as c:
        assert c.integrity_check() == "ok"
        s = c.stats()
        assert (s["photos"], s["stat_memo"], s["vectors"]) == (36, 48, {"v": 36})
        res = ingest(a, CFG, c, progress=False)
        assert (res.decoded, res.reused) == (0, 24)
