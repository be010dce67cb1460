"""New texts for one post, through the pipeline's own writers (template / generative captions, haiku, poems).

"Regenerate" writes from the post as it is now (its current photos, labels recomputed from them) and asks for
another version each time: the n-th caption of a post picks its template opener by ``<id>~n`` and its
generation seed by ``seed + n`` (sampled at ``REGEN_TEMPERATURE`` when the config decodes greedily), the
haiku's seed advances the same way, and the poem is the best reranked line the post has not been shown yet.
Models load on first use and stay loaded while the server runs (the generator is the process's shared one).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.config import Config
from photopoet.stages.write.caption import CaptionInput, CaptionWriter
from photopoet.stages.write.haiku import HaikuWriter
from photopoet.stages.write.template import post_labels
from photopoet.stages.write.texts import TextWriter, mean_vector, post_concepts
from photopoet.web.state import understood_of

logger = logging.getLogger(__name__)

REGEN_TEMPERATURE = 0.8  # "another version" of a caption the config decodes greedily: sampled, seed + attempt


class Regenerator:
    """Writes a caption, haiku or poem for one post of a review. Subclass and override to fake the models."""

    def __init__(self, cfg: Config, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cfg.cache.resolved_dir()

    @cached_property
    def texts(self) -> TextWriter:
        return TextWriter(self.cfg, self.cache_dir)

    @cached_property
    def poems(self):
        from photopoet.poetry.select import PoemWriter

        return PoemWriter(self.cfg, self.cache_dir, text_encoder=self.texts.text_encoder)

    def vectors(self, doc: dict[str, Any], paths: list[str]) -> np.ndarray | None:
        """The photos' vectors in the text space, from the run's cache (None when the cache has none)."""
        if not self.cfg.cache.enabled or not paths:
            return None
        from photopoet.core.cache import Cache
        from photopoet.stages.understand import ModelSet

        db = self.cache_dir / "cache.sqlite3"
        if not db.is_file():
            return None
        shas = [doc["photos"][p]["sha256"] for p in paths]
        with Cache(db) as cache:
            got = cache.get_vectors("txt:" + ModelSet(self.cfg, self.cache_dir).text_key(), shas)
        rows = [got[s] for s in shas if s in got]
        return np.stack(rows).astype(np.float32) if rows else None

    def context(self, doc: dict[str, Any], post: dict[str, Any]) -> dict[str, Any]:
        paths = list(post["photos"])
        if not paths:
            raise ValueError(f"post {post['id']} has no photos to write about")
        members = [understood_of(doc["photos"][p]) for p in paths]
        vecs = self.vectors(doc, paths)
        return {
            "id": post["id"],
            "event": doc.get("event"),
            "labels": post_labels(members),
            "concepts": [list(m.concepts) for m in members],
            "n": len(paths),
            "vectors": vecs,
            "vector": mean_vector(list(vecs)) if vecs is not None else None,
        }

    def caption(self, ctx: dict[str, Any], attempt: int) -> dict[str, Any]:
        update: dict[str, Any] = {"seed": self.cfg.caption.seed + attempt}
        if attempt > 0 and self.cfg.caption.temperature == 0:
            update["temperature"] = REGEN_TEMPERATURE  # greedy decoding would write the same caption again
        ccfg = self.cfg.caption.model_copy(update=update)
        needs_gen = ccfg.mode != "template"
        writer = CaptionWriter(
            ccfg,
            generator=self.texts.generator if needs_gen else None,
            text_encoder=self.texts.text_encoder,
            style=self.texts.style if needs_gen else None,
        )
        item = CaptionInput(
            id=ctx["id"] if attempt == 0 else f"{ctx['id']}~{attempt}",
            event=ctx["event"],
            labels=tuple(ctx["labels"]),
            concepts=tuple(post_concepts(ctx["concepts"])),
            n_photos=ctx["n"],
            image_vector=ctx["vector"],
        )
        res = writer.write(item)
        return {"caption": res.caption, "hashtags": list(res.hashtags), "mode": res.mode, "score": res.score}

    def haiku(self, ctx: dict[str, Any], attempt: int) -> dict[str, Any]:
        hcfg = self.cfg.haiku.model_copy(update={"seed": self.cfg.haiku.seed + attempt})
        writer = HaikuWriter(hcfg, generator=self.texts.generator, text_encoder=self.texts.text_encoder)
        res = writer.write(ctx["concepts"], ctx["labels"], ctx["event"], ctx["vector"])
        return {"lines": list(res.lines), "score": res.score}

    def poem(self, ctx: dict[str, Any], seen: list[str]) -> dict[str, Any]:
        """The best line for the post that is not in `seen`; the writer's own choice when every candidate was
        shown already (or when it generates one)."""
        w = self.poems
        text = None if ctx["vectors"] is not None else ", ".join(ctx["labels"] + post_concepts(ctx["concepts"]))
        try:
            cands = w.candidates(ctx["vectors"], text)
        except ValueError:
            raise ValueError(f"post {ctx['id']}: nothing to choose a poem from") from None
        for c in cands:
            if w.index.texts[c.line_id] not in seen:
                return w.retrieved(c)
        return w.write(ctx["vectors"], text, [c for cs in ctx["concepts"] for c in cs])
