"""The editor's changes to the review: photos left out, moved, reordered, the cover, the text; a new caption,
haiku or poem for one post (a background job through the pipeline's own writers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from photopoet.errors import JobFailed
from photopoet.web import state as st
from photopoet.web.context import Ctx, UserError, sentence
from photopoet.web.jobs import Job

router = APIRouter()


@router.post("/edit")
async def edit(request: Request, ctx: Ctx) -> Response:
    form = await ctx.form_of(request)
    store = ctx.store
    action = str(form.get("action") or "")
    pid = str(form.get("post") or "")
    path = str(form.get("path") or "")
    anchor = f"post-{pid}" if pid else None
    try:
        if action == "exclude":
            store.change(lambda d: st.exclude_photo(d, pid, path))
        elif action == "include":
            store.change(lambda d: st.include_photo(d, pid, path))
        elif action in ("left", "right"):
            store.change(lambda d: st.reorder_photo(d, pid, path, -1 if action == "left" else 1))
        elif action == "cover":
            store.change(lambda d: st.set_cover(d, pid, path))
        elif action == "move":
            to = str(form.get("to") or "")
            if not to:
                raise st.ReviewError("choose the post to move the photo to")
            anchor = "post-" + store.change(lambda d: st.move_photo(d, path, to))
        elif action == "text":
            caption, tags = str(form.get("caption") or ""), str(form.get("hashtags") or "")
            store.change(lambda d: st.edit_text(d, pid, caption, tags))
            return ctx.go("/review", "info", f"Post {pid}: caption and hashtags saved.", anchor)
        elif action == "delete":
            store.change(lambda d: st.delete_empty_post(d, pid))
            anchor = None
        else:
            raise st.ReviewError(f"unknown action {action!r}")
    except st.ReviewError as e:
        return ctx.go("/review", "error", sentence(str(e)), anchor)
    return ctx.go("/review", anchor=anchor)


@router.post("/regenerate")
async def regenerate(request: Request, ctx: Ctx) -> Response:
    form = await ctx.form_of(request)
    store, regen = ctx.store, ctx.regen
    pid, what = str(form.get("post") or ""), str(form.get("what") or "")
    if what not in ("caption", "haiku", "poem"):
        raise UserError("Regenerate a caption, a haiku or a poem.")
    doc = ctx.review_doc()
    if doc is None:
        raise UserError("There is no review yet.")
    try:
        post = st.find_post(doc, pid)
    except st.ReviewError as e:
        raise UserError(str(e)) from None
    if not post["photos"]:
        return ctx.go("/review", "error", f"Post {pid} has no photos to write about.", f"post-{pid}")

    def work(job: Job) -> None:
        cur = st.find_post(store.load() or {"posts": []}, pid)
        wctx = regen.context(store.load(), cur)
        attempt = int(cur["attempts"].get(what, 0)) + 1
        if what == "caption":
            r = regen.caption(wctx, attempt)
        elif what == "haiku":
            r = regen.haiku(wctx, attempt)
        else:
            r = regen.poem(wctx, list(cur.get("poems_seen", [])))

        def apply(d: dict[str, Any]) -> None:
            p = st.find_post(d, pid)
            p["attempts"][what] = attempt
            p["labels"] = wctx["labels"]
            if what == "caption":
                p["caption"], p["caption_mode"] = r["caption"], r["mode"]
                if "hashtags" not in p["edited"]:  # the editor's own hashtags are kept
                    p["hashtags"] = r["hashtags"]
                if r.get("score") is not None:
                    p["scores"]["caption_agreement"] = round(float(r["score"]), 4)
            elif what == "haiku":
                p["haiku"] = r["lines"]
                if r.get("score") is not None:
                    p["scores"]["haiku_agreement"] = round(float(r["score"]), 4)
            else:
                p["poem"] = r
                p.setdefault("poems_seen", []).append(r["text"])
            st._touched(p, what)

        store.change(apply)

    title = {"caption": "a new caption", "haiku": "a new haiku", "poem": "another poem"}[what]
    try:
        ctx.jobs.start(Job("regenerate", f"Writing {title} for post {pid}", post=pid), work)
    except JobFailed as e:
        return ctx.go("/review", "error", str(e), f"post-{pid}")
    return ctx.go("/review", anchor=f"post-{pid}")
