"""Executors: where the per-photo work of a run happens.

``local`` (the default) is the pipeline as it always ran, in this process. ``ray`` computes ingest, quality
signals and image features on a Ray cluster (:mod:`photopoet.executors.ray_runner`), keeps them as Parquet
shards (:mod:`photopoet.executors.shards`) and hands them to the local stages through the cache, so the rest of
the run (cull, group, write, render) is the same code either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from photopoet.config import Config
    from photopoet.core.cache import Cache


def prepare(photos_dir: Path, out: Path, cfg: Config, cache: Cache, cache_dir: Path, *, progress: bool = True) -> Any:
    """Run the executor's share of the work before the local stages. ``local``: nothing (returns None);
    ``ray``: fills `cache` from shards computed on Ray and returns its :class:`~.ray_runner.RayStats`."""
    if cfg.executor.kind == "local":
        return None
    from photopoet.executors.ray_runner import precompute

    return precompute(photos_dir, out, cfg, cache, cache_dir, progress=progress)
