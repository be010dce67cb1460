"""What a post's posters say (stages.write.poster) and how the captions and hashtags use it.

The lines below are laid out as on the club's own posters (benchmarks/data/poster_text.json): a logo in small
type, a year above a large title, stacked subtitle lines, labelled fields with the value below or after a colon,
a contact with a phone number."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from photopoet.config import CaptionConfig, load_config
from photopoet.records import Place, PosterFacts, PostScene, Scene, TextLine
from photopoet.stages.write.caption import CaptionInput, CaptionWriter, with_poster_details
from photopoet.stages.write.facts import invented_facts, post_sources
from photopoet.stages.write.poster import brand_lines, nice_case, poster_facts
from photopoet.stages.write.template import hashtags_for, scene_caption
from photopoet.stages.write.texts import scene_words, with_poster_facts


def line(text: str, top: float, height: float, left: float = 0.1, width: float = 0.5) -> TextLine:
    return TextLine(text, 0.95, (left, top, left + width, top + height))


def scene(lines: list[TextLine], kind: str = "poster") -> Scene:
    return Scene(kind=kind, poster_score=0.9 if kind == "poster" else 0.1, text=tuple(lines))  # type: ignore[arg-type]


WORKSHOP = [
    line("Montage", 0.02, 0.03, 0.05, 0.15),
    line("Photography Club", 0.05, 0.02, 0.05, 0.2),
    line("2025", 0.12, 0.05, 0.4, 0.2),
    line("TASVEER", 0.18, 0.12, 0.2, 0.6),
    line("Fashion", 0.34, 0.05, 0.3, 0.3),
    line("Photography", 0.4, 0.05, 0.3, 0.4),
    line("Workshop", 0.46, 0.05, 0.3, 0.35),
    line("Date", 0.6, 0.03, 0.1, 0.1),
    line("15TH Feb", 0.64, 0.03, 0.1, 0.15),
    line("Time", 0.6, 0.03, 0.4, 0.1),
    line("2pm - 4pm", 0.64, 0.03, 0.4, 0.15),
    line("Venue", 0.6, 0.03, 0.7, 0.1),
    line("Mini Auditorium", 0.64, 0.03, 0.7, 0.2),
    line("Scan to Register", 0.8, 0.02, 0.7, 0.2),
    line("Sarthak Doharey", 0.88, 0.02, 0.1, 0.2),
    line("94159 46267", 0.91, 0.02, 0.1, 0.2),
]


def test_the_largest_type_is_the_title_and_a_year_beside_it_the_edition() -> None:
    f = poster_facts([scene(WORKSHOP)], brand=["Montage"])
    assert f is not None
    assert (f.title, f.edition, f.event()) == ("Tasveer", "2025", "Tasveer 2025")
    assert f.subtitle == "Fashion Photography Workshop"  # three stacked lines of one size
    assert (f.date, f.time, f.venue) == ("15TH Feb", "2pm - 4pm", "Mini Auditorium")
    assert f.details() == "15TH Feb | 2pm - 4pm | Mini Auditorium"
    assert "94159 46267" in f.words  # every line read stays a source of facts


def test_fields_after_a_colon_and_a_title_with_its_year_attached() -> None:
    lines = [
        line("Lr Lightroom Workshop", 0.2, 0.1),
        line("Date : 20th April", 0.5, 0.03),
        line("Time : 9 PM", 0.55, 0.03),
        line("Venue : Montage Room", 0.6, 0.03),
    ]
    f = poster_facts([scene(lines)])
    assert f is not None and f.title == "Lr Lightroom Workshop"
    assert (f.date, f.time, f.venue) == ("20th April", "9 PM", "Montage Room")
    g = poster_facts([scene([line("TASVEER'25", 0.3, 0.15), line("5 DAYS", 0.5, 0.08), line("TO GO", 0.6, 0.06)])])
    assert g is not None and (g.title, g.edition, g.event()) == ("Tasveer", "'25", "Tasveer'25")


def test_the_owners_logo_and_boilerplate_are_never_the_title() -> None:
    lines = [line("MONTAGE", 0.1, 0.2), line("Presenting", 0.35, 0.1), line("Photo Exhibition", 0.5, 0.08)]
    f = poster_facts([scene(lines)], brand=["Montage"])
    assert f is not None and f.title == "Photo Exhibition"


def test_text_in_a_photograph_is_a_source_of_facts_but_never_a_title() -> None:
    """Signs, T-shirts and overlays in photographs were misread into titles on the club's feed ("Kuilu",
    "Oider"): only posters give one."""
    sign = poster_facts([scene([line("PATNA JUNCTION", 0.4, 0.03)], kind="photo")])
    assert sign is not None and sign.title is None and sign.words == ("PATNA JUNCTION",)
    overlay = poster_facts([scene([line("TECHNICHE", 0.4, 0.1), line("Venue : Main Hall", 0.6, 0.03)], kind="photo")])
    assert overlay is not None and overlay.title is None and overlay.venue == "Main Hall"
    assert poster_facts([scene([], kind="photo")]) is None


def test_a_year_makes_the_block_beside_it_the_title_and_the_largest_type_the_subtitle() -> None:
    """As on the club's Tasveer posters: the festival's logo ("TASVEER" over "2025") is small, what the poster
    announces is large."""
    lines = [
        line("TRAVEL PARTNER", 0.2, 0.1),
        line("TASVEER", 0.33, 0.06),
        line("2025", 0.4, 0.04),
        line("Bharat ka Travel App", 0.9, 0.05),  # far below: not a subtitle
    ]
    f = poster_facts([scene(lines)])
    assert f is not None and (f.title, f.edition, f.subtitle) == ("Tasveer", "2025", "Travel Partner")
    assert f.headlines == ("Bharat ka Travel App",)
    chhavi = [line("Chhavi", 0.05, 0.095), line("Weekly Theme Based Photography Challenge", 0.14, 0.026)]
    g = poster_facts([scene([*chhavi, line("Patterns", 0.49, 0.097)])])
    assert g is not None and (g.title, g.subtitle) == ("Chhavi", "Patterns")  # series over theme, as large
    assert g.headlines == ("Weekly Theme Based Photography Challenge",)
    blurred = [line("Outgoing TEAM", 0.2, 0.1), TextLine("Umiai", 0.6, (0.1, 0.32, 0.4, 0.38))]
    g = poster_facts([scene(blurred)])
    assert g is not None and g.subtitle is None
    assert poster_facts([scene([line("5 DAYS", 0.3, 0.2), line("Frames", 0.6, 0.1)])]).title == "Frames"


def test_lines_on_most_posters_of_a_run_brand_them_but_an_event_on_a_few_does_not() -> None:
    posts = [[scene([line("Montage", 0.02, 0.03), line(f"Event {i}", 0.3, 0.1)])] for i in range(6)]
    posts += [[scene([line("Montage", 0.02, 0.03), line("TASVEER", 0.3, 0.1)])] for _ in range(2)]
    assert brand_lines(posts) == {"montage"}


def test_nice_case_keeps_acronyms() -> None:
    assert nice_case("TASVEER IIT  NEXUS 24") == "Tasveer IIT Nexus 24"


def _post_scene(f: PosterFacts | None, photos: int = 2, posters: int = 1, **kw) -> PostScene:
    return PostScene(photos=photos, posters=posters, people=0, poster=f, **kw)


def test_a_poster_posts_caption_names_the_event_as_read_with_its_details_and_tags() -> None:
    f = poster_facts([scene(WORKSHOP)], brand=["Montage"])
    place = Place("Guwahati", "Assam", "India", "IN", 3.0)
    sc = _post_scene(f, photos=1, posters=1, place=place)
    cfg = CaptionConfig()
    text = scene_caption("p1", ["stage"], None, 1, cfg, sc)
    assert text == "Tasveer 2025: Fashion Photography Workshop. 15TH Feb | 2pm - 4pm | Mini Auditorium."
    assert scene_caption("p1", [], "Tasveer 2025", 1, cfg, sc) == text  # the folder's event said once
    other = scene_caption("p1", [], "Spring week", 1, cfg, sc)
    assert other.startswith("Spring week \u2014 Tasveer 2025: Fashion Photography Workshop.")
    tags = hashtags_for([], "Club Events", cfg, sc)
    assert "#Tasveer2025" in tags and "#Guwahati" in tags and "#ClubEvents" in tags


def test_a_photo_posts_caption_says_when_and_where_the_scene_knows() -> None:
    cfg = CaptionConfig(openers=["Moments from"], swipe_hint=False)
    sc = PostScene(photos=3, posters=0, people=4, light="night", place=Place("Guwahati", "Assam", "India", "IN", 2))
    assert (
        scene_caption("p", ["stage"], "Spring Fest", 3, cfg, sc)
        == "Moments from Spring Fest: stage. After dark in Guwahati."
    )
    assert scene_caption("p", ["stage"], "Spring Fest", 3, cfg, None) == "Moments from Spring Fest: stage."


def test_a_generated_caption_gets_the_posters_details_unless_it_names_them() -> None:
    sc = _post_scene(poster_facts([scene(WORKSHOP)], brand=["Montage"]))
    assert with_poster_details("Learn studio lighting with us!", sc).endswith("15TH Feb | 2pm - 4pm | Mini Auditorium")
    assert with_poster_details("See you on 15TH Feb!", sc) == "See you on 15TH Feb!"
    assert with_poster_details("Plain.", None) == "Plain."


def test_facts_read_on_the_poster_may_be_stated_and_others_may_not() -> None:
    sc = _post_scene(poster_facts([scene(WORKSHOP)], brand=["Montage"]))
    allowed = post_sources("images", ["stage"], [], scene_words=scene_words(sc))
    assert invented_facts("Tasveer 2025 is here: join us on 15TH Feb in the Mini Auditorium!", allowed) == []
    assert invented_facts("Tasveer 2026 at the Main Auditorium", allowed) != []


class _Gen:
    """A generator that writes one fixed continuation per prompt and records the prompts."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text, self.prompts = text, []

    def generate(self, prompts, **kw):
        self.prompts += list(prompts)
        return [[self.text] for _ in prompts]


def test_a_generated_caption_is_led_by_the_event_as_the_poster_spells_it() -> None:
    """The generator is not shown the poster (it copied it back); its caption gets the poster's event in front
    unless it names the title, and the details at the end."""
    sc = _post_scene(poster_facts([scene(WORKSHOP)], brand=["Montage"]), photos=1)
    item = CaptionInput(id="p", event="Spring week", scene=sc, scene_words=scene_words(sc))
    gen = _Gen(" Learn studio lighting and styling with us!")
    res = CaptionWriter(CaptionConfig(mode="generative"), generator=gen).write(item)
    assert "Topic: Spring week\n" in gen.prompts[0] and "Fashion" not in gen.prompts[0]
    assert res.mode == "generative", res.rejected
    assert res.caption == (
        "Tasveer 2025: Fashion Photography Workshop \u2014 Learn studio lighting and styling with us! "
        "15TH Feb | 2pm - 4pm | Mini Auditorium"
    )
    res = CaptionWriter(CaptionConfig(mode="generative"), generator=_Gen(" See you at Tasveer 2025!")).write(item)
    assert res.caption == "See you at Tasveer 2025! 15TH Feb | 2pm - 4pm | Mini Auditorium"
    # a sponsor the poster does not name is an invented fact: the template, built from the poster, is used
    res = CaptionWriter(CaptionConfig(mode="generative"), generator=_Gen(" Tasveer 2025 with Sony!")).write(item)
    assert res.mode == "generative:template" and res.rejected[0][1] == "invented facts: Sony"
    assert res.caption.startswith("Spring week \u2014 Tasveer 2025: Fashion Photography Workshop. 15TH Feb")


def test_posts_get_their_poster_facts_from_their_photos_scenes() -> None:
    from photopoet.records import Photo, Post, Understood

    def und(path: str, sc: Scene) -> Understood:
        return Understood(Photo(path, path, 10, 10, "JPEG", 1), scene=sc)

    by_path = {"a.jpg": und("a.jpg", scene(WORKSHOP)), "b.jpg": und("b.jpg", scene([], kind="photo"))}
    posts = [
        Post("1", ["a.jpg", "b.jpg"], "a.jpg", scene=PostScene.of([by_path["a.jpg"].scene, by_path["b.jpg"].scene]))
    ]
    out = with_poster_facts(posts, by_path, ["Montage"])
    assert out[0].scene is not None and out[0].scene.poster is not None
    assert out[0].scene.poster.event() == "Tasveer 2025"
    assert "poster: Tasveer 2025" in out[0].scene.line()
    again = PostScene.from_dict(out[0].scene.to_dict())
    assert again.poster == out[0].scene.poster


@pytest.mark.slow
def test_a_rendered_poster_read_by_the_real_reader_names_its_event() -> None:
    """End to end on the shipped OCR models: a poster drawn with a real font, read, parsed."""
    pytest.importorskip("rapidocr", reason="rapidocr==3.10.0 is not installed in this environment")
    import matplotlib
    from PIL import ImageFont

    from photopoet.models.ocr import TextReader

    def font(size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans-Bold.ttf", size)

    im = Image.new("RGB", (900, 900), (250, 246, 235))
    d = ImageDraw.Draw(im)
    for text, xy, size in (
        ("Montage", (40, 30), 28),
        ("2025", (380, 130), 48),
        ("SPRINGFEST", (150, 200), 110),
        ("Photo Walk", (300, 360), 56),
        ("Date : 12th March", (80, 600), 36),
        ("Venue : Main Auditorium", (80, 660), 36),
    ):
        d.text(xy, text, fill=(20, 20, 30), font=font(size))
    lines = TextReader().read(im)
    f = poster_facts([scene(lines)], brand=["Montage"])
    assert f is not None
    assert f.event() == "Springfest 2025" and f.subtitle == "Photo Walk"
    assert (f.date, f.venue) == ("12th March", "Main Auditorium")
    cfg = load_config().caption
    assert scene_caption("x", [], None, 1, cfg, _post_scene(f, photos=1)).startswith("Springfest 2025: Photo Walk.")
    assert np.isfinite(sum(t.confidence for t in lines))


def test_the_mood_names_light_season_and_only_a_chromatic_main_colour() -> None:
    ps = PostScene(photos=2, posters=0, people=0, light="golden hour", season="autumn", colours=("red", "black"))
    assert ps.mood() == ("golden hour", "autumn", "red")
    assert PostScene(photos=1, posters=0, people=0, light="day", colours=("black", "red")).mood() == ()
