"""The demo, as `make demo` runs it (the default writers on the real offline models): its texts name what is in
the photos in plain words, never the ImageNet classifier's jargon."""

from __future__ import annotations

import json

import pytest

from photopoet.config import load_config
from photopoet.pipeline import run
from photopoet.samples import make_samples
from photopoet.stages.concepts import jargon_in, plain_concepts

pytestmark = pytest.mark.slow

# what `make demo` wrote before the words were filtered (quoted in the issue about seeing more of each photo)
OLD_DEMO = [
    "sofa is on fire / still the cat sleeps on the couch / cats sleep in the night",
    "missile rolls on snow / bubble of air fills the sky / bobsleigh makes a dash",
]


def test_the_jargon_check_catches_the_old_demo() -> None:
    assert jargon_in(OLD_DEMO[1]) == ["missile", "bobsleigh", "bubble"]
    assert jargon_in(OLD_DEMO[0]) == []


def test_plain_concepts_drop_jargon_and_weak_classes() -> None:
    index = {"tabby cat": 281, "missile": 657, "website": 916, "space shuttle": 812}
    pairs = [("website", 0.61), ("tabby cat", 0.5), ("missile", 0.3), ("space shuttle", 0.25), ("lakeshore", 0.1)]
    assert plain_concepts(pairs, 0.2, index) == ("cat", "rocket")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("demo")
    make_samples(d / "samples")
    cfg = load_config(overrides={"cache": {"dir": str(d / "cache")}})
    run(d / "samples", d / "out", cfg, progress=False)
    return json.loads((d / "out" / "posts.json").read_text(encoding="utf-8"))


def test_demo_texts_carry_no_imagenet_jargon(demo) -> None:
    assert demo["posts"]
    for post in demo["posts"]:
        texts = [post["caption"], " / ".join(post["haiku"] or [])]
        assert post["haiku"] and post["caption"]
        for t in texts:
            assert jargon_in(t) == [], (post["id"], t)
    for photo in demo["photos"]:  # the words the writers were given
        assert all(not jargon_in(c) for c in photo.get("concepts", [])), photo
