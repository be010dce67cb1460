"""The `photopoet` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli_common import fail as _fail
from photopoet.cli_common import load as _load
from photopoet.cli_common import shown as _shown
from photopoet.cli_data import data_app
from photopoet.cli_eval import eval_app
from photopoet.cli_poem import register as register_poem_commands
from photopoet.cli_publish import register as register_publish
from photopoet.cli_serve import register as register_serve
from photopoet.cli_train import register as register_train
from photopoet.cli_write import register as register_write

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help: paragraphs reflowed to the terminal, defaults shown, flags bare
    help="Turn a folder of photos into ready-to-post sets: cull, group, caption, haiku and Chinese poetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
register_write(app)  # caption, haiku
register_poem_commands(app)  # poem, poem-search, corpus
register_publish(app)  # publish
register_serve(app)  # serve: the review web UI
register_train(app)  # train style, train retriever

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file with the settings to change; defaults fill the rest."),
]


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the resolved configuration (defaults merged with --config) as YAML."""
    typer.echo(_load(config).to_yaml(), nl=False)


@app.command()
def run(
    photos: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively). Never modified.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: posts.json, report.html, posts/.")],
    config: ConfigOpt = None,
    adapter: Annotated[
        Path | None,
        typer.Option("--adapter", help="LoRA adapter folder from `photopoet train style` (OUT/best) for captions."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars; print only the summary.")] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Where decoding, quality checks and image features run: 'local' (this process, the default) or "
            "'ray' (Ray Data on a Ray cluster, results kept as Parquet shards; needs the 'ray' extra). "
            "Overrides executor.kind.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join with --executor ray: 'auto' (on a cluster node) or ray://HEAD:10001. "
            "Default: a Ray runtime started on this machine. Overrides executor.ray_address.",
        ),
    ] = None,
) -> None:
    """Run every stage on PHOTOS and write the posts, a report and posts.json to OUT.

    Results per photo are cached by content, so a rerun (or a run after a crash, or after adding photos)
    only computes what is new. With --adapter (or caption.adapter) generated captions are written in the
    style the adapter learnt; cached captions of another adapter are not reused. With --executor ray the
    per-photo work runs on Ray and is kept in shards (executor.shard_dir); the posts are the same as a local
    run's.
    """
    overrides: dict = {}
    if adapter is not None:
        overrides["caption"] = {"adapter": str(adapter)}
    ex: dict = {}
    if executor is not None:
        if executor not in ("local", "ray"):
            _fail(f"--executor: expected 'local' or 'ray', got {executor!r}")
        ex["kind"] = executor
    if ray_address is not None:
        ex["ray_address"] = ray_address
    if ex:
        overrides["executor"] = ex
    cfg = _load(config, overrides or None)
    if cfg.executor.kind == "local" and ray_address is not None:
        _fail("--ray-address is only used with --executor ray")
    from photopoet.errors import AdapterError, CacheError, RunError
    from photopoet.pipeline import run as run_pipeline

    try:
        res = run_pipeline(photos, out, cfg, progress=not quiet)
    except (RunError, AdapterError, CacheError) as e:
        _fail(str(e))
    for e in res.excluded:
        typer.echo(f"skipped {_shown(e.path)}: {_shown(e.reason)}", err=True)
    for w in res.warnings:
        typer.echo(f"warning: {_shown(w.path)}: {_shown(w.message)}", err=True)
    if res.executor is not None:
        from photopoet.executors.ray_runner import describe

        typer.echo(describe(res.executor))
    secs = sum(res.timings.values())
    typer.echo(
        f"{res.n_files} files: {len(res.photos)} photos, {res.set_aside} set aside (duplicates, similar shots or "
        f"weak; see the report), {len(res.photos) - res.set_aside} in {len(res.posts)} posts, "
        f"{len(res.excluded)} excluded "
        f"({res.decoded} decoded, {res.reused} from cache) in {secs:.1f} s"
    )
    typer.echo(f"report: {_shown(res.out / 'report.html')}")


@app.command()
def dedupe(
    photos: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively). Never modified.")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups and quality problems as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Find exact duplicates, edited copies, similar shots (bursts) and weak photos in PHOTOS.

    Only reports: nothing is deleted, moved or changed. For each group it names the best shot and why.
    Thresholds live in the `cull:` section of the config.
    """
    import json

    cfg = _load(config)
    from photopoet.errors import CacheError, RunError
    from photopoet.pipeline import dedupe_folder

    try:
        res = dedupe_folder(photos, cfg, progress=not (quiet or as_json))
    except (RunError, CacheError) as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(res.to_json(), indent=2, ensure_ascii=False))
        return
    names = {"exact": "exact duplicates", "duplicate": "duplicates (edited copies)", "similar": "similar shots"}
    for g in res.groups:
        typer.echo(f"{names[g.kind]}: keep {_shown(g.keep)}  ({_shown(g.reason)})")
        for d in g.duplicates:
            typer.echo(f"    set aside {_shown(d)}")
    for q in res.low_quality:
        typer.echo(f"low quality: {_shown(q.path)}: {q.reason}")
    for e in res.unreadable:
        typer.echo(f"not read: {_shown(e.path)}: {_shown(e.reason)}")
    for w in res.warnings:
        typer.echo(f"warning: {_shown(w.path)}: {_shown(w.message)}")
    counts = {k: sum(len(g.duplicates) for g in res.groups if g.kind == k) for k in names}
    n_bad = len(res.unreadable)
    typer.echo(
        f"{len(res.photos)} photos: {len(res.groups)} groups ({counts['exact']} exact, {counts['duplicate']} "
        f"duplicate, {counts['similar']} similar copies), {len(res.low_quality)} low quality, "
        f"{n_bad} file{'s' if n_bad != 1 else ''} not read; nothing was changed"
    )


@app.command()
def samples(
    dest: Annotated[Path, typer.Argument(help="Folder to create with the sample photos.")],
) -> None:
    """Write a small folder of sample photos (from scikit-image and scikit-learn) to try photopoet on.

    It holds two shoots on different days, a re-export of one photo, and a corrupt file, so every part of
    a run shows up in the report.
    """
    from photopoet.samples import make_samples

    paths = make_samples(dest)
    typer.echo(f"wrote {len(paths)} files to {dest}")


@app.command()
def group(
    photos: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively). Never modified.")],
    config: ConfigOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the posts as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Group the photos in PHOTOS into posts exactly as `run` does (ingest, understand, scene, cull, then group
    the photos culling keeps) and print them; nothing is written.

    With --json: {"posts": [{"photos": [path, ...], "cover": path}], "excluded": [{"path", "reason"}]}; the
    excluded list holds unreadable files and the photos culling set aside.
    """
    import json

    cfg = _load(config)
    from photopoet.errors import CacheError, RunError
    from photopoet.pipeline import group_folder

    try:
        res = group_folder(photos, cfg, progress=not quiet and not json_out)
    except (RunError, CacheError) as e:
        _fail(str(e))
    ing, posts = res.ingest, res.grouping.posts
    excluded = [{"path": e.path, "reason": e.reason} for e in ing.excluded]
    excluded += [
        {"path": u.photo.path, "reason": u.reason or u.verdict}
        for u in res.culled.photos
        if u.photo.path in res.culled.culled
    ]
    if json_out:
        doc = {"posts": [{"photos": p.photos, "cover": p.cover} for p in posts], "excluded": excluded}
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for p in posts:
        typer.echo(f"post {p.id}: {len(p.photos)} photo{'s' if len(p.photos) != 1 else ''}, cover {_shown(p.cover)}")
        for x in p.photos[1:]:
            typer.echo(f"    {_shown(x)}")
    for e in excluded:
        typer.echo(f"excluded {_shown(e['path'])}: {_shown(e['reason'])}", err=True)
    for w in ing.warnings:
        typer.echo(f"warning: {_shown(w.path)}: {_shown(w.message)}", err=True)


def main() -> None:  # pragma: no cover - console entry point
    app()
