"""English haiku (three lines, 5-7-5 syllables) for a photo or a post.

1. **Scene**: one photo is described by its labels and visual concepts; several photos first get ONE merged
   sentence of what they share, written by the generator (kept only when it names at least one of their
   concepts or labels; otherwise, deterministically, the concepts most of them share).
2. **Candidates**: the generator samples ``haiku.candidates`` continuations of a few-shot prompt; when none of
   them can be made to scan, it samples as many again, up to ``haiku.rounds`` rounds (posts batched per round).
3. **Repair or reject** (:func:`fit_575`): lines that already scan are kept; otherwise the words are re-split
   into 5-7-5 when they total 17, filler words are dropped ("the", "so", "just", ...) from a long line or a
   one- or two-syllable word is added to a short one; anything still off, a line ending on "the", "of", ...,
   a repeated line, a line copied from a prompt example, ImageNet jargon or an invented fact (a name or number
   that neither the labels, concepts, event nor ``scene_words`` hold, :mod:`.facts`) is rejected.
4. **Rerank** the survivors by image-text agreement (cosine of the photos' text-space vector and the haiku's
   text embedding; unrepaired first on ties).
5. **Fallback**: when nothing survives, :func:`fallback_haiku` builds a deterministic 5-7-5 haiku from the
   subject (a label, concept or the event) and fixed lines; ``source`` says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from photopoet.config import HaikuConfig
from photopoet.stages.concepts import jargon_in
from photopoet.stages.write.caption import agreement
from photopoet.stages.write.clean import clean_caption
from photopoet.stages.write.facts import invented_facts, post_sources
from photopoet.stages.write.syllables import count_syllables, non_english_share, word_syllables

TARGET = (5, 7, 5)

# few-shot examples, each checked to scan 5-7-5 by the counter (tests/stages/write/test_haiku.py)
HAIKU_EXAMPLES: tuple[tuple[str, tuple[str, str, str]], ...] = (
    (
        "a cat asleep on a sunny windowsill",
        ("warm light on the sill", "the old cat dreams with one ear", "listening for birds"),
    ),
    (
        "mountains at sunrise above a valley",
        ("first light on the peaks", "the valley still holds the night", "a bird starts to sing"),
    ),
    (
        "a crowd at a night concert on a lit stage",
        ("the stage lights go up", "a thousand voices as one", "the night starts to dance"),
    ),
)
HAIKU_HEADER = "English haiku about photos: three lines of 5, 7 and 5 syllables."

DESCRIBE_INSTRUCTION = "Write ONE concise, objective sentence that summarizes what all the images depict together."
DESCRIBE_EXAMPLE = (
    (("tabby cat", "sofa", "quilt"), ("golden retriever", "sofa"), ("tabby cat", "window shade")),
    "Pets resting on the furniture of a home.",
)

DROP_FILLERS = ("the", "a", "an", "so", "just", "very", "really", "all", "still", "now", "then", "oh", "and", "softly")
ADD_FILLERS = {1: ("still", "now", "and"), 2: ("softly", "slowly")}
FALLBACK_LINE2 = "a moment held in the frame"
FALLBACK_LINE3 = "the light lingers on"
FALLBACK_LINE1 = "a quiet moment"


@dataclass(frozen=True)
class HaikuResult:
    lines: list[str]
    score: float | None  # image-text agreement of the chosen haiku
    source: str  # "generated", "repaired" or "fallback"
    description: str = ""  # the scene the haiku was written from
    considered: int = 0  # candidates the generator gave
    rejected: int = 0  # of those, how many could not be made to scan, or broke a rule (below)
    candidates: list[tuple[list[str], float | None, bool]] = field(
        default_factory=list
    )  # fitted: lines, score, repaired
    reasons: list[tuple[str, str]] = field(default_factory=list)  # scanning candidates rejected: (text, why)

    def to_json(self) -> dict:
        return {"lines": list(self.lines), "score": None if self.score is None else round(float(self.score), 4)}


def syllable_pattern(lines: Sequence[str]) -> tuple[int, ...]:
    return tuple(count_syllables(line) for line in lines)


def scans(lines: Sequence[str]) -> bool:
    return len(lines) == 3 and syllable_pattern(lines) == TARGET


_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|line \d+:)\s*", re.IGNORECASE)


def parse_candidate(raw: str) -> list[str]:
    """The haiku lines of a raw continuation: up to the first blank line or prompt field, cleaned."""
    lines: list[str] = []
    for line in raw.replace("\r", "").split("\n"):
        if not line.strip():
            if lines:
                break
            continue
        if re.match(r"^\s*(photo|scene|haiku|image|summary)\b.*:", line, re.IGNORECASE):
            break
        line = _NUMBERING.sub("", line)
        line = clean_caption(line, max_chars=120, min_chars=1)
        line = line.strip(" .,;:!?\u2026\"'").strip()
        if line:
            lines.append(line)
        if len(lines) == 6:
            break
    return lines


def _resplit(words: list[str]) -> list[str] | None:
    counts = [word_syllables(w) for w in words]
    if sum(counts) != sum(TARGET):
        return None
    cum, cuts = 0, []
    goals = [TARGET[0], TARGET[0] + TARGET[1]]
    for i, c in enumerate(counts):
        cum += c
        if goals and cum == goals[0]:
            cuts.append(i + 1)
            goals.pop(0)
        elif goals and cum > goals[0]:
            return None
    if len(cuts) != 2:
        return None
    a, b = cuts
    return [" ".join(words[:a]), " ".join(words[a:b]), " ".join(words[b:])]


def _fix_line(line: str, target: int) -> str | None:
    words = line.split()
    have = sum(word_syllables(w) for w in words)
    if have == target:
        return line
    if have > target:
        excess = have - target
        idx = [i for i, w in enumerate(words) if re.sub(r"[^\w]", "", w.lower()) in DROP_FILLERS]
        for r in range(1, min(3, len(idx)) + 1):
            for drop in combinations(idx, r):
                if sum(word_syllables(words[i]) for i in drop) == excess:
                    kept = [w for i, w in enumerate(words) if i not in drop]
                    if kept:
                        return " ".join(kept)
        return None
    lack = target - have
    lowered = {re.sub(r"[^\w]", "", w.lower()) for w in words}
    for f in ADD_FILLERS.get(lack, ()):
        if f not in lowered:
            return f"{f} {line}" if words else f
    return None


_DANGLING = {"the", "a", "an", "and", "of", "to", "with", "my", "your", "its", "their", "our", "his", "her"}


def _dangles(lines: Sequence[str]) -> bool:
    """True when a line ends on a word that needs the next one ("the", "of", ...): a bad split."""
    return any(re.sub(r"[^\w']", "", x.split()[-1].lower()) in _DANGLING for x in lines if x.split())


def _grounded(text: str, concepts_per_photo: Sequence[Sequence[str]], labels: Sequence[str]) -> bool:
    """True when ``text`` names at least one word of the photos' concepts or labels (the small model otherwise
    tends to describe the prompt's example instead of the photos)."""

    def stems(t: str) -> set[str]:
        return {w.rstrip("s") for w in re.findall(r"\w{3,}", t.lower())}

    vocab = set().union(*(stems(c) for cs in concepts_per_photo for c in cs), *(stems(x) for x in labels))
    return bool(vocab & stems(text)) or not vocab


def fit_575(lines: Sequence[str]) -> tuple[list[str], bool] | None:
    """``(lines, repaired)`` scanning 5-7-5, or None when the candidate cannot be made to scan."""
    lines = [" ".join(x.split()) for x in lines if x and x.strip()]
    if not lines or any(non_english_share(x) > 0.2 for x in lines):
        return None
    if len(lines) >= 3 and scans(lines[:3]):
        out = lines[:3]
        return (out, False) if len({x.lower() for x in out}) == 3 and not _dangles(out) else None
    words = " ".join(lines[:3]).split()
    out = _resplit(words)
    if out is None and len(lines) >= 3:
        fixed = [_fix_line(line, t) for line, t in zip(lines[:3], TARGET, strict=True)]
        out = None if any(f is None for f in fixed) else [str(f) for f in fixed]
    if out is None or not scans(out) or len({x.lower() for x in out}) != 3 or _dangles(out):
        return None
    return out, True


_EXAMPLE_LINES = {" ".join(line.lower().split()) for _, h in HAIKU_EXAMPLES for line in h}


def copies_example(lines: Sequence[str]) -> bool:
    """True when any line is a line of a few-shot example (the small model likes to repeat them)."""
    return any(" ".join(x.lower().split()) in _EXAMPLE_LINES for x in lines)


def fallback_haiku(subject: str | None) -> list[str]:
    """A deterministic 5-7-5 haiku about ``subject`` (an English noun phrase; anything else is ignored)."""
    line1 = FALLBACK_LINE1
    s = " ".join((subject or "").split()).lower()
    n = count_syllables(s) if s and non_english_share(s) == 0 else 0
    if n:
        art = "an" if s[0] in "aeiou" else "a"
        line1 = {
            1: f"{art} {s} in soft light",
            2: f"{s} in soft light",
            3: f"{s} in light",
            4: f"{s} waits",
            5: s,
        }.get(n, FALLBACK_LINE1)
        if count_syllables(line1) != TARGET[0]:
            line1 = FALLBACK_LINE1
    return [line1, FALLBACK_LINE2, FALLBACK_LINE3]


def haiku_prompt(scene: str) -> str:
    lines = [HAIKU_HEADER, ""]
    for desc, h in HAIKU_EXAMPLES:
        lines += [f"Photo: {desc}", "Haiku:", *h, ""]
    lines += [f"Photo: {scene}", "Haiku:"]
    return "\n".join(lines)


def describe_prompt(concepts_per_photo: Sequence[Sequence[str]]) -> str:
    ex_photos, ex_summary = DESCRIBE_EXAMPLE
    lines = [DESCRIBE_INSTRUCTION, ""]
    for i, c in enumerate(ex_photos, 1):
        lines.append(f"Image {i}: {', '.join(c)}")
    lines += [f"Summary: {ex_summary}", ""]
    for i, c in enumerate(concepts_per_photo, 1):
        lines.append(f"Image {i}: {', '.join(c) or 'a photo'}")
    lines.append("Summary:")
    return "\n".join(lines)


def shared_concepts(concepts_per_photo: Sequence[Sequence[str]], k: int = 3) -> list[str]:
    """Concepts named for the most photos (ties: better rank, then first seen)."""
    count: Counter[str] = Counter()
    rank: dict[str, float] = {}
    for cs in concepts_per_photo:
        for r, c in enumerate(dict.fromkeys(cs)):
            count[c] += 1
            rank[c] = rank.get(c, 0.0) + r
    order = sorted(count, key=lambda c: (-count[c], rank[c] / count[c]))
    return order[:k]


def scene_for(concepts_per_photo: Sequence[Sequence[str]], labels: Sequence[str] = (), event: str | None = None) -> str:
    """A deterministic scene line: labels and the concepts the photos share."""
    parts = list(labels[:2]) + [c for c in shared_concepts(concepts_per_photo) if c not in labels]
    text = ", ".join(parts) if parts else "a photo"
    return f"{text} ({event})" if event else text


def with_mood(scene: str, mood: Sequence[str]) -> str:
    """The scene line with the mood words it does not hold yet: "a crowd on a stage; night, winter, red"."""
    extra = [w for w in dict.fromkeys(mood) if w and w.lower() not in scene.lower()]
    if not extra:
        return scene
    return f"{scene}; {', '.join(extra)}"


@dataclass(frozen=True)
class HaikuInput:
    """What a haiku is written from: the concepts of each photo, the post's labels, event and image vector."""

    concepts_per_photo: Sequence[Sequence[str]]
    labels: Sequence[str] = ()
    event: str | None = None
    image_vector: np.ndarray | None = None
    scene_words: Sequence[str] = ()  # what the scene saw (text read, place, season): facts a haiku may state
    mood: Sequence[str] = ()  # the light, season and colours of the photos ("night", "winter", "red")


# a haiku is three lines: a blank line or the model's next "Photo:" line ends it (parse_candidate stops there too)
HAIKU_STOP = ("\n\n", "\nPhoto:")
DESCRIBE_STOP = ("\n",)  # one sentence, on one line


class HaikuWriter:
    def __init__(self, cfg: HaikuConfig, generator=None, text_encoder=None) -> None:
        self.cfg = cfg
        self.generator = generator
        self.text_encoder = text_encoder

    def describe(self, concepts_per_photo: Sequence[Sequence[str]], labels: Sequence[str] = ()) -> str:
        """One sentence for the scene: generated and merged for several photos, deterministic for one."""
        return self.describe_many([HaikuInput(concepts_per_photo, labels)])[0]

    def describe_many(self, items: Sequence[HaikuInput]) -> list[str]:
        """:meth:`describe` for several posts, the generated sentences in one generator call."""
        out = [scene_for(it.concepts_per_photo, it.labels) for it in items]
        if not self.cfg.describe_groups or self.generator is None:
            return out
        todo = [i for i, it in enumerate(items) if len(it.concepts_per_photo) >= 2]
        if not todo:
            return out
        prompts = [describe_prompt(items[i].concepts_per_photo) for i in todo]
        raws = self.generator.generate(prompts, max_new_tokens=32, temperature=0.0, stop=DESCRIBE_STOP)
        for i, raw in zip(todo, raws, strict=True):
            text = clean_caption(raw[0].split("\n")[0], max_chars=160, min_chars=8)
            if (
                text
                and _grounded(text, items[i].concepts_per_photo, items[i].labels)
                and not self._jargon(text, items[i])
                and not self._invented(text, items[i])
            ):
                out[i] = text.rstrip(".")
        return out

    def write(
        self,
        concepts_per_photo: Sequence[Sequence[str]],
        labels: Sequence[str] = (),
        event: str | None = None,
        image_vector: np.ndarray | None = None,
    ) -> HaikuResult:
        return self.write_many([HaikuInput(concepts_per_photo, labels, event, image_vector)])[0]

    def write_many(self, items: Sequence[HaikuInput]) -> list[HaikuResult]:
        """A haiku for each post: the scenes, then every post's candidates, each in one generator call."""
        if not items:
            return []
        scenes = [with_mood(s, it.mood) for s, it in zip(self.describe_many(items), items, strict=True)]
        raws: list[list[str]] = [[] for _ in items]
        todo = list(range(len(items))) if self.generator is not None else []
        for r in range(self.cfg.rounds):
            if not todo:
                break
            outs = self.generator.generate(
                [haiku_prompt(scenes[i]) for i in todo],
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.temperature,
                num_return_sequences=self.cfg.candidates,
                seed=self.cfg.seed + r,
                stop=HAIKU_STOP,
                max_lines=3,  # fit_575 reads three lines: a fourth would be decoded for nothing
            )
            for i, o in zip(todo, outs, strict=True):
                raws[i] += o
            # another round only for the posts none of whose candidates could be made to scan
            todo = [i for i in todo if not any(self._fits(x) for x in raws[i])]
        return [self._choose(it, scene, raw) for it, scene, raw in zip(items, scenes, raws, strict=True)]

    @staticmethod
    def _jargon(text: str, item: HaikuInput) -> bool:
        """True when ``text`` names an ImageNet misfire the post's own words do not hold."""
        allowed = [*item.labels, *(c for cs in item.concepts_per_photo for c in cs), item.event or ""]
        return bool(jargon_in(text, allowed))

    @staticmethod
    def _invented(text: str, item: HaikuInput) -> list[str]:
        """The facts (names, numbers) ``text`` states that the post's own words do not hold."""
        concepts = [c for cs in item.concepts_per_photo for c in cs]
        return invented_facts(text, post_sources(item.event, item.labels, concepts, scene_words=item.scene_words))

    def _why_not(self, lines: Sequence[str], item: HaikuInput) -> str | None:
        """Why a scanning haiku is not kept (None: it is)."""
        if copies_example(lines):
            return "copies an example"
        jargon = jargon_in(
            " ".join(lines), [*item.labels, *(c for cs in item.concepts_per_photo for c in cs), item.event or ""]
        )
        if jargon:
            return "imagenet jargon: " + ", ".join(jargon)
        invented = self._invented("\n".join(lines), item)
        if invented:
            return "invented facts: " + ", ".join(invented)
        return None

    @staticmethod
    def _fits(raw: str) -> bool:
        f = fit_575(parse_candidate(raw))
        return f is not None and not copies_example(f[0])

    def _choose(self, item: HaikuInput, scene: str, raws: list[str]) -> HaikuResult:
        fitted: list[tuple[list[str], bool]] = []
        reasons: list[tuple[str, str]] = []
        for r in raws:
            f = fit_575(parse_candidate(r))
            why = self._why_not(f[0], item) if f is not None else None
            if why is not None:
                reasons.append((" / ".join(f[0]), why))
                continue
            if f is not None and all(f[0] != g[0] for g in fitted):
                fitted.append(f)
        rejected = len(raws) - len(fitted)
        if fitted:
            scores = (
                agreement(self.text_encoder, item.image_vector, [" / ".join(x) for x, _ in fitted])
                if self.text_encoder is not None
                else [None] * len(fitted)
            )
            cands = [(x, s, rep) for (x, rep), s in zip(fitted, scores, strict=True)]
            best = max(
                range(len(cands)),
                key=lambda i: (-np.inf if cands[i][1] is None else cands[i][1], not cands[i][2], -i),
            )
            lines, s, rep = cands[best]
            return HaikuResult(lines, s, "repaired" if rep else "generated", scene, len(raws), rejected, cands, reasons)
        subject = (
            next(iter(item.labels), None) or next(iter(shared_concepts(item.concepts_per_photo, 1)), None) or item.event
        )
        lines = fallback_haiku(subject)
        s = None
        if self.text_encoder is not None:
            s = agreement(self.text_encoder, item.image_vector, [" / ".join(lines)])[0]
        return HaikuResult(lines, s, "fallback", scene, len(raws), rejected, [], reasons)
