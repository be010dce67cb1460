"""Choosing a line of classical Chinese poetry for a post.

1. Candidates: the nearest lines (FAISS, inner product of unit vectors) to the image's text-space vector and
   to the user's words (query side of the text encoder; traditional characters are simplified first), each
   searched on its own, then pooled.
   Chinese words also search the lexical index (BM25 over characters and character bigrams,
   :mod:`photopoet.poetry.lexical`), whose best lines join the pool. Over the pool, the words' dense ranking
   (cosine) and lexical ranking (BM25) are fused by reciprocal rank (``rrf``: 1 for a line first in both).
2. Rerank every candidate by

       score = (w_img * s_image + w_text * cos_text) / (w_img + w_text)      (over the signals present)
             + fusion_weight * rrf(dense rank, lexical_rrf_weight x BM25 rank)   (Chinese words only)
             + lexical_weight * shared characters with the user's words (Chinese words only)
             + form_bonus    when the line is a couplet of 5- or 7-character halves
             + popular_bonus when its poem is in an anthology of favourites (唐诗三百首, 宋词三百首)
             - short_penalty when the line is a fragment (under 8 characters, or cut at a comma)

   ``s_image = image_offset + cos(image, line) - cos(average photo, line)``: ConSE image vectors are mixtures
   of many concepts and lie close to every short, generic line (raw cosines 0.83-0.90 whatever the photo; on
   the shipped corpus the raw top lines of a coffee, a cat and a rocket photo were 踪迹。, 拼一醉。, 相应喧喧。).
   Subtracting each line's cosine with the average photo (the mean of the understand stage's 3000 ConSE-like
   background mixtures) ranks by what is specific to this photo: the coffee photo then gets lines about wine
   cups (更尽杯中酒。), the rocket photo 将军角弓 and 飞坠. The candidates for an image are searched with the
   same centred vector. ``image_offset`` puts these lifts (-0.05 to 0 for the skimage photos) on the scale of
   text cosines so that one ``threshold`` serves both.

3. When the best score stays below ``threshold``, ask the generator for a line instead; the result says
   which happened (``"generated": true/false``). A generation that yields no usable Chinese line gives the
   best retrieved line after all: the poem is never empty.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photopoet.errors import PoemIndexError
from photopoet.models.base import Generator, TextEncoder, l2_normalize
from photopoet.poetry.corpus import cjk_chars, halves, has_cjk, to_simplified
from photopoet.poetry.index import PoemIndex
from photopoet.poetry.lexical import ranks_of, reciprocal_rank_fusion, top_k

if TYPE_CHECKING:
    from photopoet.config import Config, PoemConfig

logger = logging.getLogger(__name__)

# Characters too common in modern Chinese explanations to count as shared content with a poem line.
_FUNCTION_CHARS = set("的了是在和也就都而之其以于为这那我你他她它们着过得地把被一不有个人上下来去到说要会能")


def shipped_index_path() -> Path:
    """The small index inside the package (唐诗三百首 + 宋词三百首)."""
    return Path(str(files("photopoet").joinpath("data", "poems")))


def installed_index_path(cache_dir: Path) -> Path:
    """Where ``photopoet corpus install chinese-poetry`` puts its index by default."""
    return Path(cache_dir) / "poetry" / "chinese-poetry"


def resolve_index_path(cfg: PoemConfig, cache_dir: Path) -> Path:
    """``poem.index`` when set; else the installed full corpus when there is one; else the shipped corpus."""
    if cfg.index is not None:
        return Path(cfg.index).expanduser()
    inst = installed_index_path(cache_dir)
    if (inst / "manifest.json").is_file():
        return inst
    return shipped_index_path()


def lexical_agreement(query_simplified: str, line_simplified: str) -> float:
    """Share of a line's content characters (distinct, function characters left out) found in the query."""
    line = {c for c in cjk_chars(line_simplified) if c not in _FUNCTION_CHARS}
    if not line:
        return 0.0
    q = set(cjk_chars(query_simplified))
    return len(line & q) / len(line)


def is_regular_form(line: str) -> bool:
    h = halves(line)
    return len(h) == 2 and h[0] == h[1] and h[0] in (5, 7)


def fuse(dense: np.ndarray, bm25: np.ndarray, lexical_weight: float, k: int) -> np.ndarray:
    """Reciprocal-rank fusion over a candidate pool: ``dense`` cosines and ``bm25`` scores of the same lines
    (a line with BM25 score 0 is absent from the lexical ranking). 1 for a line first in both."""
    r_lex = np.where(np.asarray(bm25) > 0, ranks_of(bm25), 0)
    return reciprocal_rank_fusion([ranks_of(dense), r_lex], [1.0, lexical_weight], k=k)


@dataclass
class Candidate:
    line_id: int
    image: float | None
    text: float | None
    lexical: float
    form: bool
    popular: bool
    short: bool
    score: float = 0.0
    fused: float = 0.0  # reciprocal-rank fusion of the words' dense and lexical rankings (0..1)


def rerank(
    index: PoemIndex,
    cfg: PoemConfig,
    image_vec: np.ndarray | None,
    text_vec: np.ndarray | None,
    text_simplified: str = "",
    *,
    k: int | None = None,
    image_centre: np.ndarray | None = None,
    text_index: PoemIndex | None = None,
    text_offset: float = 0.0,
) -> list[Candidate]:
    """Candidates from each query vector, scored as the module doc says, best first; one per distinct line.

    ``text_index``: the same lines embedded by another encoder (a fine-tuned retriever) for ``text_vec``;
    ``index`` then serves the image side only. ``text_offset`` is added to the text cosines (a fine-tuned
    retriever's ``score_offset``: its cosines on the scale ``threshold`` was set for)."""
    k = cfg.candidates if k is None else k
    tix = index if text_index is None else text_index
    if tix is not index and tix.simplified != index.simplified:
        raise PoemIndexError(f"{tix.path}: does not hold the lines of {index.path} in the same order")
    centred = None
    if image_vec is not None:
        mu = np.zeros_like(image_vec) if image_centre is None else np.asarray(image_centre, np.float32)
        centred = np.asarray(image_vec, np.float32) - mu
    ids: list[int] = []
    for v, ix in ((centred, index), (text_vec, tix)):
        if v is not None:
            _, found = ix.search(v, k)
            ids.extend(int(i) for i in found[0] if i >= 0)
    use_lex = bool(text_simplified) and has_cjk(text_simplified)
    bm25 = None
    if use_lex and text_vec is not None and cfg.fusion_weight > 0:
        bm25 = index.lexical.scores(text_simplified)
        ids.extend(int(i) for i in top_k(bm25, k)[1])
    uniq = np.asarray(sorted(set(ids)), dtype=np.int64)
    if len(uniq) == 0:
        return []
    img = cfg.image_offset + index.similarity(centred, uniq) if centred is not None else None
    txt = tix.similarity(text_vec, uniq) + text_offset if text_vec is not None else None
    fused = np.zeros(len(uniq))
    if bm25 is not None and txt is not None:
        fused = fuse(txt, bm25[uniq], cfg.lexical_rrf_weight, cfg.rrf_k)
    wi = cfg.image_weight if img is not None else 0.0
    wt = cfg.text_weight if txt is not None else 0.0
    if wi + wt == 0:  # the only signal present has weight 0: still rank by it
        wi, wt = (1.0 if img is not None else 0.0), (1.0 if txt is not None else 0.0)
    out: list[Candidate] = []
    for j, lid in enumerate(uniq):
        s = index.simplified[lid]
        c = Candidate(
            line_id=int(lid),
            image=float(img[j]) if img is not None else None,
            text=float(txt[j]) if txt is not None else None,
            lexical=lexical_agreement(text_simplified, s) if use_lex else 0.0,
            form=is_regular_form(s),
            popular=bool(index.poem_of(lid).get("popular")),
            short=len(cjk_chars(s)) < 8 or not s.endswith(("。", "！", "？", "；")),
            fused=float(fused[j]),
        )
        sim = (wi * (c.image or 0.0) + wt * (c.text or 0.0)) / (wi + wt)
        c.score = (
            sim
            + cfg.fusion_weight * c.fused
            + cfg.lexical_weight * c.lexical
            + cfg.form_bonus * c.form
            + cfg.popular_bonus * c.popular
            - cfg.short_penalty * c.short
        )
        out.append(c)
    out.sort(key=lambda c: (-c.score, c.line_id))
    seen: set[str] = set()
    distinct = []
    for c in out:  # the same line in two poems (anthologies repeat poems) is offered once
        if index.simplified[c.line_id] not in seen:
            seen.add(index.simplified[c.line_id])
            distinct.append(c)
    return distinct


# ------------------------------------------------------------------------------------------ generation

FEW_SHOT = (
    ("明月", "床前明月光，疑是地上霜。"),
    ("山河", "白日依山尽，黄河入海流。"),
    ("春天", "春眠不觉晓，处处闻啼鸟。"),
    ("离别", "劝君更尽一杯酒，西出阳关无故人。"),
)
_KEEP = re.compile(r"[^\u3400-\u9fff，。！？、；]")


def generation_prompt(topic: str) -> str:
    topic = " ".join(topic.split())[:60] or "风景"
    shots = "".join(f"题目：{t}\n诗句：{line}\n\n" for t, line in FEW_SHOT)
    return f"以下是古诗名句，每句写一个题目。\n\n{shots}题目：{topic}\n诗句："


def clean_generated(text: str) -> str | None:
    """The first sentence of a generation as a line of Chinese verse, or None when it is not one (too short or
    long, a clause said twice, or a copy of the prompt's examples)."""
    first = text.strip().split("\n", 1)[0]
    first = _KEEP.sub("", first)
    first = re.sub(r"([，、；])[，、；。！？]*", r"\1", first)  # what removing Latin words leaves: "咖啡，，好"
    m = re.match(r"^[，、；]*(.+?[。！？])", first)
    line = m.group(1) if m else first.strip("，、；")
    n = len(cjk_chars(line))
    if n < 5 or n > 32:
        return None
    clauses = [c for c in re.split(r"[，、；。！？]", line) if c]
    if len(set(clauses)) < len(clauses):
        return None  # 秋天落叶，秋天落叶。
    if any(line.rstrip("。！？") == shot.rstrip("。") for _, shot in FEW_SHOT):
        return None
    if not line.endswith(("。", "！", "？")):
        line += "。"
    return line


def generate_line(generator: Generator, topic: str, max_new_tokens: int = 32, tries: int = 4) -> str | None:
    """Greedy first, then a few samples; the first usable line, or None."""
    return generate_lines(generator, [topic], max_new_tokens, tries)[0]


def generate_lines(
    generator: Generator, topics: Sequence[str], max_new_tokens: int = 32, tries: int = 4
) -> list[str | None]:
    """:func:`generate_line` for several topics: one greedy call for all, one sampling call for those left."""
    if not topics:
        return []
    prompts = [generation_prompt(t) for t in topics]
    outs = generator.generate(prompts, max_new_tokens=max_new_tokens, stop=LINE_STOP)
    lines = [next((x for x in map(clean_generated, o) if x), None) for o in outs]
    left = [i for i, line in enumerate(lines) if line is None]
    if left and tries > 1:
        samples = generator.generate(
            [prompts[i] for i in left],
            max_new_tokens=max_new_tokens,
            temperature=0.8,
            num_return_sequences=tries - 1,
            seed=0,
            stop=LINE_STOP,
        )
        for i, o in zip(left, samples, strict=True):
            lines[i] = next((x for x in map(clean_generated, o) if x), None)
    return lines


LINE_STOP = ("\n",)  # clean_generated keeps the first line


# -------------------------------------------------------------------------------------------- writer


class PoemWriter:
    """Loads the index, the text encoder and (only when a fallback is needed) the generator, once."""

    def __init__(
        self,
        cfg: Config,
        cache_dir: Path,
        *,
        text_encoder: TextEncoder | None = None,
        generator: Generator | Callable[[], Generator] | None = None,
        index: PoemIndex | Path | str | None = None,
        image_centre: np.ndarray | None = None,
        retriever: Path | str | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.pcfg = cfg.poem
        self.cache_dir = Path(cache_dir)
        self._encoder = text_encoder
        self._generator = generator
        self._index = index if isinstance(index, PoemIndex) else None
        self._index_path = Path(index) if isinstance(index, str | Path) else None
        self._centre = None if image_centre is None else np.asarray(image_centre, np.float32)
        folder = retriever if retriever is not None else cfg.poem.retriever
        self.retriever = Path(folder).expanduser() if folder is not None else None
        self.progress = progress
        self._text_encoder: TextEncoder | None = None
        self._text_index: PoemIndex | None = None

    @property
    def image_centre(self) -> np.ndarray:
        """The average photo in the text space: mean of the understand stage's ConSE-like background mixtures
        (the ImageNet class-name matrix is cached on disk by the mapper)."""
        if self._centre is None:
            from photopoet.models import ModelSet, background_vectors

            ms = ModelSet(self.cfg, self.cache_dir)
            ms.__dict__["text_encoder"] = self.encoder  # share the loaded encoder
            self._centre = background_vectors(ms).mean(axis=0).astype(np.float32)
        return self._centre

    @property
    def index(self) -> PoemIndex:
        """The line index; its vectors serve the image side (they must come from ``models.text``)."""
        if self._index is None:
            path = self._index_path or resolve_index_path(self.pcfg, self.cache_dir)
            ix = PoemIndex(path)
            if self.retriever is None or ix.encoder_name != self.text_encoder.name:
                ix.check_encoder(self.encoder)
            self._index = ix
        return self._index

    @property
    def text_encoder(self) -> TextEncoder:
        """The encoder of the user's words: the fine-tuned retriever when one is set, else ``models.text``."""
        if self._text_encoder is None:
            if self.retriever is None:
                self._text_encoder = self.encoder
            else:
                from photopoet.models.e5_torch import TorchE5Encoder

                self._text_encoder = TorchE5Encoder(self.retriever)
        return self._text_encoder

    @property
    def text_index(self) -> PoemIndex:
        """The index's lines as the words' encoder embeds them (re-embedded into the cache once when needed)."""
        if self._text_index is None:
            from photopoet.poetry.index import index_for_encoder

            if self.retriever is None:
                self._text_index = self.index
            else:
                self._text_index = index_for_encoder(
                    self.index, self.text_encoder, self.cache_dir, progress=self.progress, log=logger.warning
                )
        return self._text_index

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            from photopoet.models import create_text_encoder

            self._encoder = create_text_encoder(self.cfg.models, self.cache_dir)
        return self._encoder

    @property
    def generator(self) -> Generator:
        g = self._generator
        if g is None:
            from photopoet.models import create_generator

            g = create_generator(self.cfg.models, self.cache_dir)
        elif callable(g) and not isinstance(g, Generator):
            g = g()
        self._generator = g
        return g

    def query_vectors(self, image_vectors: np.ndarray | None, text: str | None) -> tuple[Any, Any, str]:
        img = None
        if image_vectors is not None and np.asarray(image_vectors).size:
            v = np.atleast_2d(np.asarray(image_vectors, dtype=np.float32)).mean(axis=0)
            if np.linalg.norm(v) > 0:
                img = l2_normalize(v)
        text = (text or "").strip()
        simp = to_simplified(text) if text else ""
        txt = self.text_encoder.encode([simp], kind="query")[0] if simp else None
        return img, txt, simp

    def candidates(self, image_vectors: np.ndarray | None, text: str | None = None) -> list[Candidate]:
        """The reranked candidate lines for the photos and / or words, best first: the photos against the index
        (``models.text``'s space), the words through their own encoder and index (a fine-tuned retriever's,
        its cosines shifted by its ``score_offset``)."""
        img, txt, simp = self.query_vectors(image_vectors, text)
        if img is None and txt is None:
            raise ValueError("a poem needs image vectors or words to go on")
        centre = self.image_centre if img is not None else None
        if img is not None:
            self.index.check_encoder(self.encoder)  # image vectors live in models.text's space
        tix = self.text_index if txt is not None else None
        off = float(getattr(self.text_encoder, "score_offset", 0.0)) if txt is not None else 0.0
        return rerank(self.index, self.pcfg, img, txt, simp, image_centre=centre, text_index=tix, text_offset=off)

    def write(
        self, image_vectors: np.ndarray | None, text: str | None = None, concepts: Sequence[str] = ()
    ) -> dict[str, Any]:
        """One poem for a post: ``{"text","simplified","title","author","dynasty","source_id","score",
        "generated"}``. ``image_vectors``: [N, T] text-space vectors of the post's photos (their mean is used)."""
        res = self.write_many([(image_vectors, text, concepts)])[0]
        if isinstance(res, Exception):
            raise res
        return res

    def write_many(
        self, queries: Sequence[tuple[np.ndarray | None, str | None, Sequence[str]]]
    ) -> list[dict[str, Any] | Exception]:
        """:meth:`write` for several posts ``(image_vectors, text, concepts)``; the lines that have to be generated
        come from one generator call. A post whose poem fails gets its exception in place of the poem."""
        res: list[dict[str, Any] | Exception | None] = [None] * len(queries)
        best: list[Candidate | None] = [None] * len(queries)
        topics: dict[int, str] = {}
        for i, (vecs, text, concepts) in enumerate(queries):
            try:
                cands = self.candidates(vecs, text)
            except (PoemIndexError, ValueError, RuntimeError) as e:
                res[i] = e
                continue
            best[i] = cands[0] if cands else None
            if best[i] is not None and best[i].score >= self.pcfg.threshold:
                res[i] = self.retrieved(best[i])
            elif self.pcfg.fallback == "generate":
                topics[i] = (text or "").strip() or ", ".join(list(concepts)[:3]) or "风景"
            else:
                res[i] = self._best_or_error(best[i])
        if topics:
            lines: list[str | None] = [None] * len(topics)
            try:
                lines = generate_lines(self.generator, list(topics.values()), self.pcfg.max_new_tokens)
            except Exception as e:  # a generator that cannot load must not cost the posts their poems
                logger.warning("poem generation failed (%s); using the best retrieved line", e)
            for i, line in zip(topics, lines, strict=True):
                b = best[i]
                if line is None:
                    res[i] = self._best_or_error(b)
                    continue
                res[i] = {
                    "text": line,
                    "simplified": to_simplified(line),
                    "title": "",
                    "author": getattr(self.generator, "name", "generator"),
                    "dynasty": "",
                    "source_id": None,
                    "score": round(float(b.score), 4) if b is not None else None,
                    "generated": True,
                }
        return [r if r is not None else RuntimeError("no poem") for r in res]

    def _best_or_error(self, best: Candidate | None) -> dict[str, Any] | Exception:
        if best is None:
            return RuntimeError(f"{self.index.path}: the index returned no line and generation gave none")
        return self.retrieved(best)

    def retrieved(self, c: Candidate) -> dict[str, Any]:
        """The poem record of a retrieved candidate line (the shape :meth:`write` returns)."""
        ix = self.index
        poem = ix.poem_of(c.line_id)
        return {
            "text": ix.texts[c.line_id],
            "simplified": ix.simplified[c.line_id],
            "title": poem.get("title", ""),
            "author": poem.get("author", ""),
            "dynasty": poem.get("dynasty", ""),
            "source_id": ix.source_id(c.line_id),
            "score": round(float(c.score), 4),
            "generated": False,
        }


def search_lines(
    index: PoemIndex, encoder: TextEncoder, queries: Sequence[str], k: int, cfg: PoemConfig
) -> list[list[dict[str, Any]]]:
    """Per query (the user's words), the ``k`` best lines after reranking: ``{"text","source_id","score"}``.
    ``index`` must have been embedded by ``encoder`` (see :func:`~photopoet.poetry.index.index_for_encoder`)."""
    index.check_encoder(encoder)
    out = []
    for q in queries:
        simp = to_simplified(q.strip())
        v = encoder.encode([simp], kind="query")[0] if simp else None
        if v is None:
            out.append([])
            continue
        cands = rerank(index, cfg, None, v, simp, k=max(k, cfg.candidates))[:k]
        out.append(
            [
                {"text": index.texts[c.line_id], "source_id": index.source_id(c.line_id), "score": round(c.score, 4)}
                for c in cands
            ]
        )
    return out


__all__ = ["PoemIndexError", "PoemWriter", "mood_query", "post_mood", "rerank", "search_lines"]


# The mood words of a post's scene (light, season, what its photos show) in the modern Chinese a poem query takes:
# the things classical poems are about (moon, night, spring, river, mountains, crowds, music), nothing else.
MOOD_ZH: dict[str, str] = {
    "night": "夜晚",
    "golden hour": "夕阳",
    "spring": "春天",
    "summer": "夏天",
    "autumn": "秋天",
    "winter": "冬天",
    "crowd": "人群",
    "mountains": "山",
    "valley": "山谷",
    "cliff": "山崖",
    "volcano": "火山",
    "lake": "湖水",
    "coast": "海边",
    "beach": "海边",
    "reef": "大海",
    "dam": "江水",
    "hot spring": "温泉",
    "boat": "小船",
    "kayak": "小船",
    "boathouse": "小船",
    "bridge": "桥",
    "flowers": "花",
    "greenhouse": "花",
    "horse": "马",
    "buffalo": "牛",
    "cattle": "牛",
    "sheep": "羊",
    "candles": "烛光",
    "tea": "茶",
    "monastery": "寺庙",
    "stupa": "寺庙",
    "church": "钟声",
    "palace": "宫殿",
    "castle": "城楼",
    "tower": "高楼",
    "lighthouse": "灯火",
    "stage": "歌舞",
    "stage lights": "灯火",
    "microphone": "歌声",
    "guitar": "琴声",
    "violin": "琴声",
    "cello": "琴声",
    "piano": "琴声",
    "flute": "笛声",
    "drums": "鼓声",
    "umbrella": "雨",
    "skiing": "雪",
    "tent": "野营",
    "train": "远行",
    "plane": "远行",
}


def mood_query(words: Sequence[str]) -> tuple[str | None, list[str]]:
    """The poem query for a post's mood words: the modern Chinese of those :data:`MOOD_ZH` knows, joined (None
    when none is known), and the English words used."""
    used = [w for w in dict.fromkeys(words) if w in MOOD_ZH]
    zh = list(dict.fromkeys(MOOD_ZH[w] for w in used))
    return (" ".join(zh) if zh else None), used


def post_mood(post: Any, concepts: Sequence[str]) -> list[str]:
    """A post's mood words: its scene's light and season, a crowd when six or more faces are in one photo, and
    the plain concepts of its photos."""
    scene = getattr(post, "scene", None)
    words = list(scene.mood()) if scene is not None else []
    if scene is not None and scene.people >= 6:
        words.append("crowd")
    return [*words, *concepts]
