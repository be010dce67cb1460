"""Frontal faces and open eyes from OpenCV's packaged Haar cascades (``opencv-python-headless``, no download).

Viola-Jones finds upright, roughly frontal faces; profiles and small faces in crowds are missed, so a count is
a lower bound. Two readings of the same detection are used: a loose one (6 neighbours, faces down to 4 % of the
shorter side) for the "portrait" and "group photo" labels and the scene, and a strict one (10 neighbours, faces
at least ``cull.min_face_px`` wide) whose faces are big enough to judge their eyes.

The cascade is run once per picture (:func:`face_candidates`, no grouping) and its candidates are grouped once
per reading (:func:`group_faces`). This is what ``detectMultiScale`` does inside: with ``minNeighbors=k`` it
returns ``groupRectangles(candidates, k, eps=0.2)``, and ``minSize`` only skips the window scales whose window
is smaller, so the candidates at the smaller ``minSize`` filtered by size are the candidates at the larger one
(``tests/stages/test_measure.py`` checks the equality on real photos).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from photopoet.core.images import opencv

Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels
GROUP_EPS = 0.2  # OpenCV's detectMultiScale groups its candidates with this eps
SCALE_FACTOR = 1.1
LOOSE_NEIGHBOURS = 6  # the labels' and scene's faces
STRICT_NEIGHBOURS = 10  # the faces whose eyes are judged (cull)
MIN_FACE_FRACTION = 0.04  # loose faces smaller than this share of the shorter side are ignored

_local = threading.local()


def cascades() -> tuple[Any, Any]:
    """OpenCV's packaged frontal-face and eye cascades, one pair per thread (they are not thread-safe)."""
    if not hasattr(_local, "cascades"):
        cv2 = opencv()
        root = Path(cv2.data.haarcascades)
        face = cv2.CascadeClassifier(str(root / "haarcascade_frontalface_default.xml"))
        eye = cv2.CascadeClassifier(str(root / "haarcascade_eye.xml"))
        if face.empty() or eye.empty():  # pragma: no cover - a broken OpenCV install
            raise RuntimeError(f"OpenCV could not load its Haar cascades from {root}")
        _local.cascades = (face, eye)
    return _local.cascades


def equalized(gray: np.ndarray) -> np.ndarray:
    """The histogram-equalised copy of a greyscale uint8 image that the face cascade is run on."""
    return opencv().equalizeHist(np.ascontiguousarray(gray, dtype=np.uint8))


def face_candidates(eq: np.ndarray, min_side: int) -> np.ndarray:
    """Every window the face cascade accepts in the equalised image `eq` at windows of at least `min_side` px,
    ungrouped, as an [N, 4] int array of (x, y, w, h)."""
    face_cc, _ = cascades()
    found = face_cc.detectMultiScale(eq, scaleFactor=SCALE_FACTOR, minNeighbors=0, minSize=(min_side, min_side))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


def group_faces(candidates: np.ndarray, min_neighbours: int, min_side: int) -> list[Box]:
    """The faces ``detectMultiScale(minNeighbors=min_neighbours, minSize=(min_side, min_side))`` finds, from the
    ungrouped candidates of a search at that size or smaller."""
    cv2 = opencv()
    keep = candidates[(candidates[:, 2] >= min_side) & (candidates[:, 3] >= min_side)]
    if not len(keep):
        return []
    rects, _ = cv2.groupRectangles([list(map(int, r)) for r in keep], min_neighbours, GROUP_EPS)
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in (rects if len(rects) else [])]


def loose_min_side(shape: tuple[int, ...], min_face_fraction: float = MIN_FACE_FRACTION) -> int:
    """The smallest loose face, px: :data:`MIN_FACE_FRACTION` of the shorter side, at least the cascade's 24."""
    return max(24, int(min(shape[:2]) * min_face_fraction))


def find_faces(gray: np.ndarray, min_face_fraction: float = MIN_FACE_FRACTION) -> list[Box]:
    """Loose frontal faces in a greyscale uint8 image [H, W]; faces smaller than ``min_face_fraction`` of the
    shorter side are ignored (texture often fires the cascade at tiny scales)."""
    g = np.asarray(gray)
    if g.ndim != 2 or min(g.shape) < 24:
        return []
    side = loose_min_side(g.shape, min_face_fraction)
    return group_faces(face_candidates(equalized(g), side), LOOSE_NEIGHBOURS, side)


def closed_eyes(gray: np.ndarray, faces: list[Box]) -> int:
    """How many of `faces` (boxes in the greyscale uint8 `gray`) show no open eye.

    The eye cascade finds open eyes far more often than closed ones, so a judged face with no eye found
    reads as "eyes may be closed". A hint, not a proof: glasses, profile views and shadows do the same.
    """
    cv2 = opencv()
    _, eye_cc = cascades()
    closed = 0
    for x, y, w, h in faces:
        # the band where eyes sit, enlarged so that an eye spans well over the cascade's 20 px window
        band = gray[y + h // 5 : y + h * 11 // 20, x : x + w]
        band = cv2.resize(band, (200, max(1, round(200 * band.shape[0] / w))), interpolation=cv2.INTER_CUBIC)
        band = cv2.equalizeHist(band)
        eyes = eye_cc.detectMultiScale(band, scaleFactor=1.05, minNeighbors=3, minSize=(20, 20), maxSize=(90, 90))
        if len(eyes) == 0:
            closed += 1
    return closed


def largest_face_share(boxes: list[Box], shape: tuple[int, ...]) -> float:
    """Area of the largest box over the area of an image of ``shape`` (H, W, ...): 0 without faces."""
    if not boxes or not shape[0] or not shape[1]:
        return 0.0
    return max(w * h for _, _, w, h in boxes) / float(shape[0] * shape[1])
