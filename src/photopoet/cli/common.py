"""What every command module shares: the one-line error exit, terminal-safe text, and the command group that
turns any :class:`~photopoet.errors.PhotopoetError` raised under a command into that one line."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from photopoet.errors import PhotopoetError

ERROR_EXIT = 2  # a command that cannot do what it was asked (bad input, bad settings, a folder that is not there)


def fail(msg: str, code: int = ERROR_EXIT) -> NoReturn:
    """Print ``photopoet: error: MSG`` to stderr and exit with `code`."""
    typer.echo(f"photopoet: error: {msg}", err=True)
    raise typer.Exit(code)


class Commands(TyperGroup):
    """The app's command group: every command runs under it, so a :class:`PhotopoetError` raised by any command
    (or the code it calls) is printed once, as one line, and the command exits with :data:`ERROR_EXIT`. Other
    exceptions (Ctrl-C included) go on as they would without it."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PhotopoetError as e:
            fail(str(e))


def spoken(values: Sequence[str], *, quote: bool = False) -> str:
    """``a, b or c`` (``'a', 'b' or 'c'`` with `quote`): allowed values as an error or help text names them."""
    items = [repr(v) if quote else str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


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


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each JSON line of `path`; blank lines are passed over, a line that is not JSON
    is reported on stderr (FILE:LINE: reason) and skipped, and a file that cannot be read fails the command."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}")
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield n, json.loads(raw)
        except json.JSONDecodeError as e:
            typer.echo(f"{path}:{n}: not valid JSON: {e.msg}; skipped", err=True)
