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
    # a post per photo: the different photos kept (coffee-small.heic is a copy of coffee.png) make four posts
    cfg_file.write_text(
        f"cache:\n  dir: {cache_dir}\npoem:\n  fallback: best\ngroup:\n  max_photos_per_post: 1\n", encoding="utf-8"
    )
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
    assert len(doc["posts"]) >= 3
    assert len({p["poem"]["text"] for p in doc["posts"]}) > 1


def test_run_without_poems(photo_dir, tmp_path, cache_dir):
    cfg = load_config(overrides={"cache": {"dir": str(cache_dir)}, "poem": {"enabled": False}})
    res = run(photo_dir, tmp_path / "out", cfg, progress=False)
    assert all(p.poem is None for p in res.posts)


def test_the_scenes_mood_nudges_the_query_and_is_reported(tmp_path, monkeypatch):
    """A spring post's poem query moves toward 春天 (not a query of its own: that gave every post 春去。)."""
    import numpy as np

    from photopoet.config import load_config
    from photopoet.records import Post, PostScene
    from photopoet.stages.write import poem

    seen: list = []

    class Writer:
        def __init__(self, cfg, cache_dir, text_encoder=None):
            self.encoder = type("E", (), {"encode": lambda self, t, kind: np.eye(4, dtype=np.float32)[[1]]})()

        def write_many(self, queries):
            seen.extend(queries)
            return [{"text": "x", "generated": False} for _ in queries]

    und = type("U", (), {})()
    und.photos = [type("P", (), {"photo": type("Ph", (), {"path": "a.jpg"})(), "concepts": ()})()]
    und.text_vectors = np.eye(4, dtype=np.float32)[[0]]
    spring = Post("p", ["a.jpg"], "a.jpg", scene=PostScene(photos=1, posters=0, people=0, season="spring"))
    plain = Post("q", ["a.jpg"], "a.jpg")
    monkeypatch.setattr(poem, "PoemWriter", Writer)
    out = poem.write_poems([spring, plain], load_config(), tmp_path, und=und)
    off = poem.write_poems([spring], load_config(overrides={"poem": {"mood_weight": 0}}), tmp_path, und=und)
    q_spring, q_plain, q_off = (np.asarray(q[0])[0] for q in seen)
    assert q_spring[1] > 0 and q_plain[1] == 0 and q_off[1] == 0  # only the spring post, only with a weight
    assert all(q[1] is None for q in seen)  # never a words query of its own
    assert out[0].poem["mood_words"] == ["spring"] and "mood_words" not in out[1].poem
    assert "mood_words" not in off[0].poem
