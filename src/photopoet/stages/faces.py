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


def count_faces(gray: np.ndarray, min_face_fraction: float = 0.04) -> int:
    """Frontal faces in a greyscale uint8 image [H, W]; faces smaller than ``min_face_fraction`` of the
    shorter side are ignored (texture often fires the cascade at tiny scales)."""
    import cv2

    g = np.ascontiguousarray(gray, dtype=np.uint8)
    if g.ndim != 2 or min(g.shape) < 24:
        return 0
    g = cv2.equalizeHist(g)
    side = max(24, int(min(g.shape) * min_face_fraction))
    found = _detector().detectMultiScale(g, scaleFactor=1.1, minNeighbors=6, minSize=(side, side))
    return int(len(found))
