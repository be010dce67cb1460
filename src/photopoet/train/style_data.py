"""The club's past posts as training data for the caption style: reading, cleaning, splitting.

A data file is JSON lines like the club's ``posts.jsonl``: ``post_id``, ``caption`` and ``images`` (file
names under the images folder) are needed, ``event``, ``labels`` and ``hashtags`` are used when present. A line
that cannot be used is reported as ``file:line: reason`` and skipped; the rest trains.

Cleaning (:func:`clean_for_training`) removes what a caption writer must not learn to write: e-mail addresses,
@handles, URLs, hashtags (moved out of the text: photopoet writes hashtags separately), credit lines left empty
by that ("Captured by:", "Credits:-"), runs of trailing dots, and cuts the caption to ``max_chars`` at a
sentence end. Every removal is counted with examples for the cleaning report.

Split by post, never by photo: a post is a test post when the first hex digit of sha1(post_id) is below 4
(the split ``benchmarks/caption_eval.py`` uses, so figures compare); of the other posts, ``val_fraction`` are
held out for validation (ordered by sha1 of seed and post_id). Test posts are never read by the trainer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photopoet.errors import DataFileError
from photopoet.stages.write.clean import _EMAIL, _HANDLE, _HASHTAG, _URL, truncate

_CREDIT = re.compile(
    r"(?:\b(?:(?:event|photo|image|picture|video|pic)\s*)?credits?"
    r"|\b(?:captured|clicked|shot|edited|photographed|written|designed)\s+by|\bpc)"
    r"\s*[:\-\u2013\u2014]*[\s:\-\u2013\u2014,&|]*$",
    re.IGNORECASE,
)
_TRAILING_DOTS = re.compile(r"(?:\s*\.){2,}\s*$|(?:\s*\u2026)+\s*$")
_SPACER = re.compile(r"^[\s.\u2022\u00b7_\-]*$")  # Instagram spacer lines: ".", "•", "-"
N_EXAMPLES = 5


@dataclass(frozen=True)
class PostRecord:
    post_id: str
    caption: str  # the training target: cleaned, cut to max_chars
    reference: str  # the metric reference: cleaned, not cut (as benchmarks/caption_eval.py scores)
    event: str | None
    labels: tuple[str, ...]
    images: tuple[str, ...]
    hashtags: tuple[str, ...]  # the post's own hashtags plus those moved out of its caption
    line: int


@dataclass
class CleaningReport:
    """What cleaning removed, per kind: how many posts, how many pieces, a few examples."""

    posts: int = 0
    changed: int = 0
    counts: Counter = field(default_factory=Counter)
    posts_by_kind: Counter = field(default_factory=Counter)
    examples: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"

    def add(self, post_id: str, removed: dict[str, list[str]]) -> None:
        self.posts += 1
        if any(removed.values()):
            self.changed += 1
        for kind, items in removed.items():
            if not items:
                continue
            self.counts[kind] += len(items)
            self.posts_by_kind[kind] += 1
            if len(self.examples[kind]) < N_EXAMPLES:
                self.examples[kind].append({"post_id": post_id, "removed": items[:5]})

    def to_json(self) -> dict:
        return {
            "posts_read": self.posts,
            "posts_changed": self.changed,
            "lines_skipped": len(self.skipped),
            "skipped": self.skipped,
            "removed": {
                k: {"pieces": self.counts[k], "posts": self.posts_by_kind[k], "examples": self.examples[k]}
                for k in sorted(self.counts)
            },
        }

    def to_text(self) -> str:
        out = [f"{self.posts} posts read, {self.changed} changed by cleaning, {len(self.skipped)} lines skipped"]
        for k in sorted(self.counts):
            ex = "; ".join(" | ".join(e["removed"]) for e in self.examples[k][:3])
            out.append(f"  {k}: {self.counts[k]} removed from {self.posts_by_kind[k]} posts, e.g. {ex[:160]}")
        out += [f"  skipped {s}" for s in self.skipped]
        return "\n".join(out)


def clean_for_training(raw: str, max_chars: int = 300) -> tuple[str, dict[str, list[str]]]:
    """(cleaned caption, {kind: [removed piece, ...]}); the caption may be "" when nothing usable is left."""
    kinds = ("emails", "handles", "urls", "hashtags", "credits", "trailing_dots", "cut")
    removed: dict[str, list[str]] = {k: [] for k in kinds}
    text = raw.replace("\r", "")
    removed["emails"] = _EMAIL.findall(text)
    text = _EMAIL.sub(" ", text)
    removed["urls"] = _URL.findall(text)
    text = _URL.sub(" ", text)
    removed["handles"] = _HANDLE.findall(text)
    text = _HANDLE.sub(" ", text)
    removed["hashtags"] = _HASHTAG.findall(text)
    text = _HASHTAG.sub(" ", text)
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t]+", " ", line).strip()
        if _SPACER.match(line):
            if line:
                removed["trailing_dots"].append(line)
            continue
        m = _CREDIT.search(line)
        if m:  # a credit line whose names were handles: nothing is left after "Captured by:"
            removed["credits"].append(m.group(0).strip())
            line = line[: m.start()].rstrip(" ,;:-\u2013\u2014|")
        m = _TRAILING_DOTS.search(line)
        if m and line[: m.start()].strip():
            removed["trailing_dots"].append(m.group(0).strip())
            line = line[: m.start()].rstrip() + "."
            line = re.sub(r"([!?])\.$", r"\1", line)
        if line:
            lines.append(line)
    text = " ".join(lines)
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip(" \"'`-\u2013\u2014:;,|")
    cut = truncate(text, max_chars)
    if cut != text:
        removed["cut"].append(text[len(cut.rstrip("\u2026")) :].strip()[:80] + "...")
        text = cut
    if not any(c.isalpha() for c in text):
        text = ""
    return text, removed


def reference_text(raw: str) -> str:
    """The metric reference for a caption, exactly as ``benchmarks/caption_eval.py`` makes it."""
    from photopoet.stages.write.clean import clean_caption

    return clean_caption(raw.replace("\n", " "), max_chars=2000, min_chars=1)


def load_posts(
    path: str | Path, max_chars: int = 300, *, min_chars: int = 12
) -> tuple[list[PostRecord], CleaningReport]:
    """Usable posts of a JSON-lines file and the cleaning report (bad lines listed in ``report.skipped``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise DataFileError(f"{p}: cannot read data file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise DataFileError(f"{p}: data file is not UTF-8 text") from None
    report = CleaningReport()
    out: list[PostRecord] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue

        def skip(reason: str, n: int = n) -> None:
            report.skipped.append(f"{p}:{n}: {reason}")

        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            skip(f"not JSON ({e.msg})")
            continue
        if not isinstance(d, dict):
            skip(f"not a JSON object (a {type(d).__name__})")
            continue
        pid, cap, imgs = d.get("post_id"), d.get("caption"), d.get("images")
        if not isinstance(pid, str | int) or not str(pid).strip():
            skip("no 'post_id'")
            continue
        pid = str(pid).strip()
        if pid in seen:
            skip(f"post_id {pid!r} already on line {seen[pid]}")
            continue
        if not isinstance(cap, str):
            skip(f"post {pid}: no 'caption' text")
            continue
        if not isinstance(imgs, list) or not imgs or not all(isinstance(x, str) and x for x in imgs):
            skip(f"post {pid}: 'images' must be a non-empty list of file names")
            continue
        cleaned, removed = clean_for_training(cap, max_chars)
        if len(cleaned) < min_chars:
            skip(f"post {pid}: caption too short after cleaning ({cleaned!r} from {cap[:60]!r})")
            continue
        report.add(pid, removed)
        seen[pid] = n
        event = d.get("event") if isinstance(d.get("event"), str) and d["event"].strip() else None
        labels = tuple(str(x) for x in d.get("labels") or [] if isinstance(x, str | int))
        own_tags = [str(x) for x in d.get("hashtags") or [] if isinstance(x, str)]
        tags = tuple(dict.fromkeys(own_tags + removed["hashtags"]))
        out.append(
            PostRecord(
                post_id=pid,
                caption=cleaned,
                reference=reference_text(cap) or cleaned,
                event=event.strip() if event else None,
                labels=labels,
                images=tuple(imgs),
                hashtags=tags,
                line=n,
            )
        )
    return out, report


def is_test_post(post_id: str) -> bool:
    """The held-out test split: first hex digit of sha1(post_id) below 4 (as benchmarks/caption_eval.py)."""
    return int(hashlib.sha1(post_id.encode()).hexdigest()[0], 16) < 4


def split_posts(posts: Sequence[PostRecord], val_fraction: float, seed: int = 0) -> dict[str, list[PostRecord]]:
    """{"train", "val", "test"} by post; val is ``val_fraction`` of the non-test posts (at least one when
    there are two or more), chosen by sha1 of seed and post id."""
    test = [r for r in posts if is_test_post(r.post_id)]
    rest = [r for r in posts if not is_test_post(r.post_id)]
    order = sorted(rest, key=lambda r: hashlib.sha1(f"{seed}:{r.post_id}".encode()).hexdigest())
    n_val = round(val_fraction * len(rest))
    n_val = min(max(n_val, 1), len(rest) - 1) if len(rest) >= 2 else 0
    val_ids = {r.post_id for r in order[:n_val]}
    return {
        "train": [r for r in rest if r.post_id not in val_ids],
        "val": [r for r in rest if r.post_id in val_ids],
        "test": test,
    }
