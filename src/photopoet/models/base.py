"""The small interfaces every model tier implements. Numpy in, numpy out; no torch in signatures.

Nothing here imports torch or transformers, so importing the registry stays cheap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

TextKind = Literal["query", "passage"]


@dataclass(frozen=True)
class ImageOutput:
    """What one forward pass of an image encoder gives, for a batch of N images."""

    features: np.ndarray  # [N, D] float32, L2-normalised image features
    probs: np.ndarray | None = None  # [N, C] class probabilities (offline tier: ImageNet-1k)
    text_space: np.ndarray | None = None  # [N, T] image embedding already in the text space (CLIP), L2-normalised

    def __len__(self) -> int:
        return int(self.features.shape[0])


@runtime_checkable
class ImageEncoder(Protocol):
    name: str  # stable cache key: model id + version tag, e.g. "efficientnet-lite0@1"
    dim: int
    input_size: int

    def preprocess(self, img: Image.Image) -> np.ndarray:
        """One RGB PIL image -> [C, H, W] float32, resized and centre-cropped to ``input_size``."""
        ...

    def encode(self, batch: np.ndarray) -> ImageOutput:
        """[N, C, H, W] float32 (stacked ``preprocess`` outputs) -> features (and probabilities)."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str], kind: TextKind = "query") -> np.ndarray:
        """[N, D] float32, L2-normalised. ``kind`` picks the query or passage side of asymmetric encoders."""
        ...


@runtime_checkable
class ImageTextMapper(Protocol):
    name: str

    def to_text_space(self, out: ImageOutput) -> np.ndarray:
        """[N, T] float32, L2-normalised, in the space of the registry's text encoder."""
        ...

    def concepts(self, out: ImageOutput, k: int) -> list[list[tuple[str, float]]]:
        """Per image, up to ``k`` (class name, probability) pairs, best first; empty lists where unknown."""
        ...


@runtime_checkable
class Generator(Protocol):
    name: str

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
        """Per prompt, ``num_return_sequences`` continuations (prompt stripped). Temperature 0 is greedy. A
        continuation ends before the first ``stop`` string that follows its leading whitespace, and with
        ``max_lines`` > 0 at the end of its ``max_lines``-th line (an engine may stop decoding there; one that
        cannot cuts the text)."""
        ...


def check_generate_args(prompts, max_new_tokens: int, temperature: float, num_return_sequences: int) -> None:
    """The argument checks every :class:`Generator` engine makes before decoding."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be at least 1, got {num_return_sequences}")


def stop_at(text: str, stop: Sequence[str], max_lines: int = 0) -> str | None:
    """``text`` cut before the first of the ``stop`` strings found after its leading whitespace (a continuation
    often starts with a newline) or, with ``max_lines`` > 0, before the newline that ends its ``max_lines``-th
    line (counted from that leading whitespace); None when neither is there."""
    start = len(text) - len(text.lstrip())
    hits = [i for i in (text.find(x, start) for x in stop if x) if i >= 0]
    if max_lines > 0:
        end = start - 1
        for _ in range(max_lines):
            end = text.find("\n", end + 1)
            if end < 0:
                break
        else:
            hits.append(end)
    return text[: min(hits)] if hits else None


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Float32 rows of unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; an explicit CUDA device must exist."""
    import torch

    d = device.strip().lower()
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"models.device is {device!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
    return d


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


COMPLETE_MARKER = "photopoet-complete.json"


def build_dir_atomically(final: Path, build: Callable[[Path], None]) -> Path:
    """Make the folder ``final`` by running ``build(tmp)`` on a fresh temporary sibling, then renaming it.

    A killed build leaves only a ``.tmp-*`` sibling (cleaned up by the next build), never a half-written
    ``final``. The folder counts as done only when it holds :data:`COMPLETE_MARKER`. Two processes building
    at once each build their own copy; the first rename wins and the other copy is discarded. On POSIX an
    advisory lock makes the second process wait for the first instead of building again.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if (final / COMPLETE_MARKER).is_file():
        return final
    with _DirLock(final.parent / f".{final.name}.lock") as lock:
        if (final / COMPLETE_MARKER).is_file():
            return final
        if final.exists():  # left by something else (no marker): not ours to trust
            shutil.rmtree(final, ignore_errors=True)
        if lock.held:  # only then can no other process be building right now
            for stale in final.parent.glob(f".{final.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            out = tmp / "out"
            out.mkdir()
            build(out)
            (out / COMPLETE_MARKER).write_text('{"complete": true}\n', encoding="utf-8")
            try:
                os.replace(out, final)
            except OSError:
                if not (final / COMPLETE_MARKER).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class _DirLock:
    """Advisory exclusive file lock (fcntl); a no-op where fcntl does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None
        self.held = False

    def __enter__(self) -> _DirLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self._fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self.held = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
            self.held = False
