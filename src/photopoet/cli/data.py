"""`photopoet data ...`: build training datasets from a folder of photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli.options import PhotosArg, QuietOpt, config_option, out_option
from photopoet.config import load_config

data_app = typer.Typer(
    help="Build training datasets from photos and their captions.", no_args_is_help=True, rich_markup_mode=None
)
TripletsConfigOpt = config_option("triplets.*, models.*")
TripletsOutOpt = out_option("JSON-lines file of groups; appended, so a rerun resumes.")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("triplets")
def triplets(
    photos: PhotosArg,
    captions: Annotated[
        Path,
        typer.Option(
            "--captions",
            help='JSON lines: {"image": "a.jpg", "caption": "..."} per photo, or {"images": [...], "caption": "..."} '
            "per post (e.g. a club's posts.jsonl).",
        ),
    ],
    out: TripletsOutOpt,
    config: TripletsConfigOpt = None,
    max_groups: Annotated[int, typer.Option("--max-groups", min=0, help="Stop after this many groups (0: all).")] = 0,
    no_generate: Annotated[
        bool, typer.Option("--no-generate", help="Do not load the generator: merged caption = central caption.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Group PHOTOS into threes of similar photos (kNN over the image features the pipeline computes and
    caches) and merge each group's captions into one description with the generator.

    Writes one line per group: {"group_id", "image_ids", "captions", "merged_caption", "merged_by",
    "similarity"}. Groups already in OUT are skipped, so a stopped run goes on where it was. Caption lines that
    cannot be used are reported as FILE:LINE and skipped. Settings: the triplets section of the config.
    """
    from photopoet.train.triplets import build_triplets

    cfg = load_config(config)

    def make_generator():
        from photopoet.models import create_generator

        return create_generator(cfg.models, cfg.cache.resolved_dir())

    res = build_triplets(
        photos,
        captions,
        out,
        cfg,
        make_generator=None if no_generate else make_generator,
        max_groups=max_groups,
        progress=not quiet,
    )
    for msg in res.problems:
        typer.echo(f"skipped {msg}", err=True)
    if res.captions_unmatched:
        typer.echo(f"{res.captions_unmatched} captioned names match no photo in {photos}", err=True)
    typer.echo(
        f"{res.photos} photos, {res.with_caption} with a caption: {res.groups} triplets; {res.written} written "
        f"({res.generated} merged by the generator), {res.skipped_done} already in {out}"
    )
