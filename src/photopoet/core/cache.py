"""One embedded store for every expensive per-photo result, keyed by the file's content hash (SHA-256).

A single SQLite file in WAL mode. Each :class:`Cache` holds its own connection, so two processes can write to
the same file at once: every write runs in a ``BEGIN IMMEDIATE`` transaction (waiting on ``busy_timeout`` and
retried a few times when the database stays locked), and a batch method writes its whole batch in one
transaction, so a run killed with ``kill -9`` loses at most the batch in flight and never what was committed
before it.

What it holds:

* a stat memo ``(path, size, mtime_ns) -> sha``, so a rerun need not re-read unchanged files;
* per photo: a JSON ``meta`` dict and the working copy (JPEG bytes) that later stages decode;
* vectors per model (``kind``), float32 with their shape;
* small JSON values per stage (``kind``): scores, labels, rendered thumbnails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from photopoet.errors import CacheDamaged, CacheError

if TYPE_CHECKING:
    from photopoet.config import Config

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
_LOCK_RETRIES = 5
_CHUNK = 500  # shas per `IN (...)` query, well under SQLite's parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stat_memo (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (sha TEXT PRIMARY KEY, meta TEXT NOT NULL, thumb BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    kind TEXT NOT NULL, sha TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (kind, sha)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS json_values (
    kind TEXT NOT NULL, sha TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, sha)
) WITHOUT ROWID;
"""
_TABLES = {"cache_info", "stat_memo", "photos", "vectors", "json_values"}


def _is_damage(err: sqlite3.DatabaseError) -> bool:
    """SQLite's words for a file that is not (or no longer) a sound database."""
    if not isinstance(err, sqlite3.OperationalError):
        return True  # SQLITE_CORRUPT, SQLITE_NOTADB ...
    msg = str(err).lower()
    return any(w in msg for w in ("malformed", "not a database", "no such table", "corrupt", "disk i/o"))


def set_aside(path: Path | str) -> Path:
    """Move a damaged cache file (and its -wal / -shm companions) to ``<name>.damaged-<UTC time>``; returns the
    new path. Nothing is deleted: the file only held results that can be recomputed, but it is the user's."""
    src = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dst = src.with_name(f"{src.name}.damaged-{stamp}")
    n = 2
    while dst.exists():
        dst = src.with_name(f"{src.name}.damaged-{stamp}.{n}")
        n += 1
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash in between leaves no orphan journal
        part = Path(str(src) + suffix)
        if part.exists():
            os.replace(part, Path(str(dst) + suffix))
    return dst


def _decode_json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return _BAD


_BAD = object()  # a stored value that no longer decodes: treated as a miss (recomputed and overwritten)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _is_locked(err: sqlite3.OperationalError) -> bool:
    msg = str(err).lower()
    return "locked" in msg or "busy" in msg


class Cache:
    """The content-addressed store. ``Cache(path)`` opens (or creates) a file; ``Cache.memory()`` keeps
    everything in memory for runs with the cache turned off.

    One connection per instance. Calls are serialised by a lock, so an instance may be shared between
    threads, but the intended use is one thread per instance (ingest writes from its calling thread only).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        self._lock = threading.RLock()
        self._depth = 0  # nesting of `batch()` / write transactions
        self._conn: sqlite3.Connection | None = None
        if not self.in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise CacheError(self._advice(f"cannot open the cache file: {e}")) from None
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not self.in_memory:
                self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            self._init_schema()
        except CacheError:
            conn.close()
            self._conn = None
            raise
        except sqlite3.DatabaseError as e:
            conn.close()
            self._conn = None
            if _is_damage(e):
                raise CacheDamaged(self._advice(f"damaged, not a usable photopoet cache ({e})")) from None
            raise CacheError(self._advice(f"not a usable photopoet cache ({e})")) from None

    @classmethod
    def memory(cls) -> Cache:
        """A cache that lives only as long as the object: for runs with the cache disabled."""
        return cls(":memory:")

    # -- plumbing ---------------------------------------------------------------------------------------

    def _advice(self, what: str) -> str:
        return (
            f"{self.path}: {what}. Delete this file (it only holds results that can be recomputed) "
            "or point cache.dir in the config at another folder."
        )

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CacheError(f"{self.path}: the cache is closed")
        return self._conn

    def _retry_locked(self, fn: Any) -> Any:
        """Run `fn`, retrying when SQLite still reports the database locked after its busy timeout."""
        for attempt in range(_LOCK_RETRIES):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if not _is_locked(e) or attempt == _LOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's "database disk image is malformed" (and kin) met mid-run, as :class:`CacheDamaged`."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            if not _is_damage(e):
                raise
            raise CacheDamaged(self._advice(f"damaged ({e})")) from None

    @contextmanager
    def batch(self) -> Iterator[Cache]:
        """One write transaction for everything inside the block (nested blocks join the outer one).

        ``BEGIN IMMEDIATE`` takes the write lock up front, so statements inside never meet a busy
        database; if the block raises, nothing of it is written.
        """
        with self._lock, self._guard():
            conn = self.conn
            if self._depth == 0:
                self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if self._depth == 0 and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                try:
                    self._retry_locked(lambda: conn.execute("COMMIT"))
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

    def _init_schema(self) -> None:
        conn = self.conn
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "cache_info" not in tables:
            raise CacheError(self._advice("is an SQLite database but not a photopoet cache"))
        if "cache_info" in tables:
            self._check_version()
            if tables >= _TABLES:
                return
        with self.batch():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(
                "INSERT OR IGNORE INTO cache_info (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._check_version()

    def _check_version(self) -> None:
        row = self.conn.execute("SELECT value FROM cache_info WHERE key = 'schema_version'").fetchone()
        try:
            version = int(row[0]) if row else None
        except ValueError:
            version = None
        if version is None:
            raise CacheError(self._advice("has no readable schema version"))
        if version != SCHEMA_VERSION:
            newer = "a newer" if version > SCHEMA_VERSION else "an older"
            raise CacheError(
                self._advice(
                    f"was written by {newer} photopoet (cache schema {version}; this version reads "
                    f"schema {SCHEMA_VERSION})"
                )
            )

    def _select(self, sql: str, shas: Iterable[str], *head: Any) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql` (with one `{marks}` placeholder for the shas) in chunks; `head` params go first."""
        uniq = list(dict.fromkeys(shas))
        with self._lock, self._guard():
            for part in _chunks(uniq):
                marks = ",".join("?" * len(part))
                yield from self.conn.execute(sql.format(marks=marks), (*head, *part)).fetchall()

    # -- stat memo ---------------------------------------------------------------------------------------

    def lookup_sha(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The content hash remembered for `path`, if its size and mtime are still the same."""
        with self._lock, self._guard():
            row = self.conn.execute(
                "SELECT sha FROM stat_memo WHERE path = ? AND size = ? AND mtime_ns = ?", (path, size, mtime_ns)
            ).fetchone()
        return row[0] if row else None

    def remember_sha(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        self.remember_shas([(path, size, mtime_ns, sha)])

    def remember_shas(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """Many ``(path, size, mtime_ns, sha)`` rows in one transaction."""
        rows = list(rows)
        if not rows:
            return
        with self.batch():
            self.conn.executemany(
                "INSERT OR REPLACE INTO stat_memo (path, size, mtime_ns, sha) VALUES (?, ?, ?, ?)", rows
            )

    # -- photos: meta + working copy --------------------------------------------------------------------

    def get_meta(self, sha: str) -> dict[str, Any] | None:
        return self.get_metas([sha]).get(sha)

    def get_metas(self, shas: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored metas by sha; a row that no longer decodes to a dict counts as missing."""
        out = {}
        for s, m in self._select("SELECT sha, meta FROM photos WHERE sha IN ({marks})", shas):
            meta = _decode_json(m)
            if isinstance(meta, dict):
                out[s] = meta
        return out

    def get_thumb(self, sha: str) -> bytes | None:
        """The encoded working copy (JPEG or PNG bytes) stored for `sha`."""
        with self._lock, self._guard():
            row = self.conn.execute("SELECT thumb FROM photos WHERE sha = ?", (sha,)).fetchone()
        return bytes(row[0]) if row else None

    def put_photo(self, sha: str, meta: dict[str, Any], thumb: bytes) -> None:
        self.put_photos({sha: (meta, thumb)})

    def put_photos(self, items: dict[str, tuple[dict[str, Any], bytes]]) -> None:
        """Many ``sha -> (meta, thumb)`` in one transaction."""
        rows = [(s, json.dumps(m, ensure_ascii=False), sqlite3.Binary(t)) for s, (m, t) in items.items()]
        if not rows:
            return
        with self.batch():
            self.conn.executemany("INSERT OR REPLACE INTO photos (sha, meta, thumb) VALUES (?, ?, ?)", rows)

    # -- vectors -----------------------------------------------------------------------------------------

    def get_vectors(self, kind: str, shas: Iterable[str]) -> dict[str, np.ndarray]:
        """float32 arrays (writable copies, shape as stored) for the shas that have one under `kind`."""
        out: dict[str, np.ndarray] = {}
        sql = "SELECT sha, shape, data FROM vectors WHERE kind = ? AND sha IN ({marks})"
        for sha, shape, data in self._select(sql, shas, kind):
            try:  # a damaged blob or shape counts as missing: recomputed and overwritten
                out[sha] = np.frombuffer(data, dtype="<f4").reshape(json.loads(shape)).astype(np.float32)
            except (TypeError, ValueError):
                continue
        return out

    def put_vectors(self, kind: str, items: dict[str, np.ndarray]) -> None:
        rows = []
        for sha, v in items.items():
            a = np.ascontiguousarray(np.asarray(v), dtype="<f4")
            rows.append((kind, sha, json.dumps(list(a.shape)), sqlite3.Binary(a.tobytes())))
        if not rows:
            return
        with self.batch():
            self.conn.executemany("INSERT OR REPLACE INTO vectors (kind, sha, shape, data) VALUES (?, ?, ?, ?)", rows)

    def vector_keys(self, kind: str, shas: Iterable[str]) -> set[str]:
        """The shas that have a vector under `kind` (without reading the vectors)."""
        sql = "SELECT sha FROM vectors WHERE kind = ? AND sha IN ({marks})"
        return {r[0] for r in self._select(sql, shas, kind)}

    # -- small JSON values --------------------------------------------------------------------------------

    def json_keys(self, kind: str, shas: Iterable[str]) -> set[str]:
        """The shas that have a JSON value under `kind`."""
        sql = "SELECT sha FROM json_values WHERE kind = ? AND sha IN ({marks})"
        return {r[0] for r in self._select(sql, shas, kind)}

    def get_json(self, kind: str, shas: Iterable[str]) -> dict[str, Any]:
        sql = "SELECT sha, value FROM json_values WHERE kind = ? AND sha IN ({marks})"
        found = ((sha, _decode_json(value)) for sha, value in self._select(sql, shas, kind))
        return {sha: v for sha, v in found if v is not _BAD}  # a value that does not decode counts as missing

    def put_json(self, kind: str, items: dict[str, Any]) -> None:
        rows = [(kind, sha, json.dumps(v, ensure_ascii=False)) for sha, v in items.items()]
        if not rows:
            return
        with self.batch():
            self.conn.executemany("INSERT OR REPLACE INTO json_values (kind, sha, value) VALUES (?, ?, ?)", rows)

    # -- housekeeping ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Row counts per table (vectors and JSON values per kind) and the size on disk in bytes."""
        with self._lock:
            c = self.conn
            out: dict[str, Any] = {
                "path": self.path,
                "schema_version": SCHEMA_VERSION,
                "photos": c.execute("SELECT COUNT(*) FROM photos").fetchone()[0],
                "stat_memo": c.execute("SELECT COUNT(*) FROM stat_memo").fetchone()[0],
                "vectors": dict(c.execute("SELECT kind, COUNT(*) FROM vectors GROUP BY kind ORDER BY kind")),
                "json": dict(c.execute("SELECT kind, COUNT(*) FROM json_values GROUP BY kind ORDER BY kind")),
            }
        size = 0
        if not self.in_memory:
            for suffix in ("", "-wal"):
                p = Path(self.path + suffix)
                if p.exists():
                    size += p.stat().st_size
        out["bytes"] = size
        return out

    def integrity_check(self) -> str:
        """SQLite's own check of the file: ``"ok"`` when sound."""
        with self._lock:
            return "\n".join(r[0] for r in self.conn.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            conn, self._conn = self._conn, None
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cache({self.path!r})"


# -- the run's cache: opened from the config, set aside and started afresh when damaged --------------------


def _say(line: str) -> None:
    print(f"photopoet: {line}", file=sys.stderr, flush=True)


def _set_aside_line(path: Path, err: CacheError) -> str:
    moved = set_aside(path)
    reason = str(err).split(": ", 1)[-1].split(". Delete", 1)[0]  # the "damaged (...)" part of the advice
    return f"the cache {path} is {reason}: moved it to {moved.name} and starting a fresh one"


def open_cache(cfg: Config, notify: Callable[[str], None] = _say) -> tuple[Cache, Path]:
    """The run's cache and the folder for model files. With the cache off, an in-memory store is used.

    A damaged cache file (truncated, overwritten) is moved aside to ``cache.sqlite3.damaged-<UTC time>``,
    `notify` is told so in one line, and a fresh cache is started: it only held results that can be
    recomputed."""
    cache_dir = cfg.cache.resolved_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.cache.enabled:
        return Cache.memory(), cache_dir
    path = cache_dir / "cache.sqlite3"
    try:
        return Cache(path), cache_dir
    except CacheDamaged as e:
        notify(_set_aside_line(path, e))
    return Cache(path), cache_dir


def with_cache(cfg: Config, job: Callable[[Cache, Path], T], notify: Callable[[str], None] = _say) -> T:
    """``job(cache, cache_dir)`` with the config's cache open; when the job meets a damaged cache file part-way
    (SQLite: "database disk image is malformed"), the file is set aside with one line to `notify` and the job
    runs once more on a fresh cache (every stage resumes from what the cache holds, so nothing is lost but
    time)."""
    for attempt in range(2):
        cache, cache_dir = open_cache(cfg, notify)
        try:
            with cache:
                return job(cache, cache_dir)
        except CacheDamaged as e:
            if cache.in_memory or attempt == 1:
                raise
            damaged = e
        notify(_set_aside_line(Path(cache.path), damaged))
    raise AssertionError("unreachable")
