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
    """Binary COPY on PostgreSQL: tabs, newlines, backslashes, non-ASCII and empty labels
    survive, None is NULL, floats keep every digit; SQLite stores the same."""
    import numpy as np

    ids = seed_items(db_url, 6)
    engine = engine_for(db_url)
    run = new_run(engine)
    awkward = ["a\tb", "line\nbreak", "back\\slash \\N", "plain", "Économie – ✓", ""]
    priorities = np.array([1 / 3, -1e300, 2.0 ** -40, 123456789.123456789, float("inf"), -0.0])
    store_predictions.write(engine, run, np.array(ids), priorities, predicted_labels=awkward,
                            confidences=[0.5, None, 0.25, 1.0, None, 0.0],
                            clusters=[ids[0], None, ids[0], None, None, ids[5]])
    with engine.connect() as conn:
        got = conn.execute(text("SELECT predicted_label, priority, confidence, second_label, cluster "
                                "FROM predictions WHERE run_id = :r ORDER BY item_id"), {"r": run}).all()
    assert [r[0] for r in got] == awkward
    assert [r[1] for r in got] == priorities.tolist()
    assert [r[2] for r in got] == [0.5, None, 0.25, 1.0, None, 0.0]
    assert [r[3] for r in got] == [None] * 6
    assert [r[4] for r in got] == [ids[0], None, ids[0], None, None, ids[5]]


def test_write_stores_every_row_of_every_layout_in_several_copies(db_url, engine_for, monkeypatch):
    """Rows of mixed layouts (labels, NULLs), arrays and lists, written in COPYs of 7 rows on
    PostgreSQL (the rows are grouped by layout inside each COPY): every row reads back as given."""
    import numpy as np

    monkeypatch.setattr(store_predictions, "COPY_ROWS", 7)
    n = 60
    ids = seed_items(db_url, n)
    engine = engine_for(db_url)
    run = new_run(engine)
    rng = np.random.default_rng(5)
    labels = np.array(["Advocacy", "Others", "Personal Stories", None], dtype=object)
    l1, l2 = labels[rng.integers(0, 4, n)], labels[rng.integers(0, 3, n)]
    conf = [None if k % 5 == 0 else float(v) for k, v in enumerate(rng.random(n))]
    second = rng.random(n).astype(np.float32)  # float32 values are stored as they are
    priorities = rng.normal(size=n)
    clusters = [ids[k - k % 4] if k % 3 == 0 else None for k in range(n)]
    store_predictions.write(engine, run, ids, priorities, predicted_labels=l1, confidences=conf,
                            second_labels=list(l2), second_confidences=second, clusters=clusters)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT item_id, predicted_label, confidence, second_label, second_confidence, "
                                "priority, cluster FROM predictions WHERE run_id = :r ORDER BY item_id"),
                           {"r": run}).all()
    assert [tuple(r) for r in got] == list(zip(ids, l1.tolist(), conf, l2.tolist(), second.astype(float).tolist(),
                                               priorities.tolist(), clusters))


def test_binary_copy_refuses_numbers_postgresql_cannot_hold_as_integers():
    """The encoder checks what it packs into 32 bits: no id silently wrapped or cut."""
    from smartlabel.store.predictions import Column

    with pytest.raises(ValueError, match="item_id holds values outside PostgreSQL's integer range"):
        Column.of([1, 2 ** 31], "int4", 2, "item_id")
    with pytest.raises(ValueError, match="cluster holds values that are not whole numbers"):
        Column.of([1.5, None], "int4", 2, "cluster")
    with pytest.raises(ValueError, match="priority holds values that are not numbers"):
        Column.of(["high", "low"], "float8", 2, "priority")
    assert Column.of([None, 2 ** 31 - 1], "int4", 2, "cluster").code.tolist() == [0, 1]


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
