"""Typed records passed from stage to stage. Stages return new records; they never mutate their inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class Photo:
    """One readable image file, as ingest found it."""

    path: str  # as given by the user's folder walk (absolute, not resolved through symlinks)
    sha256: str  # content hash of the file's bytes: the cache key
    width: int  # after EXIF orientation
    height: int
    format: str  # as Pillow names it: JPEG, MPO, PNG, WEBP, TIFF, HEIF, GIF, BMP, PPM ...
    size_bytes: int
    taken_at: str | None = None  # ISO 8601 from EXIF DateTimeOriginal/DateTime, no timezone guess
    gps: tuple[float, float] | None = None  # (lat, lon) in degrees
    orientation: int = 1  # EXIF orientation tag that was applied

    def taken_time(self) -> datetime | None:
        """``taken_at`` as a naive datetime (a timezone, if a record carries one, is dropped: capture times are
        compared as the camera's clock read them); None when unknown or unreadable."""
        if not self.taken_at:
            return None
        try:
            return datetime.fromisoformat(self.taken_at).replace(tzinfo=None)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["gps"] = list(self.gps) if self.gps else None
        return d


@dataclass(frozen=True)
class Excluded:
    """An input file that is not used, and why (unreadable, not an image, too large, ...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Label:
    name: str
    score: float


@dataclass(frozen=True)
class TextLine:
    """One line of text read in a photo (OCR). ``box`` is (left, top, right, bottom) as fractions 0-1 of the
    photo's width and height."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": self.confidence, "box": list(self.box)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextLine:
        b = d["box"]
        return cls(str(d["text"]), float(d["confidence"]), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))


@dataclass(frozen=True)
class Place:
    """Where a photo was taken, from its EXIF GPS: the nearest GeoNames city (offline)."""

    city: str
    region: str | None
    country: str
    country_code: str
    distance_km: float  # from the GPS point to the city's centre

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Place:
        return cls(
            city=str(d["city"]),
            region=d.get("region"),
            country=str(d["country"]),
            country_code=str(d.get("country_code", "")),
            distance_km=float(d.get("distance_km", 0.0)),
        )

    def name(self) -> str:
        """ "Guwahati, Assam, India": the city, its region when it differs from the city, the country."""
        parts = [self.city]
        if self.region and self.region != self.city:
            parts.append(self.region)
        parts.append(self.country)
        return ", ".join(p for p in parts if p)


SceneKind = Literal["poster", "photo"]
Light = Literal["day", "night", "golden hour", "indoor"]
Season = Literal["spring", "summer", "autumn", "winter"]
#: What culling (stages.cull) decided for a photo: ``keep``; ``duplicate`` (the same bytes or pixels, or the
#: same frame edited, of the photo in ``duplicate_of``); ``similar`` (another frame of the same scene as
#: ``duplicate_of``); ``low_quality`` (failed a quality check, said in ``reason``); ``excluded`` (set aside by the
#: editor in the review UI). Whether a verdict keeps a photo out of posts is ``cull.remove``'s choice.
Verdict = Literal["keep", "duplicate", "similar", "low_quality", "excluded"]


@dataclass(frozen=True)
class Scene:
    """What the tool saw in one photo, in plain terms a writer (and an editor) can use.

    ``kind`` tells posters and other graphics from photographs; ``light`` is None for posters (their light is
    designed, not seen). ``hour``, ``season`` and ``place`` are None without EXIF time or GPS."""

    kind: SceneKind
    poster_score: float  # probability of "poster" from the image statistics (and text, when read)
    text: tuple[TextLine, ...] = ()
    faces: int = 0
    face_share: float = 0.0  # area of the largest face / area of the frame
    light: Light | None = None
    brightness: float = 0.0  # mean luminance, 0-1
    warmth: float = 0.0  # mean (R - B) / (R + B), -1 (blue) .. 1 (orange)
    saturation: float = 0.0  # mean HSV saturation, 0-1
    colours: tuple[str, ...] = ()  # dominant colours by plain name, most of the frame first
    hour: int | None = None
    season: Season | None = None
    place: Place | None = None
    concepts: tuple[str, ...] = ()  # what the classifier saw, in plain words (never ImageNet jargon)

    @property
    def people(self) -> int:
        return self.faces

    def text_string(self, min_confidence: float = 0.0) -> str:
        """The lines read, top to bottom, joined by " / "."""
        return " / ".join(t.text for t in self.text if t.confidence >= min_confidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "poster_score": self.poster_score,
            "text": [t.to_dict() for t in self.text],
            "faces": self.faces,
            "face_share": self.face_share,
            "light": self.light,
            "brightness": self.brightness,
            "warmth": self.warmth,
            "saturation": self.saturation,
            "colours": list(self.colours),
            "hour": self.hour,
            "season": self.season,
            "place": self.place.to_dict() if self.place else None,
            "concepts": list(self.concepts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        place = d.get("place")
        hour = d.get("hour")
        return cls(
            kind=d["kind"],
            poster_score=float(d.get("poster_score", 0.0)),
            text=tuple(TextLine.from_dict(t) for t in d.get("text", [])),
            faces=int(d.get("faces", 0)),
            face_share=float(d.get("face_share", 0.0)),
            light=d.get("light"),
            brightness=float(d.get("brightness", 0.0)),
            warmth=float(d.get("warmth", 0.0)),
            saturation=float(d.get("saturation", 0.0)),
            colours=tuple(d.get("colours", [])),
            hour=None if hour is None else int(hour),
            season=d.get("season"),
            place=Place.from_dict(place) if place else None,
            concepts=tuple(d.get("concepts", [])),
        )


def _most_common(values: list[Any]) -> Any:
    vals = [v for v in values if v is not None]
    return Counter(vals).most_common(1)[0][0] if vals else None


@dataclass(frozen=True)
class PosterFacts:
    """What a post's posters say (stages.write.poster): the event as the poster spells it, and its details."""

    title: str | None = None  # the largest type: "Tasveer"
    edition: str | None = None  # a year or edition set apart from the title: "2025", "'25"
    subtitle: str | None = None  # the largest type when a logo holds the title, or type beside it: "Photo Walk"
    headlines: tuple[str, ...] = ()  # other prominent lines: "Weekly Theme Based Photography Challenge"
    date: str | None = None
    time: str | None = None
    venue: str | None = None
    deadline: str | None = None
    words: tuple[str, ...] = ()  # every line read in the post's photos

    def event(self) -> str | None:
        """ "Tasveer 2025": the title with its edition (None without a title)."""
        if not self.title:
            return None
        if self.edition and self.edition not in self.title:
            sep = "" if self.edition.startswith("'") else " "
            return f"{self.title}{sep}{self.edition}"
        return self.title

    def details(self) -> str:
        """ "15th Feb | 2pm - 4pm | Mini Auditorium" (empty when the poster gives none)."""
        return " | ".join(x for x in (self.date, self.time, self.venue) if x)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["words"] = list(self.words)
        d["headlines"] = list(self.headlines)
        d["event"] = self.event()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PosterFacts:
        keys = ("title", "edition", "subtitle", "date", "time", "venue", "deadline")
        return cls(
            **{k: d.get(k) for k in keys}, headlines=tuple(d.get("headlines", [])), words=tuple(d.get("words", []))
        )


@dataclass(frozen=True)
class PostScene:
    """A post's photos' scenes in one summary: what the report's "what the tool saw" line says."""

    photos: int
    posters: int  # photos that are posters or other graphics
    people: int  # most faces in one photo of the post
    light: Light | None = None  # the commonest light of its photographs
    season: Season | None = None
    place: Place | None = None  # the commonest place
    colours: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    text: tuple[str, ...] = ()  # lines read, posters first
    poster: PosterFacts | None = None  # what its posters say (the writers fill it in: stages.write.poster)

    def mood(self) -> tuple[str, ...]:
        """Plain words for the feel of the post: its light, season and main colour ("night", "winter", "red").
        Only a chromatic colour counts: given "black, grey, white" the haiku model listed them ("a house, black,
        grey, white"; docs/side_by_side.html)."""
        light = {"golden hour": "golden hour", "night": "night"}.get(self.light or "")
        colour = next((c for c in self.colours[:1] if c not in ("black", "white", "grey", "brown")), None)
        return tuple(w for w in (light, self.season, colour) if w)

    @classmethod
    def of(cls, scenes: list[Scene]) -> PostScene:
        photos = [s for s in scenes if s.kind == "photo"]
        places = [s.place for s in scenes if s.place is not None]
        place = None
        if places:
            city = _most_common([(p.city, p.country) for p in places])
            place = next(p for p in places if (p.city, p.country) == city)
        colours = Counter(c for s in scenes for c in s.colours[:2])
        concepts = list(dict.fromkeys(c for s in scenes for c in s.concepts))
        text = list(dict.fromkeys(t.text for s in sorted(scenes, key=lambda s: s.kind != "poster") for t in s.text))
        return cls(
            photos=len(scenes),
            posters=len(scenes) - len(photos),
            people=max((s.faces for s in scenes), default=0),
            light=_most_common([s.light for s in photos]),
            season=_most_common([s.season for s in scenes]),
            place=place,
            colours=tuple(c for c, _ in colours.most_common(3)),
            concepts=tuple(concepts[:6]),
            text=tuple(text[:12]),
        )

    def line(self, max_text: int = 120) -> str:
        """One short line: "2 posters, 3 photos · up to 4 people · night · winter · Guwahati, Assam, India ·
        read: \"FRAMES Vol VII\""."""
        n_photo = self.photos - self.posters
        kinds = []
        if self.posters:
            kinds.append(f"{self.posters} poster{'s' if self.posters > 1 else ''}")
        if n_photo:
            kinds.append(f"{n_photo} photo{'s' if n_photo > 1 else ''}")
        parts = [", ".join(kinds)]
        if self.poster is not None and (self.poster.event() or self.poster.details()):
            said = " · ".join(x for x in (self.poster.event(), self.poster.details()) if x)
            parts.append(f"poster: {said}")
        if self.people:
            parts.append("1 person" if self.people == 1 else f"up to {self.people} people")
        else:
            parts.append("no faces")
        for x in (self.light, self.season):
            if x:
                parts.append(x)
        if self.place:
            parts.append(self.place.name())
        if self.concepts:
            parts.append(", ".join(self.concepts[:3]))
        if self.text:
            read = " / ".join(self.text)
            if len(read) > max_text:
                read = read[: max_text - 1].rstrip() + "…"
            parts.append(f"read: \u201c{read}\u201d")
        return " · ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "posters": self.posters,
            "people": self.people,
            "light": self.light,
            "season": self.season,
            "place": self.place.to_dict() if self.place else None,
            "colours": list(self.colours),
            "concepts": list(self.concepts),
            "text": list(self.text),
            "poster": self.poster.to_dict() if self.poster else None,
            "line": self.line(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PostScene:
        place = d.get("place")
        return cls(
            photos=int(d.get("photos", 0)),
            posters=int(d.get("posters", 0)),
            people=int(d.get("people", 0)),
            light=d.get("light"),
            season=d.get("season"),
            place=Place.from_dict(place) if place else None,
            colours=tuple(d.get("colours", [])),
            concepts=tuple(d.get("concepts", [])),
            text=tuple(d.get("text", [])),
            poster=PosterFacts.from_dict(d["poster"]) if d.get("poster") else None,
        )


@dataclass(frozen=True)
class Understood:
    """A photo with what the models saw in it."""

    photo: Photo
    labels: tuple[Label, ...] = ()
    concepts: tuple[str, ...] = ()  # top ImageNet classes (offline tier)
    verdict: Verdict = "keep"  # see Verdict
    reason: str | None = None
    duplicate_of: str | None = None
    scene: Scene | None = None  # what the tool saw (stages.scene), once described


@dataclass
class Post:
    id: str
    photos: list[str]
    cover: str
    caption: str = ""
    hashtags: list[str] = field(default_factory=list)
    haiku: list[str] | None = None
    poem: dict[str, Any] | None = None
    scores: dict[str, float] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    caption_mode: str | None = None  # what wrote the caption: template, generative, hybrid:generative, ...
    scene: PostScene | None = None  # its photos' scenes in one summary (per photo: Understood.scene)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "photos": list(self.photos),
            "cover": self.cover,
            "caption": self.caption,
            "hashtags": list(self.hashtags),
            "haiku": self.haiku,
            "poem": self.poem,
            "scores": dict(self.scores),
            "labels": list(self.labels),
            "caption_mode": self.caption_mode,
            "scene": self.scene.to_dict() if self.scene else None,
        }
