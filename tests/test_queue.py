"""The labelling queue's contract, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import text

from smartlabel.errors import (
    AlreadyLabelledError,
    NotHeldError,
    NothingToUndoError,
    QueueError,
    UnknownItemError,
    UnknownLabelError,
)
from smartlabel.queue import LabelQueue
from smartlabel.store import predictions as store_predictions, runs as store_runs
from smartlabel.settings import load_settings

from helpers import seed_items

A, B = "Advocacy", "Others"


def make_queue(url, worker, **overrides):
    overrides.setdefault("shuffle_prop", 0.0)
    overrides.setdefault("audit_share", 0.0)  # audit and review hand-outs: tests/test_queue_audit_review.py
    overrides.setdefault("review_share", 0.0)
    overrides.setdefault("database_url", url)
    return LabelQueue(url, worker, settings=load_settings(**overrides), rng=random.Random(1))


def label_rows(engine):
    """The live labels (retracted ones left out), oldest first."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT item_id, label, worker_id FROM labels WHERE retracted_at IS NULL ORDER BY id"))]


def retracted_rows(engine):
    """Retracted labels: they stay in `labels`, with who retracted them."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT item_id, label, worker_id, retracted_by FROM labels WHERE retracted_at IS NOT NULL ORDER BY id"))]


def new_run(engine):
    with engine.begin() as conn:
        return conn.execute(
            text("INSERT INTO model_runs (started_at, status) VALUES (CURRENT_TIMESTAMP, 'ok') RETURNING id")
        ).scalar_one()


def test_pop_submit_until_empty(db_url, engine_for):
    ids = seed_items(db_url, 5)
    q = make_queue(db_url, "ann")
    seen = []
    for item_id, item in q:
        assert item["title"].startswith("post ")
        assert item["reason"] == "unscored"
        seen.append(item_id)
        q.submit(item_id, A)
    assert sorted(seen) == sorted(ids)
    assert q.progress == 1.0
    assert label_rows(engine_for(db_url)) == [(i, A, "ann") for i in seen]
    with pytest.raises(IndexError):
        q.pop()


def test_unscored_items_come_out_in_random_order_then_priorities_rule(db_url, engine_for):
    ids = seed_items(db_url, 30)
    engine = engine_for(db_url)
    q = make_queue(db_url, "ann")
    first = [q.pop()[0] for _ in range(5)]
    assert first != ids[:5], "unscored posts should not come out in insertion order"
    for i in first:
        q.skip(i)
    # a run ranks the posts in reverse id order: the queue must follow it
    run = new_run(engine)
    store_predictions.write(engine, run, ids, [float(i) for i in ids], predicted_labels=[A] * len(ids),
                      confidences=[0.6] * len(ids))
    assert store_runs.current_id(engine) is None
    store_runs.set_current(engine, run)
    q2 = make_queue(db_url, "bob")
    got = [q2.pop() for _ in range(3)]
    assert [g[0] for g in got] == sorted(ids, reverse=True)[:3]
    assert got[0][1]["reason"] == "priority"
    assert got[0][1]["predicted_label"] == A and got[0][1]["confidence"] == pytest.approx(0.6)


def test_two_workers_never_get_the_same_item(db_url):
    seed_items(db_url, 4)
    qa, qb = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    a = [qa.pop()[0] for _ in range(2)]
    b = [qb.pop()[0] for _ in range(2)]
    assert not set(a) & set(b)
    with pytest.raises(IndexError):
        make_queue(db_url, "cat").pop()


def test_reload_gets_the_held_post_back(db_url):
    seed_items(db_url, 3)
    first = make_queue(db_url, "ann").pop()[0]
    again = make_queue(db_url, "ann").pop()  # a new tab, same name
    assert again[0] == first and again[1]["reason"] == "held"


def test_expired_lease_returns_item_and_late_submit_is_kept(db_url, engine_for):
    (only,) = seed_items(db_url, 1)
    qa, qb = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    qa.lease_seconds = 0.2
    assert qa.pop()[0] == only
    with pytest.raises(IndexError):
        qb.pop()
    time.sleep(0.4)
    assert qb.pop()[0] == only  # ann's tab was abandoned: the post came back
    qa.submit(only, A)  # ann submits late: kept, not lost
    qb.submit(only, B)  # bob's label does not overwrite ann's
    assert label_rows(engine_for(db_url)) == [(only, A, "ann"), (only, B, "bob")]


def test_invalid_submits_raise_typed_errors_and_write_nothing(db_url, engine_for):
    ids = seed_items(db_url, 2)
    q = make_queue(db_url, "ann")
    item_id, _ = q.pop()
    other = next(i for i in ids if i != item_id)
    with pytest.raises(UnknownLabelError, match="not one of the labels"):
        q.submit(item_id, "Spam")
    with pytest.raises(UnknownItemError, match="no post with id 999999"):
        q.submit(999999, A)
    with pytest.raises(NotHeldError, match="never handed"):
        q.submit(other, A)
    assert label_rows(engine_for(db_url)) == []
    q.submit(item_id, A)
    with pytest.raises(AlreadyLabelledError, match="already labelled"):
        q.submit(item_id, B)
    assert label_rows(engine_for(db_url)) == [(item_id, A, "ann")]
    with pytest.raises(QueueError, match="no labeller name"):
        make_queue(db_url, None).pop()


def test_undo_retracts_only_my_last_label_and_gives_it_back(db_url, engine_for):
    seed_items(db_url, 4)
    engine = engine_for(db_url)
    qa, qb = make_queue(db_url, "ann", overlap=2), make_queue(db_url, "bob", overlap=2)
    first, _ = qa.pop()
    qa.submit(first, A)
    # bob labels the same post ann labelled (overlap 2)
    for _ in range(4):
        got, _ = qb.pop()
        if got == first:
            break
        qb.skip(got)
    qb.submit(first, B)
    current, _ = qa.pop()
    # superintendent's Undo: un-pop the current post, then un-label the previous one
    qa.undo()
    qa.undo()
    assert label_rows(engine) == [(first, B, "bob")]
    assert retracted_rows(engine) == [(first, A, "ann", "ann")], "retracted, not deleted"
    assert qa.pop()[0] == first, "the undone post comes back first"
    assert qa.pop()[0] == current, "then the post that was on screen"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT label_count, done FROM items WHERE id = :i"), {"i": first}).one() == (1, False)


def test_undo_after_reload_uses_the_database(db_url, engine_for):
    seed_items(db_url, 3)
    q = make_queue(db_url, "ann")
    item_id, _ = q.pop()
    q.submit(item_id, A)
    fresh = make_queue(db_url, "ann")  # a reloaded tab has no history
    assert fresh.undo() == item_id
    assert label_rows(engine_for(db_url)) == []
    assert retracted_rows(engine_for(db_url)) == [(item_id, A, "ann", "ann")]
    assert fresh.pop()[0] == item_id
    with pytest.raises(NothingToUndoError):
        make_queue(db_url, "zed").undo()


def test_skip_lowers_the_item_for_me_only(db_url):
    ids = seed_items(db_url, 3)
    qa, qb = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    skipped, _ = qa.pop()
    qa.skip(skipped)
    rest = [qa.pop()[0] for _ in range(2)]
    assert skipped not in rest
    for i in rest:
        qa.submit(i, A)
    assert qb.pop()[0] == skipped, "another labeller still gets the skipped post"
    qb.skip(skipped)
    assert qa.pop()[0] == skipped, "the skipper gets it back once nothing else is left"
    assert set(ids) == set(rest) | {skipped}
    with pytest.raises(NotHeldError):
        make_queue(db_url, "cat").skip(skipped)


def test_overlap_two_needs_two_distinct_labellers(db_url, engine_for):
    ids = seed_items(db_url, 3)
    qa, qb = make_queue(db_url, "ann", overlap=2), make_queue(db_url, "bob", overlap=2)
    for q in (qa, qb):
        for item_id, _ in q:
            q.submit(item_id, A)
    rows = label_rows(engine_for(db_url))
    assert sorted((i, w) for i, _, w in rows) == sorted((i, w) for i in ids for w in ("ann", "bob"))
    assert qa.progress == 1.0


def test_bulk_write_does_not_block_pop_on_postgres(pg_url, engine_for):
    """A run's 100k priorities are being written (transaction still open): pop still answers."""
    seed_items(pg_url, 50)
    engine = engine_for(pg_url)
    with engine.begin() as conn:
        ids = [r for (r,) in conn.execute(text("SELECT id FROM items"))]
        conn.execute(text("INSERT INTO items (title, selftext, clean_selftext, content_hash, imported_at, rand_key) "
                          "SELECT 't', 'b', 'b', md5(g::text), now(), random() FROM generate_series(1, 100000) g"))
        all_ids = [r for (r,) in conn.execute(text("SELECT id FROM items"))]
    run = new_run(engine)
    writer = engine.raw_connection()
    cur = writer.cursor()
    # the writer holds an open bulk insert (and KEY SHARE locks on every item, as a foreign
    # key check or a reader's FOR KEY SHARE would take)
    cur.execute("SELECT id FROM items FOR KEY SHARE")
    cur.execute("INSERT INTO predictions (run_id, item_id, priority) "
                "SELECT %s, id, random() FROM items", (run,))
    result = {}

    def labeller():
        q = make_queue(pg_url, "ann")
        result["item"] = q.pop()[0]

    t = threading.Thread(target=labeller)
    t.start()
    t.join(60)
    alive = t.is_alive()
    writer.rollback()
    writer.close()
    t.join(60)
    assert not alive, "pop waited for the bulk write"
    assert result["item"] in all_ids
    assert len(ids) == 50


def test_done_posts_sink_in_the_current_run_only_when_done(db_url, engine_for):
    """A labelled post's current-run priority drops to the floor once it is done (overlap reached),
    so hand-outs do not walk past it; a post still waiting for its second label keeps its rank."""
    from smartlabel.queue import DONE_PRIORITY

    ids = seed_items(db_url, 4)
    engine = engine_for(db_url)
    old, run = new_run(engine), new_run(engine)
    store_predictions.write(engine, old, ids, [1.0] * 4)
    store_predictions.write(engine, run, ids, [float(i) for i in ids])
    store_runs.set_current(engine, run)
    ann, bob = make_queue(db_url, "ann", overlap=2), make_queue(db_url, "bob", overlap=2)
    top = max(ids)
    assert ann.pop()[0] == top
    ann.submit(top, A)  # one label of two: still open, still first for bob

    def prio(item, r):
        with engine.connect() as conn:
            return conn.execute(text("SELECT priority FROM predictions WHERE run_id = :r AND item_id = :i"),
                                {"r": r, "i": item}).scalar_one()

    assert prio(top, run) == float(top)
    assert bob.pop()[0] == top
    bob.submit(top, B)  # done now
    assert prio(top, run) == DONE_PRIORITY
    assert prio(top, old) == 1.0  # other runs are left as written
    assert prio(sorted(ids)[-2], run) == float(sorted(ids)[-2])


def test_undo_never_retracts_another_labellers_label(db_url, engine_for):
    """bob's Undo, however often pressed, only ever reaches bob's own labels."""
    ids = seed_items(db_url, 3)
    engine = engine_for(db_url)
    ann, bob = make_queue(db_url, "ann", overlap=2), make_queue(db_url, "bob", overlap=2)
    for item_id, _ in ann:
        ann.submit(item_id, A)
    got, _ = bob.pop()
    bob.submit(got, B)
    fresh = make_queue(db_url, "bob")  # a new tab: Undo reaches into the database
    assert fresh.undo() == got
    fresh._history.clear()  # pressed again on a fresh page, past what bob labelled
    fresh._return_first.clear()
    with pytest.raises(NothingToUndoError):
        fresh.undo()
    assert sorted(label_rows(engine)) == sorted((i, A, "ann") for i in ids)
    assert retracted_rows(engine) == [(got, B, "bob", "bob")]


def test_a_retracted_label_is_ignored_everywhere_and_can_be_given_again(db_url, engine_for):
    """Counts, `done`, the views, training data, agreement rows, status: none sees a retracted label;
    the labeller gets the post again and may label it anew (the retraction stays on record)."""
    from smartlabel.store import labels as store_labels, reports

    (post,) = seed_items(db_url, 1)
    engine = engine_for(db_url)
    q = make_queue(db_url, "ann")
    q.pop()
    q.submit(post, A)
    assert q.counts()["labelled_by_me"] == 1 and q.progress == 1.0
    assert q.undo() == post
    assert q.counts()["labelled_by_me"] == 0 and q.progress == 0.0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT label_count, done FROM items")).one() == (0, False)
        assert conn.execute(text("SELECT COUNT(*) FROM agreed_labels")).scalar_one() == 0
        status = conn.execute(text("SELECT human_labels, retracted_labels FROM item_status")).one()
        stats = conn.execute(text("SELECT * FROM labeller_stats")).all()
    assert status == (None, 1)
    assert stats == []
    assert store_labels.training_set(engine, [A, B])[0].tolist() == []
    assert store_labels.rows(engine) == [] and store_labels.count(engine) == 0
    assert reports.status(engine)["labels"] == 0 and reports.status(engine)["retracted"] == 1
    assert q.pop()[0] == post  # handed straight back
    q.submit(post, B)  # a retracted label does not block labelling the post again
    assert label_rows(engine) == [(post, B, "ann")]
    assert retracted_rows(engine) == [(post, A, "ann", "ann")]
    assert store_labels.training_set(engine, [A, B])[1].tolist() == [B]
    assert store_labels.labeller_stats(engine)[0]["retracted"] == 1
