"""Feature shards: the per-photo results of a distributed run, as Parquet files keyed by content hash.

One shard per batch of photos, written atomically (a temporary file in the same folder, then a rename), so a
killed worker leaves either a whole shard or none. Shards live under ``SHARD_DIR/<key>/`` where ``<key>``
names everything that changes their content (working-copy recipe and size, models, face settings); a run with
other settings writes to another key and never mixes the two. ``settings.json`` beside them says which.

A row is one file of the folder:

========== ====================================================================================================
path       the file as walked; ``size`` and ``mtime_ns`` as seen then (a rerun skips files that still match)
sha        SHA-256 of the bytes (null when the file could not be read)
status     ``ok`` (everything below is filled), ``ref`` (the same bytes were computed under another row),
           ``rejected`` (not a usable image: ``reason`` says why) or ``unreadable`` (retried on the next run)
meta       the ingest meta (JSON): size after orientation, format, EXIF time and GPS, recipe
thumb      the JPEG working copy, as the local cache stores it
feat       image features (float32, L2-normalised), ``txt`` the same photo in the text space
concepts   top ImageNet classes (JSON), ``look`` colour histogram + quality + faces, ``signals`` cull signals,
           ``scene`` the scene's image statistics (JSON, ``stages.scene.measure``)
========== ====================================================================================================

Nothing here imports Ray: the driver reads shards and fills the local cache with them
(:func:`import_into_cache`), after which the local stages find every result they need.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.config import Config
from photopoet.core.cache import Cache
from photopoet.core.files import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

SHARD_VERSION = 1
INDEX_COLUMNS = ["path", "size", "mtime_ns", "sha", "status"]


@dataclass(frozen=True)
class CacheKinds:
    """The cache kinds (keys) under which the local stages look for each per-photo result."""

    feat: str
    txt: str
    concepts: str
    look: str
    signals: str
    scene: str

    @classmethod
    def for_config(cls, cfg: Config) -> CacheKinds:
        from photopoet.stages.measure import cache_kinds
        from photopoet.stages.scene import LOOK_KIND
        from photopoet.stages.understand import ModelSet

        models = ModelSet(cfg, Path("."))  # the keys only: nothing is loaded
        image_key, text_key = models.image_key(), models.text_key()
        measured = cache_kinds(cfg.cull.min_face_px)
        return cls(
            feat="feat:" + image_key,
            txt="txt:" + text_key,
            concepts="concepts:" + image_key,
            look=measured["look"],
            signals=measured["signals"],
            scene=LOOK_KIND,
        )


def shard_settings(cfg: Config) -> dict[str, Any]:
    """Everything that changes what a shard row holds."""
    from photopoet.stages.ingest import JPEG_QUALITY, RECIPE

    k = CacheKinds.for_config(cfg)
    return {
        "shard_version": SHARD_VERSION,
        "recipe": RECIPE,
        "jpeg_quality": JPEG_QUALITY,
        "thumb_size": cfg.ingest.thumb_size,
        "max_pixels": cfg.ingest.max_pixels,
        "models": {"tier": cfg.models.tier, "image": cfg.models.image, "text": cfg.models.text},
        "kinds": {
            "feat": k.feat,
            "txt": k.txt,
            "concepts": k.concepts,
            "look": k.look,
            "signals": k.signals,
            "scene": k.scene,
        },
    }


def shard_folder(shard_dir: Path, cfg: Config) -> Path:
    """``shard_dir/<key>``, created with its ``settings.json``."""
    settings = shard_settings(cfg)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(shard_dir) / f"v{SHARD_VERSION}-{digest}"
    if not (folder / "settings.json").is_file():
        atomic_write_json(folder / "settings.json", settings)
    return folder


def _schema() -> Any:
    import pyarrow as pa

    vec = pa.list_(pa.float32())
    return pa.schema(
        [
            ("path", pa.string()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("sha", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("meta", pa.string()),
            ("thumb", pa.binary()),
            ("feat", vec),
            ("txt", vec),
            ("concepts", pa.string()),
            ("look", vec),
            ("signals", pa.string()),
            ("scene", pa.string()),
        ]
    )


def _vec(v: Any) -> list[float] | None:
    return None if v is None else np.asarray(v, dtype=np.float32).tolist()


def write_shard(folder: Path, rows: list[dict[str, Any]]) -> Path | None:
    """One Parquet file holding `rows` (dicts with the schema's columns; missing ones are null), written
    atomically under a fresh name. Nothing is written for no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        return None
    schema = _schema()
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    for r in rows:
        for name in schema.names:
            v = r.get(name)
            if name in ("feat", "txt", "look"):
                v = _vec(v)
            elif name in ("meta", "concepts", "signals", "scene") and v is not None and not isinstance(v, str):
                v = json.dumps(v, ensure_ascii=False)
            cols[name].append(v)
    table = pa.table(cols, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    path = Path(folder) / f"part-{uuid.uuid4().hex}.parquet"
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def shard_files(folder: Path) -> list[Path]:
    """The finished shards, oldest first (temporary files of a write in progress start with a dot: not listed)."""
    if not Path(folder).is_dir():
        return []
    found = []
    for f in Path(folder).glob("part-*.parquet"):
        try:
            found.append((f.stat().st_mtime_ns, f.name, f))
        except OSError:  # removed meanwhile
            continue
    return [f for _, _, f in sorted(found)]  # oldest first: a newer row for a path overrides an older one


def _read(path: Path, columns: list[str]) -> Any | None:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except Exception as e:  # a shard damaged after it was written: its photos are simply computed again
        logger.warning("%s: unreadable shard, ignored (%s)", path, e)
        return None


@dataclass(frozen=True)
class IndexRow:
    size: int
    mtime_ns: int
    sha: str | None
    status: str


def read_index(folder: Path) -> dict[str, IndexRow]:
    """``path -> IndexRow`` over every shard (a later shard's row for a path wins over an earlier one's)."""
    out: dict[str, IndexRow] = {}
    for f in shard_files(folder):
        t = _read(f, INDEX_COLUMNS)
        if t is None:
            continue
        d = t.to_pydict()
        for p, s, m, sha, st in zip(d["path"], d["size"], d["mtime_ns"], d["sha"], d["status"], strict=True):
            out[p] = IndexRow(int(s), int(m), sha, st)
    return out


def computed_shas(folder: Path) -> set[str]:
    """Content hashes whose results some shard holds (status ``ok``)."""
    import pyarrow.compute as pc

    out: set[str] = set()
    for f in shard_files(folder):
        t = _read(f, ["sha", "status"])
        if t is not None:
            out.update(t.filter(pc.equal(t["status"], "ok"))["sha"].to_pylist())
    return out


def iter_ok_rows(folder: Path, wanted: set[str], columns: Iterable[str]) -> Iterator[dict[str, list[Any]]]:
    """Per shard, the ``ok`` rows whose sha is in `wanted` (each sha once over all shards), as column lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    left = set(wanted)
    cols = list(dict.fromkeys(["sha", "status", *columns]))
    for f in shard_files(folder):
        if not left:
            return
        t = _read(f, ["sha", "status"])
        if t is None:
            continue
        mask = pc.and_(pc.equal(t["status"], "ok"), pc.is_in(t["sha"], value_set=pa.array(sorted(left), pa.string())))
        if not pc.any(mask).as_py():
            continue
        full = _read(f, cols)
        if full is None:
            continue
        d = full.filter(mask).to_pydict()
        keep = []
        for i, s in enumerate(d["sha"]):
            if s in left:
                left.discard(s)
                keep.append(i)
        if keep:
            yield {c: [d[c][i] for i in keep] for c in cols}


def import_into_cache(folder: Path, wanted: set[str], cache: Cache, kinds: CacheKinds, batch: int = 256) -> int:
    """Copy the shards' results for the shas in `wanted` into the local cache, under the kinds the local
    stages read. Returns how many photos were imported."""
    n = 0
    cols = ["meta", "thumb", "feat", "txt", "concepts", "look", "signals", "scene"]
    for d in iter_ok_rows(folder, wanted, cols):
        for s in range(0, len(d["sha"]), batch):
            rows = [(d["sha"][i], i) for i in range(s, min(s + batch, len(d["sha"])))]

            def vecs(col: str, rows=rows, d=d) -> dict[str, np.ndarray]:
                return {sha: np.asarray(d[col][i], np.float32) for sha, i in rows}

            def jsons(col: str, rows=rows, d=d) -> dict[str, Any]:
                return {sha: json.loads(d[col][i]) for sha, i in rows}

            with cache.batch():
                cache.put_photos({sha: (json.loads(d["meta"][i]), d["thumb"][i]) for sha, i in rows})
                cache.put_vectors(kinds.feat, vecs("feat"))
                cache.put_vectors(kinds.txt, vecs("txt"))
                cache.put_json(kinds.concepts, jsons("concepts"))
                cache.put_vectors(kinds.look, vecs("look"))
                cache.put_json(kinds.signals, jsons("signals"))
                cache.put_json(kinds.scene, jsons("scene"))
            n += len(rows)
    return n


def complete_in_cache(cache: Cache, cfg: Config, shas: list[str]) -> set[str]:
    """The shas for which the local cache already holds every per-photo result a run needs."""
    from photopoet.stages.ingest import RECIPE

    kinds = CacheKinds.for_config(cfg)
    metas = cache.get_metas(shas)
    ok = {s for s, m in metas.items() if m.get("thumb_size") == cfg.ingest.thumb_size and m.get("recipe") == RECIPE}
    for kind in (kinds.feat, kinds.txt, kinds.look):  # read, not just listed: a damaged value is a miss
        ok &= set(cache.get_vectors(kind, ok))
    for kind in (kinds.concepts, kinds.signals, kinds.scene):
        ok &= set(cache.get_json(kind, ok))
    return ok
