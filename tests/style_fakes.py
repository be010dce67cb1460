"""Captions in a club's style and the tiny Gemma trained on them, shared by the style tests."""

from pathlib import Path

import tiny_models

CAPTIONS = [
    "Golden hour on the river ghats, the city glowing softly.",
    "Our first photowalk of the semester was a blast!",
    "Faces of the festival: colour, music and a thousand smiles.",
    "Night lights over the campus lake, long exposure magic.",
    "Behind the scenes at the cultural fest, stage lights and all.",
    "Monsoon mornings and misty hills, a trip to remember.",
    "The workshop on portraits drew a full house today.",
    "Street stories from the old market, one frame at a time.",
]


def make_tiny_gemma(d: Path) -> Path:
    """The tiny Gemma of :mod:`tiny_models` with a tokenizer trained on these captions."""
    return tiny_models.make_tiny_gemma(d, CAPTIONS * 3)
