"""Culling: exact and near duplicates, quality checks, and the best shot of each group.

Nothing here deletes, moves or edits a file: the stage only returns verdicts.

Tiers (strongest first)
    ``exact``      the same bytes (content hash), or the same pixels in another encoding (pixel hash of the
                   fully decoded, upright image; computed only for candidate pairs of the same size whose
                   perceptual hashes are near-identical).
    ``duplicate``  the same frame, edited: crop, resize, recompress, exposure, slight rotation, border,
                   black and white. The two working copies are aligned onto each other (ORB features, a
                   similarity transform fitted with RANSAC) and compared tile by tile: at least
                   ``duplicate_alignment`` of the textured tiles agree. Where the images hold too little
                   texture to align, perceptual hashes within ``duplicate_hash_distance`` bits decide.
    ``similar``    the same scene, another frame (a burst, a retake): partial agreement after alignment
                   (``similar_alignment``: the camera stayed, something moved) or a feature cosine of at
                   least ``similar_cosine``; and, when both photos carry a capture time, taken at most
                   ``similar_max_gap_seconds`` apart.

Only pairs whose feature cosine reaches ``candidate_cosine`` are compared at all. Candidates come from a kNN
index over the image features (FAISS: exact inner product for small sets, an approximate IVF index over
PCA-reduced vectors above :data:`APPROX_ABOVE` photos, or with ``cull.index: partitioned`` k-means partitions
searched exactly, SemDeDup-style, for millions), never from a dense n x n matrix; photos with the same
bytes, or the same size and perceptual hash, are candidates too.

Best shot: a weighted score of detail (sharpness relative to contrast), exposure, open eyes and resolution
(``cull.weights``); photos failing a quality check rank last; ties go to the larger file, then the first
in walk order.

Groups are made tier by tier, so a group never mixes tiers: photos with the same content form ``exact``
groups (single linkage); their best shots are joined by ``duplicate`` (or stronger) links into ``duplicate``
groups (single linkage: a crop of a crop is still the same frame); those best shots are joined by
``similar`` (or stronger) links into ``similar`` groups, with complete linkage (every pair of the merged
groups must be similar), so a long event does not chain into one group. A pair's tier is the strongest
that holds. A photo is a non-kept member of at most one group; the kept photo of a group may itself be a
non-kept member of a group of a weaker tier. :meth:`CullResult.components` gives the photos that belong
together at a tier or stronger.

Per-photo signals (perceptual hash, quality scores, faces) are measured by :mod:`photopoet.stages.measure` in
the same pass as the look the grouping uses; they and the per-pair ones here (pixel hashes, alignment) are
cached by content hash under kinds that carry a version, so a rerun recomputes nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from photopoet.config import CullConfig
from photopoet.core.cache import Cache
from photopoet.core.images import on_white, open_upright, opencv
from photopoet.records import Excluded, Understood
from photopoet.stages.measure import gray_at, measure

PIXELS_KIND = "cull-pixels:v1"  # per photo: hash of the fully decoded pixels (candidates only)
ALIGN_KIND = "cull-align:v2"  # per pair "sha_a:sha_b" (sorted): alignment agreement
SCALED_SIDE = 64  # px: a pair of the same picture at two sizes is compared at the smaller's size, at most this
SCALED_MEAN_DIFF = 10.0  # grey levels (0-255): mean absolute difference of a downscaled copy and its original
SCALED_BLOCK_DIFF = 24.0  # ... and of every 4x4 block (a moved object or an edit shows up as one bad block)
SCALED_BUCKET_MAX = 64  # photos sharing one hash band and aspect cell beyond this are not paired through it
SCALED_ASPECT = 0.02  # aspect ratios this close (relative) can be the same picture at another size
PIXEL_HASH_BITS = 4  # perceptual hashes this close (and the same size) get a full pixel-hash comparison
APPROX_ABOVE = 20_000  # photos: above this the kNN index is approximate (PCA + IVF)
PCA_TRAIN = 4_000  # rows the PCA of the approximate index is fitted on
NPROBE = 8  # inverted lists searched per query (of about 4 sqrt(n)); see benchmarks/dedupe_scale.py
RECHECK_CHUNK = 8_192  # candidate pairs whose full-vector cosine is computed at once
TIERS = ("exact", "duplicate", "similar")
_RANK = {k: i for i, k in enumerate(TIERS)}


@dataclass(frozen=True)
class DuplicateGroup:
    keep: str  # path of the best shot
    duplicates: list[str]  # the other members' paths (not including keep)
    kind: str  # "exact" | "duplicate" | "similar"
    scores: dict[str, dict[str, float]]  # per member path (keep included)
    reason: str  # why `keep` was picked, readable

    def to_json(self) -> dict[str, Any]:
        return {
            "keep": self.keep,
            "duplicates": list(self.duplicates),
            "kind": self.kind,
            "scores": {p: dict(s) for p, s in self.scores.items()},
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LowQuality:
    path: str
    reason: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "score": self.score}


@dataclass(frozen=True)
class CullResult:
    groups: list[DuplicateGroup]  # only groups of 2+ photos
    low_quality: list[LowQuality]  # every photo that fails a quality check (also when in a group)
    photos: list[Understood]  # the input records with verdict / reason / duplicate_of filled in
    culled: frozenset[str] = field(default_factory=frozenset)  # paths left out of posts (config `remove`)
    unreadable: list[Excluded] = field(
        default_factory=list
    )  # pipeline.dedupe_folder: files it could not read, with why
    warnings: list[Any] = field(default_factory=list)  # pipeline.dedupe_folder: ingest's FileWarnings (path, message)

    def kept(self) -> list[int]:
        """Indices into `photos` of the photos that stay in posts."""
        return [i for i, u in enumerate(self.photos) if u.photo.path not in self.culled]

    def components(self, kind: str) -> list[set[str]]:
        """Sets of paths that belong together at tier `kind` or a stronger one (2+ photos each)."""
        if kind not in _RANK:
            raise ValueError(f"unknown tier {kind!r}; expected one of {', '.join(TIERS)}")
        uf = _UnionFind()
        for g in self.groups:
            if _RANK[g.kind] <= _RANK[kind]:
                for d in g.duplicates:
                    uf.union(g.keep, d)
        return [s for s in uf.sets() if len(s) > 1]

    def to_json(self) -> dict[str, Any]:
        """The document `photopoet dedupe --json` prints."""
        return {
            "groups": [g.to_json() for g in self.groups],
            "low_quality": [q.to_json() for q in self.low_quality],
            "unreadable": [{"path": e.path, "reason": e.reason} for e in self.unreadable],
            "warnings": [{"path": w.path, "message": w.message} for w in self.warnings],
        }


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def sets(self) -> list[set[Any]]:
        out: dict[Any, set[Any]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), set()).add(x)
        return list(out.values())


# -- per-photo signals (measured in stages/measure.py) --------------------------------------------------------


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def pixel_hash(path: str | Path) -> str | None:
    """SHA-256 of the fully decoded, upright RGB pixels (alpha composited on white); None if unreadable."""
    from photopoet.stages.ingest import _own_pixel_guard

    try:
        with _own_pixel_guard():
            up = on_white(open_upright(path))
        h = hashlib.sha256(f"{up.width}x{up.height}:".encode())
        h.update(up.tobytes())
        return h.hexdigest()
    except Exception:  # unreadable now (changed or removed since ingest): it simply is not an exact match
        return None


# -- alignment check for "same frame, edited" ---------------------------------------------------------------


ORB_MIN_SIDE = 32  # px: pictures narrower than this are not aligned (ORB's 31 px patches do not fit)


def _orb(gray: np.ndarray) -> tuple[Any, Any]:
    cv2 = opencv()
    orb = cv2.ORB_create(nfeatures=1500, fastThreshold=10)
    return orb.detectAndCompute(gray, None)


def alignment_score(a: Image.Image, b: Image.Image) -> float | None:
    """How well `b` maps onto `a` as the same frame: 0 (not at all) .. 1 (every textured part agrees);
    None when the images hold too little texture to judge (then the perceptual hash decides).

    ORB keypoints are matched (ratio test) and a similarity transform (rotation, scale, shift: what crops,
    resizes, borders and slight rotations do) is fitted with RANSAC. `b` is warped into `a`'s frame and both
    are cut into an 8 x 8 grid; the score is the share of textured tiles inside the overlap whose normalised
    correlation is at least 0.8. Correlation ignores brightness, contrast and colour, so exposure changes and
    black and white keep a high score; another frame of the same scene (people moved, the camera moved)
    leaves many tiles that disagree.
    """
    cv2 = opencv()
    if min(*a.size, *b.size) < ORB_MIN_SIDE:  # ORB's pyramid cannot shrink a sliver of a picture: too small to judge
        return None
    ga, gb = gray_at(a), gray_at(b)
    ka, da = _orb(ga)
    kb, db = _orb(gb)
    if da is None or db is None or len(ka) < 10 or len(kb) < 10:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = []
    for pair in matcher.knnMatch(db, da, k=2):
        if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance:
            good.append(pair[0])
    if len(good) < 10:
        return 0.0
    src = np.float32([kb[m.queryIdx].pt for m in good])
    dst = np.float32([ka[m.trainIdx].pt for m in good])
    M, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if M is None or inliers is None or int(inliers.sum()) < 10:
        return 0.0
    scale = math.hypot(M[0, 0], M[1, 0])
    if not 0.2 < scale < 5:
        return 0.0
    h, w = ga.shape
    warped = cv2.warpAffine(gb, M, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(gb.shape, 255, np.uint8), M, (w, h), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    if mask.mean() < 0.2:
        return 0.0
    fa = cv2.GaussianBlur(ga.astype(np.float32), (0, 0), 1.5)
    fb = cv2.GaussianBlur(warped.astype(np.float32), (0, 0), 1.5)
    agree = textured = 0
    for ys in np.array_split(np.arange(h), 8):
        for xs in np.array_split(np.arange(w), 8):
            m = mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
            if m.mean() < 0.9:
                continue
            ta = fa[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1][m]
            tb = fb[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1][m]
            sa, sb = ta.std(), tb.std()
            if sa < 4 or sb < 4:  # flat (sky, wall, border): says nothing either way
                continue
            textured += 1
            ncc = float(((ta - ta.mean()) * (tb - tb.mean())).mean() / (sa * sb))
            agree += ncc >= 0.8
    if textured < 4:
        return None if mask.mean() > 0.5 else 0.0
    return agree / textured


# -- candidate pairs ----------------------------------------------------------------------------------------


def knn_pairs(
    features: np.ndarray, k: int, min_cosine: float, *, approximate: bool | None = None
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` with ``i < j`` among each row's `k` nearest neighbours at cosine >= `min_cosine`.

    `features` rows are L2-normalised. Exact inner-product search (``faiss.IndexFlatIP``) up to
    :data:`APPROX_ABOVE` rows, else (or with ``approximate=True``) an inverted-file index (``IndexIVFFlat``,
    about 4 sqrt(n) lists, :data:`NPROBE` probed) over vectors reduced to 128 dimensions by PCA and renormalised; the
    cosine reported is always the exact one from the full vectors.
    """
    import faiss

    n = len(features)
    if n < 2:
        return []
    x = np.ascontiguousarray(features, dtype=np.float32)
    kk = min(k + 1, n)
    if approximate is None:
        approximate = n > APPROX_ABOVE
    if not approximate:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sims, nbr = index.search(x, kk)
        floor = min_cosine  # inner products of normalised rows: exact cosines
    else:
        y = x
        if x.shape[1] > 128:
            y = _pca_reduce(x, 128)
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(y.shape[1])
        index = faiss.IndexIVFFlat(quantizer, y.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # coarse lists only steer the probe: 10 k-means rounds on 39 points a list suffice
        index.train(y[np.random.default_rng(1).choice(n, min(n, 39 * nlist), replace=False)])
        index.add(y)
        index.nprobe = min(nlist, NPROBE)
        sims, nbr = index.search(y, kk)
        floor = min_cosine - 0.15  # reduced-space cosines are approximate: recheck survivors on full vectors
    rows = np.repeat(np.arange(n, dtype=np.int64), nbr.shape[1])
    cols = nbr.reshape(-1).astype(np.int64)
    ok = (cols >= 0) & (cols != rows) & (sims.reshape(-1) >= floor)
    lo, hi = np.minimum(rows[ok], cols[ok]), np.maximum(rows[ok], cols[ok])
    keys, first = np.unique(lo * n + hi, return_index=True)
    lo, hi = keys // n, keys % n
    if approximate:
        cos = np.empty(len(keys), np.float32)
        for s in range(0, len(keys), RECHECK_CHUNK):  # bounded memory: never gathers every pair at once
            e = s + RECHECK_CHUNK
            cos[s:e] = np.einsum("ij,ij->i", x[lo[s:e]], x[hi[s:e]])
    else:
        cos = sims.reshape(-1)[ok][first]
    keep = cos >= min_cosine
    return [(int(i), int(j), float(c)) for i, j, c in zip(lo[keep], hi[keep], cos[keep], strict=True)]


def partitioned_pairs(
    features: np.ndarray,
    k: int,
    min_cosine: float,
    *,
    partition_size: int = 2000,
    copies: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> list[tuple[int, int, float]]:
    """Like :func:`knn_pairs`, for millions of rows: SemDeDup-style partitions searched exactly.

    The rows are split by spherical k-means (``faiss.Kmeans``, about ``n / partition_size`` centroids, trained
    on a sample of 64 rows per centroid, over the PCA-128 vectors when the features are wider) and each row
    joins its `copies` nearest partitions, so a pair near a border still meets in one of them. Inside each
    partition every row's `k` nearest neighbours are found exactly (``IndexFlatIP`` on the full vectors), so
    memory and time per partition are bounded by the partition, not by n, and partitions are independent
    (they can run anywhere). Cosines are exact. With one partition this is :func:`knn_pairs` exact.
    """
    import faiss

    n = len(features)
    if n < 2:
        return []
    x = np.ascontiguousarray(features, dtype=np.float32)
    n_parts = max(1, min(n // 39, round(n / partition_size)))  # faiss wants >= 39 training rows per centroid
    if n_parts == 1:
        return knn_pairs(x, k, min_cosine, approximate=False)
    y = _pca_reduce(x, 128) if x.shape[1] > 128 else x
    km = faiss.Kmeans(y.shape[1], n_parts, niter=10, spherical=True, seed=seed, verbose=False)
    rng = np.random.default_rng(seed)
    km.train(y[rng.choice(n, min(n, 64 * n_parts), replace=False)])
    _, assign = km.index.search(y, min(copies, n_parts))
    del y
    order = np.argsort(assign.reshape(-1), kind="stable")
    rows_of = np.repeat(np.arange(n, dtype=np.int64), assign.shape[1])[order]
    parts = np.split(rows_of, np.flatnonzero(np.diff(assign.reshape(-1)[order])) + 1)
    found: dict[int, float] = {}
    for members in tqdm(parts, desc="partitions", unit="part", disable=not progress):
        if len(members) < 2:
            continue
        for i, j, c in knn_pairs(x[members], k, min_cosine, approximate=False):
            a, b = int(members[i]), int(members[j])
            found[min(a, b) * n + max(a, b)] = c
    return [(key // n, key % n, c) for key, c in sorted(found.items())]


def candidate_pairs(features: np.ndarray, cfg: CullConfig, *, progress: bool = False) -> list[tuple[int, int, float]]:
    """The cull stage's kNN candidates with the index ``cfg.index`` picks (``auto``: exact up to
    :data:`APPROX_ABOVE` rows, IVF above)."""
    if cfg.index == "partitioned":
        return partitioned_pairs(
            features,
            cfg.neighbors,
            cfg.candidate_cosine,
            partition_size=cfg.partition_size,
            copies=cfg.partition_copies,
            progress=progress,
        )
    approximate = None if cfg.index == "auto" else cfg.index == "ivf"
    return knn_pairs(features, cfg.neighbors, cfg.candidate_cosine, approximate=approximate)


def _pca_reduce(x: np.ndarray, dim: int) -> np.ndarray:
    """Rows of `x` projected on their top `dim` principal axes (fitted on :data:`PCA_TRAIN` sampled rows, by an
    eigendecomposition of their covariance in float64: faster here than faiss's PCAMatrix), renormalised."""
    import faiss

    sample = x[np.random.default_rng(0).choice(len(x), min(len(x), PCA_TRAIN), replace=False)].astype(np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    _, vecs = np.linalg.eigh(centred.T @ centred)
    w = np.ascontiguousarray(vecs[:, ::-1][:, :dim], dtype=np.float32)
    y = np.ascontiguousarray(x @ w - mean.astype(np.float32) @ w, dtype=np.float32)
    faiss.normalize_L2(y)
    return y


# -- quality verdicts ---------------------------------------------------------------------------------------


def quality_problem(sig: dict[str, Any], megapixels: float, cfg: CullConfig) -> tuple[str, float] | None:
    """The first quality problem of a photo as ``(readable reason, score)``, or None when it passes."""
    if megapixels < cfg.min_megapixels:
        return f"low resolution: {megapixels:.2f} MP < {cfg.min_megapixels:g} MP", round(megapixels, 3)
    if sig["p99"] < cfg.dark_p99:
        return (
            f"too dark: brightest 1% of pixels at luminance {sig['p99']:.0f} < {cfg.dark_p99:g} "
            f"(mean {sig['mean']:.0f})",
            float(sig["p99"]),
        )
    if sig["bright"] > cfg.max_clipped_bright and sig["mean"] > cfg.bright_mean:
        return (
            f"blown out: {sig['bright']:.0%} of pixels clipped white, mean luminance {sig['mean']:.0f} "
            f"(limits {cfg.max_clipped_bright:.0%}, {cfg.bright_mean:g})",
            float(sig["bright"]),
        )
    if sig["sharpness"] < cfg.min_sharpness:
        return f"blurry: sharpness {sig['sharpness']:.1f} < {cfg.min_sharpness:g}", float(sig["sharpness"])
    if cfg.closed_eyes and sig.get("eyes_closed", 0) > 0:
        n = int(sig["eyes_closed"])
        return f"eyes may be closed: {n} of {int(sig['faces'])} face{'s' if sig['faces'] > 1 else ''}", float(n)
    return None


# -- best shot ----------------------------------------------------------------------------------------------


def exposure_score(sig: dict[str, Any]) -> float:
    """1 for a well spread histogram; less for clipped shadows/highlights and a mean far from mid-grey."""
    clipped = min(1.0, sig["dark"] + sig["bright"])
    off = abs(sig["mean"] - 118.0) / 118.0
    return round(max(0.0, 1.0 - clipped - 0.5 * off * off), 4)


def _member_scores(sig: dict[str, Any], megapixels: float) -> dict[str, float]:
    faces = int(sig.get("faces", 0))
    eyes = 1.0 if faces == 0 else 1.0 - int(sig.get("eyes_closed", 0)) / faces
    return {
        "sharpness": float(sig["sharpness"]),
        "detail": float(sig["detail"]),
        "exposure": exposure_score(sig),
        "faces": float(faces),
        "eyes_open": round(eyes, 4),
        "megapixels": round(megapixels, 3),
    }


def _pick_best(
    members: list[int],
    photos: Sequence[Understood],
    scores: dict[int, dict[str, float]],
    low: set[int],
    cfg: CullConfig,
) -> tuple[int, str]:
    """The best member and a readable reason. `scores` get their ``total`` filled in."""
    w = cfg.weights
    max_detail = max(scores[i]["detail"] for i in members) or 1.0
    max_mp = max(scores[i]["megapixels"] for i in members) or 1.0
    for i in members:
        s = scores[i]
        total = (
            w.sharpness * s["detail"] / max_detail
            + w.exposure * s["exposure"]
            + w.eyes * s["eyes_open"]
            + w.resolution * s["megapixels"] / max_mp
        ) / (w.sharpness + w.exposure + w.eyes + w.resolution)
        s["total"] = round(total, 4)

    def key(i: int) -> tuple:  # ties: the larger file, then the first in walk order
        return (i not in low, scores[i]["total"], photos[i].photo.size_bytes, -i)

    order = sorted(members, key=key, reverse=True)
    best, runner = order[0], order[1]
    b, r = scores[best], scores[runner]
    why: list[str] = []
    if runner in low and best not in low:
        why.append("passes the quality checks")
    if b["detail"] > 1.1 * r["detail"]:
        # the numbers compared: detail (sharpness for the contrast), not the raw sharpness, which can be lower
        why.append(f"sharpest (detail {b['detail']:.2f} vs {r['detail']:.2f})")
    if b["exposure"] > r["exposure"] + 0.02:
        why.append(f"better exposed ({b['exposure']:.2f} vs {r['exposure']:.2f})")
    if b["eyes_open"] > r["eyes_open"]:
        why.append("eyes open")
    if b["megapixels"] > 1.05 * r["megapixels"]:
        why.append(f"higher resolution ({b['megapixels']:.1f} vs {r['megapixels']:.1f} MP)")
    if not why:
        if b["total"] > r["total"]:
            why.append(f"best overall score ({b['total']:.3f} vs {r['total']:.3f})")
        elif photos[best].photo.size_bytes > photos[runner].photo.size_bytes:
            why.append("scores tie; larger file")
        else:
            why.append("scores tie; first in the folder")
    return best, ", ".join(why)


# -- the stage ----------------------------------------------------------------------------------------------


def _signals(photos: Sequence[Understood], cache: Cache, cfg: CullConfig, progress: bool) -> dict[str, dict]:
    """Per-sha cull signals (:func:`photopoet.stages.measure.quality_signals`), from the cache or measured."""
    _, signals = measure([u.photo.sha256 for u in photos], cache, min_face_px=cfg.min_face_px, progress=progress)
    return signals


class _Pairs:
    """Per-pair evidence, computed lazily and cached."""

    def __init__(self, photos: Sequence[Understood], sig: dict[str, dict], cache: Cache) -> None:
        self.photos, self.sig, self.cache = photos, sig, cache
        self._pixels: dict[str, str | None] = {}
        self._align: dict[str, float | None] = {}
        self._images: dict[str, Image.Image] = {}  # a few working copies, most recent last

    def _image(self, sha: str) -> Image.Image:
        from photopoet.stages.ingest import load_working_copy

        img = self._images.pop(sha, None)
        if img is None:
            img = load_working_copy(self.cache, sha)
            if len(self._images) >= 32:
                self._images.pop(next(iter(self._images)))
        self._images[sha] = img
        return img

    def pixel_hashes(self, idx: Iterable[int]) -> None:
        idx = [i for i in idx if self.photos[i].photo.sha256 not in self._pixels]
        shas = list(dict.fromkeys(self.photos[i].photo.sha256 for i in idx))
        self._pixels.update(self.cache.get_json(PIXELS_KIND, shas))
        new: dict[str, str | None] = {}
        for i in idx:
            s = self.photos[i].photo.sha256
            if s not in self._pixels:
                self._pixels[s] = new[s] = pixel_hash(self.photos[i].photo.path)
        self.cache.put_json(PIXELS_KIND, {s: v for s, v in new.items() if v is not None})

    def same_pixels(self, i: int, j: int) -> bool:
        a, b = self._pixels.get(self.photos[i].photo.sha256), self._pixels.get(self.photos[j].photo.sha256)
        return a is not None and a == b

    def scaled_difference(self, i: int, j: int) -> tuple[float, float]:
        return scaled_difference(self._image(self.photos[i].photo.sha256), self._image(self.photos[j].photo.sha256))

    def alignment(self, i: int, j: int) -> float | None:
        a, b = sorted((self.photos[i].photo.sha256, self.photos[j].photo.sha256))
        key = f"{a}:{b}"
        if key not in self._align:
            got = self.cache.get_json(ALIGN_KIND, [key])
            if key in got:
                self._align[key] = got[key]
            else:
                score = alignment_score(self._image(a), self._image(b))
                score = None if score is None else round(score, 4)
                self._align[key] = score
                self.cache.put_json(ALIGN_KIND, {key: score})
        return self._align[key]


def scaled_pair(a: Any, b: Any) -> bool:
    """True when photo records `a` and `b` could be one picture at two sizes: the same aspect ratio (within
    :data:`SCALED_ASPECT`) and one at most 90 % of the other's width."""
    ra, rb = a.width / max(1, a.height), b.width / max(1, b.height)
    if abs(ra - rb) > SCALED_ASPECT * max(ra, rb):
        return False
    small, large = sorted((a.width, b.width))
    return small <= 0.9 * large


def scaled_difference(a: Image.Image, b: Image.Image) -> tuple[float, float]:
    """(mean, worst 4x4 block) absolute grey difference of two pictures resized to the smaller one's size (its
    longest side at most :data:`SCALED_SIDE` px): small for a downscaled copy, large for another picture."""
    small = a if a.width * a.height <= b.width * b.height else b
    s = min(1.0, SCALED_SIDE / max(small.size))
    size = (max(8, round(small.width * s)), max(8, round(small.height * s)))
    x = np.asarray(a.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float32)
    y = np.asarray(b.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float32)
    d = np.abs(x - y)
    h, w = (d.shape[0] // 4) * 4, (d.shape[1] // 4) * 4
    blocks = d[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    return float(d.mean()), float(blocks.max())


def pair_tier(
    i: int, j: int, cos: float, photos: Sequence[Understood], sig: dict[str, dict], pairs: _Pairs, cfg: CullConfig
) -> tuple[str | None, str]:
    """The strongest tier that holds for a candidate pair, and the evidence as text."""
    pi, pj = photos[i].photo, photos[j].photo
    if pi.sha256 == pj.sha256:
        return "exact", "same bytes"
    hi, hj = sig[pi.sha256], sig[pj.sha256]
    ham = hamming(hi["phash"], hj["phash"])
    if (pi.width, pi.height) == (pj.width, pj.height) and ham <= PIXEL_HASH_BITS:
        pairs.pixel_hashes([i, j])
        if pairs.same_pixels(i, j):
            return "exact", "same pixels"
    align = pairs.alignment(i, j) if cos >= cfg.candidate_cosine else None
    if cos >= cfg.candidate_cosine:
        if align is None:
            if ham <= cfg.duplicate_hash_distance:
                return "duplicate", f"perceptual hash {ham} bits apart, cosine {cos:.3f}"
        elif align >= cfg.duplicate_alignment:
            return "duplicate", f"aligns as the same frame ({align:.2f}), cosine {cos:.3f}"
    # a downscaled copy: too small to align and its features drift, so compare the pictures at its size
    if scaled_pair(pi, pj) and (ham <= cfg.duplicate_hash_distance or cos >= cfg.candidate_cosine):
        mean, worst = pairs.scaled_difference(i, j)
        if mean <= SCALED_MEAN_DIFF and worst <= SCALED_BLOCK_DIFF:
            a, b = sorted([pi, pj], key=lambda p: p.width)
            return "duplicate", (
                f"the same picture at another size ({a.width}x{a.height} of {b.width}x{b.height}), cosine {cos:.3f}"
            )
    if cos < cfg.candidate_cosine:
        return None, ""
    if cos >= cfg.similar_cosine or (align is not None and align >= cfg.similar_alignment):
        ti, tj = photos[i].photo.taken_time(), photos[j].photo.taken_time()
        if ti is not None and tj is not None and abs((ti - tj).total_seconds()) > cfg.similar_max_gap_seconds:
            return None, "taken too far apart"
        return "similar", f"cosine {cos:.3f}" + ("" if align is None else f", alignment {align:.2f}")
    return None, ""


def cull(
    photos: Sequence[Understood],
    cfg: CullConfig,
    cache: Cache,
    *,
    features: np.ndarray,
    progress: bool = True,
) -> CullResult:
    """The cull stage: duplicate groups, quality problems and a verdict for every photo.

    `features` are the L2-normalised image features, rows following `photos` (``Understanding.features``).
    """
    photos = list(photos)
    n = len(photos)
    if not cfg.enabled or n == 0:
        return CullResult(groups=[], low_quality=[], photos=photos)
    if len(features) != n:
        raise ValueError(f"{len(features)} feature rows for {n} photos")
    sig = _signals(photos, cache, cfg, progress)
    mp = [u.photo.width * u.photo.height / 1e6 for u in photos]

    # quality
    problems: dict[int, tuple[str, float]] = {}
    for i, u in enumerate(photos):
        p = quality_problem(sig[u.photo.sha256], mp[i], cfg)
        if p is not None:
            problems[i] = p
    low = set(problems)

    # candidate pairs: same bytes, same perceptual hash and size, and the kNN neighbours in feature space
    cand: dict[tuple[int, int], float] = {}
    feats = np.asarray(features, dtype=np.float32)
    buckets: dict[Any, list[int]] = {}
    bands: dict[Any, list[int]] = {}
    for i, u in enumerate(photos):
        buckets.setdefault(("sha", u.photo.sha256), []).append(i)
        ph = sig[u.photo.sha256]["phash"]
        buckets.setdefault(("px", u.photo.width, u.photo.height, ph), []).append(i)
        # the same picture at another size: perceptual hashes within 3 bits share one of four 16-bit bands, and
        # aspect ratios within SCALED_ASPECT share one of two neighbouring aspect cells
        cell = math.floor(math.log(u.photo.width / max(1, u.photo.height)) / SCALED_ASPECT)
        for aspect in (cell, cell + 1):
            for band in range(4):
                bands.setdefault((aspect, band, ph[band * 4 : band * 4 + 4]), []).append(i)
    for members in buckets.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                cand[(i, j)] = float(feats[i] @ feats[j])
    for members in bands.values():
        if len(members) > SCALED_BUCKET_MAX:  # a band many photos share (flat, blank frames) says nothing
            continue
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                if (i, j) not in cand and scaled_pair(photos[i].photo, photos[j].photo):
                    cand[(i, j)] = float(feats[i] @ feats[j])
    for i, j, c in candidate_pairs(feats, cfg, progress=progress):
        cand.setdefault((i, j), c)

    pairs = _Pairs(photos, sig, cache)
    links: dict[str, list[tuple[int, int]]] = {t: [] for t in TIERS}
    evidence: dict[tuple[int, int], str] = {}
    for (i, j), c in sorted(cand.items()):
        tier, why = pair_tier(i, j, c, photos, sig, pairs, cfg)
        if tier is not None:
            links[tier].append((i, j))
            evidence[(i, j)] = why

    # tier by tier: groups of the representatives left by the stronger tiers
    scores = {i: _member_scores(sig[u.photo.sha256], mp[i]) for i, u in enumerate(photos)}
    verdict: dict[int, tuple[str, int, str]] = {}  # non-kept member -> (tier, kept index, evidence)
    groups: list[DuplicateGroup] = []
    tier_groups = group_by_tier(
        n,
        links,
        lambda a, b: float(feats[a] @ feats[b]),
        lambda members: _pick_best(members, photos, scores, low, cfg),
    )
    for tg in tier_groups:
        best, tier = tg.keep, tg.kind
        others = [m for m in tg.members if m != best]
        for m in others:
            key = (min(m, best), max(m, best))
            verdict[m] = (tier, best, evidence.get(key, f"{tier} of {photos[best].photo.path}"))
        groups.append(
            DuplicateGroup(
                keep=photos[best].photo.path,
                duplicates=[photos[m].photo.path for m in others],
                kind=tier,
                scores={photos[m].photo.path: dict(scores[m]) for m in [best, *others]},
                reason=tg.reason,
            )
        )

    # verdicts
    remove = set(cfg.remove)
    out: list[Understood] = []
    culled: set[str] = set()
    for i, u in enumerate(photos):
        if i in verdict:
            tier, best, why = verdict[i]
            label = "exact duplicate" if tier == "exact" else ("duplicate" if tier == "duplicate" else "similar shot")
            extra = f"; also {problems[i][0]}" if i in problems else ""
            out.append(
                replace(
                    u,
                    verdict="duplicate" if tier == "exact" else tier,
                    reason=f"{label} of {Path(photos[best].photo.path).name} ({why}){extra}",
                    duplicate_of=photos[best].photo.path,
                )
            )
            if tier in remove:
                culled.add(u.photo.path)
        elif i in problems:
            out.append(replace(u, verdict="low_quality", reason=problems[i][0], duplicate_of=None))
            if "low_quality" in remove:
                culled.add(u.photo.path)
        else:
            out.append(replace(u, verdict="keep", reason=None, duplicate_of=None))
    low_list = [LowQuality(photos[i].photo.path, r, s) for i, (r, s) in sorted(problems.items())]
    groups.sort(key=lambda g: (_RANK[g.kind], g.keep))
    return CullResult(groups=groups, low_quality=low_list, photos=out, culled=frozenset(culled))


@dataclass(frozen=True)
class TierGroup:
    """A group made by :func:`group_by_tier`: row indices, the kept one, and why it was kept."""

    kind: str
    keep: int
    members: list[int]  # sorted, `keep` included
    reason: str


def group_by_tier(
    n: int,
    links: Mapping[str, Iterable[tuple[int, int]]],
    strength: Callable[[int, int], float],
    pick: Callable[[list[int]], tuple[int, str]],
) -> list[TierGroup]:
    """Groups of rows ``0..n-1``, tier by tier, strongest tier first.

    `links` holds each tier's linked pairs (a pair is listed under the strongest tier that holds for it).
    At each tier the pairs of that tier and every stronger one are mapped onto the rows kept so far, and
    the kept rows are grouped: ``exact`` and ``duplicate`` by single linkage, ``similar`` by complete
    linkage on the links (two groups merge only if every cross pair is linked; pairs are taken in order
    of `strength`, strongest first), so a burst that drifts does not chain into one group. `pick` chooses
    the kept row of a group and gives the reason. Deterministic for given inputs.
    """
    rep = list(range(n))  # each row's kept row after the tiers so far
    out: list[TierGroup] = []
    for tier in TIERS:
        pairs = {
            (min(rep[i], rep[j]), max(rep[i], rep[j]))
            for t in TIERS[: _RANK[tier] + 1]
            for i, j in links.get(t, ())
            if rep[i] != rep[j]
        }
        if not pairs:
            continue
        if tier == "similar":
            comps = _complete_linkage(pairs, strength)
        else:
            uf = _UnionFind()
            for a, b in sorted(pairs):
                uf.union(a, b)
            comps = [sorted(s) for s in uf.sets() if len(s) > 1]
        merged_into: dict[int, int] = {}
        for members in sorted(comps):
            best, reason = pick(members)
            out.append(TierGroup(tier, best, members, reason))
            merged_into.update((m, best) for m in members)
        rep = [merged_into.get(r, r) for r in rep]
    return out


def _complete_linkage(pairs: set[tuple[int, int]], strength: Callable[[int, int], float]) -> list[list[int]]:
    """Groups in which every pair is in `pairs`, merged greedily from the strongest pair down."""
    group_of: dict[int, list[int]] = {}
    for a, b in sorted(pairs, key=lambda p: (-strength(*p), p)):
        ga, gb = group_of.get(a, [a]), group_of.get(b, [b])
        if ga is gb:
            continue
        if any((min(x, y), max(x, y)) not in pairs for x in ga for y in gb):
            continue
        merged = ga + gb
        for m in merged:
            group_of[m] = merged
    seen: set[int] = set()
    out: list[list[int]] = []
    for g in group_of.values():
        if id(g) not in seen:
            seen.add(id(g))
            out.append(sorted(g))
    return out
