"""The checks every job makes on the folders it is given, before anything is read or written."""

from __future__ import annotations

from pathlib import Path

from photopoet.core.files import is_within
from photopoet.errors import RunError


def check_photo_folder(photos: Path) -> None:
    if not photos.exists():
        raise RunError(f"{photos}: no such folder")
    if not photos.is_dir():
        raise RunError(f"{photos}: not a folder (give the folder that holds the photos)")


def check_folders(photos: Path, out: Path) -> None:
    check_photo_folder(photos)
    if is_within(out, photos):
        raise RunError(
            f"{out}: the output folder lies inside the photo folder {photos}; photopoet never writes there. "
            "Choose an output folder outside it."
        )
    if is_within(photos, out / "posts"):
        raise RunError(
            f"{photos}: the photo folder lies in the output's post folders {out / 'posts'}, which photopoet "
            "rewrites and moves aside; it never moves an original. Choose another output folder."
        )
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder")
