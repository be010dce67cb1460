"""The `photopoet` command line: one typer app, one module per command group.

Each module has a ``register(app)`` that adds its commands (or its sub-app) to the app below; shared options
live in :mod:`photopoet.cli.options`. Every command runs under :class:`~photopoet.cli.common.Commands`, which
prints any :class:`~photopoet.errors.PhotopoetError` as one line, ``photopoet: error: MESSAGE``, and exits 2.
"""

from __future__ import annotations

import typer

from photopoet.cli import config, data, eval, poem, publish, run, serve, train, write
from photopoet.cli.common import Commands

app = typer.Typer(
    cls=Commands,
    rich_markup_mode=None,  # click's plain help: paragraphs reflowed to the terminal, defaults shown, flags bare
    help="Turn a folder of photos into ready-to-post sets: cull, group, caption, haiku and Chinese poetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (config, eval, data, run, write, poem, publish, serve, train):
    _module.register(app)

__all__ = ["app"]
