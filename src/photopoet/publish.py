"""Publishing post folders to Instagram through the Graph API's content-publishing flow.

Flow (https://developers.facebook.com/docs/instagram-platform/content-publishing/, "Publish carousels" and
"Publish single images"; limits in https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/
reference/ig-user/content_publishing_limit; error codes in https://developers.facebook.com/docs/instagram-platform/
instagram-graph-api/reference/error-codes):

1. ``POST /<IG_ID>/media`` with ``image_url`` and ``is_carousel_item=true`` for every photo of a carousel: one
   item container each (a single photo: one container with ``image_url`` and ``caption``),
2. ``POST /<IG_ID>/media`` with ``media_type=CAROUSEL``, ``children`` (the item containers) and ``caption``,
3. ``GET /<CONTAINER_ID>?fields=status_code`` until ``FINISHED`` (``IN_PROGRESS``; ``ERROR`` and ``EXPIRED`` mean
   make it again; ``PUBLISHED`` means it already went out),
4. ``POST /<IG_ID>/media_publish`` with ``creation_id``.

Accounts may publish 100 posts in a moving 24 hours through the API (a carousel counts as one);
``GET /<IG_ID>/content_publishing_limit?fields=quota_usage,config`` says how many are used. Containers expire after
24 hours. The images must be at public URLs: ``publish.base_url`` is where OUT is served.

Nothing is posted twice: a ledger (OUT/publish-ledger.json, written atomically after every step) records each
container and each published media id per account. A rerun skips published posts, reuses the containers that are
still valid, and before retrying a publish whose answer was lost asks the container whether it was published.

The access token is read from an environment variable, sent in the Authorization header (never in a URL), and
removed from every message photopoet prints or stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from photopoet.config import PublishConfig
from photopoet.core.files import atomic_write_json
from photopoet.errors import PhotopoetError, PublishError
from photopoet.instagram import MAX_IMAGE_BYTES, aspect_ok, check_post, hashtags_in, post_kind

LEDGER_NAME = "publish-ledger.json"
LEDGER_VERSION = 1

# Graph API error codes (error-codes page above and the Graph API's "Handling errors" guide)
AUTH_CODES = {102, 190, 10, 200, 3}  # bad or expired token, missing permission: retrying cannot help
THROTTLE_CODES = {4, 17, 32, 613, 80002}  # app, user, page and Instagram call-rate limits: wait and retry
PUBLISH_LIMIT = (9, 2207042)  # "You reached maximum number of posts that is allowed to be published"
TRANSIENT_SUBCODES = {2207001, 2207003, 2207032}  # server error, download timeout, create failed: try again
EXPIRED_SUBCODE = 2207020  # "The media you are trying to access has expired": make a new container


class _AlreadyPublished(PhotopoetError):
    """A container of this post says PUBLISHED: the post is out."""


class GraphError(PhotopoetError, RuntimeError):
    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.subcode, self.transient = status, code, subcode, transient

    @property
    def is_auth(self) -> bool:
        return self.code in AUTH_CODES or (self.code is None and self.status in (401, 403))

    @property
    def is_limit(self) -> bool:
        return (self.code, self.subcode) == PUBLISH_LIMIT

    @property
    def retryable(self) -> bool:
        if self.is_auth or self.is_limit:
            return False
        return (
            self.status is None  # network error
            or self.status >= 500
            or self.status == 429
            or self.code in THROTTLE_CODES
            or self.subcode in TRANSIENT_SUBCODES
            or self.transient
        )


# --- reading the post folders ---------------------------------------------------------------------------------


@dataclass
class PlannedPost:
    id: str
    folder: Path
    files: list[str]
    media: list[str]  # public URLs of the photos, in order
    caption: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return post_kind(len(self.files))

    @property
    def fingerprint(self) -> str:
        """Changes when the photos or the caption change: a carousel container is only reused for the same post."""
        data = json.dumps({"media": self.media, "caption": self.caption, "sha": self.file_shas}, sort_keys=True)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()

    file_shas: list[str] = field(default_factory=list)


def media_url(base_url: str | None, post_id: str, name: str) -> str:
    rel = f"posts/{post_id}/{name}"
    return (base_url + rel) if base_url else "{publish.base_url}" + rel


def _check_image(path: Path) -> list[str]:
    problems = []
    try:
        size = path.stat().st_size
    except OSError as e:
        return [f"{path.name}: cannot read ({e.strerror or e})"]
    if size > MAX_IMAGE_BYTES:
        problems.append(f"{path.name}: {size / 2**20:.1f} MB; Instagram takes JPEGs up to 8 MB")
    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                problems.append(f"{path.name}: a {im.format} file; Instagram's API takes only JPEG")
            if not aspect_ok(*im.size):
                w, h = im.size
                problems.append(
                    f"{path.name}: {w}x{h} (aspect {w / h:.2f}); Instagram takes 0.80 (4:5) to 1.91 "
                    "(render.fit_aspect: pad fixes this on the next run)"
                )
    except (OSError, UnidentifiedImageError) as e:
        problems.append(f"{path.name}: not a readable image ({e})")
    return problems


def load_posts(out: Path, cfg: PublishConfig, only: Sequence[str] = ()) -> list[PlannedPost]:
    """The posts under OUT/posts/, in order, each with its public URLs, its caption (caption.txt, as the editor
    left it) and what stops it from being published."""
    root = Path(out) / "posts"
    if not root.is_dir():
        raise PublishError(f"{out}: no posts/ folder here; give the output folder of `photopoet run`")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if only:
        known = {d.name for d in folders}
        unknown = [x for x in only if x not in known]
        if unknown:
            names = sorted(known)
            listing = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            raise PublishError(f"{root}: no post {', '.join(unknown)} (posts here: {listing or 'none'})")
        folders = [d for d in folders if d.name in set(only)]
    posts = []
    for d in folders:
        errors: list[str] = []
        warnings: list[str] = []
        meta: dict[str, Any] = {}
        try:
            meta = json.loads((d / "post.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            errors.append(f"post.json: {getattr(e, 'strerror', None) or e}")
            meta = {}
        listed = [f.get("file") for f in meta.get("files", []) if isinstance(f, dict) and f.get("file")]
        files = listed or sorted(p.name for p in d.glob("[0-9][0-9].jpg"))
        shas = [f.get("sha256", "") for f in meta.get("files", []) if isinstance(f, dict)] if listed else []
        for name in files:
            if not (d / name).is_file():
                errors.append(f"{name}: listed in post.json but missing from the folder")
            else:
                errors += _check_image(d / name)
        try:
            caption = (d / "caption.txt").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            caption = ""
            warnings.append("no caption.txt: posted without a caption")
        except (OSError, UnicodeDecodeError) as e:
            caption = ""
            errors.append(f"caption.txt: cannot read ({e})")
        errors += check_post(len(files), caption)
        if meta.get("caption_edited"):
            warnings.append("caption.txt was edited by hand")
        posts.append(
            PlannedPost(
                id=d.name,
                folder=d,
                files=files,
                media=[media_url(cfg.base_url, d.name, f) for f in files],
                caption=caption,
                errors=errors,
                warnings=warnings,
                file_shas=shas,
            )
        )
    return posts


# --- the requests ----------------------------------------------------------------------------------------------


def _api(cfg: PublishConfig, path: str) -> str:
    return f"{cfg.graph_url}{cfg.api_version}/{path}"


def planned_requests(post: PlannedPost, cfg: PublishConfig, ig_user: str | None = None) -> list[dict[str, Any]]:
    """The Graph API calls publishing `post` takes, in order; ids not known before the calls are placeholders
    like {container-01} and {media-id}. The token is named by its variable, never shown."""
    user = ig_user or cfg.ig_user_id or "{ig-user-id}"
    auth = {"Authorization": f"Bearer ${cfg.token_env}"}
    reqs: list[dict[str, Any]] = [
        {
            "method": "GET",
            "url": _api(cfg, f"{user}/content_publishing_limit"),
            "params": {"fields": "quota_usage,config"},
            "headers": auth,
            "purpose": "check the 24-hour publishing limit",
        }
    ]
    if post.kind == "image":
        container = "{container}"
        reqs.append(
            {
                "method": "POST",
                "url": _api(cfg, f"{user}/media"),
                "json": {"image_url": post.media[0], "caption": post.caption},
                "headers": auth,
                "purpose": "image container",
            }
        )
    else:
        children = []
        for name, url in zip(post.files, post.media, strict=True):
            ph = "{container-" + Path(name).stem + "}"
            children.append(ph)
            reqs.append(
                {
                    "method": "POST",
                    "url": _api(cfg, f"{user}/media"),
                    "json": {"image_url": url, "is_carousel_item": True},
                    "headers": auth,
                    "purpose": f"carousel item {name}",
                }
            )
            reqs.append(
                {
                    "method": "GET",
                    "url": _api(cfg, ph),
                    "params": {"fields": "status_code"},
                    "headers": auth,
                    "purpose": "wait until FINISHED",
                }
            )
        container = "{carousel-container}"
        reqs.append(
            {
                "method": "POST",
                "url": _api(cfg, f"{user}/media"),
                "json": {"media_type": "CAROUSEL", "children": children, "caption": post.caption},
                "headers": auth,
                "purpose": "carousel container",
            }
        )
    reqs += [
        {
            "method": "GET",
            "url": _api(cfg, container),
            "params": {"fields": "status_code"},
            "headers": auth,
            "purpose": "wait until FINISHED",
        },
        {
            "method": "POST",
            "url": _api(cfg, f"{user}/media_publish"),
            "json": {"creation_id": container},
            "headers": auth,
            "purpose": "publish",
        },
        {
            "method": "GET",
            "url": _api(cfg, "{media-id}"),
            "params": {"fields": "permalink"},
            "headers": auth,
            "purpose": "the post's address",
        },
    ]
    return reqs


# --- the ledger ------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


class Ledger:
    """OUT/publish-ledger.json: per account, per post, the containers made and the media published."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"version": LEDGER_VERSION, "accounts": {}}
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise PublishError(
                    f"{path}: the publishing ledger cannot be read ({e}); it records what was already posted, so "
                    "photopoet will not publish without it. Repair or move it (it is JSON)."
                ) from None
            if not isinstance(doc, dict) or doc.get("version") != LEDGER_VERSION:
                raise PublishError(f"{path}: not a photopoet publishing ledger (version {LEDGER_VERSION})")
            self.doc = doc

    def posts(self, account: str) -> dict[str, Any]:
        return self.doc["accounts"].setdefault(account, {"posts": {}})["posts"]

    def entry(self, account: str, post_id: str) -> dict[str, Any] | None:
        return self.doc["accounts"].get(account, {}).get("posts", {}).get(post_id)

    def find_published(self, post_id: str) -> tuple[str, dict[str, Any]] | None:
        for account, acc in self.doc["accounts"].items():
            e = acc.get("posts", {}).get(post_id)
            if e and e.get("status") == "published":
                return account, e
        return None

    def published_since(self, account: str, since: datetime) -> int:
        n = 0
        for e in self.doc["accounts"].get(account, {}).get("posts", {}).values():
            t = _parse(e.get("published_at"))
            if e.get("status") == "published" and t and t >= since:
                n += 1
        return n

    def save(self) -> None:
        atomic_write_json(self.path, self.doc)


# --- live publishing -------------------------------------------------------------------------------------------


@dataclass
class PostResult:
    id: str
    status: str  # published | already_published | blocked | failed | not_started
    media_id: str | None = None
    permalink: str | None = None
    message: str = ""


class GraphClient:
    """The few Graph API calls publishing needs, with retries and exponential backoff (jittered) on 5xx, network
    errors and throttling codes; never on authentication errors."""

    def __init__(
        self,
        cfg: PublishConfig,
        token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: Any = None,
        log: Callable[[str], None] = lambda s: None,
    ) -> None:
        import httpx

        self.cfg = cfg
        self._token = token
        self.sleep = sleep
        self.log = log
        self.http = httpx.Client(
            timeout=cfg.timeout_seconds,
            headers={"Authorization": f"Bearer {token}"},
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def redact(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    def _once(self, method: str, path: str, *, params: dict | None = None, body: dict | None = None) -> dict:
        import httpx

        url = _api(self.cfg, path)
        try:
            resp = self.http.request(method, url, params=params, json=body)
        except httpx.HTTPError as e:  # network: connection refused, reset, timeout
            raise GraphError(self.redact(f"{method} {path}: network error: {type(e).__name__}: {e}")) from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400 or (isinstance(data, dict) and "error" in data):
            err = data.get("error", {}) if isinstance(data, dict) else {}
            err = err if isinstance(err, dict) else {}
            msg = err.get("error_user_msg") or err.get("message") or resp.text[:200] or resp.reason_phrase
            raise GraphError(
                self.redact(
                    f"{method} {path}: HTTP {resp.status_code}: {msg}"
                    + (
                        f" (code {err.get('code')}"
                        + (f", subcode {err.get('error_subcode')}" if err.get("error_subcode") else "")
                        + ")"
                        if err.get("code") is not None
                        else ""
                    )
                ),
                status=resp.status_code,
                code=err.get("code") if isinstance(err.get("code"), int) else None,
                subcode=err.get("error_subcode") if isinstance(err.get("error_subcode"), int) else None,
                transient=bool(err.get("is_transient")),
            )
        if not isinstance(data, dict):
            raise GraphError(f"{method} {path}: HTTP {resp.status_code}: the answer is not JSON", status=502)
        return data

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: dict | None = None,
        before_retry: Callable[[], dict | None] | None = None,
    ) -> dict:
        """One call, retried on what a retry can fix. `before_retry` may answer instead of a retry (it checks
        whether a publish that seemed to fail went through)."""
        attempt = 0
        while True:
            try:
                return self._once(method, path, params=params, body=body)
            except GraphError as e:
                if not e.retryable or attempt >= self.cfg.retries:
                    raise
                wait = min(self.cfg.backoff_max_seconds, self.cfg.backoff_seconds * 2**attempt)
                wait *= 0.5 + random.random() / 2
                self.log(f"  {e}; retry {attempt + 1} of {self.cfg.retries} in {wait:.1f} s")
                self.sleep(wait)
                attempt += 1
                if before_retry is not None:
                    answer = before_retry()
                    if answer is not None:
                        return answer


class Publisher:
    def __init__(self, out: Path, cfg: PublishConfig, client: GraphClient, *, log: Callable[[str], None]) -> None:
        self.out = Path(out)
        self.cfg = cfg
        self.client = client
        self.log = log
        self.ledger = Ledger(self.out / LEDGER_NAME)
        self.account = ""

    # the account and the limit
    def resolve_account(self) -> str:
        if self.cfg.ig_user_id:
            self.account = self.cfg.ig_user_id
        else:
            me = self.client.call("GET", "me", params={"fields": "user_id,username"})
            self.account = str(me.get("user_id") or me.get("id") or "")
            if not self.account:
                raise PublishError("GET /me gave no user_id; set publish.ig_user_id in the config")
        return self.account

    def quota_left(self) -> int:
        """Posts this account may still publish in the moving 24 hours: the API's count, and the ledger's."""
        local = self.cfg.daily_limit - self.ledger.published_since(self.account, _now() - timedelta(hours=24))
        try:
            data = self.client.call(
                "GET", f"{self.account}/content_publishing_limit", params={"fields": "quota_usage,config"}
            )
        except GraphError as e:
            if e.is_auth:
                raise
            self.log(f"  could not read the publishing limit ({e}); counting from the ledger")
            return local
        rows = data.get("data") or [{}]
        row = rows[0] if isinstance(rows[0], dict) else {}
        usage = row.get("quota_usage")
        total = (row.get("config") or {}).get("quota_total") or self.cfg.daily_limit
        if not isinstance(usage, int):
            return local
        return min(local, int(total) - usage)

    # containers
    def _status(self, container: str) -> str:
        data = self.client.call("GET", container, params={"fields": "status_code"})
        return str(data.get("status_code") or "")

    def _wait_finished(self, container: str) -> str:
        """FINISHED, PUBLISHED, ERROR or EXPIRED; raises GraphError when it stays IN_PROGRESS too long."""
        deadline = time.monotonic() + self.cfg.status_timeout_seconds
        while True:
            status = self._status(container)
            if status != "IN_PROGRESS" and status:
                return status
            if time.monotonic() >= deadline:
                raise GraphError(
                    f"container {container} still {status or 'without status'} after "
                    f"{self.cfg.status_timeout_seconds:g} s",
                    status=504,
                )
            self.client.sleep(self.cfg.status_poll_seconds)

    def _fresh(self, rec: dict[str, Any] | None) -> bool:
        t = _parse((rec or {}).get("created_at"))
        return bool(rec and rec.get("id") and t and _now() - t < timedelta(hours=self.cfg.container_max_age_hours))

    def _container(self, entry: dict, key: str, body: dict, match: dict, label: str) -> str:
        """A FINISHED container for `body`: the ledger's one if it was made for the same thing and is still valid,
        else a new one (recorded in the ledger before it is waited on)."""
        rec = entry["containers"].get(key)
        if rec and all(rec.get(k) == v for k, v in match.items()) and self._fresh(rec):
            try:
                status = self._wait_finished(rec["id"])
            except GraphError as e:
                if e.is_auth or e.is_limit:
                    raise
                status = f"unreadable ({e})"
            if status == "PUBLISHED":  # this post went out already: never make it again
                raise _AlreadyPublished(rec["id"])
            if status == "FINISHED":
                self.log(f"  {label}: reusing container {rec['id']}")
                return rec["id"]
            self.log(f"  {label}: container {rec['id']} is {status}; making a new one")
        made = self.client.call("POST", f"{self.account}/media", body=body)
        cid = str(made.get("id") or "")
        if not cid:
            raise GraphError(f"POST media for {label}: no container id in the answer", status=502)
        entry["containers"][key] = {**match, "id": cid, "created_at": _iso(_now())}
        self.ledger.save()
        status = self._wait_finished(cid)
        if status != "FINISHED":
            raise GraphError(f"{label}: container {cid} ended {status}", status=400)
        self.log(f"  {label}: container {cid}")
        return cid

    def publish_post(self, post: PlannedPost) -> PostResult:
        posts = self.ledger.posts(self.account)
        entry = posts.setdefault(post.id, {"status": "in_progress", "containers": {}})
        entry.setdefault("containers", {})

        # a publish was sent before and its answer was lost: did it go out? Asked before anything else (even if
        # the caption changed since); when Instagram cannot say, the post is left alone rather than risk a double
        if entry.get("publish_requested_at"):
            for key in ("carousel", "image"):
                rec = entry["containers"].get(key)
                if not rec:
                    continue
                try:
                    status = self._status(rec["id"])
                except GraphError as e:
                    if e.is_auth:
                        raise
                    raise GraphError(
                        f"an earlier run asked to publish container {rec['id']} and got no answer; its status "
                        f"cannot be read now ({e}), so it is not published again. Run again later.",
                        status=e.status,
                    ) from None
                if status == "PUBLISHED":
                    return self._done(entry, post, None, "published by an earlier run whose answer was lost")

        if entry.get("fingerprint") not in (None, post.fingerprint):
            # photos or caption changed since the containers were made: the carousel container must be made again
            entry["containers"].pop("carousel", None)
            entry["containers"].pop("image", None)
            entry.pop("publish_requested_at", None)
        entry["fingerprint"] = post.fingerprint
        entry["status"] = "in_progress"
        entry.pop("error", None)
        self.ledger.save()

        try:
            return self._make_and_publish(post, entry)
        except _AlreadyPublished:
            return self._done(entry, post, None, "published by an earlier run")

    def _make_and_publish(self, post: PlannedPost, entry: dict) -> PostResult:
        if post.kind == "image":
            cid = self._container(
                entry,
                "image",
                {"image_url": post.media[0], "caption": post.caption},
                {"url": post.media[0], "fingerprint": post.fingerprint},
                post.files[0],
            )
        else:
            children = []
            for name, url, sha in zip(post.files, post.media, post.file_shas or [""] * len(post.files), strict=True):
                children.append(
                    self._container(
                        entry, name, {"image_url": url, "is_carousel_item": True}, {"url": url, "sha256": sha}, name
                    )
                )
            cid = self._container(
                entry,
                "carousel",
                {"media_type": "CAROUSEL", "children": children, "caption": post.caption},
                {"children": children, "fingerprint": post.fingerprint},
                "carousel",
            )

        entry["publish_requested_at"] = _iso(_now())
        self.ledger.save()

        def already_published() -> dict | None:
            try:
                return {"id": None} if self._status(cid) == "PUBLISHED" else None
            except GraphError:
                return None

        try:
            res = self.client.call(
                "POST", f"{self.account}/media_publish", body={"creation_id": cid}, before_retry=already_published
            )
        except GraphError as e:
            if e.subcode == EXPIRED_SUBCODE:  # the containers expired: the next run makes them again
                entry["containers"] = {}
                entry.pop("publish_requested_at", None)
            raise
        return self._done(entry, post, res.get("id"), "")

    def _done(self, entry: dict, post: PlannedPost, media_id: str | None, note: str) -> PostResult:
        entry["status"] = "published"
        entry["media_id"] = media_id
        entry["published_at"] = _iso(_now())
        permalink = None
        if media_id:
            try:
                permalink = self.client.call("GET", str(media_id), params={"fields": "permalink"}).get("permalink")
            except GraphError as e:
                self.log(f"  (could not read the post's address: {e})")
        entry["permalink"] = permalink
        self.ledger.save()
        return PostResult(post.id, "published", media_id, permalink, note)

    def run(self, posts: Sequence[PlannedPost]) -> list[PostResult]:
        self.resolve_account()
        results: list[PostResult] = []
        todo = []
        for post in posts:
            prev = self.ledger.entry(self.account, post.id)
            if prev and prev.get("status") == "published":
                results.append(
                    PostResult(
                        post.id,
                        "already_published",
                        prev.get("media_id"),
                        prev.get("permalink"),
                        f"already published {prev.get('published_at')}; not posted again",
                    )
                )
            elif post.errors:
                results.append(PostResult(post.id, "blocked", message="; ".join(post.errors)))
            else:
                todo.append(post)
        stop: str | None = None
        for post in todo:
            if stop:
                results.append(PostResult(post.id, "not_started", message=stop))
                continue
            left = self.quota_left()
            if left <= 0:
                stop = (
                    "Instagram's publishing limit is reached (posts in the last 24 hours); run again later, "
                    "published posts will not be posted twice"
                )
                results.append(PostResult(post.id, "not_started", message=stop))
                continue
            self.log(f"post {post.id}: {post.kind} of {len(post.files)} photo{'s' if len(post.files) > 1 else ''}")
            try:
                res = self.publish_post(post)
            except GraphError as e:
                if e.is_auth:
                    self._fail(post, str(e))
                    raise PublishError(
                        f"the access token in ${self.cfg.token_env} was refused ({e}); get a new token with the "
                        "instagram_business_content_publish permission"
                    ) from None
                self._fail(post, str(e))
                if e.is_limit:
                    stop = f"Instagram's publishing limit is reached: {e}"
                results.append(PostResult(post.id, "failed", message=str(e)))
                continue
            self.log(f"  published: media {res.media_id or '(id unknown)'} {res.permalink or ''}".rstrip())
            results.append(res)
        order = {p.id: i for i, p in enumerate(posts)}
        return sorted(results, key=lambda r: order.get(r.id, 0))

    def _fail(self, post: PlannedPost, message: str) -> None:
        entry = self.ledger.posts(self.account).get(post.id)
        if entry is not None:
            entry["status"] = "failed"
            entry["error"] = message
            entry["failed_at"] = _iso(_now())
            self.ledger.save()


def dry_run(out: Path, cfg: PublishConfig, only: Sequence[str] = ()) -> dict[str, Any]:
    """The document `photopoet publish --dry-run --json` prints: every post, its media, caption, problems and the
    exact calls publishing it would make. Nothing is sent."""
    posts = load_posts(out, cfg, only)
    ledger = Ledger(Path(out) / LEDGER_NAME)
    doc_posts = []
    for p in posts:
        done = ledger.find_published(p.id)
        if done:
            status, requests = "already_published", []
        elif p.errors:
            status, requests = "blocked", []
        else:
            status, requests = "ready", planned_requests(p, cfg)
        item: dict[str, Any] = {
            "id": p.id,
            "kind": p.kind,
            "media": p.media,
            "caption": p.caption,
            "hashtags": len(hashtags_in(p.caption)),
            "status": status,
            "errors": p.errors,
            "warnings": p.warnings,
            "requests": requests,
        }
        if done:
            item["published"] = {
                "account": done[0],
                "media_id": done[1].get("media_id"),
                "published_at": done[1].get("published_at"),
            }
        doc_posts.append(item)
    return {"dry_run": True, "base_url": cfg.base_url, "posts": doc_posts}


def publish_live(
    out: Path,
    cfg: PublishConfig,
    *,
    only: Sequence[str] = (),
    log: Callable[[str], None] = print,
    transport: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PostResult]:
    """Publish the ready posts under OUT. Raises PublishError when publishing cannot start or must stop."""
    if not cfg.base_url:
        raise PublishError(
            "publish.base_url is not set: Instagram fetches the photos from public URLs; serve OUT on the web and "
            "set publish.base_url to its address (posts/<id>/01.jpg is fetched at base_url + that path)"
        )
    token = os.environ.get(cfg.token_env, "").strip()
    if not token:
        raise PublishError(f"no access token: set the environment variable {cfg.token_env} (publish.token_env)")
    posts = load_posts(out, cfg, only)
    client = GraphClient(cfg, token, sleep=sleep, transport=transport, log=log)
    try:
        pub = Publisher(out, cfg, client, log=lambda s: log(client.redact(s)))
        try:
            return pub.run(posts)
        except GraphError as e:
            if e.is_auth:
                raise PublishError(
                    f"the access token in ${cfg.token_env} was refused ({e}); get a new token with the "
                    "instagram_business_content_publish permission"
                ) from None
            raise PublishError(str(e)) from None
    finally:
        client.close()
