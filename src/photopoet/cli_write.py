"""`photopoet caption` and `photopoet haiku`: write for the photos named on the command line.

Registered on the main app by :func:`register`. The photos are read directly (EXIF orientation applied); a
file that cannot be read is reported with the reason and left out.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli_common import fail as _fail
from photopoet.cli_common import load as _config

ImagesArg = Annotated[list[Path], typer.Argument(help="Photo files (one post: a caption or haiku for all of them).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with the settings to change; defaults fill the rest.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _read_images(paths: list[Path]) -> tuple[list[Path], list[Any]]:
    from PIL import Image, ImageOps, UnidentifiedImageError
    from pillow_heif import register_heif_opener

    register_heif_opener()
    ok, imgs = [], []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                imgs.append(ImageOps.exif_transpose(im).convert("RGB"))
            ok.append(p)
        except FileNotFoundError:
            typer.echo(f"skipped {p}: no such file", err=True)
        except IsADirectoryError:
            typer.echo(f"skipped {p}: a folder, not a photo (use `photopoet run` for folders)", err=True)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            typer.echo(f"skipped {p}: not a readable image ({e})", err=True)
    if not imgs:
        _fail("no readable photo among the files given")
    return ok, imgs


def _zero_shot_labels(models, text_vectors, cfg) -> list[str]:
    """Each photo's best calibrated label from the config's label list; those best for half the photos."""
    from photopoet.stages.understand import background_vectors, calibrate, label_scores, pick_labels

    uc = cfg.understand
    if not uc.labels:
        return []
    raw, lab = label_scores(text_vectors, uc.labels, models, uc.prompt)
    z = calibrate(raw, lab, background_vectors(models))
    best: Counter[str] = Counter()
    for i in range(len(text_vectors)):
        picked = pick_labels(raw[i], z[i], uc.labels, uc.topk, uc.threshold)
        if picked:
            best[picked[0].name] += 1
    return [n for n, c in best.most_common(3) if c >= 0.5 * len(text_vectors)]


def _understand(paths: list[Path], cfg):
    """Models, per-photo concepts and text-space vectors for the files."""
    import numpy as np

    from photopoet.pipeline import open_cache
    from photopoet.stages.understand import ModelSet

    _, imgs = _read_images(paths)
    cache_dir = open_cache(cfg)[1]
    models = ModelSet(cfg, cache_dir)
    enc = models.image_encoder
    out = enc.encode(np.stack([enc.preprocess(im) for im in imgs]))
    vecs = models.mapper.to_text_space(out)
    concepts = [[c for c, _ in row] for row in models.mapper.concepts(out, 5)]
    return models, cache_dir, vecs, concepts


def caption(
    images: ImagesArg,
    event: Annotated[str | None, typer.Option("--event", "-e", help="Event name (default: caption.event).")] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", "-l", help="Comma-separated labels (default: zero-shot labels).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", "-m", help="template, generative or hybrid (default: caption.mode).")
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
    """Write one caption with hashtags for IMG... (one post).

    --adapter puts a style adapter trained by `photopoet train style` on the generator (generative and
    hybrid modes).

    With --json: {"caption", "hashtags", "mode", "score"}; mode says what wrote the caption (hybrid:template
    when the generated one agreed too little with the photos), score is the image-text agreement (cosine).
    """
    if mode is not None and mode not in ("template", "generative", "hybrid"):
        _fail(f"--mode must be template, generative or hybrid, got {mode!r}")
    over: dict[str, Any] = {"caption": {}}
    if style is not None:
        over["caption"]["style_file"] = str(style)
    if adapter is not None:
        over["caption"]["adapter"] = str(adapter)
    cfg = _config(config, over)
    from photopoet.stages.write.caption import CaptionInput
    from photopoet.stages.write.texts import TextWriter, mean_vector, post_concepts

    models, cache_dir, vecs, concepts = _understand(images, cfg)
    labs = [x.strip() for x in labels.split(",") if x.strip()] if labels is not None else None
    if labs is None:
        labs = _zero_shot_labels(models, vecs, cfg)
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    item = CaptionInput(
        id="|".join(p.name for p in images),
        event=event or cfg.caption.event,
        labels=tuple(labs),
        concepts=tuple(post_concepts(concepts)),
        n_photos=len(vecs),
        image_vector=mean_vector(list(vecs)),
    )
    from photopoet.models.adapter import AdapterError
    from photopoet.stages.write.style import StyleFileError

    try:
        res = writer.captions.write(item, mode=mode)
    except (StyleFileError, AdapterError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(res.to_json(), ensure_ascii=False, indent=2))
        return
    typer.echo(res.caption)
    typer.echo(" ".join(res.hashtags))
    score = "n/a" if res.score is None else f"{res.score:.3f}"
    typer.echo(f"({res.mode}, image-text agreement {score})", err=True)


def haiku(images: ImagesArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Write an English haiku (5-7-5) for IMG...; several photos get one haiku about what they share.

    With --json: {"lines": [l1, l2, l3], "score"} (score: image-text agreement, cosine).
    """
    cfg = _config(config)
    from photopoet.stages.write.texts import TextWriter, mean_vector

    models, cache_dir, vecs, concepts = _understand(images, cfg)
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    labs = _zero_shot_labels(models, vecs, cfg)
    res = writer.haiku.write(concepts, labs, cfg.caption.event, mean_vector(list(vecs)))
    if as_json:
        typer.echo(json.dumps(res.to_json(), ensure_ascii=False, indent=2))
        return
    for line in res.lines:
        typer.echo(line)
    score = "n/a" if res.score is None else f"{res.score:.3f}"
    typer.echo(f"({res.source}, image-text agreement {score})", err=True)


def register(app: typer.Typer) -> None:
    app.command()(caption)
    app.command()(haiku)
