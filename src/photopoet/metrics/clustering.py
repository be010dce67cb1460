"""Clustering agreement with a reference grouping: ARI (primary), NMI, purity; silhouette of the features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def purity(truth: Sequence, pred: Sequence) -> float:
    """Share of photos whose predicted group's majority reference group is their own."""
    truth, pred = list(truth), list(pred)
    if not truth:
        return 0.0
    hits = 0
    for c in set(pred):
        members = [t for t, p in zip(truth, pred, strict=True) if p == c]
        hits += max(members.count(t) for t in set(members))
    return hits / len(truth)


def clustering_scores(truth: Sequence, pred: Sequence, distances: np.ndarray | None = None) -> dict[str, float]:
    """``ari`` (adjusted Rand index, primary), ``nmi``, ``purity``, ``silhouette`` (cosine, over ``distances``
    [N, N] when given and 2 <= groups < N; else NaN), ``n_groups`` and ``n_true``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    truth, pred = list(truth), list(pred)
    if len(truth) != len(pred):
        raise ValueError(f"truth has {len(truth)} items, prediction {len(pred)}")
    sil = float("nan")
    k = len(set(pred))
    if distances is not None and 2 <= k < len(pred):
        sil = float(silhouette_score(np.asarray(distances), pred, metric="precomputed"))
    return {
        "ari": float(adjusted_rand_score(truth, pred)),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "purity": purity(truth, pred),
        "silhouette": sil,
        "n_groups": float(k),
        "n_true": float(len(set(truth))),
    }


def cosine_distances(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    d = np.clip(1.0 - z @ z.T, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return d
