"""Ingest: walk a photo folder, hash every file, decode what the cache does not have yet.

Every regular file under the folder ends up either as a :class:`Photo` or as an :class:`Excluded` with the
reason; nothing is dropped silently, and nothing is ever written to the folder.

Walk
    Depth-first, entries sorted by name, so the order is deterministic. With ``follow_symlinks`` (the
    default) symlinked files and folders are followed; each folder is scanned once, identified by
    ``(st_dev, st_ino)``, so a symlink loop ends and a folder reachable under two paths is listed under the
    first path in walk order only. Files reachable under two paths through *file* symlinks (or hard links)
    are listed under each path: they share a content hash, and duplicate culling treats them as exact
    duplicates. ``Photo.path`` is the path as walked (absolute, symlinks not resolved).

Per file
    SHA-256 of the bytes (streamed; skipped when the cache's stat memo has the same path, size and mtime).
    If the cache has the photo's meta and working copy (made at the same ``thumb_size``), nothing is decoded.
    Otherwise the header is read, the pixel count checked against ``max_pixels`` before any pixel is
    decoded, JPEGs are decoded DCT-scaled (``draft``) to the smallest size that still gives ``thumb_size``,
    and the result is turned upright (EXIF orientation), converted to RGB (alpha on white) and reduced, and
    stored as a JPEG working copy. Decoding runs in ``cfg.workers`` threads (Pillow releases the GIL while
    decoding); the cache is written from the calling thread only, ``batch_size`` photos per transaction.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from photopoet.config import IngestConfig
from photopoet.core.cache import Cache
from photopoet.core.files import file_sha256
from photopoet.errors import RejectedFile
from photopoet.records import Excluded, Photo

try:  # HEIC/HEIF (phones); the package is a dependency, but a broken install should not stop JPEG users
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover
    pass

# bump when the working copy is made differently: cached copies of older recipes are remade
RECIPE = 2  # 2: pixels only (1 kept a JPEG comment)
BATCH_SIZE = 32
JPEG_QUALITY = 90

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_ORIENTATION, _DATETIME, _DATETIME_ORIGINAL = 0x0112, 0x0132, 0x9003
_DATE_RE = re.compile(r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})[ T]+(\d{1,2}):(\d{1,2}):(\d{1,2})")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FileWarning:
    """A warning raised while a file was read (e.g. Pillow's "Tag data larger than file"), with its file."""

    path: str
    message: str


@dataclass(frozen=True)
class IngestResult:
    photos: list[Photo]  # walk order
    excluded: list[Excluded]  # walk order
    decoded: int  # photos whose content was decoded this run
    reused: int  # photos served from the cache without decoding (decoded + reused == len(photos))
    warnings: list[FileWarning] = field(default_factory=list)  # walk order (kept in the cache with the photo)


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    mtime_ns: int


# -- walk ---------------------------------------------------------------------------------------------------


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def _list_dir(path: str, excluded: list[Excluded]) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        excluded.append(Excluded(path, f"cannot read folder: {e.strerror or e}"))
        return []


def _is_text(name: str) -> bool:
    """False for a file name whose bytes are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# What Pillow (and pillow-heif) may recognise by content in a file whose extension is not in
# ``ingest.extensions``: every registered opener except those with no signature to check (TGA, SPIDER, IM,
# PCD, IPTC ...: random bytes can pass for them) and the ones that only name data they cannot decode.
_NOT_SNIFFED = {"BUFR", "EPS", "GRIB", "HDF5", "IM", "IMT", "IPTC", "MPEG", "PCD", "SPIDER", "TGA", "WMF"}


def _sniff_formats() -> list[str]:
    Image.init()
    return [f for f, (_, accept) in Image.OPEN.items() if accept is not None and f not in _NOT_SNIFFED]


def looks_like_image(path: str | Path) -> bool:
    """True when Pillow recognises the file's content as an image it reads (header only, no pixel decoded).

    Used for files whose extension is not in ``ingest.extensions``: a photo is a photo whatever it is called.
    A file that starts like an image but is damaged counts as one, so the decoder gives it a precise reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=_sniff_formats()):
                return True
    except UnidentifiedImageError:
        return False
    except OSError as e:
        return e.errno is not None  # unreadable: let hashing report why
    except Exception:  # recognised, then a parse error: the decoder will say what is wrong with it
        return True


def _walk(root: Path | str, cfg: IngestConfig) -> tuple[list[_File], list[Excluded]]:
    top = os.path.abspath(root)
    if not _is_text(top):
        raise ValueError(f"{_printable(top)}: the folder's path is not valid UTF-8; rename it")
    st = os.stat(top)  # the root itself is always followed
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{top}: not a folder")
    exts = set(cfg.extensions)
    files: list[_File] = []
    excluded: list[Excluded] = []
    visited = {(st.st_dev, st.st_ino)}
    stack: list[Iterator[os.DirEntry[str]]] = [iter(_list_dir(top, excluded))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path = entry.path
        if not _is_text(entry.name):  # it could not be stored, shown or written to JSON as it is
            excluded.append(Excluded(_printable(path), "name is not valid UTF-8 (rename it to include it)"))
            continue
        try:
            is_link = entry.is_symlink()
        except OSError:
            is_link = False
        if is_link and not cfg.follow_symlinks:
            excluded.append(Excluded(path, "symlink not followed (ingest.follow_symlinks is off)"))
            continue
        try:
            est = entry.stat(follow_symlinks=True)
        except OSError as e:
            reason = "broken symlink" if is_link else f"cannot read: {e.strerror or e}"
            excluded.append(Excluded(path, reason))
            continue
        if stat.S_ISDIR(est.st_mode):
            key = (est.st_dev, est.st_ino)
            if key not in visited:  # a symlink loop, or a second path to a folder already scanned
                visited.add(key)
                stack.append(iter(_list_dir(path, excluded)))
        elif stat.S_ISREG(est.st_mode):
            ext = os.path.splitext(entry.name)[1].lower()
            if ext in exts or (est.st_size > 0 and looks_like_image(path)):
                files.append(_File(path, est.st_size, est.st_mtime_ns))
            else:
                excluded.append(
                    Excluded(path, f"not an image (extension {ext})" if ext else "not an image (no extension)")
                )
        else:
            excluded.append(Excluded(path, f"not a regular file ({_file_kind(est.st_mode)})"))
    return files, excluded


def iter_files(root: Path | str, cfg: IngestConfig) -> tuple[list[Path], list[Excluded]]:
    """The candidate image files under `root` in walk order, and what the walk alone already excludes
    (other extensions, broken symlinks, special files, unreadable folders)."""
    files, excluded = _walk(root, cfg)
    return [Path(f.path) for f in files], excluded


def _walk_key(path: str) -> tuple[str, ...]:
    return tuple(path.split(os.sep))


# -- EXIF ---------------------------------------------------------------------------------------------------


def parse_exif_datetime(value: Any) -> str | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` (and common variants) as ISO 8601; None for blank or impossible values."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _DATE_RE.match(value.strip("\x00 "))
    if not m:
        return None
    try:
        return datetime(*(int(g) for g in m.groups())).isoformat(timespec="seconds")
    except ValueError:
        return None


def _degrees(value: Any) -> float | None:
    try:
        parts = [float(x) for x in value] if isinstance(value, tuple | list) else [float(value)]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not parts or len(parts) > 3 or not all(math.isfinite(p) for p in parts):
        return None
    return sum(p / 60**i for i, p in enumerate(parts))


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").upper()[:1] if value is not None else ""


def parse_gps(gps: Any) -> tuple[float, float] | None:
    """``(lat, lon)`` in degrees from an EXIF GPS IFD (tags 1-4), or None when missing or out of range."""
    if not gps:
        return None
    lat, lon = _degrees(gps.get(2)), _degrees(gps.get(4))
    if lat is None or lon is None:
        return None
    if _ref(gps.get(1)) == "S":
        lat = -lat
    if _ref(gps.get(3)) == "W":
        lon = -lon
    if abs(lat) > 90 or abs(lon) > 180:
        return None
    return (round(lat, 7), round(lon, 7))


def _exif_fields(im: Image.Image) -> tuple[int, str | None, tuple[float, float] | None]:
    """(orientation tag to apply, capture time, gps). Broken EXIF gives the defaults, never an error."""
    try:
        exif = im.getexif()
    except Exception:
        return 1, None, None
    orientation = exif.get(_ORIENTATION, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    try:
        taken = parse_exif_datetime(exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL))
    except Exception:
        taken = None
    if taken is None:
        taken = parse_exif_datetime(exif.get(_DATETIME))
    try:
        gps = parse_gps(exif.get_ifd(_GPS_IFD))
    except Exception:
        gps = None
    return orientation, taken, gps


# -- decoding -----------------------------------------------------------------------------------------------

_guard_lock = threading.Lock()
_guard_users = 0
_saved_max_pixels: int | None = None


@contextmanager
def _own_pixel_guard() -> Iterator[None]:
    """Use ingest's own decompression-bomb check instead of Pillow's global one while ingest runs.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (about 89 MP) and refuses twice that, whatever
    ``ingest.max_pixels`` says; ingest instead compares ``width * height`` with ``max_pixels`` right after
    ``Image.open`` (which reads the header only), before any pixel is decoded. The global is restored when
    the last running ingest finishes.
    """
    global _guard_users, _saved_max_pixels
    with _guard_lock:
        if _guard_users == 0:
            _saved_max_pixels = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _guard_users += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_users -= 1
            if _guard_users == 0:
                Image.MAX_IMAGE_PIXELS = _saved_max_pixels


_reading = threading.local()  # .path: the file this thread is reading, for warnings raised meanwhile


@contextmanager
def _warnings_with_file_names(found: dict[str, list[str]]) -> Iterator[None]:
    """While ingest runs, a warning raised in a thread that is reading a file (Pillow's EXIF and decoder
    warnings: UserWarning, RuntimeWarning) is kept in `found` under the file's path instead of being printed
    without one; every occurrence is kept (not only the first per source line). Other warnings pass through."""
    lock = threading.Lock()
    with warnings.catch_warnings():
        warnings.filterwarnings("always", category=UserWarning)
        warnings.filterwarnings("always", category=RuntimeWarning)
        show = warnings.showwarning

        def keep(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            path = getattr(_reading, "path", None)
            if path is None:
                return show(message, category, filename, lineno, file, line)
            text = " ".join(str(message).split())
            with lock:
                if text not in found.setdefault(path, []):
                    found[path].append(text)

        warnings.showwarning = keep
        yield


@contextmanager
def _reading_file(path: str) -> Iterator[None]:
    _reading.path = path
    try:
        yield
    finally:
        _reading.path = None


def _draft_request(width: int, height: int, target: int) -> tuple[int, int]:
    """The size to ask libjpeg's DCT scaling for: the image's aspect, longest side `target`. Pillow picks the
    largest 1/2, 1/4, 1/8 scale whose result is at least this in both sides, so the decoded image's longest
    side stays >= `target` (orientation only swaps the sides)."""
    s = target / max(width, height)
    return max(1, math.ceil(width * s)), max(1, math.ceil(height * s))


def _to_8bit(im: Image.Image) -> Image.Image:
    """Grayscale 16-bit / 32-bit / float images scaled to 8-bit "L" (Pillow's own convert clips them)."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        hi = float(finite.max()) if finite.size else 1.0
        a = np.nan_to_num(a) * (255.0 if hi <= 1.0 else 255.0 / hi)
    else:
        a = a.astype(np.float64)
        if im.mode != "I" or a.max(initial=0) > 255:
            a = a / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _resizable(im: Image.Image) -> Image.Image:
    """The image in L, LA, RGB or RGBA: modes that resize with proper filtering (and alpha weighting)."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return im
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return im.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode == "La":
        return im.convert("LA")
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I") or mode == "F":
        return _to_8bit(im)
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _flatten(im: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white."""
    if im.mode in ("RGBA", "LA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def decode_photo(path: str | Path, thumb_size: int, max_pixels: int) -> tuple[dict[str, Any], bytes]:
    """Read one image file: its meta (size after orientation, format, EXIF) and the JPEG working copy.

    Raises :class:`RejectedFile` with the user-facing reason for anything that cannot be used.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise RejectedFile(f"too large: {w} x {h} px exceeds max_pixels {max_pixels}")
            fmt = im.format or "unknown"  # as Pillow names it: JPEG, MPO (multi-picture JPEG), PPM, GIF ...
            orientation, taken_at, gps = _exif_fields(im)
            # pillow-heif turns HEIF images upright itself and resets the tag; it keeps the original value
            recorded = im.info.get("original_orientation") or orientation
            if not isinstance(recorded, int) or not 1 <= recorded <= 8:
                recorded = orientation
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", _draft_request(w, h, thumb_size))
            im.load()
            # upright first (cheap at the draft size; skipped when there is nothing to do, as it copies)
            work = ImageOps.exif_transpose(im) if orientation != 1 else im
            work = _resizable(work)
            work.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
            work = _flatten(work)
            clean = Image.new("RGB", work.size)  # pixels only: a comment, EXIF or XMP never reaches the copy
            clean.paste(work)
            buf = io.BytesIO()
            clean.save(buf, "JPEG", quality=JPEG_QUALITY)
    except RejectedFile:
        raise
    except UnidentifiedImageError:
        raise RejectedFile("not an image: cannot identify image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise RejectedFile(f"too large: {e}") from None
    except MemoryError:
        raise RejectedFile("too large: out of memory while decoding") from None
    except ValueError as e:
        if "decompressed data too large" in str(e).lower() or "text chunks" in str(e).lower():
            raise RejectedFile(
                "too large: a compressed text chunk (metadata) expands past Pillow's safety limit "
                "(a decompression bomb?)"
            ) from None
        raise RejectedFile(f"corrupt or truncated image: {str(e) or type(e).__name__}") from None
    except OSError as e:
        if e.errno is not None:  # the file system's error, not the decoder's
            raise RejectedFile(f"cannot read file: {e.strerror or e}") from None
        raise RejectedFile(f"corrupt or truncated image: {e}") from None
    except Exception as e:  # Pillow raises SyntaxError, ValueError, EOFError, struct.error ... for bad data
        raise RejectedFile(f"corrupt or truncated image: {str(e) or type(e).__name__}") from None
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    meta = {
        "width": w,
        "height": h,
        "format": fmt,
        "taken_at": taken_at,
        "gps": list(gps) if gps else None,
        "orientation": recorded,
        "thumb_size": thumb_size,
        "recipe": RECIPE,
    }
    return meta, buf.getvalue()


def load_working_copy(cache: Cache, sha: str) -> Image.Image:
    """The cached working copy of a photo: RGB, upright, longest side <= the ingest's ``thumb_size``."""
    data = cache.get_thumb(sha)
    if data is None:
        raise KeyError(f"no working copy of {sha} in the cache {cache.path}; ingest the photo first")
    return working_copy_from_bytes(data)


def working_copy_from_bytes(data: bytes) -> Image.Image:
    """Decode a working copy's stored bytes (safe to call from any thread)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im if im.mode == "RGB" else im.convert("RGB")


# -- the stage ----------------------------------------------------------------------------------------------


def _ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[tuple[T, Future[R]]]:
    """Like ``pool.map`` but yields ``(item, future)`` in input order with at most `window` in flight."""
    it = iter(items)
    pending: deque[tuple[T, Future[R]]] = deque()
    for x in it:
        pending.append((x, pool.submit(fn, x)))
        if len(pending) >= window:
            break
    while pending:
        x, fut = pending.popleft()
        for nxt in it:  # refill one
            pending.append((nxt, pool.submit(fn, nxt)))
            break
        yield x, fut


def _usable(meta: dict[str, Any] | None, cfg: IngestConfig) -> bool:
    return meta is not None and meta.get("thumb_size") == cfg.thumb_size and meta.get("recipe") == RECIPE


def _photo(f: _File, sha: str, meta: dict[str, Any]) -> Photo:
    gps = meta.get("gps")
    return Photo(
        path=f.path,
        sha256=sha,
        width=int(meta["width"]),
        height=int(meta["height"]),
        format=str(meta["format"]),
        size_bytes=f.size,
        taken_at=meta.get("taken_at"),
        gps=(float(gps[0]), float(gps[1])) if gps else None,
        orientation=int(meta.get("orientation", 1)),
    )


def _hash_unknown(
    files: list[_File], cache: Cache, pool: ThreadPoolExecutor, window: int, batch_size: int, bar: tqdm
) -> tuple[dict[str, str], list[Excluded]]:
    """``path -> sha`` for the non-empty files, from the stat memo or hashed (and then remembered)."""
    sha_of: dict[str, str] = {}
    excluded: list[Excluded] = []
    to_hash: list[_File] = []
    for f in files:
        known = cache.lookup_sha(f.path, f.size, f.mtime_ns)
        if known is None:
            to_hash.append(f)
        else:
            sha_of[f.path] = known
    memo: list[tuple[str, int, int, str]] = []
    for f, fut in _ordered_map(pool, lambda f: file_sha256(f.path), to_hash, window):
        try:
            sha_of[f.path] = fut.result()
        except OSError as e:
            excluded.append(Excluded(f.path, f"cannot read file: {e.strerror or e}"))
            bar.update()
            continue
        memo.append((f.path, f.size, f.mtime_ns, sha_of[f.path]))
        if len(memo) >= batch_size:
            cache.remember_shas(memo)
            memo.clear()
    cache.remember_shas(memo)
    return sha_of, excluded


def ingest(
    root: Path | str,
    cfg: IngestConfig,
    cache: Cache,
    *,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> IngestResult:
    """Every file under `root` as a :class:`Photo` or an :class:`Excluded` with the reason.

    ``decoded`` counts the photos whose content was decoded this run, ``reused`` those served from the
    cache; a kill at any point loses at most the `batch_size` photos not yet written.
    """
    files, excluded = _walk(root, cfg)
    empty = [f for f in files if f.size == 0]
    excluded += [Excluded(f.path, "empty file (0 bytes)") for f in empty]
    window = max(4, cfg.workers * 4)
    decoded_shas: set[str] = set()
    rejected: dict[str, str] = {}
    pending: dict[str, tuple[dict[str, Any], bytes]] = {}

    def flush() -> None:
        cache.put_photos(pending)
        pending.clear()

    found: dict[str, list[str]] = {}  # path -> warnings raised while reading it (worker threads write)
    with (
        tqdm(total=len(files), unit="photo", desc="ingest", disable=not progress) as bar,
        _warnings_with_file_names(found),
        _own_pixel_guard(),
        ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="ingest") as pool,
    ):
        bar.update(len(empty))
        # 1. content hashes
        sha_of, unreadable = _hash_unknown([f for f in files if f.size > 0], cache, pool, window, batch_size, bar)
        excluded += unreadable
        # 2. what the cache already has (made the same way)
        users: dict[str, list[str]] = {}  # sha -> paths holding that content, walk order
        for f in files:
            if f.path in sha_of:
                users.setdefault(sha_of[f.path], []).append(f.path)
        metas = {s: m for s, m in cache.get_metas(list(users)).items() if _usable(m, cfg)}
        bar.update(sum(len(users[s]) for s in metas))
        # 3. decode the rest in the pool; write from this thread, one transaction per batch
        todo = [s for s in users if s not in metas]

        def work(sha: str) -> tuple[dict[str, Any], bytes]:
            with _reading_file(users[sha][0]):
                return decode_photo(users[sha][0], cfg.thumb_size, cfg.max_pixels)

        try:
            for sha, fut in _ordered_map(pool, work, todo, window):
                try:
                    meta, thumb = fut.result()
                except RejectedFile as e:
                    rejected[sha] = str(e)
                else:
                    if found.get(users[sha][0]):  # kept with the photo: a rerun from the cache says it again
                        meta = {**meta, "warnings": found[users[sha][0]]}
                    metas[sha] = meta
                    decoded_shas.add(sha)
                    pending[sha] = (meta, thumb)
                    if len(pending) >= batch_size:
                        flush()
                bar.update(len(users[sha]))
            flush()
        except BaseException:
            if pending:  # keep what was decoded (e.g. on Ctrl-C); a second failure must not mask the first
                with suppress(Exception):
                    flush()
            raise

    photos: list[Photo] = []
    for f in files:
        sha = sha_of.get(f.path)
        if sha is None:
            continue
        if sha in rejected:
            excluded.append(Excluded(f.path, rejected[sha]))
        else:
            photos.append(_photo(f, sha, metas[sha]))
    decoded = sum(1 for p in photos if p.sha256 in decoded_shas)
    excluded.sort(key=lambda e: _walk_key(e.path))
    noted: list[FileWarning] = []
    for f in files:
        sha = sha_of.get(f.path)
        if sha is None:
            continue
        said = metas[sha].get("warnings") if sha in metas else found.get(f.path)
        noted += [FileWarning(f.path, str(m)) for m in said or [] if isinstance(said, list)]
    return IngestResult(photos=photos, excluded=excluded, decoded=decoded, reused=len(photos) - decoded, warnings=noted)
