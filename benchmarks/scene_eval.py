"""The scene on the club's hand-labelled photos: poster vs photo, and night light.

``benchmarks/data/club_labels.json`` marks each of 80 club photos as a graphic (posters, announcements) or a
photograph, and with labels such as "night". Each photo goes through the pipeline's own path (``decode_photo``
to the cached working copy, then ``stages.scene.measure`` and ``build_scene``, default config, no OCR
reader). The photos are split by post with ``train.style_data.is_test_post`` (the caption benchmarks' split):
the poster model is fitted on the train posts only (``--fit`` refits and prints the coefficients that
``stages/scene.py`` ships) and reported on both.

    PYTHONPATH=src python benchmarks/scene_eval.py [--club ../shared/club] [--fit]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.records import Photo, Understood
from photopoet.stages.ingest import decode_photo, working_copy_from_bytes
from photopoet.stages.scene import build_scene, measure, poster_probability
from photopoet.train.style_data import is_test_post

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("text_lines", "flat", "edge")


def features(look: dict) -> list[float]:
    return [math.log1p(look["text_boxes"]), look["flat"], look["edge"]]


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 5000) -> tuple:
    """L2-regularised logistic regression on standardised features (gradient descent; tiny data)."""
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-9
    Z = (X - mu) / sd
    w, b = np.zeros(Z.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(Z @ w + b)))
        w -= 0.5 * (Z.T @ (p - y) + l2 * w) / len(y)
        b -= 0.5 * float((p - y).mean())
    return mu, sd, w, b


def prf(pred: list[bool], truth: list[bool]) -> tuple[float, float, float]:
    tp = sum(p and t for p, t in zip(pred, truth, strict=True))
    acc = sum(p == t for p, t in zip(pred, truth, strict=True)) / max(1, len(truth))
    prec = tp / max(1, sum(pred)) if sum(pred) else float("nan")
    rec = tp / max(1, sum(truth)) if sum(truth) else float("nan")
    return acc, prec, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=ROOT / "../shared/club")
    ap.add_argument("--truth", type=Path, default=ROOT / "benchmarks/data/club_labels.json")
    ap.add_argument("--fit", action="store_true", help="refit the poster model on the train posts and print it")
    args = ap.parse_args()
    cfg = load_config()
    truth = json.loads(args.truth.read_text(encoding="utf-8"))["photos"]
    rows = []
    t_measure = 0.0
    for t in truth:
        path = args.club / "images" / t["file"]
        meta, thumb = decode_photo(path, cfg.ingest.thumb_size, cfg.ingest.max_pixels)
        img = working_copy_from_bytes(thumb)
        t0 = time.perf_counter()
        look = measure(img)
        t_measure += time.perf_counter() - t0
        photo = Photo(str(path), "-", img.width, img.height, "JPEG", 0, meta.get("taken_at"), None)
        rows.append({"t": t, "look": look, "u": Understood(photo=photo), "test": is_test_post(t["post_id"])})

    if args.fit:
        tr = [r for r in rows if not r["test"]]
        X = np.array([features(r["look"]) for r in tr])
        y = np.array([float(r["t"]["graphic"]) for r in tr])
        mu, sd, w, b = fit_logistic(X, y)
        print("POSTER_MODEL = {")
        for k, m, s, ww in zip(FEATURES, mu, sd, w, strict=True):
            print(f'    "{k}": ({m:.4f}, {s:.4f}, {ww:.4f}),')
        print("}")
        print(f"POSTER_BIAS = {b:.4f}\n")

    t0 = time.perf_counter()
    scenes = [build_scene(r["u"], r["look"], cfg.scene) for r in rows]
    t_build = time.perf_counter() - t0
    n_posts = len({r["t"]["post_id"] for r in rows})
    print(f"{len(rows)} hand-labelled club photos of {n_posts} posts ({sum(r['t']['graphic'] for r in rows)} graphics)")
    print("split by post (train_style.is_test_post); poster model fitted on the train posts only\n")
    print("| split | photos | graphics | poster accuracy | precision | recall |")
    print("|---|---|---|---|---|---|")
    for name, keep in (("train", False), ("test", True), ("all", None)):
        idx = [i for i, r in enumerate(rows) if keep is None or r["test"] == keep]
        pred = [scenes[i].kind == "poster" for i in idx]
        gold = [bool(rows[i]["t"]["graphic"]) for i in idx]
        acc, prec, rec = prf(pred, gold)
        print(f"| {name} | {len(idx)} | {sum(gold)} | {acc:.3f} | {prec:.3f} | {rec:.3f} |")
    photos = [i for i, r in enumerate(rows) if not r["t"]["graphic"]]
    scored = [i for i in photos if "night" not in rows[i]["t"].get("unsure", [])]
    pred = [scenes[i].light == "night" for i in scored]
    gold = [("night" in rows[i]["t"]["labels"]) for i in scored]
    acc, prec, rec = prf(pred, gold)
    print(
        f"\nlight == night against the hand label 'night' (photographs, {len(scored)}; {sum(gold)} night): "
        f"accuracy {acc:.3f}, precision {prec:.3f}, recall {rec:.3f}"
    )
    lights: dict[str, int] = {}
    for i in photos:
        lights[str(scenes[i].light)] = lights.get(str(scenes[i].light), 0) + 1
    print("light of the photographs:", ", ".join(f"{k} {v}" for k, v in sorted(lights.items())))
    bars = (0.1, 0.15, 0.2, 0.3)
    everyone = sorted((args.club / "images").iterdir())
    scores = []
    for path in everyone:
        try:
            _, thumb = decode_photo(path, cfg.ingest.thumb_size, cfg.ingest.max_pixels)
        except Exception:  # noqa: BLE001 - a file the pipeline would set aside
            continue
        scores.append(poster_probability(measure(working_copy_from_bytes(thumb))))
    print(f"\nphotos an OCR reader gets at each scene.ocr_min_score (of {len(scores)} club photos):\n")
    print(
        "| bar | graphics read (train) | photographs read (train) | graphics read (test) | photographs read (test) "
        "| club photos read |"
    )
    print("|---|---|---|---|---|---|")
    for bar in bars:
        cells = []
        for test in (False, True):
            for graphic in (True, False):
                sel = [r for r in rows if r["test"] == test and bool(r["t"]["graphic"]) == graphic]
                cells.append(f"{sum(poster_probability(r['look']) >= bar for r in sel)}/{len(sel)}")
        print(f"| {bar:g} | {' | '.join(cells)} | {sum(x >= bar for x in scores)}/{len(scores)} |")
    print(
        f"\nseconds per photo: image statistics {t_measure / len(rows):.4f}, scene from statistics "
        f"{t_build / len(rows):.5f} (working copy {cfg.ingest.thumb_size} px; faces come from the appearance stage)"
    )


if __name__ == "__main__":
    main()
