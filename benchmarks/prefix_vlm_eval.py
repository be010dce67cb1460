"""The prefix VLM on the club's posts: untrained projection vs LM loss alone vs LM loss + InfoNCE, on the
held-out test posts (the fixed quarter by sha1 of the post id that no trainer ever sees).

For each InfoNCE weight in ``--weights`` (default 0, 0.1 (the config's) and 0.5) this trains
``photopoet train prefix-vlm`` with the config's settings (frozen EfficientNet-Lite0 features and frozen Gemma 3
270M on the offline tier) into ``OUT/w<weight>`` (resumable: a rerun reuses finished runs), then scores
``OUT/w<weight>/best`` and the untrained projection (``initial/`` of the first run) on the test posts:

* LM loss: mean cross-entropy of the club's caption tokens given the photos;
* image gap: the same loss when each post is given the next test post's photos, minus the loss (above 0:
  the model reads the photos);
* R@1: image -> text retrieval among the test posts through the InfoNCE heads (chance 1 / n);
* BLEU-1, BLEU-4, ROUGE-L (pycocoevalcap's definitions on PTB tokens) of greedy captions
  (``no_repeat_ngram`` 3) against the club's cleaned caption; distinct: share of different captions.

Training is timed (wall-clock, this machine, with the load average printed). Validation during training scores
loss only (``generate_every_eval: false``) to save time; best/ follows the validation loss.

    .venv/bin/python benchmarks/prefix_vlm_eval.py [--club ../shared/club] [--out out/prefix_vlm]
        [--weights 0 0.1 0.5] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--club", type=Path, default=HERE.parent.parent / "shared" / "club")
    ap.add_argument("--out", type=Path, default=Path("out/prefix_vlm"))
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.5], help="InfoNCE weights to train")
    ap.add_argument("--epochs", type=int, default=None, help="default: train_vlm.epochs")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    from photopoet.config import load_config
    from photopoet.train.prefix_vlm import evaluate_posts, photo_features, train_prefix_vlm

    data, images = args.club / "posts.jsonl", args.club / "images"
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}", file=sys.stderr)
    base = load_config(None)
    feats = photo_features(images, base, progress=not args.quiet)
    rows = []
    runs = []
    for w in args.weights:
        over = {"contrastive_weight": w, "generate_every_eval": False}
        if args.epochs:
            over["epochs"] = args.epochs
        cfg = load_config(None, {"train_vlm": over})
        out = args.out / f"w{w:g}"
        t = time.perf_counter()
        res = train_prefix_vlm(data, images, out, cfg, features=feats, progress=not args.quiet,
                               echo=lambda s: print(s, file=sys.stderr))  # fmt: skip
        secs = time.perf_counter() - t
        runs.append((w, out, cfg, res, secs))
    first = runs[0]
    models = [("untrained projection", first[1] / "initial", first[2], None)]
    models += [(f"LM loss + {w:g} x InfoNCE" if w else "LM loss only", out / "best", cfg, (res, s))
               for w, out, cfg, res, s in runs]  # fmt: skip
    for name, folder, cfg, run in models:
        m, samples = evaluate_posts(folder, data, images, cfg, split="test", features=feats, progress=not args.quiet)
        row = {"model": name, **m}
        if run is not None:
            res, secs = run
            row |= {"steps": res.step, "best_step": res.best["step"], "train_s": round(secs, 1),
                    "resumed_from": res.resumed_from, "stopped_early": res.stopped_early}  # fmt: skip
        rows.append(row)
        (args.out / "samples").mkdir(parents=True, exist_ok=True)
        (args.out / "samples" / f"{name.replace(' ', '_').replace('/', '')}.jsonl").write_text(
            "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8"
        )
        print(json.dumps(row), file=sys.stderr)
    n = rows[0]["n"]
    print(f"\nprefix VLM on {n} held-out test posts of {args.club} (train: {first[3].split['train']} posts, "
          f"validation: {first[3].split['val']}); load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    hdr = f"| {'model':<28} | LM loss | image gap | R@1 (chance {1 / n:.3f}) | BLEU-1 | BLEU-4 | ROUGE-L | distinct |"
    print(hdr + " steps (best) | train s |")
    print("|" + "|".join("-" * (len(c) + 0) for c in hdr.split("|")[1:-1]) + "|---|---|")
    for r in rows:
        steps = f"{r['steps']} ({r['best_step']})" if "steps" in r else "0"
        secs = f"{r['train_s']:.0f}" if "train_s" in r and r.get("resumed_from", 0) == 0 else "-"
        print(
            f"| {r['model']:<28} | {r['val_loss']:.3f} | {r['image_gap']:+.4f} | {r['r_at_1']:.3f} | "
            f"{r['bleu1']:.3f} | {r['bleu4']:.4f} | {r['rougeL']:.3f} | {r['distinct']:.2f} | {steps} | {secs} |"
        )


if __name__ == "__main__":
    main()
