"""How the simple grouping's distance threshold fares against the club's own posts.

The club's posts are split by post (never by photo) into two halves with a fixed seed; for each half and
threshold it prints the number of posts made and the adjusted Rand index against the club's grouping.
The club photos carry no EXIF capture time (Instagram exports), so this measures content alone.

    .venv/bin/python benchmarks/group_threshold.py [--club ../shared/club]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from photopoet.config import GroupConfig, load_config
from photopoet.pipeline import open_cache
from photopoet.stages.group import group
from photopoet.stages.ingest import ingest
from photopoet.stages.understand import ModelSet, understand

THRESHOLDS = (0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    args = ap.parse_args()
    cfg = load_config()
    posts = [json.loads(line) for line in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = {name: i for i, p in enumerate(posts) for name in p["images"]}
    cache, cache_dir = open_cache(cfg)
    with cache:
        photos = ingest(args.club / "images", cfg.ingest, cache, progress=False).photos
        und = understand(photos, cfg, cache, ModelSet(cfg, cache_dir), progress=False)
    order = np.random.default_rng(0).permutation(len(posts))
    halves = {"A": set(order[: len(posts) // 2].tolist()), "B": set(order[len(posts) // 2 :].tolist())}
    print("| half | club posts | photos | threshold | posts made | ARI |")
    print("|---|---|---|---|---|---|")
    for name, keep in halves.items():
        rows = [i for i, u in enumerate(und.photos) if truth[Path(u.photo.path).name] in keep]
        items = [und.photos[i] for i in rows]
        y = [truth[Path(u.photo.path).name] for u in items]
        for th in THRESHOLDS:
            made = group(items, und.features[rows], GroupConfig(distance_threshold=th))
            post_of = {path: k for k, p in enumerate(made) for path in p.photos}
            ari = adjusted_rand_score(y, [post_of[u.photo.path] for u in items])
            print(f"| {name} | {len(keep)} | {len(items)} | {th} | {len(made)} | {ari:.3f} |")


if __name__ == "__main__":
    main()
