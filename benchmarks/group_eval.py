"""photopoet's grouping against the club's own posts, beside the k-means baseline, on a split by post.

The club's posts are split by post (never by photo) into two halves with a fixed seed. On each half a few
grouping choices (colour weight, label fusion) are tuned by ARI; the winner is then reported on the other
half, next to the shipped defaults and the baseline (plain k-means, k = round(sqrt(n / 2)), same image
features). The club photos carry no EXIF capture time (Instagram exports): this measures content alone.

    PYTHONPATH=src .venv/bin/python benchmarks/group_eval.py [--club ../shared/club]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.evaluation.grouping import evaluate_understood, load_truth, match_truth, understand_folder
from photopoet.metrics.clustering import clustering_scores, cosine_distances
from photopoet.stages.group import _cut, _Distances, _linkage

GRID = {"color_weight": (0.0, 0.25, 0.5), "label_weight": (0.0, 0.25)}


def _cfg(**group):
    return load_config(overrides={"group": group} if group else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    args = ap.parse_args()
    posts = load_truth(args.club / "posts.jsonl")
    _, und = understand_folder(args.club / "images", load_config(), progress=False)
    truth = match_truth(und.photos, args.club / "images", posts)
    order = np.random.default_rng(0).permutation(len(posts))
    halves = {"A": set(order[: len(posts) // 2].tolist()), "B": set(order[len(posts) // 2 :].tolist())}
    rows = {h: [i for i, t in enumerate(truth) if t in keep] for h, keep in halves.items()}

    def score(h: str, cfg):
        return evaluate_understood(und, rows[h], [truth[i] for i in rows[h]], cfg)

    print("| report half (tuned on) | photos | club posts | method | posts | ARI | NMI | purity | silhouette |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tune, report in (("A", "B"), ("B", "A")):
        grid = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
        best = max(grid, key=lambda g: (score(tune, _cfg(**g)).ours["ari"], -grid.index(g)))
        tuned = score(report, _cfg(**best))
        default = score(report, _cfg())
        head = f"| {report} ({tune}) | {tuned.n_photos} | {tuned.n_posts_true}"
        for name, m in (
            ("baseline k-means", default.baseline),
            ("photopoet defaults", default.ours),
            ("photopoet tuned " + ", ".join(f"{k}={v}" for k, v in best.items()), tuned.ours),
        ):
            cells = [f"{m['n_groups']:.0f}"] + [f"{m[k]:.3f}" for k in ("ari", "nmi", "purity", "silhouette")]
            print(f"{head} | {name} | " + " | ".join(cells) + " |")
        m = at_true_k(und, rows[report], [truth[i] for i in rows[report]], _cfg())
        cells = [f"{m['n_groups']:.0f}"] + [f"{m[k]:.3f}" for k in ("ari", "nmi", "purity", "silhouette")]
        print(f"{head} | reference: same distance, cut at the club's own k | " + " | ".join(cells) + " |")


def at_true_k(und, rows: list[int], truth: list[int], cfg) -> dict[str, float]:
    """photopoet's mixed distance and average linkage, cut at the true number of posts (which a user never
    knows): how much of the gap to the club's grouping is the choice of k, and how much the features."""
    d = _Distances(und.features[rows], [None] * len(rows), cfg.group, und.colors[rows], None).mixed
    lab = _cut(_linkage(d), len(set(truth)))
    return clustering_scores(truth, lab.tolist(), cosine_distances(und.features[rows]))


if __name__ == "__main__":
    main()
