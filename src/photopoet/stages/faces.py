"""Face counts from OpenCV's packaged Haar frontal-face cascade (``opencv-python-headless``, no download).

Viola-Jones finds upright, roughly frontal faces; profiles and small faces in crowds are missed, so a count is
a lower bound. It only ever adds evidence to the "portrait" and "group photo" labels.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

_lock = threading.Lock()
_cascade: Any = None


def _detector() -> Any:
    global _cascade
    with _lock:
        if _cascade is None:
            import cv2

            path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            c = cv2.CascadeClassifier(path)
            if c.empty():
                raise RuntimeError(f"OpenCV could not load its Haar face cascade from {path}")
            _cascade = c
    return _cascade


def find_faces(gray: np.ndarray, min_face_fraction: float = 0.04) -> list[tuple[int, int, int, int]]:
    """Frontal faces in a greyscale uint8 image [H, W] as (x, y, w, h) pixel boxes; faces smaller than
    ``min_face_fraction`` of the shorter side are ignored (texture often fires the cascade at tiny scales)."""
    import cv2

    g = np.ascontiguousarray(gray, dtype=np.uint8)
    if g.ndim != 2 or min(g.shape) < 24:
        return []
    g = cv2.equalizeHist(g)
    side = max(24, int(min(g.shape) * min_face_fraction))
    found = _detector().detectMultiScale(g, scaleFactor=1.1, minNeighbors=6, minSize=(side, side))
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in (found if len(found) else [])]


def count_faces(gray: np.ndarray, min_face_fraction: float = 0.04) -> int:
    """How many faces :func:`find_faces` finds."""
    return len(find_faces(gray, min_face_fraction))


def largest_face_share(boxes: list[tuple[int, int, int, int]], shape: tuple[int, ...]) -> float:
    """Area of the largest box over the area of an image of ``shape`` (H, W, ...): 0 without faces."""
    if not boxes or not shape[0] or not shape[1]:
        return 0.0
    return max(w * h for _, _, w, h in boxes) / float(shape[0] * shape[1])
