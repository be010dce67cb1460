"""No invented facts: names, numbers and dates in a generated text come from the post's sources, or it is rejected."""

from __future__ import annotations

import pytest
from write_fakes import HashEncoder, ScriptedGenerator

from photopoet.config import CaptionConfig, HaikuConfig
from photopoet.stages.write.caption import CaptionInput, CaptionWriter
from photopoet.stages.write.clean import clean_caption, has_loop
from photopoet.stages.write.facts import facts_in, invented_facts, owner_names, post_sources
from photopoet.stages.write.haiku import HaikuWriter
from photopoet.stages.write.style import StyleBank, StyleExample

# written by photopoet for held-out club posts and for `make demo`'s motorcycle and temple (issue 17)
QUOTED = [
    "A group of students from the University of California, Los Angeles (UCLA) Photography Club visit a temple.",
    "2016-2017 college photography club photo competition.",
    "2016-2017 college photography club.",
]
MOTORBIKE = post_sources("samples", ["motorcycle", "temple"], ["motor scooter", "stupa"], n_photos=2)
CLUB_TRIP = post_sources("club trip", ["travel", "architecture"], ["motorcycle", "temple"], n_photos=5)


@pytest.mark.parametrize("text", QUOTED)
@pytest.mark.parametrize("sources", [MOTORBIKE, CLUB_TRIP])
def test_the_quoted_inventions_are_rejected(text: str, sources: list[str]) -> None:
    assert invented_facts(text, sources)


def test_the_invented_facts_are_named() -> None:
    assert invented_facts(QUOTED[0], MOTORBIKE) == [
        "University of California",
        "Los Angeles",
        "UCLA",
        "Photography Club",
    ]
    assert invented_facts(QUOTED[1], CLUB_TRIP) == ["2016-2017"]


def test_event_and_year_from_the_sources_pass_and_fail_without_them() -> None:
    text = "Freshers' Night 2024 at the Union: the hall sings along."
    given = post_sources("Freshers Night 2024", ["stage", "crowd"], scene_words=["FRESHERS' NIGHT", "THE UNION"])
    assert invented_facts(text, given) == []
    assert invented_facts(text, post_sources("Freshers Night", ["stage"], scene_words=["The Union"])) == ["2024"]
    assert invented_facts(text, post_sources("Freshers Night 2024", ["stage"])) == ["Union"]
    assert set(invented_facts(text, post_sources("club trip", ["stage"]))) == {"Night", "2024", "Union"}


def test_joined_tags_and_labels_vouch_for_names() -> None:
    src = post_sources("Spitivalley", ["#SpitiValley", "montage_iitg", "#Techniche2024"])
    assert invented_facts("Lost in the serenity of Spiti Valley with IITG at Techniche 2024.", src) == []


@pytest.mark.parametrize(
    "text",
    [
        "a motorcycle parked by an old temple at dusk.",
        "Three friends ride out to the temple on a quiet morning.",  # numbers in words are not facts here
        "A thousand steps up to the temple, and the bike waits below.",
        "Golden light on the temple roof. The motorcycle rests in the shade.",  # sentence-initial capitals
        "Moments from samples 🏍️ The road goes on",  # an emoji ends a sentence
    ],
)
def test_ordinary_captions_pass(text: str) -> None:
    assert invented_facts(text, MOTORBIKE) == []


def test_what_counts_as_a_fact() -> None:
    facts = facts_in("We met at 9:00 on June 1st; REGISTER USING THE LINK IN THE BIO. 1. A Tale of Two Minds")
    assert [(f.text, f.kind) for f in facts] == [
        ("9:00", "number"),
        ("June", "name"),
        ("1", "number"),
        ("Tale of Two Minds", "name"),  # the list number "1." is not a fact, the title is
    ]


def test_owner_names_need_several_posts_and_never_numbers() -> None:
    texts = [
        "Shot by Montage at IIT Guwahati, 2024.",
        "Shot by Montage for the fest.",
        "A night with Montage in Spiti Valley.",
        "We went to Spiti Valley in 2024.",
        *(f"Shot on {d} April." for d in (1, 2, 3)),  # a date, however often: not the owner's
    ]
    assert owner_names(texts, min_texts=3) == ["montage"]
    assert "2024" not in owner_names(texts, min_texts=1)


def test_the_quoted_loop_never_passes_the_cleaner() -> None:
    loop = "A group of students in a group photo of a group of students in a group photo of ..."
    assert has_loop(loop) and clean_caption(loop) == ""


def _writer(outputs: list[str], style: StyleBank | None = None, **cfg) -> CaptionWriter:
    return CaptionWriter(
        CaptionConfig(openers=["Scenes from"], **cfg),
        generator=ScriptedGenerator(outputs),
        text_encoder=HashEncoder(),
        style=style,
    )


def test_caption_writer_rejects_invented_facts_and_says_why() -> None:
    item = CaptionInput(id="p", event="samples", labels=("motorcycle", "temple"), n_photos=1)
    w = _writer([QUOTED[1], "A motorcycle waits by the temple gate."], candidates=2)
    r = w.write(item, mode="generative")
    assert r.caption == "A motorcycle waits by the temple gate." and r.mode == "generative"
    assert r.rejected == [(QUOTED[1], "invented facts: 2016-2017")]
    r = _writer([QUOTED[0]], candidates=1).write(item, mode="generative")  # nothing left: the template
    assert r.mode == "generative:template" and r.caption == "Scenes from samples: motorcycle, temple."
    assert r.rejected[0][1].startswith("invented facts: University of California")


def test_scene_words_config_and_owner_names_are_sources() -> None:
    text = "Freshers' Night 2024 at the Union, shot by Montage."
    item = CaptionInput(id="p", event="Freshers Night", labels=("stage",), scene_words=("2024", "The Union"))
    assert _writer([text]).write(item, mode="generative").rejected[0][1] == "invented facts: Montage"
    assert _writer([text], known_facts=["Montage"]).write(item, mode="generative").mode == "generative"
    style = StyleBank([StyleExample(f"Shot by Montage at the fest, part {i}.") for i in range(3)], HashEncoder())
    r = _writer([text], style=style, style_examples=1).write(item, mode="generative")
    assert r.mode == "generative", r.rejected
    no_scene = CaptionInput(id="p", event="Freshers Night", labels=("stage",))
    r = _writer([text], style=style, style_examples=1).write(no_scene, mode="generative")
    assert r.mode == "generative:template" and r.rejected[0][1] == "invented facts: 2024, Union"


def test_haiku_with_an_invented_fact_is_rejected() -> None:
    invented = "red bike at the gate\nthe temple of UCLA waits\nsnow on the old roof"
    plain = "red bike at the gate\nthe temple bell rings at dusk\nsnow on the old roof"
    w = HaikuWriter(HaikuConfig(candidates=2, rounds=1))
    w.generator = ScriptedGenerator([invented, plain])
    r = w.write([["motorcycle", "temple"]], labels=["motorcycle"])
    assert r.lines == plain.split("\n")
    assert r.reasons == [(invented.replace("\n", " / "), "invented facts: UCLA")]
