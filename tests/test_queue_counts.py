"""Progress counts come from `item_counts` (migration 0008), kept by triggers on `items`:
they must equal a full count after every kind of change, on both databases, also when
many labellers submit at once."""

from __future__ import annotations

import threading

from sqlalchemy import text

from smartlabel.db import make_engine
from smartlabel.importer import import_file
from smartlabel.queue import LabelQueue
from smartlabel.settings import load_settings
from smartlabel.store import reports

from helpers import seed_items

A, B = "Advocacy", "Others"


def _queue(url, worker, **kw):
    kw.setdefault("database_url", url)
    kw.setdefault("shuffle_prop", 0.0)
    kw.setdefault("audit_share", 0.0)
    kw.setdefault("review_share", 0.0)
    return LabelQueue(url, worker, settings=load_settings(**kw))


def _truth(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        total, done = conn.execute(text(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN done THEN 1 ELSE 0 END), 0) FROM items")).one()
    return int(total), int(done)


def _counted(q: LabelQueue) -> tuple[int, int]:
    c = q.counts()
    assert c["left"] == c["total"] - c["done"]
    # `smartlabel status` reads the same counters
    s = reports.status(q.engine)
    assert (s["items"], s["done"]) == (c["total"], c["done"])
    return c["total"], c["done"]


def test_counts_follow_import_submit_undo_and_delete(db_url, tmp_path):
    engine = make_engine(db_url)
    q = _queue(db_url, "ann")
    assert _counted(q) == (0, 0)
    seed_items(db_url, 7)
    assert _counted(q) == _truth(engine) == (7, 0)
    csv = tmp_path / "more.csv"
    csv.write_text("title,selftext,label\n" + "".join(f"t{i},body number {i},{A if i % 2 else ''}\n"
                                                         for i in range(10)))
    import_file(csv, engine, settings=load_settings(database_url=db_url, labels=[A, B]),
                progress=False)  # five come labelled: done at once
    assert _counted(q) == _truth(engine) == (17, 5)
    item_id, _ = q.pop()
    q.submit(item_id, B)
    assert _counted(q) == _truth(engine) == (17, 6)
    q.pop()
    q.undo()  # un-pop the current post,
    q.undo()  # then retract the label (as one Undo click does): the post is open again
    assert _counted(q) == _truth(engine) == (17, 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM items WHERE id = :i"), {"i": item_id})
        conn.execute(text("DELETE FROM items WHERE id IN (SELECT id FROM items WHERE done LIMIT 2)"))
    assert _counted(q) == _truth(engine) == (14, 3)


def test_an_update_that_changes_no_done_flag_changes_no_count(db_url):
    engine = make_engine(db_url)
    seed_items(db_url, 4)
    with engine.begin() as conn:
        before = conn.execute(text("SELECT shard, total, done FROM item_counts ORDER BY shard")).all()
        conn.execute(text("UPDATE items SET title = title || ' (edited)'"))
        conn.execute(text("UPDATE items SET done = done"))
        after = conn.execute(text("SELECT shard, total, done FROM item_counts ORDER BY shard")).all()
    assert before == after


def test_concurrent_labellers_keep_the_counts_exact(db_url):
    engine = make_engine(db_url)
    seed_items(db_url, 60)
    errors = []

    def label(worker):
        try:
            q = _queue(db_url, worker)
            for _ in range(10):
                item_id, _ = q.pop()
                q.submit(item_id, A)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=label, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _counted(_queue(db_url, "x")) == _truth(engine) == (60, 40)


def test_migration_counts_the_posts_already_there(pg_admin_url):
    """An existing database upgraded to 0008 starts with the right counts."""
    from conftest import new_pg_database
    from smartlabel.migrate import downgrade, upgrade

    url = new_pg_database(pg_admin_url)
    seed_items(url, 5)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE items SET done = true WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 2)"))
    downgrade(url, "0005")
    with engine.connect() as conn:
        assert not conn.execute(text("SELECT to_regclass('item_counts')")).scalar()
    upgrade(url).dispose()
    assert _counted(_queue(url, "x")) == (5, 2)


def test_backends_started_together_count_on_rows_of_their_own(pg_url):
    """PostgreSQL (SQLite has one writer at a time): a post made done updates the backend's
    counter row and holds it until commit. Two backends whose pids are 8 apart (labellers'
    backends started together: pids in sequence) shared a row with 0008's 8 shards, so one's
    submit waited for the other's commit; with 0010's 64 they do not."""
    ids = seed_items(pg_url, 2)
    engine = make_engine(pg_url, pool_size=20, max_overflow=0)
    conns = []
    try:
        first = engine.raw_connection()
        conns.append(first)
        pid = _pid(first)
        other = None
        for _ in range(40):  # pids come in sequence: one 8 after the first comes soon
            c = engine.raw_connection()
            conns.append(c)
            if _pid(c) % 8 == pid % 8 and _pid(c) != pid:
                other = c
                break
        if other is None:
            import pytest

            pytest.skip("no second backend with a pid 8 apart (pids not handed out in sequence here)")
        assert (_pid(other) - pid) % 64 != 0, "the two backends share a counter row by chance"
        with first.cursor() as cur:
            cur.execute("UPDATE items SET done = true WHERE id = %s", (ids[0],))  # not committed
        with other.cursor() as cur:
            # waits for `first`'s commit only if both count on the same row: then the
            # lock timeout ends it (a wait that cannot end on its own, not a timing check)
            cur.execute("SET lock_timeout = '10s'")
            cur.execute("UPDATE items SET done = true WHERE id = %s", (ids[1],))
        other.commit()
        first.commit()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT SUM(done) FROM item_counts")).scalar_one() == 2
            assert conn.execute(text("SELECT COUNT(*) FROM item_counts")).scalar_one() == 64
    finally:
        for c in conns:
            c.close()
        engine.dispose()


def _pid(raw) -> int:
    with raw.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    raw.commit()
    return pid
