"""The scene of each photo: poster or photo, light, colours, time, place, text read, cached by content hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from photopoet.config import SceneConfig, load_config
from photopoet.core.cache import Cache
from photopoet.errors import ConfigError
from photopoet.records import Place, PostScene, Scene, TextLine, Understood
from photopoet.stages import scene as scene_stage
from photopoet.stages.ingest import ingest
from photopoet.stages.measure import appearance
from photopoet.stages.scene import describe_scenes, season_of

CFG = load_config()


def skimage_photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def poster() -> Image.Image:
    """A flat-colour poster with big type, as a club's event announcement looks."""
    im = Image.new("RGB", (800, 1000), (24, 40, 110))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 700, 800, 1000), fill=(240, 200, 40))
    d.ellipse((520, 80, 760, 320), fill=(230, 70, 60))
    font_big, font = ImageFont.load_default(size=110), ImageFont.load_default(size=42)
    d.text((50, 330), "FRAMES", font=font_big, fill=(255, 255, 255))
    d.text((50, 470), "Vol VII  photo walk", font=font, fill=(255, 255, 255))
    d.text((50, 540), "Saturday 14 March, 5 pm", font=font, fill=(255, 255, 255))
    d.text((50, 760), "Main auditorium", font=font, fill=(20, 20, 60))
    d.text((50, 830), "register: montage club", font=font, fill=(20, 20, 60))
    return im


def night_photo() -> Image.Image:
    """A street at night: a dark frame with a few warm lights and a faint lit facade."""
    a = np.asarray(skimage_photo("rocket"), dtype=np.float32) * 0.07
    rng = np.random.default_rng(0)
    for _ in range(12):
        y, x = rng.integers(20, a.shape[0] - 20), rng.integers(20, a.shape[1] - 20)
        a[y - 4 : y + 4, x - 4 : x + 4] = (255, 210, 140)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def describe(folder: Path, cache: Cache, scene_cfg: SceneConfig | None = None, **kw) -> dict[str, Scene]:
    ing = ingest(folder, CFG.ingest, cache, progress=False)
    photos = [Understood(photo=p) for p in ing.photos]
    look = appearance(ing.photos, cache, progress=False)
    scenes = describe_scenes(
        photos, scene_cfg or CFG.scene, cache, faces=look.faces, face_share=look.face_share, progress=False, **kw
    )
    return {Path(k).name: v for k, v in scenes.items()}


@pytest.fixture
def folder(tmp_path, make_exif) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    skimage_photo("coffee").save(d / "plain.jpg", quality=92)  # no EXIF, no text, no faces
    night_photo().save(d / "night.jpg", quality=92)
    poster().save(d / "poster.png")
    skimage_photo("chelsea").save(d / "chelsea.jpg", quality=92)
    # Guwahati (26.18 N, 91.75 E), a winter evening
    gps = {1: "N", 2: (26.0, 10.0, 0.0), 3: "E", 4: (91.0, 44.0, 0.0)}
    skimage_photo("coffee").resize((300, 200)).save(
        d / "guwahati.jpg", quality=92, exif=make_exif(taken="2024:01:15 18:30:00", gps=gps)
    )
    # Sydney (33.87 S, 151.21 E) in January: summer down there
    gps = {1: "S", 2: (33.0, 52.0, 0.0), 3: "E", 4: (151.0, 12.0, 30.0)}
    skimage_photo("chelsea").resize((300, 200)).save(
        d / "sydney.jpg", quality=92, exif=make_exif(taken="2023:01:20 12:00:00", gps=gps)
    )
    return d


def test_every_photo_gets_a_scene_even_without_exif_text_or_faces(folder):
    scenes = describe(folder, Cache.memory())
    assert set(scenes) == {"plain.jpg", "night.jpg", "poster.png", "chelsea.jpg", "guwahati.jpg", "sydney.jpg"}
    s = scenes["plain.jpg"]
    assert s.kind == "photo" and s.text == () and s.faces == 0 and s.face_share == 0.0
    assert s.hour is None and s.season is None and s.place is None
    assert s.light in {"day", "indoor", "golden hour"} and 2 <= len(s.colours) <= 3
    assert 0 < s.brightness < 1


def test_night_light(folder):
    scenes = describe(folder, Cache.memory())
    assert scenes["night.jpg"].light == "night" and scenes["night.jpg"].kind == "photo"
    assert "black" in scenes["night.jpg"].colours
    assert scenes["chelsea.jpg"].light != "night"


def test_gps_gives_the_city_and_exif_date_the_season_and_hour(folder):
    scenes = describe(folder, Cache.memory())
    g = scenes["guwahati.jpg"]
    assert g.place is not None and (g.place.city, g.place.region, g.place.country) == ("Guwahati", "Assam", "India")
    assert g.place.name() == "Guwahati, Assam, India"
    assert g.hour == 18 and g.season == "winter"
    s = scenes["sydney.jpg"]
    assert s.place is not None and s.place.city == "Sydney" and s.place.country == "Australia"
    assert s.hour == 12 and s.season == "summer"  # January, south of the equator


def test_no_place_far_from_any_town():
    assert scene_stage.place_of(0.0, -140.0, 50.0, 20.0, 100_000) is None  # the middle of the Pacific
    assert scene_stage.place_of(48.857, 2.352, 50.0, 20.0, 100_000).city == "Paris"


def test_seasons():
    assert [season_of(m) for m in (1, 4, 7, 10, 12)] == ["winter", "spring", "summer", "autumn", "winter"]
    assert season_of(7, latitude=-35.0) == "winter"


def test_poster_and_photos_are_told_apart(folder):
    scenes = describe(folder, Cache.memory())
    assert scenes["poster.png"].kind == "poster" and scenes["poster.png"].light is None
    assert scenes["poster.png"].poster_score > 0.5
    for name in ("plain.jpg", "chelsea.jpg", "night.jpg"):
        assert scenes[name].kind == "photo", (name, scenes[name].poster_score)
    assert {"blue", "yellow"} <= set(scenes["poster.png"].colours)


def test_faces_come_from_the_appearance_pass(tmp_path):
    d = tmp_path / "faces"
    d.mkdir()
    skimage_photo("astronaut").save(d / "astronaut.jpg", quality=92)
    s = describe(d, Cache.memory())["astronaut.jpg"]
    assert s.faces == 1 and 0.01 < s.face_share < 0.2


class FakeReader:
    name = "fake-ocr"

    def __init__(self) -> None:
        self.calls = 0
        self.sizes: list[tuple[int, int]] = []

    def read(self, image: Image.Image) -> list[TextLine]:
        self.calls += 1
        self.sizes.append(image.size)
        if image.height <= image.width:  # "reads" only the poster, the one upright image
            return []
        return [
            TextLine("FRAMES", 0.98, (0.06, 0.33, 0.6, 0.44)),
            TextLine("Vol VII photo walk", 0.91, (0.06, 0.47, 0.7, 0.52)),
            TextLine("smudge", 0.2, (0.1, 0.9, 0.2, 0.95)),  # below min_text_confidence: dropped
        ]


def test_cached_by_content_hash_and_reader(folder, tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache.sqlite3")
    reader = FakeReader()
    first = describe(folder, cache, reader=reader)
    # only the photos whose statistics say they may be posters are read (scene.ocr_min_score)
    assert reader.calls == 2
    assert first["poster.png"].poster_score > 0.5 and first["chelsea.jpg"].poster_score < 0.2
    assert (800, 1000) in reader.sizes  # the original, not the 512 px working copy
    assert first["poster.png"].text_string() == "FRAMES / Vol VII photo walk"
    assert first["poster.png"].kind == "poster" and first["plain.jpg"].text == ()

    def boom(*a, **k):
        raise AssertionError("measured again on a rerun")

    monkeypatch.setattr(scene_stage, "measure", boom)
    again = describe(folder, cache, reader=reader)
    assert again == first and reader.calls == 2
    # without a reader the cached statistics still serve; no text
    assert describe(folder, cache)["poster.png"].text == ()


def test_every_photo_is_read_when_the_bar_is_zero(folder):
    reader = FakeReader()
    cfg = SceneConfig(ocr_min_score=0.0)
    scenes = describe(folder, Cache.memory(), cfg, reader=reader)
    assert reader.calls == 6 and scenes["poster.png"].text_string() == "FRAMES / Vol VII photo walk"


def test_round_trip_and_post_summary(folder):
    scenes = describe(folder, Cache.memory())
    for s in scenes.values():
        assert Scene.from_dict(s.to_dict()) == s
    text = Scene(kind="poster", poster_score=0.9, text=(TextLine("Techniche 2024", 0.9, (0.1, 0.1, 0.9, 0.2)),))
    people = Scene(
        kind="photo",
        poster_score=0.1,
        faces=4,
        face_share=0.02,
        light="night",
        season="winter",
        place=Place("Guwahati", "Assam", "India", "IN", 3.1),
    )
    summary = PostScene.of([text, people])
    line = summary.line()
    for part in (
        "1 poster",
        "1 photo",
        "up to 4 people",
        "night",
        "winter",
        "Guwahati, Assam, India",
        "Techniche 2024",
    ):
        assert part in line
    assert PostScene.from_dict(summary.to_dict()) == summary


def test_scene_config_is_validated():
    with pytest.raises(ConfigError, match="scene.poster_threshold"):
        load_config(overrides={"scene": {"poster_threshold": 1.5}})
    with pytest.raises(ConfigError, match="night_brightness"):
        load_config(overrides={"scene": {"night_brightness": 0.5, "indoor_brightness": 0.3}})
    with pytest.raises(ConfigError, match="scene.nope"):
        load_config(overrides={"scene": {"nope": 1}})


def test_a_poster_keeps_only_the_labels_the_config_lets_it(folder, tmp_path):
    """The classifier sees a poster as a photograph ("food", "stage"); its scene says it is a poster."""
    from dataclasses import dataclass, field

    from photopoet.pipeline import with_scenes
    from photopoet.records import Label

    @dataclass
    class Und:
        photos: list
        faces: object = None
        face_share: object = None
        extra: dict = field(default_factory=dict)

    cache = Cache.memory()
    ing = ingest(folder, CFG.ingest, cache, progress=False)
    labels = (Label("food", 2.0), Label("people", 1.5))
    und = Und([Understood(photo=p, labels=labels) for p in ing.photos])
    cfg = load_config(overrides={"scene": {"ocr": False}})
    got = {Path(u.photo.path).name: u for u in with_scenes(und, cfg, cache, progress=False).photos}
    assert got["poster.png"].scene.kind == "poster" and got["poster.png"].labels == ()
    assert got["chelsea.jpg"].labels == labels  # photographs keep theirs
    cfg = load_config(overrides={"scene": {"ocr": False, "poster_labels": ["people"]}})
    got = {Path(u.photo.path).name: u for u in with_scenes(und, cfg, cache, progress=False).photos}
    assert [lb.name for lb in got["poster.png"].labels] == ["people"]
    raw = with_scenes(und, cfg, cache, progress=False, keep_labels=True).photos
    assert all(u.labels == labels for u in raw)
