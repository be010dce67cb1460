"""What `photopoet caption`, `haiku` and `poem` share: the posts named on the command line, the progress bar
over their photos, and how a post's result is printed.

A post is a folder (its photos), the loose photo files given together, or a line of a ``--posts`` JSON-lines
file. All posts of a call share one set of models and their texts are generated in one batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli.common import jsonl_records

ImagesArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Photo files (together one post) and/or folders (one post each: the photos in it)."),
]
PostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--posts",
        help='JSON-lines file, one post a line: {"images": [paths], "id", "event", "labels"} (only images is '
        "required; relative paths are read from the file's folder).",
    ),
]

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"})


@dataclass(frozen=True)
class PostArg:
    """One post to write for: a folder, the loose files of the command line, or a line of ``--posts``."""

    id: str  # the folder path, the JSONL id (else FILE:LINE), or the loose files' names joined by "|"
    images: tuple[Path, ...]
    event: str | None = None  # from the JSONL line; None: the command's default
    labels: tuple[str, ...] | None = None  # from the JSONL line; None: the command's default
    kind: str = "files"  # "files", "folder" or "line"


def folder_photos(folder: Path) -> list[Path]:
    """The photo files directly inside `folder`, sorted by name (unreadable folder: reported, none)."""
    try:
        found = [p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()]
    except OSError as e:
        typer.echo(f"skipped {folder}: cannot list the folder ({e.strerror or e})", err=True)
        return []
    return sorted(found, key=lambda p: p.name)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def read_posts_file(path: Path) -> list[PostArg]:
    """The posts of a JSON-lines file; bad lines are reported on stderr (FILE:LINE: reason) and skipped."""
    out: list[PostArg] = []
    for n, rec in jsonl_records(path):
        problem = None
        if not isinstance(rec, dict):
            problem = 'expected an object {"images": [paths], ...}'
        elif not _str_list(rec.get("images")) or not rec["images"]:
            problem = '"images" must be a non-empty list of paths'
        elif rec.get("id") is not None and not isinstance(rec["id"], str):
            problem = '"id" must be a string'
        elif rec.get("event") is not None and not isinstance(rec["event"], str):
            problem = '"event" must be a string'
        elif rec.get("labels") is not None and not _str_list(rec["labels"]):
            problem = '"labels" must be a list of strings'
        if problem is not None:
            typer.echo(f"{path}:{n}: {problem}; skipped", err=True)
            continue
        images = tuple(p if p.is_absolute() else path.parent / p for p in (Path(x).expanduser() for x in rec["images"]))
        labels = rec.get("labels")
        out.append(
            PostArg(
                id=rec.get("id") or f"{path}:{n}",
                images=images,
                event=rec.get("event") or None,
                labels=None if labels is None else tuple(x.strip() for x in labels if x.strip()),
                kind="line",
            )
        )
    return out


def collect_posts(images: Sequence[Path] | None, posts_file: Path | None) -> list[PostArg]:
    """The posts of a command: each folder given, the loose files given (together one post, where the first of
    them stands), then the lines of `posts_file`."""
    out: list[PostArg] = []
    loose = [p for p in images or () if not p.is_dir()]
    for p in images or ():
        if p.is_dir():
            out.append(PostArg(id=str(p), images=tuple(folder_photos(p)), kind="folder"))
        elif loose:
            out.append(PostArg(id="|".join(x.name for x in loose), images=tuple(loose)))
            loose = []
    if posts_file is not None:
        out.extend(read_posts_file(posts_file))
    return out


def no_usable_post(posts: Sequence[PostArg], batch: bool, what: str = "photo") -> str:
    """The one-line error when no post has a readable photo."""
    if batch:
        return f"no post with a readable {what} among the {len(posts)} given"
    if posts and posts[0].kind == "folder":
        return f"no readable {what} in {posts[0].id}"
    return f"no readable {what} among the files given"


def report_unusable(post: PostArg, batch: bool) -> None:
    """Say that a post is left out (only where there are several: one post gets the error line instead)."""
    if batch:
        why = "no photo in it" if not post.images else "none of its photos could be read"
        typer.echo(f"skipped post {post.id}: {why}", err=True)


def emit_result(
    post_id: str,
    doc: dict,
    lines: Sequence[str],
    note: str | None,
    *,
    as_json: bool,
    batch: bool,
    first: bool,
    indent: int | None = 2,
) -> None:
    """Print one post's result. One post: `doc` as JSON, or `lines` (and `note` on stderr). Several: one JSON
    object a line with the post's id first, or `lines` under a header naming the post, blank lines between."""
    if as_json:
        if batch:
            typer.echo(json.dumps({"id": post_id, **doc}, ensure_ascii=False))
        else:
            typer.echo(json.dumps(doc, ensure_ascii=False, indent=indent))
        return
    if batch:
        if not first:
            typer.echo("")
        typer.echo(f"== {post_id} ==")
    for line in lines:
        typer.echo(line)
    if note is not None:
        typer.echo(f"{post_id}: {note}" if batch else note, err=True)


def photo_progress(total: int, batch: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="photos", unit="photo", disable=None if batch else True, leave=False)
