"""Audit and review hand-outs (AUDIT_SHARE, REVIEW_SHARE) on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict

import numpy as np
import pytest
from sqlalchemy import text

from smartlabel.queue import LabelQueue
from smartlabel.quality import update_quality
from smartlabel.settings import load_settings

from helpers import seed_items

A, B, C = "Advocacy", "Others", "Personal Stories"


def make_queue(url, worker, *, audit=0.0, review=0.0, shuffle=0.0, seed=1, **overrides):
    settings = load_settings(database_url=url, shuffle_prop=shuffle, audit_share=audit, review_share=review,
                             **overrides)
    return LabelQueue(url, worker, settings=settings, rng=random.Random(seed))


def label_via_queue(q, label, n=None):
    got = []
    for item_id, _ in q:
        q.submit(item_id, label)
        got.append(item_id)
        if n is not None and len(got) == n:
            break
    return got


def labels_of(engine, item_id):
    """The post's live labels (a retracted one stays in the table but counts nowhere)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            text("SELECT worker_id, label, handout_reason FROM labels WHERE item_id = :i "
                 "AND retracted_at IS NULL ORDER BY id"),
            {"i": item_id})]


def item_state(engine, item_id):
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT label_count, done FROM items WHERE id = :i"), {"i": item_id}).one())


def new_run(engine):
    with engine.begin() as conn:
        return conn.execute(text("INSERT INTO model_runs (started_at, status) "
                                 "VALUES (CURRENT_TIMESTAMP, 'ok') RETURNING id")).scalar_one()


def test_audit_hands_posts_labelled_once_to_a_second_labeller(db_url, engine_for):
    engine = engine_for(db_url)
    ids = seed_items(engine, 4)
    annotated = label_via_queue(make_queue(db_url, "ann"), A, n=3)
    (fresh,) = set(ids) - set(annotated)
    bob = make_queue(db_url, "bob", audit=1.0)
    first, item = bob.pop()
    assert item["reason"] == "audit" and first in annotated
    bob.submit(first, B)
    assert labels_of(engine, first) == [("ann", A, "unscored"), ("bob", B, "audit")]
    assert item_state(engine, first) == (2, True)  # still done; now with two labellers
    second, item = bob.pop()
    assert item["reason"] == "audit" and second in annotated and second != first
    bob.submit(second, A)
    cat = make_queue(db_url, "cat", audit=1.0)
    third, item = cat.pop()  # only one post is still labelled exactly once
    assert item["reason"] == "audit" and third == (set(annotated) - {first, second}).pop()
    cat.submit(third, A)
    # nothing left to audit: the usual order takes over
    nxt, item = cat.pop()
    assert nxt == fresh and item["reason"] == "unscored"
    cat.submit(nxt, A)
    with pytest.raises(IndexError):
        cat.pop()
    dan = make_queue(db_url, "dan", audit=1.0)
    got, item = dan.pop()
    assert (got, item["reason"]) == (fresh, "audit")  # cat's label is audited in turn
    dan.submit(got, A)
    assert [item_state(engine, i) for i in ids] == [(2, True)] * 4
    with pytest.raises(IndexError):
        make_queue(db_url, "eve", audit=1.0).pop()  # every post labelled twice: no audit either


def test_audit_never_gives_my_own_or_a_held_post(db_url, engine_for):
    engine = engine_for(db_url)
    ids = seed_items(engine, 3)
    ann = make_queue(db_url, "ann")
    mine = label_via_queue(ann, A, n=2)
    # ann's audit pop cannot audit her own labels: she gets the open post instead
    ann2 = make_queue(db_url, "ann", audit=1.0)
    got, item = ann2.pop()
    assert got == (set(ids) - set(mine)).pop() and item["reason"] == "unscored"
    bob_item, item = make_queue(db_url, "bob", audit=1.0).pop()
    assert bob_item in mine and item["reason"] == "audit"
    cat_item, item = make_queue(db_url, "cat", audit=1.0).pop()
    assert cat_item in mine and cat_item != bob_item and item["reason"] == "audit"
    with pytest.raises(IndexError):  # ann holds the open post, bob and cat the audit posts
        make_queue(db_url, "dan", audit=1.0).pop()


def test_undo_of_an_audit_label_gives_the_post_back(db_url, engine_for):
    engine = engine_for(db_url)
    seed_items(engine, 3)
    label_via_queue(make_queue(db_url, "ann"), A, n=2)
    bob = make_queue(db_url, "bob", audit=1.0)
    audited, item = bob.pop()
    assert item["reason"] == "audit"
    bob.submit(audited, B)
    shown, _ = bob.pop()
    bob.undo()
    bob.undo()  # superintendent's Undo: un-pop, then un-label
    assert labels_of(engine, audited) == [("ann", A, "unscored")]
    assert item_state(engine, audited) == (1, True)
    back, item = bob.pop()
    assert back == audited and item["reason"] == "undo"


def test_audit_share_is_the_share_of_pops(sqlite_url, engine_for):
    engine = engine_for(sqlite_url)
    seed_items(engine, 120)
    label_via_queue(make_queue(sqlite_url, "ann"), A, n=60)
    bob = make_queue(sqlite_url, "bob", audit=0.25, review=0.25, shuffle=0.2, seed=7)
    reasons = Counter()
    for _ in range(40):
        item_id, item = bob.pop()
        reasons[item["reason"]] += 1
        bob.submit(item_id, B)
    # no suspects stored: review pops fall through to the usual order
    assert set(reasons) <= {"audit", "random", "unscored"}
    draws = random.Random(7)
    expected = sum(1 for _ in range(40) if 0.2 <= draws.random() < 0.45)
    assert reasons["audit"] == expected and 4 <= expected <= 18


def insert_labels(engine, rows, reason="priority"):
    with engine.begin() as conn:
        for item, worker, label in rows:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason) "
                              "VALUES (:i, :l, :w, CURRENT_TIMESTAMP, :r)"),
                         {"i": item, "l": label, "w": worker, "r": reason})
        conn.execute(text("""UPDATE items SET
            label_count = (SELECT COUNT(DISTINCT worker_id) FROM labels WHERE item_id = items.id),
            done = (SELECT COUNT(DISTINCT worker_id) FROM labels WHERE item_id = items.id) >= 1"""))


def test_review_hands_out_suspects_most_suspect_first_and_stops(db_url, engine_for):
    engine = engine_for(db_url)
    ids = seed_items(engine, 16)
    clear_a, clear_b, x, z, w, u = ids[:6], ids[6:12], ids[12], ids[13], ids[14], ids[15]
    insert_labels(engine, [(i, "ann", A) for i in clear_a] + [(i, "ann", B) for i in clear_b]
                  + [(x, "ann", A), (z, "ann", B), (w, "ann", A), (w, "bob", B)])
    # out-of-fold probabilities [p(A), p(B)]: x (labelled A) is confidently B; z is merely unsure
    item_ids = clear_a + clear_b + [x, z]
    y = [A] * 6 + [B] * 6 + [A, B]
    proba = np.array([[0.9, 0.1]] * 6 + [[0.1, 0.9]] * 6 + [[0.1, 0.9], [0.7, 0.3]])
    report = update_quality(engine, new_run(engine), proba, [A, B], item_ids, y)
    assert (report.n_suspects, report.n_ties) == (1, 1)

    cat = make_queue(db_url, "cat", review=1.0)
    got, item = cat.pop()
    assert (got, item["reason"]) == (w, "review")  # the tie (score 1) before the model suspect (0.8)
    cat.submit(got, A)  # breaks the tie
    dan = make_queue(db_url, "dan", review=1.0)
    got, item = dan.pop()
    assert (got, item["reason"]) == (x, "review")  # w was reviewed since this pass
    dan.submit(got, B)  # sides with the model: x is now a tie
    erin = make_queue(db_url, "erin", review=1.0)
    got, item = erin.pop()
    assert (got, item["reason"]) == (u, "unscored")  # nothing left to review: the usual order
    erin.skip(got)
    assert labels_of(engine, x)[-1] == ("dan", B, "review")

    report = update_quality(engine, new_run(engine))  # next run: x tied, w settled 2-1
    assert report.n_ties == 1
    got, item = make_queue(db_url, "erin", review=1.0).pop()
    assert (got, item["reason"]) == (x, "review")  # the tie-breaker
    erin2 = make_queue(db_url, "erin", review=1.0)
    erin2.submit(got, C)  # a third opinion: still no majority
    update_quality(engine, new_run(engine))
    got, item = make_queue(db_url, "fay", review=1.0).pop()
    assert item["reason"] != "review", "a post is reviewed at most twice"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM labels WHERE handout_reason = 'review'")).scalar() == 3


def test_concurrent_labellers_with_audit_never_share_a_post(db_url, engine_for):
    """6 labellers (threads, own engines) at AUDIT_SHARE=0.3: every post labelled once or
    twice, never by the same labeller twice, never handed to two at once."""
    engine = engine_for(db_url)
    ids = seed_items(engine, 60)
    events = []
    lock = threading.Lock()
    errors = []

    def labeller(k):
        try:
            q = make_queue(db_url, f"w{k}", audit=0.3, shuffle=0.1, seed=k)
            for item_id, item in q:
                with lock:
                    events.append(("got", item_id, f"w{k}", item["reason"]))
                q.submit(item_id, A)
            q.engine.dispose()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=labeller, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with engine.connect() as conn:
        labels = conn.execute(text("SELECT item_id, worker_id, handout_reason FROM labels")).all()
        handouts = conn.execute(text("SELECT item_id, worker_id FROM handouts")).all()
    per_item = defaultdict(list)
    for item_id, worker, reason in labels:
        per_item[item_id].append((worker, reason))
    assert sorted(per_item) == sorted(ids)
    for item_id, got in per_item.items():
        workers = [w for w, _ in got]
        assert len(set(workers)) == len(workers) and 1 <= len(workers) <= 2, (item_id, got)
        if len(workers) == 2:  # at OVERLAP=1 a second label can only come from an audit
            assert [r for _, r in got].count("audit") == 1, (item_id, got)
    assert sorted(handouts) == sorted((i, w) for i, w, _ in labels)
    assert any(r == "audit" for _, _, r in labels)
