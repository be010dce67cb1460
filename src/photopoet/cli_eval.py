"""`photopoet eval ...`: measure a stage against labelled data."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Evaluate a stage against labelled data.", no_args_is_help=True)
