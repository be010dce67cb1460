"""What a photo looks like, beside what it shows: colour histogram, sharpness, exposure, faces.

Computed from the cached working copy (no second decode of the original) and cached by content hash.
The colour histogram helps grouping (same light, same place); sharpness and exposure pick a good cover;
faces (how many, and the largest one's share of the frame) feed the "portrait" and "group photo" labels and
the scene (stages.scene), so faces are looked for once per photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from photopoet.core.cache import Cache
from photopoet.records import Photo
from photopoet.stages.ingest import working_copy_from_bytes

APPEARANCE_KEY = "appearance:v2"  # v2: + the largest face's share of the frame
H_BINS, S_BINS, V_BINS = 8, 4, 4
N_HIST = H_BINS * S_BINS * V_BINS


@dataclass(frozen=True)
class Appearance:
    colors: np.ndarray  # [N, 128] square-rooted HSV histograms (Hellinger), rows sum of squares = 1
    quality: np.ndarray  # [N] in [0, 1]: sharpness x well-exposed share
    faces: np.ndarray  # [N] frontal faces found
    face_share: np.ndarray  # [N] area of the largest face / area of the frame (0 without faces)


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


def analyse(img: Image.Image, faces: bool = True) -> np.ndarray:
    """One photo -> [128 histogram, quality, faces, largest face share]."""
    from photopoet.stages.faces import find_faces, largest_face_share

    gray_img = img.convert("L")
    small = gray_img.copy()
    small.thumbnail((256, 256))
    q = quality_score(np.asarray(small))
    gray = np.asarray(gray_img)
    boxes = find_faces(gray) if faces else []
    share = largest_face_share(boxes, gray.shape)
    return np.concatenate([color_histogram(img), [q, len(boxes), share]]).astype(np.float32)


def appearance(photos: Sequence[Photo], cache: Cache, *, faces: bool = True, progress: bool = True) -> Appearance:
    key = APPEARANCE_KEY + (":faces" if faces else "")
    shas = [p.sha256 for p in photos]
    have = cache.get_vectors(key, shas)
    todo = sorted({s for s in shas if s not in have})
    for n in tqdm(range(0, len(todo), 32), desc="appearance", unit="batch", disable=not progress or not todo):
        got = {}
        for s in todo[n : n + 32]:
            blob = cache.get_thumb(s)
            if blob is None:
                raise KeyError(f"no working copy of {s} in the cache {cache.path}; ingest the photo first")
            got[s] = analyse(working_copy_from_bytes(blob), faces=faces)
        cache.put_vectors(key, got)
        have.update(got)
    if not photos:
        z = np.zeros(0, np.float32)
        return Appearance(np.zeros((0, N_HIST), np.float32), z, np.zeros(0, np.int64), z)
    m = np.stack([np.asarray(have[s], dtype=np.float32) for s in shas])
    return Appearance(
        colors=m[:, :N_HIST],
        quality=m[:, N_HIST],
        faces=m[:, N_HIST + 1].astype(np.int64),
        face_share=m[:, N_HIST + 2],
    )
