"""How the culling thresholds were chosen: score distributions per tier on the club photos.

Pairs measured (the same signals the cull stage computes, from the same cached working copies):

* ``duplicate``: a club photo and an edited copy of it, made here (crop 10% and 20%, resize 50%, JPEG
  quality 30, brightness +30% and -30%, rotation by 3 degrees, a 5% white border, black and white);
* ``same post``: two different photos of one club post (same event, often the same scene, another frame:
  what a "similar shot" looks like, though many are different scenes of one event);
* ``distinct``: photos of different posts, each photo's 3 nearest neighbours in feature space (the hardest
  pairs the kNN index proposes) plus random pairs.

For each it prints the feature cosine, the perceptual-hash distance (bits of 64) and the alignment agreement
(share of textured tiles agreeing after ORB + RANSAC alignment), as percentiles, then how the default config
sorts every pair, then the quality signals of the club photos against degraded copies (blur, dark, blown out).

    .venv/bin/python benchmarks/cull_thresholds.py [--club ../shared/club] [--photos 16] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from photopoet.config import load_config
from photopoet.core.cache import open_cache
from photopoet.stages.cull import (
    _Pairs,
    _signals,
    hamming,
    pair_tier,
    quality_problem,
)
from photopoet.stages.ingest import ingest
from photopoet.stages.understand import ModelSet, understand


def edits(im: Image.Image) -> dict[str, Image.Image]:
    w, h = im.size
    border = max(1, round(0.05 * w))
    return {
        "crop10": im.crop((round(0.05 * w), round(0.05 * h), round(0.95 * w), round(0.95 * h))),
        "crop20": im.crop((round(0.2 * w), 0, w, round(0.8 * h))),
        "resize50": im.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        "jpeg30": im,  # saved at quality 30 below
        "bright+30": ImageEnhance.Brightness(im).enhance(1.3),
        "dark-30": ImageEnhance.Brightness(im).enhance(0.7),
        "rotate3": im.rotate(3, resample=Image.Resampling.BICUBIC),
        "border5": ImageOps.expand(im, border=border, fill=(255, 255, 255)),
        "gray": ImageOps.grayscale(im).convert("RGB"),
    }


def degrade(im: Image.Image) -> dict[str, Image.Image]:
    return {
        "blur-s2": im.filter(ImageFilter.GaussianBlur(2)),
        "blur-s4": im.filter(ImageFilter.GaussianBlur(4)),
        "dark-x0.2": ImageEnhance.Brightness(im).enhance(0.2),
        "bright-x2.5": ImageEnhance.Brightness(im).enhance(2.5),
    }


def pct(v: list[float], qs=(0, 5, 50, 95, 100)) -> str:
    v = [x for x in v if not np.isnan(x)]  # alignment is undefined for images without texture
    if not v:
        return " | ".join("-" for _ in qs)
    return " | ".join(f"{x:.3g}" for x in np.percentile(v, qs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club")
    ap.add_argument("--photos", type=int, default=16, help="club photos to make edited copies of")
    ap.add_argument("--work", type=Path, default=None, help="folder for the edited copies (default: a temp dir)")
    args = ap.parse_args()
    cfg = load_config()
    posts = [json.loads(line) for line in (args.club / "posts.jsonl").read_text(encoding="utf-8").splitlines()]
    post_of = {name: i for i, p in enumerate(posts) for name in p["images"]}
    rng = np.random.default_rng(0)
    picks = [posts[i]["images"][0] for i in rng.permutation(len(posts))[: args.photos]]

    work = args.work or Path(tempfile.mkdtemp(prefix="cull-thresholds-"))
    (work / "edits").mkdir(parents=True, exist_ok=True)
    (work / "degraded").mkdir(parents=True, exist_ok=True)
    for name in picks:
        with Image.open(args.club / "images" / name) as im:
            im = im.convert("RGB")
            stem = Path(name).stem
            for kind, e in edits(im).items():
                e.save(work / "edits" / f"{stem}__{kind}.jpg", quality=30 if kind == "jpeg30" else 90)
            for kind, e in degrade(im).items():
                e.save(work / "degraded" / f"{stem}__{kind}.jpg", quality=90)

    cache, cache_dir = open_cache(cfg)
    with cache:
        photos = []
        for folder in (args.club / "images", work / "edits", work / "degraded"):
            photos += ingest(folder, cfg.ingest, cache, progress=False).photos
        und = understand(photos, cfg, cache, ModelSet(cfg, cache_dir), progress=True)
        items, F = und.photos, und.features
        sig = _signals(items, cache, cfg.cull, progress=True)
        idx = {Path(u.photo.path).name: i for i, u in enumerate(items)}
        club = [i for i, u in enumerate(items) if Path(u.photo.path).name in post_of]

        pairs: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for name in picks:
            for kind in edits(Image.new("RGB", (8, 8))):
                pairs["duplicate"].append((idx[name], idx[f"{Path(name).stem}__{kind}.jpg"], kind))
        for p in posts:
            ims = [idx[n] for n in p["images"] if n in idx]
            for a in range(len(ims)):
                for b in range(a + 1, len(ims)):
                    pairs["same post"].append((ims[a], ims[b], ""))
        Fc = F[club]
        sims = Fc @ Fc.T
        seen = set()
        for r, i in enumerate(club):
            order = np.argsort(-sims[r])
            n_hard = 0
            for c in order:
                j = club[c]
                if post_of[Path(items[j].photo.path).name] == post_of[Path(items[i].photo.path).name]:
                    continue
                key = (min(i, j), max(i, j))
                if key not in seen:
                    seen.add(key)
                    pairs["distinct"].append((key[0], key[1], "hard"))
                n_hard += 1
                if n_hard == 3:
                    break
        for _ in range(300):
            i, j = (int(x) for x in rng.choice(club, 2, replace=False))
            if post_of[Path(items[i].photo.path).name] != post_of[Path(items[j].photo.path).name]:
                pairs["distinct"].append((min(i, j), max(i, j), "random"))

        ev = _Pairs(items, sig, cache)
        rows: dict[str, dict[str, list[float]]] = {}
        by_edit: dict[str, list[tuple[float, int, float]]] = defaultdict(list)
        verdicts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for tier, plist in pairs.items():
            cols: dict[str, list[float]] = {"cosine": [], "phash bits": [], "alignment": []}
            for i, j, kind in plist:
                cos = float(F[i] @ F[j])
                ham = hamming(sig[items[i].photo.sha256]["phash"], sig[items[j].photo.sha256]["phash"])
                align = ev.alignment(i, j)
                align = float("nan") if align is None else align
                cols["cosine"].append(cos)
                cols["phash bits"].append(ham)
                cols["alignment"].append(align)
                if tier == "duplicate":
                    by_edit[kind].append((cos, ham, align))
                got, _ = pair_tier(i, j, cos, items, sig, ev, cfg.cull)
                verdicts[tier][got or "none"] += 1
            rows[tier] = cols

        print("### Pair scores per tier (percentiles: min | p5 | median | p95 | max)\n")
        print("| pairs | n | signal | min | p5 | median | p95 | max |")
        print("|---|---|---|---|---|---|---|---|")
        for tier, cols in rows.items():
            for sig_name, v in cols.items():
                print(f"| {tier} | {len(v)} | {sig_name} | {pct(v)} |")
        print("\n### Edited copies per edit (min cosine, max phash bits, min alignment)\n")
        print("| edit | n | min cosine | max phash bits | min alignment |")
        print("|---|---|---|---|---|")
        for kind, v in by_edit.items():
            print(
                f"| {kind} | {len(v)} | {min(x[0] for x in v):.3f} | {max(x[1] for x in v)} | "
                f"{np.nanmin([x[2] for x in v]):.2f} |"
            )
        c = cfg.cull
        print(
            f"\n### How the defaults sort the pairs (candidate_cosine {c.candidate_cosine}, duplicate_alignment "
            f"{c.duplicate_alignment}, duplicate_hash_distance {c.duplicate_hash_distance}, similar_alignment "
            f"{c.similar_alignment}, similar_cosine {c.similar_cosine})\n"
        )
        print("| pairs | n | exact | duplicate | similar | none |")
        print("|---|---|---|---|---|---|")
        for tier, v in verdicts.items():
            n = sum(v.values())
            print(f"| {tier} | {n} | {v['exact']} | {v['duplicate']} | {v['similar']} | {v['none']} |")

        print("\n### Quality signals: club photos vs degraded copies (percentiles: min | p5 | median | p95 | max)\n")
        print("| photos | n | signal | min | p5 | median | p95 | max |")
        print("|---|---|---|---|---|---|---|---|")
        sets: dict[str, list[int]] = {"club": club}
        for i, u in enumerate(items):
            if "__" in Path(u.photo.path).name and "degraded" in u.photo.path:
                sets.setdefault(Path(u.photo.path).stem.split("__")[1], []).append(i)
        for name, members in sets.items():
            for key in ("sharpness", "p99", "mean", "bright"):
                print(
                    f"| {name} | {len(members)} | {key} | {pct([sig[items[i].photo.sha256][key] for i in members])} |"
                )
        print("\n### Quality verdicts with the defaults\n")
        print("| photos | n | blurry | too dark | blown out | eyes may be closed | low resolution | pass |")
        print("|---|---|---|---|---|---|---|---|")
        for name, members in sets.items():
            cnt: dict[str, int] = defaultdict(int)
            for i in members:
                p = items[i].photo
                prob = quality_problem(sig[p.sha256], p.width * p.height / 1e6, c)
                cnt[prob[0].split(":")[0] if prob else "pass"] += 1
            cells = " | ".join(
                str(cnt[k]) for k in ("blurry", "too dark", "blown out", "eyes may be closed", "low resolution", "pass")
            )
            print(f"| {name} | {len(members)} | {cells} |")
        with_face = [i for i in club if sig[items[i].photo.sha256]["faces"]]
        closed = [i for i in with_face if sig[items[i].photo.sha256]["eyes_closed"]]
        print(
            f"\nclub photos with a face big enough to judge: {len(with_face)}; with a face showing no open eye: "
            f"{len(closed)} (counted as a problem only with cull.closed_eyes on)"
        )
        for i in closed:
            print(f"  eyes may be closed: {Path(items[i].photo.path).name}")


if __name__ == "__main__":
    main()
