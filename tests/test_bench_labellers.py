"""bench/bench_labellers.py's own counting, on a real PostgreSQL (the benchmark itself runs
Chromium pages for minutes and is not a test): a post handed to a second labeller while the
first still held it is a double hand-out; an audit of a labelled post is not."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from smartlabel.db import utcnow

from helpers import seed_items
from test_queue_leases import make_queue

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_double_handouts_and_stored_labels_are_counted_from_the_database(pg_url, engine_for):
    import bench_labellers as bench

    engine = engine_for(pg_url)
    seed_items(pg_url, 3)
    ann, bob = make_queue(pg_url, "bench-000"), make_queue(pg_url, "bench-001")
    post = ann.pop()[0]
    ann.submit(post, "Advocacy")
    audit = make_queue(pg_url, "bench-001", audit_share=1.0)
    assert audit.pop()[0] == post  # handed out after ann's label: no double
    audit.submit(post, "Others")
    assert bench.double_handouts(engine, 600)["count"] == 0
    held = ann.pop()[0]
    with engine.begin() as conn:  # ann's lease is taken from her while she still reads the post
        conn.execute(text("UPDATE leases SET expires_at = :t WHERE worker_id = 'bench-000'"),
                     {"t": utcnow() - timedelta(seconds=1)})
    assert bob.pop()[0] == held
    doubles = bench.double_handouts(engine, 600)
    assert doubles["count"] == 1
    assert doubles["examples"][0]["item_id"] == held
    assert doubles["examples"][0]["first"] == "bench-000" and doubles["examples"][0]["second"] == "bench-001"
    assert bench.stored_labels(engine) == sorted([("bench-000", post, "Advocacy"), ("bench-001", post, "Others")])
    assert bench.model_runs(engine) == 0
