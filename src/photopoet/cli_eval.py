"""`photopoet eval ...`: measure a stage against labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Evaluate a stage against labelled data.", no_args_is_help=True)


@eval_app.command("grouping")
def grouping(
    photos: Annotated[Path, typer.Argument(help="Folder of the photos the reference lists.")],
    truth: Annotated[Path, typer.Option("--truth", help="posts.jsonl: one post per line with an 'images' list.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score photopoet's grouping of PHOTOS against the reference posts: ARI, NMI, purity, silhouette; beside
    the baseline a simple tool uses (k-means on the same features, k = round(sqrt(n / 2)))."""
    import json

    from photopoet.config import ConfigError, load_config
    from photopoet.evaluation.grouping import TruthError, evaluate_folder
    from photopoet.pipeline import RunError

    try:
        cfg = load_config(config)
        res = evaluate_folder(photos, truth, cfg, progress=not json_out)
    except (ConfigError, TruthError, RunError) as e:
        typer.echo(f"photopoet: error: {e}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(res.to_json(), indent=2))
        return
    typer.echo(f"{res.n_photos} photos listed in {res.n_posts_true} reference posts")
    typer.echo("| method | posts | ARI | NMI | purity | silhouette |")
    typer.echo("|---|---|---|---|---|---|")
    for name, m in (("photopoet", res.ours), ("baseline k-means", res.baseline)):
        cells = [name, f"{m['n_groups']:.0f}"] + [f"{m[k]:.3f}" for k in ("ari", "nmi", "purity", "silhouette")]
        typer.echo("| " + " | ".join(cells) + " |")
