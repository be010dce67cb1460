"""Instagram's limits on a feed post, shared by the post export (render) and the publisher.

The figures are Instagram's documented ones for the Content Publishing API
(https://developers.facebook.com/docs/instagram-platform/content-publishing/, "Limitations"): captions of at most
2,200 characters, 30 hashtags and 20 @ tags; a carousel of 2 to 10 items; JPEG images of at most 8 MB with an
aspect ratio between 4:5 and 1.91:1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from PIL import Image

MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_CAROUSEL = 10
MIN_ASPECT = 4 / 5  # width / height, the tallest portrait Instagram takes
MAX_ASPECT = 1.91  # the widest landscape
MAX_IMAGE_BYTES = 8 * 1024 * 1024
ELLIPSIS = "\u2026"

_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)", re.UNICODE)
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.]+)")


def hashtags_in(text: str) -> list[str]:
    """The #hashtags in `text`, in order (as Instagram counts them: # followed by letters, digits or _)."""
    return ["#" + m for m in _HASHTAG.findall(text)]


def mentions_in(text: str) -> list[str]:
    return ["@" + m for m in _MENTION.findall(text)]


def caption_text(caption: str, hashtags: list[str]) -> str:
    """The text posted: the caption, a blank line, the hashtags (what caption.txt holds, without its final newline)."""
    caption = caption.strip()
    tags = " ".join(hashtags)
    if caption and tags:
        return f"{caption}\n\n{tags}"
    return caption or tags


def _trim_at_word(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    cut = text[: limit - 1]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= limit // 2:  # a word boundary not too far back; else cut inside the (very long) word
        cut = cut[:space]
    return cut.rstrip(" \n,;:-\u2013\u2014") + ELLIPSIS


@dataclass
class FittedCaption:
    caption: str
    hashtags: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return caption_text(self.caption, self.hashtags)


def fit_caption(caption: str, hashtags: list[str]) -> FittedCaption:
    """Bring a generated caption and its hashtags within Instagram's limits, saying what was changed.

    Hashtags beyond 30 (counting those inside the caption text) are dropped from the end of the list (the list
    is ordered most important first: the club's, the event's, then the labels'); a caption that would push the
    posted text past 2,200 characters is cut at a word boundary with an ellipsis."""
    warnings: list[str] = []
    tags = list(hashtags)
    in_text = len(hashtags_in(caption))
    room = max(0, MAX_HASHTAGS - in_text)
    if len(tags) > room:
        dropped = tags[room:]
        tags = tags[:room]
        warnings.append(
            f"hashtags capped at {MAX_HASHTAGS} (Instagram's limit): dropped {len(dropped)}: {' '.join(dropped)}"
        )
    if in_text > MAX_HASHTAGS:
        warnings.append(f"the caption text itself holds {in_text} hashtags; Instagram allows {MAX_HASHTAGS}")
    tag_block = " ".join(tags)
    while tags and len(tag_block) + 2 > MAX_CAPTION_CHARS - min(len(caption.strip()), 200):
        tags.pop()  # absurdly long tags: keep room for the caption's start
        tag_block = " ".join(tags)
    budget = MAX_CAPTION_CHARS - (len(tag_block) + 2 if tags else 0)
    text = caption.strip()
    if len(text) > budget:
        trimmed = _trim_at_word(text, budget)
        warnings.append(
            f"caption trimmed from {len(text)} to {len(trimmed)} characters at a word boundary: with the hashtags "
            f"Instagram allows {MAX_CAPTION_CHARS}"
        )
        text = trimmed
    n_mentions = len(mentions_in(text))
    if n_mentions > MAX_MENTIONS:
        warnings.append(f"{n_mentions} @mentions: Instagram allows {MAX_MENTIONS}; remove some before publishing")
    return FittedCaption(text, tags, warnings)


def post_kind(n_items: int) -> str:
    return "image" if n_items == 1 else "carousel"


def check_post(n_items: int, text: str) -> list[str]:
    """What stops a post from being published as it is (empty when it can go): item count and caption limits."""
    errors: list[str] = []
    if n_items == 0:
        errors.append("the post has no photos")
    elif n_items > MAX_CAROUSEL:
        errors.append(
            f"{n_items} photos: an Instagram carousel holds at most {MAX_CAROUSEL}; move {n_items - MAX_CAROUSEL} "
            "to another post or leave them out"
        )
    if len(text) > MAX_CAPTION_CHARS:
        errors.append(f"caption of {len(text)} characters: Instagram allows {MAX_CAPTION_CHARS}")
    n_tags = len(hashtags_in(text))
    if n_tags > MAX_HASHTAGS:
        errors.append(f"{n_tags} hashtags: Instagram allows {MAX_HASHTAGS}")
    n_mentions = len(mentions_in(text))
    if n_mentions > MAX_MENTIONS:
        errors.append(f"{n_mentions} @mentions: Instagram allows {MAX_MENTIONS}")
    return errors


def aspect_ok(width: int, height: int) -> bool:
    # a pixel of slack: rounding when resizing must not turn an exact 4:5 into a refusal
    return width > 0 and height > 0 and MIN_ASPECT * height - 1 <= width <= MAX_ASPECT * height + 1


def fit_aspect(img: Image.Image, mode: str, color: str = "#ffffff") -> tuple[Image.Image, str | None]:
    """`img` brought within 4:5 .. 1.91:1 by padding (nothing of the photo is lost) or a centre crop.

    Returns the image and a note of what was done (None when it already fitted or `mode` is "none")."""
    w, h = img.size
    if mode == "none" or aspect_ok(w, h):
        return img, None
    ratio = w / h
    target = MIN_ASPECT if ratio < MIN_ASPECT else MAX_ASPECT
    if mode == "crop":
        if ratio < MIN_ASPECT:  # too tall: keep the full width
            nh = round(w / target)
            top = (h - nh) // 2
            return img.crop((0, top, w, top + nh)), f"cropped from {w}x{h} to 4:5"
        nw = round(h * target)
        left = (w - nw) // 2
        return img.crop((left, 0, left + nw, h)), f"cropped from {w}x{h} to 1.91:1"
    size = (round(h * target), h) if ratio < MIN_ASPECT else (w, round(w / target))
    canvas = Image.new("RGB", size, color)
    canvas.paste(img, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas, f"padded from {w}x{h} to {'4:5' if ratio < MIN_ASPECT else '1.91:1'}"
