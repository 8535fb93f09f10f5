"""smartlabel.store.predictions: bulk write and prune, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from smartlabel.store import predictions as store_predictions
from smartlabel.store import runs as store_runs

from helpers import seed_items


def new_run(engine):
    return store_runs.start(engine, model_kind="lr", acquisition="entropy")


def test_prune_keeps_current_and_newest_runs(db_url, engine_for):
    ids = seed_items(db_url, 3)
    engine = engine_for(db_url)
    runs = [new_run(engine) for _ in range(4)]
    for r in runs:
        store_predictions.write(engine, r, ids, [0.5] * 3)
    store_runs.set_current(engine, runs[0])
    store_predictions.prune(engine, keep_runs=2)
    with engine.connect() as conn:
        left = sorted(r for (r,) in conn.execute(text("SELECT DISTINCT run_id FROM predictions")))
    assert left == sorted([runs[0], runs[2], runs[3]])


def test_write_takes_numpy_values(db_url, engine_for):
    import numpy as np

    ids = seed_items(db_url, 3)
    engine = engine_for(db_url)
    run = new_run(engine)
    store_predictions.write(engine, run, [np.int64(i) for i in ids], list(np.array([0.25, 0.5, 0.75])),
                      confidences=list(np.array([0.9, 0.8, 0.7], dtype=np.float32)))
    with engine.connect() as conn:
        got = conn.execute(text("SELECT item_id, priority, confidence FROM predictions ORDER BY item_id")).all()
    assert [(i, p) for i, p, _ in got] == list(zip(ids, [0.25, 0.5, 0.75]))
    assert [round(c, 4) for _, _, c in got] == [0.9, 0.8, 0.7]
