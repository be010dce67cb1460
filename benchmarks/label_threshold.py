"""Zero-shot label threshold, measured on club photos labelled by hand.

``benchmarks/data/club_labels.json`` holds club photos that a person looked at and marked for each of the
default labels (which apply, which are unsure, which images are graphics rather than photos). For every
threshold on the calibrated label score (z against the background, see ``understand.calibrate``) this
prints precision, recall and F1 of the (photo, label) pairs photopoet assigns, with the default ``topk`` and
the face rule on, beside the number of labels a photo gets. Pairs the annotator marked unsure are left
out of the scoring. The photos are split by post into two halves (seed 0): the threshold with the best F1
on one half is reported on the other.

    .venv/bin/python benchmarks/label_threshold.py [--club ../shared/club] [--truth benchmarks/data/club_labels.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.pipeline import understand_folder

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def score(pred: list[set[str]], truth: list[dict], labels: list[str]) -> dict[str, float]:
    tp = fp = fn = 0
    for p, t in zip(pred, truth, strict=True):
        right, unsure = set(t["labels"]), set(t.get("unsure", []))
        for lab in labels:
            if lab in unsure:
                continue
            tp += lab in p and lab in right
            fp += lab in p and lab not in right
            fn += lab not in p and lab in right
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    f05 = 1.25 * prec * rec / (0.25 * prec + rec) if prec + rec else 0.0
    per_photo = sum(map(len, pred)) / max(1, len(pred))
    return {"precision": prec, "recall": rec, "f1": f1, "f05": f05, "per_photo": per_photo}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=ROOT / "../shared/club")
    ap.add_argument("--truth", type=Path, default=ROOT / "benchmarks/data/club_labels.json")
    args = ap.parse_args()
    truth_doc = json.loads(args.truth.read_text(encoding="utf-8"))
    labels = list(truth_doc["labels"])
    by_file = {t["file"]: t for t in truth_doc["photos"]}

    preds: dict[float, dict[str, set[str]]] = {}
    for th in THRESHOLDS:
        cfg = load_config(overrides={"understand": {"labels": labels, "threshold": th}})
        _, und = understand_folder(args.club / "images", cfg, progress=False)
        preds[th] = {
            Path(u.photo.path).name: {lb.name for lb in u.labels}
            for u in und.photos
            if Path(u.photo.path).name in by_file
        }
    files = sorted(set(preds[THRESHOLDS[0]]))
    posts = sorted({by_file[f]["post_id"] for f in files})
    order = np.random.default_rng(0).permutation(len(posts))
    half_a = {posts[i] for i in order[: len(posts) // 2]}
    halves = {"A": [f for f in files if by_file[f]["post_id"] in half_a]}
    halves["B"] = [f for f in files if by_file[f]["post_id"] not in half_a]

    def at(th: float, fs: list[str]) -> dict[str, float]:
        return score([preds[th][f] for f in fs], [by_file[f] for f in fs], labels)

    n_true = sum(len(by_file[f]["labels"]) for f in files)
    print(f"{len(files)} photos of {len(posts)} posts, {n_true} true (photo, label) pairs, labels: {', '.join(labels)}")
    print()
    print("| threshold | precision | recall | F1 | F0.5 | labels per photo |")
    print("|---|---|---|---|---|---|")
    for th in THRESHOLDS:
        r = at(th, files)
        print(
            f"| {th:g} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['f05']:.3f} "
            f"| {r['per_photo']:.2f} |"
        )
    photos_only = [f for f in files if not by_file[f].get("graphic")]
    print()
    print(f"Photos only ({len(photos_only)}; the {len(files) - len(photos_only)} posters and other graphics left out):")
    print()
    print("| threshold | precision | recall | F1 | F0.5 | labels per photo |")
    print("|---|---|---|---|---|---|")
    for th in THRESHOLDS:
        r = at(th, photos_only)
        print(
            f"| {th:g} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['f05']:.3f} "
            f"| {r['per_photo']:.2f} |"
        )
    print()
    print("Threshold chosen by F0.5 on the photos of one half (a wrong label costs a caption more than a")
    print("missing one), reported on the photos of the other:")
    print()
    print("| report half (chosen on) | photos | chosen threshold | precision | recall | F0.5 | F0.5 at 1.0 |")
    print("|---|---|---|---|---|---|---|")
    for rep, tune in (("B", "A"), ("A", "B")):
        tune_photos = [f for f in halves[tune] if f in photos_only]
        rep_photos = [f for f in halves[rep] if f in photos_only]
        best = max(THRESHOLDS, key=lambda th: (at(th, tune_photos)["f05"], -th))
        r = at(best, rep_photos)
        print(
            f"| {rep} ({tune}) | {len(rep_photos)} | {best:g} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['f05']:.3f} | {at(1.0, rep_photos)['f05']:.3f} |"
        )
    print()
    print("Per label at the shipped default threshold, all photos:")
    print()
    th = load_config().understand.threshold
    if th not in preds:
        raise SystemExit(f"the default threshold {th} is not among {THRESHOLDS}")
    print("| label | true | assigned | precision | recall |")
    print("|---|---|---|---|---|")
    for lab in labels:
        r = score([preds[th][f] for f in files], [by_file[f] for f in files], [lab])
        n_t = sum(lab in by_file[f]["labels"] for f in files)
        n_p = sum(lab in preds[th][f] for f in files)
        prec = f"{r['precision']:.3f}" if n_p else "-"
        rec = f"{r['recall']:.3f}" if n_t else "-"
        print(f"| {lab} | {n_t} | {n_p} | {prec} | {rec} |")


if __name__ == "__main__":
    main()
