"""Style examples: a club's own past captions, the most similar ones shown to the generator.

A style file is JSON lines like the club's ``posts.jsonl``: one object a line with ``caption`` (required),
``event`` and ``labels`` (optional; other keys are ignored). Similarity is the cosine of text embeddings of
"event; labels" on both sides (the new post adds its visual concepts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photopoet.errors import StyleFileError
from photopoet.stages.write.clean import clean_caption

logger = logging.getLogger(__name__)

EXAMPLE_MAX_CHARS = 200  # examples are cut to this, so the model sees the club's openings, not whole essays


@dataclass(frozen=True)
class StyleExample:
    caption: str
    event: str | None = None
    labels: tuple[str, ...] = ()

    def key(self) -> str:
        return topic_text(self.event, self.labels)


def topic_text(event: str | None, labels: Sequence[str], concepts: Sequence[str] = ()) -> str:
    parts = [event or "", ", ".join(labels), ", ".join(concepts)]
    return "; ".join(p for p in parts if p) or "photos"


def load_style_file(path: Path | str) -> list[StyleExample]:
    """Examples from a JSON-lines file; bad lines are reported (file:line) and skipped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise StyleFileError(f"{p}: cannot read style file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise StyleFileError(f"{p}: style file is not UTF-8 text") from None
    out: list[StyleExample] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            logger.warning("%s:%d: not JSON (%s); line skipped", p, n, e.msg)
            continue
        ex = example_from_record(d)
        if ex is None:
            logger.warning("%s:%d: no usable 'caption' text; line skipped", p, n)
            continue
        out.append(ex)
    if not out:
        raise StyleFileError(f"{p}: no line with a usable 'caption' (expected JSON lines like posts.jsonl)")
    return out


def example_from_record(d: object) -> StyleExample | None:
    if not isinstance(d, dict) or not isinstance(d.get("caption"), str):
        return None
    cap = clean_caption(d["caption"].replace("\n", " "), max_chars=EXAMPLE_MAX_CHARS, min_chars=10)
    if not cap:
        return None
    event = d.get("event") if isinstance(d.get("event"), str) and d.get("event") else None
    labels = tuple(str(x) for x in d.get("labels") or [] if isinstance(x, str | int))
    return StyleExample(caption=cap, event=event, labels=labels)


class StyleBank:
    """Past captions and their embeddings; :meth:`nearest` picks the examples for one post."""

    def __init__(self, examples: Sequence[StyleExample], text_encoder) -> None:
        self.examples = list(examples)
        self.text_encoder = text_encoder
        self._keys: np.ndarray | None = None

    @classmethod
    def from_file(cls, path: Path | str, text_encoder) -> StyleBank:
        return cls(load_style_file(path), text_encoder)

    def _matrix(self) -> np.ndarray:
        if self._keys is None:
            self._keys = self.text_encoder.encode([e.key() for e in self.examples], kind="query")
        return self._keys

    def nearest(self, query: str, k: int) -> list[StyleExample]:
        """Up to ``k`` examples, most similar first (ties: file order); the same caption never twice."""
        if k <= 0 or not self.examples:
            return []
        q = self.text_encoder.encode([query], kind="query")[0]
        sims = self._matrix() @ q
        order = np.argsort(-sims, kind="stable")
        out: list[StyleExample] = []
        seen: set[str] = set()
        for i in order:
            ex = self.examples[int(i)]
            if ex.caption.lower() in seen:
                continue
            seen.add(ex.caption.lower())
            out.append(ex)
            if len(out) == k:
                break
        return out
