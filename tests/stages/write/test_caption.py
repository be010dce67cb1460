"""Captions: template, cleaning, style examples, generative and hybrid modes (fake models, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from write_fakes import HashEncoder, ScriptedGenerator

from photopoet.config import CaptionConfig, load_config
from photopoet.errors import ConfigError, StyleFileError
from photopoet.stages.write.caption import CaptionInput, CaptionWriter, caption_prompt
from photopoet.stages.write.clean import clean_caption, drop_repeats, has_loop, truncate
from photopoet.stages.write.style import StyleBank, StyleExample, load_style_file
from photopoet.stages.write.template import hashtags_for, template_caption


def vec_for(text: str) -> np.ndarray:
    return HashEncoder().encode([text])[0]


# ------------------------------------------------------------------------------------------- template


def test_template_without_event_or_labels_reads_well():
    cfg = CaptionConfig(openers=["Highlights from"])
    assert template_caption("p1", [], None, 1, cfg) == "Highlights."
    assert template_caption("p1", ["stage", "night"], None, 1, cfg) == "Highlights: stage, night."
    assert template_caption("p1", [], "Techniche", 1, cfg) == "Highlights from Techniche."


def test_template_swipe_hint_only_for_carousels_and_configurable():
    cfg = CaptionConfig(openers=["Moments from"], swipe_text="swipe ->")
    assert template_caption("p", ["food"], "Fest", 3, cfg) == "Moments from Fest: food. swipe ->"
    assert template_caption("p", ["food"], "Fest", 1, cfg) == "Moments from Fest: food."
    off = CaptionConfig(openers=["Moments from"], swipe_hint=False)
    assert "wipe" not in template_caption("p", [], "Fest", 5, off)


def test_non_latin_event_and_labels():
    cfg = CaptionConfig(openers=["Moments from"], base_hashtags=["#photoclub"], label_hashtags={"美食": ["#美食摄影"]})
    cap = template_caption("p", ["美食", "夜景"], "中秋 晚会 🎉", 2, cfg)
    assert cap.startswith("Moments from 中秋 晚会 🎉: 美食, 夜景.")
    tags = hashtags_for(["美食", "夜景"], "中秋 晚会 🎉", cfg)
    assert tags == ["#photoclub", "#中秋晚会", "#美食摄影"]
    assert hashtags_for([], "🎉🎉", cfg) == ["#photoclub"]  # an emoji-only event gives no event tag


def test_hashtags_dedupe_and_cap():
    cfg = CaptionConfig(
        base_hashtags=["#Photo", "#photo", "#club"], label_hashtags={"a": ["#x", "#Club"], "b": ["#y"]}, max_hashtags=3
    )
    assert hashtags_for(["a", "b"], None, cfg) == ["#Photo", "#club", "#x"]
    assert hashtags_for(["a"], None, CaptionConfig(max_hashtags=0)) == []


# ------------------------------------------------------------------------------------------- cleaning


def test_clean_removes_handles_urls_and_hashtags():
    raw = "Great night with @montage_iitg at the hall! See https://example.com/x and www.foo.org #fun #night"
    assert clean_caption(raw) == "Great night with at the hall! See and"
    assert clean_caption("Sunset over the lake. #goldenhour\n\nTopic: x") == "Sunset over the lake."


def test_clean_drops_email_addresses_whole():
    # the club signs posts with an address: URL rules alone left "montage@iitg." behind
    assert clean_caption("Drop your reviews at montage@iitg.ac.in and enjoy!") == "Drop your reviews at and enjoy!"
    assert clean_caption("Write to first.last+club@mail.example.com today.") == "Write to today."


def test_clean_cuts_at_prompt_fields_and_repeats():
    assert clean_caption("A calm morning by the river. Topic: river; boats") == "A calm morning by the river."
    assert drop_repeats("the the band played played on") == "the band played on"
    assert drop_repeats("so much fun so much fun so much fun tonight") == "so much fun tonight"
    text = clean_caption("What a show. What a show! The crowd sang along. What a show.")
    assert text == "What a show. The crowd sang along."


def test_clean_length_limit_and_empty_output():
    long = "First sentence here. " + " ".join(f"word{i}" for i in range(100))
    assert clean_caption(long, max_chars=60) == "First sentence here."
    cut = truncate("one two three four five six seven", 15)
    assert len(cut) <= 16 and cut.endswith("\u2026") and cut.startswith("one two")
    for junk in ["", "   ", "#tag #tag2", "@someone", "!!! ...", "http://x.com", "\n\nCaption: hi"]:
        assert clean_caption(junk) == ""
    assert clean_caption("ok", min_chars=5) == ""


# ---------------------------------------------------------------------------------------------- style


def _style_file(tmp_path: Path) -> Path:
    rows = [
        {"caption": "The concert lit up the stage with music and lights.", "event": "Music Night", "labels": ["music"]},
        {"caption": "Mountains and valleys on our trek @someone", "event": "Himalaya Trek", "labels": ["mountains"]},
        "not an object",
        {"caption": 5},
        {"caption": "Street food stalls and spicy snacks.", "event": "Food Walk", "labels": ["food", "street"]},
    ]
    p = tmp_path / "style.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    return p


def test_style_file_skips_bad_lines_and_cleans(tmp_path: Path, caplog):
    ex = load_style_file(_style_file(tmp_path))
    assert [e.event for e in ex] == ["Music Night", "Himalaya Trek", "Food Walk"]
    assert ex[1].caption == "Mountains and valleys on our trek"
    assert "style.jsonl:3" in caplog.text and "style.jsonl:6" in caplog.text


def test_style_file_errors_name_the_file(tmp_path: Path):
    with pytest.raises(StyleFileError, match="nope.jsonl"):
        load_style_file(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no caption"}\n', encoding="utf-8")
    with pytest.raises(StyleFileError, match="bad.jsonl: no line with a usable 'caption'"):
        load_style_file(bad)


def test_style_examples_picked_by_similarity(tmp_path: Path):
    bank = StyleBank.from_file(_style_file(tmp_path), HashEncoder())
    got = bank.nearest("Food Walk; food, street", 2)
    assert got[0].event == "Food Walk"
    assert len(got) == 2 and got[0] != got[1]
    assert bank.nearest("anything", 0) == []


def test_prompt_holds_examples_event_labels_and_concepts():
    item = CaptionInput(id="p", event="Fest", labels=("stage",), concepts=("microphone", "spotlight"))
    p = caption_prompt(item, [StyleExample("A loud and bright night.", "Music Night", ("music",))])
    assert "Topic: Music Night; music\nCaption: A loud and bright night." in p
    assert p.endswith("Topic: Fest; stage; microphone, spotlight\nCaption:")
    assert caption_prompt(CaptionInput(id="p"), []).endswith("Topic: photos\nCaption:")


# ------------------------------------------------------------------------------------ generative, hybrid


def _writer(outputs, **cfg) -> tuple[CaptionWriter, ScriptedGenerator]:
    gen = ScriptedGenerator(outputs)
    return CaptionWriter(CaptionConfig(openers=["Scenes from"], **cfg), generator=gen, text_encoder=HashEncoder()), gen


def test_generative_picks_the_best_agreeing_clean_candidate():
    w, _ = _writer(
        [" Dancers on the stage under red lights #dance @crew\nTopic: more", " A bowl of noodles.", ""], candidates=3
    )
    item = CaptionInput(id="p", event="Fest", labels=("stage",), n_photos=2, image_vector=vec_for("dancers stage"))
    r = w.write(item, mode="generative")
    assert r.mode == "generative"
    assert r.caption == "Dancers on the stage under red lights. Swipe for more ➡️" or r.caption.startswith(
        "Dancers on the stage under red lights"
    )
    assert "#" not in r.caption and "@" not in r.caption and "Topic" not in r.caption
    assert r.hashtags[:2] == ["#photography", "#photoclub"] and "#Fest" in r.hashtags
    assert r.score == pytest.approx(max(s for _, s in r.candidates))
    assert len(r.candidates) == 2  # the empty continuation is dropped


def test_empty_generation_falls_back_to_template():
    w, _ = _writer(["#only #tags", "   ", "@handle"], candidates=3)
    r = w.write(CaptionInput(id="p", event="Fest", labels=("food",), image_vector=vec_for("food")), mode="generative")
    assert r.mode == "generative:template" and r.caption == "Scenes from Fest: food."
    r = w.write(CaptionInput(id="p", event="Fest", labels=("food",), image_vector=vec_for("food")), mode="hybrid")
    assert r.mode == "hybrid:template"


def test_hybrid_threshold_decides():
    item = CaptionInput(id="p", event=None, labels=(), image_vector=vec_for("red boat harbour"))
    high, _ = _writer(["A red boat in the harbour."], candidates=1, agreement_threshold=0.99)
    r = high.write(item)  # hybrid is the default mode
    assert r.mode == "hybrid:template" and r.caption == "Scenes." and r.score is not None
    low, _ = _writer(["A red boat in the harbour."], candidates=1, agreement_threshold=-1.0)
    r = low.write(item)
    assert r.mode == "hybrid:generative" and r.caption == "A red boat in the harbour." and r.score > 0.3


def test_template_mode_never_calls_the_generator():
    w, gen = _writer(["unused"])
    r = w.write(CaptionInput(id="p", event="E", labels=("a",), n_photos=1, image_vector=vec_for("a")), mode="template")
    assert r.mode == "template" and r.caption == "Scenes from E: a." and gen.prompts == []
    assert set(r.to_json()) == {"caption", "hashtags", "mode", "score"}
    with pytest.raises(ValueError, match="mode"):
        w.write(CaptionInput(id="p"), mode="poetic")


def test_generative_with_style_examples_and_non_latin_input(tmp_path: Path):
    bank = StyleBank.from_file(_style_file(tmp_path), HashEncoder())
    gen = ScriptedGenerator(["美食 夜市 很热闹 ✨"])
    w = CaptionWriter(CaptionConfig(style_examples=2), generator=gen, text_encoder=HashEncoder(), style=bank)
    r = w.write(CaptionInput(id="p", event="夜市", labels=("美食",), image_vector=vec_for("美食")), mode="generative")
    assert r.caption == "美食 夜市 很热闹 ✨" and r.mode == "generative"
    assert gen.prompts[0].count("Caption:") == 3  # two examples and the open one


# ---------------------------------------------------------------------------------------------- config


def test_caption_config_validation(tmp_path: Path):
    with pytest.raises(ConfigError, match="caption.mode"):
        load_config(overrides={"caption": {"mode": "poetic"}})
    with pytest.raises(ConfigError, match="min_chars"):
        load_config(overrides={"caption": {"min_chars": 100, "max_chars": 50}})
    with pytest.raises(ConfigError, match="caption.style_file.*missing.jsonl"):
        load_config(overrides={"caption": {"style_file": str(tmp_path / "missing.jsonl")}})
    with pytest.raises(ConfigError, match="haiku.candidates"):
        load_config(overrides={"haiku": {"candidates": 0}})
    cfg = load_config()
    assert cfg.caption.mode == "hybrid" and cfg.haiku.enabled and -1 <= cfg.caption.agreement_threshold <= 1


def test_unusable_style_file_means_no_examples(tmp_path: Path, caplog):
    from photopoet.stages.write.texts import TextWriter

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n", encoding="utf-8")
    cfg = load_config(overrides={"caption": {"style_file": str(bad)}})
    w = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=ScriptedGenerator(["A fine day out."]))
    assert w.style is None and "bad.jsonl" in caplog.text and "without style examples" in caplog.text
    r = w.captions.write(CaptionInput(id="p", event="E", image_vector=vec_for("fine day")), mode="generative")
    assert r.caption == "A fine day out." and r.mode == "generative"


def test_an_event_the_style_file_never_saw_still_gets_examples_and_its_own_tag(tmp_path: Path):
    bank = StyleBank.from_file(_style_file(tmp_path), HashEncoder())
    gen = ScriptedGenerator(["Robots rolled across the hall all afternoon."])
    w = CaptionWriter(CaptionConfig(style_examples=2), generator=gen, text_encoder=HashEncoder(), style=bank)
    item = CaptionInput(id="p", event="Robotics Expo 2031", labels=("stage",), image_vector=vec_for("robots hall"))
    r = w.write(item, mode="generative")
    assert r.caption == "Robots rolled across the hall all afternoon." and r.mode == "generative"
    prompt = gen.prompts[0]
    assert prompt.count("Caption:") == 3 and prompt.endswith("Topic: Robotics Expo 2031; stage\nCaption:")
    assert "#RoboticsExpo2031" in r.hashtags
    empty, _ = _writer(["#tags only"], candidates=1)  # and when nothing usable comes back, the template names it
    r = empty.write(item, mode="generative")
    assert r.mode == "generative:template" and r.caption.startswith("Scenes from Robotics Expo 2031")


@pytest.mark.parametrize(
    "loop",
    [
        # written by photopoet on held-out club posts and on the club's own (quoted in the issues)
        "A group of students in a group photo of a group of students in a group photo of a group of students in",
        "A barbershop, a restaurant, a bookstore, a barber shop, a restaurant, a bookstore, a barbershop, a restaurant",
        "A farewell to the barbershop, restaurant, bookstore, and a farewell to the barber shop, restaurant, bookstore",
    ],
)
def test_repetition_loops_never_pass_the_cleaner(loop: str) -> None:
    assert has_loop(loop)
    assert clean_caption(loop) == ""


def test_real_captions_are_not_loops() -> None:
    club = [
        "Lost in the serenity of Spiti Valley, where the mountains whisper peace and the views take your breath away.",
        "Not just seniors, but mentors, friends, and the soul of Montage. Your legacy rolls on in every frame.",
        "From the stage to the stands, a night of music, lights and friends: the fest, the crowd, the last song.",
    ]
    for text in club:
        assert not has_loop(text) and clean_caption(text) == text
