"""Rendering a run's outputs: posts.json, report.html and one folder per post.

Every file is written atomically. Exported photos are skipped when the post folder already holds the
same source (by content hash) at the same export settings, so a resumed or repeated run redoes nothing.
Post folders are kept within Instagram's limits (photopoet.instagram): photos padded or cropped to 4:5 ..
1.91:1, hashtags capped at 30 and captions cut at a word boundary, each change recorded as a warning in
post.json and shown in the report; what cannot be fixed without the editor (more than 10 photos) is recorded
as an error there, and the publisher refuses that post.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw, ImageFont, ImageOps
from tqdm import tqdm

from photopoet import __version__
from photopoet.config import RenderConfig
from photopoet.core.cache import Cache
from photopoet.core.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    free_name,
    remove_leftover_tmp,
)
from photopoet.core.images import on_white, open_upright
from photopoet.instagram import check_post, fit_aspect, fit_caption, post_kind
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
                "format": u.photo.format,
                "taken_at": u.photo.taken_at,
                "gps": list(u.photo.gps) if u.photo.gps else None,
                "labels": [{"name": lab.name, "score": lab.score} for lab in u.labels],
                "concepts": list(u.concepts),
                "verdict": u.verdict,
                "reason": u.reason,
                "duplicate_of": u.duplicate_of,
                "scene": u.scene.to_dict() if u.scene else None,
            }
            for u in photos
        ],
        "posts": [p.to_json() for p in posts],
        "excluded": [{"path": e.path, "reason": e.reason} for e in excluded],
    }


def _export_photo(src: str, dst: Path, cfg: RenderConfig) -> str | None:
    """Write `src` as an upright JPEG without EXIF, at most `export_size` px, within Instagram's aspect ratios.

    Returns what fit_aspect did (e.g. "padded from 1080x1920 to 4:5"), or None."""
    size = cfg.export_size
    im = open_upright(src, draft=size)
    if im.mode != "RGB":  # an alpha band on white; a palette's transparent entry keeps its colour
        im = on_white(im) if "A" in im.getbands() else im.convert("RGB")
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    im, note = fit_aspect(im, cfg.fit_aspect, cfg.pad_color)
    buf = io.BytesIO()
    # re-encoded from the pixels only: no GPS position, comment or name leaves the machine in an export
    pixels_only(im).save(buf, "JPEG", quality=cfg.jpeg_quality, optimize=True, progressive=True)
    atomic_write_bytes(dst, buf.getvalue())
    return note


_POST_FILES = {f"{n:02d}.jpg" for n in range(100)} | {"montage.jpg", "caption.txt", "post.json"}


def pixels_only(im: Image.Image) -> Image.Image:
    """A copy of `im` with its pixels and nothing else: no EXIF, JPEG comment, XMP, ICC profile or other
    ``info`` that Pillow would write back when saving (a comment may hold a place or a name)."""
    clean = Image.new(im.mode, im.size)
    clean.paste(im)
    return clean


def _grid_shape(n: int) -> tuple[int, int]:
    """(columns, rows) for n tiles: one row up to 3, then the squarest grid."""
    if n <= 3:
        return n, 1
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


def make_montage(images: Sequence[Image.Image], tile: int, max_tiles: int, gap: int, total: int | None = None):
    """A grid of square tiles (centre crops), in post order, cover first.

    When the post holds more photos than `max_tiles` (`total`, default len(images)), the last tile is dimmed
    and says how many more there are ("+3")."""
    total = len(images) if total is None else total
    shown = list(images[: min(max_tiles, len(images))])
    if not shown:
        raise ValueError("a montage needs at least one image")
    cols, rows = _grid_shape(len(shown))
    canvas = Image.new("RGB", (cols * tile + (cols - 1) * gap, rows * tile + (rows - 1) * gap), (255, 255, 255))
    more = total - len(shown)
    for i, img in enumerate(shown):
        t = ImageOps.fit(img.convert("RGB"), (tile, tile), Image.Resampling.LANCZOS)
        if more > 0 and i == len(shown) - 1:
            more += 1  # the last tile is covered by the count, so it counts too
            t = Image.blend(t, Image.new("RGB", t.size, (0, 0, 0)), 0.55)
            draw = ImageDraw.Draw(t)
            font = _font(max(12, tile // 4))
            label = f"+{more}"
            box = draw.textbbox((0, 0), label, font=font)
            draw.text(
                ((tile - (box[2] - box[0])) / 2 - box[0], (tile - (box[3] - box[1])) / 2 - box[1]),
                label,
                fill=(255, 255, 255),
                font=font,
            )
        r, c = divmod(i, cols)
        canvas.paste(t, (c * (tile + gap), r * (tile + gap)))
    return canvas


def _sha_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _instagram_section(n_items: int, text: str, warnings: Sequence[str]) -> dict[str, Any]:
    errors = check_post(n_items, text)
    return {
        "kind": post_kind(n_items),
        "ok": not errors,
        "errors": errors,
        "warnings": list(warnings),
        "caption_chars": len(text),
    }


def write_post_folders(
    out: Path,
    posts: Sequence[Post],
    by_path: dict[str, Understood],
    cfg: RenderConfig,
    *,
    progress: bool = True,
    keep_edited_captions: bool = True,
) -> dict[str, dict[str, Any]]:
    """OUT/posts/<id>/ with 01.jpg ..., montage.jpg, caption.txt and post.json. Folders of earlier runs that no
    longer match a post are moved aside to OUT/posts/.stale/ rather than deleted.

    Each post is brought within Instagram's limits (photos padded or cropped to 4:5 .. 1.91:1, hashtags capped at
    30, the caption cut at a word boundary to fit 2,200 characters), and post.json's "instagram" section records
    what was changed ("warnings") and what still stops it from being published ("errors": more than 10 photos).
    A caption.txt edited by hand since photopoet wrote it is kept (post.json: "caption_edited": true) unless
    `keep_edited_captions` is False; then the edited file is first moved aside to caption.edited-<UTC time>.txt.
    Returns the "instagram" section of each post by id."""
    root = out / "posts"
    root.mkdir(parents=True, exist_ok=True)
    wanted = {p.id for p in posts}
    stale = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in wanted]
    for d in stale:  # never replaced: an earlier stale copy may hold a hand-edited caption.txt
        target = free_name(root / ".stale" / d.name)
        target.parent.mkdir(exist_ok=True)
        os.replace(d, target)
    settings = {
        "export_size": cfg.export_size,
        "jpeg_quality": cfg.jpeg_quality,
        "fit_aspect": cfg.fit_aspect,
        "pad_color": cfg.pad_color,
    }
    montage_settings = {"tile": cfg.montage_tile, "max_tiles": cfg.montage_max_tiles, "gap": cfg.montage_gap}
    total = sum(len(p.photos) for p in posts)
    bar = tqdm(total=total, desc="export", unit="photo", disable=not progress)
    result: dict[str, dict[str, Any]] = {}
    for post in posts:
        d = root / post.id
        remove_leftover_tmp(d, _POST_FILES)  # what a killed export left half-written
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
            if prev and prev.get("sha256") == u.photo.sha256 and (d / name).exists():
                note = prev.get("fit")
            else:
                note = _export_photo(path, d / name, cfg)
            entry: dict[str, Any] = {"file": name, "source": path, "sha256": u.photo.sha256}
            if note:
                entry["fit"] = note
            files.append(entry)
            bar.update(1)
        for extra in d.glob("[0-9][0-9].jpg"):
            if extra.name not in {f["file"] for f in files}:
                extra.unlink()
        montage = {**montage_settings, "sources": [f["sha256"] for f in files]}
        if files and not (old.get("montage") == montage and (d / "montage.jpg").exists()):
            imgs = []
            for f in files[: cfg.montage_max_tiles]:
                with Image.open(d / f["file"]) as im:
                    im.draft("RGB", (cfg.montage_tile * 2, cfg.montage_tile * 2))
                    imgs.append(im.convert("RGB"))
            img = make_montage(imgs, cfg.montage_tile, cfg.montage_max_tiles, cfg.montage_gap, total=len(files))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85, optimize=True)
            atomic_write_bytes(d / "montage.jpg", buf.getvalue())
        elif not files:
            (d / "montage.jpg").unlink(missing_ok=True)

        fitted = fit_caption(post.caption, post.hashtags)
        warnings = list(fitted.warnings)
        warnings += [f"{f['file']}: {f['fit']} (Instagram takes 4:5 to 1.91:1)" for f in files if f.get("fit")]
        text = fitted.text + "\n"
        caption_file = d / "caption.txt"
        edited = False
        if caption_file.exists() and old.get("caption_sha256"):
            try:
                on_disk = caption_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                on_disk = None
            if on_disk is not None and _sha_text(on_disk) != old["caption_sha256"] and on_disk != text:
                if keep_edited_captions:
                    edited = True
                    text = on_disk
                else:
                    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                    os.replace(caption_file, d / f"caption.edited-{stamp}.txt")
        if edited:
            warnings.append("caption.txt was edited by hand: kept as it is (photopoet's caption is in post.json)")
            written_sha = old["caption_sha256"]
        else:
            atomic_write_text(caption_file, text)
            written_sha = _sha_text(text)
        ig = _instagram_section(len(files), text.rstrip("\n"), warnings)
        result[post.id] = ig
        doc = {
            **post.to_json(),
            "caption": fitted.caption,
            "hashtags": fitted.hashtags,
            "files": files,
            "montage_file": "montage.jpg" if files else None,
            "caption_edited": edited,
            "caption_sha256": written_sha,
            "instagram": ig,
            "export": settings,
            "montage": montage,
        }
        atomic_write_json(d / "post.json", doc)
    bar.close()
    return result


def _data_uri(img: Image.Image, size: int) -> str:
    img = pixels_only(img)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _post_folder_info(out: Path, post: Post) -> dict[str, Any] | None:
    """The post.json write_post_folders left for this post, when it still matches the post's photos."""
    f = out / "posts" / post.id / "post.json"
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("photos") == list(post.photos) else None


SCORE_NAMES = {
    "caption_agreement": "caption agreement",
    "haiku_agreement": "haiku agreement",
}


def _post_view(out: Path, post: Post) -> dict[str, Any]:
    """What the report shows of a post: the text as it will be posted and its Instagram check."""
    info = _post_folder_info(out, post)
    fitted = fit_caption(post.caption, post.hashtags)
    caption, hashtags = fitted.caption, fitted.hashtags
    edited = False
    if info and info.get("caption_edited"):
        try:
            text = (out / "posts" / post.id / "caption.txt").read_text(encoding="utf-8").rstrip("\n")
            caption, hashtags, edited = text, [], True
        except (OSError, UnicodeDecodeError):
            pass
    if info and isinstance(info.get("instagram"), dict):
        ig = info["instagram"]
    else:
        ig = _instagram_section(len(post.photos), fitted.text, fitted.warnings)
    scores = [(SCORE_NAMES.get(k, k.replace("_", " ")), v) for k, v in post.scores.items() if v is not None]
    if post.poem and post.poem.get("score") is not None:
        scores.append(("poem score", post.poem["score"]))
    return {
        **post.to_json(),
        "caption": caption,
        "hashtags": hashtags,
        "caption_edited": edited,
        "photos": [{"path": x, "name": Path(x).name} for x in post.photos],
        "instagram": ig,
        "score_list": [(k, f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in scores],
        "folder": f"posts/{post.id}/",
    }


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

    Each post shows its montage, cover and photos, the caption and hashtags as they will be posted, the haiku, the
    poem with its source, the scores and the Instagram check (from OUT/posts/<id>/post.json when
    write_post_folders wrote it, else computed here). `set_aside` are the photos culled from posts (duplicates,
    similar shots, low quality), shown with their reasons."""
    env = Environment(loader=PackageLoader("photopoet", "templates"), autoescape=select_autoescape(["html"]))
    kind = f"report-thumb-v2:{cfg.report_thumb_size}"  # v2: pixels only (v1 could carry a JPEG comment)
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
    montages = _report_montages(posts, by_path, cache, cfg)
    view = [{**_post_view(out, p), "montage": montages.get(p.id)} for p in posts]
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
        n_blocked=sum(1 for v in view if not v["instagram"].get("ok", True)),
        n_warned=sum(1 for v in view if v["instagram"].get("warnings")),
        version=__version__,
        plots=list(plots),
    )
    target = out / "report.html"
    atomic_write_text(target, html)
    return target


REPORT_MONTAGE_TILE = 220  # px per tile in the report: a 3-wide montage is about as wide as a laptop column


def _report_montages(
    posts: Sequence[Post], by_path: dict[str, Understood], cache: Cache, cfg: RenderConfig
) -> dict[str, str]:
    """A montage per post (the layout of montage.jpg, smaller, from the cached working copies) as data URIs,
    cached by the post's photos and the montage settings."""
    tile = min(cfg.montage_tile, REPORT_MONTAGE_TILE)
    gap = max(2, round(cfg.montage_gap * tile / cfg.montage_tile))
    kind = f"report-montage:{tile}:{cfg.montage_max_tiles}:{gap}"
    keys = {}
    for p in posts:
        if p.photos:
            joined = "|".join(by_path[x].photo.sha256 for x in p.photos)
            keys[p.id] = hashlib.sha256(joined.encode("ascii")).hexdigest()
    found: dict[str, str] = cache.get_json(kind, sorted(set(keys.values())))
    new: dict[str, str] = {}
    for p in posts:
        key = keys.get(p.id)
        if key is None or key in found or key in new:
            continue
        imgs = [load_working_copy(cache, by_path[x].photo.sha256) for x in p.photos[: cfg.montage_max_tiles]]
        img = make_montage(imgs, tile, cfg.montage_max_tiles, gap, total=len(p.photos))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        new[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    if new:
        cache.put_json(kind, new)
        found.update(new)
    return {pid: found[k] for pid, k in keys.items() if k in found}


def render(
    posts: Sequence[Post],
    cfg: RenderConfig,
    cache: Cache,
    *,
    out: Path,
    photos: Sequence[Understood],
    excluded: Sequence[Excluded],
    title: str,
    set_aside: Sequence[Understood] = (),
    plots: Sequence[dict] = (),
    progress: bool = True,
) -> Path:
    """The render stage: the post folders (:func:`write_post_folders`), ``posts.json`` (:func:`posts_document`,
    `photos` in their order) and ``report.html`` (:func:`render_report`, from the working copies in `cache`) in
    `out`. Needs, beside the posts, where to write, every photo and excluded file, the report's title, the
    photos set aside and the plots. Returns the report's path."""
    by_path = {u.photo.path: u for u in photos}
    write_post_folders(out, posts, by_path, cfg, progress=progress)
    atomic_write_json(out / "posts.json", posts_document(photos, posts, excluded))
    return render_report(
        out,
        title,
        posts,
        by_path,
        excluded,
        cache,
        cfg,
        n_files=len(photos) + len(excluded),
        set_aside=set_aside,
        plots=plots,
    )
