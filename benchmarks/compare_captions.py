"""Two caption runs on the same test posts, compared post by post: is the difference more than the noise of 18 posts?

Reads the per-post files ``benchmarks/caption_eval.py --out`` writes (one JSON object a post: ``post_id``,
``reference`` and one entry per mode with its ``caption``), pairs the posts of ``A`` and ``B`` by ``post_id``,
scores each caption against the club's reference with ROUGE-L (``rouge-score``, as caption_eval.py) and prints
per side the mean F1, precision, recall and caption length, how many posts B wins, and the mean difference B - A
with a paired bootstrap 95% percentile interval (``scipy.stats.bootstrap``, posts resampled, seeded). An
interval that holds 0 says the test posts cannot tell the two apart.

    .venv/bin/python benchmarks/compare_captions.py A.jsonl B.jsonl [--mode-a M] [--mode-b M] [--rounds 10000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read(path: Path, mode: str) -> dict[str, tuple[str, str]]:
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if mode not in d:
            modes = ", ".join(k for k in d if isinstance(d[k], dict))
            raise SystemExit(f"{path}:{n}: no mode {mode!r} (modes: {modes})")
        out[d["post_id"]] = (d["reference"], d[mode]["caption"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--mode-a", default="generative + adapter")
    ap.add_argument("--mode-b", default="generative + adapter")
    ap.add_argument("--rounds", type=int, default=10_000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from rouge_score import rouge_scorer

    a, b = read(args.a, args.mode_a), read(args.b, args.mode_b)
    ids = sorted(set(a) & set(b))
    if not ids:
        raise SystemExit(f"{args.a} and {args.b} share no post_id")
    if any(a[i][0] != b[i][0] for i in ids):
        raise SystemExit("the two files hold different references for the same post: not the same test set")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = {}
    for name, side in (("A", a), ("B", b)):
        s = [scorer.score(side[i][0], side[i][1])["rougeL"] for i in ids]
        rows[name] = {
            "f": np.array([x.fmeasure for x in s]),
            "p": np.mean([x.precision for x in s]),
            "r": np.mean([x.recall for x in s]),
            "chars": np.mean([len(side[i][1]) for i in ids]),
        }
    from scipy.stats import bootstrap

    diff = rows["B"]["f"] - rows["A"]["f"]
    ci = bootstrap(
        (rows["A"]["f"], rows["B"]["f"]),
        lambda x, y, axis=-1: np.mean(y - x, axis=axis),
        paired=True,
        n_resamples=args.rounds,
        method="percentile",
        rng=np.random.default_rng(args.seed),
    ).confidence_interval
    lo, hi = ci.low, ci.high
    print(f"{len(ids)} posts; A: {args.a} [{args.mode_a}]; B: {args.b} [{args.mode_b}]\n")
    print("| side | ROUGE-L F1 | precision | recall | mean chars |")
    print("|---|---|---|---|---|")
    for name in ("A", "B"):
        r = rows[name]
        print(f"| {name} | {r['f'].mean():.4f} | {r['p']:.4f} | {r['r']:.4f} | {r['chars']:.0f} |")
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    print(
        f"\nB - A: {diff.mean():+.4f} ROUGE-L F1, 95% paired bootstrap interval [{lo:+.4f}, {hi:+.4f}] "
        f"({args.rounds:,} resamples of the posts); B better on {wins} of {len(ids)} posts, A on {losses}"
    )


if __name__ == "__main__":
    main()
