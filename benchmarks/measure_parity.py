"""Parity of the one-pass measurements (stages/measure.py) with the two passes they replace.

Runs an older checkout of photopoet (``--old-src``, e.g. a worktree of main before the change) and this one in
child processes on the same photos and compares:

* ``photos``: per photo, the look vector (colour histogram, cover quality, loose faces, face share) and the cull
  signals (perceptual hash, sharpness, exposure, strict faces, closed eyes), computed from the same working
  copy without a cache: the old ``appearance.analyse`` + ``cull.photo_signals`` against ``measure_photo``;
* ``cull``: ingest, understand, scenes, cull and group on a folder (``pipeline.group_folder``), each side with
  its own copy of a cache (``--cache``, so image features are not recomputed; the per-photo measurement kinds
  are deleted from the copies first, so both sides measure): verdicts, reasons, labels, faces and posts;
* ``sharpness``: whether the cover quality (Laplacian of a 256 px copy) could be derived from the cull's
  sharpness (OpenCV Laplacian at 512 px): the spread of their ratio over the photos.

    python benchmarks/measure_parity.py --old-src /work/base18/src ../shared/club/images --cache ~/.cache/photopoet

Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"
MEASURE_KINDS = ("appearance:%", "cull-signals:%")


def sample_images(out: Path) -> list[Path]:
    """skimage's and sklearn's sample photos saved as PNG files in `out` (real photos with faces)."""
    import numpy as np
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        n: getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")
    }
    for name, im in zip(("china", "flower"), load_sample_images().images, strict=True):
        arrays[name] = im
    paths = []
    for name, a in arrays.items():
        p = out / f"{name}.png"
        Image.fromarray(np.asarray(a)).save(p)
        paths.append(p)
    return paths


def child_photos(paths: list[str], min_face: int) -> dict:
    import numpy as np

    from photopoet.stages.ingest import decode_photo, working_copy_from_bytes

    try:
        from photopoet.stages.measure import measure_photo

        def one(img):
            m = measure_photo(img, min_face_px=min_face)
            return m.look, m.signals
    except ImportError:  # the old code: two passes
        from photopoet.stages.appearance import analyse
        from photopoet.stages.cull import photo_signals

        def one(img):
            return analyse(img, faces=True), photo_signals(img, min_face=min_face)

    out = {}
    for p in paths:
        _, thumb = decode_photo(p, 512, 200_000_000)
        look, sig = one(working_copy_from_bytes(thumb))
        out[p] = {"look": np.asarray(look, dtype=np.float32).tolist(), "signals": sig}
    return out


def child_cull(folder: str, cache_dir: str) -> dict:
    from photopoet.config import load_config
    from photopoet.pipeline import group_folder

    cfg = load_config(None, {"cache": {"dir": cache_dir}})
    fg = group_folder(folder, cfg, progress=False)
    und = fg.understanding
    by_path = {u.photo.path: i for i, u in enumerate(und.photos)}
    photos = {}
    for u in fg.culled.photos:
        i = by_path[u.photo.path]
        photos[u.photo.path] = {
            "verdict": u.verdict,
            "reason": u.reason,
            "duplicate_of": u.duplicate_of,
            "labels": [[lb.name, lb.score] for lb in u.labels],
            "faces": int(und.faces[i]),
            "face_share": float(und.face_share[i]),
            "quality": float(und.quality[i]),
            "scene": None if u.scene is None else u.scene.kind,
        }
    return {
        "photos": photos,
        "groups": [g.to_json() for g in fg.culled.groups],
        "posts": [list(p.photos) for p in fg.grouping.posts],
    }


def child_sharpness(paths: list[str]) -> dict:
    import numpy as np

    from photopoet.stages.ingest import decode_photo, working_copy_from_bytes
    from photopoet.stages.measure import COVER_SIZE, gray_at

    rows = []
    for p in paths:
        _, thumb = decode_photo(p, 512, 200_000_000)
        img = working_copy_from_bytes(thumb)
        small = img.convert("L")
        small.thumbnail((COVER_SIZE, COVER_SIZE))
        g = np.asarray(small).astype(np.float32)
        lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
        import cv2

        big = cv2.Laplacian(gray_at(img), cv2.CV_64F, ksize=1)
        rows.append((float(lap.var()), float(big.var())))
    return {"rows": rows}


def run_child(src: Path, mode: str, payload: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f)
    cmd = [sys.executable, __file__, "--child", mode, f.name]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    os.unlink(f.name)
    if res.returncode != 0:
        raise SystemExit(f"child {mode} with {src} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.splitlines()[-1])


def copy_cache(src: Path, dst: Path) -> None:
    """`src`'s cache database (without the measurement kinds) and a link to its models folder, in `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "cache.sqlite3", dst / "cache.sqlite3")
    if (src / "models").exists() and not (dst / "models").exists():
        (dst / "models").symlink_to((src / "models").resolve())
    con = sqlite3.connect(dst / "cache.sqlite3")
    for pattern in MEASURE_KINDS:
        for table in ("vectors", "json_values"):
            con.execute(f"DELETE FROM {table} WHERE kind LIKE ?", (pattern,))
    con.commit()
    con.close()


def compare_photos(old: dict, new: dict) -> int:
    import numpy as np

    bad = 0
    faces_old = faces_new = strict = 0
    for p in old:
        a, b = old[p], new[p]
        same_look = np.array_equal(np.asarray(a["look"], np.float32), np.asarray(b["look"], np.float32))
        if not same_look or a["signals"] != b["signals"]:
            bad += 1
            print(f"DIFFERS {p}: look {same_look}, signals {a['signals']} vs {b['signals']}")
        faces_old += int(a["look"][-2])
        faces_new += int(b["look"][-2])
        strict += int(a["signals"]["faces"])
    print(
        f"photos: {len(old)} compared, {len(old) - bad} identical (look vector and cull signals); "
        f"loose faces {faces_old} old / {faces_new} new, strict faces {strict}"
    )
    return bad


def compare_cull(old: dict, new: dict) -> int:
    bad = 0
    po, pn = old["photos"], new["photos"]
    fields = ("verdict", "reason", "duplicate_of", "labels", "faces", "face_share", "quality", "scene")
    for f in fields:
        diff = [p for p in po if po[p][f] != pn.get(p, {}).get(f)]
        print(f"cull: {f:12s} equal on {len(po) - len(diff)}/{len(po)} photos")
        bad += len(diff)
        for p in diff[:5]:
            print(f"  {p}: {po[p][f]!r} vs {pn.get(p, {}).get(f)!r}")
    verdicts: dict[str, int] = {}
    for v in po.values():
        verdicts[v["verdict"]] = verdicts.get(v["verdict"], 0) + 1
    print(f"cull: verdicts {dict(sorted(verdicts.items()))}")
    for k in ("groups", "posts"):
        same = old[k] == new[k]
        print(f"cull: {k} identical: {same} ({len(old[k])} old, {len(new[k])} new)")
        bad += not same
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, nargs="?", help="photos to compare (e.g. ../shared/club/images)")
    ap.add_argument("--old-src", type=Path, required=True, help="the src folder of the old checkout")
    ap.add_argument("--cache", type=Path, help="a cache folder to copy for the cull comparison (else no cull run)")
    ap.add_argument("--min-face", type=int, default=80)
    ap.add_argument("--no-photos", action="store_true", help="skip the per-photo and sharpness comparisons")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="measure_parity_"))
    paths = [str(p) for p in sample_images(work / "samples")]
    if args.folder is not None:
        paths += sorted(str(p) for p in args.folder.iterdir() if p.is_file())
    bad = 0
    if not args.no_photos:
        payload = {"paths": paths, "min_face": args.min_face}
        bad += compare_photos(run_child(args.old_src, "photos", payload), run_child(HERE, "photos", payload))
        rows = run_child(HERE, "sharpness", {"paths": paths})["rows"]
        ratios = sorted(big / small for small, big in rows if small > 0)
        if ratios:
            q = [ratios[int(f * (len(ratios) - 1))] for f in (0.0, 0.1, 0.5, 0.9, 1.0)]
            print(
                "sharpness: Laplacian variance at 512 px / at 256 px over the photos: min {:.3f}, p10 {:.3f}, "
                "median {:.3f}, p90 {:.3f}, max {:.3f} (not a constant: the cover quality cannot be derived "
                "from the cull's sharpness, so both are measured in the one pass)".format(*q)
            )
    if args.folder is not None and args.cache is not None:
        for side in ("old", "new"):
            copy_cache(args.cache.expanduser(), work / side)
        old = run_child(args.old_src, "cull", {"folder": str(args.folder), "cache_dir": str(work / "old")})
        new = run_child(HERE, "cull", {"folder": str(args.folder), "cache_dir": str(work / "new")})
        bad += compare_cull(old, new)
    shutil.rmtree(work, ignore_errors=True)
    print("IDENTICAL" if not bad else f"{bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, payload = sys.argv[2], json.loads(Path(sys.argv[3]).read_text())
        fn = {"photos": child_photos, "cull": child_cull, "sharpness": child_sharpness}[mode]
        print(json.dumps(fn(**payload)))
    else:
        sys.exit(main())
