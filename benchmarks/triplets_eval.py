"""Triplets on the club's photos: how many groups the similarity limits give, and how often the three photos of
a group come from one club post (the club put them together, so they are about one thing).

Photos: ../shared/club/images, understood with the run's cache (features are computed once). Captions: the
club's posts.jsonl (each photo takes its post's caption). Groups are formed as `photopoet data triplets` forms
them (photopoet.train.triplets.form_triplets), for a few (min_similarity, max_similarity) pairs; no generator
is run (the merged captions do not change the groups).

    .venv/bin/python benchmarks/triplets_eval.py [--club ../shared/club]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.pipeline import understand_folder
from photopoet.train.triplets import form_triplets, load_captions, match_captions

PAIRS = [(0.3, 0.95), (0.4, 0.95), (0.5, 0.95), (0.6, 0.95), (0.7, 0.95), (0.5, 1.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    args = ap.parse_args()
    cfg = load_config()
    posts = [json.loads(x) for x in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines() if x]
    post_of = {name: i for i, p in enumerate(posts) for name in p["images"]}
    caps = load_captions(args.club / "posts.jsonl")
    root = args.club / "images"
    _, und = understand_folder(root, cfg, progress=True)
    paths = [Path(u.photo.path) for u in und.photos]
    captions, _ = match_captions(paths, root, caps)
    rows = [i for i, c in enumerate(captions) if c]
    feats = und.features[rows]
    post = [post_of.get(paths[i].name) for i in rows]
    n_posts = len({p for p in post if p is not None})
    print(f"{len(paths)} photos, {len(rows)} with a caption, from {n_posts} posts; features: {cfg.models.image}\n")
    print(
        "| vectors | min_similarity | max_similarity | triplets | photos used | all three from one post "
        "| two from one post |"
    )
    print("|---|---|---|---|---|---|---|")
    centred = feats - feats.mean(axis=0)  # an alternative tried: the features centred on the folder's mean
    runs = [("image features (used)", feats, lo, hi) for lo, hi in PAIRS]
    runs += [("centred features", centred, lo, 0.95) for lo in (0.2, 0.3, 0.4)]
    for vname, vecs, lo, hi in runs:
        tc = cfg.triplets.model_copy(update={"min_similarity": lo, "max_similarity": hi})
        groups = form_triplets(vecs, tc)
        same3 = sum(1 for g, _ in groups if len({post[i] for i in g}) == 1)
        same2 = sum(1 for g, _ in groups if len({post[i] for i in g}) == 2)
        n = len(groups)
        a, b = (f"{same3} ({same3 / n:.0%})", f"{same2} ({same2 / n:.0%})") if n else ("-", "-")
        print(f"| {vname} | {lo} | {hi} | {n} | {3 * n} | {a} | {b} |")
    sims = np.asarray(feats, dtype=np.float32)
    sims = sims / np.linalg.norm(sims, axis=1, keepdims=True)
    s = sims @ sims.T
    iu = np.triu_indices(len(rows), 1)
    same = np.array([post[a] == post[b] for a, b in zip(*iu, strict=True)])
    for name, mask in (("same post", same), ("different posts", ~same)):
        q = np.percentile(s[iu][mask], [10, 50, 90])
        print(f"\ncosine of two photos, {name}: p10 {q[0]:.3f}, median {q[1]:.3f}, p90 {q[2]:.3f} ({mask.sum()} pairs)")


if __name__ == "__main__":
    main()
