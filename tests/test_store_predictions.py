"""smartlabel.store.predictions: bulk write and prune, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest
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


def test_write_keeps_awkward_labels_nulls_and_full_precision(db_url, engine_for):
    """COPY's text format on PostgreSQL: tabs, newlines and backslashes in a label survive,
    None is NULL, floats keep every digit; SQLite stores the same."""
    import numpy as np

    ids = seed_items(db_url, 4)
    engine = engine_for(db_url)
    run = new_run(engine)
    awkward = ["a\tb", "line\nbreak", "back\\slash \\N", "plain"]
    priorities = np.array([1 / 3, -1e300, 2.0 ** -40, 123456789.123456789])
    store_predictions.write(engine, run, np.array(ids), priorities, predicted_labels=awkward,
                            confidences=[0.5, None, 0.25, 1.0], clusters=[ids[0], None, ids[0], None])
    with engine.connect() as conn:
        got = conn.execute(text("SELECT predicted_label, priority, confidence, second_label, cluster "
                                "FROM predictions WHERE run_id = :r ORDER BY item_id"), {"r": run}).all()
    assert [r[0] for r in got] == awkward
    assert [r[1] for r in got] == priorities.tolist()
    assert [r[2] for r in got] == [0.5, None, 0.25, 1.0]
    assert [r[3] for r in got] == [None] * 4
    assert [r[4] for r in got] == [ids[0], None, ids[0], None]


def test_deleting_a_post_deletes_its_predictions(db_url, engine_for):
    """predictions has no foreign keys (migration 0008); the trigger on items does the cascade."""
    ids = seed_items(db_url, 3)
    engine = engine_for(db_url)
    run = new_run(engine)
    store_predictions.write(engine, run, ids, [0.1, 0.2, 0.3])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM items WHERE id = :i"), {"i": ids[1]})
    with engine.connect() as conn:
        left = sorted(i for (i,) in conn.execute(text("SELECT item_id FROM predictions")))
    assert left == [ids[0], ids[2]]


def test_write_refuses_columns_of_another_length(db_url, engine_for):
    ids = seed_items(db_url, 2)
    engine = engine_for(db_url)
    with pytest.raises(ValueError, match="confidence differ"):
        store_predictions.write(engine, new_run(engine), ids, [0.1, 0.2], confidences=[0.5])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one() == 0
