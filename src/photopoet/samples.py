"""A sample photo folder built from the photos that ship inside scikit-image and scikit-learn.

Three shoots on two days (EXIF capture times), a re-export of one photo, a photo stored sideways with an
EXIF orientation tag, a truncated JPEG and a text file: enough for every part of a run to show.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photopoet.core.files import atomic_write_bytes

# (file name, source, capture time)
_SHOOTS: list[tuple[str, str, datetime]] = [
    ("cafe/coffee.jpg", "skimage:coffee", datetime(2024, 3, 2, 10, 0, 0)),
    ("cafe/cat.jpg", "skimage:chelsea", datetime(2024, 3, 2, 10, 4, 10)),
    ("cafe/flower.jpg", "sklearn:flower.jpg", datetime(2024, 3, 2, 10, 9, 30)),
    ("space-night/astronaut.jpg", "skimage:astronaut", datetime(2024, 3, 2, 19, 0, 0)),
    ("space-night/rocket.jpg", "skimage:rocket", datetime(2024, 3, 2, 19, 6, 0)),
    ("space-night/deep-field.jpg", "skimage:hubble_deep_field", datetime(2024, 3, 2, 19, 12, 0)),
    ("trip/temple.jpg", "sklearn:china.jpg", datetime(2024, 3, 9, 8, 30, 0)),
    ("trip/motorcycle-1.jpg", "skimage-file:motorcycle_left.png", datetime(2024, 3, 9, 9, 15, 0)),
    ("trip/motorcycle-2.jpg", "skimage-file:motorcycle_right.png", datetime(2024, 3, 9, 9, 15, 1)),
    ("trip/horse-sideways.jpg", "skimage:horse", datetime(2024, 3, 9, 11, 0, 0)),
]


def _source(name: str) -> Image.Image:
    kind, key = name.split(":", 1)
    if kind == "skimage-file":
        import skimage.data

        with Image.open(Path(skimage.data.__file__).parent / key) as im:
            return im.convert("RGB")
    if kind == "skimage":
        from skimage import data

        arr = np.asarray(getattr(data, key)())
    else:
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(key)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    img = Image.fromarray(arr)
    return img.convert("RGB")


def _jpeg(img: Image.Image, when: datetime, orientation: int = 1, quality: int = 92) -> bytes:
    exif = Image.Exif()
    exif[0x0110] = "photopoet sample"  # camera model
    exif[0x0112] = orientation
    exif[0x0132] = when.strftime("%Y:%m:%d %H:%M:%S")
    exif.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def make_samples(dest: Path | str) -> list[Path]:
    """Write the sample folder; existing files of the same names are replaced, nothing else is touched."""
    dest = Path(dest)
    written: list[Path] = []
    for rel, src, when in _SHOOTS:
        img = _source(src)
        orientation = 1
        if "sideways" in rel:
            # stored rotated, with the EXIF tag that tells a viewer to turn it upright (90 degrees clockwise)
            img = img.transpose(Image.Transpose.ROTATE_90)
            orientation = 6
        target = dest / rel
        atomic_write_bytes(target, _jpeg(img, when, orientation))
        written.append(target)
    # a smaller, recompressed re-export of the coffee photo, as phones and editors make them
    coffee = _source("skimage:coffee")
    small = coffee.resize((coffee.width * 2 // 3, coffee.height * 2 // 3), Image.Resampling.LANCZOS)
    atomic_write_bytes(dest / "cafe/coffee-export.jpg", _jpeg(small, datetime(2024, 3, 2, 10, 0, 0), quality=70))
    written.append(dest / "cafe/coffee-export.jpg")
    # a transfer that broke off half way, and a file that is not a photo
    whole = _jpeg(_source("skimage:astronaut"), datetime(2024, 3, 2, 19, 20, 0))
    atomic_write_bytes(dest / "space-night/broken-transfer.jpg", whole[: len(whole) // 2])
    written.append(dest / "space-night/broken-transfer.jpg")
    atomic_write_bytes(dest / "notes.txt", b"shot list: cafe, launch night, temple trip\n")
    written.append(dest / "notes.txt")
    return written
