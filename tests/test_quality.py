"""Agreement figures against hand-computed values; suspect labels find planted flips."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from smartlabel.errors import QualityInputError
from smartlabel.quality import (
    agreement_rows,
    cohen_kappa,
    find_suspects,
    fold_proba,
    item_quality,
    krippendorff_alpha,
    latest_agreement,
    out_of_fold_proba,
    update_quality,
)

from helpers import seed_items

# Three labellers, labels A/B/C, seven posts (post 7 has one label: not pairable).
FIXTURE = {
    1: {"ann": "A", "bob": "A"},
    2: {"ann": "A", "bob": "B"},
    3: {"ann": "B", "bob": "B"},
    4: {"ann": "A", "bob": "A", "cat": "A"},
    5: {"ann": "B", "cat": "A"},
    6: {"bob": "C", "cat": "C"},
    7: {"ann": "C"},
}

# Worked by hand (Krippendorff's coincidence matrix: each ordered pair of values in a
# post adds 1/(m-1), m = labels on the post):
#   o_AA = 2 (post 1) + 3 (post 4: 6 pairs / 2) = 5, o_BB = 2, o_CC = 2, o_AB = o_BA = 2
#   n_A = 7, n_B = 4, n_C = 2, n = 13
#   alpha = 1 - (n-1) * sum_{c!=k} o_ck / sum_{c!=k} n_c n_k = 1 - 12*4 / (169-49-16-4) = 0.52
#   observed agreement = (5+2+2)/13 = 9/13
# Per label, binarised ("A" or not):
#   A: o_TT=5, o_FF=4, o_TF=o_FT=2; n_T=7, n_F=6: alpha = 1 - 12*4/(2*7*6) = 3/7; specific 5/7
#   B: o_TT=2, o_FF=7, o_TF=o_FT=2; n_T=4, n_F=9: alpha = 1 - 12*4/(2*4*9) = 1/3; specific 2/4
#   C: o_TT=2, o_FF=11, no disagreement: alpha = 1; specific 2/2
# Pairs (Cohen's kappa = (n*agree - sum_c a_c b_c) / (n^2 - sum_c a_c b_c)):
#   ann-bob posts 1-4: ann AABA, bob ABBA: agree 3, chance 3*2+1*2 = 8: (12-8)/(16-8) = 0.5
#   ann-cat posts 4,5: ann AB, cat AA: agree 1, chance 1*2 = 2: (2-2)/(4-2) = 0
#   bob-cat posts 4,6: bob AC, cat AC: agree 2, chance 1+1 = 2: (4-2)/(4-2) = 1
# Labeller's agreement with others (agreeing pairs / pairs on shared posts):
#   ann: posts 1,2,3,4(x2),5 -> 4/6; bob: 1,2,3,4(x2),6 -> 5/6; cat: 4(x2),5,6 -> 3/4
EXPECTED = {
    ("overall", None, None, None, "alpha"): (0.52, 6),
    ("overall", None, None, None, "percent_agreement"): (9 / 13, 6),
    ("label", "A", None, None, "alpha"): (3 / 7, 4),
    ("label", "A", None, None, "specific_agreement"): (5 / 7, 4),
    ("label", "B", None, None, "alpha"): (1 / 3, 3),
    ("label", "B", None, None, "specific_agreement"): (0.5, 3),
    ("label", "C", None, None, "alpha"): (1.0, 1),
    ("label", "C", None, None, "specific_agreement"): (1.0, 1),
    ("pair", None, "ann", "bob", "cohen_kappa"): (0.5, 4),
    ("pair", None, "ann", "bob", "percent_agreement"): (0.75, 4),
    ("pair", None, "ann", "cat", "cohen_kappa"): (0.0, 2),
    ("pair", None, "ann", "cat", "percent_agreement"): (0.5, 2),
    ("pair", None, "bob", "cat", "cohen_kappa"): (1.0, 2),
    ("pair", None, "bob", "cat", "percent_agreement"): (1.0, 2),
    ("worker", None, "ann", None, "agreement_with_others"): (4 / 6, 5),
    ("worker", None, "bob", None, "agreement_with_others"): (5 / 6, 5),
    ("worker", None, "cat", None, "agreement_with_others"): (3 / 4, 3),
}


def fixture_rows(ids=None):
    ids = ids or {k: k for k in FIXTURE}
    return [(ids[item], worker, label) for item, votes in FIXTURE.items() for worker, label in votes.items()]


def keyed(rows):
    return {(r["scope"], r["label"], r["worker_a"], r["worker_b"], r["metric"]): (r["value"], r["n_items"])
            for r in rows}


def assert_matches_hand_values(rows):
    got = keyed(rows)
    assert set(got) == set(EXPECTED)
    for key, (value, n) in EXPECTED.items():
        assert got[key][0] == pytest.approx(value, abs=1e-12), key
        assert got[key][1] == n, key


def test_agreement_matches_values_computed_by_hand():
    assert_matches_hand_values(agreement_rows(fixture_rows()))


def test_alpha_reproduces_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example:
    # 4 coders, 12 units, missing values; the paper gives alpha = 0.743.
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[v for v in unit if v is not None] for unit in zip(*coders)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def test_cohen_kappa_agrees_with_sklearn_and_is_none_when_undefined():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.choice(list("ABCD"), size=30).tolist()
        b = [x if rng.random() < 0.6 else rng.choice(list("ABCD")) for x in a]
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["A", "A"], ["A", "A"]) is None  # one label used throughout: undefined
    assert cohen_kappa([], []) is None
    assert krippendorff_alpha([["A", "A"], ["A", "A", "A"]]) is None
    assert krippendorff_alpha([["A"], ["B"]]) is None  # nothing pairable
    with pytest.raises(QualityInputError):
        cohen_kappa(["A"], ["A", "B"])


def insert_labels(engine, rows, reason=None):
    with engine.begin() as conn:
        for item, worker, label in rows:
            conn.execute(text("INSERT INTO labels (item_id, label, worker_id, created_at, handout_reason) "
                              "VALUES (:i, :l, :w, CURRENT_TIMESTAMP, :r)"),
                         {"i": item, "l": label, "w": worker, "r": reason})


def new_run(engine):
    with engine.begin() as conn:
        return conn.execute(text("INSERT INTO model_runs (started_at, status) "
                                 "VALUES (CURRENT_TIMESTAMP, 'ok') RETURNING id")).scalar_one()


def test_update_quality_stores_agreement_and_ties(db_url, engine_for):
    engine = engine_for(db_url)
    ids = dict(zip(FIXTURE, seed_items(engine, len(FIXTURE))))
    insert_labels(engine, fixture_rows(ids))
    run = new_run(engine)
    report = update_quality(engine, run)
    assert report.alpha == pytest.approx(0.52) and report.n_items_multi == 6 and report.n_labels == 14
    assert report.n_ties == 2 and report.n_suspects == 0 and report.n_checked == 0
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(text(
            "SELECT scope, label, worker_a, worker_b, metric, value, n_items FROM agreement WHERE run_id = :r"),
            {"r": run})]
        ties = conn.execute(text("SELECT item_id, kind, score FROM suspect_labels WHERE run_id = :r "
                                 "ORDER BY item_id"), {"r": run}).all()
        summary = conn.execute(text("SELECT n_labels, n_items_multi, alpha, n_ties FROM quality_runs")).one()
    assert_matches_hand_values(stored)
    assert_matches_hand_values(latest_agreement(engine))
    assert [tuple(t) for t in ties] == [(ids[2], "tie", 1.0), (ids[5], "tie", 1.0)]
    assert summary[0] == 14 and summary[1] == 6 and summary[2] == pytest.approx(0.52) and summary[3] == 2
    quality = item_quality(engine)
    assert quality[ids[4]]["agreement"] == 1.0 and quality[ids[4]]["agreed_label"] == "A"
    assert quality[ids[4]]["suspect"] is False and quality[ids[4]]["n_labels"] == 3
    assert quality[ids[2]]["suspect"] is True and quality[ids[2]]["suspect_kind"] == "tie"
    assert quality[ids[2]]["agreed_label"] is None and quality[ids[2]]["agreement"] == 0.5
    assert quality[ids[7]]["agreement"] is None and quality[ids[7]]["agreed_label"] == "C"


def test_rerun_replaces_rows_and_old_runs_are_pruned(sqlite_url, engine_for):
    engine = engine_for(sqlite_url)
    ids = dict(zip(FIXTURE, seed_items(engine, len(FIXTURE))))
    insert_labels(engine, fixture_rows(ids))
    runs = [new_run(engine) for _ in range(4)]
    for r in runs:
        update_quality(engine, r, keep_runs=2)
    update_quality(engine, runs[-1], keep_runs=2)  # again: replaces, does not duplicate
    with engine.connect() as conn:
        kept = [r for (r,) in conn.execute(text("SELECT run_id FROM quality_runs ORDER BY run_id"))]
        per_run = dict(conn.execute(text("SELECT run_id, COUNT(*) FROM agreement GROUP BY run_id")).all())
        suspects = {r for (r,) in conn.execute(text("SELECT DISTINCT run_id FROM suspect_labels"))}
    assert kept == runs[-2:]
    assert per_run == {runs[-2]: len(EXPECTED), runs[-1]: len(EXPECTED)}
    assert suspects == set(runs[-2:])


def planted_blobs(seed, n=300, flips=15):
    from sklearn.datasets import make_blobs

    X, truth = make_blobs(n_samples=n, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=1.0, random_state=seed)
    names = np.array(["A", "B", "C"])
    y = names[truth].copy()
    flipped = np.random.default_rng(seed).choice(n, flips, replace=False)
    for i in flipped:
        y[i] = names[(truth[i] + 1) % 3]
    return X, y, names[truth], set(flipped.tolist())


def test_confident_learning_finds_planted_flips():
    from sklearn.linear_model import LogisticRegression

    for seed in range(3):
        X, y, truth, flipped = planted_blobs(seed)
        proba, classes = out_of_fold_proba(LogisticRegression(max_iter=1000), X, y)
        assert classes == ["A", "B", "C"] and proba.shape == (300, 3)
        suspects, thresholds = find_suspects(proba, classes, y)
        found = {s.index for s in suspects}
        # confident learning is built for precision: measured 12-13 of 15 found, no false alarm
        assert len(found & flipped) >= 12, f"seed {seed}: found {len(found & flipped)} of 15 flips"
        assert len(found - flipped) <= 1, f"seed {seed}: {len(found - flipped)} false alarms"
        for s in suspects:
            if s.index in flipped:
                assert s.suggested == truth[s.index] and s.given == y[s.index]
            assert 0 < s.score <= 1 and s.p_suggested > s.p_given
        assert [s.score for s in suspects] == sorted((s.score for s in suspects), reverse=True)
        assert all(0 < t < 1 for t in thresholds.values())


def test_rare_classes_are_not_judged():
    proba = np.array([[0.9, 0.1]] * 6 + [[0.9, 0.1]])
    y = ["A"] * 6 + ["B"]  # one B: its threshold cannot be estimated
    suspects, thresholds = find_suspects(proba, ["A", "B"], y)
    assert suspects == [] and thresholds["B"] is None


TOPICS = {  # three of the default LABELS, each with its own vocabulary
    "Advocacy": "wheat harvest grain farmers crop tonnes corn export",
    "Others": "bank interest rate central money market dollar reserve",
    "Personal Stories": "oil crude barrel opec refinery pipeline petroleum gas",
}
LABEL_SET = ["Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others"]


def test_update_quality_flags_planted_flips_in_text(db_url, engine_for):
    """Posts about three topics, six labels flipped to the next topic. The orchestrator's own
    pieces (training data, lr model, ActiveFeatures head, stratified 3-fold cross_validate) and
    the two hook lines: the run flags the flips."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from smartlabel.models import make_model, split_pipeline
    from smartlabel.training import ActiveFeatures
    from smartlabel.store import items as store_items, labels as store_labels

    engine = engine_for(db_url)
    rng = np.random.default_rng(0)
    names = sorted(TOPICS)
    truth = [names[k % 3] for k in range(90)]
    texts = [" ".join(rng.choice(TOPICS[t].split(), size=8)) + f" story {k}" for k, t in enumerate(truth)]
    ids = seed_items(engine, 90)
    with engine.begin() as conn:
        for i, t in zip(ids, texts):
            conn.execute(text("UPDATE items SET title = '', clean_selftext = :t WHERE id = :i"), {"t": t, "i": i})
    given = list(truth)
    planted = {3, 10, 17, 44, 61, 80}
    for k in planted:
        given[k] = names[(names.index(truth[k]) + 1) % 3]
    insert_labels(engine, [(ids[k], "ann", given[k]) for k in range(90)], reason="priority")
    # post 0 was also labelled by bob, agreeing with ann: two unanimous labellers are not second-guessed
    insert_labels(engine, [(ids[0], "bob", given[0])], reason="audit")

    train_ids, y, _audit, _dropped = store_labels.training_set(engine, LABEL_SET)
    vectorizer, clf = split_pipeline(make_model("lr", labels=LABEL_SET))
    X = vectorizer.fit_transform(list(store_items.texts(engine, train_ids)))
    head = ActiveFeatures(clf)
    classes = np.unique(y)
    res = cross_validate(clone(head), X, y, cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
                         scoring="accuracy", return_estimator=True, return_indices=True)
    # the orchestrator's hook lines
    proba = fold_proba(res["estimator"], res["indices"]["test"], X, classes)
    k0 = list(train_ids).index(ids[0])
    proba[k0] = [0.0, 0.02, 0.98]  # the model "contradicts" post 0 (labelled A) with confidence
    run = new_run(engine)
    report = update_quality(engine, run, proba, classes, train_ids, y)

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT item_id, kind, given_label, suggested_label, score FROM suspect_labels "
                                 "WHERE run_id = :r ORDER BY score DESC"), {"r": run}).all()
    flagged = {r.item_id: r for r in rows}
    found = [k for k in planted if ids[k] in flagged]
    assert len(found) >= 5, f"found {len(found)} of 6 planted flips"
    assert len(flagged) == len(found), "no correctly labelled post is flagged"
    assert ids[0] not in flagged
    for k in found:
        r = flagged[ids[k]]
        assert (r.kind, r.given_label, r.suggested_label) == ("model", given[k], truth[k])
        assert 0 < r.score <= 1
    assert report.n_suspects == len(rows) and report.n_checked == 89
    quality = item_quality(engine)
    assert all(quality[ids[k]]["suspect"] and quality[ids[k]]["suggested_label"] == truth[k] for k in found)
    assert not any(quality[ids[k]]["suspect"] for k in range(90) if k not in planted)


def test_bad_inputs_raise_typed_errors(sqlite_url, engine_for):
    engine = engine_for(sqlite_url)
    with pytest.raises(QualityInputError, match="shape"):
        find_suspects(np.ones((3, 2)) / 2, ["A", "B"], ["A", "B"])
    with pytest.raises(QualityInputError, match="not among the model's classes"):
        find_suspects(np.ones((2, 2)) / 2, ["A", "B"], ["A", "Z"])
    with pytest.raises(QualityInputError, match="NaN"):
        find_suspects(np.array([[np.nan, 1.0]]), ["A", "B"], ["A"])
    with pytest.raises(QualityInputError, match="needs classes"):
        update_quality(engine, 1, np.ones((1, 2)) / 2, ["A", "B"])
    with pytest.raises(QualityInputError, match="item ids"):
        update_quality(engine, 1, np.ones((2, 2)) / 2, ["A", "B"], [1], ["A", "B"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM quality_runs")).scalar() == 0


def test_fold_proba_equals_cross_val_predict_and_fills_unseen_classes():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_validate

    X, y, _, _ = planted_blobs(1, n=90, flips=0)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    res = cross_validate(LogisticRegression(max_iter=500), X, y, cv=cv, return_estimator=True, return_indices=True)
    got = fold_proba(res["estimator"], res["indices"]["test"], X, ["A", "B", "C"])
    want = cross_val_predict(LogisticRegression(max_iter=500), X, y, cv=cv, method="predict_proba")
    assert got == pytest.approx(want)

    class OnlyAB:  # a fold model that never saw class C
        classes_ = np.array(["A", "B"])

        def predict_proba(self, rows):
            return np.tile([0.25, 0.75], (len(rows), 1))

    out = fold_proba([OnlyAB()], [np.array([1, 0])], np.zeros((2, 2)), ["A", "B", "C"])
    assert out.tolist() == [[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]]


def test_item_quality_for_a_batch_of_ids(sqlite_url, engine_for):
    engine = engine_for(sqlite_url)
    ids = dict(zip(FIXTURE, seed_items(engine, len(FIXTURE))))
    insert_labels(engine, fixture_rows(ids))
    update_quality(engine, new_run(engine))
    everything = item_quality(engine)
    batch = [ids[2], ids[3], ids[4]]
    assert item_quality(engine, batch) == {i: everything[i] for i in batch}
    assert item_quality(engine, []) == {}
