"""Exporting the reviewed posts: a background job that runs :func:`photopoet.web.render.export_review`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from photopoet.errors import JobFailed
from photopoet.web.context import Ctx, UserError
from photopoet.web.jobs import Job
from photopoet.web.render import export_review

router = APIRouter()


@router.post("/export")
async def export(request: Request, ctx: Ctx) -> Response:
    await ctx.form_of(request)
    if ctx.review_doc() is None:
        raise UserError("There is no review to export yet.")
    s = ctx.settings

    def work(job: Job) -> dict[str, Any]:
        return export_review(ctx.store, s.out, s.cfg, job)

    try:
        ctx.jobs.start(Job("export", "Exporting the reviewed posts"), work)
    except JobFailed as e:
        return ctx.go("/review", "error", str(e))
    return ctx.go("/review")
