"""Poems in, lines out.

A *line* is what one quotes from a poem: one sentence ending in 。！？ or ；, which in regulated verse is a
couplet (two 5- or 7-character halves joined by a comma, e.g. 白日依山尽，黄河入海流。). A longer sentence (ci
and old-style verse run on for three or more clauses) is cut into pieces of two clauses each, so every line
stays a couplet-sized unit. Editorial notes in brackets are dropped, and so are lines holding the corpus's
placeholders for characters Unicode lacks (``{...}``, ``□``).

Matching and embedding use the simplified text (OpenCC ``t2s``); the original characters are kept and shown.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from photopoet.errors import CorpusError

SENTENCE_END = "。！？；!?;"
CLAUSE_SEP = "，、,：:"
_NOTE = re.compile(r"（[^（）]*）|\([^()]*\)|〖[^〗]*〗|【[^】]*】")
_PLACEHOLDER = re.compile(r"[{}□■\[\]\ue000-\uf8ff]")
_CJK = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ffff]")
_SPLIT_SENT = re.compile(rf"(?<=[{SENTENCE_END}])")
_SPLIT_CLAUSE = re.compile(rf"(?<=[{CLAUSE_SEP}])")
POPULAR_TAGS = ("唐诗三百首", "宋词三百首")


@dataclass(frozen=True)
class Poem:
    id: str
    title: str
    author: str
    dynasty: str
    lines: tuple[str, ...]  # the poem's text as given (paragraphs or lines), original characters
    popular: bool = False  # in an anthology of favourites (唐诗三百首, 宋词三百首) or high in search counts
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """A record that was skipped, and why."""

    source: str
    line: int  # 1-based line number in a JSONL file; record number (1-based) in a JSON array
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass
class LoadResult:
    poems: list[Poem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# ------------------------------------------------------------------------------------- normalisation


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified characters (OpenCC t2s); simplified text and other scripts pass unchanged."""
    return _t2s().convert(text) if text else text


def cjk_chars(text: str) -> list[str]:
    return _CJK.findall(text)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


# ----------------------------------------------------------------------------------------- splitting


def split_lines(paragraphs: Iterable[str]) -> list[str]:
    """The quotable lines of a poem (see the module doc), original characters, punctuation kept."""
    out: list[str] = []
    for para in paragraphs:
        text = _NOTE.sub("", str(para))
        text = "".join(text.split())
        for sent in _SPLIT_SENT.split(text):
            if not sent:
                continue
            clauses = [c for c in _SPLIT_CLAUSE.split(sent) if c]
            pieces = ["".join(clauses[i : i + 2]) for i in range(0, len(clauses), 2)] if len(clauses) > 2 else [sent]
            for p in pieces:
                if _PLACEHOLDER.search(p) or len(cjk_chars(p)) < 2:
                    continue
                out.append(p)
    return out


def halves(line: str) -> list[int]:
    """Character counts of the clauses of a line (punctuation not counted)."""
    parts = re.split(rf"[{CLAUSE_SEP}{SENTENCE_END}]", line)
    return [len(cjk_chars(p)) for p in parts if cjk_chars(p)]


# ------------------------------------------------------------------------------------------ JSONL


def _text(v: Any, name: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ValueError(f"{name!r} must be text, got {type(v).__name__}")
    return v.strip()


def poem_from_record(rec: Any, fallback_id: str, dynasty: str = "") -> Poem:
    """One ``{"id","title","author","dynasty","lines":[...]}`` record (``paragraphs`` is accepted for
    ``lines``, ``rhythmic`` for ``title``). Raises ValueError with the reason when it cannot be used."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    lines = rec.get("lines", rec.get("paragraphs"))
    if lines is None:
        raise ValueError("no 'lines' list")
    if isinstance(lines, str) or not isinstance(lines, list):
        raise ValueError(f"'lines' must be a list of strings, got {type(lines).__name__}")
    if not all(isinstance(x, str) for x in lines):
        raise ValueError("'lines' must hold only strings")
    lines = [x.strip() for x in lines if x.strip()]
    if not lines:
        raise ValueError("'lines' is empty")
    pid = rec.get("id", fallback_id)
    if not isinstance(pid, str | int) or isinstance(pid, bool) or str(pid).strip() == "":
        raise ValueError(f"'id' must be a non-empty string or number, got {pid!r}")
    tags = rec.get("tags") or []
    tags = tuple(str(t) for t in tags) if isinstance(tags, list) else ()
    title = _text(rec.get("title"), "title") or _text(rec.get("rhythmic"), "rhythmic")
    popular = bool(rec.get("popular")) or any(t in POPULAR_TAGS for t in tags)
    return Poem(
        id=str(pid).strip(),
        title=title,
        author=_text(rec.get("author"), "author"),
        dynasty=_text(rec.get("dynasty"), "dynasty") or dynasty,
        lines=tuple(lines),
        popular=popular,
        tags=tags,
    )


def load_jsonl(path: Path | str) -> LoadResult:
    """Poems from a JSONL file, one per line. Bad lines are reported (file, line number, reason) and skipped;
    duplicate ids are reported and the later one skipped. Only an unreadable file raises :class:`CorpusError`."""
    path = Path(path)
    res = LoadResult()
    try:
        fh = path.open("r", encoding="utf-8", errors="strict")
    except OSError as e:
        raise CorpusError(f"{path}: cannot read corpus file: {e.strerror or e}") from None
    seen: set[str] = set()
    with fh:
        n = 0
        while True:
            n += 1
            try:
                raw = fh.readline()
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path}:{n}: not UTF-8 text ({e.reason})") from None
            if not raw:
                break
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                res.problems.append(Problem(str(path), n, f"not valid JSON: {e.msg} (column {e.colno})"))
                continue
            try:
                poem = poem_from_record(rec, f"{path.stem}-{n}")
            except ValueError as e:
                res.problems.append(Problem(str(path), n, str(e)))
                continue
            if not split_lines(poem.lines):
                res.problems.append(Problem(str(path), n, "no line with Chinese text"))
                continue
            if poem.id in seen:
                res.problems.append(Problem(str(path), n, f"duplicate id {poem.id!r}"))
                continue
            seen.add(poem.id)
            res.poems.append(poem)
    return res


# ------------------------------------------------------------------------------ chinese-poetry (npm)

NPM_PACKAGE = "chinese-poetry"
NPM_VERSION = "2.0.1"

# (file name pattern inside dist/, dynasty, kind) -- the three big collections the package describes
_COLLECTIONS = (
    (re.compile(r"^quantangshi/poet\.tang\.(\d+)\.json$"), "唐", "tang"),
    (re.compile(r"^quantangshi/poet\.song\.(\d+)\.json$"), "宋", "song"),
    (re.compile(r"^songci/ci\.song\.(\d+)\.json$"), "宋", "ci"),
)
ANTHOLOGIES = {"quantangshi/唐诗三百首.json": "唐", "songci/宋词三百首.json": "宋"}


class NpmPackage:
    """Reads JSON files of the chinese-poetry package from its ``.tgz`` (as ``npm pack`` writes it) or from an
    unpacked folder (the one holding ``dist/``, or ``dist/`` itself).

    A tarball is unpacked once into a temporary folder (removed by :meth:`close`): reading members straight
    from a gzip stream seeks back to the start for each one, which took 13 minutes for the 2,245 files.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        self._members: dict[str, Path] = {}
        if self.path.is_file():
            root = self._unpack()
        elif self.path.is_dir():
            root = self.path / "dist" if (self.path / "dist").is_dir() else self.path
        else:
            raise CorpusError(f"{self.path}: no such file or folder")
        for p in root.rglob("*.json"):
            self._members[p.relative_to(root).as_posix()] = p
        if not any(k.startswith("quantangshi/") for k in self._members):
            self.close()
            raise CorpusError(f"{self.path}: does not look like the chinese-poetry package (no dist/quantangshi/)")

    def _unpack(self) -> Path:
        import shutil
        import tempfile

        self._tmp = Path(tempfile.mkdtemp(prefix="chinese-poetry-"))
        try:
            with tarfile.open(self.path, "r:*") as tar:
                members = [m for m in tar if m.isfile() and "/dist/" in "/" + m.name and m.name.endswith(".json")]
                tar.extractall(self._tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            raise CorpusError(f"{self.path}: not a readable npm tarball ({e})") from None
        dists = sorted(self._tmp.glob("*/dist")) + sorted(self._tmp.glob("dist"))
        return dists[0] if dists else self._tmp

    def names(self) -> list[str]:
        return sorted(self._members)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self._members[name].read_bytes())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.path}!{name}: unreadable ({e})") from None

    def close(self) -> None:
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> NpmPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _score(rank: dict[str, Any]) -> float:
    return float(sum(int(rank.get(k) or 0) for k in ("baidu", "google", "bing", "so360")))


def iter_npm_poems(
    pkg: NpmPackage, problems: list[Problem], kinds: Iterable[str] = ("tang", "song", "ci")
) -> Iterator[tuple[Poem, float]]:
    """Every poem of the chosen collections with its search-count popularity (0 where unknown), anthologies
    first (they are marked popular)."""
    kinds = set(kinds)
    names = pkg.names()
    popular_keys: set[tuple[str, str]] = set()
    for name, dynasty in ANTHOLOGIES.items():
        if name not in pkg._members:
            continue
        for poem in _records(pkg, name, dynasty, problems, f"{dynasty}-300-"):
            popular_keys.add((to_simplified(poem.author), to_simplified(poem.title)))
    for pat, dynasty, kind in _COLLECTIONS:
        if kind not in kinds:
            continue
        files = sorted((int(m.group(1)), n) for n in names if (m := pat.match(n)))
        for _, name in files:
            rank_name = name.replace("quantangshi/poet.", "rank/poet/poet.").replace(".json", ".json")
            rank_name = re.sub(r"(poet\.(?:tang|song))\.(\d+)\.json$", r"\1.rank.\2.json", rank_name)
            if kind == "ci":
                rank_name = re.sub(r"^songci/ci\.song\.(\d+)\.json$", r"rank/ci/ci.song.rank.\1.json", name)
            ranks: dict[tuple[str, str], float] = {}
            if rank_name in pkg._members:
                try:
                    for r in pkg.read_json(rank_name):
                        ranks[(r.get("author", ""), r.get("title") or r.get("rhythmic") or "")] = _score(r)
                except (ValueError, AttributeError, TypeError):
                    problems.append(Problem(f"{pkg.path}!{rank_name}", 0, "unreadable rank file; ignored"))
            for poem in _records(pkg, name, dynasty, problems, f"{kind}-"):
                key = (to_simplified(poem.author), to_simplified(poem.title))
                pop = ranks.get((poem.author, poem.title), 0.0)
                if key in popular_keys:
                    poem = Poem(**{**poem.__dict__, "popular": True})
                yield poem, pop


def _records(pkg: NpmPackage, name: str, dynasty: str, problems: list[Problem], prefix: str) -> Iterator[Poem]:
    src = f"{pkg.path}!{name}"
    try:
        data = pkg.read_json(name)
    except ValueError as e:
        problems.append(Problem(src, 0, str(e)))
        return
    if not isinstance(data, list):
        problems.append(Problem(src, 0, "expected a JSON array of poems"))
        return
    for i, rec in enumerate(data, start=1):
        try:
            fallback = f"{prefix}{Path(name).stem}-{i}"
            poem = poem_from_record(rec, fallback, dynasty)
        except ValueError as e:
            problems.append(Problem(src, i, str(e)))
            continue
        if name in ANTHOLOGIES:
            poem = Poem(**{**poem.__dict__, "popular": True})
        yield poem


def load_npm(
    path: Path | str, kinds: Iterable[str] = ("tang", "song", "ci")
) -> tuple[list[tuple[Poem, float]], list[Problem]]:
    pkg = NpmPackage(path)
    problems: list[Problem] = []
    try:
        items = list(iter_npm_poems(pkg, problems, kinds))
    finally:
        pkg.close()
    return items, problems


def load_anthologies(path: Path | str) -> LoadResult:
    """唐诗三百首 and 宋词三百首 from the npm package: the small corpus shipped with photopoet."""
    pkg = NpmPackage(path)
    res = LoadResult()
    try:
        for name, dynasty in ANTHOLOGIES.items():
            if name not in pkg._members:
                raise CorpusError(f"{path}: has no dist/{name}")
            res.poems.extend(_records(pkg, name, dynasty, res.problems, "tang300-" if dynasty == "唐" else "ci300-"))
    finally:
        pkg.close()
    return res


def choose_popular(items: list[tuple[Poem, float]], max_lines: int) -> list[Poem]:
    """Anthology poems first, then by search-count popularity, until ``max_lines`` lines (0: everything).
    Poems keep their corpus order in the result."""
    if max_lines <= 0:
        return [p for p, _ in items]
    order = sorted(range(len(items)), key=lambda i: (not items[i][0].popular, -items[i][1], i))
    keep: list[int] = []
    total = 0
    for i in order:
        n = len(split_lines(items[i][0].lines))
        if n == 0:
            continue
        if total + n > max_lines:
            break
        keep.append(i)
        total += n
    keep.sort()
    return [items[i][0] for i in keep]
