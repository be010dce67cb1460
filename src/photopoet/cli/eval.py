"""`photopoet eval ...`: measure a stage against labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli.common import fail
from photopoet.cli.options import ConfigOpt, QuietOpt, config_option, json_option, out_option
from photopoet.config import load_config

eval_app = typer.Typer(help="Evaluate a stage against labelled data.", no_args_is_help=True, rich_markup_mode=None)
TextConfigOpt = config_option("models.* picks the image-text model")
MetricsJsonOpt = json_option("Print the metrics as JSON.")
ScoresJsonOpt = json_option("Print the scores as JSON.")
CaptionsOutOpt = out_option("Write the generated captions here (JSON lines).", optional=True)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


@eval_app.command("dedupe")
def dedupe(
    photos: Annotated[Path, typer.Argument(help="The labelled folder of photos the truth file describes.")],
    truth: Annotated[Path, typer.Option("--truth", "-t", help="Truth JSON (see photopoet.evaluation.dedupe_set).")],
    config: ConfigOpt = None,
    as_json: MetricsJsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the culling stage on PHOTOS and score its duplicate groups against a truth file.

    Pairwise precision, recall and F1 per tier (exact, duplicate, similar) and for all duplicates together;
    see photopoet.metrics.duplicates for how pairs are counted.
    """
    from photopoet.evaluation.dedupe import evaluate_dedupe
    from photopoet.metrics.duplicates import format_table

    cfg = load_config(config)
    res = evaluate_dedupe(photos, truth, cfg, progress=not (quiet or as_json))
    report, metrics = res.to_json(), res.metrics
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(format_table(metrics))
    conf = report["confusion"]
    cols = ["exact", "duplicate", "similar", "none"]
    typer.echo("\npairs by truth tier (rows) and predicted tier (columns):")
    typer.echo("           " + "".join(f"{c:>10}" for c in cols))
    for row in ("exact", "duplicate", "similar", "none"):
        typer.echo(f"{row:<11}" + "".join(f"{conf[row].get(c, ''):>10}" for c in cols))
    for key, what in (("truth_photos_not_read", "truth photos not read"), ("photos_not_in_truth", "not in truth")):
        if report[key]:
            typer.echo(f"{len(report[key])} {what}, e.g. {report[key][0]}", err=True)
    typer.echo(f"\n{res.photos} photos in {res.seconds:.1f} s; primary {res.primary_metric} = {res.primary_score:.3f}")


@eval_app.command("grouping")
def grouping(
    photos: Annotated[Path, typer.Argument(help="Folder of the photos the reference lists.")],
    truth: Annotated[Path, typer.Option("--truth", help="posts.jsonl: one post per line with an 'images' list.")],
    config: ConfigOpt = None,
    json_out: ScoresJsonOpt = False,
) -> None:
    """Score photopoet's grouping of PHOTOS against the reference posts: ARI, NMI, purity, silhouette; beside
    the baseline a simple tool uses (k-means on the same features, k = round(sqrt(n / 2)))."""
    from photopoet.evaluation.grouping import evaluate_folder

    cfg = load_config(config)
    res = evaluate_folder(photos, truth, cfg, progress=not json_out)
    if json_out:
        typer.echo(json.dumps(res.to_json(), indent=2))
        return
    typer.echo(f"{res.n_photos} photos listed in {res.n_posts_true} reference posts")
    typer.echo("| method | posts | ARI | NMI | purity | silhouette |")
    typer.echo("|---|---|---|---|---|---|")
    for name, m in (("photopoet", res.ours), ("baseline k-means", res.baseline)):
        cells = [name, f"{m['n_groups']:.0f}"] + [f"{m[k]:.3f}" for k in ("ari", "nmi", "purity", "silhouette")]
        typer.echo("| " + " | ".join(cells) + " |")


@eval_app.command("text")
def text(
    pred: Annotated[Path, typer.Option("--pred", "-p", help='Predictions, JSON lines: {"id": ..., "text": "..."}.')],
    ref: Annotated[
        Path, typer.Option("--ref", "-r", help='References, JSON lines: {"id": ..., "refs": ["...", ...]}.')
    ],
    tokenizer: Annotated[
        str,
        typer.Option(
            "--tokenizer",
            "-t",
            help="ptb: Stanford PTBTokenizer as pycocoevalcap runs it (needs Java and the jar pycocoevalcap "
            "ships); none: split on whitespace, case and punctuation kept.",
        ),
    ] = "ptb",
    as_json: ScoresJsonOpt = False,
    per_item: Annotated[
        Path | None,
        typer.Option("--per-item", help='Also write each id\'s ROUGE-L and CIDEr as JSON lines {"id", ...} here.'),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Folder with a photo per id (file name or stem = id): adds CLIPScore and RefCLIPScore "
            "(Hessel et al. 2021, w=2.5) on the hub tier (a CLIP model), the ConSE agreement offline.",
        ),
    ] = None,
    config: TextConfigOpt = None,
) -> None:
    """Score captions against references: BLEU-1..4, ROUGE-L, CIDEr (CIDEr-D), the numbers pycocoevalcap gives.

    BLEU is corpus-level (closest reference length), ROUGE-L is the mean sentence F (beta 1.2), CIDEr takes
    its document frequencies from the references given here (so score whole sets, not one caption at a time).
    Lines that cannot be read are reported as FILE:LINE and skipped; ids found in only one file are listed
    and left out.
    """
    from photopoet.core.files import atomic_write_text
    from photopoet.evaluation.text import evaluate_files
    from photopoet.metrics.text import TOKENIZERS

    if tokenizer not in TOKENIZERS:
        fail(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    res = evaluate_files(pred, ref, tokenizer)
    for msg in res.problems:
        typer.echo(f"skipped {msg}", err=True)
    if images is not None:
        from photopoet.evaluation.text import score_images
        from photopoet.metrics.clipscore import ImageTextScorer

        cfg = load_config(config)
        try:
            scorer = ImageTextScorer(cfg.models, cfg.cache.resolved_dir())
            res.image_text = score_images(res, images, scorer, progress=not as_json)
        except (ValueError, OSError) as e:  # a model that cannot load; photopoet's own errors go up
            fail(str(e))
        for msg in res.image_text["unreadable_photos"]:
            typer.echo(f"skipped {msg}", err=True)
        if res.image_text["ids_without_photo"]:
            typer.echo(f"{len(res.image_text['ids_without_photo'])} ids have no photo in {images}", err=True)
    for key, what in (
        (res.preds_without_ref, "with a prediction but no reference"),
        (res.refs_without_pred, "with references but no prediction"),
    ):
        if key:
            more = f" (and {len(key) - 5} more)" if len(key) > 5 else ""
            typer.echo(f"{len(key)} ids {what}, left out: {', '.join(key[:5])}{more}", err=True)
    if per_item is not None:
        img = (res.image_text or {}).get("per_item", {})
        lines = [json.dumps({"id": k, **v, **img.get(k, {})}, ensure_ascii=False) for k, v in res.per_item.items()]
        atomic_write_text(per_item, "\n".join(lines) + "\n")
    if as_json:
        out = res.to_json()
        if res.image_text is not None:
            out["image_text"] = {k: v for k, v in res.image_text.items() if k != "per_item"}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    m = res.metrics
    keys = ["bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "cider"]
    typer.echo("| " + " | ".join(["items", *keys]) + " |")
    typer.echo("|" + "---|" * (len(keys) + 1))
    typer.echo("| " + " | ".join([str(m["n"]), *(f"{m[k]:.4f}" for k in keys)]) + " |")
    typer.echo(f"tokenizer: {m['tokenizer']}")
    if res.image_text is not None:
        it = res.image_text
        names = [k for k in ("clip_score", "ref_clip_score", "agreement", "ref_similarity") if k in it]
        typer.echo(", ".join(f"{k} {it[k]:.4f}" for k in names) + f" on {it['n']} photos ({it['scale']})")


@eval_app.command("prefix-vlm")
def prefix_vlm(
    model: Annotated[Path, typer.Option("--model", "-m", help="OUT/best of train prefix-vlm.")],
    data: Annotated[Path, typer.Option("--data", help="JSON lines of posts: post_id, caption, images.")],
    images: Annotated[Path, typer.Option("--images", help="Folder holding the posts' image files.")],
    split: Annotated[
        str, typer.Option("--split", help="test (the held-out quarter training never saw), val, train or all.")
    ] = "test",
    out: CaptionsOutOpt = None,
    as_json: ScoresJsonOpt = False,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Caption posts with a trained prefix VLM and score it: LM loss, InfoNCE, image->text R@1 (with chance),
    the loss gap when each post gets another post's photos, and the generated captions' BLEU-1/2/4 and ROUGE-L
    against the posts' own captions."""
    from photopoet.core.files import atomic_write_text
    from photopoet.train.prefix_vlm import evaluate_posts

    cfg = load_config(config)
    m, samples = evaluate_posts(
        model, data, images, cfg, split=split, progress=not quiet, echo=lambda s: typer.echo(s, err=True)
    )
    if out is not None:
        atomic_write_text(out, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    if as_json:
        typer.echo(json.dumps({"split": split, **m}, ensure_ascii=False))
        return
    typer.echo(f"{split} split, {m['n']} posts:")
    typer.echo(f"  LM loss {m['val_loss']:.4f}  (with another post's photos: +{m['image_gap']:.4f})")
    typer.echo(f"  InfoNCE {m['val_nce']:.4f}  image->text R@1 {m['r_at_1']:.3f} (chance {m['chance_r_at_1']:.3f})")
    typer.echo(
        f"  BLEU-1 {m['bleu1']:.4f}  BLEU-2 {m['bleu2']:.4f}  BLEU-4 {m['bleu4']:.4f}  ROUGE-L {m['rougeL']:.4f}  "
        f"distinct captions {m['distinct']:.2f}  ({m['tokenizer']} tokens)"
    )
    for s in samples[:5]:
        typer.echo(f"  {s['post_id']}: {s['generated']!r}")
    if out is not None:
        typer.echo(f"captions: {out}")
