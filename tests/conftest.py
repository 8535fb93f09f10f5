"""Shared fixtures: a real PostgreSQL (pgserver, or TEST_DATABASE_URL) and SQLite files.

`db_url` is parametrised over both backends, so every storage test runs on each.
Each test gets a fresh, migrated database: on PostgreSQL a copy of a template.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

TEMPLATE = "smartlabel_template"

# The tests' posts carry the article's five tags ("Advocacy", "Others", ...), not the
# demo default (the `reuters` preset, for the bundled aldata.csv): every test, and every
# command or server a test starts, runs with the `article` preset whatever the
# developer's environment or .env says. Tests of the default remove it themselves.
os.environ["LABELS"] = "article"


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session: TEST_DATABASE_URL, or pgserver (PyPI) in a temp dir.

    pgserver runs PostgreSQL as its own system user, so its data lives in a folder of its
    own (not under pytest's private temp dir), and it is stopped and deleted here, before
    pytest prints its summary.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import tempfile

    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="smartlabel-pg-"))
    folder.chmod(0o755)
    srv = pgserver.get_server(str(folder / "pg"), cleanup_mode="delete")
    uri = srv.get_uri()  # postgresql://postgres:@/postgres?host=/path
    yield uri.replace("postgresql://", "postgresql+psycopg2://", 1)
    srv.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(postgres_server):
    """URL of a PostgreSQL database we may create databases from, with a migrated template."""
    from smartlabel.migrate import upgrade

    admin = postgres_server
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {TEMPLATE}"))
    template_url = make_url(admin).set(database=TEMPLATE)
    eng = upgrade(template_url.render_as_string(hide_password=False))
    eng.dispose()
    yield admin
    engine.dispose()


def new_pg_database(admin_url: str, template: str | None = TEMPLATE) -> str:
    """A new database on the server: a copy of the migrated template, or empty (template=None)."""
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def new_sqlite_database(folder: Path) -> str:
    from smartlabel.migrate import upgrade

    url = f"sqlite:///{folder / 'smartlabel.db'}"
    upgrade(url).dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        return new_sqlite_database(tmp_path)
    return new_pg_database(request.getfixturevalue("pg_admin_url"))


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, migrated PostgreSQL database URL (PostgreSQL-only tests)."""
    return new_pg_database(pg_admin_url)


@pytest.fixture
def sqlite_url(tmp_path):
    return new_sqlite_database(tmp_path)


@pytest.fixture
def engine_for():
    """Engines made through this are disposed at the end of the test."""
    from smartlabel.db import make_engine

    made = []

    def make(url):
        e = make_engine(url)
        made.append(e)
        return e

    yield make
    for e in made:
        e.dispose()
