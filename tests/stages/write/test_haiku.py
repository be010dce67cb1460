"""Haiku: the syllable counter, repair and rejection, fallback, and the writer with a scripted generator."""

from __future__ import annotations

import numpy as np
import pytest
from write_fakes import HashEncoder, ScriptedGenerator

from photopoet.config import HaikuConfig
from photopoet.stages.write.haiku import (
    DESCRIBE_INSTRUCTION,
    HAIKU_EXAMPLES,
    HaikuInput,
    HaikuWriter,
    copies_example,
    describe_prompt,
    fallback_haiku,
    fit_575,
    haiku_prompt,
    parse_candidate,
    scans,
    shared_concepts,
    syllable_pattern,
)
from photopoet.stages.write.syllables import count_syllables, word_syllables

KNOWN = {
    "cat": 1,
    "the": 1,
    "stone": 1,
    "little": 2,
    "table": 2,
    "walked": 1,
    "wanted": 2,
    "stones": 1,
    "horses": 2,
    "pages": 2,
    "lion": 2,
    "quiet": 2,
    "nation": 2,
    "vision": 2,
    "photography": 4,
    "beautiful": 3,
    "evening": 2,
    "every": 2,
    "mountains": 2,
    "river": 2,
    "sunrise": 2,
    "festival": 3,
    "celebration": 4,
    "lovely": 2,
    "peaceful": 2,
    "pictures": 2,
    "faces": 2,
    "venue": 2,
    "going": 2,
    "tackled": 2,
    "varying": 3,
    "fire": 1,
    "don't": 1,
    "moon's": 1,
}


@pytest.mark.parametrize(("word", "n"), sorted(KNOWN.items()))
def test_syllables_of_known_words(word: str, n: int):
    assert word_syllables(word) == n


def test_syllables_of_lines_and_odd_input():
    assert count_syllables("An old silent pond") == 5
    assert count_syllables("A frog jumps into the pond,") == 7
    assert count_syllables("splash! Silence again.") == 5
    assert count_syllables("") == 0 and count_syllables("... !!") == 0
    assert count_syllables("夜市 🎉") == 0  # no English words
    assert count_syllables("well-lit stage") == 3
    assert word_syllables("Stage") == word_syllables("stage")


def test_few_shot_examples_scan():
    for _, h in HAIKU_EXAMPLES:
        assert syllable_pattern(h) == (5, 7, 5), h


def test_fit_keeps_a_haiku_that_scans():
    h = ["first light on the peaks", "the valley still holds the night", "a bird starts to sing"]
    assert fit_575(h) == (h, False)
    assert fit_575(h + ["an extra fourth line"]) == (h, False)


def test_fit_resplits_lines_that_total_17():
    got = fit_575(["first light on the peaks the valley", "still holds the night a bird starts to sing"])
    assert got == (["first light on the peaks", "the valley still holds the night", "a bird starts to sing"], True)


def test_fit_drops_and_adds_fillers():
    lines, repaired = fit_575(["so just soft light on the sill", "the old cat dreams with one ear", "listening birds"])
    assert repaired and scans(lines)
    assert lines[0] == "soft light on the sill" or lines[0] == "just soft light on the sill".replace("just ", "")
    assert lines[2] in ("still listening birds", "now listening birds", "and listening birds")


def test_fit_rejects_what_cannot_scan():
    assert fit_575(["a very long first line that goes on and on", "short", "tiny"]) is None
    assert fit_575([]) is None
    assert fit_575(["夜市的灯", "很热闹", "人很多"]) is None  # not English
    same = ["first light on the peaks", "the valley still holds the night", "first light on the peaks"]
    assert fit_575(same) is None  # a repeated line
    dangling = ["the road is dark but", "I see no animals the", "pet sleeps on the road"]
    assert fit_575(dangling) is None  # a line ending on "the"


def test_parse_candidate_cleans_and_stops():
    raw = "\n1. soft rain on the roof #rain\n2. @bob the kettle hums\n- quiet\n\nPhoto: something else\nHaiku:\nx"
    assert parse_candidate(raw) == ["soft rain on the roof", "the kettle hums", "quiet"]
    assert parse_candidate("a line\nScene: next") == ["a line"]


def test_fallback_is_deterministic_and_scans():
    for subject in ["cat", "tabby cat", "mountain tent", "volcano", "espresso maker", None, "夜市", "a" * 40]:
        h = fallback_haiku(subject)
        assert scans(h), (subject, h)
        assert h == fallback_haiku(subject)
    assert fallback_haiku("cat")[0] == "a cat in soft light"
    assert fallback_haiku("alp")[0] == "an alp in soft light"


def test_copies_example():
    assert copies_example(["x", "the valley still holds the night", "y"])
    assert not copies_example(["soft rain on the roof", "x", "y"])


def test_prompts():
    p = haiku_prompt("a red boat")
    assert p.endswith("Photo: a red boat\nHaiku:") and p.count("Haiku:") == len(HAIKU_EXAMPLES) + 1
    d = describe_prompt([["boat", "dock"], ["boat"]])
    assert d.startswith(DESCRIBE_INSTRUCTION) and d.endswith("Image 1: boat, dock\nImage 2: boat\nSummary:")
    assert shared_concepts([["boat", "dock"], ["boat", "gull"], ["gull"]], 2) == ["boat", "gull"]


def _vec(text: str) -> np.ndarray:
    return HashEncoder().encode([text])[0]


def test_writer_reranks_by_agreement_and_rejects():
    outs = [
        "\nred boats in the port\nthe harbour wakes to the gulls\nropes creak in the wind\n\nPhoto:",
        "\nsoft rain on the roof\nthe kettle hums in the dark\nthe cat turns over\n",
        "\nthis line is far too long to ever be a first line\nno\nno\n",
        "\nfirst light on the peaks\nthe valley still holds the night\na bird starts to sing\n",  # copies an example
    ]
    gen = ScriptedGenerator(outs)
    w = HaikuWriter(HaikuConfig(candidates=4), generator=gen, text_encoder=HashEncoder())
    r = w.write([["boat", "harbour"]], ["boat"], None, _vec("red boats harbour port gulls"))
    assert r.lines == ["red boats in the port", "the harbour wakes to the gulls", "ropes creak in the wind"]
    assert r.source == "generated" and r.considered == 4 and r.rejected == 2 and len(r.candidates) == 2
    assert set(r.to_json()) == {"lines", "score"} and r.score is not None
    assert len(gen.prompts) == 1  # one photo: no merged description needed


def test_writer_falls_back_when_nothing_scans():
    gen = ScriptedGenerator(["\nnothing here\n", ""])
    w = HaikuWriter(HaikuConfig(candidates=2, rounds=2), generator=gen, text_encoder=HashEncoder())
    r = w.write([["tabby cat"], ["tabby cat", "sofa"]], [], "Pet Day", _vec("cat"))
    assert r.source == "fallback" and scans(r.lines) and r.lines[0] == "tabby cat in light"
    assert r.considered == 4 and r.rejected == 4  # two rounds of two: nothing scanned in the first


class SeededGenerator(ScriptedGenerator):
    """Scripted haiku that scan only for the prompts (scenes) named in ``good``; records each call's seed."""

    def __init__(self, good: set[str]):
        super().__init__([])
        self.good, self.calls = good, []

    def generate(
        self, prompts, max_new_tokens=40, temperature=0.0, num_return_sequences=1, seed=0, *, stop=(), max_lines=0
    ):
        self.calls.append((list(prompts), seed))
        ok = "\nwarm light on the stage\nthe drummer counts in the band\na crowd starts to sing"
        out = []
        for pr in prompts:
            scene = pr.rsplit("Photo: ", 1)[1]
            out.append([ok if any(g in scene for g in self.good) else "\nno haiku here"] * num_return_sequences)
        return out


def test_another_round_only_for_the_posts_with_nothing_that_scans():
    gen = SeededGenerator({"drum"})
    w = HaikuWriter(HaikuConfig(candidates=3, rounds=2, describe_groups=False), generator=gen, text_encoder=None)
    res = w.write_many([HaikuInput([["drum"]]), HaikuInput([["teapot"]]), HaikuInput([["drum", "stage"]])])
    assert [r.source for r in res] == ["generated", "fallback", "generated"]
    assert len(gen.calls) == 2  # round one for the three posts, round two for the teapot alone
    (first, seed1), (second, seed2) = gen.calls
    assert len(first) == 3 and len(second) == 1 and "teapot" in second[0] and seed2 == seed1 + 1
    assert res[1].considered == 6 and res[0].considered == 3
    one = HaikuWriter(HaikuConfig(candidates=3, rounds=1, describe_groups=False), generator=SeededGenerator(set()))
    assert one.write([["teapot"]]).considered == 3  # rounds: 1 is the old single round


def test_group_description_must_name_what_the_photos_show():
    gen = ScriptedGenerator(["Pets sleeping on the couch."])  # the prompt's example, not the photos
    w = HaikuWriter(HaikuConfig(candidates=1), generator=gen, text_encoder=None)
    assert w.describe([["scoreboard", "digital clock"], ["stopwatch"]]) == "scoreboard, stopwatch, digital clock"


def test_group_description_comes_first():
    gen = ScriptedGenerator(["Boats moored in a small harbour at dawn.\nImage 1: x"])
    w = HaikuWriter(HaikuConfig(candidates=1), generator=gen, text_encoder=None)
    r = w.write([["boat"], ["boat", "dock"]], [], None, None)
    assert gen.prompts[0].startswith(DESCRIBE_INSTRUCTION)
    assert "Photo: Boats moored in a small harbour at dawn\nHaiku:" in gen.prompts[1]
    assert r.description == "Boats moored in a small harbour at dawn" and r.score is None
    junk = HaikuWriter(HaikuConfig(candidates=1), generator=ScriptedGenerator(["#x"]), text_encoder=None)
    assert junk.describe([["boat"], ["boat", "dock"]]) == "boat, dock"  # deterministic fallback


def test_the_haiku_prompt_carries_the_mood_of_the_scene() -> None:
    """Posts the classifier names nothing in used to share one prompt ("Photo: a photo") and so one haiku; the
    light, season and colours of their scenes now tell them apart."""
    from photopoet.stages.write.haiku import HaikuInput, with_mood

    assert with_mood("a photo", ["night", "winter", "red"]) == "a photo; night, winter, red"
    assert with_mood("a night concert", ["night", "red"]) == "a night concert; red"  # said once
    gen = ScriptedGenerator(["\nwarm light on the sill\nthe old cat dreams with one ear\nlistening for birds\n"])
    w = HaikuWriter(HaikuConfig(candidates=1, rounds=1, describe_groups=False), generator=gen)
    w.write_many([HaikuInput([[]], mood=("night", "winter")), HaikuInput([[]], mood=("golden hour", "summer"))])
    photo_lines = [p.rsplit("Photo:", 1)[1].split("\n")[0].strip() for p in gen.prompts]
    assert photo_lines == ["a photo; night, winter", "a photo; golden hour, summer"]
