"""Cleaning generated text: what a small language model adds that a caption must not carry.

Rules, in order: keep only the first paragraph and cut at a prompt field the model started to write
("Event:", "Caption:", ...); drop e-mail addresses, URLs, @handles and #hashtags (hashtags are made
separately); drop repeated words and phrases and sentences said twice; reject text that loops (:func:`has_loop`);
trim stray quotes and punctuation; cut to a length limit at a sentence end (else a word end). The result may be
empty: callers fall back to a template.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)  # before URLs: "a@iitg.ac.in" would lose ".ac.in"
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|org|net|in|io|ly|me)(?:/\S*)?\b", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@[\w.]+", re.UNICODE)
_HASHTAG = re.compile(r"(?<![\w#&])#[^\s#]+", re.UNICODE)
_FIELD = re.compile(
    r"\b(?:event|topics?|tags?|labels?|caption|photo shows|scene|haiku|image \d+|summary|post)\s*:", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f\u2026])\s+")
_WORD_TOKEN = re.compile(r"\S+")


def _norm(tok: str) -> str:
    return re.sub(r"[^\w]", "", tok.lower(), flags=re.UNICODE)


def drop_repeats(text: str, max_n: int = 8) -> str:
    """Remove a word or phrase (up to ``max_n`` words) said again right after itself, and any sentence said
    before (case and punctuation ignored)."""
    toks = _WORD_TOKEN.findall(text)
    out: list[str] = []
    for tok in toks:
        out.append(tok)
        changed = True
        while changed:
            changed = False
            for n in range(min(max_n, len(out) // 2), 0, -1):
                a, b = out[-2 * n : -n], out[-n:]
                if [_norm(x) for x in a] == [_norm(x) for x in b] and any(_norm(x) for x in a):
                    del out[-n:]
                    changed = True
                    break
    text = " ".join(out)
    seen: set[str] = set()
    kept = []
    for s in _SENTENCE_END.split(text):
        key = " ".join(_norm(t) for t in s.split())
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(s)
    return " ".join(kept)


def has_loop(text: str) -> bool:
    """True when the text goes round in a loop: a run of 4 words said twice, or of 3 words said three times
    (case and punctuation ignored). A small model's loops vary a little each time round ("a barbershop, a
    restaurant, a bookstore, a barber shop, a restaurant, ..."), so immediate repeats are not enough. None of
    the club's 75 captions has one; every loop quoted in the issues does."""
    toks = [t for t in (_norm(x) for x in text.split()) if t]
    for n, times in ((4, 2), (3, 3)):
        grams = Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
        if grams and max(grams.values()) >= times:
            return True
    return False


def truncate(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut after the last whole sentence that fits, else at a word end."""
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    ends = [m.start() for m in _SENTENCE_END.finditer(head)]
    ends = [e for e in ends if e <= max_chars]
    if ends and ends[-1] >= max_chars // 3:
        return head[: ends[-1]].rstrip()
    cut = head[:max_chars].rsplit(" ", 1)[0] if " " in head[:max_chars] else head[:max_chars]
    return cut.rstrip(" ,;:-\u2013\u2014") + "\u2026"


def display_width(text: str) -> int:
    """Length with wide (CJK) characters counted twice: a Chinese caption says more per character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def clean_caption(raw: str, max_chars: int = 300, min_chars: int = 10) -> str:
    """A cleaned caption, or "" when nothing usable is left (narrower than ``min_chars`` or without letters)."""
    text = raw.replace("\r", "")
    text = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0] if text.strip() else ""
    m = _FIELD.search(text)
    if m:
        text = text[: m.start()]
    text = _EMAIL.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _HASHTAG.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = drop_repeats(text)
    text = text.strip(" \"'\u201c\u201d\u2018\u2019`-\u2013\u2014:;,|")
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,.!?;:])", "", text)
    text = re.sub(r"\(\s*\)|\[\s*\]", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    if has_loop(text):
        return ""  # a loop is never a caption: the caller falls back
    text = truncate(text, max_chars)
    if display_width(text) < min_chars or not any(c.isalpha() for c in text):
        return ""
    return text


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    toks = [t for t in (_norm(x) for x in text.split()) if t]
    return {tuple(toks[i : i + n]) for i in range(max(len(toks) - n + 1, 0))} or ({tuple(toks)} if toks else set())


def copied_share(text: str, source: str, n: int = 3) -> float:
    """Share of the word n-grams of ``text`` that also occur in ``source`` (0: none copied, 1: all)."""
    a = _ngrams(text, n)
    return len(a & _ngrams(source, n)) / len(a) if a else 0.0
