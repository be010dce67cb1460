"""What keeps the review app from serving or accepting more than it should.

- :func:`safe_path`: a file under a root, given a relative path from a URL; ``..``, absolute paths, encoded
  slashes (decoded before they get here) and symlinks that lead out of the root are refused.
- :func:`check_upload`: an uploaded photo is kept only when Pillow decodes it as one of the formats photopoet
  reads (the file name's extension is not trusted) and it is under the size limit.
- :func:`is_loopback`: whether a --host keeps the app on this machine.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from pathlib import Path, PurePosixPath

from PIL import Image

# what Pillow calls the formats ingest reads, and the extension an upload of each is saved under
UPLOAD_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic", "MPO": ".jpg"}


class UnsafePath(ValueError):
    """A request for a file outside the allowed folders (or no such file)."""


def safe_path(root: Path, rel: str) -> Path:
    """The existing regular file `rel` under `root`, resolved; raises UnsafePath otherwise.

    `rel` comes from a URL (already percent-decoded). Refused: empty, absolute (``/etc/passwd``, ``C:\\``),
    any ``..`` or ``.`` component, backslashes, NUL, and anything whose real path (symlinks followed) is not
    under the real root."""
    if not rel or "\x00" in rel or "\\" in rel:
        raise UnsafePath("not a file name this app serves")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        raise UnsafePath("absolute paths are not served")
    if any(part in ("..", ".") for part in rel.split("/")):
        raise UnsafePath("'..' and '.' are not allowed in file paths")
    real_root = root.resolve()
    try:
        target = (real_root / pure).resolve(strict=True)
    except (OSError, RuntimeError):
        raise UnsafePath("no such file") from None
    try:
        target.relative_to(real_root)
    except ValueError:
        raise UnsafePath("the file lies outside the folders this app serves (a link out of the folder?)") from None
    if not target.is_file():
        raise UnsafePath("not a file")
    return target


def within(path: Path | str, roots: list[Path]) -> bool:
    """True when `path`'s real location (symlinks followed) lies under one of `roots`."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    for r in roots:
        try:
            real.relative_to(r.resolve())
            return True
        except ValueError:
            continue
    return False


def clean_filename(name: str) -> str:
    """A safe base name for an uploaded file: no folders, no leading dots, letters/digits/._- only."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = unicodedata.normalize("NFKC", base)
    stem = re.sub(r"[^\w.-]+", "_", Path(base).stem, flags=re.UNICODE).strip("._") or "photo"
    return stem[:80]


def check_upload(data: bytes, max_bytes: int) -> str:
    """The format of an uploaded photo ('JPEG', ...); raises ValueError saying why it is refused."""
    if len(data) == 0:
        raise ValueError("empty file")
    if len(data) > max_bytes:
        raise ValueError(f"larger than the upload limit of {max_bytes / 1e6:g} MB")
    import io

    from pillow_heif import register_heif_opener

    register_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
            im.verify()
        with Image.open(io.BytesIO(data)) as im:  # verify() leaves the image unusable; decode for real
            im.draft("RGB", (256, 256))
            im.load()
    except Image.DecompressionBombError:
        raise ValueError("too many pixels (decompression-bomb guard)") from None
    except Exception:
        raise ValueError("not a photo photopoet can read (the contents were checked, not the name)") from None
    if fmt not in UPLOAD_FORMATS:
        raise ValueError(f"{fmt or 'unknown'} images are not accepted (JPEG, PNG, WebP, TIFF or HEIC)")
    return fmt


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
