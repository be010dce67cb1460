"""The review web app: start a run (a folder under the photo root, or uploaded photos), watch it, review the posts,
export them.

Pages are rendered on the server (Jinja2); the only JavaScript polls the job status. Every state-changing request
is a POST carrying the page's CSRF token (a random value made at start-up; a page of another site cannot read it),
and a POST whose Origin header names another site is refused. Files are served only from under the photo root and
the output folder (:func:`photopoet.web.safety.safe_path`), with headers that keep them from running script in
the app's origin.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageOps
from starlette.exceptions import HTTPException as StarletteHTTPException

from photopoet.config import Config
from photopoet.core.files import atomic_write_bytes, atomic_write_json, is_within
from photopoet.errors import JobFailed, PhotopoetError, UnsafePath, UploadTooLarge
from photopoet.records import Excluded
from photopoet.stages.write.template import event_from_folder
from photopoet.web import state as st
from photopoet.web.jobs import STAGE_NAMES, STAGES, Job, JobRunner
from photopoet.web.regen import Regenerator
from photopoet.web.safety import (
    UPLOAD_FORMATS,
    check_upload,
    clean_filename,
    is_loopback,
    read_upload,
    safe_path,
    too_big,
    within,
)

logger = logging.getLogger(__name__)

SERVED_OUT_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".html", ".json", ".txt"}
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
# served files (the user's photos, the outputs) run no script in the app's origin
FILE_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-popups; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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


def create_app(settings: Settings) -> FastAPI:
    s = settings
    s.out.mkdir(parents=True, exist_ok=True)
    store = st.ReviewStore(s.out)
    jobs = JobRunner()
    regen = s.regenerator or Regenerator(s.cfg)
    env = Environment(loader=PackageLoader("photopoet.web", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["basename"] = lambda p: Path(str(p)).name
    flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
    thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
    thumbs_lock = threading.Lock()

    app = FastAPI(title="photopoet review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = s
    app.state.store = store
    app.state.jobs = jobs
    static = Path(__file__).with_name("static")
    app.mount("/static", StaticFiles(directory=static), name="static")

    # -- helpers ------------------------------------------------------------------------------------------

    def page(name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        m = request.query_params.get("m")
        flash = flashes.get(m) if m else None
        job = jobs.current
        html = env.get_template(name).render(
            csrf=s.csrf,
            flash=flash,
            job=job.to_json() if job is not None else None,
            busy=jobs.busy,
            out=str(s.out),
            root=str(s.photo_root),
            **ctx,
        )
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def flash(kind: str, text: str) -> str:
        key = secrets.token_urlsafe(8)
        flashes[key] = (kind, text)
        while len(flashes) > 200:
            flashes.popitem(last=False)
        return key

    def go(url: str, kind: str | None = None, text: str | None = None, anchor: str | None = None) -> Response:
        if text:
            url += ("&" if "?" in url else "?") + "m=" + flash(kind or "info", text)
        if anchor:
            url += "#" + anchor
        return RedirectResponse(url, status_code=303)

    async def form_of(request: Request) -> Any:
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not hmac.compare_digest(token, s.csrf):
            raise UserError(
                "This form is out of date or did not come from this app (the server may have restarted). "
                "Reload the page and try again.",
                status=403,
            )
        return form

    def review_doc() -> dict[str, Any] | None:
        try:
            return store.load()
        except st.ReviewError as e:
            raise UserError(str(e), status=500) from None

    def event_of(photos_dir: Path, form_event: str) -> tuple[Config, str]:
        ev = " ".join((form_event or "").split())
        if len(ev) > 100:
            raise UserError("The event name is longer than 100 characters.")
        cfg = s.cfg
        if ev:
            cfg = cfg.model_copy(update={"caption": cfg.caption.model_copy(update={"event": ev})})
        return cfg, cfg.caption.event or event_from_folder(photos_dir) or ""

    def has_edits(doc: dict[str, Any] | None) -> bool:
        return bool(doc) and any(p["edited"] for p in doc["posts"])

    def start_run(photos_dir: Path, cfg: Config, event: str) -> None:
        from photopoet.core.folders import check_folders
        from photopoet.errors import RunError
        from photopoet.pipeline import run

        try:
            check_folders(photos_dir, s.out)
        except RunError as e:
            raise UserError(str(e)) from None

        def work(job: Job) -> None:
            def on_stage(name: str) -> None:
                job.stage = name

            try:
                res = run(photos_dir, s.out, cfg, progress=True, on_stage=on_stage)
            except RunError as e:
                raise JobFailed(str(e)) from None
            doc = st.review_from_posts_json(s.out, photos_dir, event, plots=res.plots)
            store.start(doc)
            with thumbs_lock:
                thumbs.clear()

        try:
            jobs.start(Job("run", f"Running photopoet on {photos_dir.name}"), work)
        except JobFailed as e:
            raise UserError(str(e), status=409) from None

    # -- errors: friendly pages, never a traceback -----------------------------------------------------------

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> Response:
        if wants_json(request):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return page("error.html", request, status=exc.status, message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        text = {404: "There is no such page or file here.", 405: "That address does not take this kind of request."}
        msg = text.get(exc.status_code, str(exc.detail))
        if wants_json(request):
            return JSONResponse({"error": msg}, status_code=exc.status_code)
        return page("error.html", request, status=exc.status_code, message=msg)

    @app.exception_handler(RequestValidationError)
    async def _form_error(request: Request, exc: RequestValidationError) -> Response:
        return page("error.html", request, status=400, message="The request was incomplete; reload the page.")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        logger.exception("error serving %s", request.url.path)
        msg = f"Something went wrong ({type(exc).__name__}). Nothing was lost; the details are in the server's log."
        if wants_json(request):
            return JSONResponse({"error": msg}, status_code=500)
        return page("error.html", request, status=500, message=msg)

    loopback_names = {"127.0.0.1", "localhost", "::1", "[::1]"}

    @app.middleware("http")
    async def _same_origin_posts(request: Request, call_next):
        # bound to loopback, only loopback names are answered: a site that points its own name at 127.0.0.1
        # (DNS rebinding) gets nothing, so it cannot read a page (and its token) as if it were this app
        if is_loopback(s.host):
            name = urlsplit("//" + request.headers.get("host", "")).hostname or ""
            if name not in loopback_names and f"[{name}]" not in loopback_names:
                return page("error.html", request, status=403, message="This app answers only on this machine.")
        # a page of another site may post a form here; browsers name it in Origin
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin and origin != "null":
                o = urlsplit(origin)  # an origin is scheme, host and port: all three must be this app's
                if o.scheme != request.url.scheme or o.netloc != request.headers.get("host", ""):
                    return page("error.html", request, status=403, message="Requests from other sites are refused.")
            elif origin == "null":
                return page("error.html", request, status=403, message="Requests from other sites are refused.")
        return await call_next(request)

    # -- pages ---------------------------------------------------------------------------------------------------

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        if jobs.busy and jobs.current is not None and jobs.current.kind == "run":
            return go("/progress")
        if store.exists():
            return go("/review")
        return go("/start")

    @app.get("/start", response_class=HTMLResponse)
    async def start_page(request: Request) -> Response:
        doc = review_doc()
        existing = (s.out / "posts.json").is_file()
        return page(
            "start.html",
            request,
            folders=list_folders(s.photo_root, s.out),
            review=doc,
            edits=has_edits(doc),
            existing_run=existing and doc is None,
            limits=s.cfg.serve,
            formats=", ".join(sorted({"JPEG", "PNG", "WebP", "TIFF", "HEIC"})),
        )

    @app.post("/run")
    async def run_folder(request: Request) -> Response:
        form = await form_of(request)
        rel = str(form.get("folder") or "")
        folder = safe_dir(s.photo_root, rel)
        doc = review_doc()
        if has_edits(doc) and form.get("replace") != "yes":
            raise UserError(
                "This output folder holds a review with your edits. Tick 'Start a new review' to run again: "
                "the edits are kept in review-history/ inside the output folder."
            )
        cfg, event = event_of(folder, str(form.get("event") or ""))
        start_run(folder, cfg, event)
        return go("/progress")

    @app.post("/review/adopt")
    async def adopt(request: Request) -> Response:
        """Review a run that was made before (OUT/posts.json from `photopoet run`)."""
        await form_of(request)
        if store.exists():
            return go("/review")
        try:
            doc = st.review_from_posts_json(s.out, "", s.cfg.caption.event or s.out.resolve().name)
        except st.ReviewError as e:
            raise UserError(str(e)) from None
        store.start(doc)
        return go("/review")

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        lim = s.cfg.serve
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
            return await _save_upload(request, form, sizes, max_bytes)
        finally:
            await form.close()

    async def _save_upload(request: Request, form: Any, sizes: dict[int, int], max_bytes: int) -> Response:
        lim = s.cfg.serve
        if not hmac.compare_digest(str(form.get("csrf") or ""), s.csrf):
            raise UserError("This form is out of date; reload the page and try again.", 403)
        doc = review_doc()
        if has_edits(doc) and form.get("replace") != "yes":
            raise UserError(
                "This output folder holds a review with your edits. Tick 'Start a new review' to run again: "
                "the edits are kept in review-history/ inside the output folder."
            )
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
        cfg, event = event_of(dest, str(form.get("event") or ""))
        if not str(form.get("event") or "").strip() and not s.cfg.caption.event:
            cfg, event = event_of(dest, "Uploaded photos")
        start_run(dest, cfg, event)
        note = f"{kept} photo{'s' if kept != 1 else ''} uploaded to {dest}."
        if refused:
            note += f" Refused {len(refused)}: " + "; ".join(refused[:20])
        return go("/progress", "warn" if refused else "info", note)

    @app.get("/progress", response_class=HTMLResponse)
    async def progress_page(request: Request) -> Response:
        return page("progress.html", request, stages=[(k, STAGE_NAMES[k]) for k in STAGES])

    @app.get("/api/status")
    async def status() -> Response:
        doc = None
        with contextlib.suppress(st.ReviewError):
            doc = store.load()
        return JSONResponse(
            {
                "job": jobs.current.to_json() if jobs.current is not None else None,
                "busy": jobs.busy,
                "revision": doc["revision"] if doc else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/review", response_class=HTMLResponse)
    async def review_page(request: Request) -> Response:
        doc = review_doc()
        if doc is None:
            if (s.out / "posts.json").is_file():
                return go("/start")
            return go("/start", "info", "There is nothing to review yet: run photopoet on a folder first.")
        nonempty = [p for p in doc["posts"] if p["photos"]]
        return page(
            "review.html",
            request,
            doc=doc,
            posts=doc["posts"],
            n_posts=len(nonempty),
            n_photos=sum(len(p["photos"]) for p in nonempty),
            changed=store.posts_json_changed() and (s.out / "posts.json").is_file(),
            photo=doc["photos"],
            seen={p["id"]: sc.line() for p in nonempty if (sc := st.post_scene(p, doc["photos"])) is not None},
            limit_tags=st.MAX_HASHTAGS,
            limit_chars=st.MAX_CAPTION_CHARS,
        )

    @app.post("/edit")
    async def edit(request: Request) -> Response:
        form = await form_of(request)
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
                return go("/review", "info", f"Post {pid}: caption and hashtags saved.", anchor)
            elif action == "delete":
                store.change(lambda d: st.delete_empty_post(d, pid))
                anchor = None
            else:
                raise st.ReviewError(f"unknown action {action!r}")
        except st.ReviewError as e:
            return go("/review", "error", sentence(str(e)), anchor)
        return go("/review", anchor=anchor)

    @app.post("/review/source")
    async def source_changed(request: Request) -> Response:
        """posts.json changed under the review (a run outside the UI): keep the edits, or start over."""
        form = await form_of(request)
        choice = str(form.get("choice") or "")
        if choice == "keep":
            sha = st.file_sha256(s.out / "posts.json")

            def keep(d: dict[str, Any]) -> None:
                d["source_sha256"] = sha

            store.change(keep)
            return go("/review", "info", "Kept your edits; an export will write them over the newer run.")
        if choice == "restart":
            doc = review_doc() or {}
            kept = store.archive()
            new = st.review_from_posts_json(s.out, doc.get("photos_dir", ""), doc.get("event", ""))
            store.start(new)
            return go("/review", "info", f"Started over from the new run; your edits are kept in {kept}.")
        raise UserError("Choose to keep your edits or to start over.")

    @app.post("/regenerate")
    async def regenerate(request: Request) -> Response:
        form = await form_of(request)
        pid, what = str(form.get("post") or ""), str(form.get("what") or "")
        if what not in ("caption", "haiku", "poem"):
            raise UserError("Regenerate a caption, a haiku or a poem.")
        doc = review_doc()
        if doc is None:
            raise UserError("There is no review yet.")
        try:
            post = st.find_post(doc, pid)
        except st.ReviewError as e:
            raise UserError(str(e)) from None
        if not post["photos"]:
            return go("/review", "error", f"Post {pid} has no photos to write about.", f"post-{pid}")

        def work(job: Job) -> None:
            cur = st.find_post(store.load() or {"posts": []}, pid)
            ctx = regen.context(store.load(), cur)
            attempt = int(cur["attempts"].get(what, 0)) + 1
            if what == "caption":
                r = regen.caption(ctx, attempt)
            elif what == "haiku":
                r = regen.haiku(ctx, attempt)
            else:
                r = regen.poem(ctx, list(cur.get("poems_seen", [])))

            def apply(d: dict[str, Any]) -> None:
                p = st.find_post(d, pid)
                p["attempts"][what] = attempt
                p["labels"] = ctx["labels"]
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
            jobs.start(Job("regenerate", f"Writing {title} for post {pid}", post=pid), work)
        except JobFailed as e:
            return go("/review", "error", str(e), f"post-{pid}")
        return go("/review", anchor=f"post-{pid}")

    @app.post("/export")
    async def export(request: Request) -> Response:
        await form_of(request)
        if review_doc() is None:
            raise UserError("There is no review to export yet.")

        def work(job: Job) -> dict[str, Any]:
            return export_review(store, s.out, s.cfg, job)

        try:
            jobs.start(Job("export", "Exporting the reviewed posts"), work)
        except JobFailed as e:
            return go("/review", "error", str(e))
        return go("/review")

    # -- files ---------------------------------------------------------------------------------------------------

    # the file routes are plain functions: FastAPI runs them in worker threads, so image work never blocks the loop
    @app.get("/thumb/{sha}.jpg")
    def thumb(sha: str) -> Response:
        doc = review_doc()
        size = s.cfg.serve.thumb_size
        if doc is None:
            raise StarletteHTTPException(404)
        paths = [p for p, e in doc["photos"].items() if e["sha256"] == sha]
        allowed = [p for p in paths if within(p, [s.photo_root, s.out])]
        if not allowed:
            raise StarletteHTTPException(404)
        key = (sha, size)
        with thumbs_lock:
            data = thumbs.get(key)
        if data is None:
            data = make_thumb(s.cfg, sha, Path(allowed[0]), size)
            with thumbs_lock:
                thumbs[key] = data
                while len(thumbs) > 4000:
                    thumbs.popitem(last=False)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/files/photos/{rel:path}")
    def photo_file(rel: str) -> Response:
        try:
            target = safe_path(s.photo_root, rel)
        except UnsafePath as e:
            raise UserError(f"Not served: {e}.", 404) from None
        if target.suffix.lower() not in set(s.cfg.ingest.extensions):
            raise UserError("Not served: only photos are served from the photo folder.", 404)
        return FileResponse(target, headers=FILE_HEADERS)

    @app.get("/files/out/{rel:path}")
    def out_file(rel: str) -> Response:
        try:
            target = safe_path(s.out, rel)
        except UnsafePath as e:
            raise UserError(f"Not served: {e}.", 404) from None
        if target.suffix.lower() not in SERVED_OUT_SUFFIXES:
            raise UserError("Not served: this kind of file is not shown here.", 404)
        return FileResponse(target, headers=FILE_HEADERS)

    return app


# -- the parts that are not request handlers -------------------------------------------------------------------


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


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


def export_review(store: st.ReviewStore, out: Path, cfg: Config, job: Job | None = None) -> dict[str, Any]:
    """Write the reviewed posts with the render stage's own functions: OUT/posts/<id>/, posts.json, report.html.

    Posts left with no photos are not exported. Photos excluded by the editor appear in the report's set-aside
    list with the reason "excluded in review"."""
    from photopoet.core.cache import Cache, open_cache
    from photopoet.stages.ingest import decode_photo
    from photopoet.stages.render import posts_document, render_report, write_post_folders

    doc = store.load()
    if doc is None:
        raise JobFailed("there is no review to export")
    posts = [st.post_record(p, doc["photos"]) for p in doc["posts"] if p["photos"]]
    by_path = {path: st.understood_of(e) for path, e in doc["photos"].items()}
    missing_files = [p for post in posts for p in post.photos if not Path(p).is_file()]
    if missing_files:
        raise JobFailed(f"{missing_files[0]}: the photo is gone from its folder; move it out of its post to export")
    excluded_by_editor = [x for p in doc["posts"] for x in p["excluded"]]
    aside = [by_path[x] for x in doc["aside"]]
    aside += [replace(by_path[x], verdict="excluded", reason="excluded in review") for x in excluded_by_editor]
    excluded = [Excluded(e["path"], e["reason"]) for e in doc.get("excluded_files", [])]
    cache, _ = open_cache(cfg)
    with cache:
        assert isinstance(cache, Cache)
        needed = sorted({by_path[p].photo.sha256: p for post in posts for p in post.photos}.items())
        needed += sorted({u.photo.sha256: u.photo.path for u in aside}.items())
        have = set(cache.get_metas([sha for sha, _ in needed]))
        for sha, path in needed:  # working copies the report needs (a cleared or in-memory cache)
            if sha not in have and Path(path).is_file():
                meta, thumb = decode_photo(path, cfg.ingest.thumb_size, cfg.ingest.max_pixels)
                cache.put_photo(sha, meta, thumb)
                have.add(sha)
        aside = [u for u in aside if u.photo.sha256 in have]
        if job is not None:
            job.stage = "export"
        write_post_folders(out, posts, by_path, cfg.render, progress=True)
        photos = list(by_path.values())
        atomic_write_json(out / "posts.json", posts_document(photos, posts, excluded))
        render_report(
            out,
            doc.get("event") or out.resolve().name,
            posts,
            by_path,
            excluded,
            cache,
            cfg.render,
            n_files=len(photos) + len(excluded),
            set_aside=aside,
            plots=doc.get("plots", []),
        )
    sha = st.file_sha256(out / "posts.json")
    result = {
        "at": st._now(),
        "posts": len(posts),
        "photos": sum(len(p.photos) for p in posts),
        "revision": int(doc["revision"]) + 1,
    }

    def mark(d: dict[str, Any]) -> None:
        d["source_sha256"] = sha
        d["exported"] = result

    store.change(mark)
    return result
