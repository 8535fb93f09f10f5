"""smartlabel.store.runs: a run's life, kinds, the current run; and migration 0003 (run kinds)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from smartlabel.migrate import downgrade, upgrade
from smartlabel.store import runs


def test_kinds_keep_autolabel_runs_out_of_training_history(db_url, engine_for):
    engine = engine_for(db_url)
    first = runs.start(engine, model_kind="lr", acquisition="entropy")
    runs.finish(engine, first, "ok", n_labels=20, cv_accuracy=0.5)
    auto = runs.start(engine, kind=runs.AUTOLABEL, model_kind="lr", acquisition="certainty")
    runs.finish(engine, auto, "ok", n_labels=20)
    failed = runs.start(engine, model_kind="lr", acquisition="entropy")
    runs.finish(engine, failed, "failed", "boom")

    base_id, started = runs.last_base(engine)
    assert base_id == first and isinstance(started, datetime)  # typed on SQLite too
    assert [r["run_id"] for r in runs.learning_curve(engine)] == [first]
    assert runs.latest_ok(engine)["id"] == first
    assert runs.latest_ok(engine, runs.AUTOLABEL)["id"] == auto
    assert len(runs.failures_since(engine, first)) == 1
    assert [r["kind"] for r in runs.latest(engine)] == ["train", "autolabel", "train"]
    with pytest.raises(ValueError, match="run kind"):
        runs.start(engine, kind="other")


def test_current_run_is_switched_in_one_statement(db_url, engine_for):
    engine = engine_for(db_url)
    assert runs.current_id(engine) is None and runs.current(engine) is None
    run = runs.start(engine, model_kind="svm", acquisition="margin")
    runs.finish(engine, run, "ok", n_labels=30, cv_accuracy=0.75)
    runs.set_current(engine, run)
    now = runs.current(engine)
    assert now["id"] == run and now["model_kind"] == "svm" and isinstance(now["finished_at"], datetime)


def test_interrupted_runs_are_marked_failed(db_url, engine_for):
    engine = engine_for(db_url)
    left = runs.start(engine, model_kind="lr", acquisition="entropy")
    assert runs.mark_interrupted(engine) == 1
    assert runs.latest(engine, 1)[0]["status"] == "failed" and runs.latest(engine, 1)[0]["id"] == left
    assert runs.mark_interrupted(engine) == 0


def test_migration_0003_turns_autolabel_acquisition_into_a_kind(db_url, engine_for):
    engine = engine_for(db_url)
    downgrade(engine, "0002")
    with engine.begin() as conn:
        for acq in ("entropy", "autolabel"):
            conn.execute(text("INSERT INTO model_runs (started_at, status, acquisition) "
                              "VALUES (CURRENT_TIMESTAMP, 'ok', :a)"), {"a": acq})
    upgrade(engine)
    with engine.connect() as conn:
        got = conn.execute(text("SELECT kind, acquisition FROM model_runs ORDER BY id")).all()
    assert [tuple(r) for r in got] == [("train", "entropy"), ("autolabel", "certainty")]
    downgrade(engine, "0002")
    with engine.connect() as conn:
        back = [r[0] for r in conn.execute(text("SELECT acquisition FROM model_runs ORDER BY id"))]
    assert back == ["entropy", "autolabel"]
