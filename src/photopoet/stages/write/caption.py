"""Captions in three modes: template, generative, and hybrid (the default).

- **template**: :func:`photopoet.stages.write.template.template_caption`, deterministic.
- **generative**: the generator continues a few-shot prompt built from the post's event, labels and visual
  concepts, with the most similar of the club's past captions (style file) as examples. ``candidates``
  continuations are cleaned (:mod:`.clean`) and the one whose *image-text agreement* is highest is kept.
  A continuation is rejected when it cleans to nothing (a loop, only hashtags), repeats another, copies an
  example or the topic line, names ImageNet jargon, or states a fact (a name, number, date, time or place) that
  none of the post's sources holds (:mod:`.facts`: the event, labels, concepts, config words, the style file's
  recurring names and ``CaptionInput.scene_words``); ``CaptionResult.rejected`` keeps each with its reason.
  When every continuation is rejected, the template caption is used.
- **hybrid**: generative, but the template caption replaces the generated one when its image-text agreement
  is below ``caption.agreement_threshold``.

Image-text agreement is the cosine between the post's image vector in the text space (offline tier: the
ConSE mixture of its photos' top ImageNet class embeddings; hub tier: CLIP's image embedding) and the
caption's text embedding. It is not CLIPScore: no CLIP is involved on the offline tier.

``mode`` in a result names the configured mode and, after a colon, what wrote the caption when the two
differ in kind: ``template``, ``generative``, ``hybrid:generative``, ``hybrid:template`` (agreement too
low) or ``generative:template`` / ``hybrid:template`` when the generator gave nothing usable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from photopoet.config import CaptionConfig
from photopoet.records import PostScene
from photopoet.stages.concepts import jargon_in
from photopoet.stages.write.clean import clean_caption, copied_share
from photopoet.stages.write.facts import config_words, invented_facts, owner_names, post_sources
from photopoet.stages.write.poster import norm_text
from photopoet.stages.write.style import StyleBank, StyleExample, topic_text
from photopoet.stages.write.template import caption_event, hashtags_for, scene_caption, with_swipe_hint

CAPTION_HEADER = "Instagram captions written by a college photography club for its posts."
# a caption is one paragraph (clean_caption keeps the first): a blank line ends it, and so does the model starting
# the next example's "Topic:" line
CAPTION_STOP = ("\n\n", "\nTopic:")
logger = logging.getLogger(__name__)

MAX_COPIED = 0.5  # a generation sharing more of its word trigrams with an example or the prompt is a copy


@dataclass(frozen=True)
class CaptionInput:
    """What a caption is written from."""

    id: str  # stable id: picks the template opener
    event: str | None = None
    labels: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()  # visual concepts (top ImageNet classes), best first
    n_photos: int = 1
    image_vector: np.ndarray | None = None  # [T] the photos in the text space, L2-normalised
    # words the scene saw (text read in the photos, place, season): facts a caption may state
    scene_words: tuple[str, ...] = ()
    scene: PostScene | None = None  # what the tool saw in the post's photos, with what its posters say


@dataclass(frozen=True)
class CaptionResult:
    caption: str  # with the swipe hint where it applies
    hashtags: list[str]
    mode: str
    score: float | None  # image-text agreement of the caption text (without the swipe hint)
    candidates: list[tuple[str, float | None]] = field(default_factory=list)  # cleaned generations, scored
    rejected: list[tuple[str, str]] = field(default_factory=list)  # generations not used: (text, reason)

    def to_json(self) -> dict:
        return {
            "caption": self.caption,
            "hashtags": list(self.hashtags),
            "mode": self.mode,
            "score": None if self.score is None else round(float(self.score), 4),
        }


def caption_prompt(item: CaptionInput, examples: Sequence[StyleExample]) -> str:
    """Few-shot prompt for a base (not instruction-tuned) model: examples, then the post's topic line."""
    lines = [CAPTION_HEADER, ""]
    for ex in examples:
        lines += [f"Topic: {ex.key()}", f"Caption: {ex.caption}", ""]
    lines += [f"Topic: {topic_text(item.event, item.labels, item.concepts)}", "Caption:"]
    return "\n".join(lines)


def agreement(text_encoder, image_vector: np.ndarray | None, texts: Sequence[str]) -> list[float | None]:
    """Image-text agreement (cosine) of each text with the image vector; None without a vector."""
    if image_vector is None or not texts:
        return [None] * len(texts)
    t = text_encoder.encode(list(texts), kind="query")
    v = np.asarray(image_vector, dtype=np.float32)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    return [float(x) for x in t @ v]


class CaptionWriter:
    """Writes captions with one generator, text encoder and (optional) style bank, all loaded lazily."""

    def __init__(self, cfg: CaptionConfig, generator=None, text_encoder=None, style: StyleBank | None = None):
        self.cfg = cfg
        self.generator = generator
        self.text_encoder = text_encoder
        self.style = style

    @cached_property
    def owner_words(self) -> list[str]:
        """Names the owner's style examples state again and again (club, college, city): allowed in any caption."""
        if self.style is None:
            return []
        return owner_names([e.caption for e in self.style.examples])

    def fact_sources(self, item: CaptionInput) -> list[str]:
        """What a caption of ``item`` may state as fact (:func:`photopoet.stages.write.facts.post_sources`)."""
        return post_sources(
            item.event,
            item.labels,
            item.concepts,
            config_words=config_words(self.cfg),
            owner_words=self.owner_words,
            scene_words=item.scene_words,
            n_photos=item.n_photos,
        )

    def examples_for(self, item: CaptionInput) -> list[StyleExample]:
        if self.style is None:
            return []
        return self.style.nearest(topic_text(item.event, item.labels, item.concepts), self.cfg.style_examples)

    def generate(self, item: CaptionInput) -> list[str]:
        """Cleaned, distinct, non-empty generated captions that copy neither an example nor the topic line
        (may be none)."""
        return self.generate_many([item])[0]

    def generate_many(self, items: Sequence[CaptionInput]) -> list[list[str]]:
        """:meth:`generate` for several posts in one generator call (the engine decodes them together)."""
        return [kept for kept, _ in self.screen_many(items)]

    def screen_many(self, items: Sequence[CaptionInput]) -> list[tuple[list[str], list[tuple[str, str]]]]:
        """Per post: the generated captions kept (as :meth:`generate_many`) and those rejected, with the reason."""
        if self.generator is None:
            raise ValueError("generative captions need a generator")
        if not items:
            return []
        examples = [self.examples_for(item) for item in items]
        prompts = [caption_prompt(item, ex) for item, ex in zip(items, examples, strict=True)]
        raws = self.generator.generate(
            prompts,
            max_new_tokens=self.cfg.max_new_tokens,
            temperature=self.cfg.temperature,
            num_return_sequences=self.cfg.candidates,
            seed=self.cfg.seed,
            stop=CAPTION_STOP,
        )
        res = []
        for item, ex, raw in zip(items, examples, raws, strict=True):
            sources = [e.caption for e in ex] + [topic_text(item.event, item.labels, item.concepts)]
            facts = self.fact_sources(item)
            out: list[str] = []
            rejected: list[tuple[str, str]] = []
            for r in raw:
                c = clean_caption(r, max_chars=self.cfg.max_chars, min_chars=self.cfg.min_chars)
                reason = self._reject(c, out, sources, facts, item)
                if reason is None:
                    out.append(c)
                    continue
                rejected.append((c or r.strip(), reason))
                logger.debug("caption for %s rejected (%s): %r", item.id, reason, c or r)
            res.append((out, rejected))
        return res

    @staticmethod
    def _reject(c: str, kept: list[str], sources: list[str], facts: list[str], item: CaptionInput) -> str | None:
        """Why a cleaned generation is not a caption (None: it is one)."""
        if not c:
            return "empty after cleaning (a loop, only tags or too short)"
        if c.lower() in (x.lower() for x in kept):
            return "duplicate"
        if any(copied_share(c, src) > MAX_COPIED for src in sources):
            return "copies an example or the topic line"  # instead of writing
        jargon = jargon_in(c, [*sources, *item.labels, *item.concepts, item.event or "", *item.scene_words])
        if jargon:  # an ImageNet misfire ("dust jacket", "website"), not what the photos show
            return "imagenet jargon: " + ", ".join(jargon)
        invented = invented_facts(c, facts)
        if invented:  # "University of California, Los Angeles (UCLA)", "2016-2017" on a post that says neither
            return "invented facts: " + ", ".join(invented)
        return None

    def write(self, item: CaptionInput, mode: str | None = None) -> CaptionResult:
        return self.write_many([item], mode)[0]

    def write_many(self, items: Sequence[CaptionInput], mode: str | None = None) -> list[CaptionResult]:
        """A caption for each post; the generated ones (generative and hybrid modes) in one generator call."""
        mode = mode or self.cfg.mode
        if mode not in ("template", "generative", "hybrid"):
            raise ValueError(f"caption mode must be template, generative or hybrid, got {mode!r}")
        screened = self.screen_many(items) if mode != "template" else [([], []) for _ in items]
        return [self._choose(item, mode, g, rej) for item, (g, rej) in zip(items, screened, strict=True)]

    def _choose(
        self, item: CaptionInput, mode: str, gens: list[str], rejected: list[tuple[str, str]] | None = None
    ) -> CaptionResult:
        rejected = list(rejected or [])
        tags = hashtags_for(item.labels, item.event, self.cfg, item.scene)
        named = item.labels or item.concepts[:3]  # without labels, what the classifier saw in plain words
        templ = scene_caption(item.id, named, item.event, item.n_photos, self.cfg, item.scene, swipe=False)

        def score(texts: list[str]) -> list[float | None]:
            if self.text_encoder is None:
                return [None] * len(texts)
            return agreement(self.text_encoder, item.image_vector, texts)

        if mode == "template":
            s = score([templ])[0]
            return CaptionResult(with_swipe_hint(templ, item.n_photos, self.cfg), tags, "template", s)
        scores = score(gens) if gens else []
        cands = list(zip(gens, scores, strict=True))
        if not gens:
            s = score([templ])[0]
            return CaptionResult(
                with_swipe_hint(templ, item.n_photos, self.cfg), tags, f"{mode}:template", s, cands, rejected
            )
        best = max(range(len(gens)), key=lambda i: (-np.inf if scores[i] is None else scores[i], -i))
        text, s = gens[best], scores[best]
        if mode == "hybrid" and s is not None and s < self.cfg.agreement_threshold:
            ts = score([templ])[0]
            return CaptionResult(
                with_swipe_hint(templ, item.n_photos, self.cfg), tags, "hybrid:template", ts, cands, rejected
            )
        used = "generative" if mode == "generative" else "hybrid:generative"
        text = with_poster_details(with_poster_lead(text, item.scene), item.scene)
        return CaptionResult(with_swipe_hint(text, item.n_photos, self.cfg), tags, used, s, cands, rejected)


def with_poster_lead(text: str, scene: PostScene | None) -> str:
    """A generated caption of a post with a poster, led by the event as the poster spells it ("Tasveer 2025:
    Photography Competition \u2014 Calling all ...") unless it already names the poster's title.

    The generator is not shown the poster's words: given them in its topic line, the base model copied them
    back (rejected as a copy) or listed them ("A modern structure show, architecture, theme, ..."), and the
    generated captions of the club's test posts lost ROUGE-L (benchmarks/caption_eval.py)."""
    poster = scene.poster if scene is not None else None
    lead = caption_event(None, scene) if poster is not None else None
    if not lead or not poster or not poster.title or norm_text(poster.title) in norm_text(text):
        return text
    return f"{lead} \u2014 {text}"


def with_poster_details(text: str, scene: PostScene | None) -> str:
    """A generated caption of a post with a poster, ending with the poster's date, time and venue ("15th Feb |
    2pm - 4pm | Mini Auditorium") unless it already names its date or venue."""
    poster = scene.poster if scene is not None else None
    if poster is None or not poster.details():
        return text
    low = text.casefold()
    if any(x and x.casefold() in low for x in (poster.date, poster.venue)):
        return text
    return f"{text.rstrip()} {poster.details()}"
