"""Ingest + image features: photopoet's path against the naive one, images per second.

photopoet's path: the pipeline's own ingest and understand stages: JPEG draft-mode decode (libjpeg
scales by 1/2..1/8 while decoding) straight to the 512 px working copy on a thread pool, then batched
forward passes with the next batch prepared while the model runs, ConSE mapping and labels.
Naive path: full decode, resize to the model's input, one image per forward pass.

Inputs: (a) the club's 1080 px photos (../shared/club/images), (b) 24 MP JPEGs (6000 x 4000) made from them.
Both paths start from files on disk with an empty cache and a loaded model; model loading is not timed.
Also printed: decode alone and the model alone, to show which one bounds the pipeline.

    .venv/bin/python benchmarks/ingest_embed.py [--club ../shared/club/images] [--n-large 32]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from photopoet.config import load_config
from photopoet.core.cache import Cache
from photopoet.stages.ingest import ingest
from photopoet.stages.understand import ModelSet, understand


def make_large(src: list[Path], dest: Path, n: int) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(src[:n]):
        with Image.open(p) as im:
            big = ImageOps.exif_transpose(im).convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        (dest / f"large-{i:03d}.jpg").write_bytes(buf.getvalue())
    return dest


def naive(files: list[Path], enc) -> float:
    t = time.perf_counter()
    for p in files:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im.convert("RGB"))
        x = enc.preprocess(im)
        enc.encode(x[None])
    return time.perf_counter() - t


def ours(folder: Path, models: ModelSet, cfg) -> tuple[float, float]:
    """(total, ingest part) seconds for the pipeline's own ingest + understand stages, empty cache."""
    t0 = time.perf_counter()
    with Cache.memory() as cache:
        res = ingest(folder, cfg.ingest, cache, progress=False)
        t1 = time.perf_counter()
        understand(res.photos, cfg, cache, models, progress=False)
    return time.perf_counter() - t0, t1 - t0


def model_alone(enc, n: int, batch_size: int) -> float:
    x = np.random.default_rng(0).uniform(-1, 1, (n, 3, enc.input_size, enc.input_size)).astype(np.float32)
    t = time.perf_counter()
    for i in range(0, n, batch_size):
        enc.encode(x[i : i + batch_size])
    return time.perf_counter() - t


def decode_only_naive(files: list[Path]) -> float:
    t = time.perf_counter()
    for p in files:
        with Image.open(p) as im:
            ImageOps.exif_transpose(im.convert("RGB"))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/club/images")
    ap.add_argument("--n-large", type=int, default=32, help="24 MP JPEGs to make (default 32)")
    ap.add_argument("--n-club", type=int, default=0, help="club photos to use (default all)")
    args = ap.parse_args()

    cfg = load_config()
    models = ModelSet(cfg, cfg.cache.resolved_dir())
    enc = models.image_encoder
    _ = models.mapper.class_matrix(), models.text_encoder.encode(["warm-up"])  # loading is not timed
    club = sorted(args.club.resolve().glob("*.jpg"))
    if args.n_club:
        club = club[: args.n_club]
    enc.encode(np.stack([enc.preprocess(Image.new("RGB", (224, 224))) for _ in range(2)]))  # warm-up

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        club_dir = Path(tmp) / "club"
        club_dir.mkdir()
        for p in club:
            (club_dir / p.name).symlink_to(p)
        large_dir = make_large(club, Path(tmp) / "large", args.n_large)
        for name, folder in [("club 1080 px", club_dir), ("24 MP JPEG", large_dir)]:
            files = sorted(folder.iterdir())
            n = len(files)
            t_naive = naive(files, enc)
            t_dec_naive = decode_only_naive(files)
            total, dec = ours(folder, models, cfg)
            model = model_alone(enc, n, cfg.models.batch_size)
            rows.append((name, n, n / t_naive, n / total, t_naive / total, n / t_dec_naive, n / dec, n / model))

    print(f"image encoder: {enc.name}, batch {cfg.models.batch_size}, ingest workers {cfg.ingest.workers}")
    head = (
        "input",
        "photos",
        "naive img/s",
        "photopoet img/s",
        "speed-up",
        "naive decode img/s",
        "photopoet ingest img/s",
        "model alone img/s",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f}x | {r[5]:.1f} | {r[6]:.1f} | {r[7]:.1f} |")
    print()
    print("| forward batch size | model alone img/s (64 images, best of 3) |")
    print("|---|---|")
    for bs in (1, 4, 8, 16, 32):
        enc.batch_size = bs
        best = min(model_alone(enc, 64, bs) for _ in range(3))  # best of 3: this machine is shared
        print(f"| {bs} | {64 / best:.1f} |")


if __name__ == "__main__":
    main()
