"""The scene: what the tool saw in each photo, in plain terms a writer and an editor can use.

Per photo (a :class:`~photopoet.records.Scene`):

* **kind**: poster (posters, flyers, announcement graphics) or photo. A logistic model over three image
  statistics of the working copy: text-like boxes (strokes closed into short, wide, dense blobs), the share of
  flat pixels (no change to a neighbour), and the share of strong edges. Graphics have flat colour fields and
  sharp type; photographs have texture and soft gradients. Fitted on the train posts of the club's hand labels
  (``benchmarks/scene_eval.py --fit``; the table in docs/benchmarks.md). With an OCR ``reader`` the lines it reads
  (confidence at least ``min_text_confidence``) do not change the kind (they made signs and overlaid titles
  posters); they are kept as the scene's text.
* **text**: the lines an OCR ``reader`` read (any object with ``read(image) -> list[TextLine]``); empty
  without one. The reader gets the original file at up to ``ocr_size`` px (a poster's small print is lost in
  the 512 px working copy), or the working copy when the original cannot be read any more.
* **faces**: how many frontal faces, and the largest one's share of the frame, from the appearance stage (the
  same detector pass; no extra one here).
* **light**: day, night, golden hour or indoor, for photographs (None for posters), from brightness, warmth
  ((R - B) / (R + B)), the sky in the top third and the EXIF hour when there is one.
* **colours**: the 2-3 colours that cover most of the frame, by plain name.
* **hour**, **season**: from the EXIF capture time (seasons flip south of the equator).
* **place**: city, region, country from EXIF GPS, through the offline GeoNames data of ``reverse-geocode``.
* **concepts**: the plain words the understand stage already let through (no ImageNet jargon).

The image statistics (and the text read) are cached by content hash; time, place, faces and concepts are read
from the records and cached results each run, which costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from photopoet.config import SceneConfig
from photopoet.core.cache import Cache
from photopoet.core.images import on_white, open_upright
from photopoet.records import Place, Scene, TextLine, Understood
from photopoet.stages.ingest import working_copy_from_bytes

LOOK_KIND = "scene-look:v1"  # image statistics per photo (measure)
TEXT_KIND = "scene-text:v1"  # + ":" + the reader's name + ":" + ocr_size: the lines it read
STATS_SIZE = 256  # longest side at which flat and edge shares are measured
TEXT_SIZE = 512  # ... and text-like boxes

# Poster model: (mean, sd, weight) per feature, then the bias. Fitted by ``benchmarks/scene_eval.py --fit`` on
# the photos of the club's train posts (train_style.is_test_post split); see docs/benchmarks.md for its test accuracy.
POSTER_MODEL: dict[str, tuple[float, float, float]] = {
    "text_lines": (1.1407, 0.8766, 1.8374),
    "flat": (0.4427, 0.1774, 1.3848),
    "edge": (0.0867, 0.0499, 1.1889),
}
POSTER_BIAS = -0.5035


class ReadsText(Protocol):
    """What the scene needs of an OCR engine (``photopoet.models.ocr.TextReader`` is one)."""

    def read(self, image: Image.Image) -> list[TextLine]: ...


def reader_name(reader: Any) -> str:
    """The name a reader's cached lines are kept under: its ``name`` attribute, else its class name."""
    return str(getattr(reader, "name", None) or type(reader).__name__)


# -- image statistics ---------------------------------------------------------------------------------------


def trim_border(a: np.ndarray, tol: int = 8) -> np.ndarray:
    """`a` [H, W, 3] without uniform border rows and columns (Instagram exports often have white bars),
    at most a third of the image from each side."""
    g = a.astype(np.int16)
    h, w = g.shape[:2]

    def flat_row(r: np.ndarray) -> bool:
        return bool(np.abs(r - r.mean(axis=0)).max() < tol)

    top, bottom, left, right = 0, h, 0, w
    while top < h // 3 and flat_row(g[top]):
        top += 1
    while bottom > h * 2 // 3 and flat_row(g[bottom - 1]):
        bottom -= 1
    while left < w // 3 and flat_row(g[:, left]):
        left += 1
    while right > w * 2 // 3 and flat_row(g[:, right - 1]):
        right -= 1
    return a[top:bottom, left:right]


def text_like_boxes(gray: np.ndarray) -> tuple[int, float]:
    """Blobs shaped like lines of type in a greyscale uint8 image: morphological gradient, Otsu, closed along
        rows; kept when 1.2-12% of the height tall, at least twice as wide as tall and 3% of the width wide (a word,
    not a star) and 35-90% filled with strokes.
        Returns (count, share of the frame they cover)."""
    import cv2

    h, w = gray.shape
    if min(h, w) < 32:
        return 0, 0.0
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    _, bw = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    closed = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    n, area = 0, 0
    for x, y, bw_, bh, _ in stats[1:]:
        if bh < 0.012 * h or bh > 0.12 * h or bw_ < 2 * bh or bw_ < 0.03 * w:
            continue
        fill = float(bw[y : y + bh, x : x + bw_].mean()) / 255.0
        if 0.35 <= fill <= 0.9:
            n += 1
            area += int(bw_) * int(bh)
    return n, area / float(h * w)


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """A plain colour name index (into :data:`COLOUR_NAMES`) per pixel of `rgb` [..., 3] uint8."""
    hsv = np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert("HSV"), dtype=np.float32)
    hue = hsv[..., 0] * (360.0 / 256.0)
    s, v = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    out = np.full(hue.shape, COLOUR_NAMES.index("grey"), dtype=np.int64)
    chroma = s * v
    hue_names = [(15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "teal"), (255, "blue")]
    hue_names += [(290, "purple"), (345, "pink"), (361, "red")]
    lo = 0.0
    coloured = (s >= 0.2) & (chroma >= 0.12)
    for hi, name in hue_names:
        m = coloured & (hue >= lo) & (hue < hi)
        out[m] = COLOUR_NAMES.index(name)
        lo = hi
    brown = coloured & (hue >= 10) & (hue < 50) & (v < 0.6)
    out[brown] = COLOUR_NAMES.index("brown")
    out[~coloured & (v >= 0.85)] = COLOUR_NAMES.index("white")
    out[v < 0.16] = COLOUR_NAMES.index("black")
    return out


COLOUR_NAMES = ("black", "white", "grey", "red", "orange", "yellow", "green", "teal", "blue", "purple", "pink")
COLOUR_NAMES = (*COLOUR_NAMES, "brown")


def measure(img: Image.Image) -> dict[str, Any]:
    """The image statistics of one working copy (what the cache keeps per photo)."""
    rgb = np.asarray(img.convert("RGB"))
    rgb = trim_border(rgb)
    if rgb.size == 0:
        rgb = np.asarray(img.convert("RGB"))
    base = Image.fromarray(rgb)
    text_img = base.convert("L")
    text_img.thumbnail((TEXT_SIZE, TEXT_SIZE))
    n_boxes, box_share = text_like_boxes(np.asarray(text_img))
    small = base.copy()
    small.thumbnail((STATS_SIZE, STATS_SIZE))
    a = np.asarray(small, dtype=np.float32)
    if min(a.shape[:2]) >= 2:
        dx = np.abs(np.diff(a, axis=1)).max(axis=2)[:-1]
        dy = np.abs(np.diff(a, axis=0)).max(axis=2)[:, :-1]
        grad = np.maximum(dx, dy)
        flat, edge = float((grad <= 2).mean()), float((grad >= 40).mean())
    else:
        flat, edge = 1.0, 0.0
    lum = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]) / 255.0
    r, b = a[..., 0], a[..., 2]
    warmth = float(((r - b) / np.maximum(r + b, 1.0)).mean())
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32)
    sat = hsv[..., 1] / 255.0
    hue = hsv[..., 0] * (360.0 / 256.0)
    top = slice(0, max(1, a.shape[0] // 3))
    sky_blue = (hue[top] >= 180) & (hue[top] <= 250) & (sat[top] >= 0.15) & (lum[top] >= 0.45)
    sky_pale = (sat[top] < 0.12) & (lum[top] >= 0.75)
    tiny = small.copy()
    tiny.thumbnail((64, 64))
    names = np.bincount(colour_names(np.asarray(tiny)).ravel(), minlength=len(COLOUR_NAMES))
    shares = names / max(1, names.sum())
    colours = [[COLOUR_NAMES[i], round(float(shares[i]), 4)] for i in np.argsort(-shares) if shares[i] > 0]
    return {
        "text_boxes": n_boxes,
        "text_area": round(box_share, 4),
        "flat": round(flat, 4),
        "edge": round(edge, 4),
        "brightness": round(float(lum.mean()), 4),
        "dark": round(float((lum < 0.12).mean()), 4),
        "warmth": round(warmth, 4),
        "saturation": round(float(sat.mean()), 4),
        "sky": round(float((sky_blue | sky_pale).mean()), 4),
        "colours": colours[:6],
    }


# -- from statistics to words ---------------------------------------------------------------------------------


def poster_probability(look: dict[str, Any], text_lines: int | None = None) -> float:
    """Probability that a photo with these statistics is a poster or graphic. ``text_lines``: lines an OCR
    reader read, in place of the text-like boxes."""
    lines = look["text_boxes"] if text_lines is None else text_lines
    x = {"text_lines": math.log1p(lines), "flat": look["flat"], "edge": look["edge"]}
    z = POSTER_BIAS + sum(w * (x[k] - mu) / sd for k, (mu, sd, w) in POSTER_MODEL.items())
    return 1.0 / (1.0 + math.exp(-z))


NIGHT_HOURS = frozenset([20, 21, 22, 23, 0, 1, 2, 3, 4])
GOLDEN_HOURS = frozenset([5, 6, 7, 16, 17, 18, 19])


def light_of(look: dict[str, Any], hour: int | None, cfg: SceneConfig) -> str:
    """day | night | golden hour | indoor, from the statistics and (when known) the hour of capture."""
    bright, dark, warm, sky = look["brightness"], look["dark"], look["warmth"], look["sky"]
    dim = bright < cfg.night_brightness and dark >= cfg.night_dark_share
    if hour is not None and hour in NIGHT_HOURS:  # after dark: a dark frame is night outside, a lit one indoors
        return "night" if dim or dark >= cfg.night_dark_share / 2 else "indoor"
    if dim:
        return "night"
    outdoors = sky >= cfg.sky_share
    golden_time = outdoors if hour is None else hour in GOLDEN_HOURS
    if warm >= cfg.golden_warmth and look["saturation"] >= 0.25 and golden_time:
        return "golden hour"
    if not outdoors and bright < cfg.indoor_brightness:
        return "indoor"
    return "day"


def capture_time(taken_at: str | None) -> datetime | None:
    if not taken_at:
        return None
    try:
        return datetime.fromisoformat(taken_at)
    except ValueError:
        return None


def season_of(month: int, latitude: float | None = None) -> str:
    """Meteorological season of a month (Dec-Feb winter ...), flipped south of the equator."""
    north = ("winter", "winter", "spring", "spring", "spring", "summer", "summer", "summer", "autumn", "autumn")
    north += ("autumn", "winter")
    s = north[month - 1]
    if latitude is not None and latitude < 0:
        s = {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}[s]
    return s


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=4096)
def place_of(lat: float, lon: float, max_km: float, city_km: float, city_population: int) -> Place | None:
    """The nearest GeoNames city of at least `city_population` people within `city_km`, else the nearest
    place of any size within `max_km`; None further out (at sea, in the wilderness)."""
    try:
        import reverse_geocode
    except ImportError as e:  # pragma: no cover - a dependency
        raise RuntimeError("the scene's place needs the package reverse-geocode: pip install reverse-geocode") from e
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    for min_pop, limit in ((city_population, city_km), (0, max_km)):
        hit = dict(reverse_geocode.get((lat, lon), min_population=min_pop))
        d = _km(lat, lon, float(hit["latitude"]), float(hit["longitude"]))
        if d <= limit:
            return Place(
                city=str(hit.get("city", "")),
                region=hit.get("state") or None,
                country=str(hit.get("country", "")),
                country_code=str(hit.get("country_code", "")),
                distance_km=round(d, 1),
            )
    return None


def colours_of(look: dict[str, Any], cfg: SceneConfig) -> tuple[str, ...]:
    return tuple(name for name, share in look["colours"][: cfg.colours] if share >= cfg.min_colour_share)


def build_scene(
    u: Understood,
    look: dict[str, Any],
    cfg: SceneConfig,
    *,
    faces: int = 0,
    face_share: float = 0.0,
    text: Sequence[TextLine] = (),
) -> Scene:
    """One photo's scene from its statistics, the lines read in it and its record."""
    lines = tuple(t for t in text if t.confidence >= cfg.min_text_confidence and t.text.strip())
    # the kind comes from the image statistics alone: counting the lines read instead of the text-like boxes
    # made photographs with a sign or an overlaid title posters (club test posts: accuracy 0.842 -> 0.684;
    # a model refitted on the lines read did no better on them, benchmarks/scene_eval.py)
    p = poster_probability(look)
    kind = "poster" if p >= cfg.poster_threshold else "photo"
    when = capture_time(u.photo.taken_at)
    gps = u.photo.gps
    place = None
    if gps is not None and cfg.place:
        place = place_of(round(gps[0], 5), round(gps[1], 5), cfg.place_max_km, cfg.city_max_km, cfg.city_min_population)
    hour = when.hour if when else None
    return Scene(
        kind=kind,
        poster_score=round(p, 4),
        text=lines,
        faces=int(faces),
        face_share=round(float(face_share), 4),
        light=light_of(look, hour, cfg) if kind == "photo" else None,  # type: ignore[arg-type]
        brightness=look["brightness"],
        warmth=look["warmth"],
        saturation=look["saturation"],
        colours=colours_of(look, cfg),
        hour=hour,
        season=season_of(when.month, gps[0] if gps else None) if when else None,  # type: ignore[arg-type]
        place=place,
        concepts=tuple(u.concepts),
    )


def worth_reading(look: dict[str, Any], cfg: SceneConfig) -> bool:
    """Whether an OCR reader should read a photo: its statistics give it a poster probability of at least
    ``ocr_min_score`` (a low bar: posters and photos with big text pass, plain photographs do not)."""
    return poster_probability(look) >= cfg.ocr_min_score


# -- the stage -------------------------------------------------------------------------------------------------


def _image(cache: Cache, sha: str) -> Image.Image:
    blob = cache.get_thumb(sha)
    if blob is None:
        raise KeyError(f"no working copy of {sha} in the cache {cache.path}; ingest the photo first")
    return working_copy_from_bytes(blob)


def ocr_image(path: str, size: int) -> Image.Image | None:
    """The photo at `path`, upright, RGB, at most `size` px; None when it cannot be read."""
    try:
        im = on_white(open_upright(path, draft=size))
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        return im
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def describe_scenes(
    photos: Sequence[Understood],
    cfg: SceneConfig,
    cache: Cache,
    *,
    faces: Sequence[int] | np.ndarray | None = None,
    face_share: Sequence[float] | np.ndarray | None = None,
    reader: ReadsText | None = None,
    progress: bool = True,
) -> dict[str, Scene]:
    """The scene stage: ``path -> Scene`` for every photo. `faces` and `face_share` (rows follow `photos`) come
    from the measurements (``Understanding.faces`` / ``face_share``); without them a scene counts no faces.
    The image statistics, and the lines `reader` read, are computed once per content hash and cached."""
    shas = [u.photo.sha256 for u in photos]
    looks = cache.get_json(LOOK_KIND, shas)
    todo = sorted({s for s in shas if s not in looks})
    texts: dict[str, Any] = {}
    tkind = f"{TEXT_KIND}:{reader_name(reader)}:{cfg.ocr_size}" if reader is not None else None
    if tkind is not None:
        texts = cache.get_json(tkind, shas)
    path_of = {u.photo.sha256: u.photo.path for u in photos}
    bar = tqdm(total=len(todo), desc="scenes", unit="photo", disable=not progress or not todo)
    for n in range(0, len(todo), 32):
        got_look = {s: measure(_image(cache, s)) for s in todo[n : n + 32]}
        cache.put_json(LOOK_KIND, got_look)
        looks.update(got_look)
        bar.update(len(got_look))
    bar.close()
    # the text: read only in photos whose statistics say they may be posters (reading costs about a second)
    todo_text = []
    if tkind is not None:
        todo_text = sorted({s for s in shas if s not in texts and worth_reading(looks[s], cfg)})
    bar = tqdm(total=len(todo_text), desc="reading text", unit="photo", disable=not progress or not todo_text)
    for s in todo_text:
        assert reader is not None
        img = _image(cache, s)
        big = ocr_image(path_of[s], cfg.ocr_size)
        use = big if big is not None and max(big.size) > max(img.size) else img
        lines = [t.to_dict() for t in reader.read(use)]
        cache.put_json(tkind, {s: lines})  # type: ignore[arg-type]
        texts[s] = lines
        bar.update(1)
    bar.close()
    out: dict[str, Scene] = {}
    for i, u in enumerate(photos):
        lines = [TextLine.from_dict(t) for t in texts.get(u.photo.sha256, [])]
        out[u.photo.path] = build_scene(
            u,
            looks[u.photo.sha256],
            cfg,
            faces=int(faces[i]) if faces is not None else 0,
            face_share=float(face_share[i]) if face_share is not None else 0.0,
            text=lines,
        )
    return out


__all__ = [
    "LOOK_KIND",
    "TEXT_KIND",
    "ReadsText",
    "build_scene",
    "describe_scenes",
    "light_of",
    "measure",
    "place_of",
    "poster_probability",
    "season_of",
]
