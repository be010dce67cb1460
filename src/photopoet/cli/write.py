"""`photopoet caption` and `photopoet haiku`: write for the posts named on the command line.

A post is a folder (its photos), the loose photo files given together, or a line of a ``--posts`` JSON-lines
file (see :mod:`photopoet.cli.posts`). All posts of a call share one set of models and their texts are
generated in one batch. The photos are read directly (EXIF orientation applied); a file that cannot be read is
reported with the reason and left out, and so is a post none of whose photos can be read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli.common import fail, spoken
from photopoet.cli.options import CAPTION_MODES, ConfigOpt, json_option
from photopoet.cli.posts import (
    ImagesArg,
    PostArg,
    PostsOpt,
    collect_posts,
    emit_result,
    no_usable_post,
    photo_progress,
    report_unusable,
)
from photopoet.config import load_config

JsonOpt = json_option("Print the result as JSON; several posts: one JSON object a line, with its id.")


def register(app: typer.Typer) -> None:
    app.command()(caption)
    app.command()(haiku)


def _open_photo(p: Path) -> Any:
    """The photo upright in RGB, or None with the reason reported."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except FileNotFoundError:
        typer.echo(f"skipped {p}: no such file", err=True)
    except IsADirectoryError:
        typer.echo(f"skipped {p}: a folder, not a photo", err=True)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        typer.echo(f"skipped {p}: not a readable image ({e})", err=True)
    return None


@dataclass
class _Seen:
    """A post with readable photos: their text-space vectors [n, T] and top concepts (five per photo)."""

    post: PostArg
    vectors: Any
    concepts: list[list[str]]


def _understand(posts: Sequence[PostArg], cfg, batch: bool):
    """Models, cache folder and the posts with readable photos (vectors, concepts); one model set for all."""
    from pillow_heif import register_heif_opener

    from photopoet.pipeline import understand_photos

    register_heif_opener()
    with photo_progress(sum(len(p.images) for p in posts), batch) as bar:

        def readable(post: PostArg) -> Iterator[Any]:
            for p in post.images:
                im = _open_photo(p)
                bar.update(1)
                if im is not None:
                    yield im

        found = understand_photos((readable(post) for post in posts), cfg, concepts=5)
    seen = []
    for post, (vecs, concepts) in zip(posts, found.groups, strict=True):
        if vecs is None:
            report_unusable(post, batch)
            continue
        seen.append(_Seen(post, vecs, concepts))
    if not seen:
        fail(no_usable_post(posts, batch))
    return found.models, found.cache_dir, seen


def _zero_shot_labels(models, vectors_per_post: Sequence[Any], cfg) -> list[list[str]]:
    """For each post: each photo's best calibrated label from the config's label list; those best for half
    its photos. All posts' photos are scored together."""
    import numpy as np

    from photopoet.stages.understand import photo_labels

    uc = cfg.understand
    if not uc.labels or not vectors_per_post:
        return [[] for _ in vectors_per_post]
    _, picked = photo_labels(np.concatenate(list(vectors_per_post)), uc, models)  # no face counts here
    out, start = [], 0
    for vecs in vectors_per_post:
        best: Counter[str] = Counter()
        for i in range(start, start + len(vecs)):
            if picked[i]:
                best[picked[i][0].name] += 1
        out.append([n for n, c in best.most_common(3) if c >= 0.5 * len(vecs)])
        start += len(vecs)
    return out


def _post_labels(models, seen: Sequence[_Seen], given: list[str] | None, cfg) -> list[list[str]]:
    """Each post's labels: its JSONL labels, else `given` (--labels), else zero-shot (computed together)."""
    out: list[list[str] | None] = [list(s.post.labels) if s.post.labels is not None else given for s in seen]
    need = [i for i, labs in enumerate(out) if labs is None]
    for i, labs in zip(need, _zero_shot_labels(models, [seen[i].vectors for i in need], cfg), strict=True):
        out[i] = labs
    return [labs or [] for labs in out]


def _posts_given(images: list[Path] | None, posts: Path | None) -> tuple[list[PostArg], bool]:
    """The posts, and whether the output is a batch (several posts, or a --posts file)."""
    if not images and posts is None:
        fail("give photo files or folders, or --posts FILE.jsonl")
    specs = collect_posts(images, posts)
    if not specs:
        fail(f"{posts}: no usable post")
    return specs, posts is not None or len(specs) > 1


def caption(
    images: ImagesArg = None,
    posts: PostsOpt = None,
    event: Annotated[str | None, typer.Option("--event", "-e", help="Event name (default: caption.event).")] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", "-l", help="Comma-separated labels (default: zero-shot labels).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", "-m", help=f"{spoken(CAPTION_MODES)} (default: caption.mode).")
    ] = None,
    style: Annotated[
        Path | None, typer.Option("--style", help="JSON-lines file of past posts to imitate (caption.style_file).")
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option("--adapter", help="LoRA adapter folder from `photopoet train style` (caption.adapter)."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a caption with hashtags for each post: the loose IMAGES together, each folder, each --posts line.

    All posts share one model load and their captions are generated in one batch. A post's own event and
    labels (--posts) come before --event and --labels.

    --adapter puts a style adapter trained by `photopoet train style` on the generator (generative and
    hybrid modes).

    With --json: {"caption", "hashtags", "mode", "score"} (several posts: one object a line, with "id"); mode
    says what wrote the caption (hybrid:template when the generated one agreed too little with the photos),
    score is the image-text agreement (cosine).
    """
    if mode is not None and mode not in CAPTION_MODES:
        fail(f"--mode must be {spoken(CAPTION_MODES)}, got {mode!r}")
    over: dict[str, Any] = {"caption": {}}
    if style is not None:
        over["caption"]["style_file"] = str(style)
    if adapter is not None:
        over["caption"]["adapter"] = str(adapter)
    cfg = load_config(config, over)
    from photopoet.stages.write.caption import CaptionInput
    from photopoet.stages.write.texts import TextWriter, mean_vector, post_concepts

    specs, batch = _posts_given(images, posts)
    models, cache_dir, seen = _understand(specs, cfg, batch)
    given = [x.strip() for x in labels.split(",") if x.strip()] if labels is not None else None
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    items = [
        CaptionInput(
            id=s.post.id,
            event=s.post.event or event or cfg.caption.event,
            labels=tuple(labs),
            concepts=tuple(post_concepts(s.concepts)),
            n_photos=len(s.vectors),
            image_vector=mean_vector(list(s.vectors)),
        )
        for s, labs in zip(seen, _post_labels(models, seen, given, cfg), strict=True)
    ]
    results = writer.captions.write_many(items, mode=mode)
    for i, (s, res) in enumerate(zip(seen, results, strict=True)):
        score = "n/a" if res.score is None else f"{res.score:.3f}"
        lines = [res.caption, " ".join(res.hashtags)]
        note = f"({res.mode}, image-text agreement {score})"
        emit_result(s.post.id, res.to_json(), lines, note, as_json=as_json, batch=batch, first=i == 0)


def haiku(images: ImagesArg = None, posts: PostsOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Write an English haiku (5-7-5) for each post: the loose IMAGES together, each folder, each --posts
    line. A post of several photos gets one haiku about what they share; all posts share one model load and
    one generation batch.

    With --json: {"lines": [l1, l2, l3], "score"} (score: image-text agreement, cosine; several posts: one
    object a line, with "id").
    """
    cfg = load_config(config)
    from photopoet.stages.write.haiku import HaikuInput
    from photopoet.stages.write.texts import TextWriter, mean_vector

    specs, batch = _posts_given(images, posts)
    models, cache_dir, seen = _understand(specs, cfg, batch)
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    inputs = [
        HaikuInput(s.concepts, labs, s.post.event or cfg.caption.event, mean_vector(list(s.vectors)))
        for s, labs in zip(seen, _post_labels(models, seen, None, cfg), strict=True)
    ]
    for i, (s, res) in enumerate(zip(seen, writer.haiku.write_many(inputs), strict=True)):
        score = "n/a" if res.score is None else f"{res.score:.3f}"
        note = f"({res.source}, image-text agreement {score})"
        emit_result(s.post.id, res.to_json(), res.lines, note, as_json=as_json, batch=batch, first=i == 0)
