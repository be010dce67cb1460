"""The parts of a training loop that every trainer shares (style LoRA, prefix VLM, retriever).

- Checkpoint folders are written whole and swapped into place (:func:`swap_in`), so a killed run always leaves
  a complete previous folder; :func:`recover` tidies up after a kill before a run resumes.
- The random generators' states (:func:`rng_state`, :func:`set_rng_state`) are saved beside a checkpoint so a
  resumed run draws the same numbers as an uninterrupted one.
- :class:`StopOnSigint`: the first Ctrl-C asks the loop to stop after the current step.
- :func:`round_metric`: a metric value as the JSON files store it.

torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "trainer_state.json"
"""The step, best score and history a JSON-state trainer (style, prefix VLM) keeps in ``OUT/last/``."""


def swap_in(final: Path, write: Callable[[Path], None]) -> None:
    """Write a folder into a temporary sibling, then rename it over ``final`` (the old one renamed aside first,
    removed last): at every moment ``final`` or ``final.old`` is a complete folder."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    old = final.parent / f".{final.name}.old"
    try:
        write(tmp)
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> None:
    """After a kill between the two renames of :func:`swap_in`: put the previous folder back, and remove the
    half-written temporary folders a killed :func:`swap_in` left."""
    old = final.parent / f".{final.name}.old"
    if not final.exists() and old.is_dir():
        os.replace(old, final)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's random generators (and CUDA's when there is a GPU), for
    ``torch.save`` beside a checkpoint."""
    import torch

    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    """Restore the states :func:`rng_state` saved (CUDA's only when saved and a GPU is present)."""
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


class StopOnSigint:
    """While training: the first Ctrl-C asks the loop to stop after the current step (``requested`` turns
    true; the loop then saves last/); a second one interrupts at once. Outside the main thread signals cannot be
    caught: nothing changes. Call :meth:`restore` when the loop ends."""

    def __init__(self) -> None:
        import signal
        import threading

        self.requested = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once)", flush=True)

    def restore(self) -> None:
        """Put the previous SIGINT handler back."""
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def round_metric(v: Any) -> Any:
    """A metric value for the JSON files: floats rounded to 6 places, NaN as None (JSON has no NaN); anything
    else unchanged."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    return v
