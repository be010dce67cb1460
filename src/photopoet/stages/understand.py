"""Understanding: image features, top ImageNet concepts, and zero-shot labels from the user's list.

Every per-photo result is cached by content hash and model name, so models load only when something is
missing: a rerun over the same photos touches no model at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photopoet.cache import Cache
from photopoet.config import Config
from photopoet.records import Label, Photo, Understood
from photopoet.stages.ingest import working_copy_from_bytes


class ModelSet:
    """The models a run needs, each created on first use from one config."""

    def __init__(self, cfg: Config, cache_dir: Path) -> None:
        self.cfg = cfg
        self.cache_dir = cache_dir

    @cached_property
    def image_encoder(self):
        from photopoet.models import create_image_encoder

        return create_image_encoder(self.cfg.models, self.cache_dir)

    @cached_property
    def text_encoder(self):
        from photopoet.models import create_text_encoder

        return create_text_encoder(self.cfg.models, self.cache_dir)

    @cached_property
    def mapper(self):
        from photopoet.models import create_mapper

        return create_mapper(
            self.cfg.models, self.cache_dir, image_encoder=self.image_encoder, text_encoder=self.text_encoder
        )

    def image_key(self) -> str:
        """Cache key of the image features, known without loading the model."""
        m = self.cfg.models
        return f"{m.tier}:{m.image}"

    def text_key(self) -> str:
        m = self.cfg.models
        return f"{m.tier}:{m.image}->{m.text}:k{m.conse_topk}"


@dataclass(frozen=True)
class Understanding:
    photos: list[Understood]
    features: np.ndarray  # [N, D] L2-normalised image features, rows in the order of `photos`
    text_vectors: np.ndarray  # [N, T] image vectors in the text space (ConSE or CLIP), L2-normalised
    computed: int  # photos that needed the image model this run


def _embed_missing(photos: Sequence[Photo], models: ModelSet, cache: Cache, batch_size: int, progress: bool) -> int:
    fkey, tkey, ckey = "feat:" + models.image_key(), "txt:" + models.text_key(), "concepts:" + models.image_key()
    have_f = cache.get_vectors(fkey, [p.sha256 for p in photos])
    have_t = cache.get_vectors(tkey, [p.sha256 for p in photos])
    have_c = cache.get_json(ckey, [p.sha256 for p in photos])
    todo: list[Photo] = []
    seen: set[str] = set()
    for p in photos:
        if p.sha256 in seen:
            continue
        seen.add(p.sha256)
        if p.sha256 not in have_f or p.sha256 not in have_t or p.sha256 not in have_c:
            todo.append(p)
    if not todo:
        return 0
    enc, mapper = models.image_encoder, models.mapper
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]

    # Blobs are read on this thread (a SQLite connection stays on one thread); decoding and preprocessing
    # the next batch runs on a helper thread while the model works on this one.
    def submit(pool: ThreadPoolExecutor, chunk: list[Photo]) -> Future[np.ndarray]:
        blobs = [_thumb(cache, p.sha256) for p in chunk]
        return pool.submit(lambda: np.stack([enc.preprocess(working_copy_from_bytes(b)) for b in blobs]))

    bar = tqdm(total=len(todo), desc="features", unit="photo", disable=not progress)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        ahead = submit(pool, chunks[0])
        for n, chunk in enumerate(chunks):
            batch = ahead.result()
            if n + 1 < len(chunks):
                ahead = submit(pool, chunks[n + 1])
            out = enc.encode(batch)
            text_space = mapper.to_text_space(out)
            concepts = mapper.concepts(out, 5)
            with cache.batch():
                cache.put_vectors(fkey, {p.sha256: out.features[i] for i, p in enumerate(chunk)})
                cache.put_vectors(tkey, {p.sha256: text_space[i] for i, p in enumerate(chunk)})
                cache.put_json(
                    ckey, {p.sha256: [[c, round(float(w), 4)] for c, w in concepts[i]] for i, p in enumerate(chunk)}
                )
            bar.update(len(chunk))
    bar.close()
    return len(todo)


def _thumb(cache: Cache, sha: str) -> bytes:
    data = cache.get_thumb(sha)
    if data is None:
        raise KeyError(f"no working copy of {sha} in the cache {cache.path}; ingest the photo first")
    return data


def label_scores(text_vectors: np.ndarray, labels: Sequence[str], models: ModelSet) -> np.ndarray:
    """Cosine agreement of each image's text-space vector with each label's prompt, [N, L]."""
    if not labels or len(text_vectors) == 0:
        return np.zeros((len(text_vectors), len(labels)), dtype=np.float32)
    prompts = [f"a photo of {label}" for label in labels]
    lab = models.text_encoder.encode(prompts, kind="query")
    return (text_vectors @ lab.T).astype(np.float32)


def understand(
    photos: Sequence[Photo], cfg: Config, cache: Cache, models: ModelSet, *, progress: bool = True
) -> Understanding:
    computed = _embed_missing(photos, models, cache, cfg.models.batch_size, progress)
    shas = [p.sha256 for p in photos]
    feats = cache.get_vectors("feat:" + models.image_key(), shas)
    texts = cache.get_vectors("txt:" + models.text_key(), shas)
    concepts = cache.get_json("concepts:" + models.image_key(), shas)
    if photos:
        F = np.stack([feats[s] for s in shas]).astype(np.float32)
        T = np.stack([texts[s] for s in shas]).astype(np.float32)
    else:
        F = np.zeros((0, 1), np.float32)
        T = np.zeros((0, 1), np.float32)
    labels = cfg.understand.labels
    topk = min(cfg.understand.topk, len(labels))
    scores = label_scores(T, labels, models) if topk else np.zeros((len(photos), 0), np.float32)
    out: list[Understood] = []
    for i, p in enumerate(photos):
        order = np.argsort(-scores[i], kind="stable")[:topk] if topk else []
        out.append(
            Understood(
                photo=p,
                labels=tuple(Label(labels[j], round(float(scores[i, j]), 4)) for j in order),
                concepts=tuple(str(c[0]) for c in concepts.get(p.sha256, [])),
            )
        )
    return Understanding(photos=out, features=F, text_vectors=T, computed=computed)
