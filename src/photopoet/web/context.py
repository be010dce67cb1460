"""What every request handler of the review app shares: the settings, the review store, the job runner, the
templates, the flash messages and the thumbnail cache, held in one :class:`WebContext` on ``app.state.web``.

Handlers receive it through the :data:`Ctx` dependency, so the routers (:mod:`photopoet.web.routes`) hold no
state of their own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from photopoet.config import Config
from photopoet.errors import JobFailed, PhotopoetError
from photopoet.stages.write.template import event_from_folder
from photopoet.web import state as st
from photopoet.web.jobs import Job, JobRunner
from photopoet.web.regen import Regenerator

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: with it, chromium sends "Origin: null" on the app's own form posts
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
THUMB_CACHE_SIZE = 4000  # review thumbnails kept in memory
FLASH_KEEP = 200  # flash messages kept for their redirect


class UserError(PhotopoetError):
    """Shown to the editor as a message on a friendly page (status 400 unless told)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Settings:
    photo_root: Path  # folders to run on are chosen under this one
    out: Path  # the output folder: posts.json, review.json, posts/, report.html, uploads/
    cfg: Config
    host: str = "127.0.0.1"
    port: int = 8000
    regenerator: Regenerator | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class WebContext:
    """The app's shared state and the helpers every router uses (pages, redirects, form checks, starting a run)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = st.ReviewStore(settings.out)
        self.jobs = JobRunner()
        self.regen = settings.regenerator or Regenerator(settings.cfg)
        env = Environment(loader=PackageLoader("photopoet.web", "templates"), autoescape=select_autoescape(["html"]))
        env.filters["basename"] = lambda p: Path(str(p)).name
        self.env = env
        self.flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.thumbs_lock = threading.Lock()

    # -- responses -----------------------------------------------------------------------------------------

    def page(self, name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        """A template rendered with what every page shows (the flash message, the job, the folders)."""
        s = self.settings
        m = request.query_params.get("m")
        flash = self.flashes.get(m) if m else None
        job = self.jobs.current
        html = self.env.get_template(name).render(
            csrf=s.csrf,
            flash=flash,
            job=job.to_json() if job is not None else None,
            busy=self.jobs.busy,
            out=str(s.out),
            root=str(s.photo_root),
            **ctx,
        )
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def flash(self, kind: str, text: str) -> str:
        """Keep a message for the page a redirect leads to; returns its key (the ``m`` query parameter)."""
        key = secrets.token_urlsafe(8)
        self.flashes[key] = (kind, text)
        while len(self.flashes) > FLASH_KEEP:
            self.flashes.popitem(last=False)
        return key

    def go(self, url: str, kind: str | None = None, text: str | None = None, anchor: str | None = None) -> Response:
        """A 303 redirect to ``url``, with a flash message and an anchor when given."""
        if text:
            url += ("&" if "?" in url else "?") + "m=" + self.flash(kind or "info", text)
        if anchor:
            url += "#" + anchor
        return RedirectResponse(url, status_code=303)

    # -- requests ------------------------------------------------------------------------------------------

    async def form_of(self, request: Request) -> Any:
        """The posted form, once its CSRF token is checked."""
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not hmac.compare_digest(token, self.settings.csrf):
            raise UserError(
                "This form is out of date or did not come from this app (the server may have restarted). "
                "Reload the page and try again.",
                status=403,
            )
        return form

    def review_doc(self) -> dict[str, Any] | None:
        """The review (None before the first run); a damaged review.json is a 500 with its reason."""
        try:
            return self.store.load()
        except st.ReviewError as e:
            raise UserError(str(e), status=500) from None

    def event_of(self, photos_dir: Path, form_event: str) -> tuple[Config, str]:
        """The config for a run with the form's event name (if any), and the event the review shows."""
        ev = " ".join((form_event or "").split())
        if len(ev) > 100:
            raise UserError("The event name is longer than 100 characters.")
        cfg = self.settings.cfg
        if ev:
            cfg = cfg.model_copy(update={"caption": cfg.caption.model_copy(update={"event": ev})})
        return cfg, cfg.caption.event or event_from_folder(photos_dir) or ""

    def start_run(self, photos_dir: Path, cfg: Config, event: str) -> None:
        """Start `photopoet run` on ``photos_dir`` as the background job; its posts become a new review."""
        from photopoet.core.folders import check_folders
        from photopoet.errors import RunError
        from photopoet.pipeline import run

        out = self.settings.out
        try:
            check_folders(photos_dir, out)
        except RunError as e:
            raise UserError(str(e)) from None

        def work(job: Job) -> None:
            def on_stage(name: str) -> None:
                job.stage = name

            try:
                res = run(photos_dir, out, cfg, progress=True, on_stage=on_stage)
            except RunError as e:
                raise JobFailed(str(e)) from None
            doc = st.review_from_posts_json(out, photos_dir, event, plots=res.plots)
            self.store.start(doc)
            with self.thumbs_lock:
                self.thumbs.clear()

        try:
            self.jobs.start(Job("run", f"Running photopoet on {photos_dir.name}"), work)
        except JobFailed as e:
            raise UserError(str(e), status=409) from None


def has_edits(doc: dict[str, Any] | None) -> bool:
    return bool(doc) and any(p["edited"] for p in doc["posts"])


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


async def get_context(request: Request) -> WebContext:
    return request.app.state.web


Ctx = Annotated[WebContext, Depends(get_context)]
"""A handler's parameter ``ctx: Ctx`` receives the app's :class:`WebContext`."""
