"""`photopoet caption` and `photopoet haiku`: write for the posts named on the command line.

Registered on the main app by :func:`register`. A post is a folder (its photos), the loose photo files given
together, or a line of a ``--posts`` JSON-lines file. All posts of a call share one set of models and their
texts are generated in one batch. The photos are read directly (EXIF orientation applied); a file that cannot
be read is reported with the reason and left out, and so is a post none of whose photos can be read.

:func:`collect_posts` and :func:`emit_result` are shared with `photopoet poem`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from photopoet.cli_common import fail as _fail
from photopoet.cli_common import load as _config

ImagesArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Photo files (together one post) and/or folders (one post each: the photos in it)."),
]
PostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--posts",
        help='JSON-lines file, one post a line: {"images": [paths], "id", "event", "labels"} (only images is '
        "required; relative paths are read from the file's folder).",
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with the settings to change; defaults fill the rest.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON; several posts: one JSON object a line, with its id.")
]

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"})


@dataclass(frozen=True)
class PostArg:
    """One post to write for: a folder, the loose files of the command line, or a line of ``--posts``."""

    id: str  # the folder path, the JSONL id (else FILE:LINE), or the loose files' names joined by "|"
    images: tuple[Path, ...]
    event: str | None = None  # from the JSONL line; None: the command's default
    labels: tuple[str, ...] | None = None  # from the JSONL line; None: the command's default
    kind: str = "files"  # "files", "folder" or "line"


def folder_photos(folder: Path) -> list[Path]:
    """The photo files directly inside `folder`, sorted by name (unreadable folder: reported, none)."""
    try:
        found = [p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()]
    except OSError as e:
        typer.echo(f"skipped {folder}: cannot list the folder ({e.strerror or e})", err=True)
        return []
    return sorted(found, key=lambda p: p.name)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def read_posts_file(path: Path) -> list[PostArg]:
    """The posts of a JSON-lines file; bad lines are reported on stderr (FILE:LINE: reason) and skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        _fail(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}")
    out: list[PostArg] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            typer.echo(f"{path}:{n}: not valid JSON: {e.msg}; skipped", err=True)
            continue
        problem = None
        if not isinstance(rec, dict):
            problem = 'expected an object {"images": [paths], ...}'
        elif not _str_list(rec.get("images")) or not rec["images"]:
            problem = '"images" must be a non-empty list of paths'
        elif rec.get("id") is not None and not isinstance(rec["id"], str):
            problem = '"id" must be a string'
        elif rec.get("event") is not None and not isinstance(rec["event"], str):
            problem = '"event" must be a string'
        elif rec.get("labels") is not None and not _str_list(rec["labels"]):
            problem = '"labels" must be a list of strings'
        if problem is not None:
            typer.echo(f"{path}:{n}: {problem}; skipped", err=True)
            continue
        images = tuple(p if p.is_absolute() else path.parent / p for p in (Path(x).expanduser() for x in rec["images"]))
        labels = rec.get("labels")
        out.append(
            PostArg(
                id=rec.get("id") or f"{path}:{n}",
                images=images,
                event=rec.get("event") or None,
                labels=None if labels is None else tuple(x.strip() for x in labels if x.strip()),
                kind="line",
            )
        )
    return out


def collect_posts(images: Sequence[Path] | None, posts_file: Path | None) -> list[PostArg]:
    """The posts of a command: each folder given, the loose files given (together one post, where the first of
    them stands), then the lines of `posts_file`."""
    out: list[PostArg] = []
    loose = [p for p in images or () if not p.is_dir()]
    for p in images or ():
        if p.is_dir():
            out.append(PostArg(id=str(p), images=tuple(folder_photos(p)), kind="folder"))
        elif loose:
            out.append(PostArg(id="|".join(x.name for x in loose), images=tuple(loose)))
            loose = []
    if posts_file is not None:
        out.extend(read_posts_file(posts_file))
    return out


def no_usable_post(posts: Sequence[PostArg], batch: bool, what: str = "photo") -> str:
    """The one-line error when no post has a readable photo."""
    if batch:
        return f"no post with a readable {what} among the {len(posts)} given"
    if posts and posts[0].kind == "folder":
        return f"no readable {what} in {posts[0].id}"
    return f"no readable {what} among the files given"


def report_unusable(post: PostArg, batch: bool) -> None:
    """Say that a post is left out (only where there are several: one post gets the error line instead)."""
    if batch:
        why = "no photo in it" if not post.images else "none of its photos could be read"
        typer.echo(f"skipped post {post.id}: {why}", err=True)


def emit_result(
    post_id: str,
    doc: dict,
    lines: Sequence[str],
    note: str | None,
    *,
    as_json: bool,
    batch: bool,
    first: bool,
    indent: int | None = 2,
) -> None:
    """Print one post's result. One post: `doc` as JSON, or `lines` (and `note` on stderr). Several: one JSON
    object a line with the post's id first, or `lines` under a header naming the post, blank lines between."""
    if as_json:
        if batch:
            typer.echo(json.dumps({"id": post_id, **doc}, ensure_ascii=False))
        else:
            typer.echo(json.dumps(doc, ensure_ascii=False, indent=indent))
        return
    if batch:
        if not first:
            typer.echo("")
        typer.echo(f"== {post_id} ==")
    for line in lines:
        typer.echo(line)
    if note is not None:
        typer.echo(f"{post_id}: {note}" if batch else note, err=True)


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


class PhotoEncoder:
    """Encodes photos a model batch at a time as they come, with models loaded on the first photo."""

    def __init__(self, make_models: Callable[[], Any], batch_size: int, k: int) -> None:
        self.make_models, self.batch_size, self.k = make_models, batch_size, k
        self.models: Any = None
        self.pending: list[Any] = []
        self.vectors: list[Any] = []
        self.concepts: list[list[str]] = []

    def add(self, image: Any) -> None:
        if self.models is None:
            self.models = self.make_models()
        self.pending.append(self.models.image_encoder.preprocess(image))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        import numpy as np

        if not self.pending:
            return
        out = self.models.image_encoder.encode(np.stack(self.pending))
        self.pending = []
        self.vectors.append(self.models.mapper.to_text_space(out))
        self.concepts.extend(self.words(row) for row in self.models.mapper.concepts(out, self.k))

    def words(self, pairs: list[tuple[str, float]]) -> list[str]:
        """A photo's concepts as the writers get them in a run (offline tier: plain words, confident ones)."""
        cfg = self.models.cfg
        if cfg.models.tier != "offline":
            return [c for c, _ in pairs]
        from photopoet.stages.concepts import class_index, plain_concepts

        return list(plain_concepts(pairs, cfg.understand.concept_min_prob, class_index()))

    def split(self, counts: Sequence[int]) -> list[tuple[Any, list[list[str]]]]:
        """Per post (its photo count): its vectors (None for none) and per-photo concepts."""
        import numpy as np

        self.flush()
        allv = np.concatenate(self.vectors) if self.vectors else None
        out, start = [], 0
        for n in counts:
            out.append((allv[start : start + n] if n else None, self.concepts[start : start + n]))
            start += n
        return out


def photo_progress(total: int, batch: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="photos", unit="photo", disable=None if batch else True, leave=False)


def _understand(posts: Sequence[PostArg], cfg, batch: bool):
    """Models, cache folder and the posts with readable photos (vectors, concepts); one model set for all."""
    from pillow_heif import register_heif_opener

    from photopoet.core.cache import open_cache
    from photopoet.stages.understand import ModelSet

    register_heif_opener()
    place: dict[str, Any] = {}

    def make_models():
        place["cache_dir"] = open_cache(cfg)[1]
        return ModelSet(cfg, place["cache_dir"])

    enc = PhotoEncoder(make_models, cfg.models.batch_size, 5)
    counts = []
    with photo_progress(sum(len(p.images) for p in posts), batch) as bar:
        for post in posts:
            n = 0
            for p in post.images:
                im = _open_photo(p)
                bar.update(1)
                if im is None:
                    continue
                enc.add(im)
                n += 1
            counts.append(n)
    seen = []
    for post, (vecs, concepts) in zip(posts, enc.split(counts), strict=True):
        if vecs is None:
            report_unusable(post, batch)
            continue
        seen.append(_Seen(post, vecs, concepts))
    if not seen:
        _fail(no_usable_post(posts, batch))
    return enc.models, place["cache_dir"], seen


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
        _fail("give photo files or folders, or --posts FILE.jsonl")
    specs = collect_posts(images, posts)
    if not specs:
        _fail(f"{posts}: no usable post")
    return specs, posts is not None or len(specs) > 1


def caption(
    images: ImagesArg = None,
    posts: PostsOpt = None,
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
    """Write a caption with hashtags for each post: the loose IMAGES together, each folder, each --posts line.

    All posts share one model load and their captions are generated in one batch. A post's own event and
    labels (--posts) come before --event and --labels.

    --adapter puts a style adapter trained by `photopoet train style` on the generator (generative and
    hybrid modes).

    With --json: {"caption", "hashtags", "mode", "score"} (several posts: one object a line, with "id"); mode
    says what wrote the caption (hybrid:template when the generated one agreed too little with the photos),
    score is the image-text agreement (cosine).
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
    from photopoet.errors import AdapterError, StyleFileError

    try:
        results = writer.captions.write_many(items, mode=mode)
    except (StyleFileError, AdapterError) as e:
        _fail(str(e))
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
    cfg = _config(config)
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


def register(app: typer.Typer) -> None:
    app.command()(caption)
    app.command()(haiku)
