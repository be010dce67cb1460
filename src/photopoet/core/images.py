"""Reading pictures: a photo opened upright, transparency flattened on white, OpenCV imported once."""

from __future__ import annotations

import threading
from typing import Any

#: Held while a native image library is first imported (a first import racing in two threads leaves OpenCV
#: half-initialised) and while imagehash is imported.
IMPORT_LOCK = threading.Lock()


def opencv() -> Any:
    """OpenCV (``cv2``, with its packaged cascades' folder), imported once under :data:`IMPORT_LOCK`."""
    with IMPORT_LOCK:
        import cv2
        import cv2.data  # noqa: F401  (the cascades' folder)

        return cv2
