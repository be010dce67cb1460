"""`photopoet config ...`: inspect the configuration."""

from __future__ import annotations

import typer

from photopoet.cli.options import ConfigOpt
from photopoet.config import load_config

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the resolved configuration (defaults merged with --config) as YAML."""
    typer.echo(load_config(config).to_yaml(), nl=False)
