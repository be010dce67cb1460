"""Files: review thumbnails, the photos under the photo root and the outputs, each checked by
:func:`photopoet.web.safety.safe_path` and served with headers that keep them from running script in the app's
origin.

The handlers are plain functions: FastAPI runs them in worker threads, so image work never blocks the loop.
"""

from __future__ import annotations

import io
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from PIL import Image, ImageOps
from starlette.exceptions import HTTPException as StarletteHTTPException

from photopoet.config import Config
from photopoet.errors import UnsafePath
from photopoet.web.context import THUMB_CACHE_SIZE, Ctx, UserError
from photopoet.web.safety import safe_path, within

router = APIRouter()

SERVED_OUT_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".html", ".json", ".txt"}
# served files (the user's photos, the outputs) run no script in the app's origin
FILE_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-popups; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/thumb/{sha}.jpg")
def thumb(sha: str, ctx: Ctx) -> Response:
    s = ctx.settings
    doc = ctx.review_doc()
    size = s.cfg.serve.thumb_size
    if doc is None:
        raise StarletteHTTPException(404)
    paths = [p for p, e in doc["photos"].items() if e["sha256"] == sha]
    allowed = [p for p in paths if within(p, [s.photo_root, s.out])]
    if not allowed:
        raise StarletteHTTPException(404)
    key = (sha, size)
    with ctx.thumbs_lock:
        data = ctx.thumbs.get(key)
    if data is None:
        data = make_thumb(s.cfg, sha, Path(allowed[0]), size)
        with ctx.thumbs_lock:
            ctx.thumbs[key] = data
            while len(ctx.thumbs) > THUMB_CACHE_SIZE:
                ctx.thumbs.popitem(last=False)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/files/photos/{rel:path}")
def photo_file(rel: str, ctx: Ctx) -> Response:
    s = ctx.settings
    try:
        target = safe_path(s.photo_root, rel)
    except UnsafePath as e:
        raise UserError(f"Not served: {e}.", 404) from None
    if target.suffix.lower() not in set(s.cfg.ingest.extensions):
        raise UserError("Not served: only photos are served from the photo folder.", 404)
    return FileResponse(target, headers=FILE_HEADERS)


@router.get("/files/out/{rel:path}")
def out_file(rel: str, ctx: Ctx) -> Response:
    try:
        target = safe_path(ctx.settings.out, rel)
    except UnsafePath as e:
        raise UserError(f"Not served: {e}.", 404) from None
    if target.suffix.lower() not in SERVED_OUT_SUFFIXES:
        raise UserError("Not served: this kind of file is not shown here.", 404)
    return FileResponse(target, headers=FILE_HEADERS)


def make_thumb(cfg: Config, sha: str, path: Path, size: int) -> bytes:
    """A JPEG thumbnail: from the run's cached working copy when there is one (no EXIF, already upright), else
    from the file."""
    img = None
    db = cfg.cache.resolved_dir() / "cache.sqlite3"
    if cfg.cache.enabled and db.is_file():
        from photopoet.core.cache import Cache
        from photopoet.stages.ingest import working_copy_from_bytes

        with Cache(db) as cache:
            data = cache.get_thumb(sha)
        if data is not None:
            img = working_copy_from_bytes(data)
    if img is None:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            img = ImageOps.exif_transpose(im).convert("RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=82)
    return buf.getvalue()
