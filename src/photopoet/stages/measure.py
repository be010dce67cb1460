"""Per-photo measurements, taken in one pass over each photo's cached working copy.

One pass decodes the working copy once (no second decode of the original) and measures everything the later
stages read about how a photo looks, beside what it shows:

* for grouping and labels (the *look*, :class:`Appearance`): a colour histogram (same light, same place), a
  cover quality (sharpness x well-exposed share, on a 256 px copy), and the loose faces (how many, the largest
  one's share of the frame) that back the "portrait" and "group photo" labels and the scene;
* for culling (the *signals*): a perceptual hash, sharpness, detail, colour, exposure and the strict faces with
  how many show no open eye (see :func:`quality_signals`), at :data:`QUALITY_SIZE` px.

Faces are detected once per photo: the cascade's candidates are grouped twice (:mod:`photopoet.stages.faces`).
Sharpness is measured twice in the same pass, on purpose: the cover quality takes the Laplacian of a 256 px
copy and squashes it, the cull signals take OpenCV's Laplacian at 512 px; variances at two scales are not
functions of each other (``benchmarks/measure_parity.py`` measures it), and either output would change.

Both results are cached by content hash under the kinds of :data:`KINDS`, the one table of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from photopoet.core.cache import Cache
from photopoet.core.images import IMPORT_LOCK, opencv
from photopoet.records import Photo
from photopoet.stages import faces as face_mod

QUALITY_SIZE = 512  # longest side at which the cull's sharpness, exposure and faces are measured
COVER_SIZE = 256  # longest side of the copy the cover quality's sharpness is measured on
H_BINS, S_BINS, V_BINS = 8, 4, 4
N_HIST = H_BINS * S_BINS * V_BINS
LOOK_LEN = N_HIST + 3  # [histogram, quality, faces, largest face share]

#: The cache kinds of the per-photo measurements, the one place they are named. ``look``: float32 vectors
#: ``[N_HIST histogram, quality, faces, largest face share]`` (v3: faces always counted, ``understand.faces``
#: only hides them; one detection shared with the signals); ``signals``: JSON, see :func:`quality_signals`
#: (v4: faces from the shared detection), suffixed with ``cull.min_face_px``.
KINDS: dict[str, str] = {"look": "appearance:v3", "signals": "cull-signals:v4"}


def cache_kinds(min_face_px: int) -> dict[str, str]:
    """The cache kinds a pass with strict faces at least `min_face_px` wide reads and writes, by name."""
    return {"look": KINDS["look"], "signals": f"{KINDS['signals']}:face{min_face_px}"}


@dataclass(frozen=True)
class Measurement:
    """One photo's measurements: the look vector (float32 [:data:`LOOK_LEN`]) and the cull signals."""

    look: np.ndarray
    signals: dict[str, Any]


@dataclass(frozen=True)
class Appearance:
    colors: np.ndarray  # [N, 128] square-rooted HSV histograms (Hellinger), rows sum of squares = 1
    quality: np.ndarray  # [N] in [0, 1]: sharpness x well-exposed share
    faces: np.ndarray  # [N] frontal faces found
    face_share: np.ndarray  # [N] area of the largest face / area of the frame (0 without faces)


# -- one photo ----------------------------------------------------------------------------------------------


def color_histogram(img: Image.Image) -> np.ndarray:
    small = img.convert("RGB")
    small.thumbnail((128, 128))
    hsv = np.asarray(small.convert("HSV"), dtype=np.int64).reshape(-1, 3)
    idx = (hsv[:, 0] * H_BINS // 256) * (S_BINS * V_BINS) + (hsv[:, 1] * S_BINS // 256) * V_BINS
    idx += hsv[:, 2] * V_BINS // 256
    h = np.bincount(idx, minlength=N_HIST).astype(np.float32)
    return np.sqrt(h / max(h.sum(), 1.0))


def quality_score(gray: np.ndarray) -> float:
    """Sharpness (variance of the Laplacian on a 256 px copy, squashed to [0, 1]) x share of unclipped pixels."""
    g = gray.astype(np.float32)
    if min(g.shape) < 3:  # a sliver of a picture: no Laplacian to take (numpy would warn and give nan)
        return 0.0
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    sharp = 1.0 - float(np.exp(-float(lap.var()) / 200.0))
    clipped = float(((gray <= 4) | (gray >= 251)).mean())
    return round(sharp * (1.0 - clipped), 4)


def phash(img: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits."""
    with IMPORT_LOCK:
        import imagehash

    return str(imagehash.phash(img, hash_size=8))


def gray_at(img: Image.Image, size: int = QUALITY_SIZE) -> np.ndarray:
    """Luminance (uint8), longest side reduced to `size` (never enlarged: a small photo is judged as it is)."""
    g = img.convert("L")
    if max(g.size) > size:
        g = g.copy()
        g.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(g)


def quality_signals(img: Image.Image, g: np.ndarray, strict: list[face_mod.Box]) -> dict[str, Any]:
    """Sharpness, exposure and faces of one working copy, from its luminance `g` at :data:`QUALITY_SIZE` px and
    the strict faces found in it.

    * ``sharpness``: variance of the Laplacian of the luminance (0-255) at that size (the blur check);
    * ``detail``: the same divided by the luminance variance, so that a brighter or contrastier edit of a
      frame does not look sharper than the original (the best-shot comparison);
    * ``colour``: mean saturation (0 for black and white);
    * ``dark`` / ``bright``: share of pixels clipped to black (<= 8) / white (>= 247);
    * ``mean``, ``p01``, ``p99``: mean luminance and its 1st and 99th percentiles;
    * ``faces``, ``eyes_closed``: strict faces (big enough to judge eyes) and how many show no open eye
      (:func:`photopoet.stages.faces.closed_eyes`).
    """
    cv2 = opencv()
    lap = cv2.Laplacian(g, cv2.CV_64F, ksize=1)
    p01, p99 = np.percentile(g, [1, 99])
    var = float(g.var())
    lap_var = float(lap.var()) if lap.size else 0.0
    return {
        "sharpness": round(lap_var, 2),
        "detail": round(lap_var / var, 4) if var > 1e-6 else 0.0,
        "colour": round(float(np.asarray(img.convert("HSV"))[..., 1].mean()) / 255.0, 4),
        "dark": round(float((g <= 8).mean()), 4),
        "bright": round(float((g >= 247).mean()), 4),
        "mean": round(float(g.mean()), 2),
        "p01": float(p01),
        "p99": float(p99),
        "faces": len(strict),
        "eyes_closed": face_mod.closed_eyes(g, strict),
    }


def detect_faces(gray: np.ndarray, g: np.ndarray, min_face_px: int) -> tuple[list[face_mod.Box], list[face_mod.Box]]:
    """(loose faces in `gray`, strict faces at least `min_face_px` wide in `g`): one cascade run when the two
    luminance images are the same (a working copy of at most :data:`QUALITY_SIZE` px), else one each."""
    if g is not gray:
        eq = face_mod.equalized(g)
        strict = face_mod.group_faces(
            face_mod.face_candidates(eq, min_face_px), face_mod.STRICT_NEIGHBOURS, min_face_px
        )
        return face_mod.find_faces(gray), strict
    side = face_mod.loose_min_side(gray.shape)
    cands = face_mod.face_candidates(face_mod.equalized(gray), min(side, min_face_px))
    loose = face_mod.group_faces(cands, face_mod.LOOSE_NEIGHBOURS, side) if min(gray.shape) >= 24 else []
    return loose, face_mod.group_faces(cands, face_mod.STRICT_NEIGHBOURS, min_face_px)


def measure_photo(img: Image.Image, *, min_face_px: int = 80) -> Measurement:
    """Every measurement of one working copy, in one pass."""
    gray_img = img.convert("L")
    small = gray_img.copy()
    small.thumbnail((COVER_SIZE, COVER_SIZE))
    q = quality_score(np.asarray(small))
    gray = np.asarray(gray_img)
    g = gray if max(gray_img.size) <= QUALITY_SIZE else gray_at(img)
    loose, strict = detect_faces(gray, g, min_face_px)
    share = face_mod.largest_face_share(loose, gray.shape)
    look = np.concatenate([color_histogram(img), [q, len(loose), share]]).astype(np.float32)
    return Measurement(look=look, signals={"phash": phash(img), **quality_signals(img, g, strict)})


# -- the pass over many photos ------------------------------------------------------------------------------


def measure(
    shas: Iterable[str], cache: Cache, *, min_face_px: int, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """(look vectors, cull signals) by content hash for `shas`, from the cache or measured from the working
    copies (two threads) and cached under :func:`cache_kinds`."""
    from photopoet.stages.ingest import working_copy_from_bytes

    kinds = cache_kinds(min_face_px)
    shas = list(dict.fromkeys(shas))
    looks = cache.get_vectors(kinds["look"], shas)
    signals = cache.get_json(kinds["signals"], shas)
    todo = [s for s in shas if s not in looks or s not in signals]
    if not todo:
        return looks, signals

    def work(blob: bytes) -> Measurement:
        return measure_photo(working_copy_from_bytes(blob), min_face_px=min_face_px)

    with (
        tqdm(total=len(todo), desc="measure", unit="photo", disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="measure") as pool,
    ):
        for start in range(0, len(todo), 32):
            chunk = todo[start : start + 32]
            blobs = []
            for s in chunk:
                blob = cache.get_thumb(s)
                if blob is None:
                    raise KeyError(f"no working copy of {s} in the cache {cache.path}; ingest the photo first")
                blobs.append(blob)
            done = dict(zip(chunk, pool.map(work, blobs), strict=True))
            cache.put_vectors(kinds["look"], {s: m.look for s, m in done.items()})
            cache.put_json(kinds["signals"], {s: m.signals for s, m in done.items()})
            looks.update((s, m.look) for s, m in done.items())
            signals.update((s, m.signals) for s, m in done.items())
            bar.update(len(chunk))
    return looks, signals


def appearance(
    photos: Sequence[Photo], cache: Cache, *, faces: bool = True, min_face_px: int = 80, progress: bool = True
) -> Appearance:
    """The look of `photos`, rows following them; `faces` False reports no faces (``understand.faces``).
    `min_face_px` (``cull.min_face_px``) is the cull's, so that the one pass also caches the cull's signals."""
    shas = [p.sha256 for p in photos]
    looks, _ = measure(shas, cache, min_face_px=min_face_px, progress=progress)
    if not photos:
        z = np.zeros(0, np.float32)
        return Appearance(np.zeros((0, N_HIST), np.float32), z, np.zeros(0, np.int64), z)
    m = np.stack([np.asarray(looks[s], dtype=np.float32) for s in shas])
    n = len(shas)
    return Appearance(
        colors=m[:, :N_HIST],
        quality=m[:, N_HIST],
        faces=m[:, N_HIST + 1].astype(np.int64) if faces else np.zeros(n, np.int64),
        face_share=m[:, N_HIST + 2] if faces else np.zeros(n, np.float32),
    )
