"""write_texts: posts written a batch at a time (one generator call per batch and writer), each batch cached as
it is written, so a run that dies mid-way only writes the rest when it is run again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from write_fakes import HashEncoder

from photopoet.config import load_config
from photopoet.core.cache import Cache
from photopoet.records import Photo, Post, Understood
from photopoet.stages.write.texts import TextWriter, write_texts

CAPTION = " Students and friends at the spring fair, laughing in the sun."
HAIKU = "\nwarm light on the stage\nthe drummer counts in the band\na crowd starts to sing"


class CountingGenerator:
    """Answers every caption prompt with CAPTION and every haiku prompt with HAIKU; records each call's prompts.
    ``fail_on``: the call number (1-based) that raises, to stand for a run killed mid-way."""

    name = "counting"

    def __init__(self, fail_on: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def generate(
        self, prompts, max_new_tokens=40, temperature=0.0, num_return_sequences=1, seed=0, *, stop=(), max_lines=0
    ):
        self.calls.append(list(prompts))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt("killed")
        return [[HAIKU if "Haiku:" in p else CAPTION] * num_return_sequences for p in prompts]


def make_posts(n: int):
    by_path, vectors, posts = {}, {}, []
    for i in range(n):
        path = f"/photos/p{i}.jpg"
        photo = Photo(path, f"{i:064x}", 100, 80, "JPEG", 1000)
        by_path[path] = Understood(photo, concepts=("drum", "stage"))
        vectors[path] = np.eye(64, dtype=np.float32)[i % 64]
        posts.append(Post(id=f"post-{i}", photos=[path], cover=path))
    return posts, by_path, vectors


def config():
    return load_config(overrides={"caption": {"mode": "generative", "min_chars": 5}, "haiku": {"rounds": 1}})


def test_posts_are_written_a_batch_per_generator_call(tmp_path: Path) -> None:
    posts, by_path, vectors = make_posts(10)
    cfg = config()
    gen = CountingGenerator()
    writer = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=gen)
    timings: dict[str, float] = {}
    out = write_texts(
        posts,
        cfg,
        None,
        writer=writer,
        by_path=by_path,
        vectors=vectors,
        event="Spring Fair",
        progress=False,
        batch=4,
        timings=timings,
    )
    assert [p.id for p in out] == [p.id for p in posts]
    assert all(p.caption.startswith("Students and friends") and p.caption_mode == "generative" for p in out)
    assert all(p.haiku == ["warm light on the stage", "the drummer counts in the band", "a crowd starts to sing"]
               for p in out)  # fmt: skip
    # per batch of 4, 4, 2 posts: one caption call and one haiku call (single photos: no description)
    assert [len(c) for c in gen.calls] == [4, 4, 4, 4, 2, 2]
    assert set(timings) >= {"captions", "haiku"} and all(v >= 0 for v in timings.values())


def test_a_run_killed_mid_way_writes_only_the_rest_next_time(tmp_path: Path) -> None:
    posts, by_path, vectors = make_posts(10)
    cfg = config()
    with Cache(tmp_path / "cache.sqlite3") as cache:
        dying = CountingGenerator(fail_on=3)  # batch 1 written (calls 1, 2); dies in batch 2's captions
        writer = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=dying)
        with pytest.raises(KeyboardInterrupt):
            write_texts(
                posts,
                cfg,
                cache,
                writer=writer,
                by_path=by_path,
                vectors=vectors,
                event="Spring Fair",
                progress=False,
                batch=4,
            )
        again = CountingGenerator()
        writer = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=again)
        out = write_texts(
            posts,
            cfg,
            cache,
            writer=writer,
            by_path=by_path,
            vectors=vectors,
            event="Spring Fair",
            progress=False,
            batch=4,
        )
    assert [len(c) for c in again.calls] == [4, 4, 2, 2]  # the 6 posts not written before, in batches of 4 and 2
    assert all(p.caption.startswith("Students and friends") for p in out) and len(out) == 10
