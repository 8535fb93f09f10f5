"""The `smartlabel` command. Every subcommand has --help; errors are one clear line, exit 1."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer

from smartlabel import acquisition
from smartlabel.errors import ConfigError, SmartlabelError

app = typer.Typer(
    help="Label text with active learning: import posts, serve the labelling page, "
    "retrain a model on a timer, export the labelled data set.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and role commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
labellers_app = typer.Typer(
    help="The labelling team: add a labeller (prints their personal link), list, disable, enable, "
    "rotate a link. Run with the owner's DATABASE_URL.",
    no_args_is_help=True)
app.add_typer(labellers_app, name="labellers")


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


def _migrated_engine(database_url: Optional[str]):
    """An engine on a reachable database whose schema is current (one clear error otherwise)."""
    from smartlabel.db import check_connection, make_engine
    from smartlabel.migrate import upgrade

    engine = make_engine(database_url or _settings().database_url)
    check_connection(engine)
    upgrade(engine)
    return engine


# --- database --------------------------------------------------------------


@db_app.command("upgrade")
@friendly
def db_upgrade(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Create or upgrade the schema (safe to run again)."""
    from smartlabel.migrate import head_revision

    engine = _migrated_engine(database_url)
    typer.echo(f"schema at revision {head_revision()} ({engine.url.render_as_string(hide_password=True)})")


@db_app.command("roles")
@friendly
def db_roles(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL (the owner's)."),
):
    """Create or update the PostgreSQL login roles smartlabel_labeller (the page), smartlabel_orchestrator
    and smartlabel_reader (dashboard, export, Adminer) with least privilege (safe to run again).

    Passwords from LABELLER_DB_PASSWORD, ORCHESTRATOR_DB_PASSWORD and READER_DB_PASSWORD (environment
    or .env). Run as the owner, after `smartlabel db upgrade`; one transaction: all or nothing.
    """
    from smartlabel.db import make_engine
    from smartlabel.roles import RolePasswords, checked_passwords, create_roles

    engine = make_engine(database_url or _settings().database_url)
    if engine.dialect.name != "postgresql":
        raise ConfigError("roles are a PostgreSQL feature; SQLite has one user (nothing to do)")
    passwords = checked_passwords(RolePasswords().by_role())
    typer.echo(create_roles(_migrated_engine(engine), passwords).summary())


# --- the team (see smartlabel.labellers) ---------------------------------------------------

NAME_ARGUMENT = typer.Argument(..., help="The labeller's name (compared ignoring case and spaces).",
                               show_default=False)
DATABASE_OPTION = typer.Option(None, "--database-url", help="Default: DATABASE_URL.")


def _print_link(settings, new, what: str) -> None:
    from smartlabel.labellers import personal_link

    typer.echo(f"{what} {new.name}. Their personal link (send it to {new.name} only; it is shown this once):")
    typer.echo(f"  {personal_link(settings, new.key)}")
    if not (settings.domain or settings.page_url):
        typer.echo("  (this machine's page address: behind the HTTPS proxy of docker compose, set DOMAIN or "
                   "PAGE_URL, or use https://<server address>/ with the same ?token=...&key=...)")
    if settings.labeller_keys != "required":
        typer.secho("warning: LABELLER_KEYS is off, so the page still lets anyone type any name; "
                    "set LABELLER_KEYS=required to accept only personal links.", fg="yellow", err=True)


@labellers_app.command("add")
@friendly
def labellers_add(name: str = NAME_ARGUMENT, database_url: Optional[str] = DATABASE_OPTION):
    """Add a labeller and print their personal link (a key of 256 random bits; only its hash is stored)."""
    from smartlabel import labellers

    settings = _settings()
    _print_link(settings, labellers.add(_migrated_engine(database_url), name), "Added labeller")


@labellers_app.command("rotate")
@friendly
def labellers_rotate(name: str = NAME_ARGUMENT, database_url: Optional[str] = DATABASE_OPTION):
    """Give a labeller a new personal link; the old one stops working at once (a leaked link)."""
    from smartlabel import labellers

    settings = _settings()
    _print_link(settings, labellers.rotate(_migrated_engine(database_url), name), "New link for")


@labellers_app.command("disable")
@friendly
def labellers_disable(name: str = NAME_ARGUMENT, database_url: Optional[str] = DATABASE_OPTION):
    """Stop a labeller: their link (or typed name) is refused from their next click; their labels stay."""
    from smartlabel import labellers

    typer.echo(f"Disabled {labellers.set_enabled(_migrated_engine(database_url), name, False)}: their link "
               "is refused from now on and the posts they held are back in the pool.")


@labellers_app.command("enable")
@friendly
def labellers_enable(name: str = NAME_ARGUMENT, database_url: Optional[str] = DATABASE_OPTION):
    """Let a disabled labeller work again (with the link they had, or `rotate` for a new one)."""
    from smartlabel import labellers

    typer.echo(f"Enabled {labellers.set_enabled(_migrated_engine(database_url), name, True)}.")


@labellers_app.command("list")
@friendly
def labellers_list(database_url: Optional[str] = DATABASE_OPTION):
    """Every labeller: created, last seen, labels given, labels retracted, enabled (never keys)."""
    from rich.console import Console
    from rich.table import Table

    from smartlabel import labellers

    rows = labellers.listing(_migrated_engine(database_url))
    if not rows:
        typer.echo("No labellers yet: `smartlabel labellers add NAME` adds one and prints their link.")
        return
    table = Table(show_header=True)
    for col in ("name", "enabled", "created UTC", "last seen UTC", "labels", "retracted", "link"):
        table.add_column(col, justify="right" if col in ("labels", "retracted") else "left")
    when = lambda v: "-" if v is None else str(v)[:16]  # noqa: E731 (SQLite returns text)
    for r in rows:
        table.add_row(r["name"], "yes" if r["enabled"] else "no", when(r["created_at"]), when(r["last_seen_at"]),
                      str(r["labels"]), str(r["retracted"]), "personal" if r["has_key"] else "none (typed name)")
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 120))
    console.print(table)


# --- pages: the labelling page and the admin dashboard (see smartlabel.serve) ----------


# options both pages take the same way
HOST_OPTION = typer.Option("127.0.0.1", "--host", help="Interface to listen on; 0.0.0.0 for all (Docker).")
NO_TOKEN_OPTION = typer.Option(False, "--no-token", help="No access token, even if one is set.")
PAGE_DATABASE_OPTION = typer.Option(None, "--database-url", help="Default: DATABASE_URL.")


def _announce(launch) -> None:
    if launch.warning:
        typer.secho(f"warning: {launch.warning}", fg="yellow", err=True)
    typer.echo(f"{launch.page.title}: {launch.url}  (Ctrl+C stops it)")


def _warn_if_unreachable(database_url: str) -> None:
    """The page starts anyway (it shows the problem and a Retry button); the operator is told now."""
    from smartlabel.db import check_connection, make_engine

    engine = make_engine(database_url)
    try:
        check_connection(engine)
    except SmartlabelError as exc:
        typer.secho(f"warning: {exc} The page will say so and offer a retry.", fg="yellow", err=True)
    finally:
        engine.dispose()


@app.command("serve")
@friendly
def serve(
    host: str = HOST_OPTION,
    port: Optional[int] = typer.Option(None, "--port", help="Port. Default: VOILA_PORT (8866)."),
    token: Optional[str] = typer.Option(None, "--token", help="Access token labellers need. Default: VOILA_TOKEN."),
    no_token: bool = NO_TOKEN_OPTION,
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Default: ./voila-interface.ipynb."),
    database_url: Optional[str] = PAGE_DATABASE_OPTION,
):
    """Serve the labelling page (Voila on voila-interface.ipynb) until stopped.

    This process becomes Voila (exec), so stopping it stops Voila and its kernels.
    """
    from smartlabel.serve import LABELLING, prepare

    settings = _settings()
    launch = prepare(LABELLING, settings, host=host, port=port, token=token, no_token=no_token,
                     notebook=notebook, database_url=database_url)
    _warn_if_unreachable(database_url or settings.database_url)
    _announce(launch)
    if settings.labeller_keys == "required":
        typer.echo("LABELLER_KEYS=required: each labeller opens their personal link "
                   "(`smartlabel labellers add NAME` prints one); this address alone shows 'link not valid'.")
    else:
        typer.echo(f"Each labeller can bookmark {launch.url}{'&' if launch.token else '?'}worker=THEIR_NAME")
    launch.exec()


@app.command("dashboard")
@friendly
def dashboard_cmd(
    host: str = HOST_OPTION,
    port: Optional[int] = typer.Option(None, "--port", help="Port. Default: DASHBOARD_PORT (8867)."),
    token: Optional[str] = typer.Option(
        None, "--token", help="Access token. Default: DASHBOARD_TOKEN (never the labellers' VOILA_TOKEN)."),
    no_token: bool = NO_TOKEN_OPTION,
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Default: ./admin-dashboard.ipynb."),
    database_url: Optional[str] = PAGE_DATABASE_OPTION,
):
    """Serve the admin dashboard (Voila on admin-dashboard.ipynb) until stopped.

    Learning curve, labels per class, predicted classes, labellers, agreement and a
    stopping suggestion. This process becomes Voila (exec): stopping it stops Voila.
    """
    from smartlabel.serve import DASHBOARD, prepare

    launch = prepare(DASHBOARD, _settings(), host=host, port=port, token=token, no_token=no_token,
                     notebook=notebook, database_url=database_url)
    _announce(launch)
    launch.exec()


# --- label quality ---------------------------------------------------------------


@app.command("agreement")
@friendly
def agreement_cmd(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Print how much labellers agree, computed from the labels now (overall, per label, per pair)."""
    from smartlabel.quality import agreement_rows
    from smartlabel.store import labels as store_labels

    engine = _migrated_engine(database_url)
    rows = agreement_rows(store_labels.rows(engine))
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


# --- import --------------------------------------------------------


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
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1,
        help="Rows located and written together. Default: 1000 on SQLite, 10000 on PostgreSQL (COPY).",
        show_default=False,
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on a terminal."),
):
    """Add posts (and existing labels) from FILE; posts already imported are skipped.

    The whole file is checked first: if any line is bad, nothing is imported and the
    error names the line and column. PostgreSQL writes it in one transaction; SQLite in
    chunks, so labellers keep submitting (an interrupted import resumes when run again).
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


# --- orchestrator, autolabel, export, status, simulate -------------


@app.command("orchestrate")
@friendly
def orchestrate_cmd(
    once: bool = typer.Option(False, "--once", help="Check once (retrain if due) and exit; exit status 1 if that run failed."),
    force: bool = typer.Option(False, "--force", help="Retrain even if fewer than RETRAIN_EVERY_N_LABELS labels are new."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Default: MODELS_DIR."),
):
    """Retrain the model every RETRAIN_INTERVAL_SECONDS when RETRAIN_EVERY_N_LABELS new labels
    arrived, and write the posts' priorities for the labelling queue (runs until Ctrl+C / SIGTERM).

    Each run is a row in model_runs (scores, status, message) and a model file
    MODELS_DIR/<timestamp> <cv score>.pkl. MODEL, ACQUISITION, CLASS_WEIGHT choose how.

    One orchestrator per database: a second one says which one runs (host, pid, since when)
    and exits with status 3.
    """
    from smartlabel.orchestrator import main as orchestrate_main

    raise typer.Exit(orchestrate_main(once=once, force=force, settings=_settings(), models_dir=models_dir,
                                      database_url=database_url))


@app.command("autolabel")
@friendly
def autolabel_cmd(
    model_file: Optional[Path] = typer.Option(None, "--model-file", help="Default: the newest file in MODELS_DIR."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Default: MODELS_DIR."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
):
    """Apply the latest model to every post without an agreed human label.

    The predictions are stored in a new model run marked `autolabel` (the labelling
    queue does not follow it); `smartlabel export` then uses them.
    """
    from smartlabel.export import autolabel

    result = autolabel(_settings(), engine=database_url, models_dir=models_dir, model_file=model_file,
                       progress=progress)
    typer.echo(result.summary())


@app.command("export")
@friendly
def export_cmd(
    out: Path = typer.Option(..., "--out", help="FILE.csv or FILE.jsonl", show_default=False),
    file_format: Optional[str] = typer.Option(None, "--format", help="csv or jsonl. Default: from the file name."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    raw: bool = typer.Option(
        False, "--raw", help="CSV: write cells as they are. By default a cell starting with = + - @ tab or CR "
        "gets a leading ' so a spreadsheet cannot run it as a formula. JSON Lines is never changed."),
):
    """Write every post with its human labels and a final label (agreed human label, else the
    model's prediction), the label's source (human/model), confidence and model run.

    CSV is safe to open in a spreadsheet (formula-like cells get a leading '); --raw turns that off.
    """
    from smartlabel.export import export

    result = export(out, _settings(), engine=database_url, fmt=file_format, progress=progress, raw=raw)
    typer.echo(result.summary())


@app.command("status")
@friendly
def status_cmd(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Counts (posts, labelled, leased), labels per class, the latest model runs and their scores."""
    from smartlabel.db import check_connection, make_engine
    from smartlabel.status import print_status

    settings = _settings()
    engine = make_engine(database_url or settings.database_url)
    check_connection(engine)
    print_status(engine, settings.labels)


@app.command("health")
@friendly
def health_cmd(
    max_age: float = typer.Option(60.0, "--max-age", min=1, help="Seconds after which the last heartbeat is too old."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Default: DATABASE_URL."),
):
    """Is the orchestrator alive? Exit status 0 when its heartbeat (written every 10 s, even
    during a long training run) is younger than --max-age seconds, else 1; one line saying why.

    docker compose's healthcheck of the orchestrator runs this.
    """
    from smartlabel.db import make_engine
    from smartlabel.heartbeat import health

    result = health(make_engine(database_url or _settings().database_url), max_age)
    typer.echo(result.message, err=not result.ok)
    raise typer.Exit(0 if result.ok else 1)


# simulate (owner: simulate) --------------------------------------------------


@app.command("simulate")
@friendly
def simulate_cmd(
    file: Path = typer.Argument(..., help="CSV with the posts (title, selftext / clean_selftext, or text) and a truth column."),
    truth_column: str = typer.Option(..., "--truth-column", help="Column holding the true label of each post (the oracle)."),
    model: str = typer.Option("lr", "--model", help="Model to train: lr, svm, keras, embed or minilm (as MODEL)."),
    strategy: list[str] = typer.Option(
        [acquisition.DEFAULT], "--strategy",
        help="Acquisition to test against random sampling: "
        f"{', '.join(n for n in acquisition.names() if n != acquisition.RANDOM)} "
        "(repeat or comma-separate to compare several).",
    ),
    initial: int = typer.Option(20, "--initial", help="Random labels to start from (the same per seed for every strategy)."),
    step: int = typer.Option(20, "--step", help="Labels added per step (one retraining per step)."),
    budget: int = typer.Option(500, "--budget", help="Stop at this many labels."),
    seeds: int = typer.Option(3, "--seeds", help="Number of runs with different initial samples (seeds 0..N-1)."),
    baseline_budget: Optional[int] = typer.Option(
        None, "--baseline-budget", help="Let random sampling go on to this many labels, so its labels to target are known (default: --budget)."
    ),
    baseline_step: Optional[int] = typer.Option(None, "--baseline-step", help="Step of random sampling past --budget (default: --step)."),
    heldout: float = typer.Option(0.25, "--heldout", help="Share of the file held out for scoring, never queried."),
    max_items: Optional[int] = typer.Option(None, "--max-items", help="Use a stratified random subset of this many posts (faster)."),
    shuffle_prop: float = typer.Option(0.0, "--shuffle-prop", help="Share of each step picked at random, like SHUFFLE_PROP."),
    class_weight: str = typer.Option("none", "--class-weight", help="none or balanced (as CLASS_WEIGHT)."),
    cold_start: Optional[int] = typer.Option(
        None, "--cold-start", help="Until this many labels the strategies label posts chosen to represent the pool "
        "(initial sample included), as COLD_START_LABELS; 0: off (default: COLD_START_LABELS' default)."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the learning curve as CSV here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the learning-curve plot (PNG) here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary (targets, labels to target, ratios) as JSON here."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
):
    """Simulate labelling FILE with its truth column as the labeller: how many labels does the strategy need to reach 90% / 95% of the full-data accuracy, against random sampling?

    Runs the orchestrator's models and acquisition code. Full-data accuracy: the model trained on the whole pool (all but the --heldout share) with its true labels, scored on the held-out share.

    Example: smartlabel simulate data/corpora/r8.csv --truth-column topic --plot r8.png
    """
    import json as _json

    from smartlabel.models import MODELS
    from smartlabel.simulate import SimulationError, format_table, load_corpus, plot_curve, simulate, write_curve_csv

    if model not in MODELS:
        raise SimulationError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    if class_weight not in ("none", "balanced"):
        raise SimulationError("--class-weight must be none or balanced")
    if plot:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # say so before a long run, not after
            raise SimulationError("--plot needs matplotlib: pip install 'smartlabel[plots]' (or leave out --plot)")
    strategies = [s for part in strategy for s in part.split(",")]
    corpus = load_corpus(file, truth_column)
    result = simulate(
        corpus, model=model, strategies=strategies, initial=initial, step=step, budget=budget, seeds=seeds,
        baseline_budget=baseline_budget, baseline_step=baseline_step, heldout=heldout, max_items=max_items,
        shuffle_prop=shuffle_prop, class_weight=class_weight, cold_start=cold_start,
        progress=progress, log=lambda msg: typer.echo(msg, err=True),
    )
    typer.echo(format_table(result))
    if out:
        typer.echo(f"curve: {write_curve_csv(result, out)}")
    if plot:
        typer.echo(f"plot: {plot_curve(result, plot)}")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(_json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        typer.echo(f"summary: {json_out}")


# --- run: everything on one machine ------------------------------------------


@app.command("run")
@friendly
def run_cmd(
    data: Path = typer.Option(
        Path("aldata.csv"), "--data", help="Posts to load when the database has none yet."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface the labelling page listens on."),
):
    """Migrate, load DATA into an empty database, then run the orchestrator and the page.

    Stops both on Ctrl+C (or SIGTERM); if one of them dies, the other is stopped too.
    """
    from smartlabel.launcher import run_all

    raise typer.Exit(run_all(_settings(), data=data, host=host))


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="smartlabel")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
