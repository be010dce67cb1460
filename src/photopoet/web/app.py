"""The review web app: start a run (a folder under the photo root, or uploaded photos), watch it, review the posts,
export them.

Pages are rendered on the server (Jinja2); the only JavaScript polls the job status. Every state-changing request
is a POST carrying the page's CSRF token (a random value made at start-up; a page of another site cannot read it),
and a POST whose Origin header names another site is refused. Files are served only from under the photo root and
the output folder (:func:`photopoet.web.safety.safe_path`), with headers that keep them from running script in
the app's origin.

:func:`create_app` puts one :class:`~photopoet.web.context.WebContext` on ``app.state.web``, includes the routers of
:mod:`photopoet.web.routes` and adds what applies to every request: the host and origin checks, and error pages.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from photopoet.web.context import Settings, UserError, WebContext
from photopoet.web.routes import edit, export, files, pages, runs
from photopoet.web.safety import is_loopback

__all__ = ["Settings", "UserError", "create_app"]

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}


def create_app(settings: Settings) -> FastAPI:
    settings.out.mkdir(parents=True, exist_ok=True)
    ctx = WebContext(settings)

    app = FastAPI(title="photopoet review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = ctx
    app.state.settings = settings
    app.state.store = ctx.store
    app.state.jobs = ctx.jobs
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")

    app.add_exception_handler(UserError, _user_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _form_error)
    app.add_exception_handler(Exception, _crash)
    app.middleware("http")(_same_origin_posts)

    for module in (pages, runs, edit, export, files):
        app.include_router(module.router)
    return app


# -- errors: friendly pages, never a traceback ---------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _ctx(request: Request) -> WebContext:
    return request.app.state.web


async def _user_error(request: Request, exc: UserError) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    return _ctx(request).page("error.html", request, status=exc.status, message=str(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    text = {404: "There is no such page or file here.", 405: "That address does not take this kind of request."}
    msg = text.get(exc.status_code, str(exc.detail))
    if _wants_json(request):
        return JSONResponse({"error": msg}, status_code=exc.status_code)
    return _ctx(request).page("error.html", request, status=exc.status_code, message=msg)


async def _form_error(request: Request, exc: RequestValidationError) -> Response:
    return _ctx(request).page("error.html", request, status=400, message="The request was incomplete; reload the page.")


async def _crash(request: Request, exc: Exception) -> Response:
    logger.exception("error serving %s", request.url.path)
    msg = f"Something went wrong ({type(exc).__name__}). Nothing was lost; the details are in the server's log."
    if _wants_json(request):
        return JSONResponse({"error": msg}, status_code=500)
    return _ctx(request).page("error.html", request, status=500, message=msg)


# -- every request: the host and the origin ------------------------------------------------------------------


async def _same_origin_posts(request: Request, call_next):
    ctx = _ctx(request)
    # bound to loopback, only loopback names are answered: a site that points its own name at 127.0.0.1
    # (DNS rebinding) gets nothing, so it cannot read a page (and its token) as if it were this app
    if is_loopback(ctx.settings.host):
        name = urlsplit("//" + request.headers.get("host", "")).hostname or ""
        if name not in LOOPBACK_NAMES and f"[{name}]" not in LOOPBACK_NAMES:
            return ctx.page("error.html", request, status=403, message="This app answers only on this machine.")
    # a page of another site may post a form here; browsers name it in Origin
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("origin")
        if origin and origin != "null":
            o = urlsplit(origin)  # an origin is scheme, host and port: all three must be this app's
            if o.scheme != request.url.scheme or o.netloc != request.headers.get("host", ""):
                return ctx.page("error.html", request, status=403, message="Requests from other sites are refused.")
        elif origin == "null":
            return ctx.page("error.html", request, status=403, message="Requests from other sites are refused.")
    return await call_next(request)
