"""`run`: one public function for the main job, records flowing one way through the stages.

folder -> ingest -> [Photo] -> understand -> [Understood] -> scene -> [Understood + scene] -> cull
       -> [Understood + verdict] -> group -> [Post + scene summary] -> write -> render
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from photopoet.config import Config
from photopoet.core.cache import Cache, with_cache
from photopoet.core.files import remove_leftover_tmp
from photopoet.core.folders import check_folders, check_photo_folder
from photopoet.errors import ExecutorError, RunError
from photopoet.executors import prepare as prepare_executor
from photopoet.records import Excluded, Post, PostScene, Understood
from photopoet.stages.cull import CullResult, cull
from photopoet.stages.group import Grouping, group_understood
from photopoet.stages.ingest import IngestResult, ingest
from photopoet.stages.plots import report_plots
from photopoet.stages.render import render
from photopoet.stages.scene import ReadsText, describe_scenes
from photopoet.stages.understand import ModelSet, Understanding, understand
from photopoet.stages.write.poem import write_poems
from photopoet.stages.write.template import event_from_folder
from photopoet.stages.write.texts import TextWriter, write_texts

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    out: Path
    photos: list[Understood]
    posts: list[Post]
    excluded: list[Excluded]
    timings: dict[str, float] = field(default_factory=dict)
    decoded: int = 0
    reused: int = 0
    embedded: int = 0
    set_aside: int = 0  # photos culled from posts (still listed in posts.json with their verdict)
    plots: list[dict] = field(default_factory=list)  # the grouping and label plots shown in the report
    executor: Any = None  # executor "ray": its RayStats (files sent, computed, imported, shard folder)
    warnings: list[Any] = field(default_factory=list)  # ingest's FileWarnings: raised while a file was read
    generator: Any = None  # the text generator, when the run used one (its ``stats``: load time, tokens/s)

    @property
    def n_files(self) -> int:
        return len(self.photos) + len(self.excluded)


_OCR_WARNED: set[str] = set()


def default_reader(cfg: Config) -> ReadsText | None:
    """The OCR reader a run uses (``scene.ocr``), loaded on its first photo; None when it is off, or when the
    engine is not installed here (said once, and the scenes go on without text)."""
    if not cfg.scene.ocr:
        return None
    from photopoet.models.ocr import LazyTextReader, ocr_problem

    problem = ocr_problem()
    if problem is not None:
        if problem not in _OCR_WARNED:
            _OCR_WARNED.add(problem)
            logger.warning("%s; scenes are described without the text in the photos", problem)
        return None
    return LazyTextReader(min_confidence=cfg.scene.min_text_confidence)


def with_scenes(
    und: Any,
    cfg: Config,
    cache: Cache,
    *,
    reader: ReadsText | None = None,
    progress: bool = True,
    keep_labels: bool = False,
):
    """`und` (an Understanding) with each photo's scene attached (``Understood.scene``). `reader`: the OCR
    engine; by default the run's (:func:`default_reader`). A photo whose scene is a poster keeps only the labels
    in ``scene.poster_labels`` (a poster is not "food"), unless `keep_labels`."""
    if reader is None:
        reader = default_reader(cfg)
    scenes = describe_scenes(
        und.photos, cfg.scene, cache, faces=und.faces, face_share=und.face_share, reader=reader, progress=progress
    )
    keep = set(cfg.scene.poster_labels)
    out = []
    for u in und.photos:
        sc = scenes.get(u.photo.path)
        labels = u.labels
        if sc is not None and sc.kind == "poster" and not keep_labels:
            labels = tuple(lb for lb in u.labels if lb.name in keep)
        out.append(replace(u, scene=sc, labels=labels))
    return replace(und, photos=out)


def post_scenes(posts: list[Post], by_path: dict[str, Understood]) -> list[Post]:
    """Each post with the summary of its photos' scenes (``Post.scene``); posts without scenes unchanged."""
    out = []
    for p in posts:
        scenes = [by_path[x].scene for x in p.photos if x in by_path and by_path[x].scene is not None]
        out.append(replace(p, scene=PostScene.of(scenes)) if scenes else p)
    return out


def cull_and_group(
    und: Understanding,
    cfg: Config,
    cache: Cache,
    *,
    progress: bool = True,
    stage: Callable[[str], float] | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[CullResult, Grouping]:
    """The posts `run` makes of an understanding (scenes attached when the scene stage is on): cull, then group
    the photos culling keeps. `run`, `photopoet group`, the review UI's runs and the grouping evaluation all go
    through this one function, so they give the same posts for the same photos."""
    timings = {} if timings is None else timings
    t = stage("cull") if stage is not None else time.perf_counter()
    culled = cull(und.photos, cfg.cull, cache, features=und.features, progress=progress)
    timings["cull"] = time.perf_counter() - t
    t = stage("group") if stage is not None else time.perf_counter()
    grouping = group_understood(replace(und, photos=culled.photos), cfg.group, rows=culled.kept())
    timings["group"] = time.perf_counter() - t
    return culled, grouping


class FolderUnderstanding(NamedTuple):
    """What `understand_folder` found: ingest's result (photos, excluded files, warnings) and the understanding."""

    ingest: IngestResult
    understanding: Understanding


def understand_folder(
    photos_dir: Path | str,
    cfg: Config,
    *,
    progress: bool = True,
    scenes: bool = False,
    reader: ReadsText | None = None,
    keep_labels: bool = False,
) -> FolderUnderstanding:
    """Ingest and understand a folder the way `run` does, with the config's cache and models; with `scenes`,
    each photo's scene attached too, as `run` attaches it (when ``scene.enabled``; `reader` and `keep_labels`
    as for :func:`with_scenes`). What the trainers, the benchmarks and ``photopoet data triplets`` start from."""
    photos_dir = Path(photos_dir)
    check_photo_folder(photos_dir)

    def job(cache: Cache, cache_dir: Path) -> FolderUnderstanding:
        ing = ingest(photos_dir, cfg.ingest, cache, progress=progress)
        und = understand(ing.photos, cfg, cache, ModelSet(cfg, cache_dir), progress=progress)
        if scenes and cfg.scene.enabled:
            und = with_scenes(und, cfg, cache, reader=reader, progress=progress, keep_labels=keep_labels)
        return FolderUnderstanding(ing, und)

    return with_cache(cfg, job)


@dataclass
class PhotosUnderstanding:
    """What `understand_photos` found: the models (None when no photo was given) and their cache folder, and for
    each group its photos' text-space vectors ``[n, T]`` (None for a group with no photo) and concepts."""

    models: ModelSet | None
    cache_dir: Path
    groups: list[tuple[Any, list[list[str]]]]


def understand_photos(groups: Iterable[Iterable[Any]], cfg: Config, *, concepts: int = 5) -> PhotosUnderstanding:
    """The run's image understanding of photos already read (upright RGB images), a group (a post) at a time:
    what `photopoet caption`, `haiku` and `poem` write from. One model set, loaded on the first photo, encodes
    every group's photos a model batch at a time; each photo gets its top `concepts` concepts, as the writers
    get them in a run (offline tier: plain words, the confident ones). `groups` may be lazy: a photo is read
    when it is needed."""
    import numpy as np

    from photopoet.stages.concepts import class_index, plain_concepts

    cache_dir = cfg.cache.resolved_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    models: ModelSet | None = None
    pending: list[Any] = []
    vectors: list[Any] = []
    words: list[list[str]] = []

    def flush() -> None:
        if not pending:
            return
        assert models is not None
        out = models.image_encoder.encode(np.stack(pending))
        pending.clear()
        vectors.append(models.mapper.to_text_space(out))
        for pairs in models.mapper.concepts(out, concepts):
            if cfg.models.tier != "offline":
                words.append([c for c, _ in pairs])
            else:
                words.append(list(plain_concepts(pairs, cfg.understand.concept_min_prob, class_index())))

    counts = []
    for group in groups:
        n = 0
        for image in group:
            if models is None:
                models = ModelSet(cfg, cache_dir)
            pending.append(models.image_encoder.preprocess(image))
            if len(pending) >= cfg.models.batch_size:
                flush()
            n += 1
        counts.append(n)
    flush()
    every = np.concatenate(vectors) if vectors else None
    out, start = [], 0
    for n in counts:
        out.append((every[start : start + n] if n else None, words[start : start + n]))
        start += n
    return PhotosUnderstanding(models, cache_dir, out)


@dataclass
class FolderGrouping:
    """What `group_folder` found: ingest's result, the understanding (with scenes), culling and the posts."""

    ingest: Any
    understanding: Understanding
    culled: CullResult
    grouping: Grouping


def group_folder(
    photos_dir: Path | str, cfg: Config, *, progress: bool = True, reader: ReadsText | None = None
) -> FolderGrouping:
    """Ingest, understand, describe, cull and group a folder the way `run` does, without writing or rendering:
    what `photopoet group` prints. `reader` as for :func:`run`."""
    photos_dir = Path(photos_dir)
    check_photo_folder(photos_dir)

    def job(cache: Cache, cache_dir: Path) -> FolderGrouping:
        ing = ingest(photos_dir, cfg.ingest, cache, progress=progress)
        und = understand(ing.photos, cfg, cache, ModelSet(cfg, cache_dir), progress=progress)
        if cfg.scene.enabled:
            und = with_scenes(und, cfg, cache, reader=reader, progress=progress)
        culled, grouping = cull_and_group(und, cfg, cache, progress=progress)
        return FolderGrouping(ing, und, culled, grouping)

    return with_cache(cfg, job)


def run(
    photos_dir: Path | str,
    out: Path | str,
    cfg: Config,
    *,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
    reader: ReadsText | None = None,
) -> RunResult:
    """Every stage on `photos_dir`, outputs to `out`. `on_stage` (optional) is told the name of each stage as it
    starts (ingest, understand, scene, cull, group, write, render): the web UI shows it as live progress. The
    result's ``timings`` has seconds per stage, the writing split into captions, haiku and poems. `reader`
    (optional, an OCR engine with ``read(image) -> list[TextLine]``) reads the text in each photo for its scene."""
    photos_dir, out = Path(photos_dir), Path(out)
    check_folders(photos_dir, out)

    def stage(name: str) -> float:
        if on_stage is not None:
            on_stage(name)
        return time.perf_counter()

    out.mkdir(parents=True, exist_ok=True)

    def job(cache: Cache, cache_dir: Path) -> RunResult:
        return _run_stages(photos_dir, out, cfg, cache, cache_dir, stage, progress, reader)

    return with_cache(cfg, job)


def _run_stages(
    photos_dir: Path,
    out: Path,
    cfg: Config,
    cache: Cache,
    cache_dir: Path,
    stage: Callable[[str], float],
    progress: bool,
    reader: ReadsText | None = None,
) -> RunResult:
    timings: dict[str, float] = {}
    t = stage("executor") if cfg.executor.kind != "local" else time.perf_counter()
    try:  # executor "ray": decode, quality and features on Ray, into the cache; the stages below only read
        pre = prepare_executor(photos_dir, out, cfg, cache, cache_dir, progress=progress)
    except ExecutorError as e:
        raise RunError(str(e)) from None
    if pre is not None:
        timings["executor"] = time.perf_counter() - t

    t = stage("ingest")
    ing = ingest(photos_dir, cfg.ingest, cache, progress=progress)
    timings["ingest"] = time.perf_counter() - t

    t = stage("understand")
    models = ModelSet(cfg, cache_dir)
    und = understand(ing.photos, cfg, cache, models, progress=progress)
    timings["understand"] = time.perf_counter() - t

    if cfg.scene.enabled:
        t = stage("scene")
        und = with_scenes(und, cfg, cache, reader=reader, progress=progress)
        timings["scene"] = time.perf_counter() - t

    culled, grouping = cull_and_group(und, cfg, cache, progress=progress, stage=stage, timings=timings)
    photos = culled.photos
    posts = post_scenes(grouping.posts, {u.photo.path: u for u in photos})

    stage("write")
    event = cfg.caption.event or event_from_folder(photos_dir)
    by_path = {u.photo.path: u for u in photos}
    vectors = {u.photo.path: und.text_vectors[i] for i, u in enumerate(und.photos)}
    writer = TextWriter(cfg, cache_dir, text_encoder=models.text_encoder)
    posts = write_texts(
        posts,
        cfg,
        cache,
        writer=writer,
        by_path=by_path,
        vectors=vectors,
        event=event,
        progress=progress,
        timings=timings,
    )
    t = time.perf_counter()
    posts = write_poems(posts, cfg, cache_dir, und=und, text_encoder=models.text_encoder)
    timings["poems"] = time.perf_counter() - t

    t = stage("render")
    remove_leftover_tmp(out, {"posts.json", "report.html"})  # what a run killed while writing them left
    plots = report_plots(grouping.curves, und.label_names, und.label_scores, cfg.understand.threshold)
    render(
        posts,
        cfg.render,
        cache,
        out=out,
        photos=photos,
        excluded=ing.excluded,
        title=event or photos_dir.resolve().name,
        set_aside=[photos[i] for i in range(len(photos)) if photos[i].photo.path in culled.culled],
        plots=plots,
        progress=progress,
    )
    timings["render"] = time.perf_counter() - t
    on_ray = pre.computed if pre is not None else 0  # decoded and embedded on Ray, read from the cache here
    return RunResult(
        out=out,
        photos=photos,
        posts=posts,
        excluded=ing.excluded,
        timings=timings,
        decoded=ing.decoded + on_ray,
        reused=ing.reused - on_ray,
        embedded=und.computed + on_ray,
        set_aside=len(culled.culled),
        plots=plots,
        executor=pre,
        warnings=list(ing.warnings),
        generator=writer.__dict__.get("generator"),
    )


def dedupe_folder(photos_dir: Path | str, cfg: Config, *, progress: bool = True) -> CullResult:
    """Ingest, understand and cull a folder with the config's cache: what `photopoet dedupe` prints.

    Files that cannot be read are listed in ``unreadable`` with the reason (``photopoet run``: excluded).
    """
    photos_dir = Path(photos_dir)
    check_photo_folder(photos_dir)

    def job(cache: Cache, cache_dir: Path) -> CullResult:
        ing = ingest(photos_dir, cfg.ingest, cache, progress=progress)
        und = understand(ing.photos, cfg, cache, ModelSet(cfg, cache_dir), progress=progress)
        res = cull(und.photos, cfg.cull, cache, features=und.features, progress=progress)
        return replace(res, unreadable=list(ing.excluded), warnings=list(ing.warnings))

    return with_cache(cfg, job)
