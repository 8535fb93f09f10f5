"""A pop that loses the race for its best post, on SQLite and on a real PostgreSQL.

On PostgreSQL a pop reads the pool on its snapshot, locks the best post it sees as free
(`SKIP LOCKED`) and claims its lease. Another labeller's hand-out of that post can commit
between the two: the claim then finds a live lease and is lost (never won twice). The
loser must try again on a fresh snapshot and get the next best post, as if it had come a
moment later, not fall through to the paths meant for an exhausted run (the unscored
posts, then its own skipped ones: the unscored path walks every open post when the run
scored them all, hundreds of milliseconds at 100k posts, while it holds the lost post's row
lock, so the winner's submit waits for it: BENCHMARKS.md, "The hand-out under contention").

The race is made deterministic here: an uncommitted lease on the best post (as the winner's
pop holds it just before its commit) makes the loser's claim wait for it, and it commits
once the loser is seen waiting. SQLite takes the write lock at the start of a pop (`BEGIN
IMMEDIATE`), so there the loser simply waits and then sees the lease: same outcome.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

from sqlalchemy import text

from smartlabel.db import is_postgres, make_engine, utcnow
from smartlabel.queue import LabelQueue
from smartlabel.settings import load_settings
from smartlabel.store import predictions as store_predictions, runs as store_runs

from helpers import seed_items

WAIT_S = 60  # how long the test waits for the loser to block (a deadlock guard, not a timing check)


def _queue(url: str, worker: str) -> LabelQueue:
    return LabelQueue(url, worker, settings=load_settings(
        database_url=url, shuffle_prop=0.0, audit_share=0.0, review_share=0.0), rng=random.Random(1))


def _wait_until_blocked(engine, database: str) -> None:
    """PostgreSQL: until some other session of this database waits for a lock."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"), {"db": database}).scalar_one()
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError(f"the second labeller's pop never waited for the first one's lease ({WAIT_S} s)")


def test_a_pop_that_loses_the_race_gets_the_next_best_post(db_url):
    ids = seed_items(db_url, 6)
    engine = make_engine(db_url)
    try:
        run = store_runs.start(engine)
        store_predictions.write(engine, run, ids, [float(i) for i in ids])  # the highest id first
        store_runs.finish(engine, run, "ok")
        store_runs.set_current(engine, run)
        (unscored,) = seed_items(db_url, 1, seed=1, prefix="late")  # imported after the run
        best, second = sorted(ids, reverse=True)[:2]
        bob = _queue(db_url, "bob")
        bob.counts()  # connected before the race starts
        got: dict = {}

        def pop():
            try:
                got["bob"] = bob.pop()
            except Exception as exc:  # reported by the assertion below
                got["error"] = exc

        winner = engine.connect()
        try:
            tx = winner.begin()
            now = utcnow()
            # ann's hand-out of the best post, not committed yet
            winner.execute(text(
                "INSERT INTO leases (item_id, worker_id, leased_at, expires_at, reason, run_id) "
                "VALUES (:item, 'ann', :now, :expires, 'priority', :run)"),
                {"item": best, "now": now, "expires": now + timedelta(minutes=10), "run": run})
            t = threading.Thread(target=pop)
            t.start()
            if is_postgres(engine):
                _wait_until_blocked(engine, engine.url.database)
            else:
                time.sleep(0.2)  # SQLite: bob waits at BEGIN IMMEDIATE whether or not he got there yet
            tx.commit()
        finally:
            winner.close()
        t.join(WAIT_S)
        assert not t.is_alive(), "bob's pop never returned"
        assert "error" not in got, f"bob's pop failed: {got.get('error')!r}"
        item_id, item = got["bob"]
        assert item_id != best, "the post ann holds was handed to bob as well"
        assert (item_id, item["reason"]) == (second, "priority"), (
            f"bob lost the race for post {best} and got post {item_id} ({item['reason']!r}); "
            f"the next best post is {second} (the unscored post is {unscored})")
        with engine.connect() as conn:
            holders = conn.execute(text("SELECT item_id, worker_id FROM leases ORDER BY item_id")).all()
        assert [tuple(h) for h in holders] == sorted([(best, "ann"), (second, "bob")])
    finally:
        engine.dispose()


def test_priorities_of_a_run_whose_row_is_gone_are_still_handed_out(db_url):
    """`predictions` has no foreign key to `model_runs` (migration 0008): should a run's row be
    deleted by hand while the queue follows it, its posts are still handed out in its order."""
    ids = seed_items(db_url, 4)
    engine = make_engine(db_url)
    try:
        run = store_runs.start(engine)
        store_predictions.write(engine, run, ids, [float(i) for i in ids])
        store_runs.set_current(engine, run)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM model_runs WHERE id = :run"), {"run": run})
        q = _queue(db_url, "ann")
        got = [q.pop() for _ in range(2)]
        assert [(i, item["reason"]) for i, item in got] == [(i, "priority") for i in sorted(ids, reverse=True)[:2]]
    finally:
        engine.dispose()
