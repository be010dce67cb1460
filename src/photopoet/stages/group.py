"""Grouping keepers into posts: content, colour, capture time or file order, posters; the tree cut at a height.

0. A text-heavy poster (``alone_posters``: the scene's poster score at least ``alone_poster_score`` and at
   least ``alone_text_lines`` lines read) is a post of its own, as a club posts its announcements.
1. The timeline is cut at gaps in capture time longer than ``time_gap_minutes`` (a new moment). A short,
   unbroken stretch that fits in one post stays one post.
2. Within a stretch (or among photos without capture time) a distance is mixed from
   - content: cosine distance of the image features, centred on the mean of all photos being grouped, so
     the look every photo of the shoot shares does not drown the differences between moments;
   - colour (``color_weight``): cosine distance of centred colour histograms (same light, same place);
   - time (``time_weight``): ``|dt| / gap``, capped at 1, where both photos have a capture time;
   - labels (``label_weight``): distance of the label-score vectors, normalised as configured;
   - file order (``order_weight``), for pairs without a capture time: ``|rank_i - rank_j| / order_window`` in
     natural file-name order, capped at 1 (cameras and exports name files in shooting or posting order).
   Photos whose raw feature distances all stay under ``same_scene_distance`` are one scene. Otherwise the
   average-linkage tree is cut at the height ``cut_distance`` (``k_choice: distance``, the default: a pair's
   distance does not depend on the other photos, so k barely moves when a few leave), or at the k from 2 to
   ``max_k_fraction * n`` with the best silhouette (``k_choice: silhouette``; ties: the smaller k).
3. Lone photos are kept as posts of one, or merged into the nearest post that has room and that they are
   as close to as ``merge_slack`` times its own photos are to each other (``singletons: merge``).
4. A cluster larger than ``max_photos_per_post`` is split into coherent posts, never truncated: timed
   photos into balanced consecutive runs, others by splitting the cluster's own dendrogram in two until
   every part fits.
5. The cover is the most central photo (highest mean similarity to the rest) among the post's sharper half
   when quality scores are given; it opens the post's list. Everything is deterministic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from photopoet.config import GroupConfig
from photopoet.records import Post, Understood
from photopoet.stages.understand import Understanding

MAX_K_CANDIDATES = 80  # silhouette is evaluated at most this many k per stretch (evenly spread)


@dataclass
class Grouping:
    """Posts plus what the choice of k looked like, for reports and evaluation."""

    posts: list[Post]
    labels: np.ndarray  # [N] post index of each item (in the order of `items`)
    curves: list[dict] = field(default_factory=list)  # per clustered stretch: {"n", "k": [...], "silhouette": [...]}


def _order_key(u: Understood) -> tuple:
    t = u.photo.taken_time()
    return (0, t.isoformat(), u.photo.path) if t else (1, "", u.photo.path)


def _natural_key(path: str) -> tuple:
    """File-name order as a person reads it: IMG_9.jpg before IMG_10.jpg."""
    parts = re.split(r"(\d+)", path.replace("\\", "/").lower())
    return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in parts)


def _stands_alone(u: Understood, cfg: GroupConfig) -> bool:
    """A poster (announcement, flyer) the club would post on its own: ``alone_posters`` on, a poster score of at
    least ``alone_poster_score`` and at least ``alone_text_lines`` lines of text read (when a reader read it)."""
    sc = u.scene
    if not cfg.alone_posters or sc is None or sc.kind != "poster" or sc.poster_score < cfg.alone_poster_score:
        return False
    return len(sc.text) >= cfg.alone_text_lines


def _time_segments(idx: list[int], times: list[datetime | None], gap_minutes: float) -> list[list[int]]:
    """Split indices (already in time order) where capture time jumps by more than the gap."""
    segments: list[list[int]] = [[]]
    prev: datetime | None = None
    for i in idx:
        t = times[i]
        if prev is not None and t is not None and (t - prev).total_seconds() > gap_minutes * 60:
            segments.append([])
        segments[-1].append(i)
        prev = t if t is not None else prev
    return [s for s in segments if s]


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _cosine_distance(x: np.ndarray) -> np.ndarray:
    z = _l2(x)
    d = 1.0 - z @ z.T
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)


def normalize_label_scores(scores: np.ndarray, how: str) -> np.ndarray:
    """Label scores [N, L] scaled for a distance: ``zscore`` per label over the photos, ``l2`` per photo, or raw."""
    s = np.asarray(scores, dtype=np.float64)
    if how == "zscore" and len(s) > 1:
        s = (s - s.mean(axis=0)) / np.maximum(s.std(axis=0), 1e-6)
    elif how == "l2":
        s = _l2(s)
    return s


class _Distances:
    """The mixed distance over all items, computed once; stretches index into it."""

    def __init__(
        self,
        feats: np.ndarray,
        times: list[datetime | None],
        cfg: GroupConfig,
        colors: np.ndarray | None,
        label_scores: np.ndarray | None,
        order: list[int] | None = None,
    ) -> None:
        f = np.asarray(feats, dtype=np.float64)
        self.raw = _cosine_distance(f)
        parts = [(1.0, _cosine_distance(f - f.mean(axis=0)))]
        if colors is not None and cfg.color_weight > 0 and len(colors) == len(f):
            c = np.asarray(colors, dtype=np.float64)
            parts.append((cfg.color_weight, _cosine_distance(c - c.mean(axis=0))))
        if label_scores is not None and cfg.label_weight > 0 and label_scores.size and len(label_scores) == len(f):
            s = normalize_label_scores(label_scores, cfg.label_normalization)
            d = _cosine_distance(s) if cfg.label_normalization != "zscore" else _euclid_scaled(s)
            parts.append((cfg.label_weight, d))
        if cfg.time_weight > 0 and any(t is not None for t in times):
            parts.append((cfg.time_weight, _time_distance(times, cfg.time_gap_minutes)))
        if order is not None and cfg.order_weight > 0 and any(t is None for t in times):
            parts.append((cfg.order_weight, _order_distance(order, times, cfg.order_window)))
        total = sum(w for w, _ in parts)
        self.mixed = sum(w * d for w, d in parts) / total
        np.fill_diagonal(self.mixed, 0.0)


def _euclid_scaled(s: np.ndarray) -> np.ndarray:
    """Euclidean distance of z-scored rows, scaled into [0, 2] like a cosine distance."""
    sq = (s * s).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * s @ s.T, 0.0))
    scale = np.percentile(d[np.triu_indices(len(d), 1)], 95) if len(d) > 2 else (d.max() or 1.0)
    return np.clip(d / max(scale, 1e-9), 0.0, 2.0)


def _time_distance(times: list[datetime | None], gap_minutes: float) -> np.ndarray:
    n = len(times)
    secs = np.array([t.timestamp() if t is not None else np.nan for t in times], dtype=np.float64)
    d = np.abs(secs[:, None] - secs[None, :]) / (gap_minutes * 60.0)
    d = np.where(np.isnan(d), 0.0, np.minimum(d, 1.0))  # unknown time: no evidence either way
    d[np.arange(n), np.arange(n)] = 0.0
    return d


def _order_distance(order: list[int], times: list[datetime | None], window: int) -> np.ndarray:
    """``|rank_i - rank_j| / window`` in file-name order, capped at 1, for pairs where a capture time is
    missing (cameras and exports name files in the order they were shot or posted); 0 where both have one
    (time speaks for them)."""
    rank = np.empty(len(order), dtype=np.float64)
    rank[order] = np.arange(len(order))
    d = np.minimum(np.abs(rank[:, None] - rank[None, :]) / max(window, 1), 1.0)
    timed = np.array([t is not None for t in times])
    d[np.ix_(timed, timed)] = 0.0
    return d


def _linkage(d: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    return linkage(squareform(d, checks=False), method="average")


def _cut(z: np.ndarray, k: int) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(z, t=k, criterion="maxclust") - 1


def _k_candidates(n: int, frac: float) -> list[int]:
    hi = min(n - 1, max(2, int(n * frac)))
    ks = list(range(2, hi + 1))
    if len(ks) > MAX_K_CANDIDATES:
        ks = sorted({int(round(x)) for x in np.linspace(2, hi, MAX_K_CANDIDATES)})
    return ks


def choose_k(d: np.ndarray, cfg: GroupConfig) -> tuple[np.ndarray, dict]:
    """Cluster labels [n] for a precomputed distance matrix and the silhouette curve. ``k_choice: distance``
    cuts the average-linkage tree at the height ``cut_distance`` (a pair's distance does not depend on which
    other photos are there, so k moves little when a few photos leave); ``silhouette`` takes the k with the
    best silhouette."""
    from sklearn.metrics import silhouette_score

    n = len(d)
    z = _linkage(d)
    if cfg.k_choice == "distance":
        from scipy.cluster.hierarchy import fcluster

        lab = fcluster(z, t=cfg.cut_distance, criterion="distance") - 1
        m = len(set(lab.tolist()))
        s = float(silhouette_score(d, lab, metric="precomputed")) if 2 <= m < n else float("nan")
        return lab, {"n": n, "k": [m], "silhouette": [s], "chosen": m}
    ks, sils, best = [], [], (-2.0, 1, np.zeros(n, dtype=int))
    for k in _k_candidates(n, cfg.max_k_fraction):
        lab = _cut(z, k)
        m = len(set(lab.tolist()))
        if m < 2 or m >= n:
            continue
        s = float(silhouette_score(d, lab, metric="precomputed"))
        ks.append(m)
        sils.append(s)
        if s > best[0] + 1e-12:
            best = (s, m, lab)
    return best[2], {"n": n, "k": ks, "silhouette": sils, "chosen": best[1]}


def _split_oversized(
    members: list[int], cap: int, d: np.ndarray, raw: np.ndarray, times: list[datetime | None], same: float
) -> list[list[int]]:
    """Parts of at most ``cap`` photos; members arrive in time-then-path order."""
    if len(members) <= cap:
        return [members]
    n_parts = -(-len(members) // cap)
    size = -(-len(members) // n_parts)  # balanced consecutive runs: 11 photos -> 6 + 5, not 10 + 1
    runs = [members[k : k + size] for k in range(0, len(members), size)]
    if all(times[i] is not None for i in members) or float(raw[np.ix_(members, members)].max()) <= same:
        return runs  # a timed sequence (keep the story in order) or near-identical frames
    lab = _cut(_linkage(d[np.ix_(members, members)]), 2)
    parts = [[m for m, c in zip(members, lab.tolist(), strict=True) if c == j] for j in sorted(set(lab.tolist()))]
    if len(parts) < 2 or min(len(p) for p in parts) < max(2, len(members) // (2 * n_parts)):
        return runs  # a lopsided cut (an outlier peeled off): balanced runs keep the posts a sensible size
    return [q for p in parts for q in _split_oversized(p, cap, d, raw, times, same)]


def _merge_singletons(clusters: list[list[int]], d: np.ndarray, cap: int, slack: float = 1.0) -> list[list[int]]:
    big = [c for c in clusters if len(c) > 1]
    lone = [c[0] for c in clusters if len(c) == 1]
    if not big:
        return clusters
    keep_alone: list[list[int]] = []
    for i in lone:
        best, best_d = None, np.inf
        for c in big:
            if len(c) >= cap:
                continue
            md = float(d[i, c].mean())
            if md < best_d:
                best, best_d = c, md
        if best is not None:
            within = d[np.ix_(best, best)]
            own = float(within.sum() / (len(best) * (len(best) - 1)))
            if best_d <= own * slack:
                best.append(i)
                continue
        keep_alone.append([i])
    return big + keep_alone


def _cover(members: list[int], feats: np.ndarray, quality: np.ndarray | None) -> int:
    """The most central photo (highest mean cosine similarity to the others) among the sharper half."""
    if len(members) == 1:
        return members[0]
    sub = _l2(feats[members])
    sim = sub @ sub.T
    centrality = (sim.sum(axis=1) - np.diag(sim)) / (len(members) - 1)
    if quality is not None:
        q = np.asarray(quality, dtype=np.float64)[members]
        centrality = np.where(q >= np.median(q) - 1e-9, centrality, -np.inf)
    return members[int(np.argmax(centrality))]


def _post_id(n: int, shas: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(shas)).encode()).hexdigest()[:6]
    return f"{n:02d}-{digest}"


def group_photos(
    items: Sequence[Understood],
    feats: np.ndarray,
    cfg: GroupConfig,
    *,
    colors: np.ndarray | None = None,
    label_scores: np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> Grouping:
    """Posts over ``items`` (keepers only). ``feats`` [N, D] image features; optional ``colors`` [N, H]
    colour histograms, ``label_scores`` [N, L] and ``quality`` [N] (higher is better), rows following ``items``."""
    if not items:
        return Grouping(posts=[], labels=np.zeros(0, dtype=int))
    feats = np.asarray(feats, dtype=np.float32)
    times = [u.photo.taken_time() for u in items]
    order = sorted(range(len(items)), key=lambda i: _order_key(items[i]))
    rank = {i: r for r, i in enumerate(order)}
    by_name = sorted(range(len(items)), key=lambda i: _natural_key(items[i].photo.path))
    dist = _Distances(feats, times, cfg, colors, label_scores, by_name)
    cap = cfg.max_photos_per_post
    clusters: list[list[int]] = []
    curves: list[dict] = []
    alone = [i for i in order if _stands_alone(items[i], cfg)]
    clusters.extend([i] for i in alone)
    rest = [i for i in order if i not in set(alone)]
    for seg in _time_segments(rest, times, cfg.time_gap_minutes):
        raw = dist.raw[np.ix_(seg, seg)]
        if len(seg) == 1 or (len(seg) <= cap and all(times[i] for i in seg)):
            clusters.append(seg)  # one short, unbroken stretch of shooting reads as one moment
        elif float(raw.max()) <= cfg.same_scene_distance or len(seg) < 3:
            clusters.append(seg)  # near-identical frames (or too few photos to weigh one split against another)
        else:
            lab, curve = choose_k(dist.mixed[np.ix_(seg, seg)], cfg)
            curves.append(curve)
            found: dict[int, list[int]] = {}
            for i, c in zip(seg, lab.tolist(), strict=True):
                found.setdefault(c, []).append(i)
            segment_clusters = list(found.values())
            if cfg.singletons == "merge":
                segment_clusters = _merge_singletons(segment_clusters, dist.mixed, cap, cfg.merge_slack)
            clusters.extend(segment_clusters)
    chunks: list[list[int]] = []
    for c in clusters:
        members = sorted(c, key=rank.__getitem__)
        chunks.extend(_split_oversized(members, cap, dist.mixed, dist.raw, times, cfg.same_scene_distance))
    chunks = [sorted(c, key=rank.__getitem__) for c in chunks]
    chunks.sort(key=lambda c: rank[c[0]])
    posts: list[Post] = []
    labels = np.zeros(len(items), dtype=int)
    for n, members in enumerate(chunks, start=1):
        cover = _cover(members, feats, quality)
        members = [cover] + [i for i in members if i != cover]  # the cover opens the carousel
        labels[members] = n - 1
        paths = [items[i].photo.path for i in members]
        shas = [items[i].photo.sha256 for i in members]
        posts.append(Post(id=_post_id(n, shas), photos=paths, cover=paths[0]))
    return Grouping(posts=posts, labels=labels, curves=curves)


def group(
    items: Sequence[Understood],
    feats: np.ndarray,
    cfg: GroupConfig,
    *,
    colors: np.ndarray | None = None,
    label_scores: np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> list[Post]:
    """The posts of :func:`group_photos`."""
    return group_photos(items, feats, cfg, colors=colors, label_scores=label_scores, quality=quality).posts


def group_understood(und: Understanding, cfg: GroupConfig, *, rows: Sequence[int] | None = None) -> Grouping:
    """The group stage: :func:`group_photos` over ``und.photos[rows]`` (default: the keepers) with everything
    understand found. Takes the whole understanding (features, colours, label scores, quality), not only the
    photo records; reads no cache and shows no progress (it is quick)."""
    if rows is None:
        rows = [i for i, u in enumerate(und.photos) if u.verdict == "keep"]
    rows = list(rows)

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or len(a) != len(und.photos) else a[rows]

    return group_photos(
        [und.photos[i] for i in rows],
        und.features[rows] if rows else np.zeros((0, 1), np.float32),
        cfg,
        colors=pick(und.colors),
        label_scores=pick(und.label_scores),
        quality=pick(und.quality),
    )
