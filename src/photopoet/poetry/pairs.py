"""Query -> poem line pairs for training and measuring line retrieval, and the rank metrics used on them.

Two sources:

- :func:`shuimo_pairs`: the 176 poems of 水墨唐诗 in ``chinese-poetry@2.0.1`` (``shuimotangshi.json``). Each
  carries a ``prologue``, a modern-Chinese explanation that mostly paraphrases the poem couplet by couplet.
  ``aligned`` pairs: the prologue's sentences (split at 。！？；) are assigned in order to the poem's lines by
  dynamic programming on shared content characters; a line's query is the sentences assigned to it, kept when
  they share at least 2 characters with it. ``by position`` pairs: only poems whose prologue has exactly as
  many sentences as the poem has lines; sentence i is the query of line i.
- :func:`load_pairs`: a JSONL file, one object a line::

      {"query": "modern Chinese text", "line": "the poem line it explains", "poem": "poem id"}
      {"line": "another line of that poem", "poem": "poem id"}      # a candidate line without a query

  ``poem`` groups lines (train/test splits never cut a poem; negatives never come from the same poem); it
  defaults to the line itself. Every line named in the file is a candidate when ranking. Bad lines are
  reported (``file:line: reason``) and skipped.

Every text is compared in simplified characters (:func:`~photopoet.poetry.corpus.to_simplified`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photopoet.poetry.corpus import NpmPackage, Poem, cjk_chars, poem_from_record, split_lines, to_simplified

PAIR_KINDS = ("aligned", "by position")  # how prologue sentences are paired with lines (see the module doc)
SENT = re.compile(r"(?<=[。！？；])")
# Characters too common in modern Chinese explanations to count as shared content with a poem line.
FUNCTION_CHARS = set("的了是在和也就都而之其以于为这那我你他她它们着过得地把被一不有个人上下来去到说要会能")


@dataclass(frozen=True)
class Pair:
    query: str  # simplified
    line: str  # simplified
    poem: str
    where: str  # "file:line" or "shuimo:poem number"


@dataclass
class PairSet:
    """Pairs and the candidate lines (``lines[i]`` belongs to ``poems[i]``; every pair's line is among them)."""

    pairs: list[Pair]
    lines: list[str]
    poems: list[str]
    problems: list[str] = field(default_factory=list)
    source: str = ""

    def poem_ids(self) -> list[str]:
        return list(dict.fromkeys(self.poems))


def sentences(text: str) -> list[str]:
    text = "".join(text.replace("\u3000", " ").split())
    return [s for s in SENT.split(text) if len(cjk_chars(s)) >= 2]


def overlap(line: str, sent: str) -> int:
    a = {c for c in cjk_chars(line) if c not in FUNCTION_CHARS}
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


def shuimo_poems(tarball: Path | str) -> tuple[list[Poem], list[str]]:
    """The 176 poems of 水墨唐诗 and their prologues, from the package tarball (or unpacked folder)."""
    pkg = NpmPackage(tarball)
    try:
        recs = pkg.read_json("shuimotangshi/shuimotangshi.json")
    finally:
        pkg.close()
    poems, prologues = [], []
    for i, r in enumerate(recs, start=1):
        poems.append(poem_from_record(r, f"shuimo-{i}", "唐"))
        prologues.append(r.get("prologue") or "")
    return poems, prologues


def shuimo_pairs(poems: Sequence[Poem], prologues: Sequence[str], kind: str = "aligned") -> PairSet:
    """``aligned`` or ``by position`` pairs (see the module doc); the candidates are every line of ``poems``."""
    if kind not in PAIR_KINDS:
        raise ValueError(f"kind must be one of {PAIR_KINDS}, got {kind!r}")
    out = PairSet([], [], [], source=f"水墨唐诗 ({kind})")
    for pi, (poem, pro) in enumerate(zip(poems, prologues, strict=True)):
        raw = split_lines(poem.lines)
        lines = [to_simplified(x) for x in raw]
        out.lines.extend(lines)
        out.poems.extend([poem.id] * len(lines))
        sents = [to_simplified(s) for s in sentences(pro)]
        if not lines or not sents:
            continue
        where = f"shuimotangshi.json:{pi + 1}"
        if kind == "aligned":
            for li, js in enumerate(align(lines, sents)):
                q = "".join(sents[j] for j in js)
                if js and overlap(lines[li], q) >= 2:
                    out.pairs.append(Pair(q, lines[li], poem.id, where))
        elif len(sents) == len(lines):
            out.pairs.extend(Pair(s, lines[k], poem.id, where) for k, s in enumerate(sents))
    return out


def load_pairs(path: Path | str) -> PairSet:
    """Pairs from a JSONL file (see the module doc). Raises OSError/UnicodeDecodeError when it cannot be read."""
    path = Path(path)
    out = PairSet([], [], [], source=str(path))
    seen: set[tuple[str, str]] = set()

    def add_line(line: str, poem: str) -> None:
        if (line, poem) not in seen:
            seen.add((line, poem))
            out.lines.append(line)
            out.poems.append(poem)

    with path.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                out.problems.append(f"{where}: not valid JSON ({e.msg})")
                continue
            if not isinstance(rec, dict):
                out.problems.append(f"{where}: expected an object with 'query' and 'line', got {type(rec).__name__}")
                continue
            line, query, poem = rec.get("line"), rec.get("query"), rec.get("poem")
            if not isinstance(line, str) or not cjk_chars(line):
                out.problems.append(f"{where}: 'line' must be text with Chinese characters, got {line!r:.40}")
                continue
            if query is not None and (not isinstance(query, str) or not query.strip()):
                out.problems.append(f"{where}: 'query' must be non-empty text, got {query!r:.40}")
                continue
            if poem is not None and (not isinstance(poem, str | int) or isinstance(poem, bool) or not str(poem)):
                out.problems.append(f"{where}: 'poem' must be a string or number, got {poem!r:.40}")
                continue
            line_s = to_simplified(line.strip())
            pid = str(poem) if poem is not None else line_s
            add_line(line_s, pid)
            if query is not None:
                out.pairs.append(Pair(to_simplified(" ".join(query.split())), line_s, pid, where))
    return out


# ------------------------------------------------------------------------------------------- metrics


def rank_metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    """NDCG@1 (= accuracy at 1), NDCG@5, MRR@5, Recall@5 for one relevant line per query, computed by
    :func:`photopoet.metrics.retrieval.ranked_metrics` (checked against pytrec_eval). ``ranks``: 1-based rank of
    the right line per query, None when it is not in the top 5."""
    from photopoet.metrics.retrieval import ranked_metrics

    if not ranks:
        return {"NDCG@1": 0.0, "NDCG@5": 0.0, "MRR@5": 0.0, "Recall@5": 0.0}
    rankings = [["right" if x == i + 1 else f"other{i}" for i in range(5)] for x in ranks]
    m = ranked_metrics(rankings, [{"right"}] * len(ranks), ks=(1, 5))
    return {"NDCG@1": m["ndcg@1"], "NDCG@5": m["ndcg@5"], "MRR@5": m["mrr@5"], "Recall@5": m["recall@5"]}


def rank_of(order: np.ndarray, right: set[int]) -> int | None:
    """1-based position of the first right id in the top 5 of ``order``, or None."""
    hit = np.nonzero(np.isin(order[:5], list(right)))[0]
    return int(hit[0]) + 1 if len(hit) else None
