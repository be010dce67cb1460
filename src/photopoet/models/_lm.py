"""Causal-LM text generation through ``transformers``, shared by the offline Gemma and any hub model."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from photopoet.models.base import check_generate_args, resolve_device, stop_at

logger = logging.getLogger(__name__)


_MARKUP = re.compile(r"^(<[^<>\s]+>|\[[^\[\]\s]+\])$")


def control_token_ids(tok: Any, keep: set[int]) -> list[int]:
    """Ids of added tokens a text generator should never emit: special ones and markup-like ones such as
    Gemma's ``<start_of_image>`` (not flagged special, so decoding would keep it), except those in ``keep``."""
    ids = []
    for i, t in getattr(tok, "added_tokens_decoder", {}).items():
        if i in keep:
            continue
        if getattr(t, "special", False) or _MARKUP.match(str(getattr(t, "content", t))):
            ids.append(int(i))
    return sorted(ids)


def dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """``dtype=`` on transformers >= 5, ``torch_dtype=`` before (the old name warns on 5)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


class TransformersCausalLM:
    """A causal LM loaded on first :meth:`generate` from a local folder or a model id.

    ``source`` is a model id / folder, or a callable returning one (called once, at load time: the offline
    tier uses it to convert weights into its cache first). Decoding:

    - ``temperature == 0``: greedy; with ``num_return_sequences > 1``, beam search with that many beams,
      returning the best distinct beams (deterministic, no seed involved). Prompts run in left-padded
      batches of ``batch_size``.
    - ``temperature > 0``: sampling with ``top_k``/``top_p``; each prompt runs on its own under
      ``torch.manual_seed(seed)`` inside a forked RNG, so a prompt's samples do not depend on the other
      prompts in the call and the global RNG is left as it was.

    :meth:`adapted` gives a view of the same model with a LoRA adapter (``peft``) switched on; the base model
    itself keeps generating without it, so a caption adapter leaves the haiku alone and the weights load once.
    """

    engine = "transformers"

    def __init__(
        self,
        name: str,
        source: str | Callable[[], str],
        device: str = "cpu",
        *,
        batch_size: int = 8,
        top_k: int = 64,
        top_p: float = 0.95,
    ) -> None:
        self.name = name
        self._source = source
        self._device_spec = device
        self.batch_size = max(1, int(batch_size))
        self.top_k = top_k
        self.top_p = top_p
        self._model: Any = None
        self._tok: Any = None
        self._device = "cpu"
        self._eos: list[int] = []
        self._suppress: list[int] = []
        self._lock = threading.RLock()
        self._adapters: dict[str, str] = {}  # adapter name -> folder, loaded with the model (or at once if loaded)

    @property
    def source(self) -> str:
        """The model folder or id (the offline tier converts its weights into the cache first)."""
        return self._source() if callable(self._source) else self._source

    def adapted(self, adapter_dir: str | Path) -> AdaptedCausalLM:
        """This model with the LoRA adapter in ``adapter_dir`` on; named after the adapter's content."""
        from photopoet.core.adapters import adapter_digest

        digest = adapter_digest(adapter_dir)
        name = f"lora_{digest[:16]}"
        with self._lock:
            if name not in self._adapters:
                self._adapters[name] = str(adapter_dir)
                if self._model is not None:
                    self._attach(name, str(adapter_dir))
        return AdaptedCausalLM(self, name)

    def _attach(self, name: str, folder: str) -> None:
        from peft import PeftModel

        if isinstance(self._model, PeftModel):
            self._model.load_adapter(folder, adapter_name=name)
        else:
            self._model = PeftModel.from_pretrained(self._model, folder, adapter_name=name)
        self._model.eval()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            src = self.source
            device = resolve_device(self._device_spec)
            tok = AutoTokenizer.from_pretrained(src)
            dtype = torch.float32 if device == "cpu" else "auto"
            model = AutoModelForCausalLM.from_pretrained(src, **dtype_kwarg(dtype))
            model.to(device)
            model.eval()
            tok.padding_side = "left"
            if tok.pad_token is None:
                if tok.eos_token is None:
                    raise ValueError(f"{src}: the tokenizer has neither a pad nor an eos token")
                tok.pad_token = tok.eos_token
            eos = model.generation_config.eos_token_id
            eos = eos if eos is not None else tok.eos_token_id
            self._eos = [eos] if isinstance(eos, int) else list(eos or [])
            self._suppress = control_token_ids(tok, set(self._eos))
            self._tok, self._model, self._device = tok, model, device
            for name, folder in self._adapters.items():
                self._attach(name, folder)

    def _generation_config(self, max_new_tokens: int, temperature: float, n: int) -> Any:
        from transformers import GenerationConfig

        kw: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "num_return_sequences": n,
            "pad_token_id": self._tok.pad_token_id,
            "eos_token_id": self._eos or None,
            "bos_token_id": self._model.generation_config.bos_token_id,
            "suppress_tokens": self._suppress or None,
        }
        if temperature == 0:
            kw.update(do_sample=False, num_beams=n)
            if n > 1:
                kw.update(early_stopping=True)
        else:
            kw.update(do_sample=True, num_beams=1, temperature=temperature, top_k=self.top_k, top_p=self.top_p)
        return GenerationConfig(**kw)

    def _run(self, prompts: list[str], gc: Any, seed: int, adapter: str | None = None) -> list[list[str]]:
        import contextlib

        import torch

        enc = self._tok(prompts, return_tensors="pt", padding=True)
        enc = {k: v.to(self._device) for k, v in enc.items()}
        devices = [torch.device(self._device).index or 0] if self._device.startswith("cuda") else []
        with self._lock:  # the active adapter is model state: one generation at a time
            if adapter is not None:
                self._model.set_adapter(adapter)
                which = contextlib.nullcontext()
            elif self._adapters:
                which = self._model.disable_adapter()
            else:
                which = contextlib.nullcontext()
            with torch.inference_mode(), torch.random.fork_rng(devices=devices), which:
                torch.manual_seed(seed)
                out = self._model.generate(**enc, generation_config=gc)
        cont = out[:, enc["input_ids"].shape[1] :]
        texts = self._tok.batch_decode(cont, skip_special_tokens=True)
        n = gc.num_return_sequences
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 40,
        temperature: float = 0.0,
        num_return_sequences: int = 1,
        seed: int = 0,
        *,
        adapter: str | None = None,
        stop: Sequence[str] = (),
        max_lines: int = 0,
    ) -> list[list[str]]:
        check_generate_args(prompts, max_new_tokens, temperature, num_return_sequences)
        if not prompts:
            return []
        self._load()
        gc = self._generation_config(max_new_tokens, float(temperature), num_return_sequences)
        out: list[list[str]] = []
        step = self.batch_size if temperature == 0 else 1
        for i in range(0, len(prompts), step):
            out.extend(self._run(list(prompts[i : i + step]), gc, seed, adapter))
        if stop or max_lines > 0:  # decoded in full, then cut: the same texts an engine that stops early gives
            out = [[cut if (cut := stop_at(t, stop, max_lines)) is not None else t for t in row] for row in out]
        return out


class AdaptedCausalLM:
    """A :class:`TransformersCausalLM` with one of its LoRA adapters on (see :meth:`TransformersCausalLM.adapted`)."""

    def __init__(self, base: TransformersCausalLM, adapter: str) -> None:
        self.base = base
        self.adapter = adapter
        self.name = f"{base.name}+{adapter}"

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 40,
        temperature: float = 0.0,
        num_return_sequences: int = 1,
        seed: int = 0,
        *,
        stop: Sequence[str] = (),
        max_lines: int = 0,
    ) -> list[list[str]]:
        return self.base.generate(
            prompts,
            max_new_tokens,
            temperature,
            num_return_sequences,
            seed,
            adapter=self.adapter,
            stop=stop,
            max_lines=max_lines,
        )
