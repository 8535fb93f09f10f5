"""The orchestrator loop end to end, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from smartlabel.models import MODELS, text_vectorizer
from smartlabel import modelstore
from smartlabel.modelstore import MODEL_NAME
from smartlabel.orchestrator import Orchestrator
from smartlabel.queue import LabelQueue
from smartlabel.store import runs as store_runs

from text_corpus import label_with_queue, queue_settings, seed_corpus

ROOT = Path(__file__).resolve().parents[1]


def rows(engine, sql, **params):
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def runs(engine):
    return rows(engine, "SELECT * FROM model_runs ORDER BY id")


def orchestrator(url, models_dir, **overrides):
    overrides.setdefault("retrain_every_n_labels", 10)
    return Orchestrator(queue_settings(url, models_dir=str(models_dir), **overrides))


@pytest.fixture
def corpus(db_url):
    ids, truth = seed_corpus(db_url, 20)  # 60 posts, 3 separable classes
    return db_url, dict(zip(ids, truth))


def cli_env(url, models_dir, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELS", "MODEL", "RETRAIN"))}
    env.update(MODEL="lr")  # the fast TF-IDF model (test_encoders runs embed and minilm)
    env.update(PYTHONPATH=str(ROOT / "src"), DATABASE_URL=url, MODELS_DIR=str(models_dir),
               LABELS='["Advocacy","Personal Stories","Others","Factual Queries/Sharing"]',
               RETRAIN_EVERY_N_LABELS="10", SHUFFLE_PROP="0", TF_CPP_MIN_LOG_LEVEL="3", COLD_START_LABELS="0")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_orchestrate_once_cli_trains_scores_and_changes_what_pop_returns(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    labelled = label_with_queue(url, truth, per_worker=10)  # 30 labels from ann, bob, cat
    models = tmp_path / "models"
    out = subprocess.run([sys.executable, "-m", "smartlabel", "orchestrate", "--once"], env=cli_env(url, models),
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run,) = runs(engine)
    assert run["status"] == "ok", run["message"]
    assert (run["model_kind"], run["acquisition"], run["n_labels"], run["n_classes"]) == ("lr", "margin", 30, 3)
    assert 0.8 <= run["cv_accuracy"] <= 1.0 and 0.8 <= run["cv_macro_f1"] <= 1.0
    per_class = run["per_class"] if isinstance(run["per_class"], dict) else json.loads(run["per_class"])
    assert sorted(per_class) == ["Advocacy", "Others", "Personal Stories"]
    assert sum(m["support"] for m in per_class.values()) == 30
    assert run["n_audit"] == 0 and run["audit_accuracy"] is None
    assert run["finished_at"] is not None and run["seconds_train"] >= 0
    # the model file: named after its CV score, loads, predicts text
    (path,) = modelstore.files(models)
    assert run["model_path"] == str(path)
    m = MODEL_NAME.match(path.name)
    assert m and float(m.group(3)) == pytest.approx(run["cv_accuracy"], abs=5e-5)
    assert m.group(3) == f"{run['cv_accuracy']:.4f}"
    model = pickle.loads(path.read_bytes())
    assert list(model.predict(["petition rally campaign sign", "pasta garlic dinner recipe"])) == ["Advocacy", "Others"]
    assert not list(models.glob("*.tmp")) and not list(models.glob(".*.tmp"))
    # one readable log line sums the run up
    ok_lines = [line for line in out.stderr.splitlines() if re.search(r"run 1 ok: lr on 30 labels", line)]
    assert len(ok_lines) == 1 and f"cv accuracy {run['cv_accuracy']:.4f}" in ok_lines[0]
    assert "run 1 scoring: 100%" in out.stderr
    # every open post has a prediction in run 1, which the queue now follows
    open_ids = {r["id"] for r in rows(engine, "SELECT id FROM items WHERE NOT done")}
    assert len(open_ids) == 30 and run["n_scored"] == 30
    preds = rows(engine, "SELECT * FROM predictions WHERE run_id = :r ORDER BY priority DESC", r=run["id"])
    assert {p["item_id"] for p in preds} == open_ids
    assert store_runs.current_id(engine) == run["id"]
    right = sum(p["predicted_label"] == truth[p["item_id"]] for p in preds)
    assert right >= 27
    for p in preds:
        assert p["second_label"] != p["predicted_label"] and p["second_confidence"] <= p["confidence"]
    # ACQUISITION's default is margin: every priority is 1 - (p1 - p2) of a post (diversity may
    # permute the values among the top candidates, so compare them as a set); with 3 classes
    # entropy's values would differ
    np.testing.assert_allclose(sorted(p["priority"] for p in preds),
                               sorted(1 - (p["confidence"] - p["second_confidence"]) for p in preds), atol=1e-9)
    # the queue now hands out by the run's priorities (margin: the closest call first),
    # not in the random order it used before the run
    by_priority = [p["item_id"] for p in preds]
    by_rand_key = [r["id"] for r in rows(engine, "SELECT id FROM items WHERE NOT done ORDER BY rand_key")]
    assert by_priority[:3] != by_rand_key[:3]
    q = LabelQueue(url, "dan", settings=queue_settings(url), rng=random.Random(0))
    got = [q.pop() for _ in range(3)]
    assert [g[0] for g in got] == by_priority[:3]
    first = got[0][1]
    assert first["reason"] == "priority" and first["run_id"] == run["id"]
    assert first["predicted_label"] == preds[0]["predicted_label"]
    assert first["confidence"] == pytest.approx(preds[0]["confidence"])
    # before the run there were no priorities: every label came from a random-order hand-out
    assert {reason for *_, reason in labelled} == {"unscored"}


def test_retrains_only_when_enough_new_labels_and_resumes_after_restart(corpus, engine_for, tmp_path, caplog):
    url, truth = corpus
    engine = engine_for(url)
    caplog.set_level(logging.INFO, logger="smartlabel")
    label_with_queue(url, truth, workers=("ann",), per_worker=6)
    orch = orchestrator(url, tmp_path / "m")
    assert orch.tick() is None and runs(engine) == []  # 6 < 10 new labels
    assert "6 new label(s) so far, retraining at 10" in caplog.text
    label_with_queue(url, truth, workers=("bob",), per_worker=6, seed=1)
    result = orch.tick()
    assert result.status == "ok" and [r["status"] for r in runs(engine)] == ["ok"]
    # a new process (restart) counts from the database: nothing new, nothing to do
    again = orchestrator(url, tmp_path / "m")
    assert again.tick() is None and len(runs(engine)) == 1
    label_with_queue(url, truth, workers=("cat",), per_worker=10, seed=2)
    result = again.tick()
    assert result.status == "ok" and runs(engine)[-1]["n_labels"] == 22
    assert store_runs.current_id(engine) == result.run_id
    # the second run reused the feature cache of the first process (saved on disk)
    assert f"run {result.run_id} features: 60 cached, nothing new" in caplog.text


def test_fewer_than_two_classes_is_a_skipped_run(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    one_class = {i: "Advocacy" for i in truth}
    label_with_queue(url, one_class, per_worker=4)
    result = orchestrator(url, tmp_path / "m").tick()
    (run,) = runs(engine)
    assert result.status == run["status"] == "skipped"
    assert "at least two classes" in run["message"] and "Advocacy x12" in run["message"]
    assert run["n_labels"] == 12 and run["n_classes"] == 1
    assert modelstore.files(tmp_path / "m") == [] and store_runs.current_id(engine) is None


def test_new_posts_are_vectorised_incrementally(corpus, engine_for, tmp_path, caplog):
    url, truth = corpus
    engine = engine_for(url)
    caplog.set_level(logging.INFO, logger="smartlabel")
    label_with_queue(url, truth, per_worker=5)
    orch = orchestrator(url, tmp_path / "m")
    assert orch.tick(force=True).status == "ok"
    assert "features: vectoriser fitted on 60 posts" in caplog.text
    new_ids, _ = seed_corpus(url, 3, seed=9)  # 9 newly imported posts
    result = orch.tick(force=True)
    assert result.status == "ok"
    assert f"run {result.run_id} features: +9 new, -0 gone, 69 cached" in caplog.text
    scored = {r["item_id"] for r in rows(engine, "SELECT item_id FROM predictions WHERE run_id = :r", r=result.run_id)}
    assert set(new_ids) <= scored


def test_rare_classes_do_not_crash_cross_validation(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    # 8 Advocacy, 1 Others: no stratified split exists; the run still trains and scores
    skew = {i: ("Advocacy" if t != "Others" else "Others") for i, t in truth.items()}
    ids = sorted(truth)
    others = [i for i in ids if truth[i] == "Others"]
    with engine.begin() as conn:  # as the importer stores a file's labels
        for i in [i for i in ids if truth[i] == "Advocacy"][:8] + others[:1]:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason) "
                              "VALUES (:i, :l, 'import', CURRENT_TIMESTAMP, 'import')"), {"i": i, "l": skew[i]})
            conn.execute(text("UPDATE items SET label_count = 1, done = :d WHERE id = :i"), {"i": i, "d": True})
    result = orchestrator(url, tmp_path / "m").tick(force=True)
    run = runs(engine)[-1]
    assert result.status == "ok" and run["cv_accuracy"] is None and "no cross-validation" in run["message"]
    (path,) = modelstore.files(tmp_path / "m")
    assert path.name.endswith(" nan.pkl")
    # (fewer folds with rare classes: tests/test_training.py)


def test_audit_sample_from_the_queue_exploration(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    labelled = label_with_queue(url, truth, per_worker=9, shuffle_prop=1.0)
    assert sum(r == "random" for *_, r in labelled) >= 20
    orchestrator(url, tmp_path / "m").tick()
    run = runs(engine)[-1]
    n_random = len({i for i, *_, r in labelled if r == "random"})
    assert run["status"] == "ok" and run["n_audit"] == n_random
    assert 0.7 <= run["audit_accuracy"] <= 1.0


class Broken(ClassifierMixin, BaseEstimator):
    """A model whose training fails (a real exception from fit, as a bad model would raise)."""

    def fit(self, X, y):
        raise ValueError("solver diverged")


def test_a_failing_run_is_recorded_and_the_loop_goes_on(corpus, engine_for, tmp_path, caplog, monkeypatch):
    from sklearn.pipeline import Pipeline

    url, truth = corpus
    engine = engine_for(url)
    caplog.set_level(logging.INFO, logger="smartlabel")
    label_with_queue(url, truth, per_worker=5)
    monkeypatch.setitem(MODELS, "lr", lambda **kw: Pipeline([("tfidf", text_vectorizer()), ("clf", Broken())]))
    orch = orchestrator(url, tmp_path / "m", retrain_interval_seconds=0.05)
    loop = threading.Thread(target=orch.run_forever, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([r for r in runs(engine) if r["status"] == "failed"]) < 2:
            time.sleep(0.05)
        failed = [r for r in runs(engine) if r["status"] == "failed"]
        assert len(failed) >= 2, runs(engine)  # it retried (with back-off) and did not die
        assert "ValueError: solver diverged" in failed[0]["message"] and failed[0]["finished_at"] is not None
        monkeypatch.undo()  # the model is fixed: the next retry succeeds
        while time.monotonic() < deadline and not [r for r in runs(engine) if r["status"] == "ok"]:
            time.sleep(0.05)
        assert [r for r in runs(engine) if r["status"] == "ok"], runs(engine)
        assert loop.is_alive()
    finally:
        orch.request_stop()
        loop.join(30)
    assert not loop.is_alive()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("\n" not in r.getMessage() for r in errors)
    assert errors[0].getMessage() == f"run {failed[0]['id']} failed: ValueError: solver diverged"
    assert not list((tmp_path / "m").glob("*.tmp"))


def _take_database_away(url, *engines):
    """Make the database unreachable; return a function that brings it back."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        for e in engines:  # SQLite: close every connection, then move the files away
            e.dispose()
        files = [Path(u.database + suffix) for suffix in ("", "-wal", "-shm")]
        for f in files:
            if f.exists():
                f.rename(f.with_name(f.name + ".away"))

        def back_sqlite():
            for e in engines:
                e.dispose()
            for f in files:
                f.unlink(missing_ok=True)  # the empty database a connection attempt created
                away = f.with_name(f.name + ".away")
                if away.exists():
                    away.rename(f)

        return back_sqlite
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE {u.database} ALLOW_CONNECTIONS false"))
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                     {"d": u.database})

    def back():
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {u.database} ALLOW_CONNECTIONS true"))
        admin.dispose()

    return back


def test_database_gone_for_a_while(corpus, engine_for, tmp_path, caplog):
    url, truth = corpus
    engine = engine_for(url)
    caplog.set_level(logging.INFO, logger="smartlabel")
    label_with_queue(url, truth, per_worker=5)
    orch = orchestrator(url, tmp_path / "m", retrain_interval_seconds=0.01)  # back-off after a failure: 0.02 s
    assert orch.tick().status == "ok"
    label_with_queue(url, truth, workers=("dan", "eve"), per_worker=5, seed=3)
    with engine.begin() as conn:  # a run in progress when the database goes away
        mid = conn.execute(text("INSERT INTO model_runs (started_at, status) VALUES (CURRENT_TIMESTAMP, 'running') "
                                "RETURNING id")).scalar_one()
    back = _take_database_away(url, engine, orch.engine)
    try:
        orch._finish(mid, "failed", "model error while the database was away")  # cannot be stored now
        caplog.clear()
        result = orch.tick()
        assert result.status == "failed"
        assert orch.tick().status == "failed"  # still away: not logged again
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0]
        assert "cannot reach the database" in errors[0] or "smartlabel db upgrade" in errors[0]
    finally:
        back()
    orch.engine.dispose()  # connections the outage broke
    result = orch.tick()  # records run 2 now; its back-off (0.02 s) may hold this first check
    for _ in range(50):
        if result is not None:
            break
        time.sleep(0.02)
        result = orch.tick()
    assert "the database answers again" in caplog.text
    assert [(r["status"], r["message"]) for r in runs(engine)][1] == ("failed", "model error while the database was away")
    assert result.status == "ok" and [r["status"] for r in runs(engine)] == ["ok", "failed", "ok"]
    assert store_runs.current_id(engine) == result.run_id


def test_runs_left_running_are_marked_interrupted_on_start(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO model_runs (started_at, status, model_kind) VALUES (CURRENT_TIMESTAMP, 'running', 'lr')"))
    (tmp_path / "m").mkdir()
    stale = tmp_path / "m" / ".2026-01-01T00-00-00Z 0.5000.123.tmp"
    stale.write_bytes(b"half a pickle")
    label_with_queue(url, truth, per_worker=4)
    orch = orchestrator(url, tmp_path / "m")
    orch.run_forever(once=True)
    first, second = runs(engine)
    assert first["status"] == "failed" and first["message"].startswith("interrupted")
    assert second["status"] == "ok"
    assert not stale.exists()


def test_model_files_are_kept_to_keep_models(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    label_with_queue(url, truth, per_worker=4)
    orch = orchestrator(url, tmp_path / "m", keep_models=2)
    made = [orch.tick(force=True).model_path for _ in range(3)]
    files = modelstore.files(tmp_path / "m")
    assert [str(p) for p in files] == made[1:]  # same-second names get a run suffix, order kept
    assert len({p.name for p in files}) == 2
    assert rows(engine, "SELECT COUNT(DISTINCT run_id) AS n FROM predictions")[0]["n"] == 3


def test_keras_model_in_the_loop_predicts_every_class(sqlite_url, engine_for, tmp_path):
    ids, truth = seed_corpus(sqlite_url, 12)
    truth = dict(zip(ids, truth))
    engine = engine_for(sqlite_url)
    label_with_queue(sqlite_url, truth, per_worker=6)
    result = orchestrator(sqlite_url, tmp_path / "m", model="keras", class_weight="balanced").tick()
    run = runs(engine)[-1]
    assert result.status == "ok", run["message"]
    assert run["model_kind"] == "keras" and run["cv_accuracy"] >= 0.7
    preds = rows(engine, "SELECT item_id, predicted_label FROM predictions WHERE run_id = :r", r=run["id"])
    assert {p["predicted_label"] for p in preds} == {"Advocacy", "Others", "Personal Stories"}
    assert sum(p["predicted_label"] == truth[p["item_id"]] for p in preds) >= 0.8 * len(preds)


def test_a_run_refreshes_planner_statistics_on_postgresql_and_leaves_none_on_sqlite(corpus, engine_for, tmp_path):
    url, truth = corpus
    engine = engine_for(url)
    label_with_queue(url, truth, per_worker=10)
    assert orchestrator(url, tmp_path / "models").tick().status == "ok"
    if engine.dialect.name == "sqlite":  # deliberately none (smartlabel.store.stats)
        assert rows(engine, "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'") == []
        return
    got = {r["relname"]: r for r in rows(engine, """
        SELECT s.relname, s.last_analyze, c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        WHERE s.relname IN ('predictions', 'labels', 'items', 'handouts')""")}
    assert all(got[t]["last_analyze"] is not None for t in ("predictions", "labels", "items", "handouts"))
    assert (got["predictions"]["reltuples"], got["labels"]["reltuples"], got["items"]["reltuples"]) == (30, 30, 60)


def _last_analyze(engine) -> dict:
    return {r["relname"]: r["last_analyze"] for r in rows(engine, "SELECT relname, last_analyze FROM pg_stat_user_tables")}


def _wait_for_counted_changes(engine, table: str, at_least: int) -> None:
    """PostgreSQL counts a backend's row changes in pg_stat_user_tables about a second after its
    commits: wait for them (bounded) so the next run sees what the labellers changed."""
    for _ in range(300):
        got = rows(engine, "SELECT n_mod_since_analyze AS n FROM pg_stat_user_tables WHERE relname = :t", t=table)
        if got and got[0]["n"] >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"PostgreSQL never counted {at_least} changed rows of {table}: {got}")


def test_a_run_analyzes_the_tables_it_wrote_and_only_the_stale_others(corpus, engine_for, tmp_path):
    """After a run: predictions and model_runs always; items and labels only once more than a
    tenth of their rows changed since their last ANALYZE (SQLite: no statistics at all)."""
    url, truth = corpus
    engine = engine_for(url)
    label_with_queue(url, truth, per_worker=10)  # 30 of 60 posts
    orch = orchestrator(url, tmp_path / "models")
    assert orch.tick().status == "ok"
    if engine.dialect.name == "sqlite":
        assert orch.tick(force=True).status == "ok"
        assert rows(engine, "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'") == []
        return
    first = _last_analyze(engine)
    assert all(first[t] is not None for t in ("items", "labels", "predictions", "model_runs"))
    # nothing labelled since: the tables the run wrote are analyzed, the others are left alone
    assert orch.tick(force=True).status == "ok"
    second = _last_analyze(engine)
    assert second["predictions"] > first["predictions"] and second["model_runs"] > first["model_runs"]
    assert (second["items"], second["labels"]) == (first["items"], first["labels"])
    # 12 more labels: 12 of 60 posts and 12 labels on 30 changed, more than a tenth of each
    label_with_queue(url, truth, workers=("dan", "eve"), per_worker=6, seed=3)
    _wait_for_counted_changes(engine, "items", 12)
    _wait_for_counted_changes(engine, "labels", 12)
    assert orch.tick(force=True).status == "ok"
    third = _last_analyze(engine)
    assert third["items"] > second["items"] and third["labels"] > second["labels"]
    assert third["predictions"] > second["predictions"]


def test_the_vectoriser_is_pickled_once_for_every_model_file_of_a_pool(corpus, engine_for, tmp_path):
    url, truth = corpus
    label_with_queue(url, truth, per_worker=10)
    orch = orchestrator(url, tmp_path / "m")
    made = [orch.tick(force=True).model_path for _ in range(2)]
    reuse, vectoriser = orch.learner.shared_part()
    assert reuse.pickled == 1
    probe = ["petition rally campaign sign", "pasta garlic dinner recipe"]
    for path in made:  # each file is whole on its own, text in
        model = pickle.loads(Path(path).read_bytes())
        assert model.named_steps["tfidf"].vocabulary_ == vectoriser.vocabulary_
        assert list(model.predict(probe)) == ["Advocacy", "Others"]
