"""The poem stage: one line of classical Chinese poetry for each post, retrieved from the corpus index
(:mod:`photopoet.poetry.select`) by the text-space vectors of its photos, nudged toward its scene's mood."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.config import Config
from photopoet.models.base import TextEncoder, l2_normalize
from photopoet.poetry.select import PoemWriter, mood_query, post_mood
from photopoet.records import Post

logger = logging.getLogger(__name__)


def write_poems(
    posts: Sequence[Post], cfg: Config, cache_dir: Path, *, und: Any, text_encoder: TextEncoder | None = None
) -> list[Post]:
    """The poem stage: a poem for each post from its photos' text-space vectors (``und``: the understand
    stage's result), nudged toward the mood words of its scene (:func:`post_mood`, in modern Chinese, embedded
    in the same space and added with weight ``poem.mood_weight``; as a query of their own with the text weight,
    "春天" gave every spring post the fragment 春去。). Returns new
    Post records, each poem with ``mood_words`` (the English words that shaped the query); a post whose poem
    fails keeps ``poem = None`` (logged).

    Needs more than ``cfg.poem``: the writer loads the text encoder and, for a fallback, the generator
    (``cfg.models``), and the installed index and retriever from `cache_dir`; it reads no cache entries.
    """
    if not cfg.poem.enabled or not posts:
        return list(posts)
    row = {u.photo.path: i for i, u in enumerate(und.photos)}
    concepts = {u.photo.path: list(u.concepts) for u in und.photos}
    writer = PoemWriter(cfg, cache_dir, text_encoder=text_encoder)
    queries = []
    moods: list[list[str]] = []
    for post in posts:
        rows = [row[p] for p in post.photos if p in row]
        vecs = und.text_vectors[rows] if rows else None
        cons = list(dict.fromkeys(c for p in post.photos for c in concepts.get(p, [])))
        query, used = mood_query(post_mood(post, cons))
        w = cfg.poem.mood_weight
        if query and vecs is not None and len(vecs) and w > 0:  # the mood nudges the photos' vector
            mood = writer.encoder.encode([query], kind="query")[0]
            centre = l2_normalize(np.asarray(vecs, dtype=np.float32).mean(axis=0))
            vecs = l2_normalize(centre + w * np.asarray(mood, dtype=np.float32))[None, :]
        else:
            used = []
        queries.append((vecs, None, cons))
        moods.append(used)
    out = []
    for post, poem, used in zip(posts, writer.write_many(queries), moods, strict=True):
        if isinstance(poem, Exception):
            logger.warning("post %s: no poem (%s)", post.id, poem)
            poem = None
        elif used:
            poem = {**poem, "mood_words": used}
        out.append(replace(post, poem=poem))
    return out
