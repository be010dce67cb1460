"""Commands for the Chinese poetry: `poem`, `poem-search` and `corpus index|install`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli.common import fail, jsonl_records
from photopoet.cli.options import ConfigOpt, EmbedderOpt, json_option, out_option, quiet_option
from photopoet.cli.posts import (
    PostArg,
    PostsOpt,
    collect_posts,
    emit_result,
    no_usable_post,
    photo_progress,
    report_unusable,
)
from photopoet.config import load_config

corpus_app = typer.Typer(help="Build poem line indexes from a corpus.", no_args_is_help=True, rich_markup_mode=None)
PoemJsonOpt = json_option("Print the result as one JSON object (several posts: one a line, with id).")
CorpusQuietOpt = quiet_option("No progress bar.")
IndexOutOpt = out_option("Index folder to write (replaced when complete).")
InstallOutOpt = out_option("Index folder (default: in the cache).", optional=True)

IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index", help="Index folder (default: poem.index, else the installed corpus, else the shipped one)."
    ),
]
RetrieverOpt = Annotated[
    Path | None,
    typer.Option(
        "--retriever",
        help="Fine-tuned encoder folder for your words (photopoet train retriever: OUT/best; default: "
        "poem.retriever). The index's lines are re-embedded with it once, into the cache.",
    ),
]


def _cache_dir(cfg) -> Path:
    d = cfg.cache.resolved_dir()
    d.mkdir(parents=True, exist_ok=True)
    return d


def register(app: typer.Typer) -> None:
    """Add the poetry commands to the main app."""
    app.add_typer(corpus_app, name="corpus")
    app.command("poem")(poem)
    app.command("poem-search")(poem_search)


def _image_vectors(posts: Sequence[PostArg], cfg, batch: bool) -> list[tuple[Any, list[str]]]:
    """For each post: the text-space vectors of its readable images (None for none; bad ones are reported and
    skipped) and their top concepts. One model set encodes all posts' images, a model batch at a time."""
    from photopoet.errors import RejectedFile
    from photopoet.pipeline import understand_photos
    from photopoet.stages.ingest import decode_photo, working_copy_from_bytes

    with photo_progress(sum(len(p.images) for p in posts), batch) as bar:

        def readable(post: PostArg) -> Iterator[Any]:
            for p in post.images:
                if not p.is_file():
                    typer.echo(f"skipped {p}: {'no such file' if not p.exists() else 'not a photo file'}", err=True)
                    bar.update(1)
            for p in post.images:
                if not p.is_file():
                    continue
                try:
                    _, data = decode_photo(p, cfg.ingest.thumb_size, cfg.ingest.max_pixels)
                except RejectedFile as e:
                    typer.echo(f"skipped {p}: {e}", err=True)
                    continue
                finally:
                    bar.update(1)
                yield working_copy_from_bytes(data)

        found = understand_photos((readable(post) for post in posts), cfg, concepts=3)
    out = []
    for vecs, per_photo in found.groups:
        concepts: list[str] = []
        for row in per_photo:
            concepts.extend(c for c in row if c not in concepts)
        out.append((vecs, concepts))
    return out


def poem(
    images: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Photo files (together one post) and/or folders (one post each); a post's mean image vector is used."
        ),
    ] = None,
    posts: PostsOpt = None,
    text: Annotated[
        str | None, typer.Option("--text", "-t", help="Your words: modern Chinese or English (for every post).")
    ] = None,
    as_json: PoemJsonOpt = False,
    index: IndexOpt = None,
    retriever: RetrieverOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A line of classical Chinese poetry for each post (the loose IMAGES together, each folder, each --posts
    line) and --text: retrieved and reranked, or generated when nothing fits (the result says which). All
    posts share one model load; the lines to generate come from one batch.

    JSON: {"text", "simplified", "title", "author", "dynasty", "source_id", "score", "generated"}; several
    posts: one object a line, with "id" first.
    """
    cfg = load_config(config)
    from photopoet.poetry.select import PoemWriter

    specs = collect_posts(images, posts) if images or posts is not None else [PostArg(id="", images=())]
    if not specs:
        fail(f"{posts}: no usable post")
    batch = posts is not None or len(specs) > 1
    cache_dir = _cache_dir(cfg)
    words = (text or "").strip()
    kept, queries = [], []
    for spec, (vecs, concepts) in zip(specs, _image_vectors(specs, cfg, batch), strict=True):
        if vecs is None and (batch or not words):
            report_unusable(spec, batch)
            continue
        kept.append(spec)
        queries.append((vecs, text, concepts))
    if not kept:
        fail(
            no_usable_post(specs, batch, "image")
            if batch
            else "no readable image and no --text: nothing to write a poem about"
        )
    results = PoemWriter(cfg, cache_dir, index=index, retriever=retriever).write_many(queries)
    errors = [r for r in results if isinstance(r, Exception)]
    if len(errors) == len(results):
        fail(str(errors[0]))
    first = True
    for spec, res in zip(kept, results, strict=True):
        if isinstance(res, Exception):
            typer.echo(f"post {spec.id}: no poem ({res})", err=True)
            continue
        if res["generated"]:
            credit = f"  (generated by {res['author']}; best retrieved score {res['score']})"
        else:
            credit = f"  ——{res['dynasty']}·{res['author']}《{res['title']}》  score {res['score']}"
        emit_result(spec.id, res, [res["text"], credit], None, as_json=as_json, batch=batch, first=first, indent=None)
        first = False


def poem_search(
    index: Annotated[Path, typer.Option("--index", help="Index folder (from 'photopoet corpus index').")],
    query: Annotated[str | None, typer.Option("--query", "-q", help="One query: modern Chinese or English.")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help='JSONL file, one {"id","query"} a line.')] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Results per query.")] = 5,
    retriever: RetrieverOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search an index with words; prints one JSON line per query: {"id","results":[{"text","source_id","score"}]}.

    Bad lines of --queries are reported on stderr (file:line: reason) and skipped.
    """
    if (query is None) == (queries is None):
        fail("give exactly one of --query and --queries")
    cfg = load_config(config)
    from photopoet.models import create_text_encoder
    from photopoet.poetry.index import PoemIndex
    from photopoet.poetry.select import search_lines

    items: list[tuple[Any, str]] = []
    if query is not None:
        items.append(("query", query))
    else:
        assert queries is not None
        for n, rec in jsonl_records(queries):
            if not isinstance(rec, dict) or not isinstance(rec.get("query"), str) or "id" not in rec:
                typer.echo(f'{queries}:{n}: expected {{"id", "query": text}}; skipped', err=True)
                continue
            items.append((rec["id"], rec["query"]))
    folder = retriever if retriever is not None else cfg.poem.retriever
    ix = PoemIndex(index)
    if folder is None:
        enc = create_text_encoder(cfg.models, _cache_dir(cfg))
    else:
        from photopoet.models.e5_torch import TorchE5Encoder
        from photopoet.poetry.index import index_for_encoder

        enc = TorchE5Encoder(Path(folder).expanduser())
        ix = index_for_encoder(ix, enc, _cache_dir(cfg), log=lambda m: typer.echo(m, err=True))
    ix.check_encoder(enc)
    for qid, q in items:
        res = search_lines(ix, enc, [q], k, cfg.poem)[0]
        typer.echo(json.dumps({"id": qid, "results": res}, ensure_ascii=False))


def _corpus_encoder(cfg, embedder: str):
    from photopoet.models.e5_onnx import corpus_encoder

    try:
        return corpus_encoder(cfg.models, _cache_dir(cfg), embedder)
    except ValueError as e:
        fail(str(e))


@corpus_app.command("index")
def corpus_index(
    corpus: Annotated[
        Path, typer.Argument(help='JSONL corpus: one {"id","title","author","dynasty","lines":[...]} a line.')
    ],
    out: IndexOutOpt,
    embedder: EmbedderOpt = "auto",
    config: ConfigOpt = None,
    quiet: CorpusQuietOpt = False,
) -> None:
    """Index the lines of a JSONL corpus. Bad lines are reported (file:line: reason) and skipped.

    Resumable: run the same command again after an interruption and it goes on where it stopped.
    """
    cfg = load_config(config)
    from photopoet.poetry.corpus import load_jsonl
    from photopoet.poetry.index import build_index

    res = load_jsonl(corpus)
    for p in res.problems:
        typer.echo(f"skipped {p}", err=True)
    if not res.poems:
        fail(f"{corpus}: no usable poem")
    enc = _corpus_encoder(cfg, embedder)
    stats = build_index(res.poems, out, enc, progress=not quiet, sources=[str(corpus)])
    typer.echo(
        f"{stats.poems} poems, {stats.lines} lines indexed in {out} ({len(res.problems)} bad records skipped, "
        f"{stats.embedded} distinct lines embedded now)"
    )


@corpus_app.command("install")
def corpus_install(
    name: Annotated[str, typer.Argument(help="Corpus to install: chinese-poetry.")],
    out: InstallOutOpt = None,
    tarball: Annotated[
        Path | None,
        typer.Option("--tarball", help="A local chinese-poetry-2.0.1.tgz (or unpacked folder) instead of npm."),
    ] = None,
    max_lines: Annotated[
        int,
        typer.Option(
            "--max-lines",
            min=0,
            help="Index the most popular poems up to this many lines (anthologies first, then search counts); 0: all.",
        ),
    ] = 100_000,
    kinds: Annotated[
        str, typer.Option("--kinds", help="Collections: tang, song, ci (comma-separated).")
    ] = "tang,song,ci",
    embedder: EmbedderOpt = "auto",
    config: ConfigOpt = None,
    quiet: CorpusQuietOpt = False,
) -> None:
    """Fetch chinese-poetry@2.0.1 from npm (or --tarball) and index it with a progress bar.

    The full corpus is about 1.5 million lines; by default the 100,000 lines of the most popular poems are
    indexed (see docs/benchmarks.md for the embedding speed). Resumable: run it again after an interruption.
    """
    import tempfile

    if name != "chinese-poetry":
        fail(f"unknown corpus {name!r}; known: chinese-poetry")
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in chosen if k not in ("tang", "song", "ci")]
    if bad or not chosen:
        fail(f"--kinds: unknown collection(s) {', '.join(bad) or '(none)'}; choose from tang, song, ci")
    cfg = load_config(config)
    from photopoet.poetry.corpus import choose_popular, load_npm
    from photopoet.poetry.index import build_index
    from photopoet.poetry.install import npm_pack
    from photopoet.poetry.select import installed_index_path

    cache_dir = _cache_dir(cfg)
    dest = out or installed_index_path(cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = tarball or npm_pack(Path(tmp))
        items, problems = load_npm(src, chosen)
    for p in problems:
        typer.echo(f"skipped {p}", err=True)
    poems = choose_popular(items, max_lines)
    if not poems:
        fail(f"{src}: no usable poem")
    typer.echo(f"{len(items)} poems read; indexing {len(poems)} of them", err=True)
    enc = _corpus_encoder(cfg, embedder)
    stats = build_index(
        poems, dest, enc, progress=not quiet, sources=[f"chinese-poetry@2.0.1 {','.join(chosen)} max_lines={max_lines}"]
    )
    typer.echo(f"{stats.poems} poems, {stats.lines} lines indexed in {dest} in {stats.seconds:.0f} s")
