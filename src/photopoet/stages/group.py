"""Grouping keepers into posts: content similarity, capture-time gaps, a size cap, a central cover.

A first, simple grouping: the timeline is split at long gaps in capture time; a stretch of shooting
that fits in one post stays one post, a longer one (or photos without capture time) is clustered by
content with average-linkage agglomerative clustering on cosine distance, cut at a configured distance.
Oversized clusters are split into consecutive runs (by time, then path), never truncated, so every keeper
lands in a post.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from photopoet.config import GroupConfig
from photopoet.records import Post, Understood


def _time(u: Understood) -> datetime | None:
    if not u.photo.taken_at:
        return None
    try:
        return datetime.fromisoformat(u.photo.taken_at)
    except ValueError:
        return None


def _order_key(u: Understood) -> tuple:
    t = _time(u)
    return (0, t.isoformat(), u.photo.path) if t else (1, "", u.photo.path)


def _time_segments(idx: list[int], items: Sequence[Understood], gap_minutes: float) -> list[list[int]]:
    """Split indices (already in time order) where capture time jumps by more than the gap."""
    segments: list[list[int]] = [[]]
    prev: datetime | None = None
    for i in idx:
        t = _time(items[i])
        if prev is not None and t is not None and (t - prev).total_seconds() > gap_minutes * 60:
            segments.append([])
        segments[-1].append(i)
        prev = t if t is not None else prev
    return [s for s in segments if s]


def _cluster(idx: list[int], feats: np.ndarray, threshold: float) -> list[list[int]]:
    if len(idx) < 2:
        return [idx]
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold)
    lab = model.fit_predict(feats[idx])
    groups: dict[int, list[int]] = {}
    for i, c in zip(idx, lab, strict=True):
        groups.setdefault(int(c), []).append(i)
    return list(groups.values())


def _cover(members: list[int], feats: np.ndarray) -> int:
    """The most central photo: highest mean cosine similarity to the others (ties: first in order)."""
    if len(members) == 1:
        return members[0]
    sub = feats[members]
    sim = sub @ sub.T
    centrality = (sim.sum(axis=1) - np.diag(sim)) / (len(members) - 1)
    return members[int(np.argmax(centrality))]


def _post_id(n: int, shas: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(shas)).encode()).hexdigest()[:6]
    return f"{n:02d}-{digest}"


def group(items: Sequence[Understood], feats: np.ndarray, cfg: GroupConfig) -> list[Post]:
    """Posts over `items` (keepers only); `feats` rows are L2-normalised and follow `items`."""
    if not items:
        return []
    order = sorted(range(len(items)), key=lambda i: _order_key(items[i]))
    rank = {i: r for r, i in enumerate(order)}
    clusters: list[list[int]] = []
    for seg in _time_segments(order, items, cfg.time_gap_minutes):
        if len(seg) <= cfg.max_photos_per_post and all(_time(items[i]) for i in seg):
            clusters.append(seg)  # one short, unbroken stretch of shooting reads as one moment
        else:
            clusters.extend(_cluster(seg, feats, cfg.distance_threshold))
    chunks: list[list[int]] = []
    cap = cfg.max_photos_per_post
    for c in clusters:
        c = sorted(c, key=rank.__getitem__)
        n_parts = -(-len(c) // cap)
        size = -(-len(c) // n_parts)  # balanced parts: 11 photos -> 6 + 5, not 10 + 1
        chunks.extend(c[k : k + size] for k in range(0, len(c), size))
    chunks.sort(key=lambda c: rank[c[0]])
    posts = []
    for n, members in enumerate(chunks, start=1):
        cover = _cover(members, feats)
        members = [cover] + [i for i in members if i != cover]  # the cover opens the carousel
        paths = [items[i].photo.path for i in members]
        shas = [items[i].photo.sha256 for i in members]
        posts.append(Post(id=_post_id(n, shas), photos=paths, cover=paths[0]))
    return posts
