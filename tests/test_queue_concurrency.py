"""8 labeller processes pop and submit until the pool is empty, on both backends."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import defaultdict

import pytest
from sqlalchemy import text

from helpers import seed_items

N_ITEMS = 120
N_WORKERS = 8


def _tick(counter) -> int:
    with counter.get_lock():
        counter.value += 1
        return counter.value


def _left_for(q) -> bool:
    """Posts not done yet that this labeller has not labelled (possibly held by others now)."""
    from sqlalchemy import text

    with q.engine.connect() as conn:
        return conn.execute(text(
            "SELECT 1 FROM items i WHERE NOT i.done AND NOT EXISTS "
            "(SELECT 1 FROM labels l WHERE l.item_id = i.id AND l.worker_id = :w) LIMIT 1"),
            {"w": q.worker_id}).first() is not None


def _labeller(url: str, worker: str, overlap: int, out, counter, start) -> None:
    import random

    from smartlabel.queue import LabelQueue
    from smartlabel.settings import load_settings

    # audit/review hand-outs off: they add labels beyond OVERLAP on purpose (tests/test_queue_audit_review.py)
    q = LabelQueue(url, worker, settings=load_settings(database_url=url, overlap=overlap, shuffle_prop=0.3,
                                                       audit_share=0.0, review_share=0.0),
                   rng=random.Random(worker))
    done = []
    start.wait(120)  # every process is up before anyone pops: they really compete
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                item_id, _ = q.pop()
            except IndexError:
                # what is left may be held by others and need this labeller too (OVERLAP > 1):
                # check again, like the page's "Check again" button, until nothing is left for me
                if not _left_for(q):
                    break
                time.sleep(0.05)
                continue
            got = _tick(counter)  # recorded after the claim: never earlier than it
            releasing = _tick(counter)  # recorded before submit commits: never later than the release
            q.submit(item_id, "Others")
            done.append((item_id, got, releasing))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put((worker, repr(exc)))
        return
    out.put((worker, done))


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [1, 2])
def test_eight_labellers_until_empty(db_url, engine_for, overlap):
    ids = seed_items(db_url, N_ITEMS)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    counter = ctx.Value("q", 0)
    start = ctx.Barrier(N_WORKERS)
    procs = [ctx.Process(target=_labeller, args=(db_url, f"w{k}", overlap, out, counter, start))
             for k in range(N_WORKERS)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(60)
    errors = {w: r for w, r in results.items() if isinstance(r, str)}
    assert not errors, errors

    engine = engine_for(db_url)
    with engine.connect() as conn:
        labels = conn.execute(text("SELECT item_id, worker_id FROM labels")).all()
        handouts = conn.execute(text("SELECT item_id, worker_id FROM handouts")).all()
    per_item = defaultdict(list)
    for item_id, worker in labels:
        per_item[item_id].append(worker)
    # every item labelled exactly OVERLAP times, by distinct labellers, each handed out once per labeller
    assert sorted(per_item) == sorted(ids)
    assert all(len(ws) == overlap and len(set(ws)) == overlap for ws in per_item.values())
    assert sorted(handouts) == sorted((i, w) for i, w in labels)
    assert sum(len(r) for r in results.values()) == N_ITEMS * overlap
    # never held by two at once: a labeller got an item only after its previous holder began to submit
    spans = defaultdict(list)
    for worker, done in results.items():
        for item_id, got, releasing in done:
            spans[item_id].append((got, releasing, worker))
    for item_id, events in spans.items():
        events.sort()
        for (_, released0, w0), (got1, _, w1) in zip(events, events[1:]):
            assert got1 > released0, f"item {item_id} was handed to {w1} while {w0} held it"
    # the work was shared
    assert sum(1 for r in results.values() if r) >= 2
