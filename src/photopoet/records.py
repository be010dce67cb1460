"""Typed records passed from stage to stage. Stages return new records; they never mutate their inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
class Understood:
    """A photo with what the models saw in it."""

    photo: Photo
    labels: tuple[Label, ...] = ()
    concepts: tuple[str, ...] = ()  # top ImageNet classes (offline tier)
    verdict: str = "keep"  # keep | duplicate | low_quality (culling, issue 3)
    reason: str | None = None
    duplicate_of: str | None = None


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
        }
