"""Leases that hold and labels that are never lost (issue 14), on SQLite and a real PostgreSQL:
the page renews its lease while a post is on screen; a label that comes after the lease was
lost is stored, as a second opinion when the post was decided meanwhile (OVERLAP=1: the first
label decides), and training, export and the agreed label read the first label only."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from smartlabel import quality
from smartlabel.db import utcnow
from smartlabel.export import export
from smartlabel.queue import LabelQueue
from smartlabel.settings import load_settings
from smartlabel.store import labels as store_labels

from helpers import seed_items

A, B = "Advocacy", "Others"


def make_queue(url, worker, **overrides):
    for name in ("shuffle_prop", "audit_share", "review_share"):
        overrides.setdefault(name, 0.0)
    return LabelQueue(url, worker, settings=load_settings(database_url=url, **overrides), rng=random.Random(1))


def rows(engine, sql, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def lease_of(engine, item_id):
    got = rows(engine, "SELECT worker_id, expires_at FROM leases WHERE item_id = :i", i=item_id)
    return got[0] if got else None


def expire_leases(engine, worker):
    """The lease ran out (the labeller read for longer than LEASE_SECONDS, with no renewal)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE leases SET expires_at = :t WHERE worker_id = :w"),
                     {"t": utcnow() - timedelta(seconds=1), "w": worker})


def as_time(value):
    from smartlabel.db import as_datetime

    return as_datetime(value)


def test_renew_extends_only_the_callers_live_lease(db_url, engine_for):
    engine = engine_for(db_url)
    a, b = seed_items(db_url, 2)
    ann, bob = make_queue(db_url, "ann", lease_seconds=600), make_queue(db_url, "bob", lease_seconds=600)
    got, _ = ann.pop()
    with engine.begin() as conn:  # a lease about to run out
        conn.execute(text("UPDATE leases SET expires_at = :t"), {"t": utcnow() + timedelta(seconds=30)})
    assert ann.renew(got) is True
    worker, expires = lease_of(engine, got)
    assert worker == "ann" and as_time(expires) > utcnow() + timedelta(seconds=500)
    assert bob.renew(got) is False  # not bob's
    assert lease_of(engine, got)[0] == "ann"
    expire_leases(engine, "ann")
    assert ann.renew(got) is False  # a lease that ran out is not brought back by a renewal
    other, _ = bob.pop()
    assert other == got  # it went back to the pool
    assert ann.renew(got) is False and lease_of(engine, got)[0] == "bob"
    ann.submit(got, A)  # still stored (see below), and no lease of ann's is left to renew
    assert ann.renew(got) is False


def test_the_page_renews_its_lease_past_lease_seconds(db_url, engine_for):
    """A post read for longer than LEASE_SECONDS stays with its reader: the page's renewal
    keeps it from a second labeller, and the label is an ordinary (deciding) one."""
    from test_interface import make_page

    engine = engine_for(db_url)
    seed_items(db_url, 2)
    page = make_page(db_url, "ann", lease_seconds=5)
    shown = page.widget.current_item_id
    handed = as_time(rows(engine, "SELECT handed_at FROM handouts WHERE item_id = :i", i=shown)[0][0])
    assert page.widget.renewer.interval == pytest.approx(5 / 3)
    # wait until the lease first given has run out for sure, while the page is open
    deadline = time.monotonic() + 120
    while utcnow() < handed + timedelta(seconds=7) and time.monotonic() < deadline:
        time.sleep(0.2)
    worker, expires = lease_of(engine, shown)
    assert worker == "ann" and as_time(expires) > utcnow()
    assert page.widget.renewer.renewals >= 1
    bob = make_queue(db_url, "bob", lease_seconds=5)
    other, _ = bob.pop()
    assert other != shown
    with pytest.raises(IndexError):
        bob.pop()  # the only other post is ann's
    page.widget.labelling_widget.control_elements.buttons[A].button.click()
    assert rows(engine, "SELECT item_id, worker_id, second_opinion FROM labels") == [(shown, "ann", False)]
    assert page.widget.renewer.item_id != shown  # the renewal follows the post on screen
    page.widget.renewer.close()


def test_the_renewal_stops_when_the_post_changes(sqlite_url, engine_for):
    from smartlabel.interface.renewal import LeaseRenewer

    calls = []
    renewer = LeaseRenewer(lambda item: calls.append(item) or True, interval=0.05)
    renewer.track(1)
    deadline = time.monotonic() + 30
    while 1 not in calls and time.monotonic() < deadline:
        time.sleep(0.01)
    renewer.track(2)
    while 2 not in calls and time.monotonic() < deadline:
        time.sleep(0.01)
    renewer.stop()
    time.sleep(0.2)  # past several intervals: a stopped renewer renews nothing
    seen = len(calls)
    time.sleep(0.2)
    assert len(calls) == seen and calls[-1] == 2 and 1 not in calls[calls.index(2):]
    lost = LeaseRenewer(lambda item: False, interval=0.05)
    lost.track(7)
    while lost.lost is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lost.lost == 7 and lost.item_id is None  # a lease that could not be kept is let go
    renewer.close()
    lost.close()


def test_a_late_label_on_a_decided_post_is_a_second_opinion(db_url, engine_for, tmp_path):
    """OVERLAP=1: ann's lease runs out, bob gets the post and labels it; ann's label still
    arrives. It is stored, as a second opinion: bob's label decides, for the agreed label,
    training and export; agreement counts both; no tie is flagged for review."""
    engine = engine_for(db_url)
    ids = seed_items(db_url, 2)
    ann, bob = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    post = ann.pop()[0]
    (rest,) = set(ids) - {post}
    expire_leases(engine, "ann")
    assert bob.pop()[0] == post
    assert bob.submit(post, A) is False
    assert ann.submit(post, B) is True  # late, and after bob decided: a second opinion
    assert rows(engine, "SELECT worker_id, label, second_opinion FROM labels ORDER BY id") == [
        ("bob", A, False), ("ann", B, True)]
    assert rows(engine, "SELECT item_id, agreed_label, votes FROM agreed_labels") == [(post, A, 1)]
    assert rows(engine, "SELECT done, label_count FROM items WHERE id = :i", i=post) == [(True, 2)]
    ids, y, _, _ = store_labels.training_set(engine, [A, B])
    assert list(ids) == [post] and list(y) == [A]
    assert quality.item_quality(engine)[post]["agreed_label"] == A
    out = tmp_path / "export.jsonl"
    export(out, load_settings(database_url=db_url), engine=engine, progress=False)
    row = next(r for r in map(json.loads, out.read_text().splitlines()) if r["id"] == post)
    assert (row["final_label"], row["label_source"], row["agreed_label"]) == (A, "human", A)
    assert sorted((v["worker_id"], v["label"]) for v in row["human_labels"]) == [("ann", B), ("bob", A)]
    report = quality.update_quality(engine, 1)
    assert report.n_items_multi == 1 and report.n_ties == 0  # counted in agreement, no tie to break
    pair = [r for r in quality.latest_agreement(engine) if r["scope"] == "pair"]
    assert pair and pair[0]["n_items"] == 1
    assert rows(engine, "SELECT COUNT(*) FROM suspect_labels")[0][0] == 0
    # the decided post is handed out to nobody again
    assert bob.pop()[0] == rest
    with pytest.raises(IndexError):
        make_queue(db_url, "cat").pop()  # the decided post is done, the other one is bob's


def test_a_late_label_before_anyone_else_decides_and_the_holder_becomes_the_second(db_url, engine_for):
    """ann's lease ran out and bob holds the post, but ann's label arrives first: it decides;
    bob's, arriving after, is the second opinion. Exactly one agreed label either way."""
    engine = engine_for(db_url)
    seed_items(db_url, 2)
    ann, bob = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    post = ann.pop()[0]
    expire_leases(engine, "ann")
    assert bob.pop()[0] == post
    assert ann.submit(post, B) is False
    assert bob.submit(post, A) is True
    assert rows(engine, "SELECT worker_id, second_opinion FROM labels ORDER BY id") == [("ann", False), ("bob", True)]
    assert rows(engine, "SELECT item_id, agreed_label FROM agreed_labels") == [(post, B)]


def test_undo_of_the_deciding_label_opens_the_post_again(db_url, engine_for):
    """A second opinion never decides: when the first label is retracted the post is open
    (for the one who undid it, first), and their new label decides."""
    engine = engine_for(db_url)
    seed_items(db_url, 2)
    ann, bob = make_queue(db_url, "ann"), make_queue(db_url, "bob")
    post = ann.pop()[0]
    expire_leases(engine, "ann")
    assert bob.pop()[0] == post
    bob.submit(post, A)
    assert ann.submit(post, B) is True
    assert bob.undo() == post
    assert rows(engine, "SELECT done FROM items WHERE id = :i", i=post) == [(False,)]
    assert rows(engine, "SELECT COUNT(*) FROM agreed_labels")[0][0] == 0
    assert bob.pop()[0] == post
    assert bob.submit(post, B) is False  # it decides: ann's is still a second opinion
    assert rows(engine, "SELECT item_id, agreed_label, votes FROM agreed_labels") == [(post, B, 1)]


def test_audit_labels_on_done_posts_are_votes_not_second_opinions(db_url, engine_for):
    engine = engine_for(db_url)
    (post,) = seed_items(db_url, 1)
    ann = make_queue(db_url, "ann")
    ann.pop()
    ann.submit(post, A)
    auditor = make_queue(db_url, "bob", audit_share=1.0)
    got, item = auditor.pop()
    assert (got, item["reason"]) == (post, "audit")
    assert auditor.submit(post, B) is False
    assert auditor.undo() == post  # an undone audit label comes back as 'undo': still a vote
    assert auditor.pop()[0] == post
    assert auditor.submit(post, A) is False
    assert rows(engine, "SELECT worker_id, second_opinion FROM labels WHERE retracted_at IS NULL ORDER BY id") == [
        ("ann", False), ("bob", False)]
    assert rows(engine, "SELECT agreed_label, votes FROM agreed_labels") == [(A, 2)]


def test_a_new_page_gets_the_post_its_labeller_still_holds(db_url, engine_for):
    """After the kernel was culled (or the tab reloaded), a new queue for the same labeller
    hands back the post whose lease is still live, before any better-ranked post."""
    engine = engine_for(db_url)
    seed_items(db_url, 5)
    first, _ = make_queue(db_url, "ann").pop()
    again, item = make_queue(db_url, "ann").pop()  # a new kernel: a new queue, nothing in memory
    assert (again, item["reason"]) == (first, "held")
    assert lease_of(engine, first)[0] == "ann"
    expire_leases(engine, "ann")
    make_queue(db_url, "bob").pop()  # somebody takes a post: possibly ann's, which ran out
    third, item = make_queue(db_url, "ann").pop()
    assert item["reason"] != "held"


def test_the_page_says_when_a_label_was_stored_as_a_second_opinion(db_url, engine_for):
    from test_interface import click, make_page

    engine = engine_for(db_url)
    seed_items(db_url, 3)
    page = make_page(db_url, "ann")
    shown = page.widget.current_item_id
    page.widget.renewer.close()  # as if the lease could not be renewed (the database was away)
    expire_leases(engine, "ann")
    bob = make_queue(db_url, "bob")
    assert bob.pop()[0] == shown
    bob.submit(shown, A)
    click(page, B)
    assert "Saved as a second opinion" in page.widget.notice.value
    assert page.widget.state == "item" and page.widget.current_item_id != shown
    assert rows(engine, "SELECT worker_id, label, second_opinion FROM labels ORDER BY id") == [
        ("bob", A, False), ("ann", B, True)]
    assert rows(engine, "SELECT agreed_label FROM agreed_labels WHERE item_id = :i", i=shown) == [(A,)]
