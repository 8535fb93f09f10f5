"""smartlabel.rowspace fits the same logistic regression as scikit-learn's lbfgs, faster,
for the shapes active learning has (few rows, many columns); the Learner uses it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from smartlabel import rowspace
from smartlabel.models import text_vectorizer
from smartlabel.training import ActiveFeatures

from text_corpus import make_texts


@pytest.fixture(scope="module")
def pool():
    texts, labels = make_texts(120, seed=5)
    return text_vectorizer().fit_transform(texts), np.array(labels)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_same_model_as_scikit_learn(pool, n_classes, class_weight):
    X, y = pool
    keep = np.flatnonzero(np.isin(y, sorted(set(y))[:n_classes]))
    if class_weight:  # make the classes unequal, so the weights matter
        keep = np.concatenate([keep[y[keep] == y[keep][0]], keep[y[keep] != y[keep][0]][:40]])
    Xs, ys = X[keep[:150]], y[keep[:150]]
    ref = LogisticRegression(C=10.0, max_iter=10_000, tol=1e-10, class_weight=class_weight).fit(Xs, ys)
    est = LogisticRegression(C=10.0, max_iter=10_000, class_weight=class_weight)
    assert rowspace.applies(est, Xs)
    ours = rowspace.fit(est, Xs, ys)
    assert list(ours.classes_) == list(ref.classes_)
    assert ours.coef_.shape == ref.coef_.shape
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(X)).max() < 1e-3
    assert (ours.predict(X) == ref.predict(X)).mean() > 0.99


def test_other_estimators_and_shapes_are_left_to_scikit_learn(pool):
    X, y = pool
    assert not rowspace.applies(LogisticRegression(solver="liblinear"), X[:50])
    assert not rowspace.applies(LogisticRegression(fit_intercept=False), X[:50])
    tall = X[:, :20]  # more rows than columns: no gain in the row space
    assert not rowspace.applies(LogisticRegression(), tall)


def test_one_class_is_refused_clearly(pool):
    X, y = pool
    rows = np.flatnonzero(y == y[0])[:5]
    with pytest.raises(ValueError, match="at least 2 classes"):
        rowspace.fit(LogisticRegression(), X[rows], y[rows])


def test_the_learners_head_uses_it(pool, monkeypatch):
    X, y = pool
    calls = []
    real = rowspace.fit
    monkeypatch.setattr(rowspace, "fit", lambda est, X, y: calls.append(X.shape) or real(est, X, y))
    head = ActiveFeatures(LogisticRegression(C=10.0, max_iter=2000)).fit(X[:100], y[:100])
    fitted = head.estimator_
    assert calls == [(100, len(head.columns_))]  # the real row-space fit ran, on the cut columns
    assert type(fitted) is LogisticRegression and fitted.coef_.shape[1] == len(head.columns_)
    ref = ActiveFeatures(LogisticRegression(C=10.0, max_iter=10_000, tol=1e-10))
    ref.estimator_ = LogisticRegression(C=10.0, max_iter=10_000, tol=1e-10).fit(X[:100][:, head.columns_], y[:100])
    ref.columns_ = head.columns_
    assert np.abs(head.predict_proba(X) - ref.predict_proba(X)).max() < 1e-3
