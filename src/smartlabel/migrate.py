"""Schema migrations (Alembic), run by `smartlabel db upgrade` and automatically by import/run."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from smartlabel.db import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection=None) -> Config:
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url_or_engine=None, revision: str = "head") -> Engine:
    """Bring the schema to `revision`; safe to call on every start."""
    engine = make_engine(url_or_engine)
    if current_revision(engine) == head_revision() and revision == "head":
        return engine
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)
    return engine


def downgrade(url_or_engine, revision: str) -> None:
    engine = make_engine(url_or_engine)
    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)
