"""`photopoet run` fills each post's poem from the shipped corpus (real offline models, private cache)."""

from __future__ import annotations

import json

import pytest

from photopoet.config import load_config
from photopoet.pipeline import run
from photopoet.poetry.index import PoemIndex
from photopoet.poetry.select import shipped_index_path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared: the ConSE class matrix is embedded once


def test_run_writes_a_poem_for_every_post(photo_dir, tmp_path, cache_dir):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"cache:\n  dir: {cache_dir}\npoem:\n  fallback: best\n", encoding="utf-8")
    res = run(photo_dir, tmp_path / "out", load_config(cfg_file), progress=False)
    doc = json.loads((res.out / "posts.json").read_text(encoding="utf-8"))
    shipped = PoemIndex(shipped_index_path())
    texts = set(shipped.texts)
    assert doc["posts"]
    html = (res.out / "report.html").read_text(encoding="utf-8")
    for post in doc["posts"]:
        poem = post["poem"]
        assert set(poem) >= {"text", "title", "author", "dynasty", "source_id", "score", "generated"}
        assert poem["generated"] is False and poem["text"] in texts and poem["author"]
        assert poem["text"] in html
    # posts with different photos are not all given the same line
    if len(doc["posts"]) > 2:
        assert len({p["poem"]["text"] for p in doc["posts"]}) > 1


def test_run_without_poems(photo_dir, tmp_path, cache_dir):
    cfg = load_config(overrides={"cache": {"dir": str(cache_dir)}, "poem": {"enabled": False}})
    res = run(photo_dir, tmp_path / "out", cfg, progress=False)
    assert all(p.poem is None for p in res.posts)
