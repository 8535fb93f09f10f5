"""smartlabel.errors.describe_error: one line saying what to do, for errors real databases raise."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from conftest import new_pg_database
from smartlabel.db import check_connection, make_engine
from smartlabel.errors import (
    NO_SCHEMA, OTHER, OURS, SCHEMA, UNREACHABLE, ConfigError, DatabaseUnavailable, describe_error, error_kind,
)
from smartlabel.store import items

CHECK = "Check DATABASE_URL and that the database server is running."


def raised(fn):
    try:
        fn()
    except Exception as exc:  # the real exception, as the code that calls `fn` would catch it
        return exc
    raise AssertionError(f"{fn} raised nothing")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database that exists but has no smartlabel tables (never migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return new_pg_database(request.getfixturevalue("pg_admin_url"), template=None)


def test_a_database_without_tables_says_run_db_upgrade(empty_url, engine_for):
    engine = engine_for(empty_url)
    exc = raised(lambda: items.count(engine))
    said = 'relation "items" does not exist' if empty_url.startswith("postgresql") else "no such table: items"
    assert error_kind(exc) == NO_SCHEMA
    assert describe_error(exc, engine) == (f"the database at {engine.url.render_as_string(hide_password=True)} "
                                           f"has no smartlabel tables ({said}): run `smartlabel db upgrade`")
    assert describe_error(exc) == f"the database has no smartlabel tables ({said}): run `smartlabel db upgrade`"


def test_a_column_the_schema_lacks_asks_whether_the_schema_is_current(db_url, engine_for):
    engine = engine_for(db_url)

    def query():
        with engine.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM items"))

    exc = raised(query)
    assert error_kind(exc) == SCHEMA
    said = ('column "no_such_column" does not exist' if db_url.startswith("postgresql")
            else "no such column: no_such_column")
    assert describe_error(exc, engine) == (f"database error: {said}; is the schema current? "
                                           "Run `smartlabel db upgrade`")


def test_an_unreachable_server_names_the_url_without_its_password(engine_for):
    engine = engine_for("postgresql+psycopg2://ann:s3cret@127.0.0.1:9/labels?connect_timeout=2")
    exc = raised(engine.connect)
    assert error_kind(exc) == UNREACHABLE
    line = describe_error(exc, engine)
    assert line.startswith("cannot reach the database at postgresql+psycopg2://ann:***@127.0.0.1:9/labels"
                           "?connect_timeout=2: connection to server at \"127.0.0.1\", port 9 failed: ")
    assert line.endswith(CHECK) and "s3cret" not in line and "\n" not in line
    # check_connection raises it as our error; describing that again keeps the same line
    unavailable = raised(lambda: check_connection(engine))
    assert isinstance(unavailable, DatabaseUnavailable) and str(unavailable) == line
    assert error_kind(unavailable) == UNREACHABLE and describe_error(unavailable) == line


def test_a_database_the_server_does_not_have_is_unreachable_not_a_schema_problem(pg_admin_url, engine_for):
    engine = engine_for(make_url(pg_admin_url).set(database="no_such_db").render_as_string(hide_password=False))
    exc = raised(engine.connect)
    assert error_kind(exc) == UNREACHABLE
    assert 'database "no_such_db" does not exist' in describe_error(exc, engine)


def test_a_sqlite_file_that_cannot_be_opened_is_unreachable(tmp_path, engine_for):
    (tmp_path / "a-folder").mkdir()  # DATABASE_URL names a folder, not a file
    engine = engine_for(f"sqlite:///{tmp_path / 'a-folder'}")
    exc = raised(lambda: check_connection(engine))
    assert str(exc) == f"cannot reach the database at sqlite:///{tmp_path}/a-folder: unable to open database file. {CHECK}"


def test_our_errors_keep_their_message():
    exc = raised(lambda: make_engine("mysql://x@y/z"))
    assert isinstance(exc, ConfigError) and error_kind(exc) == OURS
    assert describe_error(exc) == str(exc) and "supports sqlite and postgresql" in str(exc)


def test_anything_else_is_its_type_and_first_line():
    exc = raised(lambda: int("twelve"))
    assert error_kind(exc) == OTHER
    assert describe_error(exc) == "ValueError: invalid literal for int() with base 10: 'twelve'"
    assert describe_error(raised(lambda: next(iter([])))) == "StopIteration"
    multi = raised(lambda: compile("x = (", "<page>", "exec"))
    assert describe_error(multi) == f"SyntaxError: {str(multi).splitlines()[0]}" and "\n" not in describe_error(multi)
