"""What every command module shares: the one-line error exit and config loading that reports errors that way."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import typer

from photopoet.config import Config, load_config
from photopoet.errors import ConfigError


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


_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: object) -> str:
    """`text` safe to print on a terminal: control characters (newline, escape ...) and bidirectional
    overrides (U+202E turns a name ending "gpj.exe" round to read "exe.jpg") written as escapes, like repr."""
    out = []
    for ch in str(text):
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
