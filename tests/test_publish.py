"""`photopoet publish` against a fake Graph API server on 127.0.0.1 that records every request."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import RenderConfig, load_config
from photopoet.core.cache import Cache
from photopoet.errors import PublishError
from photopoet.publish import LEDGER_NAME, dry_run, load_posts, publish_live
from photopoet.records import Post, Understood
from photopoet.stages.ingest import ingest
from photopoet.stages.render import write_post_folders

TOKEN = "EAAG-secret-token-0123456789"
USER = "17841400000000001"


class FakeGraph:
    """Just enough of graph.instagram.com for the content-publishing flow, with failures on demand."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.requests: list[dict] = []
        self.containers: dict[str, dict] = {}
        self.published: list[dict] = []
        self.quota_usage = 0
        self.rules: list = []  # callables (req) -> (status, payload) | None, tried in order
        self.in_progress_polls = 1  # a new container answers IN_PROGRESS this many times first
        self._next = 9000
        self.lock = threading.RLock()

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def posts_of(self, kind: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith("/" + kind)]

    def handle(self, req: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(req)
            for rule in self.rules:
                got = rule(req)
                if got is not None:
                    return got
            if req["auth"] != f"Bearer {self.token}":
                return 400, {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "x",
                    }
                }
            parts = req["path"].strip("/").split("/")
            assert parts[0] == "v21.0", req["path"]
            parts = parts[1:]
            body = req["json"] or {}
            if req["method"] == "GET" and parts == ["me"]:
                return 200, {"user_id": USER, "username": "the_photo_club"}
            if req["method"] == "GET" and parts == [USER, "content_publishing_limit"]:
                return 200, {
                    "data": [{"quota_usage": self.quota_usage, "config": {"quota_total": 100, "quota_duration": 86400}}]
                }
            if req["method"] == "POST" and parts == [USER, "media"]:
                cid = self.new_id()
                if body.get("media_type") == "CAROUSEL":
                    kids = body["children"]
                    if not 2 <= len(kids) <= 10 or any(not self.containers.get(k, {}).get("item") for k in kids):
                        return 400, {"error": {"message": "bad children", "code": 100}}
                    self.containers[cid] = {
                        "kind": "carousel",
                        "children": kids,
                        "caption": body.get("caption"),
                        "polls": 0,
                        "status": "IN_PROGRESS",
                    }
                else:
                    assert body["image_url"].startswith("https://club.example.org/out/posts/")
                    self.containers[cid] = {
                        "kind": "item" if body.get("is_carousel_item") else "image",
                        "item": bool(body.get("is_carousel_item")),
                        "url": body["image_url"],
                        "caption": body.get("caption"),
                        "polls": 0,
                        "status": "IN_PROGRESS",
                    }
                return 200, {"id": cid}
            if req["method"] == "POST" and parts == [USER, "media_publish"]:
                c = self.containers.get(body.get("creation_id"))
                if not c or c["status"] != "FINISHED" or c.get("item"):
                    return 400, {"error": {"message": "container not ready", "code": 9007, "error_subcode": 2207027}}
                c["status"] = "PUBLISHED"
                mid = "1790" + self.new_id()
                self.published.append({"media": mid, "container": body["creation_id"], **c})
                self.quota_usage += 1
                return 200, {"id": mid}
            if req["method"] == "GET" and len(parts) == 1 and parts[0] in self.containers:
                c = self.containers[parts[0]]
                if c["status"] == "IN_PROGRESS":
                    c["polls"] += 1
                    if c["polls"] > self.in_progress_polls:
                        c["status"] = "FINISHED"
                        return 200, {
                            "status_code": "IN_PROGRESS" if c["polls"] <= self.in_progress_polls else "FINISHED",
                            "id": parts[0],
                        }
                return 200, {"status_code": c["status"], "id": parts[0]}
            if req["method"] == "GET" and len(parts) == 1 and any(p["media"] == parts[0] for p in self.published):
                return 200, {"permalink": f"https://www.instagram.com/p/{parts[0]}/", "id": parts[0]}
            return 404, {"error": {"message": f"unknown path {req['path']}", "code": 803}}


@pytest.fixture
def graph():
    fake = FakeGraph()

    class Handler(BaseHTTPRequestHandler):
        def _do(self):
            u = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            req = {
                "method": self.command,
                "path": u.path,
                "query": {k: v[0] for k, v in parse_qs(u.query).items()},
                "json": json.loads(raw) if raw else None,
                "auth": self.headers.get("Authorization"),
                "raw": self.requestline + "\n" + str(self.headers) + raw.decode(),
            }
            status, payload = fake.handle(req)
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _do

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def post_tree(tmp_path_factory, _photo_template):
    """OUT with a carousel of 4, a single photo and a carousel of 2, written by the real render stage."""
    root = tmp_path_factory.mktemp("pub")
    cache = Cache(root / "cache.sqlite3")
    res = ingest(_photo_template, load_config().ingest, cache, progress=False)
    cache.close()
    by_path = {p.path: Understood(photo=p) for p in res.photos}
    paths = sorted(by_path)
    posts = [
        Post(
            "01-aaaaaa", paths[:4], paths[0], "Highlights from the club night. Swipe for more", ["#photoclub", "#night"]
        ),
        Post("02-bbbbbb", paths[4:5], paths[4], "One frame.", ["#photoclub"]),
        Post("03-cccccc", [paths[1], paths[3]], paths[1], "Two more.", []),
    ]
    out = root / "out"
    write_post_folders(out, posts, by_path, RenderConfig(export_size=400, montage_tile=64), progress=False)
    return out


@pytest.fixture
def out(post_tree, tmp_path):
    import shutil

    dest = tmp_path / "out"
    shutil.copytree(post_tree, dest)
    return dest


def _cfg(graph=None, **publish):
    over = {
        "publish": {
            "base_url": "https://club.example.org/out",
            "backoff_seconds": 0,
            "status_poll_seconds": 0,
            "retries": 3,
            **publish,
        }
    }
    if graph is not None:
        over["publish"]["graph_url"] = graph.url
    return load_config(None, over).publish


def _ledger(out: Path) -> dict:
    return json.loads((out / LEDGER_NAME).read_text(encoding="utf-8"))


# --- dry run ---------------------------------------------------------------------------------------------------


def test_dry_run_json_lists_valid_carousels_and_sends_nothing(out, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    cfg_file = out.parent / "c.yaml"
    cfg_file.write_text("publish:\n  base_url: https://club.example.org/out/\n  ig_user_id: '42'\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["publish", str(out), "--dry-run", "--json", "--config", str(cfg_file)])
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output
    doc = json.loads(res.stdout)
    assert [p["id"] for p in doc["posts"]] == ["01-aaaaaa", "02-bbbbbb", "03-cccccc"]
    car = doc["posts"][0]
    assert car["kind"] == "carousel" and car["status"] == "ready" and car["errors"] == []
    assert car["media"] == [f"https://club.example.org/out/posts/01-aaaaaa/{i:02d}.jpg" for i in range(1, 5)]
    assert car["caption"] == (out / "posts" / "01-aaaaaa" / "caption.txt").read_text(encoding="utf-8").strip()
    reqs = car["requests"]
    base = "https://graph.instagram.com/v21.0/"
    assert reqs[0] == {
        "method": "GET",
        "url": base + "42/content_publishing_limit",
        "params": {"fields": "quota_usage,config"},
        "headers": {"Authorization": "Bearer $PHOTOPOET_IG_TOKEN"},
        "purpose": "check the 24-hour publishing limit",
    }
    items = [r for r in reqs if r["method"] == "POST" and r["json"].get("is_carousel_item")]
    assert [r["json"]["image_url"] for r in items] == car["media"]
    (carousel,) = [r for r in reqs if r["method"] == "POST" and r["json"].get("media_type") == "CAROUSEL"]
    assert carousel["url"] == base + "42/media"
    assert carousel["json"]["children"] == ["{container-01}", "{container-02}", "{container-03}", "{container-04}"]
    assert carousel["json"]["caption"] == car["caption"]
    assert reqs[-2] == {
        "method": "POST",
        "url": base + "42/media_publish",
        "json": {"creation_id": "{carousel-container}"},
        "headers": {"Authorization": "Bearer $PHOTOPOET_IG_TOKEN"},
        "purpose": "publish",
    }
    single = doc["posts"][1]
    assert single["kind"] == "image" and len(single["media"]) == 1
    (create,) = [r for r in single["requests"] if r["method"] == "POST" and r["url"].endswith("/media")]
    assert create["json"] == {"image_url": single["media"][0], "caption": single["caption"]}
    assert "is_carousel_item" not in create["json"] and "media_type" not in create["json"]
    # text output: the same calls, readable, and it says nothing was sent
    text = CliRunner().invoke(app, ["publish", str(out), "--config", str(cfg_file)])
    assert text.exit_code == 0 and "dry run: nothing was sent. 3 posts ready" in text.output
    assert "POST https://graph.instagram.com/v21.0/42/media_publish  creation_id={carousel-container}" in text.output
    assert not (out / LEDGER_NAME).exists()


def test_dry_run_uses_the_edited_caption_and_blocks_posts_beyond_the_limits(out):
    (out / "posts" / "01-aaaaaa" / "caption.txt").write_text("Edited by our editor.\n\n#one #two\n", encoding="utf-8")
    (out / "posts" / "03-cccccc" / "caption.txt").write_text(" ".join(f"#t{i}" for i in range(31)), encoding="utf-8")
    meta_file = out / "posts" / "02-bbbbbb" / "post.json"
    doc = dry_run(out, _cfg())
    assert doc["posts"][0]["caption"] == "Edited by our editor.\n\n#one #two"
    third = doc["posts"][2]
    assert third["status"] == "blocked" and "31 hashtags" in third["errors"][0] and third["requests"] == []
    # a photo Instagram would refuse (a 1:3 strip) is caught before anything is sent
    from PIL import Image

    Image.new("RGB", (200, 600)).save(out / "posts" / "02-bbbbbb" / "01.jpg")
    assert "aspect 0.33" in dry_run(out, _cfg())["posts"][1]["errors"][0]
    meta_file.write_text("{not json", encoding="utf-8")
    assert any("post.json" in e for e in dry_run(out, _cfg())["posts"][1]["errors"])
    res = CliRunner().invoke(app, ["publish", str(out)])
    assert res.exit_code == 1 and "BLOCKED: 31 hashtags" in res.output


def test_no_posts_folder_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["publish", str(tmp_path)])
    assert res.exit_code == 2 and "no posts/ folder" in res.output
    (tmp_path / "posts").mkdir()
    with pytest.raises(PublishError, match="no post 99"):
        load_posts(tmp_path, _cfg(), ["99"])


# --- live, against the fake server ------------------------------------------------------------------------------


def test_live_publishes_each_post_once_and_a_rerun_posts_nothing(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    results = publish_live(out, _cfg(graph), log=lambda s: None)
    assert [r.status for r in results] == ["published"] * 3
    assert len(graph.published) == 3
    car = graph.published[0]
    assert car["kind"] == "carousel" and len(car["children"]) == 4
    assert [graph.containers[c]["url"] for c in car["children"]] == [
        f"https://club.example.org/out/posts/01-aaaaaa/{i:02d}.jpg" for i in range(1, 5)
    ]
    assert car["caption"] == (out / "posts" / "01-aaaaaa" / "caption.txt").read_text(encoding="utf-8").strip()
    assert graph.published[1]["kind"] == "image"
    assert results[0].permalink == f"https://www.instagram.com/p/{results[0].media_id}/"
    # the flow: the token went in the header only; the account came from /me; status polled before publishing
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in graph.requests)
    assert all(TOKEN not in r["path"] and TOKEN not in json.dumps(r["query"]) for r in graph.requests)
    assert graph.requests[0]["path"] == "/v21.0/me"
    ledger = _ledger(out)
    entry = ledger["accounts"][USER]["posts"]["01-aaaaaa"]
    assert entry["status"] == "published" and entry["media_id"] == results[0].media_id
    assert set(entry["containers"]) == {"01.jpg", "02.jpg", "03.jpg", "04.jpg", "carousel"}
    before = len(graph.requests)
    again = publish_live(out, _cfg(graph), log=lambda s: None)
    assert [r.status for r in again] == ["already_published"] * 3
    assert len(graph.published) == 3
    assert not [r for r in graph.requests[before:] if r["method"] == "POST"]
    # and the dry run now says so
    assert [p["status"] for p in dry_run(out, _cfg())["posts"]] == ["already_published"] * 3


def test_failure_mid_carousel_resumes_with_the_containers_already_made(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    item3 = "https://club.example.org/out/posts/01-aaaaaa/03.jpg"

    def fail_item3(req):
        if req["method"] == "POST" and (req["json"] or {}).get("image_url") == item3:
            return 500, {"error": {"message": "An unexpected error has occurred.", "code": 2, "is_transient": True}}
        return None

    graph.rules.append(fail_item3)
    results = publish_live(out, _cfg(graph, ig_user_id=USER), only=["01-aaaaaa"], log=lambda s: None)
    assert results[0].status == "failed" and "HTTP 500" in results[0].message
    item3_posts = [r for r in graph.posts_of("media") if (r["json"] or {}).get("image_url") == item3]
    assert len(item3_posts) == 1 + 3  # the first try and three retries (publish.retries), then it gave up
    assert not graph.published
    entry = _ledger(out)["accounts"][USER]["posts"]["01-aaaaaa"]
    assert entry["status"] == "failed" and set(entry["containers"]) == {"01.jpg", "02.jpg"}
    made = {k: v["id"] for k, v in entry["containers"].items()}

    graph.rules.clear()  # the server recovers
    before = len(graph.requests)
    results = publish_live(out, _cfg(graph, ig_user_id=USER), only=["01-aaaaaa"], log=lambda s: None)
    assert results[0].status == "published" and len(graph.published) == 1
    created = [r["json"] for r in graph.requests[before:] if r["method"] == "POST" and r["path"].endswith("/media")]
    assert [c.get("image_url") for c in created if c.get("is_carousel_item")] == [
        item3,
        "https://club.example.org/out/posts/01-aaaaaa/04.jpg",
    ]  # 01 and 02 were reused, not made again
    assert graph.published[0]["children"][:2] == [made["01.jpg"], made["02.jpg"]]


def test_a_5xx_once_is_retried_within_the_run(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    state = {"n": 0}

    def flaky(req):
        if req["method"] == "POST" and req["path"].endswith("/media") and state["n"] < 2:
            state["n"] += 1
            return (
                (503, {"error": {"message": "Service temporarily unavailable", "code": 2}})
                if state["n"] == 1
                else (400, {"error": {"message": "Application request limit reached", "code": 4}})
            )
        return None

    graph.rules.append(flaky)
    waits: list[float] = []
    results = publish_live(
        out,
        _cfg(graph, backoff_seconds=1.0, backoff_max_seconds=60),
        only=["02-bbbbbb"],
        log=lambda s: None,
        sleep=waits.append,
    )
    assert results[0].status == "published" and len(graph.published) == 1
    backoff = [w for w in waits if w > 0]
    assert len(backoff) == 2 and 0.5 <= backoff[0] <= 1.0 and 1.0 <= backoff[1] <= 2.0  # doubled, with jitter


def test_lost_answer_to_media_publish_does_not_post_twice(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    state = {"dropped": False}

    def publish_then_drop(req):
        if req["path"].endswith("/media_publish") and not state["dropped"]:
            state["dropped"] = True
            graph.rules.remove(publish_then_drop)
            status, payload = graph.handle(req)  # it really publishes ...
            graph.requests.pop()  # (recorded once)
            assert status == 200
            return 0, {}  # ... but the connection drops before the answer

    graph.rules.append(publish_then_drop)
    results = publish_live(out, _cfg(graph), only=["03-cccccc"], log=lambda s: None)
    assert results[0].status == "published"
    assert len(graph.published) == 1 and len(graph.posts_of("media_publish")) == 1
    # the next run, too, knows it is out
    publish_live(out, _cfg(graph), only=["03-cccccc"], log=lambda s: None)
    assert len(graph.published) == 1


def test_rate_limit_reached_posts_nothing(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    graph.quota_usage = 100
    results = publish_live(out, _cfg(graph), log=lambda s: None)
    assert [r.status for r in results] == ["not_started"] * 3
    assert "publishing limit is reached" in results[0].message
    assert not graph.posts_of("media") and not graph.published
    # the ledger's own count stops it too, before the API is asked to publish more than daily_limit
    graph.quota_usage = 0
    results = publish_live(out, _cfg(graph, daily_limit=1), log=lambda s: None)
    assert [r.status for r in results] == ["published", "not_started", "not_started"]
    # Instagram refusing at publish time (code 9, subcode 2207042) stops the run as well
    graph.rules.append(
        lambda req: (
            (400, {"error": {"message": "You reached maximum number of posts", "code": 9, "error_subcode": 2207042}})
            if req["path"].endswith("/media_publish")
            else None
        )
    )
    results = publish_live(out, _cfg(graph), log=lambda s: None)
    assert [r.status for r in results] == ["already_published", "failed", "not_started"]
    assert len(graph.posts_of("media_publish")) == 2  # one success, one refusal; not retried


def test_bad_token_stops_at_once_and_the_token_is_never_shown(out, graph, monkeypatch, caplog):
    bad = "EAAG-wrong-token-9876543210"
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", bad)
    cfg_file = out.parent / "c.yaml"
    cfg_file.write_text(
        f"publish:\n  base_url: https://club.example.org/out\n  graph_url: {graph.url}\n"
        "  backoff_seconds: 0\n  status_poll_seconds: 0\n",
        encoding="utf-8",
    )
    caplog.set_level(logging.DEBUG)
    res = CliRunner().invoke(app, ["publish", str(out), "--live", "--config", str(cfg_file)])
    assert res.exit_code == 1
    assert "PHOTOPOET_IG_TOKEN was refused" in res.output and "Invalid OAuth access token" in res.output
    assert len(graph.requests) == 1  # an auth error is never retried
    assert bad not in res.output and bad not in caplog.text
    # a good run, with every log on, leaves the token in no output, log or file either
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    res = CliRunner().invoke(app, ["publish", str(out), "--live", "--json", "--config", str(cfg_file)])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["posts"]) == 3 and len(graph.published) == 3
    assert "HTTP Request: POST" in caplog.text  # httpx's own request log was on and captured
    for text in (
        res.output,
        caplog.text,
        *(
            p.read_text(encoding="utf-8", errors="replace")
            for p in out.rglob("*")
            if p.is_file() and p.suffix in (".json", ".txt")
        ),
    ):
        assert TOKEN not in text and bad not in text


def test_live_needs_base_url_and_token(out, monkeypatch):
    monkeypatch.delenv("PHOTOPOET_IG_TOKEN", raising=False)
    with pytest.raises(PublishError, match="publish.base_url is not set"):
        publish_live(out, load_config().publish)
    with pytest.raises(PublishError, match="set the environment variable PHOTOPOET_IG_TOKEN"):
        publish_live(out, _cfg())
    res = CliRunner().invoke(app, ["publish", str(out), "--live", "--dry-run"])
    assert res.exit_code == 2 and "not both" in res.output


def test_lost_publish_then_edited_caption_is_still_not_posted_twice(out, graph, monkeypatch):
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    state = {"published": False}

    def publish_then_go_dark(req):
        if req["path"].endswith("/media_publish") and not state["published"]:
            state["published"] = True
            graph.rules.remove(publish_then_go_dark)
            graph.handle(req)
            graph.requests.pop()
            graph.rules.append(lambda r: (503, {"error": {"message": "down", "code": 2}}))  # and then nothing answers
            return 0, {}
        return None

    graph.rules.append(publish_then_go_dark)
    (res,) = publish_live(out, _cfg(graph, ig_user_id=USER, retries=1), only=["03-cccccc"], log=lambda s: None)
    assert res.status == "failed" and len(graph.published) == 1
    assert _ledger(out)["accounts"][USER]["posts"]["03-cccccc"]["publish_requested_at"]
    # the editor changes the caption, Instagram answers again: photopoet asks before making anything new
    (out / "posts" / "03-cccccc" / "caption.txt").write_text("A better caption.\n", encoding="utf-8")
    graph.rules.clear()
    before = len(graph.requests)
    (res,) = publish_live(out, _cfg(graph, ig_user_id=USER), only=["03-cccccc"], log=lambda s: None)
    assert res.status == "published" and "answer was lost" in res.message
    assert len(graph.published) == 1
    assert not [r for r in graph.requests[before:] if r["method"] == "POST"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("publish:\n  base_url: ftp://club.example.org/\n", r"c\.yaml: publish\.base_url: .*must be an http\(s\) URL"),
        ("publish:\n  api_version: '21'\n", r"publish\.api_version: String should match pattern"),
        ("publish:\n  token_env: 'MY TOKEN'\n", r"publish\.token_env"),
        ("render:\n  pad_color: white\n", r"render\.pad_color: .*must be a colour like #ffffff"),
        ("render:\n  fit_aspect: stretch\n", r"render\.fit_aspect"),
    ],
)
def test_publish_and_render_settings_are_validated(tmp_path, yaml_text, message):
    from photopoet.errors import ConfigError

    f = tmp_path / "c.yaml"
    f.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(f)
    assert load_config(None, {"publish": {"base_url": "https://x.org/a"}}).publish.base_url == "https://x.org/a/"


def test_dry_run_does_not_ask_for_a_token_that_is_set(out, monkeypatch):
    """Issue 19: the dry run said 'set PHOTOPOET_IG_TOKEN' when it was already set."""
    monkeypatch.setenv("PHOTOPOET_IG_TOKEN", TOKEN)
    res = CliRunner().invoke(app, ["publish", str(out)])
    assert res.exit_code == 0, res.output
    assert "set PHOTOPOET_IG_TOKEN" not in res.output and f"photopoet publish {out} --live" in res.output
    assert TOKEN not in res.output
    monkeypatch.delenv("PHOTOPOET_IG_TOKEN")
    res = CliRunner().invoke(app, ["publish", str(out)])
    assert "set PHOTOPOET_IG_TOKEN" in res.output


def test_graph_url_must_be_https(tmp_path):
    """Issue 19: an http:// graph_url was accepted; the token would travel in clear text."""
    from photopoet.errors import ConfigError

    f = tmp_path / "c.yaml"
    f.write_text("publish:\n  graph_url: http://graph.instagram.com\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"publish\.graph_url: .*https"):
        load_config(f)
    assert load_config(None, {"publish": {"graph_url": "https://graph.facebook.com"}}).publish.graph_url == (
        "https://graph.facebook.com/"
    )
