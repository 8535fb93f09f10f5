"""The `smartlabel` command. Every subcommand has --help; errors are one clear line, exit 1."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from smartlabel.errors import SmartlabelError

app = typer.Typer(
    help="Label text with active learning: import posts, serve the labelling page, "
    "retrain a model on a timer, export the labelled data set.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def friendly(fn):
    """Turn our typed errors into one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SmartlabelError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _settings():
    from smartlabel.settings import load_settings

    return load_settings()


# --- database --------------------------------------------------------------


@db_app.command("upgrade")
@friendly
def db_upgrade(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Create or upgrade the schema (safe to run again)."""
    from smartlabel.db import check_connection, make_engine
    from smartlabel.migrate import head_revision, upgrade

    engine = make_engine(database_url or _settings().database_url)
    check_connection(engine)
    upgrade(engine)
    typer.echo(f"schema at revision {head_revision()} ({engine.url.render_as_string(hide_password=True)})")


# --- import (issue 4) --------------------------------------------------------

# --- orchestrator, autolabel, export, status, simulate (issue 5) -------------

# --- labelling page: serve (issue 6) ----------------------------------------

# --- run: everything on one machine ------------------------------------------


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="smartlabel")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
