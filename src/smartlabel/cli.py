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


# --- label quality and admin dashboard (issue 9) -------------------------------


@app.command("dashboard")
@friendly
def dashboard_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on; 0.0.0.0 for all (Docker)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port. Default: DASHBOARD_PORT (8867)."),
    token: Optional[str] = typer.Option(
        None, "--token", help="Access token. Default: DASHBOARD_TOKEN, or VOILA_TOKEN when that is empty."),
    no_token: bool = typer.Option(False, "--no-token", help="No access token, even if one is set."),
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Default: ./admin-dashboard.ipynb."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Serve the admin dashboard (Voila on admin-dashboard.ipynb) until stopped.

    Learning curve, labels per class, predicted classes, labellers, agreement and a
    stopping suggestion. This process becomes Voila (exec): stopping it stops Voila.
    """
    import os

    from smartlabel.dashboard import dashboard_argv, dashboard_environment, find_notebook
    from smartlabel.errors import ConfigError

    settings = _settings()
    if token and no_token:
        raise ConfigError("--token and --no-token contradict each other; pass one of them")
    token = "" if no_token else (token if token is not None else (settings.dashboard_token or settings.voila_token))
    port = settings.dashboard_port if port is None else port
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a port number (1-65535)")
    nb = find_notebook(notebook)
    if host in ("0.0.0.0", "::") and not token:
        typer.secho("warning: the dashboard listens on all interfaces without a token: anyone who can reach "
                    "this machine sees labeller names and scores. Set DASHBOARD_TOKEN or pass --token.",
                    fg="yellow", err=True)
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    typer.echo(f"Admin dashboard: http://{shown}:{port}/{'?token=' + token if token else ''}  (Ctrl+C stops it)")
    sys.stdout.flush()
    argv = dashboard_argv(nb, host, port, token)
    os.execvpe(argv[0], argv, dashboard_environment(database_url or settings.database_url))


@app.command("agreement")
@friendly
def agreement_cmd(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Print how much labellers agree, computed from the labels now (overall, per label, per pair)."""
    from smartlabel.db import check_connection, make_engine
    from smartlabel.migrate import upgrade
    from smartlabel.quality import agreement_rows, _label_rows

    engine = make_engine(database_url or _settings().database_url)
    check_connection(engine)
    upgrade(engine)
    with engine.connect() as conn:
        rows = agreement_rows(_label_rows(conn))
    if not rows or not rows[0]["n_items"]:
        typer.echo("No post has two labels yet: agreement needs OVERLAP above 1 or AUDIT_SHARE audits.")
        return
    for r in rows:
        if r["scope"] == "worker":
            continue
        who = {"overall": "overall", "label": f"label {r['label']}",
               "pair": f"{r['worker_a']} & {r['worker_b']}"}[r["scope"]]
        value = "n/a" if r["value"] is None else f"{r['value']:.3f}"
        typer.echo(f"{who:40.40s} {r['metric']:20s} {value:>7s}  ({r['n_items']} posts)")


# --- import (issue 4) --------------------------------------------------------


@app.command("import")
@friendly
def import_cmd(
    file: Path = typer.Argument(
        ...,
        help="CSV or JSON Lines file with columns title, selftext; optional clean_selftext, id, "
        "label, worker_id; other columns are kept as extra data.",
        show_default=False,
    ),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
    file_format: Optional[str] = typer.Option(
        None, "--format", help="csv, tsv or jsonl. Default: from the file name (.csv, .tsv, .jsonl)."
    ),
    worker_id: str = typer.Option(
        "import", "--worker-id", help="Recorded as the labeller of the file's labels when it has no worker_id column."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Rows per INSERT batch."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on a terminal."),
):
    """Add posts (and existing labels) from FILE; posts already imported are skipped.

    The whole file is one transaction: if any line is bad, nothing is imported and
    the error names the line and column.
    """
    from smartlabel.importer import import_file

    settings = _settings()
    result = import_file(
        file,
        database_url or settings.database_url,
        settings=settings,
        fmt=file_format,
        batch_size=batch_size,
        progress=progress,
        worker_id=worker_id,
    )
    typer.echo(result.summary())


# --- orchestrator, autolabel, export, status, simulate (issue 5) -------------

# --- labelling page: serve (issue 6) ----------------------------------------

# --- run: everything on one machine ------------------------------------------


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="smartlabel")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
