"""Starting a run: on a folder under the photo root, or on uploaded photos; reviewing a run made before; a
posts.json that changed under the review."""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from photopoet.core.files import atomic_write_bytes
from photopoet.errors import UploadTooLarge
from photopoet.web import state as st
from photopoet.web.context import Ctx, UserError, WebContext, has_edits
from photopoet.web.safety import UPLOAD_FORMATS, check_upload, clean_filename, read_upload, too_big, within

router = APIRouter()

REPLACE_EDITS = (
    "This output folder holds a review with your edits. Tick 'Start a new review' to run again: "
    "the edits are kept in review-history/ inside the output folder."
)


@router.post("/run")
async def run_folder(request: Request, ctx: Ctx) -> Response:
    form = await ctx.form_of(request)
    rel = str(form.get("folder") or "")
    folder = safe_dir(ctx.settings.photo_root, rel)
    doc = ctx.review_doc()
    if has_edits(doc) and form.get("replace") != "yes":
        raise UserError(REPLACE_EDITS)
    cfg, event = ctx.event_of(folder, str(form.get("event") or ""))
    ctx.start_run(folder, cfg, event)
    return ctx.go("/progress")


@router.post("/review/adopt")
async def adopt(request: Request, ctx: Ctx) -> Response:
    """Review a run that was made before (OUT/posts.json from `photopoet run`)."""
    await ctx.form_of(request)
    s = ctx.settings
    if ctx.store.exists():
        return ctx.go("/review")
    try:
        doc = st.review_from_posts_json(s.out, "", s.cfg.caption.event or s.out.resolve().name)
    except st.ReviewError as e:
        raise UserError(str(e)) from None
    ctx.store.start(doc)
    return ctx.go("/review")


@router.post("/review/source")
async def source_changed(request: Request, ctx: Ctx) -> Response:
    """posts.json changed under the review (a run outside the UI): keep the edits, or start over."""
    form = await ctx.form_of(request)
    out = ctx.settings.out
    choice = str(form.get("choice") or "")
    if choice == "keep":
        sha = st.file_sha256(out / "posts.json")

        def keep(d: dict[str, Any]) -> None:
            d["source_sha256"] = sha

        ctx.store.change(keep)
        return ctx.go("/review", "info", "Kept your edits; an export will write them over the newer run.")
    if choice == "restart":
        doc = ctx.review_doc() or {}
        kept = ctx.store.archive()
        new = st.review_from_posts_json(out, doc.get("photos_dir", ""), doc.get("event", ""))
        ctx.store.start(new)
        return ctx.go("/review", "info", f"Started over from the new run; your edits are kept in {kept}.")
    raise UserError("Choose to keep your edits or to start over.")


@router.post("/upload")
async def upload(request: Request, ctx: Ctx) -> Response:
    lim = ctx.settings.cfg.serve
    total = int(lim.max_upload_total_mb * 1e6)
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        length = 0
    if length > total:
        raise UserError(f"The upload is {too_big(length, lim.max_upload_total_mb)} at once.", 413)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UserError("Choose one or more photos to upload.")
    max_bytes = int(lim.max_upload_mb * 1e6)
    try:  # counted as the bytes arrive: a chunked body (no Content-Length) meets the same limits
        form, sizes = await read_upload(
            request.headers,
            request.stream(),
            max_total=total,
            max_file=max_bytes,
            max_files=lim.max_upload_files,
        )
    except UploadTooLarge:
        raise UserError(
            f"The upload is over {lim.max_upload_total_mb:g} MB; at most {lim.max_upload_total_mb:g} MB at once.",
            413,
        ) from None
    except ValueError as e:
        raise UserError(f"The upload was refused: {e}", 413) from None
    try:
        return await _save_upload(ctx, form, sizes, max_bytes)
    finally:
        await form.close()


async def _save_upload(ctx: WebContext, form: Any, sizes: dict[int, int], max_bytes: int) -> Response:
    s = ctx.settings
    lim = s.cfg.serve
    if not hmac.compare_digest(str(form.get("csrf") or ""), s.csrf):
        raise UserError("This form is out of date; reload the page and try again.", 403)
    doc = ctx.review_doc()
    if has_edits(doc) and form.get("replace") != "yes":
        raise UserError(REPLACE_EDITS)
    files = [f for f in form.getlist("photos") if hasattr(f, "read")]
    if not files:
        raise UserError("Choose one or more photos to upload.")
    dest = s.out / "uploads" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('~')[0]}~{n}")
    kept, refused, names = 0, [], set()
    for f in files:
        name = f.filename or "photo"
        if sizes.get(id(f), 0) > max_bytes:  # dropped while it streamed: only its size is known
            refused.append(f"{Path(name).name}: {too_big(sizes[id(f)], lim.max_upload_mb)}")
            continue
        data = await f.read(max_bytes + 1)
        try:
            fmt = check_upload(data, max_bytes)
        except ValueError as e:
            refused.append(f"{Path(name).name}: {e}")
            continue
        stem = clean_filename(name)
        target = stem + UPLOAD_FORMATS[fmt]
        k = 1
        while target.lower() in names:
            k += 1
            target = f"{stem}-{k}{UPLOAD_FORMATS[fmt]}"
        names.add(target.lower())
        atomic_write_bytes(dest / target, data)
        kept += 1
    if not kept:
        raise UserError("No photo was accepted: " + "; ".join(refused[:20]))
    cfg, event = ctx.event_of(dest, str(form.get("event") or ""))
    if not str(form.get("event") or "").strip() and not s.cfg.caption.event:
        cfg, event = ctx.event_of(dest, "Uploaded photos")
    ctx.start_run(dest, cfg, event)
    note = f"{kept} photo{'s' if kept != 1 else ''} uploaded to {dest}."
    if refused:
        note += f" Refused {len(refused)}: " + "; ".join(refused[:20])
    return ctx.go("/progress", "warn" if refused else "info", note)


def safe_dir(root: Path, rel: str) -> Path:
    """A folder under `root` (``""``: the root itself), checked like a served file."""
    if rel in ("", "."):
        return root
    if "\x00" in rel or "\\" in rel or rel.startswith("/") or any(p in ("..", ".") for p in rel.split("/")):
        raise UserError("That folder is not under the photo folder this server was started with.")
    target = root / rel
    if not target.is_dir() or not within(target, [root]):
        raise UserError(f"{rel}: no such folder under {root}.")
    return target
