"""What every command module shares: the one-line error exit and config loading that reports errors that way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from photopoet.config import Config, ConfigError, load_config


def fail(msg: str, code: int = 2) -> None:
    """Print ``photopoet: error: MSG`` to stderr and exit with `code`."""
    typer.echo(f"photopoet: error: {msg}", err=True)
    raise typer.Exit(code)


def load(config: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """The validated config, or a one-line error naming the file and key."""
    try:
        return load_config(config, overrides)
    except ConfigError as e:
        fail(str(e))
        raise  # unreachable: fail exits
