"""Model registry: text classifiers the orchestrator (and `simulate`) can train.

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
`class_weight="balanced"` weighs classes inversely to their frequency in all three.

Adding a model = one factory `def _name(*, labels, class_weight, random_state)`
returning such a pipeline, plus one entry in `MODELS` (and in the MODEL setting's
allowed values).

Featurisation cache (`FeatureCache`): the orchestrator must not re-vectorise
the whole pool on every run. Design:
- TF-IDF is unsupervised, so the vectoriser may legitimately be fitted on the
  text of the *whole pool* (labelled and unlabelled), once. The cache keeps that
  fitted vectoriser and the sparse feature matrix of every item, keyed by item
  id and the item's `content_hash`.
- `sync(ids, hashes, fetch_texts)` is called at the start of each run with the
  pool's ids and hashes (cheap to read). Rows whose (id, hash) are unchanged
  are reused; only new or changed items have their text fetched and
  transformed with the fitted vectoriser, and are appended; deleted items are
  dropped. So a run costs a transform of the newly imported posts, not the pool.
- The vectoriser is refitted on the whole pool (all rows recomputed) when the
  pool has grown past `refit_growth` (2x) the size it was fitted on, or when
  less than half of the pool it was fitted on is still there (a new database):
  its vocabulary and IDF weights then come from a pool that no longer looks like
  this one. Growth by doubling keeps the total work linear in the pool size.
- The classifier head (the pipeline's `clf` step, cloned, wrapped in
  `ActiveFeatures` so it sees only the columns its training rows use) is trained
  on the cached rows of the labelled items and scores the cached rows of the pool. The
  model file saved for a run is `Pipeline([("tfidf", cached vectoriser),
  ("clf", fitted head)])`: text in, probabilities out, usable on its own.
- The cache lives in memory in the orchestrator process and is saved to
  `MODELS_DIR/.cache/features-<key>.pkl` (atomically) after it changes, so a
  restart does not re-vectorise either. `<key>` hashes the vectoriser's
  parameters: models with the same vectoriser (lr, svm) share one cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight

log = logging.getLogger(__name__)

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


def _class_weight(value: str | None):
    if value in (None, "none", "None", ""):
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


MODELS: dict[str, Callable[..., Pipeline]] = {"lr": _lr, "svm": _svm, "keras": _keras}


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


class ActiveFeatures(ClassifierMixin, BaseEstimator):
    """Train `estimator` only on the feature columns the training rows use.

    The pool-wide vocabulary has 10^5 columns while a few hundred labelled posts
    use a fraction of them. A column that is zero in every training row gets a
    zero weight from an L2-regularised linear model anyway, so dropping it gives
    the same model, far faster (L-BFGS over 10^6 weights took seconds per fit);
    for the Keras network it also keeps never-trained random input weights out
    of its predictions. Used by the orchestrator on cached pool features.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        X = sp.csr_matrix(X)
        self.columns_ = np.unique(X.indices)
        if len(self.columns_) == 0:
            raise ValueError("the labelled posts have no words the vectoriser knows")
        self.estimator_ = clone(self.estimator).fit(X[:, self.columns_], y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def _cut(self, X):
        return sp.csr_matrix(X)[:, self.columns_]

    def predict_proba(self, X):
        return self.estimator_.predict_proba(self._cut(X))

    def predict(self, X):
        return self.estimator_.predict(self._cut(X))


# --- featurisation cache ------------------------------------------------------------------


def vectorizer_key(vectorizer) -> str:
    params = vectorizer.get_params(deep=False)
    text = json.dumps({k: repr(v) for k, v in sorted(params.items())}, sort_keys=True)
    return hashlib.sha256(f"{type(vectorizer).__name__}:{text}".encode()).hexdigest()[:16]


@dataclass
class SyncStats:
    refitted: bool = False
    added: int = 0
    removed: int = 0
    total: int = 0

    def __str__(self) -> str:
        if self.refitted:
            return f"features: vectoriser fitted on {self.total} posts"
        if self.added or self.removed:
            return f"features: +{self.added} new, -{self.removed} gone, {self.total} cached"
        return f"features: {self.total} cached, nothing new"


class FeatureCache:
    """TF-IDF features of the whole pool, kept across runs (see the module docstring)."""

    def __init__(self, template, path: str | os.PathLike | None = None, refit_growth: float = 2.0):
        self.template = template
        self.key = vectorizer_key(template)
        self.path = Path(path) if path else None
        self.refit_growth = float(refit_growth)
        self.vectorizer = None
        self.ids = np.zeros(0, dtype=np.int64)
        self.hashes = np.zeros(0, dtype=object)
        self.X = sp.csr_matrix((0, 0), dtype=np.float32)
        self.n_fit = 0
        if self.path is not None:
            self._load()

    @classmethod
    def for_model(cls, model, directory: str | os.PathLike | None) -> "FeatureCache | None":
        parts = split_pipeline(model)
        if parts is None:
            return None
        vec = parts[0]
        path = None
        if directory is not None:
            path = Path(directory) / ".cache" / f"features-{vectorizer_key(vec)}.pkl"
        return cls(vec, path)

    # -- persistence --

    def _load(self) -> None:
        if not self.path or not self.path.exists():
            return
        try:
            with open(self.path, "rb") as fh:
                data = pickle.load(fh)
            if data.get("key") != self.key:
                return
            self.vectorizer, self.ids, self.hashes = data["vectorizer"], data["ids"], data["hashes"]
            self.X, self.n_fit = data["X"], int(data["n_fit"])
        except Exception as exc:  # a corrupt or foreign cache is just rebuilt
            log.warning("ignoring unreadable feature cache %s (%s)", self.path, exc)

    def save(self) -> None:
        if self.path is None or self.vectorizer is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".features-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump({"key": self.key, "vectorizer": self.vectorizer, "ids": self.ids,
                             "hashes": self.hashes, "X": self.X, "n_fit": self.n_fit}, fh,
                            protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- keeping it in step with the pool --

    def sync(self, ids: Sequence[int], hashes: Sequence[str],
             fetch_texts: Callable[[list[int]], Iterable[str]]) -> SyncStats:
        """Bring the cache up to date with the pool `ids` (with their content hashes).

        `fetch_texts(ids)` yields the model-input text of those ids, in that order.
        """
        ids = np.asarray(ids, dtype=np.int64)
        hashes = np.asarray(list(hashes), dtype=object)
        order = np.argsort(ids, kind="stable")
        ids, hashes = ids[order], hashes[order]
        if len(ids) == 0:
            from smartlabel.errors import SmartlabelError

            raise SmartlabelError("there are no posts: import some first (smartlabel import FILE)")
        if (self.vectorizer is not None and len(ids) == len(self.ids)
                and np.array_equal(ids, self.ids) and np.array_equal(hashes, self.hashes)):
            return SyncStats(total=len(ids))
        # which current rows are cached unchanged?
        pos = np.searchsorted(self.ids, ids) if len(self.ids) else np.zeros(len(ids), dtype=np.int64)
        pos_c = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        known = np.zeros(len(ids), dtype=bool)
        if len(self.ids):
            known = (self.ids[pos_c] == ids) & (self.hashes[pos_c] == hashes)
        n_known = int(known.sum())
        if (self.vectorizer is None or len(ids) > self.refit_growth * self.n_fit
                or n_known < 0.5 * self.n_fit):
            return self._refit(ids, hashes, fetch_texts)
        new_ids = ids[~known]
        removed = len(self.ids) - n_known
        if len(new_ids):
            X_new = self.vectorizer.transform(fetch_texts(new_ids.tolist())).astype(np.float32)
        else:
            X_new = sp.csr_matrix((0, self.X.shape[1]), dtype=np.float32)
        X = sp.vstack([self.X[pos_c[known]], X_new], format="csr")
        # rows are [known..., new...]; put them back in id order
        stacked_ids = np.concatenate([ids[known], new_ids])
        perm = np.argsort(stacked_ids, kind="stable")
        self.X = X[perm]
        self.ids, self.hashes = ids, hashes
        self.save()
        return SyncStats(added=len(new_ids), removed=removed, total=len(ids))

    def _refit(self, ids, hashes, fetch_texts) -> SyncStats:
        vec = clone(self.template)
        try:
            X = vec.fit_transform(fetch_texts(ids.tolist()))
        except ValueError as exc:
            if "empty vocabulary" in str(exc):
                from smartlabel.errors import SmartlabelError

                raise SmartlabelError(
                    "the posts have no words to learn from (titles and texts are empty or one-letter); "
                    "check the imported file"
                ) from None
            raise
        self.vectorizer, self.X = vec, sp.csr_matrix(X, dtype=np.float32)
        self.ids, self.hashes, self.n_fit = ids, hashes, len(ids)
        self.save()
        return SyncStats(refitted=True, total=len(ids))

    def rows(self, item_ids: Sequence[int]) -> sp.csr_matrix:
        """Feature rows of these items, in the given order."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if len(item_ids) and len(self.ids) == 0:
            raise KeyError(f"posts {item_ids[:5].tolist()} are not in the feature cache; call sync() first")
        pos = np.clip(np.searchsorted(self.ids, item_ids), 0, max(len(self.ids) - 1, 0))
        if len(item_ids) and not np.array_equal(self.ids[pos], item_ids):
            missing = item_ids[self.ids[pos] != item_ids][:5].tolist()
            raise KeyError(f"posts {missing} are not in the feature cache; call sync() first")
        return self.X[pos]
