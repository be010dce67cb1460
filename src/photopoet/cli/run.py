"""`photopoet run`, `dedupe`, `group` and `samples`: the pipeline on a folder of photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from photopoet.cli.common import fail, shown, spoken
from photopoet.cli.options import EXECUTORS, ConfigOpt, PhotosArg, QuietOpt, json_option, out_option, quiet_option
from photopoet.config import load_config

RunOutOpt = out_option("Output folder: posts.json, report.html, posts/.")
RunQuietOpt = quiet_option("No progress bars; print only the summary.")
DedupeJsonOpt = json_option("Print the groups and quality problems as JSON.")
GroupJsonOpt = json_option("Print the posts as JSON.")


def register(app: typer.Typer) -> None:
    for command in (run, dedupe, samples, group):
        app.command()(command)


def run(
    photos: PhotosArg,
    out: RunOutOpt,
    config: ConfigOpt = None,
    adapter: Annotated[
        Path | None,
        typer.Option("--adapter", help="LoRA adapter folder from `photopoet train style` (OUT/best) for captions."),
    ] = None,
    quiet: RunQuietOpt = False,
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
        if executor not in EXECUTORS:
            fail(f"--executor: expected {spoken(EXECUTORS, quote=True)}, got {executor!r}")
        ex["kind"] = executor
    if ray_address is not None:
        ex["ray_address"] = ray_address
    if ex:
        overrides["executor"] = ex
    cfg = load_config(config, overrides or None)
    if cfg.executor.kind == "local" and ray_address is not None:
        fail("--ray-address is only used with --executor ray")
    from photopoet.pipeline import run as run_pipeline

    res = run_pipeline(photos, out, cfg, progress=not quiet)
    for e in res.excluded:
        typer.echo(f"skipped {shown(e.path)}: {shown(e.reason)}", err=True)
    for w in res.warnings:
        typer.echo(f"warning: {shown(w.path)}: {shown(w.message)}", err=True)
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
    typer.echo(f"report: {shown(res.out / 'report.html')}")


def dedupe(
    photos: PhotosArg,
    config: ConfigOpt = None,
    as_json: DedupeJsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find exact duplicates, edited copies, similar shots (bursts) and weak photos in PHOTOS.

    Only reports: nothing is deleted, moved or changed. For each group it names the best shot and why.
    Thresholds live in the `cull:` section of the config.
    """
    import json

    cfg = load_config(config)
    from photopoet.pipeline import dedupe_folder

    res = dedupe_folder(photos, cfg, progress=not (quiet or as_json))
    if as_json:
        typer.echo(json.dumps(res.to_json(), indent=2, ensure_ascii=False))
        return
    names = {"exact": "exact duplicates", "duplicate": "duplicates (edited copies)", "similar": "similar shots"}
    for g in res.groups:
        typer.echo(f"{names[g.kind]}: keep {shown(g.keep)}  ({shown(g.reason)})")
        for d in g.duplicates:
            typer.echo(f"    set aside {shown(d)}")
    for q in res.low_quality:
        typer.echo(f"low quality: {shown(q.path)}: {q.reason}")
    for e in res.unreadable:
        typer.echo(f"not read: {shown(e.path)}: {shown(e.reason)}")
    for w in res.warnings:
        typer.echo(f"warning: {shown(w.path)}: {shown(w.message)}")
    counts = {k: sum(len(g.duplicates) for g in res.groups if g.kind == k) for k in names}
    n_bad = len(res.unreadable)
    typer.echo(
        f"{len(res.photos)} photos: {len(res.groups)} groups ({counts['exact']} exact, {counts['duplicate']} "
        f"duplicate, {counts['similar']} similar copies), {len(res.low_quality)} low quality, "
        f"{n_bad} file{'s' if n_bad != 1 else ''} not read; nothing was changed"
    )


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


def group(
    photos: PhotosArg,
    config: ConfigOpt = None,
    json_out: GroupJsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Group the photos in PHOTOS into posts exactly as `run` does (ingest, understand, scene, cull, then group
    the photos culling keeps) and print them; nothing is written.

    With --json: {"posts": [{"photos": [path, ...], "cover": path}], "excluded": [{"path", "reason"}]}; the
    excluded list holds unreadable files and the photos culling set aside.
    """
    import json

    cfg = load_config(config)
    from photopoet.pipeline import group_folder

    res = group_folder(photos, cfg, progress=not quiet and not json_out)
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
        typer.echo(f"post {p.id}: {len(p.photos)} photo{'s' if len(p.photos) != 1 else ''}, cover {shown(p.cover)}")
        for x in p.photos[1:]:
            typer.echo(f"    {shown(x)}")
    for e in excluded:
        typer.echo(f"excluded {shown(e['path'])}: {shown(e['reason'])}", err=True)
    for w in ing.warnings:
        typer.echo(f"warning: {shown(w.path)}: {shown(w.message)}", err=True)
