"""Duplicate detection on a labelled set made from the club photos: photopoet's cull stage against imagededup's
PHash and DHash, on the same folder in the same run.

The set (see photopoet.evaluation.dedupe_set): for each of --sources club photos, a same-bytes copy and a
lossless PNG (exact) and seven edited copies (crop 10-20%, resize 50%, JPEG q30, brightness x1.3 / x0.7,
rotation 2-4 degrees cropped, 5% white border, black and white: duplicate); --bursts synthetic bursts (two
panned frames of one photo with a moved block: similar); and one untouched photo of every other club post
(negatives). Sources, bursts and negatives all come from different posts.

Scoring (photopoet.metrics.duplicates): pairwise precision / recall / F1 with union semantics. photopoet is
scored per tier. imagededup has no tiers: its reported pairs are joined into groups and scored on the
"any_duplicate" pairs (exact + duplicate); the bursts are not positives for it, and the table says how many
burst pairs it flagged. imagededup runs at its default threshold (max_distance_threshold=10 of 64 bits).

    .venv/bin/python benchmarks/dedupe_eval.py [--club ../shared/club/images] [--sources 40] [--bursts 10]
        [--seed 0] [--work DIR] [--json FILE]

imagededup is installed without its torch/torchvision dependencies (`make bench-dedupe` does it); its
package __init__ files import the CNN method (torchvision), so the hashing module is loaded on its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.config import load_config
from photopoet.evaluation.dedupe import relative_groups
from photopoet.evaluation.dedupe_set import EDITS, load_related, make_dedupe_set
from photopoet.metrics.duplicates import components, duplicate_metrics, tier_confusion
from photopoet.pipeline import dedupe_folder

ROOT = Path(__file__).resolve().parents[1]


def imagededup_hashing() -> Any:
    """imagededup.methods.hashing without running imagededup.methods/__init__ or imagededup.utils/__init__
    (they import the CNN method and its torchvision models, which must not be installed here)."""
    spec = importlib.util.find_spec("imagededup")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "imagededup is not installed: `make bench-dedupe`, or "
            "`.venv/bin/pip install -c constraints.txt --no-deps imagededup` (plus PyWavelets, scipy, tqdm)"
        )
    root = Path(spec.origin).parent
    for sub in ("utils", "methods"):
        name = f"imagededup.{sub}"
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root / sub)]
            sys.modules[name] = pkg
    from imagededup.methods import hashing

    return hashing


def run_imagededup(method: str, photos: Path, threshold: int) -> tuple[list[tuple[str, list[str]]], float]:
    hashing = imagededup_hashing()
    t0 = time.perf_counter()
    found = getattr(hashing, method)(verbose=False).find_duplicates(image_dir=photos, max_distance_threshold=threshold)
    seconds = time.perf_counter() - t0
    groups = [("duplicate", [a, b]) for a, dups in found.items() for b in dups]
    return groups, seconds


def run_photopoet(photos: Path, cache_dir: Path, config: Path | None) -> tuple[list[tuple[str, list[str]]], float]:
    cfg = load_config(config, overrides={"cache": {"dir": str(cache_dir)}})
    t0 = time.perf_counter()
    res = dedupe_folder(photos, cfg, progress=True)
    seconds = time.perf_counter() - t0
    return relative_groups(res.groups, photos), seconds


def per_edit_recall(truth: dict[str, Any], predicted: list[tuple[str, list[str]]]) -> dict[str, float]:
    """For each edit, the share of sources whose original and edited copy are in one predicted group
    (at the duplicate tier or stronger)."""
    comp = components(predicted, "duplicate")
    tags = sorted(truth["sources"]["sources"])
    names = {p.rsplit(".", 1)[0]: p for p in truth["photos"]}
    out = {}
    for edit in ("copy", "png", *EDITS):
        hits = 0
        for tag in tags:
            orig, other = names[f"{tag}-orig"], names[f"{tag}-{edit}"]
            hits += orig in comp and comp[orig] == comp.get(other)
        out[edit] = hits / len(tags) if tags else 0.0
    return out


def alignment_by_truth(photos: Path, truth: dict[str, Any], cache_dir: Path) -> dict[str, list[float]]:
    """The alignment agreement the cull stage measured (read back from its cache) for every candidate pair,
    by what the pair truly is: an edited copy, a burst, or two distinct photos. Pairs it never compared
    (feature cosine under ``candidate_cosine``, or decided by the bytes) are not in the cache."""
    import hashlib
    import itertools

    from photopoet.core.cache import Cache
    from photopoet.stages.cull import ALIGN_KIND

    sha = {name: hashlib.sha256((photos / name).read_bytes()).hexdigest() for name in truth["photos"]}
    kind_of: dict[frozenset[str], str] = {}
    for g in truth["groups"]:
        label = "edited copy" if g["kind"] != "similar" else "burst"
        for a, b in itertools.combinations(g["photos"], 2):
            kind_of.setdefault(frozenset((a, b)), label)
    keys = {}
    for a, b in itertools.combinations(truth["photos"], 2):
        x, y = sorted((sha[a], sha[b]))
        if x != y:
            keys[f"{x}:{y}"] = kind_of.get(frozenset((a, b)), "distinct")
    out: dict[str, list[float]] = {"edited copy": [], "burst": [], "distinct": []}
    with Cache(cache_dir / "cache.sqlite3") as cache:
        for key, value in cache.get_json(ALIGN_KIND, list(keys)).items():
            if value is not None:
                out[keys[key]].append(float(value))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=ROOT.parent / "shared" / "club" / "images")
    ap.add_argument("--sources", type=int, default=40)
    ap.add_argument("--bursts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=int, default=10, help="imagededup max_distance_threshold (its default)")
    ap.add_argument("--config", type=Path, default=None, help="photopoet config to evaluate (default settings)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the set and the cache (default: temp)")
    ap.add_argument(
        "--related",
        type=Path,
        default=ROOT / "benchmarks/data/club_reuse.json",
        help="pictures reused across club posts, kept from being paired as distinct photos",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write every metric to this file")
    args = ap.parse_args()

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="dedupe-eval-")
        args.work = Path(tmp.name)
    related = load_related(args.related) if args.related and args.related.is_file() else []
    truth_path = make_dedupe_set(
        args.club, args.work / "set", args.sources, args.seed, n_bursts=args.bursts, related=related
    )
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    photos = args.work / "set" / "photos"
    print(f"set: {len(truth['photos'])} photos in {photos}", file=sys.stderr)

    runs: dict[str, tuple[list, float]] = {}
    # imagededup first: its worker processes fork before photopoet loads its model threads
    for method in ("PHash", "DHash"):
        runs[f"imagededup {method}"] = run_imagededup(method, photos, args.threshold)
    runs["photopoet"] = run_photopoet(photos, args.work / "cache", args.config)

    results: dict[str, Any] = {"photos": len(truth["photos"]), "seed": args.seed, "methods": {}}
    lines = [
        "| method | tier | truth pairs | predicted pairs | precision | recall | F1 | burst pairs flagged | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (pred, seconds) in runs.items():
        m = duplicate_metrics(truth["groups"], pred)
        results["methods"][name] = {
            "metrics": m,
            "confusion": tier_confusion(truth["groups"], pred),
            "per_edit_recall": per_edit_recall(truth, pred),
            "seconds": seconds,
        }
        rows = ("exact", "duplicate", "similar", "any_duplicate") if name == "photopoet" else ("any_duplicate",)
        for row in rows:
            flagged = f"{m['flagged_similar']} of {m['truth_pairs_similar']}" if row == "any_duplicate" else ""
            lines.append(
                f"| {name} | {row.replace('_', ' ')} | {m[f'truth_pairs_{row}']} | {m[f'predicted_pairs_{row}']} | "
                f"{m[f'precision_{row}']:.3f} | {m[f'recall_{row}']:.3f} | {m[f'f1_{row}']:.3f} | {flagged} | "
                f"{seconds:.1f} |"
            )
    print(
        f"\n{len(truth['photos'])} photos ({args.sources} sources x 10 files, {args.bursts} bursts x 2, "
        f"{len(truth['sources']['negatives'])} negatives), seed {args.seed}\n"
    )
    print("\n".join(lines))

    edits = ("copy", "png", *EDITS)
    print("\nrecall of (original, copy) pairs by edit, at the duplicate tier or stronger:\n")
    print("| method | " + " | ".join(edits) + " |")
    print("|---|" + "---|" * len(edits))
    for name, r in results["methods"].items():
        print(f"| {name} | " + " | ".join(f"{r['per_edit_recall'][e]:.2f}" for e in edits) + " |")

    conf = results["methods"]["photopoet"]["confusion"]
    cols = ("exact", "duplicate", "similar", "none")
    print("\nphotopoet, pairs by truth tier (rows) and predicted tier (columns):\n")
    print("| truth \\ predicted | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for row in ("exact", "duplicate", "similar", "none"):
        print(f"| {row} | " + " | ".join(str(conf[row].get(c, "")) for c in cols) + " |")

    align = alignment_by_truth(photos, truth, args.work / "cache")
    results["alignment_by_truth"] = align
    print("\nalignment agreement of the pairs photopoet compared, by what they truly are:\n")
    print("| pairs | compared | min | median | 90th pct | max |")
    print("|---|---|---|---|---|---|")
    for kind, vals in align.items():
        if vals:
            q = np.quantile(vals, [0, 0.5, 0.9, 1.0])
            print(f"| {kind} | {len(vals)} | " + " | ".join(f"{v:.2f}" for v in q) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
