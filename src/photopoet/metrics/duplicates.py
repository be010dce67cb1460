"""Pairwise precision, recall and F1 of duplicate groups, per tier.

Groups, not pairs, are compared, and pairs are counted with *union semantics*: at each level, groups are
merged wherever they share a photo (a crop of a crop is in its source's group) and every two photos of one
merged component form a pair. Counting uses the component sizes and their overlaps, so it costs O(photos
in groups): no n x n over the folder, not even the pairs inside a big group are listed.

Levels are cumulative, strongest tier first:

    L_exact     = components of the ``exact`` groups
    L_duplicate = components of the ``exact`` and ``duplicate`` groups (the same frame)
    L_similar   = components of every group (the same scene)

Rows reported (the same definitions for the truth and for the prediction):

    ``exact``          pairs of L_exact;
    ``duplicate``      pairs of L_duplicate that are not in L_exact: edited copies of one frame;
    ``similar``        pairs of L_similar that are not in L_duplicate: another frame of the scene (bursts);
    ``any_duplicate``  pairs of L_duplicate (exact + duplicate): for methods without tiers;
    ``any``            pairs of L_similar (every tier).

So a pair the truth calls ``duplicate`` but a method calls ``exact`` is a miss of the ``duplicate`` row and
a false alarm of the ``exact`` row, yet a hit of ``any_duplicate``. A photo may be in an ``exact`` group and
in a ``duplicate`` group (with its edited copies); that is how a truth file says "these three are the same
bytes or pixels, and these ten are the same frame".

Conventions for empty rows: precision is 1 when nothing is predicted (no false alarm), recall is 1 when the
truth holds no pair (nothing to miss); F1 is their harmonic mean (0 when both are 0).

The primary metric (sentence-transformers style, ``result["primary"]`` names it) is ``f1_duplicate``: the
edited copies, the hardest tier and the one the targets are set for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

TIERS = ("exact", "duplicate", "similar")
ROWS = ("exact", "duplicate", "similar", "any_duplicate", "any")
PRIMARY = "f1_duplicate"
_RANK = {k: i for i, k in enumerate(TIERS)}

Group = tuple[str, list[str]]


def as_groups(groups: Iterable[Any], *, default_kind: str | None = None) -> list[Group]:
    """``(kind, [paths])`` for each group given as a truth-file dict (``kind``, ``photos``), a
    ``photopoet dedupe`` dict or ``DuplicateGroup`` (``kind``, ``keep``, ``duplicates``), or a
    ``(kind, paths)`` tuple. A plain list of paths takes `default_kind`."""
    out: list[Group] = []
    for i, g in enumerate(groups):
        if isinstance(g, Mapping):
            kind = g.get("kind", default_kind)
            photos = list(g["photos"]) if "photos" in g else [g["keep"], *g.get("duplicates", [])]
        elif hasattr(g, "keep") and hasattr(g, "duplicates"):
            kind = getattr(g, "kind", default_kind)
            photos = [g.keep, *g.duplicates]
        elif isinstance(g, tuple) and len(g) == 2 and isinstance(g[0], str) and not isinstance(g[1], str):
            kind, photos = g[0], list(g[1])
        elif isinstance(g, list | set | frozenset | tuple):
            kind, photos = default_kind, list(g)
        else:
            raise TypeError(f"group {i}: cannot read a duplicate group from {type(g).__name__}")
        if kind not in _RANK:
            raise ValueError(f"group {i}: kind {kind!r} is not one of {', '.join(TIERS)}")
        out.append((kind, [str(p) for p in photos]))
    return out


def _components(groups: list[Group], level: int) -> dict[str, int]:
    """Photo -> component id, for the photos of the groups at `level` or stronger (union of shared photos)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for kind, photos in groups:
        if _RANK[kind] > level or not photos:
            continue
        first = find(photos[0])
        for p in photos[1:]:
            r = find(p)
            if r != first:
                parent[r] = first
    ids: dict[str, int] = {}
    return {p: ids.setdefault(find(p), len(ids)) for p in parent}


def components(groups: Iterable[Any], tier: str = "duplicate") -> dict[str, int]:
    """Photo -> component id at `tier` or a stronger one (union semantics), for the photos in such groups."""
    if tier not in _RANK:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    return _components(as_groups(groups), _RANK[tier])


def _pairs(counts: Iterable[int]) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def _joint(a: dict[str, int], b: dict[str, int]) -> int:
    """Pairs that are together in partition `a` and in partition `b`."""
    if len(b) < len(a):
        a, b = b, a
    return _pairs(Counter((a[p], b[p]) for p in a if p in b).values())


def _prf(tp: int, n_truth: int, n_pred: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class _Counts:
    """Pair counts of the cumulative levels of a truth and a prediction, and of their overlaps."""

    def __init__(self, truth: list[Group], predicted: list[Group]) -> None:
        self.t = [_components(truth, k) for k in range(3)]
        self.p = [_components(predicted, k) for k in range(3)]
        self.nt = [_pairs(Counter(c.values()).values()) for c in self.t]
        self.np = [_pairs(Counter(c.values()).values()) for c in self.p]
        self._i: dict[tuple[int, int], int] = {}

    def both(self, a: int, b: int) -> int:
        """Pairs in truth level `a` and predicted level `b`; level -1 is empty."""
        if a < 0 or b < 0:
            return 0
        if (a, b) not in self._i:
            self._i[(a, b)] = _joint(self.t[a], self.p[b])
        return self._i[(a, b)]

    def exclusive(self, a: int, b: int) -> int:
        """Pairs of truth tier `a` only (level a, not a-1) that are predicted tier `b` only."""
        # (T_a \ T_a-1) & (P_b \ P_b-1), with T_a-1 in T_a and P_b-1 in P_b: inclusion-exclusion
        return self.both(a, b) - self.both(a - 1, b) - self.both(a, b - 1) + self.both(a - 1, b - 1)


_ROW_LEVELS = {"exact": 0, "duplicate": 1, "similar": 2, "any_duplicate": 1, "any": 2}


def duplicate_metrics(truth: Iterable[Any], predicted: Iterable[Any]) -> dict[str, Any]:
    """Per-row precision, recall, F1 and pair counts of `predicted` groups against `truth` groups.

    Either side takes anything :func:`as_groups` reads. Keys, for each row in :data:`ROWS`:
    ``precision_<row>``, ``recall_<row>``, ``f1_<row>``, ``truth_pairs_<row>``, ``predicted_pairs_<row>``,
    ``correct_pairs_<row>`` and ``flagged_<row>`` (truth pairs of the row that the prediction groups at any
    tier: e.g. how many bursts a tierless method reports as duplicates); and ``primary``.
    """
    c = _Counts(as_groups(truth), as_groups(predicted))
    out: dict[str, Any] = {"primary": PRIMARY}
    for row, hi in _ROW_LEVELS.items():
        if row in TIERS:  # one tier only: this level minus the stronger one
            n_truth = c.nt[hi] - (c.nt[hi - 1] if hi else 0)
            n_pred = c.np[hi] - (c.np[hi - 1] if hi else 0)
            tp = c.exclusive(hi, hi)
            flagged = c.both(hi, 2) - c.both(hi - 1, 2)
        else:  # cumulative
            n_truth, n_pred, tp = c.nt[hi], c.np[hi], c.both(hi, hi)
            flagged = c.both(hi, 2)
        p, r, f = _prf(tp, n_truth, n_pred)
        out.update(
            {
                f"precision_{row}": p,
                f"recall_{row}": r,
                f"f1_{row}": f,
                f"truth_pairs_{row}": n_truth,
                f"predicted_pairs_{row}": n_pred,
                f"correct_pairs_{row}": tp,
                f"flagged_{row}": flagged,
            }
        )
    return out


def tier_confusion(truth: Iterable[Any], predicted: Iterable[Any]) -> dict[str, dict[str, int]]:
    """Pairs by truth tier (rows, plus ``none``: pairs only the prediction holds) and predicted tier
    (columns, plus ``none``: truth pairs the prediction missed). ``none``/``none`` is left out (it would be
    every other pair of the folder)."""
    c = _Counts(as_groups(truth), as_groups(predicted))
    out: dict[str, dict[str, int]] = {}
    for a, ta in enumerate(TIERS):
        row = {tb: c.exclusive(a, b) for b, tb in enumerate(TIERS)}
        row["none"] = (c.nt[a] - (c.nt[a - 1] if a else 0)) - sum(row.values())
        out[ta] = row
    out["none"] = {
        tb: (c.np[b] - (c.np[b - 1] if b else 0)) - sum(out[ta][tb] for ta in TIERS) for b, tb in enumerate(TIERS)
    }
    return out


def format_table(metrics: Mapping[str, Any], rows: Iterable[str] = ROWS, *, markdown: bool = False) -> str:
    """The rows of :func:`duplicate_metrics` as a text (or markdown) table."""
    head = ["tier", "truth pairs", "predicted", "correct", "precision", "recall", "F1"]
    lines = []
    for row in rows:
        lines.append(
            [
                row,
                str(metrics[f"truth_pairs_{row}"]),
                str(metrics[f"predicted_pairs_{row}"]),
                str(metrics[f"correct_pairs_{row}"]),
                f"{metrics[f'precision_{row}']:.3f}",
                f"{metrics[f'recall_{row}']:.3f}",
                f"{metrics[f'f1_{row}']:.3f}",
            ]
        )
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in lines])
