"""How the hand-out talks to PostgreSQL: prepared statements per connection, and the plain
statements it falls back to when a pooler (or DISCARD ALL) loses them.

PostgreSQL only: SQLite runs the queue in-process, with neither round trips nor prepared
statements (the queue's behaviour on both databases is pinned in the other test_queue files).
"""

from __future__ import annotations

from sqlalchemy import text

from helpers import seed_items
from test_queue import A, B, label_rows, make_queue


def _prepared_names(conn) -> set[str]:
    return {r[0] for r in conn.execute(text("SELECT name FROM pg_prepared_statements"))
            if r[0].startswith("smartlabel_")}


def test_pop_and_submit_run_prepared_statements_on_postgresql(pg_url, engine_for):
    seed_items(pg_url, 3)
    q = make_queue(pg_url, "ann")
    item_id, post = q.pop()
    q.submit(item_id, A)
    # one connection served both steps (one labeller): it holds the pop's and the submit's
    with q.engine.connect() as conn:
        names = _prepared_names(conn)
    assert len(names) >= 8, names  # the held and unscored pops, lock + checks, five writes
    item2, _ = q.pop()
    q.submit(item2, B)
    with q.engine.connect() as conn:
        assert _prepared_names(conn) >= names  # prepared once, executed again
    assert label_rows(engine_for(pg_url)) == [(item_id, A, "ann"), (item2, B, "ann")]
    assert post["id"] == item_id and post["title"] and post["reason"] == "unscored"  # no run yet


def test_lost_prepared_statements_fall_back_to_plain_ones(pg_url, engine_for, caplog):
    """A pooler in transaction mode hands each transaction another server connection, and
    DISCARD ALL drops what a connection prepared: the step is run again, unprepared."""
    ids = seed_items(pg_url, 4)
    q = make_queue(pg_url, "ann")
    first, _ = q.pop()
    with q.engine.connect() as conn:  # the connection the queue prepared its statements on
        assert _prepared_names(conn)
        conn.execute(text("DEALLOCATE ALL"))
        conn.commit()
    q.submit(first, A)
    second, _ = q.pop()  # the pop's prepared statement is gone: run again with plain statements
    assert "uses plain statements from now on" in caplog.text
    q.submit(second, B)
    third, _ = q.pop()
    with engine_for(pg_url).connect() as conn:
        handouts = conn.execute(text("SELECT item_id FROM handouts WHERE worker_id = 'ann' ORDER BY id")).all()
    # one hand-out each: the step run again did not hand out or log twice
    assert [r[0] for r in handouts] == [first, second, third]
    assert len({first, second, third}) == 3 and {first, second, third} <= set(ids)
    assert label_rows(engine_for(pg_url)) == [(first, A, "ann"), (second, B, "ann")]
