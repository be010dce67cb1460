"""A lexical index over poem lines: BM25 (``bm25s``) on characters and character bigrams, and the fusion of
its ranking with the dense one.

Classical lines and their modern explanations share characters far more often than words: 明月 in a line
comes back as 明亮的月亮 / 明月 in its explanation, 故乡 as 故乡. So a line's terms are its simplified CJK
characters and the bigrams of characters that stand next to each other inside one clause (punctuation
breaks a bigram). BM25's inverse document frequency keeps the characters every explanation uses (的, 了, 是)
from counting much; those in :data:`FUNCTION_CHARS` are left out of queries altogether.

The index lives beside the dense one: ``lexical/`` inside an index folder (written by
:func:`~photopoet.poetry.index.build_index`), or built in memory from the lines when a folder lacks it
(a few seconds for 20,000 lines).

:func:`reciprocal_rank_fusion` combines rankings (Cormack et al. 2009: sum of ``w / (k + rank)``).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from photopoet.errors import LexicalIndexError
from photopoet.poetry.corpus import to_simplified

logger = logging.getLogger(__name__)

LEXICAL_DIR = "lexical"
LEXICAL_VERSION = 1
META_FILE = "photopoet-lexical.json"
# Characters too common in modern Chinese explanations to count as shared content with a poem line.
FUNCTION_CHARS = frozenset("的了是在和也就都而之其以于为这那我你他她它们着过得地把被一不有个人上下来去到说要会能")
_CLAUSE = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ffff]+")
RRF_K = 60


def terms(text: str, *, query: bool = False) -> list[str]:
    """The BM25 terms of ``text`` (simplified first): each CJK character and each pair of adjacent CJK
    characters within a clause. ``query=True`` leaves out :data:`FUNCTION_CHARS` (and bigrams holding one)."""
    out: list[str] = []
    for run in _CLAUSE.findall(to_simplified(text)):
        for i, c in enumerate(run):
            if query and c in FUNCTION_CHARS:
                continue
            out.append(c)
            if i + 1 < len(run) and not (query and run[i + 1] in FUNCTION_CHARS):
                out.append(run[i : i + 2])
    return out


class LexicalIndex:
    """BM25 over the terms of a list of lines (line ids are positions in that list)."""

    def __init__(self, model: object, n: int) -> None:
        self._bm25 = model
        self.n = n

    @classmethod
    def build(cls, lines: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
        """Index ``lines`` (a line without a CJK character gets no term and never matches)."""
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([terms(s) or [""] for s in lines], show_progress=False)
        return cls(model, len(lines))

    def save(self, folder: Path | str) -> None:
        """Write the index into ``folder`` (replaced when it exists)."""
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        self._bm25.save(str(folder), show_progress=False)  # type: ignore[attr-defined]
        meta = {"version": LEXICAL_VERSION, "lines": self.n, "terms": "chars+bigrams"}
        (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path | str, lines: int, *, mmap: bool = True) -> LexicalIndex:
        """A saved index of ``lines`` lines; raises :class:`LexicalIndexError` naming the folder otherwise."""
        import bm25s

        folder = Path(folder)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise LexicalIndexError(f"{folder}: not a photopoet lexical index ({e})") from None
        if meta.get("version") != LEXICAL_VERSION or meta.get("lines") != lines:
            raise LexicalIndexError(
                f"{folder}: lexical index version {meta.get('version')!r} over {meta.get('lines')!r} lines, "
                f"expected version {LEXICAL_VERSION} over {lines}; rebuild the index"
            )
        try:
            model = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        except (OSError, ValueError, KeyError) as e:
            raise LexicalIndexError(f"{folder}: unreadable lexical index ({e})") from None
        return cls(model, lines)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every line for ``query`` (zeros when no query term is in the index)."""
        vocab = self._bm25.vocab_dict  # type: ignore[attr-defined]
        ids = [vocab[t] for t in dict.fromkeys(terms(query, query=True)) if t in vocab and t != ""]
        if not ids:
            return np.zeros(self.n, np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)  # type: ignore[attr-defined]

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best lines with a positive score: (scores, line ids), best first (ties: lower id first)."""
        s = self.scores(query)
        return top_k(s, k)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` positive entries of ``scores``, best first (ties: lower index first)."""
    k = max(0, min(int(k), len(scores)))
    if k == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    part = part[scores[part] > 0]
    order = part[np.lexsort((part, -scores[part]))]
    return scores[order], order.astype(np.int64)


def ranks_of(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each entry when sorted by descending score (ties share the better rank)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    r = np.empty(len(s), np.int64)
    r[order] = np.arange(1, len(s) + 1)
    # equal scores get the rank of the first of them
    sorted_s = s[order]
    first = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
    runs = np.repeat(first, np.diff(np.r_[first, len(s)]))
    r[order] = runs + 1
    return r


def reciprocal_rank_fusion(
    ranks: Sequence[np.ndarray], weights: Sequence[float], k: int = RRF_K, normalise: bool = True
) -> np.ndarray:
    """Sum over rankings of ``w / (k + rank)`` (``rank`` 1-based; 0 or less: absent from that ranking, adds
    nothing). ``normalise``: divided by the best possible sum, so a line first everywhere scores 1."""
    if len(ranks) != len(weights):
        raise ValueError(f"{len(ranks)} rankings but {len(weights)} weights")
    if not ranks:
        raise ValueError("reciprocal_rank_fusion needs at least one ranking")
    out = np.zeros(len(ranks[0]), np.float64)
    for r, w in zip(ranks, weights, strict=True):
        r = np.asarray(r)
        out += np.where(r > 0, w / (k + np.maximum(r, 1)), 0.0)
    if normalise:
        best = sum(weights) / (k + 1)
        out = out / best if best > 0 else out
    return out


__all__ = [
    "FUNCTION_CHARS",
    "LEXICAL_DIR",
    "LexicalIndex",
    "LexicalIndexError",
    "ranks_of",
    "reciprocal_rank_fusion",
    "terms",
    "top_k",
]
