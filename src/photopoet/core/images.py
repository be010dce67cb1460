"""Reading pictures: a photo opened upright, transparency flattened on white, OpenCV imported once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

#: Held while a native image library is first imported (a first import racing in two threads leaves OpenCV
#: half-initialised) and while imagehash is imported.
IMPORT_LOCK = threading.Lock()


def opencv() -> Any:
    """OpenCV (``cv2``, with its packaged cascades' folder), imported once under :data:`IMPORT_LOCK`."""
    with IMPORT_LOCK:
        import cv2
        import cv2.data  # noqa: F401  (the cascades' folder)

        return cv2


def open_upright(path: str | Path, *, draft: int | None = None) -> Image.Image:
    """The picture at `path`, decoded and turned upright by its EXIF orientation, detached from the file.

    ``draft``: a JPEG is decoded at the smallest power-of-two reduction still at least this many px on its
    sides (much faster for a thumbnail); other formats are decoded whole. Pillow's errors pass through
    (``FileNotFoundError``, ``UnidentifiedImageError``, ``OSError``, ``DecompressionBombError``); the caller
    words them. Pillow's own pixel limit applies unless the caller lifts it.
    """
    with Image.open(path) as im:
        if draft is not None and im.format == "JPEG":
            im.draft("RGB", (draft, draft))
        im.load()
        return ImageOps.exif_transpose(im)


def has_alpha(im: Image.Image) -> bool:
    """Whether `im` has transparency: an alpha band, or a palette with a transparent entry."""
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def on_white(im: Image.Image) -> Image.Image:
    """`im` in RGB, transparent parts composited on white (as a viewer shows them); an RGB image as it is."""
    if has_alpha(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")
