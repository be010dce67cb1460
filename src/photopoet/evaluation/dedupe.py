"""Duplicate groups against a truth file (see :mod:`photopoet.evaluation.dedupe_set`), for
``photopoet eval dedupe`` and ``benchmarks/dedupe_eval.py``.

Pairwise precision, recall and F1 per tier (exact, duplicate, similar) and for all duplicates together; see
:mod:`photopoet.metrics.duplicates` for how pairs are counted. The primary metric is ``f1_duplicate``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photopoet.config import Config
from photopoet.evaluation.base import EvalResult


def relative_groups(groups: Sequence[Any], root: Path) -> list[tuple[str, list[str]]]:
    """Predicted groups with their paths made relative to `root` (POSIX style, as truth files hold them)."""
    from photopoet.metrics.duplicates import as_groups

    base, real = root.absolute(), root.resolve()

    def rel(p: str) -> str:
        q = Path(p)
        for b in (base, real):
            try:
                return q.absolute().relative_to(b).as_posix()
            except ValueError:
                pass
        try:
            return q.resolve().relative_to(real).as_posix()
        except ValueError:
            return q.as_posix()  # outside the folder: cannot match a truth path, counts as a false alarm

    return [(kind, [rel(p) for p in photos]) for kind, photos in as_groups(groups)]


@dataclass(kw_only=True)
class DedupeEval(EvalResult):
    """:func:`~photopoet.metrics.duplicates.duplicate_metrics` of the culling stage's groups, with the pairs
    by truth and predicted tier, and the photos read but not in the truth (and the reverse)."""

    primary_metric: str = "f1_duplicate"
    confusion: dict[str, dict[str, int]]
    photos: int
    truth_photos_not_read: list[str] = field(default_factory=list)
    photos_not_in_truth: list[str] = field(default_factory=list)
    seconds: float = 0.0
    result: Any = None  # the CullResult scored

    def to_json(self) -> dict[str, Any]:
        """What ``photopoet eval dedupe --json`` prints."""
        return {
            "metrics": self.metrics,
            "confusion": self.confusion,
            "photos": self.photos,
            "truth_photos_not_read": self.truth_photos_not_read,
            "photos_not_in_truth": self.photos_not_in_truth,
            "seconds": round(self.seconds, 2),
            **self.summary(),
        }


def score_groups(truth: dict[str, Any], predicted: Sequence[Any], seen: set[str]) -> DedupeEval:
    """Predicted groups (paths relative to the folder, :func:`relative_groups`) against a loaded truth file;
    `seen`: the photos read, relative the same way."""
    from photopoet.metrics.duplicates import duplicate_metrics, tier_confusion

    listed = set(truth.get("photos", [])) or {p for g in truth["groups"] for p in g["photos"]}
    return DedupeEval(
        metrics=duplicate_metrics(truth["groups"], predicted),
        confusion=tier_confusion(truth["groups"], predicted),
        photos=len(seen),
        truth_photos_not_read=sorted(listed - seen),
        photos_not_in_truth=sorted(seen - listed),
    )


def evaluate_dedupe(photos: Path | str, truth_path: Path | str, cfg: Config, *, progress: bool = True) -> DedupeEval:
    """Cull `photos` as `photopoet dedupe` does and score its duplicate groups against the truth file.
    Raises :class:`~photopoet.errors.TruthError` for a truth file that cannot be used (before any work) and
    :class:`~photopoet.errors.RunError` for a folder that cannot be read."""
    from photopoet.evaluation.dedupe_set import load_truth
    from photopoet.pipeline import dedupe_folder

    photos = Path(photos)
    truth = load_truth(truth_path)
    t0 = time.perf_counter()
    res = dedupe_folder(photos, cfg, progress=progress)
    seconds = time.perf_counter() - t0
    seen = {p for _, ps in relative_groups([("exact", [u.photo.path]) for u in res.photos], photos) for p in ps}
    out = score_groups(truth, relative_groups(res.groups, photos), seen)
    out.photos, out.seconds, out.result = len(res.photos), seconds, res
    return out
