"""Rendering a run's outputs: posts.json, report.html and one folder per post.

Every file is written atomically. Exported photos are skipped when the post folder already holds the
same source (by content hash) at the same export settings, so a resumed or repeated run redoes nothing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageOps
from tqdm import tqdm

from photopoet import __version__
from photopoet.cache import Cache
from photopoet.config import RenderConfig
from photopoet.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from photopoet.records import Excluded, Post, Understood
from photopoet.stages.ingest import load_working_copy

POSTS_JSON_VERSION = 1


def posts_document(photos: Sequence[Understood], posts: Sequence[Post], excluded: Sequence[Excluded]) -> dict[str, Any]:
    """The `posts.json` document (version 1)."""
    return {
        "version": POSTS_JSON_VERSION,
        "photos": [
            {
                "path": u.photo.path,
                "sha256": u.photo.sha256,
                "width": u.photo.width,
                "height": u.photo.height,
                "taken_at": u.photo.taken_at,
                "gps": list(u.photo.gps) if u.photo.gps else None,
                "labels": [{"name": lab.name, "score": lab.score} for lab in u.labels],
                "concepts": list(u.concepts),
                "verdict": u.verdict,
                "reason": u.reason,
                "duplicate_of": u.duplicate_of,
            }
            for u in photos
        ],
        "posts": [p.to_json() for p in posts],
        "excluded": [{"path": e.path, "reason": e.reason} for e in excluded],
    }


def _export_photo(src: str, dst: Path, size: int, quality: int) -> None:
    with Image.open(src) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))
        im = ImageOps.exif_transpose(im)
        if im.mode != "RGB":
            im = im.convert("RGBA") if "A" in im.getbands() else im.convert("RGB")
            if im.mode == "RGBA":
                bg = Image.new("RGB", im.size, (255, 255, 255))
                bg.paste(im, mask=im.getchannel("A"))
                im = bg
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        # re-encoded without EXIF: no GPS position leaves the machine in an exported photo
        im.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
    atomic_write_bytes(dst, buf.getvalue())


def write_post_folders(
    out: Path,
    posts: Sequence[Post],
    by_path: dict[str, Understood],
    cfg: RenderConfig,
    *,
    progress: bool = True,
) -> None:
    """OUT/posts/<id>/ with 01.jpg ..., caption.txt and post.json. Folders of earlier runs that no longer
    match a post are moved aside to OUT/posts/.stale/ rather than deleted."""
    root = out / "posts"
    root.mkdir(parents=True, exist_ok=True)
    wanted = {p.id for p in posts}
    stale = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in wanted]
    for d in stale:
        target = root / ".stale" / d.name
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(exist_ok=True)
        os.replace(d, target)
    settings = {"export_size": cfg.export_size, "jpeg_quality": cfg.jpeg_quality}
    total = sum(len(p.photos) for p in posts)
    bar = tqdm(total=total, desc="export", unit="photo", disable=not progress)
    for post in posts:
        d = root / post.id
        old: dict[str, Any] = {}
        if (d / "post.json").exists():
            try:
                old = json.loads((d / "post.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = {}
        old_files = {f["file"]: f for f in old.get("files", [])} if old.get("export") == settings else {}
        files = []
        for n, path in enumerate(post.photos, start=1):
            u = by_path[path]
            name = f"{n:02d}.jpg"
            prev = old_files.get(name)
            if not (prev and prev.get("sha256") == u.photo.sha256 and (d / name).exists()):
                _export_photo(path, d / name, cfg.export_size, cfg.jpeg_quality)
            files.append({"file": name, "source": path, "sha256": u.photo.sha256})
            bar.update(1)
        for extra in d.glob("[0-9][0-9].jpg"):
            if extra.name not in {f["file"] for f in files}:
                extra.unlink()
        text = post.caption + ("\n\n" + " ".join(post.hashtags) if post.hashtags else "") + "\n"
        atomic_write_text(d / "caption.txt", text)
        atomic_write_json(d / "post.json", {**post.to_json(), "files": files, "export": settings})
    bar.close()


def _data_uri(img: Image.Image, size: int) -> str:
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_report(
    out: Path,
    title: str,
    posts: Sequence[Post],
    by_path: dict[str, Understood],
    excluded: Sequence[Excluded],
    cache: Cache,
    cfg: RenderConfig,
    n_files: int,
    set_aside: Sequence[Understood] = (),
    plots: Sequence[dict] = (),
) -> Path:
    """A self-contained OUT/report.html: every image inlined, no network needed to open it.

    `set_aside` are the photos culled from posts (duplicates, similar shots, low quality), shown with
    their reasons."""
    env = Environment(loader=PackageLoader("photopoet", "templates"), autoescape=select_autoescape(["html"]))
    kind = f"report-thumb:{cfg.report_thumb_size}"
    shas = sorted(
        {by_path[path].photo.sha256 for post in posts for path in post.photos} | {u.photo.sha256 for u in set_aside}
    )
    uris: dict[str, str] = cache.get_json(kind, shas)
    missing = {s: _data_uri(load_working_copy(cache, s), cfg.report_thumb_size) for s in shas if s not in uris}
    if missing:
        cache.put_json(kind, missing)
        uris.update(missing)
    thumbs = {path: uris[by_path[path].photo.sha256] for post in posts for path in post.photos}
    thumbs.update({u.photo.path: uris[u.photo.sha256] for u in set_aside})
    view = [{**p.to_json(), "photos": [{"path": x, "name": Path(x).name} for x in p.photos]} for p in posts]
    aside = [
        {
            "path": u.photo.path,
            "name": Path(u.photo.path).name,
            "verdict": u.verdict.replace("_", " "),
            "reason": u.reason or "",
            "duplicate_of": Path(u.duplicate_of).name if u.duplicate_of else None,
        }
        for u in set_aside
    ]
    html = env.get_template("report.html").render(
        title=title,
        posts=view,
        thumbs=thumbs,
        excluded=excluded,
        set_aside=aside,
        n_files=n_files,
        n_photos=len(by_path),
        version=__version__,
        plots=list(plots),
    )
    target = out / "report.html"
    atomic_write_text(target, html)
    return target
