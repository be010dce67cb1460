"""The pages: home (a redirect), start, progress, review; the status the progress page polls."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from photopoet.core.files import is_within
from photopoet.web import state as st
from photopoet.web.context import Ctx, has_edits
from photopoet.web.jobs import STAGE_NAMES, STAGES
from photopoet.web.safety import within

router = APIRouter()


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: Ctx) -> Response:
    jobs = ctx.jobs
    if jobs.busy and jobs.current is not None and jobs.current.kind == "run":
        return ctx.go("/progress")
    if ctx.store.exists():
        return ctx.go("/review")
    return ctx.go("/start")


@router.get("/start", response_class=HTMLResponse)
async def start_page(request: Request, ctx: Ctx) -> Response:
    s = ctx.settings
    doc = ctx.review_doc()
    existing = (s.out / "posts.json").is_file()
    return ctx.page(
        "start.html",
        request,
        folders=list_folders(s.photo_root, s.out),
        review=doc,
        edits=has_edits(doc),
        existing_run=existing and doc is None,
        limits=s.cfg.serve,
        formats=", ".join(sorted({"JPEG", "PNG", "WebP", "TIFF", "HEIC"})),
    )


@router.get("/progress", response_class=HTMLResponse)
async def progress_page(request: Request, ctx: Ctx) -> Response:
    return ctx.page("progress.html", request, stages=[(k, STAGE_NAMES[k]) for k in STAGES])


@router.get("/api/status")
async def status(ctx: Ctx) -> Response:
    doc = None
    with contextlib.suppress(st.ReviewError):
        doc = ctx.store.load()
    jobs = ctx.jobs
    return JSONResponse(
        {
            "job": jobs.current.to_json() if jobs.current is not None else None,
            "busy": jobs.busy,
            "revision": doc["revision"] if doc else None,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/review", response_class=HTMLResponse)
async def review_page(request: Request, ctx: Ctx) -> Response:
    out = ctx.settings.out
    doc = ctx.review_doc()
    if doc is None:
        if (out / "posts.json").is_file():
            return ctx.go("/start")
        return ctx.go("/start", "info", "There is nothing to review yet: run photopoet on a folder first.")
    nonempty = [p for p in doc["posts"] if p["photos"]]
    return ctx.page(
        "review.html",
        request,
        doc=doc,
        posts=doc["posts"],
        n_posts=len(nonempty),
        n_photos=sum(len(p["photos"]) for p in nonempty),
        changed=ctx.store.posts_json_changed() and (out / "posts.json").is_file(),
        photo=doc["photos"],
        seen={p["id"]: sc.line() for p in nonempty if (sc := st.post_scene(p, doc["photos"])) is not None},
        limit_tags=st.MAX_HASHTAGS,
        limit_chars=st.MAX_CAPTION_CHARS,
    )


def list_folders(root: Path, out: Path, depth: int = 3, limit: int = 300) -> list[dict[str, str]]:
    """The folders a run can be started on: the root and its subfolders (hidden ones and the output folder
    left out), as ``{"rel", "label"}``."""
    found = [{"rel": "", "label": f"{root.resolve().name}/ (the whole folder)"}]
    stack = [(root, 0)]
    while stack and len(found) < limit:
        d, lvl = stack.pop()
        if lvl >= depth:
            continue
        try:
            subs = sorted((x for x in d.iterdir() if x.is_dir() and not x.name.startswith(".")), reverse=True)
        except OSError:
            continue
        for x in subs:
            if is_within(x, out) or not within(x, [root]):
                continue
            stack.append((x, lvl + 1))
        for x in reversed(subs):
            if is_within(x, out) or not within(x, [root]):
                continue
            rel = x.relative_to(root).as_posix()
            found.append({"rel": rel, "label": rel + "/"})
            if len(found) >= limit:
                break
    return sorted(found, key=lambda f: f["rel"])
