"""What a post's posters say: the event as the poster spells it, its edition or year, the date, time and venue.

The OCR lines of a post's scenes (posters first) are read the way a person reads a poster: the largest type is
the title, type of a similar size right beside it continues it, a year set apart ("2025" above "TASVEER") is
its edition, and labelled fields ("Date", "Venue: Mini Auditorium", "Time : 9 PM") give the details. Lines
that only brand the poster (the owner's names, a stoplist of poster boilerplate such as "Presenting" or "Scan
to Register", phone numbers, links) never make a title.

Rules by hand, not a model: the club's 25 transcribed posters (benchmarks/data/poster_text.json) are too few to
train a layout model on, and none ships offline. ``benchmarks/caption_eval.py`` measures what the captions
gain from it on held-out posts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from photopoet.records import PosterFacts, Scene, TextLine

_MONTH = r"(?:jan|feb|febr?uary|feburary|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR_TAIL = r"(?:,?\s*'?\d{2}(?:\d{2})?\b)?"
DATE = re.compile(
    rf"\b{_DAY}\s*(?:[-–]\s*{_DAY}\s*)?(?:of\s+)?{_MONTH}{_YEAR_TAIL}"
    rf"|\b{_MONTH}\s+{_DAY}(?:\s*[-–]\s*{_DAY})?\b{_YEAR_TAIL}"
    r"|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b",
    re.IGNORECASE,
)
TIME = re.compile(
    r"\b\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm)?\s*[-–]\s*\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm)\b"
    r"|\b\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm)\b(?:\s*onwards)?",
    re.IGNORECASE,
)
YEAR = re.compile(r"^(?:19|20)\d{2}$")
_TITLE_YEAR = re.compile(r"^(.*?[A-Za-z].*?)\s*[’'‘]\s*(\d{2})$")  # TASVEER'25
_FIELD = re.compile(r"^\s*(date|dates|time|timing|timings|venue|where|when|deadline)\b\s*[:\-–]?\s*(.*)$", re.I)
_COUNTDOWN = re.compile(r"^\s*\d+\s*(?:more\s+)?(?:day|days|hours?)\b", re.IGNORECASE)  # "5 DAYS (TO GO)"
_PHONE = re.compile(r"(?:\d[\s-]?){8,}")
_LINK = re.compile(r"https?://|www\.|\.(?:com|in|org|net|ly)\b|@\w", re.IGNORECASE)
VENUE_WORDS = re.compile(
    r"\b(?:auditorium|hall|room|ground|grounds|stadium|centre|center|lawn|theatre|theater|gallery|lab|"
    r"amphitheatre|library)\b",
    re.IGNORECASE,
)
# poster boilerplate: never a title
BOILERPLATE = frozenset(
    {
        *("presenting", "presents", "proudly presents", "proudly announces", "announces", "introducing", "and"),
        *("scan to register", "register now", "register", "registration", "link in bio", "follow us"),
        *("for more updates", "stay tuned", "stay tuned for more updates", "contact", "contact us", "by", "as"),
        *("theme of the week", "submission deadline", "winners announcement", "winners announced", "clicking"),
        *("open for all", "prizes worth", "submit at", "last date to register", "coming soon", "save the date"),
        *("join us", "don't miss", "dont miss", "limited seats", "free entry", "entry free", "to go", "day", "days"),
        *("congratulations", "congrats", "the best entries", "best entries", "inviting entries for", "thank you"),
        *("early bird offer", "winners", "results", "coming up", "live now", "now live", "for the theme"),
    }
)


_LONG_BOILERPLATE = ("follow us", "scan to", "register at", "submit at", "contact us", "powered by", "in association")


def norm_text(s: str) -> str:
    """Lower case, punctuation as spaces, single spaces: how poster lines, events and captions are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())


def _font(line: TextLine) -> float:
    """The type size of a line as a share of the frame: its box height, or its width when set vertically."""
    left, top, right, bottom = line.box
    w, h = right - left, bottom - top
    if h > w and len(line.text.strip()) > 1:  # one word set vertically: the box's width is the type size
        return w
    return h


def nice_case(text: str) -> str:
    """ALL-CAPS words of five letters or more in title case ("TASVEER" -> "Tasveer"); acronyms and mixed case
    stay ("IIT", "NEXUS 24" -> "Nexus 24", "EaseMyTrip")."""
    text = " ".join(text.split()).strip("_-–—|·•*~ ")
    return re.sub(r"\b[A-Z]{5,}\b", lambda m: m.group(0).capitalize(), text)


@dataclass(frozen=True)
class _Block:
    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return " ".join(dict.fromkeys(" ".join(t.text.split()) for t in self.lines))  # a line repeated once

    @property
    def top(self) -> float:
        return min(t.box[1] for t in self.lines)

    @property
    def bottom(self) -> float:
        return max(t.box[3] for t in self.lines)

    @property
    def confidence(self) -> float:
        return min(t.confidence for t in self.lines)

    @property
    def font(self) -> float:
        return sorted(_font(t) for t in self.lines)[len(self.lines) // 2]


def _kind(text: str, brand: set[str]) -> str:
    """What one line is: year, date, time, field, junk (brand, boilerplate, phone, link, no words) or words."""
    t = text.strip()
    n = norm_text(t)
    if YEAR.match(t):
        return "year"
    if _FIELD.match(t):
        return "field"
    if DATE.search(t):
        return "date"
    if TIME.search(t):
        return "time"
    letters = sum(c.isalpha() for c in t)
    if letters < 3 or _PHONE.search(t) or _LINK.search(t) or n in BOILERPLATE or n in brand:
        return "junk"
    if any(n.startswith(b + " ") for b in _LONG_BOILERPLATE):  # "Follow us at ..."
        return "junk"
    if sum(c.isdigit() for c in t) > letters or _COUNTDOWN.match(t):
        return "junk"
    return "words"


def _blocks(lines: Sequence[TextLine]) -> list[_Block]:
    """Lines of words merged with the line right below when the type is the same size and they overlap
    across (a title set over two or three lines)."""
    out: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda t: (t.box[1], t.box[0])):
        if out:
            prev = out[-1][-1]
            f, pf = _font(line), _font(prev)
            gap = line.box[1] - prev.box[3]
            overlap = min(line.box[2], prev.box[2]) - max(line.box[0], prev.box[0])
            if abs(f - pf) <= 0.3 * max(f, pf) and -0.5 * pf <= gap <= 1.2 * pf and overlap > 0 and len(out[-1]) < 3:
                out[-1].append(line)
                continue
        out.append([line])
    return [_Block(tuple(b)) for b in out]


def _value_of(label: TextLine, lines: Sequence[TextLine]) -> str | None:
    """The text of a field whose label stands alone: the nearest line just below it that overlaps it across,
    else the nearest line to its right on the same row."""
    left, top, right, bottom = label.box
    h = max(bottom - top, 1e-6)
    below = [
        t
        for t in lines
        if t is not label
        and -0.3 * h <= t.box[1] - bottom <= 3 * h
        and min(t.box[2], right) - max(t.box[0], left) > 0
        and not _FIELD.match(t.text)
    ]
    if below:
        return min(below, key=lambda t: (t.box[1] - bottom, abs(t.box[0] - left))).text
    beside = [
        t
        for t in lines
        if t is not label and t.box[0] >= right - 0.01 and abs((t.box[1] + t.box[3]) / 2 - (top + bottom) / 2) < h
    ]
    if beside and not _FIELD.match(min(beside, key=lambda t: t.box[0]).text):
        return min(beside, key=lambda t: t.box[0]).text
    return None


def _field_values(lines: Sequence[TextLine]) -> dict[str, str]:
    """``date``, ``time``, ``venue``, ``deadline`` from labelled fields: "Venue : Montage Room", or a label
    alone on its line with the value just below it (or beside it)."""
    ordered = sorted(lines, key=lambda t: (round(t.box[1], 2), t.box[0]))
    out: dict[str, str] = {}
    for line in ordered:
        m = _FIELD.match(line.text)
        if not m:
            continue
        label = m.group(1).lower()
        key = {"dates": "date", "when": "date", "timing": "time", "timings": "time", "where": "venue"}.get(label, label)
        value = m.group(2).strip(" :-–") or _value_of(line, ordered) or ""
        if value and key not in out:
            out[key] = " ".join(value.split())
    return out


TITLE_MIN_CONFIDENCE = 0.8  # a misread title is worse than none ("eceecceess", "Guwaat" on the club's feed)
SUBTITLE_MIN_CONFIDENCE = 0.85
_DANGLING = re.compile(r"\b(?:for|from|to|of|by|at|the|a|an|and|with|in|on)$", re.IGNORECASE)


def _vgap(a: _Block, top: float, bottom: float) -> float:
    """Vertical distance between a block and a span (0 when they overlap)."""
    return max(0.0, top - a.bottom, a.top - bottom)


def _contacts(lines: Sequence[TextLine]) -> set[int]:
    """Indexes of the lines of a contact: a phone number and the name right above, below or beside it."""
    out: set[int] = set()
    phones = [t for t in lines if _PHONE.search(t.text)]
    for i, t in enumerate(lines):
        h = max(t.box[3] - t.box[1], 1e-6)
        for ph in phones:
            near = max(0.0, ph.box[1] - t.box[3], t.box[1] - ph.box[3]) <= 1.5 * h
            across = min(t.box[2], ph.box[2]) - max(t.box[0], ph.box[0]) > 0 or abs(t.box[1] - ph.box[1]) < h
            if near and across:
                out.add(i)
    return out


def _read_poster(lines: Sequence[TextLine], brand: set[str]) -> _Read:
    """Title, subtitle, edition and headlines of one poster.

    * A year set apart ("2025") belongs to the block of words nearest to it: that block (often the festival's
      logo, "TASVEER") is the title and the year its edition, and the largest type becomes the subtitle.
    * Otherwise the largest type is the title; when another block is almost as large (a series name over a
      theme: "Chhavi" and "Patterns") the upper one is the title and the lower the subtitle; else a block
      beside the title (within two title heights, type at least a third as large) is the subtitle.
    * Headlines: other confident lines of two or more words in type at least a fifth of the title's (contacts,
      venues and dangling fragments left out), largest first."""
    contacts = _contacts(lines)
    words = [
        t
        for i, t in enumerate(lines)
        if i not in contacts and _kind(t.text, brand) == "words" and t.confidence >= TITLE_MIN_CONFIDENCE
    ]
    if not words:
        return _Read()
    blocks = sorted(_blocks(words), key=lambda b: -b.font)
    head = blocks[0]

    def fits(b: _Block) -> bool:
        t = b.text.strip()
        return b.confidence >= SUBTITLE_MIN_CONFIDENCE and not _DANGLING.search(t) and not VENUE_WORDS.search(t)

    years = [t for t in lines if _kind(t.text, brand) == "year"]
    title_b, sub_b, edition = head, None, None
    m = _TITLE_YEAR.match(head.text)
    if m:  # TASVEER'25
        edition = "'" + m.group(2)
    elif years:
        y = years[0]
        holder = min(blocks, key=lambda b: (_vgap(b, y.box[1], y.box[3]), -b.font))
        if _vgap(holder, y.box[1], y.box[3]) <= 2.0 * max(y.box[3] - y.box[1], 1e-6):
            edition = y.text.strip()
            if holder is not head:
                title_b, sub_b = holder, head
    if sub_b is None:
        peers = [b for b in blocks[1:] if b.font >= 0.8 * head.font and fits(b)]
        if peers and edition is None:
            first, second = sorted([head, peers[0]], key=lambda b: b.top)
            title_b, sub_b = first, second
        else:
            near = [
                b
                for b in blocks[1:]
                if b.font >= 0.35 * head.font and _vgap(b, head.top, head.bottom) <= 2.0 * head.font and fits(b)
            ]
            sub_b = near[0] if near else None
    title = title_b.text
    if m:
        title = m.group(1)
    used = {id(title_b), id(sub_b)}
    heads = [
        b.text
        for b in blocks
        if id(b) not in used and b.font >= 0.2 * head.font and len(b.text.split()) >= 2 and fits(b)
    ]
    subtitle = sub_b.text if sub_b is not None and norm_text(sub_b.text) != norm_text(title) else None
    return _Read(title, subtitle, edition, tuple(heads[:2]))


@dataclass(frozen=True)
class _Read:
    title: str | None = None
    subtitle: str | None = None
    edition: str | None = None
    headlines: tuple[str, ...] = ()


def poster_facts(scenes: Sequence[Scene], brand: Iterable[str] = ()) -> PosterFacts | None:
    """The facts a post's posters state (None when no photo of it has text). The title and its edition come
    from the posters only (text read in a photograph, a sign or a T-shirt, is too often misread or beside the
    point); the date, time and venue from any photo's labelled fields, posters first.

    `brand`: names that only brand a poster in this run (the owner's names, lines on most of the run's
    posters): never the title."""
    brand_n = {norm_text(b) for b in brand if b.strip()}
    posters = [s for s in scenes if s.kind == "poster" and s.text]
    photos = [s for s in scenes if s.kind == "photo" and s.text]
    if not posters and not photos:
        return None
    read = _Read()
    fields: dict[str, str] = {}
    dates: list[str] = []
    times: list[str] = []
    venues: list[str] = []
    for s in [*posters, *photos]:
        lines = [t for t in s.text if t.text.strip()]
        is_poster = s.kind == "poster"
        for k, v in _field_values(lines).items():
            fields.setdefault(k, v)
        for t in lines:
            kind = _kind(t.text, brand_n)
            if kind in ("date", "time", "words") and is_poster:
                dates += [m.group(0).strip() for m in DATE.finditer(t.text)]
                times += [m.group(0).strip() for m in TIME.finditer(t.text)]
            if kind == "words" and is_poster and VENUE_WORDS.search(t.text) and "(" not in t.text:
                venues.append(" ".join(t.text.split()))
        if read.title is None and is_poster:
            read = _read_poster(lines, brand_n)
    title, subtitle = read.title, read.subtitle
    if title is None and not fields and not dates and not times:
        return PosterFacts(words=_words(scenes))
    date = fields.get("date") or next(iter(dates), None)
    time = fields.get("time") or next(iter(times), None)
    if time is not None and date is not None and norm_text(time) in norm_text(date):
        time = None
    venue = fields.get("venue") or next(iter(venues), None)
    if venue is not None and title is not None and norm_text(venue) == norm_text(title):
        venue = None
    return PosterFacts(
        title=nice_case(title) if title else None,
        edition=read.edition,
        subtitle=nice_case(subtitle) if subtitle else None,
        headlines=tuple(nice_case(h) for h in read.headlines),
        date=date,
        time=time,
        venue=nice_case(venue) if venue else None,
        deadline=fields.get("deadline"),
        words=_words(scenes),
    )


def _words(scenes: Sequence[Scene]) -> tuple[str, ...]:
    """Every line read in the post's photos (facts a text may state)."""
    return tuple(dict.fromkeys(" ".join(t.text.split()) for s in scenes for t in s.text if t.text.strip()))


def brand_lines(posts_scenes: Sequence[Sequence[Scene]], share: float = 0.5, min_posts: int = 3) -> set[str]:
    """Lines of words read on the posters of at least `min_posts` posts and at least `share` of the posts with
    posters: the owner's logo and sponsors, not a title. (An event name on a few posts of a run stays.)"""
    seen: Counter[str] = Counter()
    with_posters = 0
    for scenes in posts_scenes:
        lines = {norm_text(t.text) for s in scenes if s.kind == "poster" for t in s.text if t.text.strip()}
        lines = {n for n in lines if n and not YEAR.match(n) and not DATE.search(n)}
        with_posters += bool(lines)
        seen.update(lines)
    need = max(min_posts, share * with_posters)
    return {n for n, c in seen.items() if c >= need}


__all__ = ["BOILERPLATE", "DATE", "TIME", "brand_lines", "nice_case", "norm_text", "poster_facts"]
