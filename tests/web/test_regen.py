"""The review server's regenerate: each click asks the shared generator for another version of the caption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from write_fakes import HashEncoder

from photopoet.config import load_config
from photopoet.stages.write.texts import TextWriter
from photopoet.web.regen import REGEN_TEMPERATURE, Regenerator


class Recording:
    name = "recording"

    def __init__(self):
        self.calls = []

    def generate(
        self, prompts, max_new_tokens=40, temperature=0.0, num_return_sequences=1, seed=0, *, stop=(), max_lines=0
    ):
        self.calls.append((temperature, seed))
        return [[f" A fresh caption number {len(self.calls)} about the stage."] * num_return_sequences for _ in prompts]


def test_another_click_samples_another_caption_from_the_same_generator(tmp_path: Path) -> None:
    cfg = load_config(overrides={"caption": {"mode": "generative"}})
    assert cfg.caption.temperature == 0  # the default decodes greedily: the same caption every time
    regen = Regenerator(cfg, tmp_path)
    gen = Recording()
    regen.__dict__["texts"] = TextWriter(cfg, tmp_path, text_encoder=HashEncoder(), generator=gen)
    ctx = {"id": "p1", "event": "Music Night", "labels": ["stage"], "concepts": [["stage", "guitar"]], "n": 1,
           "vector": np.eye(64, dtype=np.float32)[3]}  # fmt: skip
    first, second = regen.caption(ctx, 0), regen.caption(ctx, 1)
    assert gen.calls == [(0.0, cfg.caption.seed), (REGEN_TEMPERATURE, cfg.caption.seed + 1)]
    assert first["caption"] != second["caption"]
