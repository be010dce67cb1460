"""Text in photos (OCR), offline: RapidOCR running the PP-OCRv6 small models that ship inside its wheel.

``rapidocr==3.10.0`` (Apache-2.0) bundles three ONNX models in its package folder: text detection
(``PP-OCRv6_det_small.onnx``), the 0/180 degree line classifier (``ch_ppocr_mobile_v2.0_cls_mobile.onnx``) and
recognition (``PP-OCRv6_rec_small.onnx``, one model for Chinese and Latin script, digits and punctuation). They
run on ``onnxruntime==1.32.0`` (CPU). The reader hands RapidOCR the three file paths itself, so a missing file
is an error here, never a download. Everything is imported on the first :class:`TextReader`, so ``import
photopoet`` stays fast::

    reader = TextReader()              # loads the models once (about 1.5 s)
    for line in reader.read(Image.open("poster.jpg")):
        print(line.text, line.confidence, line.box)   # box: left, top, right, bottom as fractions 0-1

Detection runs on the photo scaled down to ``det_side`` pixels on its long side (never up); the lines it finds
are cut from the photo at up to 2000 px on its long side and recognised there, so small type on a big photo is
still read at full detail. ``det_side`` was chosen on the club's hand-transcribed posters
(``benchmarks/ocr_eval.py``, the table in docs/benchmarks.md): 960 reads as many words as 1280 in less time, and more
than 768.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from photopoet.core.images import on_white
from photopoet.errors import OCRUnavailable
from photopoet.records import TextLine

logger = logging.getLogger(__name__)

ENGINE_PINS = "rapidocr==3.10.0 onnxruntime==1.32.0"
DET_MODEL = "PP-OCRv6_det_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
DEFAULT_DET_SIDE = 960
REC_MAX_SIDE = 2000  # lines are cut from the photo at up to this long side


def _rapidocr() -> tuple[Any, Path]:
    """The ``RapidOCR`` class and the folder of the models its wheel ships, or :class:`OCRUnavailable`."""
    try:
        import onnxruntime  # noqa: F401  (rapidocr imports it only when a model loads: fail early and clearly)
        import rapidocr
    except ImportError as e:
        raise OCRUnavailable(
            f"reading text in photos needs rapidocr and onnxruntime, which are not importable here ({e}): "
            f"pip install {ENGINE_PINS}"
        ) from e
    models = Path(rapidocr.__file__).resolve().parent / "models"
    missing = [m for m in (DET_MODEL, CLS_MODEL, REC_MODEL) if not (models / m).is_file()]
    if missing:
        raise OCRUnavailable(
            f"rapidocr's bundled models are missing from {models}: {', '.join(missing)} (this reader never "
            f"downloads them; reinstall {ENGINE_PINS})"
        )
    return rapidocr.RapidOCR, models


def reader_id(det_side: int, min_confidence: float) -> str:
    """The name a reader's results are cached under: engine version, models and settings."""
    return f"rapidocr-{_version('rapidocr')}:ppocrv6-small:det{int(det_side)}:score{float(min_confidence):g}"


def ocr_problem() -> str | None:
    """Why no reader can be made here (the engine or its bundled models are missing), or None; imports nothing."""
    import importlib.util

    for mod in ("onnxruntime", "rapidocr"):
        if importlib.util.find_spec(mod) is None:
            return f"reading text in photos needs {mod}, which is not installed: pip install {ENGINE_PINS}"
    spec = importlib.util.find_spec("rapidocr")
    models = Path(spec.origin).resolve().parent / "models" if spec is not None and spec.origin else None
    missing = [m for m in (DET_MODEL, CLS_MODEL, REC_MODEL) if models is None or not (models / m).is_file()]
    if missing:
        return f"rapidocr's bundled models are missing ({', '.join(missing)}): reinstall {ENGINE_PINS}"
    return None


class LazyTextReader:
    """A :class:`TextReader` made on the first :meth:`read`: a run whose photos' text is all cached (or that has
    no photo worth reading) loads no model. Same name, so the same cached results."""

    def __init__(self, det_side: int = DEFAULT_DET_SIDE, min_confidence: float = 0.5, threads: int = 0) -> None:
        self._args = (int(det_side), float(min_confidence), int(threads))
        self._reader: TextReader | None = None
        self._lock = threading.Lock()
        self.name = reader_id(det_side, min_confidence)

    def __reduce__(self) -> tuple[Any, tuple[int, float, int]]:
        return (type(self), self._args)

    def read(self, image: Image.Image | np.ndarray) -> list[TextLine]:
        with self._lock:
            if self._reader is None:
                self._reader = TextReader(*self._args)
        return self._reader.read(image)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - imported from a plain folder
        return "unknown"


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL RGB image from a PIL image (EXIF orientation applied) or an array (H x W grey, H x W x 3 RGB or
    H x W x 4 RGBA, any numeric type; floats are taken as 0-1)."""
    if isinstance(image, Image.Image):
        return on_white(ImageOps.exif_transpose(image))  # transparent parts read as white, as a viewer shows them
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or min(a.shape[:2]) < 1:
        raise ValueError(f"an image array must be H x W, H x W x 3 or H x W x 4, not {a.shape}")
    if a.dtype.kind == "f":
        a = np.clip(a * 255.0, 0, 255).round()
    a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return to_rgb(Image.fromarray(a))


def _frac(v: float, size: int) -> float:
    """`v` pixels as a fraction 0-1 of `size`, rounded to 4 places (a plain float, for JSON)."""
    return round(min(max(float(v) / size, 0.0), 1.0), 4)


class TextReader:
    """Reads the lines of text in a photo: Latin and Chinese script, one :class:`TextLine` per line.

    `det_side`: long side (pixels) at which text is detected; `min_confidence`: lines recognised with less are
    dropped (RapidOCR's ``text_score``); `threads`: onnxruntime's intra-op threads (0: its default, all cores).
    Loading is done once, here; :meth:`read` is safe to call from several threads (one at a time inside). A
    reader pickles as its settings, so it can be sent to worker processes (each loads the models once)."""

    def __init__(self, det_side: int = DEFAULT_DET_SIDE, min_confidence: float = 0.5, threads: int = 0) -> None:
        if det_side < 32:
            raise ValueError(f"det_side must be at least 32 pixels, not {det_side}")
        rapid_ocr, models = _rapidocr()
        self.det_side = int(det_side)
        self.min_confidence = float(min_confidence)
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.text_score": self.min_confidence,
            "Global.max_side_len": REC_MAX_SIDE,
            "Det.model_path": str(models / DET_MODEL),
            "Det.limit_type": "max",  # scale down to det_side on the long side, never up
            "Det.limit_side_len": self.det_side,
            "Cls.model_path": str(models / CLS_MODEL),
            "Rec.model_path": str(models / REC_MODEL),
        }
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
        self._engine = rapid_ocr(params=params)
        self._lock = threading.Lock()
        # load the three models now, not on the first photo (RapidOCR loads them lazily)
        self._engine(np.full((64, 64, 3), 255, np.uint8))
        self._threads = int(threads)
        self.name = reader_id(self.det_side, self.min_confidence)

    def __reduce__(self) -> tuple[Any, tuple[int, float, int]]:
        """Pickled as its settings (for process pools and Ray workers): unpickling loads the models again."""
        return (type(self), (self.det_side, self.min_confidence, self._threads))

    def read(self, image: Image.Image | np.ndarray) -> list[TextLine]:
        """The lines of text in `image` (a PIL image, or an RGB array), top to bottom, then left to right;
        an empty list when there is none."""
        rgb = to_rgb(image)
        w, h = rgb.size
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        with self._lock:
            out = self._engine(bgr)
        if out.boxes is None or out.txts is None or out.scores is None:
            return []
        lines = []
        for box, text, score in zip(out.boxes, out.txts, out.scores, strict=True):
            text = " ".join(str(text).split())
            if not text:
                continue
            pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            box01 = (_frac(x0, w), _frac(y0, h), _frac(x1, w), _frac(y1, h))
            lines.append(TextLine(text, round(float(score), 4), box01))
        return lines
