"""Grouping against a reference: the photos a club itself put in each post (``posts.jsonl``).

``posts.jsonl`` holds one post per line with an ``images`` list of file names (relative to the photo folder,
or bare names). Photos in the folder that no post lists are left out of the scores.

The baseline is what a simple tool does: plain k-means on the same image features, k = round(sqrt(n / 2)).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photopoet.config import Config
from photopoet.errors import TruthError
from photopoet.evaluation.base import EvalResult
from photopoet.metrics.clustering import clustering_scores, cosine_distances
from photopoet.records import Understood
from photopoet.stages.group import group_photos


def load_truth(path: Path | str) -> list[list[str]]:
    """The ``images`` list of every post in a JSON-lines file."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TruthError(f"{p}: cannot read: {e.strerror or e}") from None
    posts: list[list[str]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise TruthError(f"{p}:{n}: not JSON: {e}") from None
        images = obj.get("images") if isinstance(obj, dict) else None
        if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
            raise TruthError(f"{p}:{n}: needs an 'images' list of file names")
        posts.append(images)
    if not posts:
        raise TruthError(f"{p}: lists no posts")
    return posts


def match_truth(photos: Sequence[Understood], root: Path, posts: Sequence[Sequence[str]]) -> list[int | None]:
    """Reference post index of each photo (by path relative to ``root``, else by file name), None if unlisted."""
    by_rel: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for i, images in enumerate(posts):
        for name in images:
            by_rel[name.replace("\\", "/")] = i
            by_name[Path(name).name] = i
    out: list[int | None] = []
    for u in photos:
        p = Path(u.photo.path)
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = p.name
        out.append(by_rel.get(rel, by_name.get(p.name)))
    return out


def baseline_kmeans(feats: np.ndarray, seed: int = 0) -> np.ndarray:
    """Plain k-means, k = round(sqrt(n / 2)), on the features as given."""
    from sklearn.cluster import KMeans

    n = len(feats)
    k = max(1, min(n, round((n / 2) ** 0.5)))
    if k == 1:
        return np.zeros(n, dtype=int)
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(feats, dtype=np.float64))


PRIMARY = "ari"  # of clustering_scores: the grouping evaluations' primary metric (greater is better)


@dataclass(kw_only=True)
class GroupingEval(EvalResult):
    """photopoet's grouping (``metrics``, also ``ours``) and the baseline's scored on the same photos."""

    primary_metric: str = PRIMARY
    n_photos: int
    n_posts_true: int
    baseline: dict[str, float]

    @property
    def ours(self) -> dict[str, float]:
        return self.metrics

    def to_json(self) -> dict:
        return {
            "photos": self.n_photos,
            "true_posts": self.n_posts_true,
            "ours": self.ours,
            "baseline": self.baseline,
            **self.summary(),
        }


def evaluate_grouping(
    items: Sequence[Understood],
    feats: np.ndarray,
    truth: Sequence[int],
    cfg: Config,
    *,
    colors: np.ndarray | None = None,
    label_scores: np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> GroupingEval:
    """Scores of photopoet's grouping and of the baseline on the same photos and features. Silhouette is
    measured for both on the cosine distance of the image features, so the two are comparable."""
    g = group_photos(items, feats, cfg.group, colors=colors, label_scores=label_scores, quality=quality)
    d = cosine_distances(feats)
    ours = clustering_scores(truth, g.labels.tolist(), d)
    base = clustering_scores(truth, baseline_kmeans(feats).tolist(), d)
    return GroupingEval(n_photos=len(items), n_posts_true=len(set(truth)), metrics=ours, baseline=base)


def subset_understanding(und, rows: Sequence[int]):
    """``und`` (an Understanding) restricted to ``rows``, every per-photo array with it: what `run` would have
    understood of a folder holding only those photos (understanding is per photo)."""
    from dataclasses import replace

    rows = list(rows)

    def pick(a):
        return None if a is None else np.asarray(a)[rows]

    return replace(
        und,
        photos=[und.photos[i] for i in rows],
        features=und.features[rows],
        text_vectors=und.text_vectors[rows],
        label_scores=pick(und.label_scores),
        colors=pick(und.colors),
        quality=pick(und.quality),
        faces=pick(und.faces),
        face_share=pick(und.face_share),
    )


@dataclass(kw_only=True)
class RunPathResult(EvalResult):
    """The run path's posts scored on the photos culling kept (``truth``/``pred`` follow ``kept``); ``metrics``
    (also ``scores``): clustering_scores + posts, single_share, club_posts, club_single_share."""

    primary_metric: str = PRIMARY
    kept: list[int]  # rows (of the understanding scored) culling kept
    truth: list[int]
    pred: list[int]
    set_aside: int

    @property
    def scores(self) -> dict[str, float]:
        return self.metrics


def post_shape(labels: Sequence[int]) -> tuple[int, float]:
    """Number of posts and the share of them that hold one photo."""
    sizes = np.bincount(np.unique(np.asarray(labels), return_inverse=True)[1]) if len(labels) else np.zeros(0)
    return len(sizes), float((sizes == 1).mean()) if len(sizes) else 0.0


def evaluate_run_path(und, truth: Sequence[int], cfg: Config, cache) -> RunPathResult:
    """Cull and group ``und`` exactly as `run` does (:func:`photopoet.pipeline.cull_and_group`) and score the
    posts against ``truth`` (reference post of each photo of ``und``) on the photos culling kept."""
    from photopoet.pipeline import cull_and_group

    culled, grouping = cull_and_group(und, cfg, cache, progress=False)
    kept = culled.kept()
    t = [int(truth[i]) for i in kept]
    pred = grouping.labels.tolist()
    scores = clustering_scores(t, pred, cosine_distances(und.features[kept]) if kept else None)
    scores["posts"], scores["single_share"] = post_shape(pred)
    scores["club_posts"], scores["club_single_share"] = post_shape(t)
    return RunPathResult(kept=kept, truth=t, pred=pred, metrics=scores, set_aside=len(culled.culled))


def paired_bootstrap(
    truth: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], *, n: int = 1000, seed: int = 0
) -> dict[str, float]:
    """ARI(b) - ARI(a) with a 95% percentile interval, resampling the reference posts (whole posts, with their
    photos) with replacement; both predictions see the same resamples. A post drawn twice counts twice (its
    photos repeated, its truth and predicted labels kept)."""
    from sklearn.metrics import adjusted_rand_score

    truth, a, b = np.asarray(truth), np.asarray(pred_a), np.asarray(pred_b)
    posts = np.unique(truth)
    members = {p: np.flatnonzero(truth == p) for p in posts}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = np.concatenate([members[p] for p in rng.choice(posts, size=len(posts), replace=True)])
        diffs.append(adjusted_rand_score(truth[idx], b[idx]) - adjusted_rand_score(truth[idx], a[idx]))
    d = float(adjusted_rand_score(truth, b) - adjusted_rand_score(truth, a))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": d, "lo": float(lo), "hi": float(hi), "n": n}


def evaluate_folder(photos_dir: Path | str, truth_path: Path | str, cfg: Config, *, progress: bool = True):
    """The posts `run` makes of ``photos_dir`` (cull, then group), scored on the kept photos ``truth_path``
    lists, beside the baseline on the same photos."""
    from photopoet.pipeline import group_folder

    posts = load_truth(truth_path)
    res = group_folder(photos_dir, cfg, progress=progress)
    und, kept = res.understanding, res.culled.kept()
    truth = match_truth([res.culled.photos[i] for i in kept], Path(photos_dir), posts)
    keep = [j for j, t in enumerate(truth) if t is not None]
    if not keep:
        raise TruthError(f"{truth_path}: lists none of the photos in {photos_dir} that culling kept")
    rows = [kept[j] for j in keep]
    feats = und.features[rows]
    d = cosine_distances(feats)
    t = [truth[j] for j in keep]
    ours = clustering_scores(t, res.grouping.labels[keep].tolist(), d)
    base = clustering_scores(t, baseline_kmeans(feats).tolist(), d)
    return GroupingEval(n_photos=len(rows), n_posts_true=len(set(t)), metrics=ours, baseline=base)


def evaluate_understood(und, rows: Sequence[int], truth: Sequence[int], cfg: Config) -> GroupingEval:
    def pick(a):
        return None if a is None else a[rows]

    return evaluate_grouping(
        [und.photos[i] for i in rows],
        und.features[rows],
        truth,
        cfg,
        colors=pick(und.colors),
        label_scores=pick(und.label_scores),
        quality=pick(und.quality),
    )
