"""Scale of the near-duplicate search: time and peak memory for 1k, 10k and 100k photos' embeddings.

Synthetic L2-normalised vectors stand in for image features (the index part does not need pixels). Each
vector mixes a component shared by all photos, one of its scene (n/20 scenes) and its own, so that
unrelated photos have a cosine near 0.25 and photos of one scene near 0.6, about where the real features
put them; then n/20 near-duplicate groups of 2-4 photos are planted (copies of one vector with noise:
cosine 0.90-0.99 to each other).

What is timed, in a fresh subprocess per size (so peak RSS is that size's alone, faiss and numpy included):

* ``search``: ``photopoet.stages.cull.knn_pairs`` with the default config (``neighbors`` 10,
  ``candidate_cosine`` 0.6): the same function the cull stage calls (exact inner product up to
  ``APPROX_ABOVE`` photos, PCA to 128-d + IVF above);
* ``grouping``: ``photopoet.stages.cull.group_by_tier``, the function the cull stage groups with, over the
  candidate pairs. The stage decides each pair's tier from the images (alignment, hashes), which synthetic
  vectors do not have; here pairs at cosine >= 0.9 stand in for "duplicate" links and pairs at
  >= ``similar_cosine`` for "similar" links, and the first row of a group is kept.

Reported: seconds (search + grouping, best of --repeat runs), peak RSS of the subprocess (max over runs,
vectors included: 100k x 1280 float32 alone is 512 MB), and recall: planted pairs returned as candidates,
and planted groups whose members are all linked by returned pairs among themselves.

    .venv/bin/python benchmarks/dedupe_scale.py [--sizes 1000 10000 100000] [--dims 1280 384] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def make_vectors(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, list[list[int]]]:
    """`n` unit vectors (float32) and the planted near-duplicate groups (lists of row indices)."""
    rng = np.random.default_rng(seed)

    def unit(rows: int) -> np.ndarray:
        v = rng.standard_normal((rows, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    shared = unit(1)[0]
    n_scenes = max(1, n // 20)
    scenes = unit(n_scenes)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 8192):  # in chunks: no float64 or n x dim temporaries beyond the result
        e = min(n, s + 8192)
        x[s:e] = 0.5 * shared + 0.6 * scenes[rng.integers(0, n_scenes, e - s)] + 0.62 * unit(e - s)
        x[s:e] /= np.linalg.norm(x[s:e], axis=1, keepdims=True)
    groups: list[list[int]] = []
    perm = rng.permutation(n)
    at = 0
    for _ in range(n // 20):
        size = int(rng.integers(2, 5))
        members = perm[at : at + size].tolist()
        at += size
        base = x[members[0]]
        for m in members[1:]:
            noise = rng.standard_normal(dim).astype(np.float32)
            noise -= (noise @ base) * base
            noise /= np.linalg.norm(noise)
            cos = rng.uniform(0.95, 0.995)  # to the base; so 0.90-0.99 between two copies
            x[m] = cos * base + np.sqrt(1 - cos * cos) * noise
        groups.append(members)
    return x, groups


def child(n: int, dim: int) -> dict:
    from photopoet.config import CullConfig
    from photopoet.stages import cull as cull_mod

    cfg = CullConfig()
    x, groups = make_vectors(n, dim)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    pairs = cull_mod.knn_pairs(x, cfg.neighbors, cfg.candidate_cosine)
    t1 = time.perf_counter()
    cos = {(i, j): c for i, j, c in pairs}
    links = {
        "duplicate": [p for p, c in cos.items() if c >= 0.9],
        "similar": [p for p, c in cos.items() if cfg.similar_cosine <= c < 0.9],
    }
    tier_groups = cull_mod.group_by_tier(
        n, links, lambda i, j: cos[(min(i, j), max(i, j))], lambda members: (members[0], "first row")
    )
    dup_groups = [g for g in tier_groups if g.kind == "duplicate"]
    sim_groups = [g for g in tier_groups if g.kind == "similar"]
    t2 = time.perf_counter()

    found = {(i, j) for i, j, _ in pairs}
    planted = [(min(a, b), max(a, b)) for g in groups for k, a in enumerate(g) for b in g[k + 1 :]]
    pair_recall = sum(p in found for p in planted) / len(planted)
    whole = 0
    for g in groups:
        inner = cull_mod._UnionFind()
        for k, a in enumerate(g):
            inner.find(a)
            for b in g[k + 1 :]:
                if (min(a, b), max(a, b)) in found:
                    inner.union(a, b)
        whole += len(inner.sets()) == 1
    approx = n > cull_mod.APPROX_ABOVE
    if approx:
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
        kind = f"PCA-128 + IVF{nlist} (nprobe {min(nlist, cull_mod.NPROBE)})"
    else:
        kind = "exact inner product (flat)"
    return {
        "n": n,
        "dim": dim,
        "index": kind,
        "search_s": t1 - t0,
        "grouping_s": t2 - t1,
        "seconds": t2 - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_data_mb": rss_data,
        "candidate_pairs": len(pairs),
        "duplicate_groups": len(dup_groups),
        "similar_groups": len(sim_groups),
        "pair_recall": pair_recall,
        "group_recall": whole / len(groups),
        "planted_groups": len(groups),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dims", type=int, nargs="+", default=[1280, 384])
    ap.add_argument("--repeat", type=int, default=3, help="runs per size (fresh process each): best time")
    ap.add_argument("--child", type=int, nargs=2, metavar=("N", "DIM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    rows = []
    for dim in args.dims:
        for n in args.sizes:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(n), str(dim)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            rows.append(best)
            print(
                f"n={n} dim={dim}: {best['seconds']:.2f} s, {best['peak_rss_mb']:.0f} MB, "
                f"recall {best['pair_recall']:.3f}",
                file=sys.stderr,
            )
    print(
        "| photos | dim | index | search s | grouping s | total s | peak RSS MB | vectors MB "
        "| planted pairs found | planted groups recovered |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['dim']} | {r['index']} | {r['search_s']:.2f} | {r['grouping_s']:.2f} | "
            f"{r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['n'] * r['dim'] * 4 / 2**20:.0f} | "
            f"{r['pair_recall']:.3f} | {r['group_recall']:.3f} |"
        )


if __name__ == "__main__":
    main()
