"""A labelled duplicate-detection set made from real photos: edited copies, exact copies, bursts, negatives.

For each *source* photo it writes (all in one flat folder ``DEST/photos``):

* ``sNNN-orig.<ext>``   the source file, byte for byte;
* ``sNNN-copy.<ext>``   the same bytes under another name                               (exact)
* ``sNNN-png.png``      a lossless PNG re-encode of the decoded pixels                    (exact)
* ``sNNN-crop.jpg``     10-20% cut off each side's total (random split between the sides)  (duplicate)
* ``sNNN-resize.jpg``   half the width and height                                         (duplicate)
* ``sNNN-jpeg30.jpg``   re-compressed at JPEG quality 30                                  (duplicate)
* ``sNNN-exposure.jpg`` brightness x1.3 or x0.7 (random)                                  (duplicate)
* ``sNNN-rotate.jpg``   rotated 2-4 degrees either way, cropped to the largest rectangle
                        of the same aspect ratio with no empty corners                    (duplicate)
* ``sNNN-border.jpg``   a white border of 5% of the width on every side                   (duplicate)
* ``sNNN-bw.jpg``       black and white (one channel)                                     (duplicate)

Edited copies are saved at JPEG quality 90 (except ``jpeg30``), from the upright decoded source.

*Bursts* (the "similar" tier) are synthetic, because two photos of one club post are often different scenes
of the same event and cannot be told apart from true bursts without looking: from one further photo, two
frames ``bNNN-a.jpg`` / ``bNNN-b.jpg`` are cut, each 75% of the width and 90% of the height, the second
shifted right by 15-25% of the width (the camera panned) and, inside the part both frames show, a central
block of 40% x 50% of the frame moved sideways by 4-8% of the width (the subject moved). A pan of one still frame
is an imperfect stand-in for a real burst (same exposure, same instant elsewhere in the frame); read the
"similar" row with that in mind.

*Negatives* ``nNNN.<ext>`` are untouched photos from other posts.

With a ``posts.jsonl`` next to the source folder (the club set's layout), every source, burst source and
negative comes from a different post, so two unlabelled photos are never frames of one club post; without
it, every file counts as its own post. The choice is deterministic for a seed.

Truth file (``DEST/truth.json``; paths are relative to ``DEST/photos``)::

    {"version": 1,
     "groups": [{"kind": "exact" | "duplicate" | "similar", "photos": [rel path, ...]}, ...],
     "photos": [every rel path in the folder],
     "sources": {...how each group was made...}}

A source's ``exact`` group is ``orig``, ``copy`` and ``png``; its ``duplicate`` group is every file made from
it (the exact ones too: a crop and the PNG are the same frame). How pairs count per tier is defined in
:mod:`photopoet.metrics.duplicates`.

    python -m photopoet.evaluation.dedupe_set SRC DEST [--sources 40] [--bursts 10] [--negatives N] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from photopoet.core.images import open_upright
from photopoet.errors import TruthError

TRUTH_VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
EDITS = ("crop", "resize", "jpeg30", "exposure", "rotate", "border", "bw")
EDIT_QUALITY = 90


# -- the edits ----------------------------------------------------------------------------------------------


def inscribed_scale(w: int, h: int, degrees: float) -> float:
    """Largest s such that a centred (s*w) x (s*h) rectangle fits inside the w x h frame rotated by `degrees`."""
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    # a point (x, y) lies inside the rotated frame iff |x c + y s| <= w/2 and |-x s + y c| <= h/2;
    # the binding corners of the centred rectangle give these two limits
    return min(w / (w * c + h * s), h / (w * s + h * c))


def _crop(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    w, h = im.size
    frac = rng.uniform(0.10, 0.20)  # share of each dimension removed
    left = rng.uniform(0, 1) * frac
    top = rng.uniform(0, 1) * frac
    box = (round(left * w), round(top * h), round((1 - frac + left) * w), round((1 - frac + top) * h))
    return im.crop(box), {"removed": round(frac, 3), "box": list(box)}


def _resize(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    w, h = im.size
    return im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS), {"scale": 0.5}


def _jpeg30(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    return im, {"quality": 30}


def _exposure(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    factor = rng.choice((1.3, 0.7))
    return ImageEnhance.Brightness(im).enhance(factor), {"brightness": factor}


def _rotate(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    deg = rng.uniform(2.0, 4.0) * rng.choice((-1, 1))
    w, h = im.size
    rot = im.rotate(deg, resample=Image.Resampling.BICUBIC, expand=False)
    s = inscribed_scale(w, h, deg) * 0.995  # a hair inside: no interpolated edge pixels
    cw, ch = int(s * w), int(s * h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return rot.crop((left, top, left + cw, top + ch)), {"degrees": round(deg, 2), "kept": round(s, 3)}


def _border(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    b = max(1, round(0.05 * im.width))
    return ImageOps.expand(im, border=b, fill=(255, 255, 255)), {"border_px": b}


def _bw(im: Image.Image, rng: random.Random) -> tuple[Image.Image, dict[str, Any]]:
    return im.convert("L"), {}


_EDIT_FUNCS: dict[str, Callable[[Image.Image, random.Random], tuple[Image.Image, dict[str, Any]]]] = {
    "crop": _crop,
    "resize": _resize,
    "jpeg30": _jpeg30,
    "exposure": _exposure,
    "rotate": _rotate,
    "border": _border,
    "bw": _bw,
}


def burst_frames(im: Image.Image, rng: random.Random) -> tuple[Image.Image, Image.Image, dict[str, Any]]:
    """Two synthetic frames of one scene: a pan of 15-25% of the width and a central block that moved."""
    w, h = im.size
    shift = rng.uniform(0.15, 0.25)
    fw, fh = round(0.75 * w), round(0.9 * h)
    top_a = rng.randint(0, h - fh)
    top_b = min(h - fh, max(0, top_a + rng.randint(-h // 40, h // 40)))
    xa, xb = 0, round(shift * w)
    arr = np.asarray(im.convert("RGB"))
    moved = arr.copy()
    # the subject: a block a quarter of the frame's area in the middle of the shared part, moved sideways
    bw_, bh_ = round(0.4 * fw), round(0.5 * fh)
    cx = (xb + xa + fw) // 2
    bx, by = cx - bw_ // 2, (h - bh_) // 2
    d = round(rng.uniform(0.04, 0.08) * w) * rng.choice((-1, 1))
    src_x = min(max(0, bx + d), w - bw_)
    moved[by : by + bh_, bx : bx + bw_] = arr[by : by + bh_, src_x : src_x + bw_]
    a = Image.fromarray(arr[top_a : top_a + fh, xa : xa + fw])
    b = Image.fromarray(moved[top_b : top_b + fh, xb : xb + fw])
    return a, b, {"pan": round(shift, 3), "subject_shift_px": d}


# -- choosing the photos ------------------------------------------------------------------------------------


def _posts(src_dir: Path, posts_file: Path | None) -> list[list[str]]:
    """Lists of file names (relative to `src_dir`) that belong together; sorted, each list sorted."""
    files = sorted(
        p.relative_to(src_dir).as_posix()
        for p in src_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if posts_file is None or not posts_file.is_file():
        return [[f] for f in files]
    have = set(files)
    out: list[list[str]] = []
    seen: set[str] = set()
    for line in posts_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        names = [n for n in json.loads(line).get("images", []) if n in have and n not in seen]
        seen.update(names)
        if names:
            out.append(sorted(names))
    out.extend([f] for f in files if f not in seen)  # files no post names: their own post
    return sorted(out)


def _merge_related(posts: list[list[str]], related: Sequence[Sequence[str]]) -> list[list[str]]:
    """Posts that hold members of one related family joined into one (sorted, like :func:`_posts`)."""
    where = {name: k for k, post in enumerate(posts) for name in post}
    parent = list(range(len(posts)))

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for family in related:
        ks = [where[n] for n in family if n in where]
        for k in ks[1:]:
            parent[root(k)] = root(ks[0])
    merged: dict[int, list[str]] = {}
    for k, post in enumerate(posts):
        merged.setdefault(root(k), []).extend(post)
    return sorted(sorted(p) for p in merged.values())


def load_related(path: Path | str) -> list[list[str]]:
    """Families of reused pictures from a JSON file ``{"families": [{"files": [name, ...], ...}, ...]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [list(f["files"]) for f in data.get("families", [])]


def _open_upright(path: Path) -> Image.Image:
    up = open_upright(path)
    return up.convert("RGB") if up.mode != "RGB" else up


def _save_jpeg(im: Image.Image, path: Path, quality: int = EDIT_QUALITY) -> None:
    im.save(path, format="JPEG", quality=quality)


def make_dedupe_set(
    src_dir: Path | str,
    dest_dir: Path | str,
    n_sources: int = 40,
    seed: int = 0,
    *,
    n_bursts: int = 10,
    n_negatives: int | None = None,
    posts_file: Path | str | None = None,
    max_side: int | None = None,
    related: Sequence[Sequence[str]] = (),
) -> Path:
    """Write the labelled set to ``dest_dir/photos`` and its truth to ``dest_dir/truth.json``; return the latter.

    `posts_file` defaults to ``posts.jsonl`` next to `src_dir` (the club set's layout) if there is one.
    `n_negatives` defaults to every post left after the sources and bursts (one photo each). `max_side`
    shrinks the sources first (useful for fast tests); by default they are used at their own size.
    `related` lists families of file names (relative to `src_dir`) that are one picture or one design reused
    in different posts (a photo posted again under a title, a poster template): their posts count as one, so
    at most one member of a family enters the set and it never holds an unlabelled pair of them.
    """
    src_dir, dest_dir = Path(src_dir), Path(dest_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir}: not a folder of photos")
    if n_sources < 1 or n_bursts < 0 or (n_negatives is not None and n_negatives < 0):
        raise ValueError("n_sources must be at least 1; n_bursts and n_negatives at least 0")
    if posts_file is None:
        cand = src_dir.parent / "posts.jsonl"
        posts_file = cand if cand.is_file() else None
    posts = _merge_related(_posts(src_dir, Path(posts_file) if posts_file else None), related)
    need = n_sources + n_bursts + (n_negatives or 0)
    if len(posts) < need:
        raise ValueError(
            f"{src_dir}: {len(posts)} posts (photos from different posts) for {n_sources} sources, "
            f"{n_bursts} bursts and {n_negatives or 0} negatives"
        )
    rng = random.Random(seed)
    order = list(range(len(posts)))
    rng.shuffle(order)
    picks = [rng.choice(posts[i]) for i in order]
    sources = picks[:n_sources]
    bursts = picks[n_sources : n_sources + n_bursts]
    rest = picks[n_sources + n_bursts :]
    negatives = rest if n_negatives is None else rest[:n_negatives]

    out = dest_dir / "photos"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    groups: list[dict[str, Any]] = []
    made: dict[str, Any] = {"seed": seed, "sources": {}, "bursts": {}, "negatives": {}}

    def source_image(name: str) -> Image.Image:
        im = _open_upright(src_dir / name)
        if max_side and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return im

    for k, name in enumerate(sources):
        tag = f"s{k:03d}"
        ext = Path(name).suffix.lower()
        src_path = src_dir / name
        if max_side:  # a shrunk source: the "original" is the shrunk image, stored losslessly enough
            im = source_image(name)
            orig = f"{tag}-orig.jpg"
            _save_jpeg(im, out / orig, 95)
            ext = ".jpg"
            im = _open_upright(out / orig)
        else:
            orig = f"{tag}-orig{ext}"
            shutil.copyfile(src_path, out / orig)
            im = _open_upright(out / orig)
        copy = f"{tag}-copy{ext}"
        shutil.copyfile(out / orig, out / copy)
        png = f"{tag}-png.png"
        im.save(out / png, format="PNG")
        family = [orig, copy, png]
        params: dict[str, Any] = {}
        for edit in EDITS:
            edited, p = _EDIT_FUNCS[edit](im, rng)
            fname = f"{tag}-{edit}.jpg"
            _save_jpeg(edited, out / fname, 30 if edit == "jpeg30" else EDIT_QUALITY)
            params[edit] = p
            family.append(fname)
        groups.append({"kind": "exact", "photos": [orig, copy, png]})
        groups.append({"kind": "duplicate", "photos": family})
        made["sources"][tag] = {"from": name, "edits": params}

    for k, name in enumerate(bursts):
        tag = f"b{k:03d}"
        a, b, p = burst_frames(source_image(name), rng)
        fa, fb = f"{tag}-a.jpg", f"{tag}-b.jpg"
        _save_jpeg(a, out / fa)
        _save_jpeg(b, out / fb)
        groups.append({"kind": "similar", "photos": [fa, fb]})
        made["bursts"][tag] = {"from": name, **p}

    for k, name in enumerate(negatives):
        fname = f"n{k:03d}{Path(name).suffix.lower()}"
        if max_side:
            fname = f"n{k:03d}.jpg"
            _save_jpeg(source_image(name), out / fname, 95)
        else:
            shutil.copyfile(src_dir / name, out / fname)
        made["negatives"][fname] = name

    truth = {
        "version": TRUTH_VERSION,
        "groups": groups,
        "photos": sorted(p.name for p in out.iterdir()),
        "sources": made,
    }
    path = dest_dir / "truth.json"
    path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_truth(path: Path | str) -> dict[str, Any]:
    """Read and check a truth file; raises TruthError (a ValueError) naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TruthError(f"{path}: cannot read truth file: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise TruthError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("version") != TRUTH_VERSION:
        raise TruthError(f'{path}: expected a JSON object with "version": {TRUTH_VERSION}')
    groups = data.get("groups")
    if not isinstance(groups, list):
        raise TruthError(f'{path}: "groups" must be a list')
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or g.get("kind") not in ("exact", "duplicate", "similar"):
            raise TruthError(f'{path}: group {i}: "kind" must be exact, duplicate or similar')
        if not isinstance(g.get("photos"), list) or not all(isinstance(p, str) for p in g["photos"]):
            raise TruthError(f'{path}: group {i}: "photos" must be a list of paths')
    photos = data.get("photos", [])
    if not isinstance(photos, list):
        raise TruthError(f'{path}: "photos" must be a list of paths')
    listed = set(photos)
    missing = sorted({p for g in groups for p in g["photos"]} - listed) if photos else []
    if missing:
        raise TruthError(f'{path}: {len(missing)} grouped photos are not in "photos", e.g. {missing[0]}')
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m photopoet.evaluation.dedupe_set",
        description="Build a labelled duplicate-detection set (edited copies, exact copies, bursts, negatives).",
    )
    ap.add_argument("src", type=Path, help="folder of source photos (e.g. ../shared/club/images)")
    ap.add_argument("dest", type=Path, help="output folder: DEST/photos and DEST/truth.json")
    ap.add_argument("--sources", type=int, default=40, help="photos to make edited and exact copies of")
    ap.add_argument("--bursts", type=int, default=10, help="synthetic bursts (similar pairs)")
    ap.add_argument("--negatives", type=int, default=None, help="untouched distinct photos (default: the rest)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--posts", type=Path, default=None, help="posts.jsonl (default: SRC/../posts.jsonl if any)")
    ap.add_argument(
        "--related", type=Path, default=None, help="JSON file listing pictures reused across posts (families)"
    )
    args = ap.parse_args(argv)
    truth = make_dedupe_set(
        args.src,
        args.dest,
        n_sources=args.sources,
        seed=args.seed,
        n_bursts=args.bursts,
        n_negatives=args.negatives,
        posts_file=args.posts,
        related=load_related(args.related) if args.related else (),
    )
    data = json.loads(truth.read_text(encoding="utf-8"))
    kinds = [g["kind"] for g in data["groups"]]
    print(
        f"wrote {len(data['photos'])} photos to {args.dest / 'photos'} and {truth}: "
        f"{kinds.count('exact')} exact, {kinds.count('duplicate')} duplicate, {kinds.count('similar')} similar groups"
    )


if __name__ == "__main__":
    main()
