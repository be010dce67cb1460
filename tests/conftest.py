"""Shared fixtures: small real photos (scikit-image samples) written in every format ingest reads."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

TAKEN = "2024:05:01 10:11:12"
GPS = {1: "N", 2: (52.0, 30.0, 0.0), 3: "W", 4: (1.0, 15.0, 0.0)}  # 52.5 N, 1.25 W


def _exif(
    taken: str | None = None, gps: dict | None = None, orientation: int | None = None, datetime_: str | None = None
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if datetime_ is not None:
        exif[0x0132] = datetime_
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    return exif


@pytest.fixture(scope="session")
def images() -> dict[str, Image.Image]:
    import skimage.data

    return {
        k: Image.fromarray(getattr(skimage.data, k)()).convert("RGB")
        for k in ("astronaut", "coffee", "chelsea", "rocket")
    }


@pytest.fixture(scope="session")
def _photo_template(tmp_path_factory: pytest.TempPathFactory, images: dict[str, Image.Image]) -> Path:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    root = tmp_path_factory.mktemp("template")
    (root / "day1").mkdir()
    images["astronaut"].save(root / "day1" / "astronaut.jpg", quality=90, exif=_exif(TAKEN, GPS, 1))
    images["coffee"].save(root / "day1" / "coffee.png")
    images["chelsea"].save(root / "chelsea.webp", quality=80)
    images["rocket"].save(root / "rocket.tif")
    images["coffee"].resize((300, 200)).save(root / "coffee-small.heic", format="HEIF", quality=60)
    return root


@pytest.fixture
def photo_dir(tmp_path: Path, _photo_template: Path) -> Path:
    """A fresh copy of five good photos: JPEG (with EXIF time and GPS), PNG, WebP, TIFF and HEIC."""
    dest = tmp_path / "photos"
    shutil.copytree(_photo_template, dest)
    return dest


def folder_state(root: Path) -> dict[str, tuple]:
    """Everything under `root` (symlinks not followed): kind, size, mtime and a hash of each file's bytes."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                state[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                state[str(p)] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                state[str(p)] = ("other", st.st_mode, st.st_mtime_ns)
    return state


@pytest.fixture
def make_exif() -> Callable[..., Image.Exif]:
    """``make_exif(taken, gps, orientation, datetime_)``: an EXIF block to pass to ``Image.save(exif=...)``."""
    return _exif


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, tuple]]:
    return folder_state
