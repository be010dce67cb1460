"""Seconds per caption (each mode) and per haiku with the default config, on the scikit-image sample photos.

Models are loaded and warmed up before timing; image encoding is not timed (the pipeline has it cached). The
1-minute load average is printed beside the figures: on a shared machine it says how much CPU was free.

    .venv/bin/python benchmarks/write_speed.py [--n 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from photopoet.config import load_config
from photopoet.stages.understand import ModelSet
from photopoet.stages.write.caption import CaptionInput
from photopoet.stages.write.texts import TextWriter, post_concepts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3, help="photos timed (coffee, chelsea, rocket, astronaut, ...)")
    args = ap.parse_args()
    import skimage.data
    from PIL import Image

    names = ["coffee", "chelsea", "rocket", "astronaut", "camera"][: args.n]
    imgs = [Image.fromarray(getattr(skimage.data, k)()).convert("RGB") for k in names]
    cfg = load_config()
    cache_dir = cfg.cache.resolved_dir()
    models = ModelSet(cfg, cache_dir)
    enc = models.image_encoder
    out = enc.encode(np.stack([enc.preprocess(im) for im in imgs]))
    vecs = models.mapper.to_text_space(out)
    concepts = [[c for c, _ in row] for row in models.mapper.concepts(out, 5)]
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    writer.generator.generate(["Hello"], max_new_tokens=2)  # load and warm up
    items = [
        CaptionInput(id=n, event="Sample Week", concepts=tuple(post_concepts([c])), image_vector=v)
        for n, c, v in zip(names, concepts, vecs, strict=True)
    ]
    rows = []
    for mode in ("template", "generative", "hybrid"):
        t = time.perf_counter()
        for it in items:
            writer.captions.write(it, mode=mode)
        rows.append((f"caption, {mode}", (time.perf_counter() - t) / len(items)))
    t = time.perf_counter()
    for c, v in zip(concepts, vecs, strict=True):
        writer.haiku.write([c], [], None, v)
    rows.append(("haiku, one photo", (time.perf_counter() - t) / len(items)))
    t = time.perf_counter()
    writer.haiku.write(concepts, [], None, vecs.mean(axis=0))
    rows.append((f"haiku, group of {len(items)} (merged description first)", time.perf_counter() - t))
    load = os.getloadavg()[0]
    print(f"\n{len(items)} photos, {os.cpu_count()} CPU cores, 1-min load average at the end {load:.1f}\n")
    print("| task | seconds each |")
    print("|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.2f} |")
    c, h = cfg.caption, cfg.haiku
    print(
        f"\ncaption: {c.candidates} beams, max {c.max_new_tokens} new tokens (hybrid reuses nothing: generates again); "
        f"haiku: {h.candidates} samples, max {h.max_new_tokens} new tokens"
    )


if __name__ == "__main__":
    main()
