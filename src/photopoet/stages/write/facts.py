"""Facts in a generated text, and which of them the post never gave: the "no invented facts" rule.

A small language model writes facts it was never given ("A group of students from the University of
California, Los Angeles (UCLA) Photography Club", "2016-2017 college photography club" on a post of a motorcycle
and a temple). A text may carry a name, a number, a date, a time or a place only when the post's own sources
hold it: the event, the labels, the visual concepts, the config (hashtags, openers, ``caption.known_facts``),
the owner's recurring names (:func:`owner_names`), and what the scene read in the photos (``scene_words``: the
seam for the scene record's poster text, place and season).

Facts (:func:`facts_in`):

- **numbers**: every run of digits, with what joins it to the next ("2016-2017", "7.0", "12th", "9:00", "15/8");
  each digit run must be a number of the sources (``#Techniche2024`` gives 2024). Numbers spelled as words
  ("three friends", "a thousand voices") are not facts here: they are how a caption or a haiku talks, and a count
  the scene gives will be checked against the scene when it exists;
- **names**: a word with a capital letter that is not at the start of a sentence (or line, or after a colon or
  an emoji), or with a capital after its first letter ("UCLA", "IITG", "McLeod"), wherever it is; neighbouring
  names joined by "of", "the", "de", "and", "&" make one fact ("University of California"). Capitalised function
  words ("The", "Our", "I") and all-capital shouting (three or more all-capital words in a row, "REGISTER NOW
  USING THE LINK") are not names. Month and weekday names are names (a date).

A name is allowed when each of its words is a word of the sources (case, ``#``, ``_``, camelCase and
letter-digit joins ignored: "Spiti Valley" matches the label ``spitivalley``, "IIT" the tag ``#montage_iitg``).

Why rules, not a tagger: the check asks "is this token in the post's sources?", which needs the tokens, not
their entity types; capitalisation and digits find them in the English a caption writer produces, and the rule
is strict on exactly the cases quoted (years, acronyms, capitalised names). No English NER model ships in PyPI
from its authors (only third-party re-uploads of spaCy's models), and GLiNER downloads weights from a hub.
A lowercase name ("in los angeles") is missed; a sentence-initial name ("California calls") is missed too.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from photopoet.config import CaptionConfig

# capitalised words that name nothing: function words, pronouns, interjections
_FUNCTION = frozenset(
    {
        *("a", "an", "the", "and", "or", "but", "of", "in", "on", "at", "for", "to", "with", "from", "by", "as"),
        *("into", "onto", "over", "under", "through", "about", "after", "before", "up", "down", "out", "off"),
        *("i", "i'm", "i've", "i'll", "i'd", "we", "you", "he", "she", "it", "they", "me", "us", "him", "her"),
        *("our", "your", "my", "his", "its", "their", "this", "that", "these", "those", "here", "there", "is"),
        *("are", "was", "were", "be", "all", "every", "each", "no", "not", "so", "oh", "ok", "okay", "yes", "wow"),
        *("let's", "let", "what", "who", "when", "where", "why", "how", "if", "then", "just", "more", "most"),
        *("am", "pm", "a.m", "p.m"),  # a time's marker: its number is the fact
    }
)
# a date's words: never an owner's name, however often the owner's texts state one
_CALENDAR = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
)
_JOINERS = frozenset({"of", "the", "de", "del", "da", "di", "du", "la", "le", "von", "van", "and", "&", "on", "upon"})

# a word: letters (any script), inner apostrophes, hyphens, ampersands and dots between letters ("B&W", "St.")
# (an apostrophe only before lower-case letters: "club's", "don't"; "themed'Destiny" is two words, a quote between)
# (no digits: "Part-3" is the word "Part" and the number 3, each checked on its own)
_WORD = re.compile(r"[^\W\d_](?:(?:[^\W\d_]|[&-](?=[^\W\d_])|['\u2019](?=[^\W\d_A-Z]))*)", re.UNICODE)
# a number: digit runs joined by - – / . : , (a range, a version, a time, a date)
_NUMBER = re.compile(r"\d+(?:[-\u2013\u2014/.:,]\d+|\s?[-\u2013\u2014]\s?\d+)*", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_ENUMERATOR = re.compile(r"[.)](?:\s|$)")  # "1. A Tale of Two Minds": a list item's number, not a fact
# where a sentence (or a line, or a list item) starts: the next capital is not a name
_BOUNDARY = frozenset('.!?\u2026:;|/\n\u3002\uff01\uff1f"\u201c\u2018([\u2014\u2013-')


@dataclass(frozen=True)
class Fact:
    """A fact in a text: its words as written, its kind ("name" or "number") and where it starts."""

    text: str
    kind: str
    start: int


def _is_symbol(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or ch in "\ufe0f\u200d"


def _starts_sentence(text: str, i: int) -> bool:
    """True when the word at ``i`` opens a sentence, a line, a list item or a quotation."""
    if i and text[i - 1] in "'\u2019":  # an opening quote right before the word
        return True
    before = text[:i].rstrip(" \t")
    if not before:
        return True
    last = before[-1]
    return last in _BOUNDARY or _is_symbol(last)  # an emoji ends a sentence as often as a full stop does


def _has_capital(w: str) -> bool:
    return any(c.isupper() for c in w)


def _inner_capital(w: str) -> bool:
    """A capital after the first letter: an acronym ("UCLA") or a name written as one ("McLeod", "iPhone")."""
    return any(c.isupper() for part in re.split(r"[-'\u2019&]", w) for c in part[1:])


def _all_caps(w: str) -> bool:
    letters = [c for c in w if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def facts_in(text: str) -> list[Fact]:
    """The names and numbers of ``text``, in order (see the module's rules)."""
    facts = [
        Fact(m.group(), "number", m.start())
        for m in _NUMBER.finditer(text)
        if not (_ENUMERATOR.match(text, m.end()) and _starts_sentence(text, m.start()))
    ]
    words = list(_WORD.finditer(text))
    caps = [_all_caps(m.group()) for m in words]
    shouting = [False] * len(words)
    run = 0
    for i, c in enumerate(caps + [False]):
        if c:
            run += 1
            continue
        if run >= 3:
            for j in range(i - run, i):
                shouting[j] = True
        run = 0
    is_name = []
    for i, m in enumerate(words):
        w = m.group()
        if shouting[i] or not _has_capital(w) or w.lower() in _FUNCTION:
            is_name.append(False)
        elif _inner_capital(w) and len(w) > 1:
            is_name.append(True)
        else:
            is_name.append(not _starts_sentence(text, m.start()))
    i = 0
    while i < len(words):
        if not is_name[i]:
            i += 1
            continue
        j = i
        while True:  # extend over joiners to the next name: "University of California"
            k = j + 1
            while k < len(words) and not is_name[k] and words[k].group().lower() in _JOINERS:
                k += 1
            if k < len(words) and is_name[k] and _adjacent(text, words, j, k):
                j = k
            else:
                break
        facts.append(Fact(text[words[i].start() : words[j].end()], "name", words[i].start()))
        i = j + 1
    return sorted(facts, key=lambda f: f.start)


def _adjacent(text: str, words: list[re.Match], a: int, b: int) -> bool:
    """True when only spaces (and joiner words) lie between words ``a`` and ``b``: no comma, no full stop."""
    gap = text[words[a].end() : words[b].start()]
    return not re.search(r"[^\w\s&]", gap)


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _norm_word(w: str) -> str:
    w = w.lower().replace("\u2019", "'")
    w = re.sub(r"'s$", "", w)
    return re.sub(r"[^\w]|_", "", w, flags=re.UNICODE)


@dataclass(frozen=True)
class FactSources:
    """The words and numbers a text may state, from a post's source strings (see :func:`invented_facts`)."""

    words: frozenset[str]
    numbers: frozenset[int]
    squashed: tuple[str, ...]  # each source, lower case, letters and digits only: "#SpitiValley" -> "spitivalley"

    @classmethod
    def of(cls, sources: Iterable[str]) -> FactSources:
        words: set[str] = set()
        numbers: set[int] = set()
        squashed: list[str] = []
        for s in sources:
            if not s:
                continue
            s = str(s)
            split = _CAMEL.sub(" ", s.replace("_", " "))
            words.update(w for w in (_norm_word(x) for x in re.split(r"[\W_]+", split, flags=re.UNICODE)) if w)
            numbers.update(int(d) for d in _DIGITS.findall(s))
            sq = re.sub(r"[\W_]+", "", s.lower(), flags=re.UNICODE)
            if sq:
                squashed.append(sq)
        return cls(frozenset(words), frozenset(numbers), tuple(squashed))

    def has_word(self, word: str) -> bool:
        w = _norm_word(word)
        if not w or w in _FUNCTION or w in _JOINERS:
            return True
        variants = {w, w.rstrip("s"), w + "s", re.sub(r"ies$", "y", w)}
        if variants & self.words:
            return True
        parts = [p for p in re.split(r"[-&]", word) if p]
        if len(parts) > 1 and all(self.has_word(p) for p in parts):  # "Limited-Edition": limited, edition
            return True
        # a word inside a joined tag or label ("valley" in "spitivalley", "iit" in "montageiitg")
        return len(w) >= 3 and any(w in sq for sq in self.squashed)

    def allows(self, fact: Fact) -> bool:
        if fact.kind == "number":
            return all(int(d) in self.numbers for d in _DIGITS.findall(fact.text))
        words = [m.group() for m in _WORD.finditer(fact.text)]
        if all(self.has_word(w) for w in words):
            return True
        whole = re.sub(r"[\W_]+", "", fact.text.lower(), flags=re.UNICODE)
        return len(whole) >= 3 and any(whole in sq for sq in self.squashed)


def invented_facts(text: str, allowed: Iterable[str] | FactSources) -> list[str]:
    """The facts of ``text`` (names, numbers, dates, times) that none of the ``allowed`` source strings holds,
    in order, each once. ``allowed``: the post's event, labels, concepts, config words, the owner's names and the
    scene's words (:func:`post_sources` assembles them), or a :class:`FactSources` made from them once."""
    src = allowed if isinstance(allowed, FactSources) else FactSources.of(allowed)
    out: list[str] = []
    for f in facts_in(text):
        if not src.allows(f) and f.text not in out:
            out.append(f.text)
    return out


def post_sources(
    event: str | None = None,
    labels: Iterable[str] = (),
    concepts: Iterable[str] = (),
    *,
    config_words: Iterable[str] = (),
    owner_words: Iterable[str] = (),
    scene_words: Iterable[str] = (),
    n_photos: int | None = None,
) -> list[str]:
    """The source strings of one post, for :func:`invented_facts`: its event, labels, visual concepts, the
    config's words (hashtags, openers, known facts), the owner's recurring names (:func:`owner_names`, never a
    single other post's facts), the scene's words (text read in the photos, place, season: filled by the scene
    stage) and the photo count."""
    out = [event or "", *labels, *concepts, *config_words, *owner_words, *scene_words]
    if n_photos is not None:
        out.append(str(n_photos))
    return [s for s in out if s]


def owner_names(texts: Iterable[str], min_texts: int = 3) -> list[str]:
    """Names (never numbers) that at least ``min_texts`` of the owner's texts state: the club, its college, its
    city, its festivals. A name of one past post only ("Spiti Valley", "Sharad Patil") is that post's fact, and
    invented when a text of another post states it; nor are month and weekday names (a date is a post's fact).
    Each name word is returned on its own."""
    count: Counter[str] = Counter()
    for t in texts:
        seen = set()
        for f in facts_in(t):
            if f.kind == "name":
                seen.update(w for w in (_norm_word(m.group()) for m in _WORD.finditer(f.text)) if w)
        count.update(seen)
    return sorted(w for w, n in count.items() if n >= min_texts and w not in _CALENDAR)


def config_words(cfg: CaptionConfig) -> list[str]:
    """The config's words a text may state: the event, hashtags, openers, swipe text and ``known_facts``."""
    tags = [t for ts in cfg.label_hashtags.values() for t in ts]
    return [cfg.event or "", *cfg.base_hashtags, *tags, *cfg.openers, cfg.swipe_text, *cfg.known_facts]
