"""`photopoet serve`: the review web UI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli.common import fail
from photopoet.cli.options import ConfigOpt, out_option
from photopoet.config import load_config

ServeOutOpt = out_option("Output folder: posts, report, the saved review (review.json), uploads.")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    photos: Annotated[
        Path,
        typer.Argument(help="Photo folder: runs are started on it or on a folder under it. Never modified."),
    ] = Path("."),
    out: ServeOutOpt = Path("photopoet-review"),
    host: Annotated[
        str, typer.Option(help="Address to listen on. The default keeps the app on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    config: ConfigOpt = None,
) -> None:
    """Review posts in a web browser: run photopoet on PHOTOS (or on uploaded photos) with live progress, then
    include/exclude, move and reorder photos, change covers, edit captions and hashtags, write new captions,
    haiku and poems for one post, and export.

    Every change is saved at once to OUT/review.json, so a reload or a restart loses nothing. Open the address
    it prints in a browser. Only photos under PHOTOS and files under OUT are ever served.
    """
    from photopoet.core.folders import check_folders, check_photo_folder
    from photopoet.web.safety import is_loopback

    cfg = load_config(config)
    check_photo_folder(photos)
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    # only refused when OUT is inside PHOTOS (the output must never land in the user's folder)
    check_folders(photos, out)
    if not is_loopback(host):
        typer.echo(
            f"photopoet: warning: listening on {host}: anyone who can reach this machine on port {port} can see "
            "the photos and change the review. Use --host 127.0.0.1 (the default) to keep it on this machine.",
            err=True,
        )
    import uvicorn

    from photopoet.web.app import Settings, create_app

    app = create_app(Settings(photo_root=photos.resolve(), out=out.resolve(), cfg=cfg, host=host, port=port))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"photopoet review: http://{shown}:{port}/  (photos: {photos.resolve()}, output: {out.resolve()})")
    typer.echo("Press Ctrl+C to stop; the review is saved as you go.")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as e:  # pragma: no cover - port in use and the like
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
