"""Atomic file writes: a reader (or a killed run) never sees a half-written output."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp alone gives 0600


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftover_tmp(folder: Path, names: set[str] | None = None) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files a killed :func:`atomic_write_bytes` left in `folder` (only for the
    file names in `names`, or for any name when None); returns what was removed. Other files are never touched."""
    removed = []
    try:
        found = list(folder.glob(".*.tmp"))
    except OSError:
        return removed
    for p in found:
        stem = p.name[1:-4]  # "<name>.<random>"
        name = stem.rsplit(".", 1)[0] if "." in stem else ""
        if not name or (names is not None and name not in names) or not p.is_file():
            continue
        try:
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


def free_name(target: Path) -> Path:
    """`target` if nothing is there yet, else the first of ``<target>.2``, ``<target>.3`` ... that is free."""
    if not target.exists() and not target.is_symlink():
        return target
    n = 2
    while True:
        cand = target.with_name(f"{target.name}.{n}")
        if not cand.exists() and not cand.is_symlink():
            return cand
        n += 1


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def is_within(child: Path, parent: Path) -> bool:
    """True when `child` is `parent` or lies under it (both resolved through symlinks)."""
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a file


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes as hex, read in :data:`HASH_CHUNK` blocks into one reused buffer.
    Raises ``OSError`` when the file cannot be read."""
    h = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()
