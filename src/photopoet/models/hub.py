"""The hub tier: models by id through ``transformers`` (or a local folder laid out the same way).

- image + text + mapper: one CLIP model (e.g. ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``); image features are the
  normalised image embeddings, which already live in CLIP's joint space, so the mapper is the identity.
- generator: any causal LM id.

The image processor is the PIL/numpy one: the "fast" one needs torchvision, which must not be installed here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from photopoet.models._lm import TransformersCausalLM
from photopoet.models.base import ImageOutput, TextKind, l2_normalize, resolve_device

VERSION = 1


@dataclass
class _Clip:
    model: Any
    tokenizer: Any
    processor: Any
    device: str


_CLIP_CACHE: dict[tuple[str, str], _Clip] = {}
_CLIP_LOCK = threading.Lock()


def _load_image_processor(model_id: str) -> Any:
    try:  # transformers >= 5: the PIL backend has its own class
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4.x: the plain class is the slow PIL/numpy one
        from transformers import CLIPImageProcessor as Processor
    return Processor.from_pretrained(model_id)


def load_clip(model_id: str, device: str = "cpu") -> _Clip:
    """One CLIP model per (id, device) per process, shared by the image and text encoders."""
    dev = resolve_device(device)
    key = (model_id, dev)
    with _CLIP_LOCK:
        if key not in _CLIP_CACHE:
            from transformers import AutoTokenizer, CLIPModel

            model = CLIPModel.from_pretrained(model_id).to(dev).eval()
            tok = AutoTokenizer.from_pretrained(model_id)
            proc = _load_image_processor(model_id)
            _CLIP_CACHE[key] = _Clip(model, tok, proc, dev)
        return _CLIP_CACHE[key]


class HubClipImageEncoder:
    """CLIP image tower + projection; ``features`` and ``text_space`` are the same normalised embedding."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = 32) -> None:
        self.model_id = model_id
        self.name = f"clip:{model_id}@{VERSION}"
        self.batch_size = max(1, int(batch_size))
        self._device = device
        self._clip: _Clip | None = None
        clip = self._get()
        self.dim = int(clip.model.config.projection_dim)
        crop = getattr(clip.processor, "crop_size", None) or {}
        size = crop.get("height") if isinstance(crop, dict) else None
        self.input_size = int(size or clip.model.config.vision_config.image_size)

    def _get(self) -> _Clip:
        if self._clip is None:
            self._clip = load_clip(self.model_id, self._device)
        return self._clip

    def preprocess(self, img: Image.Image) -> np.ndarray:
        if img.mode != "RGB":
            img = img.convert("RGB")
        px = self._get().processor(images=[img], return_tensors="np")["pixel_values"]
        return np.ascontiguousarray(np.asarray(px, dtype=np.float32)[0])

    def encode(self, batch: np.ndarray) -> ImageOutput:
        batch = np.asarray(batch, dtype=np.float32)
        s = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"expected a batch [N, 3, {s}, {s}] of stacked preprocess outputs, got {batch.shape}")
        if len(batch) == 0:
            z = np.zeros((0, self.dim), np.float32)
            return ImageOutput(features=z, probs=None, text_space=z)
        import torch

        clip = self._get()
        outs = []
        with torch.inference_mode():
            for i in range(0, len(batch), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(batch[i : i + self.batch_size])).to(clip.device)
                x = x.to(clip.model.dtype)
                pooled = clip.model.vision_model(pixel_values=x).pooler_output
                outs.append(clip.model.visual_projection(pooled).float().cpu().numpy())
        f = l2_normalize(np.concatenate(outs))
        return ImageOutput(features=f, probs=None, text_space=f)


class HubClipTextEncoder:
    """CLIP text tower + projection. CLIP is symmetric: ``kind`` is accepted and ignored."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_id = model_id
        self.name = f"clip-text:{model_id}@{VERSION}"
        self.batch_size = max(1, int(batch_size))
        self._clip = load_clip(model_id, device)
        self.dim = int(self._clip.model.config.projection_dim)
        self.max_length = int(self._clip.model.config.text_config.max_position_embeddings)

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        import torch

        clip = self._clip
        outs = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = clip.tokenizer(
                    [str(t) for t in texts[i : i + self.batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                pooled = clip.model.text_model(
                    input_ids=enc["input_ids"].to(clip.device),
                    attention_mask=enc["attention_mask"].to(clip.device),
                ).pooler_output
                outs.append(clip.model.text_projection(pooled).float().cpu().numpy())
        return l2_normalize(np.concatenate(outs))


class HubClipMapper:
    """CLIP image embeddings are already in the text space: pass them through."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.name = f"clip-identity:{model_id}@{VERSION}"

    def to_text_space(self, out: ImageOutput) -> np.ndarray:
        if out.text_space is None:
            raise ValueError(f"{self.name}: the image output has no text-space embedding (not a CLIP encoder?)")
        return l2_normalize(out.text_space)

    def concepts(self, out: ImageOutput, k: int) -> list[list[tuple[str, float]]]:
        return [[] for _ in range(len(out))]


class HubCausalLM(TransformersCausalLM):
    """Any causal LM by id or local folder (``AutoModelForCausalLM`` + ``AutoTokenizer``), loaded on first use."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = 8) -> None:
        super().__init__(f"causal-lm:{model_id}@{VERSION}", model_id, device, batch_size=batch_size)
        self.model_id = model_id
