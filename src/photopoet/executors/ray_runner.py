"""The ``ray`` executor: ingest, quality signals and image features as Ray Data ``map_batches`` over the file list.

The driver walks the folder (as ingest does) and sends Ray only the files that neither the shards nor the local
cache already cover. Each batch goes to a :class:`PhotoWorker` actor, which loads the image model once and,
per file, hashes the bytes, decodes the working copy (the same ``decode_photo`` as local ingest), measures its
appearance, cull signals and scene statistics, then runs the image model over the whole batch, and writes the
batch as one Parquet shard (:mod:`photopoet.executors.shards`) before returning a small summary. The driver
then copies the shards' results into the local cache, and the local stages (ingest, understand, scene, cull,
group, write, render) run as they always do: every per-photo result is already there, so they only read.

Why the results equal a local run's: the worker calls the very functions the local stages call, on the same
working-copy bytes; the image model always runs full batches of ``models.batch_size`` (padded), where a
photo's features do not depend on its batch mates; and the actor runs torch with ``cpus_per_worker`` threads.
With the same thread count as the local run (torch's default: this machine's cores) the features are
bit-identical on the same kind of CPU. Another thread count or CPU moves them by about 1e-7, which can move
the third decimal of a label score in ``posts.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from photopoet.config import Config
from photopoet.core.cache import Cache
from photopoet.errors import ExecutorError
from photopoet.executors.shards import (
    CacheKinds,
    complete_in_cache,
    computed_shas,
    import_into_cache,
    read_index,
    shard_folder,
    write_shard,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayStats:
    files: int  # non-empty candidate files under the folder
    sent: int  # files Ray worked on this run
    computed: int  # photos whose results Ray computed this run
    imported: int  # photos copied from the shards into the local cache
    shard_dir: Path
    seconds: float


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ExecutorError(
            "executor 'ray' needs Ray Data, which is not installed: pip install 'photopoet[ray]' "
            "(or pip install 'ray[data]'), or use --executor local"
        ) from None
    return ray


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing answers at a ``host:port`` or ``ray://host[:port]`` address (``ray.init`` itself
    keeps retrying an unreachable head for minutes). ``auto`` is left to Ray, which fails at once when no
    cluster runs here."""
    import socket

    if address == "auto" or address.startswith("local"):
        return
    rest, port = address, 6379
    if rest.startswith("ray://"):
        rest, port = rest[len("ray://") :], 10001
    rest = rest.split("/", 1)[0]
    host, _, p = rest.rpartition(":")
    if not host:
        host, p = rest, ""
    try:
        port = int(p) if p else port
    except ValueError:
        raise ExecutorError(f"Ray address {address!r}: the port {p!r} is not a number") from None
    try:
        socket.create_connection((host.strip("[]"), port), timeout=timeout).close()
    except OSError as e:
        raise ExecutorError(
            f"cannot connect to the Ray cluster at {address!r}: nothing answers at {host}:{port} "
            f"({e.strerror or e}). Check executor.ray_address / --ray-address (e.g. 'auto' on a cluster node, "
            "or ray://HEAD:10001), or use --executor local"
        ) from None


def connect(cfg: Config) -> tuple[Any, bool]:
    """Ray, initialised. Returns ``(ray, started)``: `started` when this call started it (and should stop it)."""
    ray = _import_ray()
    ex = cfg.executor
    if ex.ray_address is not None:
        probe(ex.ray_address)
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if ex.ray_address is None:
        kwargs["num_cpus"] = ex.num_cpus
        kwargs["object_store_memory"] = ex.object_store_mb * 2**20
    else:
        kwargs["address"] = ex.ray_address
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {ex.ray_address!r}" if ex.ray_address else "a local Ray runtime"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExecutorError(
            f"cannot connect to {where}: {first}. Check executor.ray_address / --ray-address "
            "(e.g. 'auto' on a cluster node, or ray://HEAD:10001), or use --executor local"
        ) from None
    return ray, True


def resolve_shard_dir(cfg: Config, out: Path) -> Path:
    if cfg.executor.shard_dir is not None:
        return Path(cfg.executor.shard_dir).expanduser()
    if cfg.cache.enabled:
        return cfg.cache.resolved_dir() / "shards"
    return Path(out) / "shards"


class PhotoWorker:
    """A Ray actor's work: one batch of files in, one shard out. The image model loads once per actor."""

    def __init__(
        self,
        cfg_data: dict[str, Any],
        cache_dir: str,
        folder: str,
        known: frozenset[str],
        class_matrix: np.ndarray | None,
    ) -> None:
        import cv2
        import torch

        from photopoet.models import create_image_encoder, create_mapper, create_text_encoder

        self.cfg = Config.model_validate(cfg_data)
        self.folder = Path(folder)
        self.known = set(known)
        torch.set_num_threads(self.cfg.executor.cpus_per_worker)
        # OpenCV (face detection, resizing) starts a thread per core of the node unless told: keep it to the CPUs
        # Ray gave this actor. Counts and verdicts do not depend on its thread count.
        cv2.setNumThreads(self.cfg.executor.cpus_per_worker)
        m = self.cfg.models
        self.enc = create_image_encoder(m, Path(cache_dir))
        if class_matrix is not None:  # the driver's ConSE class matrix: the same text space, nothing re-embedded
            from photopoet.models.offline import ConSEMapper

            text = create_text_encoder(m, Path(cache_dir))
            self.mapper = ConSEMapper(text, None, topk=m.conse_topk)
            self.mapper._matrix = np.asarray(class_matrix, dtype=np.float32)
        else:
            self.mapper = create_mapper(m, Path(cache_dir), image_encoder=self.enc)
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=self.cfg.ingest.workers, thread_name_prefix="photo")

    def _one(self, path: str) -> dict[str, Any]:
        from photopoet.core.files import file_sha256
        from photopoet.errors import RejectedFile
        from photopoet.stages.ingest import decode_photo, working_copy_from_bytes
        from photopoet.stages.measure import measure_photo
        from photopoet.stages.scene import measure

        try:
            sha = file_sha256(path)
        except OSError as e:
            return {"status": "unreadable", "reason": f"cannot read file: {e.strerror or e}"}
        if sha in self.known:
            return {"sha": sha, "status": "ref"}
        ing = self.cfg.ingest
        try:
            meta, thumb = decode_photo(path, ing.thumb_size, ing.max_pixels)
        except RejectedFile as e:
            return {"sha": sha, "status": "rejected", "reason": str(e)}
        img = working_copy_from_bytes(thumb)
        measured = measure_photo(img, min_face_px=self.cfg.cull.min_face_px)  # one pass: look and cull signals
        return {
            "sha": sha,
            "status": "ok",
            "meta": meta,
            "thumb": thumb,
            "look": measured.look,
            "signals": measured.signals,
            "scene": measure(img),
            "x": self.enc.preprocess(img),
        }

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from photopoet.stages.ingest import _own_pixel_guard

        paths = [str(p) for p in batch["path"]]
        with _own_pixel_guard():
            rows = list(self.pool.map(self._one, paths))
        for r, p, s, m in zip(rows, paths, batch["size"], batch["mtime_ns"], strict=True):
            r.update(path=p, size=int(s), mtime_ns=int(m))
        seen: set[str] = set()
        todo = []
        for r in rows:  # the same bytes twice in one batch: computed once
            if r["status"] == "ok":
                if r["sha"] in seen:
                    r.update(status="ref")
                    for k in ("meta", "thumb", "look", "signals", "scene", "x"):
                        r.pop(k)
                else:
                    seen.add(r["sha"])
                    todo.append(r)
        if todo:
            out = self.enc.encode(np.stack([r.pop("x") for r in todo]))
            text = self.mapper.to_text_space(out)
            concepts = self.mapper.concepts(out, 5)
            for i, r in enumerate(todo):
                r["feat"], r["txt"] = out.features[i], text[i]
                r["concepts"] = [[c, round(float(w), 4)] for c, w in concepts[i]]
        write_shard(self.folder, rows)
        self.known.update(seen)
        return {
            "path": np.array(paths, dtype=object),
            "status": np.array([r["status"] for r in rows], dtype=object),
        }


def _class_matrix(cfg: Config, cache_dir: Path) -> np.ndarray | None:
    if cfg.models.tier != "offline":
        return None
    from photopoet.models import create_mapper

    return np.asarray(create_mapper(cfg.models, cache_dir).class_matrix(), dtype=np.float32)


def _n_workers(ray: Any, cfg: Config, n_batches: int) -> int:
    ex = cfg.executor
    if ex.workers is not None:
        return max(1, min(ex.workers, n_batches))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cpus // ex.cpus_per_worker, n_batches))


def precompute(
    photos_dir: Path, out: Path, cfg: Config, cache: Cache, cache_dir: Path, *, progress: bool = True
) -> RayStats:
    """Make sure the local cache holds every per-photo result for the files under `photos_dir`, computing
    what neither the cache nor the shards hold on Ray. The local stages run afterwards, unchanged."""
    from photopoet.stages.ingest import _walk

    t0 = time.perf_counter()
    shard_dir = resolve_shard_dir(cfg, out)
    try:
        folder = shard_folder(shard_dir, cfg)
    except OSError as e:
        raise ExecutorError(f"{shard_dir}: cannot create the shard folder: {e.strerror or e}") from None
    files, _ = _walk(photos_dir, cfg.ingest)
    files = [f for f in files if f.size > 0]
    index = read_index(folder)
    # 1. what is covered: a shard row for the same path, size and mtime; or the cache has every result
    todo, shas = [], {}
    for f in files:
        row = index.get(f.path)
        if row is not None and (row.size, row.mtime_ns) == (f.size, f.mtime_ns) and row.status != "unreadable":
            if row.sha is not None:
                shas[f.path] = row.sha
            continue
        memo = cache.lookup_sha(f.path, f.size, f.mtime_ns)
        if memo is not None:
            shas[f.path] = memo
        todo.append(f)
    done_local = complete_in_cache(cache, cfg, sorted(set(shas.values())))
    todo = [f for f in todo if shas.get(f.path) not in done_local]
    sent = len(todo)
    if todo:
        ray, started = connect(cfg)
        try:
            _run_on_ray(ray, todo, cfg, cache_dir, folder, done_local | computed_shas(folder), progress)
        finally:
            if started:
                ray.shutdown()
        index = read_index(folder)
    # 2. copy the shards' results the cache lacks into it (with the stat memo, so ingest does not hash again)
    memo_rows = []
    for f in files:
        row = index.get(f.path)
        if row is not None and row.sha is not None and (row.size, row.mtime_ns) == (f.size, f.mtime_ns):
            memo_rows.append((f.path, f.size, f.mtime_ns, row.sha))
    cache.remember_shas(memo_rows)
    wanted = {r[3] for r in memo_rows}
    wanted -= complete_in_cache(cache, cfg, sorted(wanted))
    imported = import_into_cache(folder, wanted, cache, CacheKinds.for_config(cfg))
    return RayStats(
        files=len(files),
        sent=sent,
        computed=sum(1 for f in todo if index.get(f.path) and index[f.path].status == "ok"),
        imported=imported,
        shard_dir=folder,
        seconds=time.perf_counter() - t0,
    )


def _run_on_ray(
    ray: Any, todo: list[Any], cfg: Config, cache_dir: Path, folder: Path, known: set[str], progress: bool
) -> None:
    import pyarrow as pa
    from ray.data import ActorPoolStrategy, DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and progress notes; errors still show
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # ours below counts photos, not Ray's blocks
    ctx.print_on_execution_start = False
    ex = cfg.executor
    table = pa.table(
        {
            "path": [f.path for f in todo],
            "size": pa.array([f.size for f in todo], pa.int64()),
            "mtime_ns": pa.array([f.mtime_ns for f in todo], pa.int64()),
        }
    )
    n_batches = -(-len(todo) // ex.batch_size)
    # one input block per batch, made here: a repartition would need a CPU task while the actors hold every CPU
    blocks = [table.slice(i * ex.batch_size, ex.batch_size) for i in range(n_batches)]
    ds = ray.data.from_arrow(blocks)
    workers = _n_workers(ray, cfg, n_batches)
    ds = ds.map_batches(
        PhotoWorker,
        batch_size=ex.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=workers),
        num_cpus=ex.cpus_per_worker,
        fn_constructor_kwargs={
            "cfg_data": cfg.model_dump(mode="json"),
            "cache_dir": str(cache_dir),
            "folder": str(folder),
            "known": frozenset(known),
            "class_matrix": _class_matrix(cfg, cache_dir),
        },
    )
    with tqdm(total=len(todo), desc=f"ray ({workers} actors)", unit="photo", disable=not progress) as bar:
        try:
            for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                bar.update(len(b["path"]))
        except ray.exceptions.RayError as e:
            cause = str(getattr(e, "cause", None) or e).strip().splitlines()
            raise ExecutorError(
                f"a Ray worker failed ({cause[-1] if cause else type(e).__name__}); the shards written so far are kept "
                f"in {folder} and a rerun continues from them"
            ) from e


def describe(stats: RayStats) -> str:
    return (
        f"ray: {stats.sent} of {stats.files} files sent to Ray, {stats.computed} computed, {stats.imported} "
        f"imported from {stats.shard_dir} in {stats.seconds:.1f} s"
    )


__all__ = ["PhotoWorker", "RayStats", "connect", "describe", "precompute", "resolve_shard_dir"]
