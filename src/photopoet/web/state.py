"""The review: the posts as the editor leaves them, in OUT/review.json.

The file is created from a run's OUT/posts.json and rewritten atomically (fsutil) after every change, with a
revision number that goes up by one each time, so a reload or a server restart loses nothing.

What a rerun does to edits: a review belongs to the posts.json it was made from (its sha256 is kept in the
review). A new run started from the web UI first archives the review to OUT/review-history/ and then starts
a fresh one. A run made outside the UI (``photopoet run`` into the same OUT) leaves review.json alone; the
review page then says posts.json changed and lets the editor keep the edits or start over (the edits are
archived either way, never silently dropped).

Every photo of a run is in exactly one place: the ordered photos of a post (the first is the cover),
the photos excluded from a post (kept with it, so they can be put back), or ``aside`` (set aside by the
cull stage and not used in any post).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from photopoet.core.files import atomic_write_json
from photopoet.core.files import file_sha256 as core_file_sha256
from photopoet.errors import ReviewError
from photopoet.records import Label, Photo, Post, PostScene, Scene, Understood

REVIEW_FORMAT = "photopoet-review"
REVIEW_VERSION = 1
MAX_HASHTAGS = 30  # Instagram's limit
MAX_CAPTION_CHARS = 2200  # Instagram's limit, hashtags included


def file_sha256(path: Path) -> str | None:
    """The file's SHA-256 (:func:`photopoet.core.files.file_sha256`), None when it cannot be read."""
    try:
        return core_file_sha256(path)
    except OSError:
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_hashtags(text: str) -> list[str]:
    """Hashtags typed by the editor: separated by spaces, commas or new lines, '#' optional, case-insensitive
    duplicates dropped. A tag may hold letters, digits and underscores only."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in re.split(r"[\s,]+", text or ""):
        body = raw.strip().lstrip("#")
        if not body:
            continue
        if not re.fullmatch(r"\w+", body, flags=re.UNICODE):
            raise ReviewError(f"hashtag {raw!r}: only letters, digits and _ may follow the #")
        if body.lower() not in seen:
            seen.add(body.lower())
            out.append("#" + body)
    if len(out) > MAX_HASHTAGS:
        raise ReviewError(f"{len(out)} hashtags: Instagram allows at most {MAX_HASHTAGS}")
    return out


def review_from_posts_json(out: Path, photos_dir: Path | str, event: str, plots: list | None = None) -> dict[str, Any]:
    """A fresh review of the run in OUT/posts.json."""
    pj = out / "posts.json"
    try:
        doc = json.loads(pj.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReviewError(f"{pj}: cannot read the run's posts ({e})") from None
    photos = {p["path"]: p for p in doc.get("photos", [])}
    posts = []
    used: set[str] = set()
    for p in doc.get("posts", []):
        posts.append(
            {
                "id": p["id"],
                "photos": list(p["photos"]),
                "cover": p["photos"][0] if p["photos"] else None,
                "excluded": [],
                "caption": p.get("caption", ""),
                "hashtags": list(p.get("hashtags", [])),
                "haiku": p.get("haiku"),
                "poem": p.get("poem"),
                "scores": dict(p.get("scores", {})),
                "labels": list(p.get("labels", [])),
                "caption_mode": p.get("caption_mode"),
                "edited": [],
                "attempts": {},
                "poems_seen": [p["poem"]["text"]] if p.get("poem") else [],
            }
        )
        used.update(p["photos"])
    return {
        "format": REVIEW_FORMAT,
        "version": REVIEW_VERSION,
        "revision": 0,
        "created_at": _now(),
        "updated_at": _now(),
        "photos_dir": str(photos_dir),
        "event": event,
        "source_sha256": file_sha256(pj),
        "photos": photos,
        "posts": posts,
        "aside": [path for path in photos if path not in used],
        "excluded_files": list(doc.get("excluded", [])),
        "plots": list(plots or []),
        "exported": None,
        "next_post": 1,
    }


class ReviewStore:
    """OUT/review.json behind a lock: every change is load, apply, check, save (atomically)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out / "review.json"
        self._lock = threading.RLock()
        self._doc: dict[str, Any] | None = None
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file `_doc` was read from

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    # -- reading and writing ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        """The review, or None when there is none yet. A damaged file is reported, never overwritten."""
        with self._lock:
            stamp = self._file_stamp()
            if self._doc is not None and stamp == self._stamp:
                return self._doc
            self._doc = None  # changed on disk (or gone) since it was read: read it again
            if stamp is None:
                return None
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ReviewError(
                    f"{self.path}: cannot read the saved review ({e}); move it aside to start a new one"
                ) from None
            if not isinstance(doc, dict) or doc.get("format") != REVIEW_FORMAT:
                raise ReviewError(f"{self.path}: not a photopoet review file; move it aside to start a new one")
            if doc.get("version") != REVIEW_VERSION:
                raise ReviewError(
                    f"{self.path}: review version {doc.get('version')} is not supported by this photopoet "
                    f"(it reads version {REVIEW_VERSION})"
                )
            self._doc, self._stamp = doc, stamp
            return doc

    def _save(self, doc: dict[str, Any]) -> None:
        doc["revision"] = int(doc.get("revision", 0)) + 1
        doc["updated_at"] = _now()
        atomic_write_json(self.path, doc)
        self._doc, self._stamp = doc, self._file_stamp()

    def start(self, doc: dict[str, Any]) -> None:
        """Replace the review with a fresh one; an existing review is archived first."""
        with self._lock:
            self.archive()
            self._doc = None
            self._save(doc)

    def archive(self) -> Path | None:
        """Copy review.json to OUT/review-history/review-<UTC time>.json (when there is one)."""
        with self._lock:
            if not self.path.is_file():
                return None
            hist = self.out / "review-history"
            hist.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = hist / f"review-{stamp}.json"
            n = 1
            while target.exists():
                n += 1
                target = hist / f"review-{stamp}-{n}.json"
            shutil.copy2(self.path, target)
            return target

    def discard(self) -> Path | None:
        """Archive the review and remove it (the next page load starts a fresh one)."""
        with self._lock:
            target = self.archive()
            self.path.unlink(missing_ok=True)
            self._doc, self._stamp = None, None
            return target

    def change(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply `fn` to a copy of the review and save it; a ReviewError leaves the saved review as it was."""
        with self._lock:
            doc = self.load()
            if doc is None:
                raise ReviewError("there is no review yet: run photopoet on a folder first")
            work = json.loads(json.dumps(doc))
            result = fn(work)
            check_consistent(work)
            self._save(work)
            return result

    # -- queries ---------------------------------------------------------------------------------------

    def posts_json_changed(self) -> bool:
        doc = self.load()
        if doc is None:
            return False
        return file_sha256(self.out / "posts.json") != doc.get("source_sha256")


# -- edits: functions of the review document ------------------------------------------------------------


def find_post(doc: dict[str, Any], post_id: str) -> dict[str, Any]:
    for p in doc["posts"]:
        if p["id"] == post_id:
            return p
    raise ReviewError(f"no post {post_id!r} in this review (reload the page)")


def _take(doc: dict[str, Any], path: str) -> None:
    """Remove `path` from wherever it is (a post's photos, a post's excluded photos, or the set-aside list)."""
    if path not in doc["photos"]:
        raise ReviewError(f"{path}: not a photo of this run")
    for p in doc["posts"]:
        if path in p["photos"]:
            p["photos"].remove(path)
            _fix_cover(p)
            return
        if path in p["excluded"]:
            p["excluded"].remove(path)
            return
    if path in doc["aside"]:
        doc["aside"].remove(path)
        return
    raise ReviewError(f"{path}: not found in any post")


def _fix_cover(post: dict[str, Any]) -> None:
    post["cover"] = post["photos"][0] if post["photos"] else None


def _touched(post: dict[str, Any], what: str) -> None:
    if what not in post["edited"]:
        post["edited"].append(what)


def exclude_photo(doc: dict[str, Any], post_id: str, path: str) -> None:
    post = find_post(doc, post_id)
    if path not in post["photos"]:
        raise ReviewError(f"{Path(path).name} is not among the photos of post {post_id}")
    post["photos"].remove(path)
    post["excluded"].append(path)
    _fix_cover(post)
    _touched(post, "photos")


def include_photo(doc: dict[str, Any], post_id: str, path: str) -> None:
    post = find_post(doc, post_id)
    if path not in post["excluded"]:
        raise ReviewError(f"{Path(path).name} is not excluded from post {post_id}")
    if len(post["photos"]) >= 10:
        raise ReviewError(f"post {post_id} already has 10 photos, Instagram's most for a carousel")
    post["excluded"].remove(path)
    post["photos"].append(path)
    _fix_cover(post)
    _touched(post, "photos")


def move_photo(doc: dict[str, Any], path: str, to: str) -> str:
    """Move a photo to the end of post `to` (or to a new post when `to` is "new"); returns the target's id."""
    if to == "new":
        n = int(doc.get("next_post", 1))
        ids = {p["id"] for p in doc["posts"]}
        while f"new-{n}" in ids:
            n += 1
        doc["next_post"] = n + 1
        target = {
            "id": f"new-{n}",
            "photos": [],
            "cover": None,
            "excluded": [],
            "caption": "",
            "hashtags": [],
            "haiku": None,
            "poem": None,
            "scores": {},
            "labels": [],
            "caption_mode": None,
            "edited": [],
            "attempts": {},
            "poems_seen": [],
        }
    else:
        target = find_post(doc, to)
        if path in target["photos"]:
            raise ReviewError(f"{Path(path).name} is already in post {to}")
        if len(target["photos"]) >= 10:
            raise ReviewError(f"post {to} already has 10 photos, Instagram's most for a carousel")
    for p in doc["posts"]:
        if path in p["photos"] or path in p["excluded"]:
            _touched(p, "photos")
    _take(doc, path)
    if to == "new":
        doc["posts"].append(target)
    target["photos"].append(path)
    _fix_cover(target)
    _touched(target, "photos")
    return target["id"]


def reorder_photo(doc: dict[str, Any], post_id: str, path: str, delta: int) -> None:
    """Move a photo `delta` places (negative: towards the front); the first photo is the cover."""
    post = find_post(doc, post_id)
    if path not in post["photos"]:
        raise ReviewError(f"{Path(path).name} is not among the photos of post {post_id}")
    i = post["photos"].index(path)
    j = max(0, min(len(post["photos"]) - 1, i + delta))
    post["photos"].insert(j, post["photos"].pop(i))
    _fix_cover(post)
    _touched(post, "photos")


def set_cover(doc: dict[str, Any], post_id: str, path: str) -> None:
    """Make `path` the cover: it moves to the front (Instagram shows a carousel's first item as its cover)."""
    post = find_post(doc, post_id)
    if path not in post["photos"]:
        raise ReviewError(f"{Path(path).name} is not among the photos of post {post_id}")
    post["photos"].remove(path)
    post["photos"].insert(0, path)
    _fix_cover(post)
    _touched(post, "photos")


def edit_text(doc: dict[str, Any], post_id: str, caption: str, hashtags: str) -> None:
    post = find_post(doc, post_id)
    caption = (caption or "").replace("\r\n", "\n").strip()
    tags = parse_hashtags(hashtags)
    total = len(caption) + (2 + len(" ".join(tags)) if tags else 0)
    if total > MAX_CAPTION_CHARS:
        raise ReviewError(
            f"caption and hashtags come to {total} characters: Instagram allows at most {MAX_CAPTION_CHARS}"
        )
    if caption != post["caption"]:
        post["caption"] = caption
        post["caption_mode"] = "edited"
        _touched(post, "caption")
    if tags != post["hashtags"]:
        post["hashtags"] = tags
        _touched(post, "hashtags")


def delete_empty_post(doc: dict[str, Any], post_id: str) -> None:
    post = find_post(doc, post_id)
    if post["photos"] or post["excluded"]:
        raise ReviewError(f"post {post_id} still holds photos; move or exclude them first")
    doc["posts"].remove(post)


def check_consistent(doc: dict[str, Any]) -> None:
    """Every photo of the run in exactly one place; covers first; at most 10 photos a post."""
    seen: dict[str, str] = {}
    for p in doc["posts"]:
        for paths in (p["photos"], p["excluded"]):
            for x in paths:
                if x in seen:
                    raise ReviewError(f"{x} is in two places ({seen[x]} and post {p['id']})")
                seen[x] = f"post {p['id']}"
        if len(p["photos"]) > 10:
            raise ReviewError(f"post {p['id']} would hold {len(p['photos'])} photos; Instagram allows 10")
        if p["photos"] and p["cover"] != p["photos"][0]:
            raise ReviewError(f"post {p['id']}: the cover must be the first photo")
    for x in doc["aside"]:
        if x in seen:
            raise ReviewError(f"{x} is in two places")
        seen[x] = "aside"
    missing = set(doc["photos"]) - set(seen)
    if missing:
        raise ReviewError(f"{sorted(missing)[0]} went missing from the review")


# -- from the review to the records the render stage takes --------------------------------------------------


def understood_of(entry: dict[str, Any]) -> Understood:
    """A posts.json photo entry as the record the render stage takes (format and size are not in posts.json)."""
    gps = entry.get("gps")
    photo = Photo(
        path=entry["path"],
        sha256=entry["sha256"],
        width=int(entry.get("width") or 0),
        height=int(entry.get("height") or 0),
        format=str(entry.get("format") or ""),
        size_bytes=int(entry.get("size_bytes") or 0),
        taken_at=entry.get("taken_at"),
        gps=(float(gps[0]), float(gps[1])) if gps else None,
    )
    return Understood(
        photo=photo,
        labels=tuple(Label(x["name"], float(x["score"])) for x in entry.get("labels", [])),
        concepts=tuple(entry.get("concepts", [])),
        verdict=entry.get("verdict", "keep"),
        reason=entry.get("reason"),
        duplicate_of=entry.get("duplicate_of"),
        scene=Scene.from_dict(entry["scene"]) if entry.get("scene") else None,
    )


def post_scene(p: dict[str, Any], photos: dict[str, dict[str, Any]]) -> PostScene | None:
    """The summary of the scenes of the photos now in review post `p` (None when none has a scene)."""
    scenes = [Scene.from_dict(photos[x]["scene"]) for x in p["photos"] if x in photos and photos[x].get("scene")]
    return PostScene.of(scenes) if scenes else None


def post_record(p: dict[str, Any], photos: dict[str, dict[str, Any]] | None = None) -> Post:
    """A review post as the record the render stage takes; with the review's `photos`, its scene summary is
    made from the photos now in it."""
    return Post(
        id=p["id"],
        photos=list(p["photos"]),
        cover=p["cover"] or (p["photos"][0] if p["photos"] else ""),
        caption=p.get("caption", ""),
        hashtags=list(p.get("hashtags", [])),
        haiku=p.get("haiku"),
        poem=p.get("poem"),
        scores=dict(p.get("scores", {})),
        labels=list(p.get("labels", [])),
        caption_mode=p.get("caption_mode"),
        scene=post_scene(p, photos) if photos is not None else None,
    )
