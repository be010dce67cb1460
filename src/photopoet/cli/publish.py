"""`photopoet publish`: the Instagram publisher (dry run unless --live)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli.common import fail
from photopoet.cli.options import config_option, json_option
from photopoet.config import load_config

PublishConfigOpt = config_option("publish:")
PublishJsonOpt = json_option("Print JSON instead of text.")


def _show_request(r: dict) -> str:
    args = r.get("json") or r.get("params") or {}
    shown = []
    for k, v in args.items():
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        elif isinstance(v, bool):
            v = str(v).lower()
        v = str(v)
        if k == "caption":
            v = json.dumps(v if len(v) <= 60 else v[:57] + "...", ensure_ascii=False)
        shown.append(f"{k}={v}")
    return f"    {r['method']:<4} {r['url']}  {' '.join(shown)}"


def register(app: typer.Typer) -> None:
    app.command()(publish)


def publish(
    out: Annotated[Path, typer.Argument(help="Output folder of `photopoet run` (holds posts/<id>/).")],
    live: Annotated[
        bool, typer.Option("--live", help="Really publish to Instagram. Without it nothing is sent.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the Graph API calls it would make (the default).")
    ] = False,
    as_json: PublishJsonOpt = False,
    post: Annotated[list[str] | None, typer.Option("--post", "-p", help="Only this post id (repeatable).")] = None,
    config: PublishConfigOpt = None,
) -> None:
    """Publish the post folders in OUT to Instagram, or (the default) show
    exactly which Graph API calls would be made. Nothing is sent without --live.

    Each post is read from OUT/posts/<id>/: the photos listed in post.json,
    in order, and caption.txt as you left it (edit it before publishing).
    Posts that break Instagram's limits (2-10 photos per carousel, 2,200
    characters, 30 hashtags, JPEG 4:5 to 1.91:1) are listed with the reason
    and never sent.

    --live follows the content-publishing flow: a container per photo, a
    carousel container with the caption, a wait until Instagram has fetched
    the photos, then media_publish. It needs publish.base_url (the public
    address where OUT is served) and an access token in the environment
    variable publish.token_env (PHOTOPOET_IG_TOKEN); the token is never
    printed or stored. OUT/publish-ledger.json makes reruns safe: a post is
    never published twice, and a run that failed half-way resumes with the
    containers already made.
    """
    if live and dry_run:
        fail("choose --live or --dry-run, not both")
    cfg = load_config(config)
    from photopoet.errors import PublishError
    from photopoet.publish import dry_run as plan
    from photopoet.publish import publish_live

    only = list(post or [])
    if not out.is_dir():
        fail(f"{out}: no such folder")
    if not live:
        doc = plan(out, cfg.publish, only)
        blocked = [p for p in doc["posts"] if p["status"] == "blocked"]
        if as_json:
            typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        else:
            for p in doc["posts"]:
                n = len(p["media"])
                what = "single photo" if p["kind"] == "image" else f"carousel of {n} photos"
                typer.echo(f"post {p['id']}: {what}, {len(p['caption'])} characters, {p['hashtags']} hashtags")
                for e in p["errors"]:
                    typer.echo(f"  BLOCKED: {e}")
                for w in p["warnings"]:
                    typer.echo(f"  note: {w}")
                if p["status"] == "already_published":
                    pub = p["published"]
                    typer.echo(f"  already published {pub['published_at']} (media {pub['media_id']}): skipped")
                for r in p["requests"]:
                    typer.echo(_show_request(r))
            ready = sum(1 for p in doc["posts"] if p["status"] == "ready")
            typer.echo(
                f"dry run: nothing was sent. {ready} post{'s' if ready != 1 else ''} ready, {len(blocked)} "
                f"blocked, {len(doc['posts']) - ready - len(blocked)} already published."
            )
            if not cfg.publish.base_url:
                typer.echo("note: publish.base_url is not set; --live needs the public address of OUT")
            if os.environ.get(cfg.publish.token_env, "").strip():
                typer.echo(f"to publish: `photopoet publish {out} --live`")
            else:
                typer.echo(f"to publish: set {cfg.publish.token_env}, then `photopoet publish {out} --live`")
        if blocked:
            raise typer.Exit(1)
        return

    def log(line: str) -> None:
        typer.echo(line, err=as_json)

    try:
        results = publish_live(out, cfg.publish, only=only, log=log)
    except PublishError as e:  # publishing stopped: exit 1, as when a post failed (not 2, a command not started)
        fail(str(e), code=1)
    if as_json:
        typer.echo(json.dumps({"dry_run": False, "posts": [r.__dict__ for r in results]}, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if r.status in ("blocked", "failed", "not_started", "already_published"):
                typer.echo(f"post {r.id}: {r.status.replace('_', ' ')}: {r.message}")
        counts = {
            s: sum(1 for r in results if r.status == s)
            for s in ("published", "already_published", "blocked", "failed", "not_started")
        }
        typer.echo(
            f"{counts['published']} published, {counts['already_published']} already published, "
            f"{counts['blocked']} blocked, {counts['failed']} failed, {counts['not_started']} not started"
        )
    if any(r.status in ("failed", "blocked", "not_started") for r in results):
        raise typer.Exit(1)
