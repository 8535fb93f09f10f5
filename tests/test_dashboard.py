"""The admin dashboard's numbers match the database; the curve fit, the stopping rule, the widget."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from smartlabel import dashboard as dash
from smartlabel.quality import update_quality
from smartlabel.store import predictions as store_predictions, runs as store_runs

from helpers import seed_items

A, B = "Advocacy", "Others"
XSS = "<img src=x onerror=alert(1)>"
N_LABELS = [10, 20, 40, 80, 160, 320]


def true_curve(n):
    return 0.9 - 0.8 * n ** -0.5


def populate(engine, *, churn_items=2):
    """40 posts, 12 labelled; six ok runs on a known curve and one failed; predictions for the
    last four runs, `churn_items` unlabelled posts predicted differently three runs back."""
    ids = seed_items(engine, 40)
    rows = [(ids[k], "ann", A if k < 6 else B, "priority") for k in range(10)]
    rows += [(ids[k], "bob", lab, "audit") for k, lab in zip(range(4), [A, A, B, B])]
    rows += [(ids[10], XSS, A, "random"), (ids[11], "import", A, "import")]
    with engine.begin() as conn:
        for item, worker, label, reason in rows:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, seconds_spent, "
                              "handout_reason) VALUES (:i, :l, :w, CURRENT_TIMESTAMP, 4.0, :r)"),
                         {"i": item, "l": label, "w": worker, "r": reason})
        # ann retracted a label (undo): it is in `labels` but counts nowhere
        conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, seconds_spent, handout_reason, "
                          "retracted_at, retracted_by) VALUES (:i, :l, 'ann', CURRENT_TIMESTAMP, 4.0, 'priority', "
                          "CURRENT_TIMESTAMP, 'ann')"), {"i": ids[12], "l": B})
        conn.execute(text("UPDATE items SET title = :t WHERE id = :i"), {"t": XSS, "i": ids[12]})
        conn.execute(text("""UPDATE items SET
            label_count = (SELECT COUNT(DISTINCT worker_id) FROM labels WHERE item_id = items.id
                           AND retracted_at IS NULL),
            done = (SELECT COUNT(DISTINCT worker_id) FROM labels WHERE item_id = items.id
                    AND retracted_at IS NULL) >= 1"""))
        runs = []
        for n in N_LABELS:
            runs.append(conn.execute(text(
                "INSERT INTO model_runs (started_at, finished_at, status, n_labels, cv_accuracy, cv_macro_f1, "
                "audit_accuracy, n_audit) VALUES (CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'ok', :n, :acc, :f1, "
                ":audit, 5) RETURNING id"),
                {"n": n, "acc": true_curve(n), "f1": true_curve(n) - 0.05, "audit": true_curve(n) - 0.02},
            ).scalar_one())
        conn.execute(text("INSERT INTO model_runs (started_at, status, n_labels, cv_accuracy) "
                          "VALUES (CURRENT_TIMESTAMP, 'failed', 400, 0.1)"))
    unlabelled = ids[12:]
    current = {i: (A if k < 20 else B) for k, i in enumerate(unlabelled)}
    current.update({i: A for i in ids[:12]})
    for r in runs[2:]:
        labels = dict(current)
        if r == runs[2]:
            for i in unlabelled[:churn_items]:
                labels[i] = B  # three runs before the current one these were predicted B
        store_predictions.write(engine, r, ids, [0.5] * 40, predicted_labels=[labels[i] for i in ids],
                          confidences=[0.7] * 40)
    store_runs.set_current(engine, runs[-1])
    update_quality(engine, runs[-1])
    return ids, runs


def test_dashboard_numbers_match_the_database(db_url, engine_for):
    engine = engine_for(db_url)
    ids, runs = populate(engine)
    data = dash.dashboard_data(engine, labels=[A, B, "Personal Stories"])
    assert data["pool"] == {"items": 40, "labelled": 12, "unlabelled": 28, "done": 12, "labels": 16,
                            "current_run": runs[-1]}
    assert [r["run_id"] for r in data["runs"]] == runs  # the failed run is left out
    assert [r["n_labels"] for r in data["runs"]] == N_LABELS
    assert [r["cv_accuracy"] for r in data["runs"]] == pytest.approx([true_curve(n) for n in N_LABELS])
    assert data["labels_per_class"] == {A: {"labels": 10, "agreed": 6}, B: {"labels": 6, "agreed": 4},
                                        "Personal Stories": {"labels": 0, "agreed": 0}}
    assert data["predicted"] == {A: 20, B: 8}
    with engine.connect() as conn:
        view = {r.worker_id: r for r in conn.execute(text("SELECT * FROM labeller_stats"))}
    people = {r["worker_id"]: r for r in data["labellers"]}
    assert set(people) == {"ann", "bob", XSS}  # imported labels are not a labeller's work
    assert [(people[w]["labels"], people[w]["items"]) for w in ("ann", "bob", XSS)] == [(10, 10), (4, 4), (1, 1)]
    for w, r in people.items():
        assert r["labels_per_hour"] == pytest.approx(float(view[w].labels_per_hour))
        assert r["avg_seconds_per_label"] == pytest.approx(4.0)
    # ann and bob share posts 0-3 and agree on two: 0.5 each; kappa 0 (worked in test_quality's style)
    assert (people["ann"]["agreement_with_others"], people["ann"]["shared_items"]) == (0.5, 4)
    assert (people["bob"]["agreement_with_others"], people["bob"]["shared_items"]) == (0.5, 4)
    assert people[XSS]["agreement_with_others"] is None
    assert [int(people[w]["retracted"]) for w in ("ann", "bob", XSS)] == [1, 0, 0]
    assert data["retracted"]["count"] == 1
    (gone,) = data["retracted"]["newest"]
    assert (gone["item_id"], gone["label"], gone["worker_id"], gone["retracted_by"]) == (ids[12], B, "ann", "ann")
    pair = next(r for r in data["agreement"] if r["scope"] == "pair" and r["metric"] == "cohen_kappa")
    assert (pair["worker_a"], pair["worker_b"], pair["value"], pair["n_items"]) == ("ann", "bob", 0.0, 4)
    # update_quality without a model: posts 2 and 3 (ann A, bob B) are ties
    assert {k: data["suspects"][k] for k in ("run_id", "model", "tie", "reviewed")} == \
        {"run_id": runs[-1], "model": 0, "tie": 2, "reviewed": 0}
    assert sorted(r["item_id"] for r in data["suspects"]["top"]) == [ids[2], ids[3]]
    churn = data["suggestion"].churn
    assert (churn["old_run"], churn["new_run"], churn["n"], churn["changed"]) == (runs[2], runs[-1], 28, 2)
    assert churn["share"] == pytest.approx(2 / 28)


def test_curve_fit_recovers_a_known_curve_and_says_when_it_cannot():
    fit, note = dash.fit_learning_curve([(n, true_curve(n)) for n in N_LABELS])
    assert note == ""
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.9, 0.8, 0.5), abs=1e-3)
    assert fit.predict(1000) == pytest.approx(true_curve(1000), abs=1e-4)
    # labels for one more point at n=320: solve 0.9 - 0.8 (320+d)^-0.5 = acc(320) + 0.01
    expected = (0.8 / (0.8 * 320 ** -0.5 - 0.01)) ** 2 - 320
    assert fit.labels_for_gain(320, 0.01) == pytest.approx(expected, rel=1e-2)
    assert fit.labels_for_gain(320, 0.5) is None  # beyond the ceiling
    est = dash.gain_estimates(fit, 320, pool_left=300)
    assert [e["extra_labels"] for e in est] == [50, 100, 250, 300]
    assert est[1]["gain"] == pytest.approx(true_curve(420) - true_curve(320), abs=1e-4)
    fit, note = dash.fit_learning_curve([(10, 0.5), (20, 0.6), (20, 0.61), (40, 0.7)])
    assert fit is None and "too few runs" in note and "3 with different label counts" in note


def test_stopping_rule(sqlite_url, engine_for, tmp_path):
    engine = engine_for(sqlite_url)
    ids, runs = populate(engine, churn_items=2)
    s = dash.stopping_suggestion(engine)
    # flat curve (+100 labels add 0.6 points < 1) but 2 of 28 predictions changed (7% > 1%)
    assert s.stop is False and s.gain == pytest.approx(true_curve(420) - true_curve(320), abs=1e-4)
    assert "predictions still change (7.1% of 28 unlabelled posts" in s.reason
    assert "accuracy may still grow" not in s.reason

    from conftest import new_sqlite_database

    (tmp_path / "b").mkdir()
    stable = engine_for(new_sqlite_database(tmp_path / "b"))
    populate(stable, churn_items=0)
    s = dash.stopping_suggestion(stable)
    assert s.stop is True and s.reason.startswith("You could stop: predictions are stable (0.0% of 28")
    assert "the fitted curve predicts +0.6 accuracy points from 100 more labels" in s.reason

    (tmp_path / "c").mkdir()
    young = engine_for(new_sqlite_database(tmp_path / "c"))
    seed_items(young, 5)
    s = dash.stopping_suggestion(young)
    assert s.stop is False and "0 successful model run(s)" in s.reason and "too few runs" in s.fit_note


def test_dashboard_widget_shows_plots_and_escapes_text(sqlite_url, engine_for):
    import ipywidgets as w

    engine = engine_for(sqlite_url)
    populate(engine)
    root = dash.build_dashboard(engine, labels=[A, B])

    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    everything = list(walk(root))
    images = [x for x in everything if isinstance(x, w.Image)]
    assert len(images) == 3 and all(img.value[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    page = "".join(x.value for x in everything if isinstance(x, w.HTML))
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Not yet" in page and "predictions still change" in page
    assert "40 posts, 12 labelled (16 labels), 28 unlabelled; 6 successful model runs" in page
    assert "1 label(s) retracted by an undo" in page and "sl-retracted" in page
    empty = dash.build_dashboard(engine_for(sqlite_url.replace("smartlabel.db", "other.db")), labels=[A, B])
    text_ = "".join(x.value for x in walk(empty) if isinstance(x, w.HTML))
    assert "smartlabel db upgrade" in text_, "an unmigrated database is explained, not a crash"
