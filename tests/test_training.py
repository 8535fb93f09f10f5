"""The Learner: feature cache, fresh models per fit, evaluation, batched scoring, ActiveFeatures."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score

from smartlabel import acquisition
from smartlabel.models import MODELS, make_model, split_pipeline, text_vectorizer
from smartlabel.training import ActiveFeatures, Learner, Scored, cache_path, evaluate

from text_corpus import LABELS, VOCAB, make_texts

CLASSES = sorted(VOCAB)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    X, y = make_texts(8, seed=1)
    Xt, yt = make_texts(15, seed=2)
    return X, y, Xt, np.array(yt)


class Pool:
    """Posts with ids 1..n; records which texts were read."""

    def __init__(self, texts):
        self.texts = dict(enumerate(texts, start=1))
        self.fetched = []

    def fetch(self, ids):
        self.fetched.append(list(ids))
        return (self.texts[i] for i in ids)

    def ids_hashes(self):
        ids = sorted(self.texts)
        return ids, [str(hash(self.texts[i])) for i in ids]


# --- feature cache -------------------------------------------------------------------


def test_feature_cache_transforms_only_new_posts_and_persists(tmp_path):
    texts, _ = make_texts(10, seed=11)
    pool = Pool(texts[:20])
    cache = Learner("lr", labels=CLASSES, models_dir=tmp_path).cache
    assert cache.path == tmp_path / ".cache" / f"features-{cache.key}.pkl"  # where existing caches live
    stats = cache.sync(*pool.ids_hashes(), pool.fetch)
    assert stats.refitted and stats.total == 20 and pool.fetched == [list(range(1, 21))]
    first = cache.rows([3, 1]).toarray()
    # nothing new: nothing fetched
    assert not cache.sync(*pool.ids_hashes(), pool.fetch).refitted and len(pool.fetched) == 1
    # 5 new posts, one deleted, one edited: only the 6 changed texts are read
    for k in range(21, 26):
        pool.texts[k] = texts[k - 1]
    del pool.texts[2]
    pool.texts[4] = texts[29]
    stats = cache.sync(*pool.ids_hashes(), pool.fetch)
    assert (stats.refitted, stats.added, stats.removed, stats.total) == (False, 6, 2, 24)
    assert str(stats) == "features: +6 new, -2 gone, 24 cached"
    assert pool.fetched[-1] == [4, 21, 22, 23, 24, 25]
    np.testing.assert_allclose(cache.rows([3, 1]).toarray(), first)
    direct = cache.vectorizer.transform([pool.texts[i] for i in [25, 4, 1]]).toarray()
    np.testing.assert_allclose(cache.rows([25, 4, 1]).toarray(), direct, rtol=1e-6)
    with pytest.raises(KeyError):
        cache.rows([2])
    # a new process loads the cache from disk and reads no text; svm has the same vectoriser
    again = Learner("svm", labels=CLASSES, models_dir=tmp_path).cache
    assert again.key == cache.key and again.path.exists()
    n = len(pool.fetched)
    assert not again.sync(*pool.ids_hashes(), pool.fetch).refitted and len(pool.fetched) == n
    # keras has its own vectoriser, so its own cache file
    assert Learner("keras", labels=CLASSES, models_dir=tmp_path).cache.key != cache.key
    # the pool doubles: the vectoriser is refitted on everything
    for k in range(26, 60):
        pool.texts[k] = f"brand new words number {k} zebra giraffe"
    assert again.sync(*pool.ids_hashes(), pool.fetch).refitted
    assert "zebra" in again.vectorizer.vocabulary_


def test_a_cache_file_in_the_old_format_still_loads(tmp_path):
    """A cache written as the orchestrator always wrote it (a plain dict of sklearn/numpy objects)."""
    texts, _ = make_texts(5, seed=3)
    vec = split_pipeline(make_model("lr", labels=CLASSES))[0]
    X = vec.fit_transform(texts).astype(np.float32).tocsr()
    ids = np.arange(1, len(texts) + 1, dtype=np.int64)
    hashes = np.array([f"h{i}" for i in ids], dtype=object)
    path = cache_path(tmp_path, vec)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"key": path.stem.split("-", 1)[1], "vectorizer": vec, "ids": ids,
                                   "hashes": hashes, "X": X, "n_fit": len(ids)}))
    learner = Learner("lr", labels=CLASSES, models_dir=tmp_path)
    stats = learner.sync(ids, hashes, lambda some: pytest.fail("no text should be read"))
    assert str(stats) == f"features: {len(ids)} cached, nothing new"
    np.testing.assert_allclose(learner.features([2, 1]).toarray(), X[[1, 0]].toarray())


def test_an_unreadable_cache_is_rebuilt(tmp_path, caplog):
    texts, _ = make_texts(3, seed=4)
    pool = Pool(texts)
    learner = Learner("lr", labels=CLASSES, models_dir=tmp_path)
    learner.cache.path.parent.mkdir(parents=True)
    learner.cache.path.write_bytes(b"not a pickle")
    again = Learner("lr", labels=CLASSES, models_dir=tmp_path)
    assert "ignoring unreadable feature cache" in caplog.text
    assert again.sync(*pool.ids_hashes(), pool.fetch).refitted
    assert pickle.loads(again.cache.path.read_bytes())["n_fit"] == len(texts)


def test_cache_reuse_across_runs_gives_the_same_models(tmp_path, data):
    """Run 2 in a new process reads the features run 1 left on disk and trains the same model."""
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    train_ids = list(range(1, len(X) + 1))
    first = Learner("lr", labels=CLASSES, models_dir=tmp_path)
    first.sync(*pool.ids_hashes(), pool.fetch)
    model_1 = first.fit(first.features(train_ids), y)
    second = Learner("lr", labels=CLASSES, models_dir=tmp_path)
    assert str(second.sync(*pool.ids_hashes(), pool.fetch)) == f"features: {len(pool.texts)} cached, nothing new"
    assert len(pool.fetched) == 1  # only the first run read text
    model_2 = second.fit(second.features(train_ids), y)
    all_ids = sorted(pool.texts)
    np.testing.assert_allclose(model_2.predict_proba(second.features(all_ids)),
                               model_1.predict_proba(first.features(all_ids)), rtol=1e-6)


# --- fit and the model file --------------------------------------------------------------


def test_every_fit_starts_from_a_fresh_model(data):
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("lr", labels=CLASSES)
    learner.sync(*pool.ids_hashes(), pool.fetch)
    ids = list(range(1, len(X) + 1))
    a = learner.fit(learner.features(ids), y)
    before = a.predict_proba(learner.features(ids))
    b = learner.fit(learner.features(ids[:12]), y[:12])
    assert a is not b and a.estimator_ is not b.estimator_
    assert isinstance(a, ActiveFeatures)
    np.testing.assert_allclose(a.predict_proba(learner.features(ids)), before)  # the second fit left it alone
    assert learner.head() is not learner.head()


def test_head_trained_on_cached_rows_gives_a_text_model(data):
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("lr", labels=CLASSES)
    learner.sync(*pool.ids_hashes(), pool.fetch)
    head = learner.fit(learner.features(range(1, len(X) + 1)), y)
    full = learner.text_model(head)
    assert [name for name, _ in full.steps] == ["tfidf", "clf"] and full.named_steps["clf"] is head
    test_ids = list(range(len(X) + 1, len(X) + len(Xt) + 1))
    np.testing.assert_allclose(full.predict_proba(Xt), head.predict_proba(learner.features(test_ids)), rtol=1e-6)
    assert (full.predict(Xt) == yt).mean() >= 0.9
    # the model file pickles on its own, text in
    again = pickle.loads(pickle.dumps(full))
    assert list(again.predict(Xt)) == list(full.predict(Xt))


def test_active_features_gives_the_same_linear_model_on_fewer_columns(data):
    X, y, Xt, yt = data
    vec = text_vectorizer().fit(X + Xt + ["zebra giraffe words nobody labelled"] * 3)
    Xtr, Xte = vec.transform(X), vec.transform(Xt)
    head = make_model("lr", labels=CLASSES).named_steps["clf"]
    # the reference converged tightly: the head's own fit (rowspace, on fewer columns) stops
    # at its own tolerance, scikit-learn's default tol=1e-4 stops earlier still
    full = clone(head).set_params(tol=1e-10, max_iter=20_000).fit(Xtr, y)
    small = ActiveFeatures(head).fit(Xtr, y)
    assert len(small.columns_) < Xtr.shape[1] and list(small.classes_) == CLASSES
    np.testing.assert_allclose(small.predict_proba(Xte), full.predict_proba(Xte), atol=1e-4)
    assert list(small.predict(Xte)) == list(full.predict(Xte))
    scores = cross_val_score(ActiveFeatures(head), Xtr, y, scoring="accuracy", cv=3)
    assert scores.mean() >= 0.8
    with pytest.raises(ValueError, match="no words the vectoriser knows"):
        ActiveFeatures(head).fit(Xtr[:, :0].tocsr(), y)


def test_old_model_files_that_name_models_active_features_still_load(tmp_path, data, monkeypatch):
    """Model files written before ActiveFeatures moved to smartlabel.training load with plain pickle."""
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("lr", labels=CLASSES)
    learner.sync(*pool.ids_hashes(), pool.fetch)
    full = learner.text_model(learner.fit(learner.features(range(1, len(X) + 1)), y))
    monkeypatch.setattr(ActiveFeatures, "__module__", "smartlabel.models")
    old = pickle.dumps(full)
    monkeypatch.undo()
    assert b"smartlabel.models" in old and b"smartlabel.training" not in old
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    code = ("import pickle, sys; m = pickle.load(open(sys.argv[1], 'rb')); "
            "print(type(m.named_steps['clf']).__module__, *m.predict(sys.argv[2:]))")
    out = subprocess.run([sys.executable, "-c", code, str(path), Xt[0], Xt[1]], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().split(maxsplit=1) == ["smartlabel.training", " ".join(full.predict(Xt[:2]))]


def test_a_model_without_a_separable_vectoriser_reads_raw_text(monkeypatch, data):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    def three_steps(*, labels, class_weight, random_state):
        return Pipeline([("counts", CountVectorizer()), ("tfidf", TfidfTransformer()),
                         ("clf", LogisticRegression(C=10.0, random_state=random_state))])

    monkeypatch.setitem(MODELS, "raw", three_steps)
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("raw", labels=CLASSES, batch_size=7)
    assert learner.cache is None and learner.n_features is None
    assert learner.sync(*pool.ids_hashes(), pool.fetch) is None
    train_ids = list(range(1, len(X) + 1))
    assert list(learner.features([2, 1])) == [X[1], X[0]]
    scores = learner.evaluate(learner.features(train_ids), np.array(y, dtype=object), np.zeros(len(y), bool))
    assert scores["cv_folds"] == 3 and scores["cv_accuracy"] >= 0.8
    model = learner.fit(learner.features(train_ids), y)
    assert isinstance(model, Pipeline) and learner.text_model(model) is model
    test_ids = list(range(len(X) + 1, len(X) + len(Xt) + 1))
    scored = learner.score(model, test_ids, "entropy")
    assert (scored.labels == yt).mean() >= 0.9
    np.testing.assert_allclose(scored.priorities, acquisition.entropy(model.predict_proba(Xt)))
    np.testing.assert_allclose(model.predict_proba(learner.transform(Xt[:3])), model.predict_proba(Xt[:3]))


# --- scoring ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["entropy", "margin", "certainty", "random"])
def test_batched_scoring_equals_unbatched(data, strategy):
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("lr", labels=CLASSES, batch_size=7)
    learner.sync(*pool.ids_hashes(), pool.fetch)
    model = learner.fit(learner.features(range(1, len(X) + 1)), y)
    open_ids = np.arange(len(X) + 1, len(X) + len(Xt) + 1)[::-1]  # any order, kept
    seen = []
    batched = learner.score(model, open_ids, strategy, rng=np.random.default_rng(4), on_batch=seen.append)
    assert seen == [7] * 6 + [3] and sum(seen) == len(open_ids)
    whole = Scored.of(model, learner.features(open_ids), strategy, np.random.default_rng(4))
    for field in ("priorities", "confidences", "second_confidences"):
        np.testing.assert_allclose(getattr(batched, field), getattr(whole, field), rtol=1e-12)
    assert list(batched.labels) == list(whole.labels) and list(batched.second_labels) == list(whole.second_labels)
    assert (batched.labels == yt[::-1]).mean() >= 0.9
    if strategy == "random":  # an int seed gives the same numbers as that seed's generator
        np.testing.assert_array_equal(learner.score(model, open_ids, strategy, rng=4).priorities, whole.priorities)
    else:
        proba = model.predict_proba(learner.features(open_ids)).astype(np.float64)
        np.testing.assert_allclose(batched.priorities, acquisition.STRATEGIES[strategy](proba))
        np.testing.assert_allclose(batched.confidences, proba.max(axis=1))
    empty = learner.score(model, [], strategy)
    assert len(empty.priorities) == len(empty.labels) == 0


# --- evaluation --------------------------------------------------------------------------


def test_rare_classes_get_fewer_folds_or_no_cross_validation():
    X, y = make_texts(10, classes=["Advocacy"], seed=1)
    X2, y2 = make_texts(2, classes=["Others"], seed=2)
    X3, y3 = make_texts(1, classes=["Personal Stories"], seed=3)
    texts, labels = X + X2 + X3, np.array(y + y2 + y3, dtype=object)
    vec = text_vectorizer().fit(texts)
    head = make_model("lr", labels=LABELS).named_steps["clf"]
    # classes with fewer than 3 examples: 2-fold, every example predicted out of fold
    scores = evaluate(head, vec.transform(texts), labels, np.zeros(len(labels), bool))
    assert scores["cv_folds"] == 2 and 0 <= scores["cv_accuracy"] <= 1
    assert sorted(scores["per_class"]) == ["Advocacy", "Others", "Personal Stories"]
    assert scores["per_class"]["Personal Stories"]["support"] == 1
    assert scores["oof_proba"].shape == (len(labels), 3) and list(scores["oof_classes"]) == sorted(set(labels))
    # one example in the second-largest class: no split exists
    keep = np.r_[0:10, 10, 12]
    none = evaluate(head, vec.transform([texts[k] for k in keep]), labels[keep], np.zeros(len(keep), bool))
    assert none["cv_folds"] == 0 and none["cv_accuracy"] is None and "no cross-validation" in none["note"]


def test_audit_accuracy_is_out_of_fold_on_random_handouts():
    X_text, y = make_texts(15, seed=5)
    y = np.array(y, dtype=object)
    # flip a few labels so accuracy is not trivially 1
    y[:4] = np.roll(y[:4], 1)
    vec = text_vectorizer().fit(X_text)
    X = vec.transform(X_text)
    head = make_model("lr", labels=LABELS).named_steps["clf"]
    audit = np.zeros(len(y), bool)
    audit[::2] = True  # 23 "random" hand-outs
    scores = evaluate(head, X, y, audit, random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    oof = cross_val_predict(head, X, y, cv=cv)
    assert scores["n_audit"] == 23
    assert scores["audit_accuracy"] == pytest.approx(np.mean(oof[audit] == y[audit]))
    assert scores["cv_accuracy"] == pytest.approx(cross_val_score(head, X, y, scoring="accuracy", cv=cv).mean())
    audit[:] = False
    audit[:19] = True
    assert evaluate(head, X, y, audit)["audit_accuracy"] is None  # fewer than 20


def test_learner_evaluate_uses_the_active_features_head(data):
    X, y, Xt, yt = data
    pool = Pool(X + Xt)
    learner = Learner("lr", labels=CLASSES)
    learner.sync(*pool.ids_hashes(), pool.fetch)
    feats, y = learner.features(range(1, len(X) + 1)), np.array(y, dtype=object)
    mine = learner.evaluate(feats, y, np.zeros(len(y), bool))
    direct = evaluate(ActiveFeatures(split_pipeline(make_model("lr", labels=CLASSES))[1]), feats, y,
                      np.zeros(len(y), bool))
    assert mine["cv_accuracy"] == direct["cv_accuracy"] and mine["per_class"] == direct["per_class"]
    np.testing.assert_allclose(mine["oof_proba"], direct["oof_proba"])
