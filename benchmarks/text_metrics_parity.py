"""photopoet.metrics.text against pycocoevalcap on the club's captions: the same numbers, and how fast.

References: each post's caption (PTB tokens, as `photopoet eval text` makes them). Predictions: the template
caption photopoet writes for the post (event + labels), and the captions of other posts (shuffled, seed 0).
Both libraries score the same token lists; the table shows both and the largest difference. Seconds are
wall-clock for scoring alone (tokenising excluded), best of 3.

    .venv/bin/pip install -e '.[dev]'      # pycocoevalcap
    .venv/bin/python benchmarks/text_metrics_parity.py [--club ../shared/club]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from photopoet.config import load_config
from photopoet.metrics.text import ptb_tokenize, text_metrics
from photopoet.stages.write.template import template_caption

KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "cider")


def coco(preds, refs) -> dict[str, float]:
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(p)] for i, p in enumerate(preds)}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {
        **{f"bleu{k + 1}": b[k] for k in range(4)},
        "rougeL": float(Rouge().compute_score(gts, res)[0]),
        "cider": float(Cider().compute_score(gts, res)[0]),
    }


def best_of(f, n: int = 3) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    args = ap.parse_args()
    posts = [json.loads(x) for x in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines() if x]
    cfg = load_config().caption
    templates = [
        template_caption(p["post_id"], p.get("labels", [])[:3], p.get("event"), len(p["images"]), cfg) for p in posts
    ]
    shuffled = [p["caption"] for p in posts]
    random.Random(0).shuffle(shuffled)
    toks = ptb_tokenize([p["caption"] for p in posts] + templates + shuffled)
    n = len(posts)
    refs = [[t] for t in toks[:n]]
    print(f"{n} club posts, one reference each (PTB tokens)\n")
    print("| predictions | library | " + " | ".join(KEYS) + " | seconds |")
    print("|---|---|" + "---|" * (len(KEYS) + 1))
    for name, preds in (("template captions", toks[n : 2 * n]), ("other posts' captions", toks[2 * n :])):
        t_ours, ours = best_of(lambda p=preds: text_metrics(p, refs))
        t_coco, theirs = best_of(lambda p=preds: coco(p, refs))
        for lib, m, t in (("photopoet", ours, t_ours), ("pycocoevalcap", theirs, t_coco)):
            print(f"| {name} | {lib} | " + " | ".join(f"{m[k]:.6f}" for k in KEYS) + f" | {t:.3f} |")
        diff = max(abs(ours[k] - theirs[k]) for k in KEYS)
        print(f"| {name} | largest difference | {diff:.1e} |" + " |" * len(KEYS))


if __name__ == "__main__":
    main()
