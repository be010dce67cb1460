"""Captions and haiku for every post of a run (or for the photos named on the command line).

:class:`TextWriter` holds the models (created on first use: template captions load nothing) and
:func:`write_texts` fills ``caption``, ``hashtags``, ``haiku``, ``caption_mode`` and the agreement scores of
each post.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photopoet.config import CaptionConfig, Config
from photopoet.core.adapters import adapter_digest, adapter_meta
from photopoet.core.cache import Cache
from photopoet.core.files import file_sha256
from photopoet.errors import AdapterError, StyleFileError
from photopoet.records import Post, PostScene, Understood
from photopoet.stages.write.caption import CaptionInput, CaptionWriter
from photopoet.stages.write.haiku import HaikuInput, HaikuWriter
from photopoet.stages.write.poster import brand_lines, poster_facts
from photopoet.stages.write.style import StyleBank
from photopoet.stages.write.template import write_templates

logger = logging.getLogger(__name__)


class TextWriter:
    """Caption and haiku writers sharing one generator and text encoder."""

    def __init__(self, cfg: Config, cache_dir: Path, *, text_encoder=None, generator=None) -> None:
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self._text_encoder = text_encoder
        self._generator = generator

    @cached_property
    def text_encoder(self):
        if self._text_encoder is None:
            from photopoet.models import create_text_encoder

            self._text_encoder = create_text_encoder(self.cfg.models, self.cache_dir)
        return self._text_encoder

    @cached_property
    def generator(self):
        if self._generator is None:
            from photopoet.models import create_generator

            self._generator = create_generator(self.cfg.models, self.cache_dir)
        return self._generator

    @cached_property
    def style(self) -> StyleBank | None:
        path = self.cfg.caption.style_file
        if path is None or self.cfg.caption.style_examples == 0:
            return None
        try:
            return StyleBank.from_file(path, self.text_encoder)
        except StyleFileError as e:  # the run goes on, without examples
            logger.warning("%s; captions are written without style examples", e)
            return None

    @cached_property
    def caption_generator(self):
        """The generator for captions: with ``caption.adapter`` on (the haiku keep the base model)."""
        if self.cfg.caption.adapter is None:
            return self.generator
        if not hasattr(self.generator, "adapted"):
            raise AdapterError(f"{self.cfg.caption.adapter}: generator {self.generator.name!r} cannot take an adapter")
        meta = adapter_meta(self.cfg.caption.adapter)
        trained_on = meta.get("generator")
        if trained_on and trained_on != self.generator.name:
            raise AdapterError(
                f"{self.cfg.caption.adapter}: trained on generator {trained_on!r}, but models.generator gives "
                f"{self.generator.name!r}"
            )
        return self.generator.adapted(self.cfg.caption.adapter)

    @cached_property
    def caption_config(self) -> CaptionConfig:
        """caption settings; with an adapter, as many style examples as its training prompts had."""
        cc = self.cfg.caption
        if cc.adapter is not None:
            n = adapter_meta(cc.adapter).get("prompt_examples")
            if isinstance(n, int) and 0 <= n < cc.style_examples:
                cc = cc.model_copy(update={"style_examples": n})
        return cc

    @cached_property
    def captions(self) -> CaptionWriter:
        cc = self.caption_config
        needs_gen = cc.mode != "template"
        return CaptionWriter(
            cc,
            generator=self.caption_generator if needs_gen else None,
            text_encoder=self.text_encoder,
            style=self.style if needs_gen and cc.style_examples else None,
        )

    @cached_property
    def haiku(self) -> HaikuWriter:
        return HaikuWriter(self.cfg.haiku, generator=self.generator, text_encoder=self.text_encoder)


def mean_vector(vectors: Sequence[np.ndarray]) -> np.ndarray | None:
    """The L2-normalised mean of image vectors in the text space (None for none)."""
    if not len(vectors):
        return None
    v = np.mean(np.stack([np.asarray(x, dtype=np.float32) for x in vectors]), axis=0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def post_concepts(concepts_per_photo: Sequence[Sequence[str]], k: int = 4) -> list[str]:
    """Concepts of a post's photos: named by the most photos first, then by rank within the photos."""
    count: Counter[str] = Counter()
    best: dict[str, int] = {}
    for cs in concepts_per_photo:
        for r, c in enumerate(cs[:3]):
            count[c] += 1
            best[c] = min(best.get(c, r), r)
    return sorted(count, key=lambda c: (-count[c], best[c], c))[:k]


def with_poster_facts(
    posts: Sequence[Post], by_path: Mapping[str, Understood], brand: Sequence[str] = ()
) -> list[Post]:
    """Each post whose photos' scenes hold text, with what its posters say in ``Post.scene.poster``. Lines on
    most of the run's posters (the owner's logo, sponsors) and the `brand` names never make a title."""
    scenes = [[s for x in p.photos if x in by_path and (s := by_path[x].scene) is not None] for p in posts]
    names = [*brand, *brand_lines(scenes)]
    out = []
    for p, sc in zip(posts, scenes, strict=True):
        facts = poster_facts(sc, names) if sc else None
        if facts is not None and p.scene is not None:
            p = replace(p, scene=replace(p.scene, poster=facts))
        out.append(p)
    return out


def scene_words(scene: PostScene | None) -> tuple[str, ...]:
    """The facts the scene holds that a text may state: the text read, the place, season and light."""
    if scene is None:
        return ()
    words = list(scene.text)
    if scene.poster is not None:
        words += [*scene.poster.words, scene.poster.event() or ""]
    if scene.place is not None:
        words += [scene.place.city, scene.place.region or "", scene.place.country]
    words += [w for w in (scene.season, scene.light) if w]
    return tuple(w for w in dict.fromkeys(words) if w)


WRITE_BATCH = 8  # posts whose captions (and haiku) are generated in one call: 32 haiku decoded together


def write_texts(
    posts: Sequence[Post],
    cfg: Config,
    cache: Cache | None,
    *,
    writer: TextWriter,
    by_path: Mapping[str, Understood],
    vectors: Mapping[str, np.ndarray],
    event: str | None,
    progress: bool = True,
    batch: int = WRITE_BATCH,
    timings: dict[str, float] | None = None,
) -> list[Post]:
    """The text stage: labels, hashtags and captions (``cfg.caption.mode``), and a haiku (``cfg.haiku.enabled``)
    per post. Needs more than one section: ``cfg.caption`` and ``cfg.haiku`` shape the texts, ``cfg.models``
    keys the cached ones; `writer` holds the loaded models, `by_path` the posts' photos, `vectors` their
    text-space vectors, `event` the event name.

    Posts are written ``batch`` at a time: their captions in one generator call, their haiku in another, so
    the engine decodes them together. With a `cache`, each batch's texts are stored as soon as they are
    written, under a key per post made of its photos' content hashes (in order), the event, its labels and
    every setting and model that shapes the texts: a rerun, or a run after a crash, writes only the posts it
    has not written yet."""
    spent = timings if timings is not None else {}
    t0 = time.perf_counter()
    # the owner's recurring names are not brands here: the club's own festival ("Tasveer") recurs in its captions
    posts = with_poster_facts(posts, by_path, cfg.caption.known_facts)
    base = write_templates(posts, by_path, event, cfg.caption)
    out: list[Post | None] = [None] * len(base)
    keys = [_texts_key(p, by_path, event, cfg) for p in base]
    done = cache.get_json(TEXTS_KIND, keys) if cache is not None else {}
    todo = []
    for i, (p, key) in enumerate(zip(base, keys, strict=True)):
        hit = done.get(key)
        if hit is None:
            todo.append(i)
            continue
        fields = {k: hit[k] for k in ("caption", "hashtags", "haiku", "caption_mode")}
        out[i] = replace(p, **fields, scores={**p.scores, **hit["scores"]})
    disable = not progress or not base
    with tqdm(
        total=len(base), initial=len(base) - len(todo), desc="captions and haiku", unit="post", disable=disable
    ) as bar:
        for start in range(0, len(todo), max(1, batch)):
            idx = todo[start : start + max(1, batch)]
            written = _write_batch([base[i] for i in idx], by_path, vectors, event, cfg, writer, spent)
            for i, (post, texts) in zip(idx, written, strict=True):
                out[i] = post
                if cache is not None:
                    cache.put_json(TEXTS_KIND, {keys[i]: texts})
            bar.update(len(idx))
    spent["captions"] = time.perf_counter() - t0 - spent.get("haiku", 0.0)  # templates and cache reads too
    spent.setdefault("haiku", 0.0)
    return [p for p in out if p is not None]


def _write_batch(
    posts: Sequence[Post],
    by_path: Mapping[str, Understood],
    vectors: Mapping[str, np.ndarray],
    event: str | None,
    cfg: Config,
    writer: TextWriter,
    spent: dict[str, float],
) -> list[tuple[Post, dict]]:
    """Captions and haiku for a few posts; each post with the record the cache keeps of its texts."""
    per_photo = [[list(by_path[x].concepts) for x in p.photos] for p in posts]
    vecs = [mean_vector([vectors[x] for x in p.photos if x in vectors]) for p in posts]
    items = [
        CaptionInput(
            id=p.id,
            event=event,
            labels=tuple(p.labels),
            concepts=tuple(post_concepts(pp)),
            n_photos=len(p.photos),
            image_vector=v,
            scene_words=scene_words(p.scene),
            scene=p.scene,
        )
        for p, pp, v in zip(posts, per_photo, vecs, strict=True)
    ]
    caps = writer.captions.write_many(items)
    t = time.perf_counter()
    haikus = (
        writer.haiku.write_many(
            [
                HaikuInput(pp, p.labels, event, v, scene_words(p.scene), p.scene.mood() if p.scene is not None else ())
                for p, pp, v in zip(posts, per_photo, vecs, strict=True)
            ]
        )
        if cfg.haiku.enabled
        else [None] * len(posts)
    )
    spent["haiku"] = spent.get("haiku", 0.0) + time.perf_counter() - t
    _log_rejections(posts, caps, haikus)
    res = []
    for p, cap, h in zip(posts, caps, haikus, strict=True):
        scores = dict(p.scores)
        if cap.score is not None:
            scores["caption_agreement"] = round(cap.score, 4)
        haiku = p.haiku
        if h is not None:
            haiku = list(h.lines)
            if h.score is not None:
                scores["haiku_agreement"] = round(h.score, 4)
        written = {"caption": cap.caption, "hashtags": list(cap.hashtags), "haiku": haiku, "caption_mode": cap.mode}
        new_scores = {k: v for k, v in scores.items() if k in ("caption_agreement", "haiku_agreement")}
        res.append((replace(p, **written, scores=scores), {**written, "scores": new_scores}))
    return res


def _log_rejections(posts: Sequence[Post], caps: Sequence, haikus: Sequence) -> None:
    """One log line per post whose generated texts were rejected by a rule, with the reasons (debug: every text)."""
    for p, cap, h in zip(posts, caps, haikus, strict=True):
        why = Counter(r.split(":")[0] for _, r in cap.rejected if not r.startswith("empty"))
        why.update("haiku " + r.split(":")[0] for _, r in (h.reasons if h is not None else []))
        if why:
            logger.info("post %s: generated texts rejected: %s", p.id, ", ".join(f"{k} x{n}" for k, n in why.items()))


TEXTS_KIND = "post-texts:v3"  # per post: caption, hashtags, haiku, caption mode and their scores


def _texts_key(p: Post, by_path: Mapping[str, Understood], event: str | None, cfg: Config) -> str:
    parts = {
        "photos": [by_path[x].photo.sha256 for x in p.photos],
        "concepts": [list(by_path[x].concepts) for x in p.photos],  # the words the writers are given
        "event": event,
        "labels": list(p.labels),
        "scene": p.scene.to_dict() if p.scene is not None else None,  # what the writers are told it shows
        "caption": cfg.caption.model_dump(mode="json"),
        "haiku": cfg.haiku.model_dump(mode="json"),
        "models": cfg.models.model_dump(mode="json"),
        "style": _file_digest(cfg.caption.style_file),
        "adapter": _adapter_key(cfg.caption.adapter),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _adapter_key(path: str | Path | None) -> str | None:
    """Content hash of the caption adapter: retraining into the same folder changes it too."""
    if path is None:
        return None
    try:
        return adapter_digest(path)
    except (AdapterError, OSError):
        return f"unreadable:{path}"


def _file_digest(path: str | Path | None) -> str | None:
    """Content hash of the style file (other examples, other captions); None when there is none."""
    if not path:
        return None
    try:
        return file_sha256(path)
    except OSError:
        return None
