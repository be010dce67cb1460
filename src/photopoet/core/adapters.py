"""LoRA adapters written by ``photopoet train style``: checking a folder, naming it by content.

An adapter folder holds what ``peft`` saves (``adapter_config.json``, ``adapter_model.safetensors``) and
``photopoet_adapter.json``: the generator it was trained on and the prompt it was trained with. Nothing here
imports torch or peft.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from photopoet.errors import AdapterError

ADAPTER_META = "photopoet_adapter.json"
_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter_dir(path: str | Path) -> Path:
    """``path`` as a Path when it is a usable adapter folder, else :class:`AdapterError`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise AdapterError(f"{p}: no such adapter folder")
    if not p.is_dir():
        raise AdapterError(f"{p}: not a folder (give the adapter folder, e.g. OUT/best from `photopoet train style`)")
    if not (p / "adapter_config.json").is_file():
        hint = " (a training output folder? use its best/ or last/)" if (p / "best").is_dir() else ""
        raise AdapterError(f"{p}: no adapter_config.json, not a LoRA adapter folder{hint}")
    if not any((p / w).is_file() for w in _WEIGHTS):
        raise AdapterError(f"{p}: no adapter weights (adapter_model.safetensors)")
    return p


def adapter_meta(path: str | Path) -> dict[str, Any]:
    """The photopoet metadata of an adapter folder ({} when it has none, e.g. an adapter trained elsewhere)."""
    f = Path(path) / ADAPTER_META
    if not f.is_file():
        return {}
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterError(f"{f}: unreadable adapter metadata ({e})") from None
    return d if isinstance(d, dict) else {}


def adapter_digest(path: str | Path) -> str:
    """Content hash of the adapter's config and weights: two folders with the same digest generate the same."""
    p = check_adapter_dir(path)
    h = hashlib.sha256()
    for name in ("adapter_config.json", *_WEIGHTS):
        f = p / name
        if f.is_file():
            h.update(name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()
