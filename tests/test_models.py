"""Model registry: the three models on small real data, errors, adding a model, light imports."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from smartlabel.errors import ConfigError
from smartlabel.models import MODELS, CalibratedLinearSVC, make_model, split_pipeline, text_vectorizer

from text_corpus import VOCAB, make_texts

CLASSES = sorted(VOCAB)


@pytest.fixture(scope="module")
def data():
    X, y = make_texts(8, seed=1)
    Xt, yt = make_texts(15, seed=2)
    return X, y, Xt, np.array(yt)


def check_fitted(model, Xt, yt):
    proba = model.predict_proba(Xt)
    assert list(model.classes_) == CLASSES
    assert proba.shape == (len(Xt), len(CLASSES))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    pred = model.predict(Xt)
    # columns follow classes_: the argmax column names the predicted class
    assert list(pred) == list(model.classes_[proba.argmax(axis=1)])
    assert set(pred) == set(CLASSES), "every class must be predicted"
    assert (pred == yt).mean() >= 0.9
    return proba


@pytest.mark.parametrize("kind", ["lr", "svm"])
def test_sklearn_models_learn_every_class(kind, data):
    X, y, Xt, yt = data
    model = make_model(kind, labels=CLASSES)
    check_fitted(model.fit(X, y), Xt, yt)
    scores = cross_val_score(make_model(kind, labels=CLASSES), X, y, scoring="accuracy", cv=3)
    assert scores.shape == (3,) and scores.mean() >= 0.8


def test_keras_network_trains_predicts_every_class_and_pickles(data):
    X, y, Xt, yt = data
    model = make_model("keras", labels=CLASSES, random_state=3)
    head = model.named_steps["clf"]
    proba = check_fitted(model.fit(X, y), Xt, yt)
    # a real Keras network: hidden layer and a softmax over the 3 classes present
    net = head.model_
    assert type(net).__module__.startswith("keras")
    assert [layer.name for layer in net.layers if layer.name in ("hidden", "classes")] == ["hidden", "classes"]
    assert net.get_layer("classes").units == 3
    # same seed, same data: same network
    again = make_model("keras", labels=CLASSES, random_state=3).fit(X, y)
    np.testing.assert_allclose(again.predict_proba(Xt), proba, atol=1e-5)
    # a model file round trip keeps the network
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(Xt), proba, atol=1e-6)
    # scikit-learn's cross-validation clones and refits it
    quick = make_model("keras", labels=CLASSES).set_params(clf__min_steps=100)
    scores = cross_val_score(quick, X, y, scoring="accuracy", cv=3)
    assert scores.mean() >= 0.8


def test_keras_two_classes_and_balanced_weights(data):
    # 12 Advocacy vs 3 Others: balanced weights must raise the minority's probability
    X, y = make_texts(12, classes=["Advocacy"], seed=4)
    X2, y2 = make_texts(3, classes=["Others"], seed=5)
    neutral = ["the and of to in it is", "people with this that for on"]
    plain = make_model("keras", labels=CLASSES).fit(X + X2, y + y2)
    balanced = make_model("keras", labels=CLASSES, class_weight="balanced").fit(X + X2, y + y2)
    assert list(plain.classes_) == ["Advocacy", "Others"]
    assert plain.predict_proba(neutral).shape == (2, 2)
    assert (balanced.predict_proba(neutral)[:, 1] > plain.predict_proba(neutral)[:, 1]).all()


@pytest.mark.parametrize("kind", ["lr", "svm"])
def test_balanced_class_weight_is_honoured(kind):
    X, y = make_texts(20, classes=["Advocacy"], seed=4)
    X2, y2 = make_texts(2, classes=["Others"], seed=5)
    neutral = ["the and of to in it is", "people with this that for on"]
    plain = make_model(kind, labels=CLASSES).fit(X + X2, y + y2)
    balanced = make_model(kind, labels=CLASSES, class_weight="balanced").fit(X + X2, y + y2)
    assert balanced.named_steps["clf"].class_weight == "balanced"
    assert plain.named_steps["clf"].class_weight is None
    assert (balanced.predict_proba(neutral)[:, 1] > plain.predict_proba(neutral)[:, 1]).all()


def test_svm_with_a_single_example_class_does_not_crash(data):
    X, y = make_texts(6, classes=["Advocacy", "Others"], seed=7)
    X1, y1 = make_texts(1, classes=["Personal Stories"], seed=8)
    model = make_model("svm", labels=CLASSES).fit(X + X1, y + y1)
    head = model.named_steps["clf"]
    assert head.calibrated_ is False  # no calibration split exists: softmax over margins
    proba = model.predict_proba(X1 + X[:3])
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.predict(X1)[0] == "Personal Stories"
    # with two examples per class it calibrates (2-fold)
    X2, y2 = make_texts(2, seed=9)
    assert make_model("svm", labels=CLASSES).fit(X2, y2).named_steps["clf"].calibrated_ is True


def test_registry_and_errors():
    assert set(MODELS) == {"lr", "svm", "keras", "embed", "minilm"}
    with pytest.raises(ConfigError, match="unknown model 'bert'"):
        make_model("bert", labels=CLASSES)
    with pytest.raises(ConfigError, match="class_weight"):
        make_model("lr", labels=CLASSES, class_weight="heavy")
    a = make_model("lr", labels=CLASSES)
    assert a is not make_model("lr", labels=CLASSES)  # fresh every time
    assert clone(a).get_params()["clf__C"] == a.get_params()["clf__C"]
    with pytest.raises(ValueError, match="at least two classes"):
        CalibratedLinearSVC().fit(np.eye(3), ["A", "A", "A"])


def test_adding_a_model_is_one_factory(monkeypatch, data):
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import Pipeline

    def nb(*, labels, class_weight, random_state):
        return Pipeline([("tfidf", text_vectorizer()), ("clf", ComplementNB())])

    monkeypatch.setitem(MODELS, "nb", nb)
    X, y, Xt, yt = data
    check_fitted(make_model("nb", labels=CLASSES).fit(X, y), Xt, yt)


def test_the_model_setting_allows_exactly_the_registered_models():
    import typing

    from smartlabel.settings import Settings

    assert set(typing.get_args(Settings.model_fields["model"].annotation)) == set(MODELS)


def test_split_pipeline_finds_the_vectoriser_only_in_two_step_text_pipelines():
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    for kind in MODELS:
        vec, head = split_pipeline(make_model(kind, labels=CLASSES))
        tfidf = getattr(vec, "tfidf", vec)  # embed / minilm: TF-IDF inside EncoderFeatures
        assert hasattr(tfidf, "vocabulary") and hasattr(vec, "build_analyzer") and hasattr(head, "predict_proba")
    assert split_pipeline(LogisticRegression()) is None
    assert split_pipeline(Pipeline([("tfidf", TfidfTransformer()), ("clf", LogisticRegression())])) is None


def test_importing_models_does_not_import_tensorflow_or_superintendent():
    code = ("import sys; import smartlabel.models as m, smartlabel.acquisition as a, smartlabel.training; "
            "m.make_model('keras', labels=['a','b']); m.make_model('lr', labels=['a','b']).fit(['aa bb','cc dd'], ['a','b']); "
            "a.priorities('entropy', [[0.2, 0.8]]); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'superintendent' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False", "False"]
