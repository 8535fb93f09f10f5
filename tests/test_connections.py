"""The connection budget (issue 14) on a real PostgreSQL: a page's kernel uses one connection,
everything else a small bounded pool; a full server gives the labeller "The server is busy"
with Retry, never a traceback, and the click they made is stored once when they retry."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from smartlabel.db import POOL_OVERFLOW, POOL_SIZE, make_engine
from smartlabel.errors import BUSY, SERVER_BUSY, describe_error, error_kind

from helpers import seed_items
from small_postgres import fill_connections, free, new_database, small_postgres
from test_interface import click, make_page


def checkouts_until_refused(engine, limit: int = 20) -> int:
    """How many connections the engine hands out at once before its pool refuses one."""
    held = []
    try:
        while len(held) < limit:
            try:
                held.append(engine.connect())
            except sa_exc.TimeoutError as refused:
                assert error_kind(refused) == BUSY
                assert describe_error(refused).startswith(SERVER_BUSY)
                return len(held)
        return len(held)
    finally:
        for conn in held:
            conn.close()


def test_a_page_kernel_uses_one_connection_and_other_processes_a_bounded_pool(pg_url):
    page = make_engine(pg_url, connections=1, pool_timeout=0.5)
    other = make_engine(pg_url, pool_timeout=0.5)
    try:
        assert checkouts_until_refused(page) == 1
        assert checkouts_until_refused(other) == POOL_SIZE + POOL_OVERFLOW == 4
        assert make_engine(pg_url, connections=1).pool.timeout() == 20  # a click waits for the one connection
    finally:
        page.dispose()
        other.dispose()


@pytest.fixture(scope="module")
def full_server():
    with small_postgres(max_connections=8) as admin:
        yield new_database(admin)


def backends(url, exclude=()):
    """Client connections to the database, other than the test's own and `exclude`."""
    import psycopg2
    from sqlalchemy.engine import make_url

    conn = psycopg2.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
            return sorted(p for (p,) in cur.fetchall() if p not in set(exclude))
    finally:
        conn.close()


def test_a_full_server_shows_busy_and_retry_stores_the_click_once(full_server):
    url = full_server
    seeder = make_engine(url)
    seed_items(seeder, 3)
    seeder.dispose()

    # the page opens while every connection slot is taken
    held = fill_connections(url)
    try:
        page = make_page(url, "ann")
        shown = page.body.children[0].value
        assert page.widget is None
        assert SERVER_BUSY in shown and "Traceback" not in shown
        retry = page.body.children[-1]
        assert retry.description == "Retry"
    finally:
        free(held)
    retry.click()
    w = page.widget
    assert w is not None and w.state == "item"
    first = w.current_item_id
    (page_backend,) = backends(url)  # the page holds exactly one connection

    # the server fills up again and the page's connection is dropped (a restart, an idle timeout)
    held = fill_connections(url)
    try:
        with held[0].cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (page_backend,))
        deadline = time.monotonic() + 30
        while page_backend in backends(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        held += fill_connections(url)  # the slot it left is taken too
        click(page, "Advocacy")
        assert w.state == "error"
        message = w.message.value
        assert SERVER_BUSY in message and "Nothing is lost" in message and "Traceback" not in message
        assert w.retry_button in w.children
    finally:
        free(held)
    check = make_engine(url)
    try:
        with check.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM labels")).scalar_one() == 0
        w.retry_button.click()  # the click is sent again
        assert w.state == "item" and w.current_item_id not in (None, first)
        with check.connect() as conn:
            assert conn.execute(text("SELECT item_id, label, worker_id FROM labels")).all() == [
                (first, "Advocacy", "ann")]
        w.retry_button.click()  # a stray Retry changes nothing
        with check.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM labels")).scalar_one() == 1
        assert len(backends(url, exclude=())) <= 2  # the page's one connection, and this check's
    finally:
        w.renewer.close()
        page._engine.dispose()
        check.dispose()
