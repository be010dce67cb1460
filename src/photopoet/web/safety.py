"""What keeps the review app from serving or accepting more than it should.

- :func:`safe_path`: a file under a root, given a relative path from a URL; ``..``, absolute paths, encoded
  slashes (decoded before they get here) and symlinks that lead out of the root are refused.
- :func:`check_upload`: an uploaded photo is kept only when Pillow decodes it as one of the formats photopoet
  reads (the file name's extension is not trusted) and it is under the size limit.
- :func:`read_upload`: an upload's form, its bytes counted as they stream in (chunked bodies too): the whole
  upload stops at the total limit, and a file past the per-file limit is dropped while it streams.
- :func:`is_loopback`: whether a --host keeps the app on this machine.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image
from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartException, MultiPartParser

from photopoet.errors import UnsafePath, UploadTooLarge

# what Pillow calls the formats ingest reads, and the extension an upload of each is saved under
UPLOAD_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic", "MPO": ".jpg"}


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


def mb(n: float) -> str:
    """A byte count in MB with one decimal, rounded up, so a size over a limit never reads as the limit or
    less: 3,460,000 -> 3.5; 3,010,000 -> 3.1."""
    return f"{math.ceil(n / 1e5) / 10:.1f}"


def too_big(size: int, limit_mb: float) -> str:
    """``3.5 MB; at most 3 MB``."""
    return f"{mb(size)} MB; at most {limit_mb:g} MB"


class _CountingParser(MultiPartParser):
    """starlette's multipart parser, counting each file's bytes as they arrive: past `max_file_bytes` the file's
    data is dropped (never written to a temporary file), while its size is still counted for the message."""

    def __init__(self, headers: Headers, stream: AsyncIterator[bytes], *, max_file_bytes: int, **kw: Any) -> None:
        super().__init__(headers, stream, **kw)
        self.max_file_bytes = max_file_bytes
        self.sizes: dict[int, int] = {}  # id(UploadFile) -> bytes received

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        f = self._current_part.file
        if f is None:
            return super().on_part_data(data, start, end)
        seen = self.sizes.get(id(f), 0) + (end - start)
        self.sizes[id(f)] = seen
        if seen <= self.max_file_bytes:
            super().on_part_data(data, start, end)


async def read_upload(
    headers: Headers, stream: AsyncIterator[bytes], *, max_total: int, max_file: int, max_files: int
) -> tuple[FormData, dict[int, int]]:
    """The multipart form of an upload and each file's size in bytes (by ``id`` of its UploadFile).

    Bytes are counted as they stream, whatever the Content-Length says (or when there is none: chunked):
    :class:`UploadTooLarge` as soon as the body passes `max_total`; a file past `max_file` keeps only its
    first `max_file` bytes (refuse it by its size). Raises ValueError for a body that is not a multipart form."""
    if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ValueError("not a file upload (multipart/form-data)")

    async def counted() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in stream:
            seen += len(chunk)
            if seen > max_total:
                raise UploadTooLarge(seen)
            yield chunk

    parser = _CountingParser(headers, counted(), max_file_bytes=max_file, max_files=max_files, max_fields=20)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ValueError(e.message) from None
    return form, parser.sizes


def check_upload(data: bytes, max_bytes: int) -> str:
    """The format of an uploaded photo ('JPEG', ...); raises ValueError saying why it is refused."""
    if len(data) == 0:
        raise ValueError("empty file")
    if len(data) > max_bytes:
        raise ValueError(too_big(len(data), max_bytes / 1e6))
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
