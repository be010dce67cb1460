"""`photopoet train ...`: fine-tuning on your own data. Registered on the main app as a sub-app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli_common import fail as _fail
from photopoet.cli_common import load as _load

train_app = typer.Typer(help="Fine-tune photopoet's models on your own posts.", no_args_is_help=True)

METRICS = ("rougeL", "bleu1", "bleu2", "bleu4", "agreement", "val_loss")


@train_app.command("style")
def style(
    data: Annotated[
        Path, typer.Option("--data", help="JSON lines of past posts: post_id, caption, images, event, labels.")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder holding the posts' image files (by file name).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: best/, last/, reports. Rerun to resume.")],
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps in all (default: none).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the training posts (default 5).")] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Early stopping / best/ follow this: " + ", ".join(METRICS) + ".")
    ] = None,
    patience: Annotated[
        int | None, typer.Option("--patience", help="Epochs without a better metric before stopping (default 2).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file; train_style: holds LoRA r, alpha, modules, ...")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Teach the caption generator your club's style: LoRA on its past posts.

    Captions are cleaned first (@handles, URLs, hashtags, empty credit lines, trailing dots; OUT/cleaning.json
    says what went). Posts are split by post: a fixed quarter is the test split (never used here), a part of
    the rest validates. Each epoch scores the validation posts (loss, BLEU-1/2/4, ROUGE-L, image-text
    agreement of generated captions) and keeps the best adapter in OUT/best; OUT/last holds the latest with
    the optimizer state, so running the same command again continues where it stopped.
    Use the result with `photopoet caption ... --adapter OUT/best` or `photopoet run ... --adapter OUT/best`.
    """
    if metric is not None and metric not in METRICS:
        _fail(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    over: dict[str, Any] = {"train_style": {}}
    for k, v in (("max_steps", max_steps), ("epochs", epochs), ("metric", metric), ("patience", patience)):
        if v is not None:
            over["train_style"][k] = v
    cfg = _load(config, over)
    from photopoet.pipeline import RunError
    from photopoet.train.style import TrainError, train_style
    from photopoet.train.style_data import DataFileError

    try:
        res = train_style(data, images, out, cfg, progress=not quiet, echo=lambda s: typer.echo(s, err=True))
    except (TrainError, DataFileError, RunError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to continue from {out / 'last'}", err=True)
        raise typer.Exit(130) from None
    b = res.best
    best = f"best {b['metric']} {b['value']:.4f} at step {b['step']}" if b else "no evaluation yet"
    early = ", stopped early" if res.stopped_early else ""
    typer.echo(f"step {res.step} of {res.total_steps} (epoch {res.epoch:.2f}){early}; {best}; adapter: {out / 'best'}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
