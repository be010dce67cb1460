"""Template captions: deterministic, from the config's openers, the event name and the post's labels."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from photopoet.config import CaptionConfig
from photopoet.records import Post, PostScene, Understood
from photopoet.stages.write.poster import norm_text

# Folder names that say where photos are kept, not what they show: never an event ("Highlights from images.")
GENERIC_FOLDERS = frozenset(
    {
        *("images", "image", "imgs", "img", "photos", "photo", "pictures", "picture", "pics", "pic", "dcim"),
        *("camera", "camera roll", "export", "exports", "exported", "upload", "uploads", "uploaded", "download"),
        *("downloads", "new folder", "untitled folder", "raw", "jpg", "jpeg", "selects", "selected", "edited"),
        *("edits", "final", "finals", "out", "output", "originals"),
    }
)
_CAMERA_FOLDER = re.compile(r"^\d{3}[A-Z0-9_]{5}$", re.IGNORECASE)  # DCF camera folders: 100CANON, 101MSDCF


def event_from_folder(photos_dir: Path, levels: int = 2) -> str | None:
    """The event a photo folder is named after: its own name, or, while that is a generic name ("images",
    "DCIM", "100CANON"), its parent's (up to ``levels`` steps up, never past the home folder); None when
    every name on the way is generic."""
    d = photos_dir.resolve()
    home = Path.home().resolve()
    for _ in range(levels + 1):
        name = " ".join(d.name.replace("_", " ").split())
        if not name or d == home:
            return None
        if name.lower() not in GENERIC_FOLDERS and not _CAMERA_FOLDER.match(d.name):
            return d.name
        d = d.parent
    return None


def _event_tag(event: str) -> str:
    words = re.findall(r"[^\W_]+", event, flags=re.UNICODE)
    return "#" + "".join(w[:1].upper() + w[1:] for w in words) if words else ""


def _normalise_tag(tag: str) -> str:
    tag = tag.strip()
    body = re.sub(r"[^\w]", "", tag.lstrip("#"), flags=re.UNICODE)
    return "#" + body if body else ""


def hashtags_for(
    labels: Sequence[str], event: str | None, cfg: CaptionConfig, scene: PostScene | None = None
) -> list[str]:
    """Base tags, then the event tag, the event its poster names and its city (from the `scene`), then each
    label's tags; case-insensitive dedupe, capped."""
    raw: list[str] = list(cfg.base_hashtags)
    if event:
        raw.append(_event_tag(event))
    if scene is not None:
        read = scene.poster.event() if scene.poster is not None else None
        if read:
            raw.append(_event_tag(read))
        if scene.place is not None and scene.place.city:
            raw.append(_event_tag(scene.place.city))
    for label in labels:
        raw.extend(cfg.label_hashtags.get(label, []))
    out: list[str] = []
    seen: set[str] = set()
    for t in raw:
        t = _normalise_tag(t)
        if t and t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return out[: cfg.max_hashtags]


def post_labels(members: Sequence[Understood], k: int = 3, min_share: float = 0.5) -> list[str]:
    """Labels that are the best label of at least `min_share` of the post's photos, most frequent first
    (ties: by summed score, then name). Uncalibrated second and third labels are too often wrong to print
    in a caption, so only each photo's best label counts; a post with no clear label gets none."""
    counts: Counter[str] = Counter()
    weight: Counter[str] = Counter()
    for u in members:
        if u.labels:
            best = max(u.labels, key=lambda lab: lab.score)
            counts[best.name] += 1
            weight[best.name] += best.score
    need = min_share * len(members)
    ranked = sorted((n for n in counts if counts[n] >= need), key=lambda n: (-counts[n], -weight[n], n))
    return ranked[:k]


_TRAILING_PREPOSITION = re.compile(r"\s+(?:from|of|at|in|on|during)$", re.IGNORECASE)


def with_swipe_hint(text: str, n_photos: int, cfg: CaptionConfig) -> str:
    """``text`` plus the configured swipe hint when the post is a carousel (2+ photos) and the hint is on."""
    if cfg.swipe_hint and n_photos > 1 and cfg.swipe_text.strip():
        return f"{text} {cfg.swipe_text.strip()}"
    return text


def template_caption(
    post_id: str, labels: Sequence[str], event: str | None, n_photos: int, cfg: CaptionConfig, *, swipe: bool = True
) -> str:
    """Opener (picked by the post id: varies between posts, never between runs), event, up to three labels.

    Without an event the opener's trailing preposition is dropped ("Highlights from" -> "Highlights")."""
    pick = int(hashlib.sha1(post_id.encode()).hexdigest(), 16) % len(cfg.openers)
    opener = " ".join(cfg.openers[pick].split())
    event = " ".join((event or "").split())
    text = f"{opener} {event}" if event else _TRAILING_PREPOSITION.sub("", opener)
    labels = [" ".join(lab.split()) for lab in labels if lab and lab.strip()]
    if labels:
        text += ": " + ", ".join(labels[:3])
    text = text.rstrip(".") + "."
    return with_swipe_hint(text, n_photos, cfg) if swipe else text


def caption_event(event: str | None, scene: PostScene | None) -> str | None:
    """The event a caption names. With a poster read: as the poster spells it, with what it is about
    ("Tasveer 2025: Photography Competition, Prizes Worth 30k"), after the folder's or user's `event` when that
    says something else ("Spring week — Tasveer 2025: ..."). Without one: `event`."""
    poster = scene.poster if scene is not None else None
    read = poster.event() if poster is not None else None
    if poster is None or not read:
        return event
    rest = [x for x in (poster.subtitle, *poster.headlines[:1]) if x and norm_text(x) not in norm_text(read)]
    text = f"{read}: {', '.join(rest)}" if rest else read
    if event and norm_text(event) not in norm_text(text) and norm_text(read) not in norm_text(event):
        text = f"{' '.join(event.split())} \u2014 {text}"
    return text


def scene_clause(scene: PostScene | None) -> str:
    """What the photographs show beyond their labels, as a short sentence: "After dark in Guwahati." ("" when
    the scene knows neither the light nor the place; posters-only posts get none)."""
    if scene is None or scene.posters >= scene.photos:
        return ""
    when = {"night": "after dark", "golden hour": "in the golden hour"}.get(scene.light or "")
    where = f"in {scene.place.city}" if scene.place is not None and scene.place.city else None
    text = " ".join(x for x in (when, where) if x)
    return (text[:1].upper() + text[1:] + ".") if text else ""


def scene_caption(
    post_id: str,
    labels: Sequence[str],
    event: str | None,
    n_photos: int,
    cfg: CaptionConfig,
    scene: PostScene | None,
    *,
    swipe: bool = True,
) -> str:
    """The template caption with what the scene saw: a post with a poster names the event as the poster spells
    it and its date, time and venue ("Tasveer 2025: Fashion Photography Workshop. 15th Feb | 2pm - 4pm | Mini
    Auditorium."); a post of photographs says when and where when the scene knows ("... After dark in
    Guwahati."). Without a scene, :func:`template_caption`."""
    poster = scene.poster if scene is not None else None
    if poster is not None and poster.event():
        head = (caption_event(event, scene) or "").rstrip(".") + "."
        details = poster.details()
        text = f"{head} {details}." if details else head
        if scene is not None and scene.photos > scene.posters and labels:
            text += " " + ", ".join(labels[:3]).capitalize() + "."
    else:
        text = template_caption(post_id, labels, event, n_photos, cfg, swipe=False)
        clause = scene_clause(scene)
        if clause:
            text = f"{text} {clause}"
    return with_swipe_hint(text, n_photos, cfg) if swipe else text


def template_words(members: Sequence[Understood], k: int = 3) -> list[str]:
    """What a template caption names when no label is the best label of half the post's photos: the plain
    concepts of its photos (each photo's first two, in order; never ImageNet jargon), at most `k`."""
    return list(dict.fromkeys(c for u in members for c in u.concepts[:2]))[:k]


def write_templates(
    posts: Sequence[Post], by_path: dict[str, Understood], event: str | None, cfg: CaptionConfig
) -> list[Post]:
    out = []
    for p in posts:
        members = [by_path[path] for path in p.photos]
        labels = post_labels(members)
        named = labels or template_words(members)
        out.append(
            Post(
                id=p.id,
                photos=list(p.photos),
                cover=p.cover,
                caption=scene_caption(p.id, named, event, len(p.photos), cfg, p.scene),
                hashtags=hashtags_for(labels, event, cfg, p.scene),
                haiku=p.haiku,
                poem=p.poem,
                scores=dict(p.scores),
                labels=labels,
                caption_mode="template",
                scene=p.scene,
            )
        )
    return out
