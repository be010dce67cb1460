"""Labels on posters: what a poster keeps of the labels the classifier gives it, measured on the hand labels.

The zero-shot labels see a poster as a photograph ("food" and "stage" land on posters). ``scene.poster_labels``
lists the labels a photo keeps when its scene says it is a poster (or other graphic); the others are dropped
there. For each candidate list this prints precision, recall, F1 and F0.5 of the (photo, label) pairs against
``benchmarks/data/club_labels.json`` (unsure pairs left out, the default threshold and face rule), split by post
with ``caption_eval.is_test``: the list is chosen by F0.5 on the train posts and reported on the test posts, with
a paired bootstrap over test posts of the F0.5 difference against keeping every label. The kind comes from the
pipeline's own scene stage (image statistics; no OCR needed for it).

    .venv/bin/python benchmarks/label_scene_eval.py [--club ../shared/club] [--set cache.dir=DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from caption_eval import is_test, settings
from label_threshold import score

from photopoet.config import load_config
from photopoet.pipeline import understand_folder

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES: dict[str, tuple[str, ...] | None] = {
    "every label (before)": None,
    "none": (),
    "people": ("people",),
    "people, portrait, group photo": ("people", "portrait", "group photo"),
    "people, night": ("people", "night"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=ROOT / "../shared/club")
    ap.add_argument("--truth", type=Path, default=ROOT / "benchmarks/data/club_labels.json")
    ap.add_argument("--rounds", type=int, default=10_000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config setting")
    args = ap.parse_args()
    doc = json.loads(args.truth.read_text(encoding="utf-8"))
    labels = list(doc["labels"])
    by_file = {t["file"]: t for t in doc["photos"]}
    over = settings(args.set)
    over.setdefault("understand", {})["labels"] = labels
    over.setdefault("scene", {})["ocr"] = False
    cfg = load_config(overrides=over)
    _, und = understand_folder(args.club / "images", cfg, progress=False, scenes=True, keep_labels=True)
    rows = [u for u in und.photos if Path(u.photo.path).name in by_file]
    truth = [by_file[Path(u.photo.path).name] for u in rows]

    def pred(keep: tuple[str, ...] | None) -> list[set[str]]:
        out = []
        for u in rows:
            got = {lb.name for lb in u.labels}
            if keep is not None and u.scene is not None and u.scene.kind == "poster":
                got &= set(keep)
            out.append(got)
        return out

    preds = {name: pred(keep) for name, keep in CANDIDATES.items()}
    split = {"train": [i for i, t in enumerate(truth) if not is_test(t["post_id"])]}
    split["test"] = [i for i, t in enumerate(truth) if is_test(t["post_id"])]
    posters = sum(u.scene is not None and u.scene.kind == "poster" for u in rows)
    print(f"{len(rows)} hand-labelled photos ({posters} posters by the scene), labels: {', '.join(labels)}\n")
    print("| labels a poster keeps | split | precision | recall | F1 | F0.5 |")
    print("|---|---|---|---|---|---|")
    for name in CANDIDATES:
        for sp, idx in split.items():
            r = score([preds[name][i] for i in idx], [truth[i] for i in idx], labels)
            print(f"| {name} | {sp} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['f05']:.3f} |")
    tr = split["train"]
    best = max(CANDIDATES, key=lambda n: score([preds[n][i] for i in tr], [truth[i] for i in tr], labels)["f05"])
    print(f"\nchosen on the train posts (F0.5): {best}")
    te = split["test"]
    posts = sorted({truth[i]["post_id"] for i in te})
    rng = np.random.default_rng(0)
    base_name = "every label (before)"
    diffs = []
    for _ in range(args.rounds):
        pick = rng.choice(len(posts), len(posts))
        ids = [i for j in pick for i in te if truth[i]["post_id"] == posts[j]]
        a = score([preds[base_name][i] for i in ids], [truth[i] for i in ids], labels)["f05"]
        b = score([preds[best][i] for i in ids], [truth[i] for i in ids], labels)["f05"]
        diffs.append(b - a)
    a = score([preds[base_name][i] for i in te], [truth[i] for i in te], labels)["f05"]
    b = score([preds[best][i] for i in te], [truth[i] for i in te], labels)["f05"]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(
        f"test posts ({len(posts)} posts, {len(te)} photos): F0.5 {a:.3f} -> {b:.3f}, "
        f"difference {b - a:+.3f} [95% paired bootstrap over posts {lo:+.3f}, {hi:+.3f}]"
    )


if __name__ == "__main__":
    main()
