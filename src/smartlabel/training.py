"""Training: one `Learner` for the orchestrator, `smartlabel simulate` and the benchmarks.

    learner = Learner("lr", labels=LABELS, models_dir="models")
    learner.sync(pool_ids, content_hashes, fetch_texts)   # features of the pool, cached
    X = learner.features(labelled_ids)
    scores = learner.evaluate(X, y, audit_mask)           # cross-validated accuracy, macro-F1, ...
    fitted = learner.fit(X, y)
    scored = learner.score(fitted, open_ids, "entropy", rng)   # priorities and the two best labels
    model_file = learner.text_model(fitted)               # Pipeline([("tfidf", ...), ("clf", ...)])
    modelstore.save(model_file, "models", score, unchanged=learner.shared_part())

A Learner owns:

- **the model factory**: every fit starts from a fresh estimator of
  `models.make_model(kind, ...)` (classifiers come from factories and are cloned,
  never reused across runs).
- **the features** (`FeatureCache`): for a model that is a text vectoriser +
  classifier `Pipeline`, the vectoriser is fitted on the pool and every post's
  features are kept. A model without a separable vectoriser reads raw text
  (`fetch_texts` each time).
- **fit**: the pipeline's classifier, wrapped in `ActiveFeatures` (it sees only
  the feature columns its training rows use), trained on cached rows.
- **evaluation** (`evaluate`): stratified `cross_validate(model, X, y,
  scoring="accuracy")` (what the article's `cross_val_score(..., cv=3)` computes,
  keeping the fold models), cv = min(3, examples of the second-largest class) so
  that rare classes do not crash it (with fewer than 2 examples in two classes
  there is no CV). From the out-of-fold predictions: macro-F1, per-class
  precision/recall/F1, the out-of-fold probabilities (for the suspect-label pass)
  and the accuracy on the audit sample (posts handed out at random) once it holds
  AUDIT_MIN posts: an unbiased estimate, since neither the model nor the
  acquisition chose those posts.
- **scoring** (`score`): `predict_proba` over batches of `batch_size` posts, then
  priorities from the acquisition registry (`smartlabel.acquisition`, higher =
  handed out first) and the two best labels with their probabilities.

Feature cache (`FeatureCache`): a run must not re-vectorise the whole pool.

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
- The model file saved for a run is `Pipeline([("tfidf", cached vectoriser),
  ("clf", fitted head)])`: text in, probabilities out, usable on its own.
- The cache lives in memory (in the Learner) and, with a `models_dir`, is saved to
  `MODELS_DIR/.cache/features-<key>.pkl` (atomically) after it changes, so a
  restart does not re-vectorise either. `<key>` hashes the vectoriser's
  parameters: models with the same vectoriser (lr, svm) share one cache.
- `embed` and `minilm` have a vectoriser that appends a sentence embedding
  (`models.EncoderFeatures`); the Learner points it at
  `MODELS_DIR/.cache/embeddings/`, where `smartlabel.encoders.EmbeddingStore`
  keeps every post's vector keyed by its text: a refit of the vocabulary, a new
  import or a restart embeds only texts never embedded before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from smartlabel import acquisition, modelstore
from smartlabel.errors import SmartlabelError
from smartlabel.models import join_pipeline, make_model, split_pipeline

log = logging.getLogger(__name__)

AUDIT_MIN = 20  # random hand-outs needed before the audit accuracy is reported
SCORE_BATCH_SIZE = 20_000  # the SCORE_BATCH_SIZE setting's default

FetchTexts = Callable[[list[int]], Iterable[str]]


# --- the learner ----------------------------------------------------------------------


@dataclass
class Scored:
    """Scores of posts, in the order they were given."""

    priorities: np.ndarray  # higher = handed out first
    labels: np.ndarray  # the best class
    confidences: np.ndarray  # its probability
    second_labels: np.ndarray  # None with a single class
    second_confidences: np.ndarray

    @classmethod
    def of(cls, model, X, strategy: str, rng: np.random.Generator | int | None = None) -> "Scored":
        """Score the feature rows (or texts) X with a fitted model."""
        proba = np.asarray(model.predict_proba(X))
        label1, p1, label2, p2 = acquisition.top_two(proba, model.classes_)
        return cls(acquisition.priorities(strategy, proba, rng), label1, p1, label2, p2)

    @classmethod
    def concat(cls, parts: Sequence["Scored"]) -> "Scored":
        if not parts:
            empty, none = np.zeros(0), np.zeros(0, dtype=object)
            return cls(empty, none, empty, none, empty)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


class Learner:
    """One model kind trained again and again on one pool (see the module docstring)."""

    def __init__(self, kind: str, *, labels: Sequence[str], class_weight: str = "none",
                 models_dir: str | os.PathLike | None = None, batch_size: int = SCORE_BATCH_SIZE,
                 embeddings_dir: str | os.PathLike | None = None, encoder_threads: int = 0):
        self.kind = kind
        self.labels = list(labels)
        self.class_weight = class_weight
        self.batch_size = int(batch_size)
        # a model with a sentence encoder keeps its vectors in files (smartlabel.encoders)
        if embeddings_dir is None and models_dir is not None:
            embeddings_dir = embeddings_path(models_dir)
        self.embeddings_dir = str(embeddings_dir) if embeddings_dir is not None else None
        self.encoder_threads = int(encoder_threads)
        parts = split_pipeline(self.new_model())
        self.cache: FeatureCache | None = None
        if parts is not None:
            path = cache_path(models_dir, parts[0]) if models_dir is not None else None
            self.cache = FeatureCache(parts[0], path)
        self._fetch: FetchTexts | None = None
        self._pickled = modelstore.Unchanged()  # the vectoriser's bytes in the model files

    def new_model(self, random_state: int = 0):
        """A fresh, unfitted text-in model from the registry."""
        model = make_model(self.kind, labels=self.labels, class_weight=self.class_weight, random_state=random_state)
        parts = split_pipeline(model)
        if parts is not None and "cache_dir" in parts[0].get_params(deep=False):
            parts[0].set_params(cache_dir=self.embeddings_dir, threads=self.encoder_threads)
        return model

    @property
    def n_features(self) -> int | None:
        """Columns of the cached features (None for a model that reads raw text)."""
        return None if self.cache is None else int(self.cache.X.shape[1])

    # -- features --

    def sync(self, ids: Sequence[int], hashes: Sequence[str], fetch_texts: FetchTexts) -> "SyncStats | None":
        """Bring the features up to date with the pool (ids with their content hashes).

        `fetch_texts(ids)` yields the model-input text of those ids, in that order.
        Returns what the cache did (None for a model that reads raw text).
        """
        self._fetch = fetch_texts
        if self.cache is None:
            return None
        return self.cache.sync(ids, hashes, fetch_texts)

    def features(self, ids: Sequence[int]):
        """What the model reads for these pool ids: cached feature rows, or their texts."""
        if self.cache is not None:
            return self.cache.rows(ids)
        if self._fetch is None:
            raise RuntimeError("call sync() before asking for features")
        return np.array(list(self._fetch([int(i) for i in ids])), dtype=object)

    def transform(self, texts: Sequence[str]):
        """What the model reads for texts outside the pool (e.g. a held-out share)."""
        if self.cache is None:
            return np.array(list(texts), dtype=object)
        return self.cache.vectorizer.transform(texts).astype(np.float32).tocsr()

    # -- training --

    def head(self, random_state: int = 0):
        """A fresh, unfitted estimator that reads `features()`."""
        model = self.new_model(random_state)
        if self.cache is None:
            return model
        return ActiveFeatures(split_pipeline(model)[1])

    def evaluate(self, X, y, audit_mask, random_state: int = 0) -> dict:
        """Cross-validated scores of a fresh model on (X, y); see `evaluate`."""
        return evaluate(self.head(random_state), X, y, audit_mask, random_state=random_state)

    def fit(self, X, y, random_state: int = 0):
        """A fresh model trained on these features."""
        return self.head(random_state).fit(X, y)

    def text_model(self, fitted):
        """The fitted model as one text-in estimator: `Pipeline([("tfidf", ...), ("clf", fitted)])`."""
        return fitted if self.cache is None else join_pipeline(self.cache.vectorizer, fitted)

    def shared_part(self):
        """For `modelstore.save(text_model(...), unchanged=...)`: the cached vectoriser, which
        every model file of this pool holds, pickled once until it is refitted (None for a
        model that reads raw text)."""
        if self.cache is None or self.cache.vectorizer is None:
            return None
        return self._pickled, self.cache.vectorizer

    # -- scoring --

    def score(self, fitted, ids: Sequence[int], strategy: str, rng: np.random.Generator | int | None = None,
              on_batch: Callable[[int], None] | None = None) -> Scored:
        """Score these pool ids in batches of `batch_size`; `on_batch(n)` after each batch."""
        ids = np.asarray(ids, dtype=np.int64)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        parts = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            parts.append(Scored.of(fitted, self.features(chunk), strategy, gen))
            if on_batch is not None:
                on_batch(len(chunk))
        return Scored.concat(parts)


def evaluate(head, X, y, audit_mask, random_state: int = 0) -> dict:
    """Cross-validated scores of `head` on (X, y); see the module docstring.

    Keys: cv_accuracy, cv_macro_f1, per_class, audit_accuracy (None until AUDIT_MIN
    audit posts), n_audit, cv_folds (0: no CV, and `note` says why), oof_proba and
    oof_classes (out-of-fold probabilities, with CV).
    """
    from sklearn.metrics import classification_report, f1_score
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from smartlabel.quality import fold_proba

    classes, counts = np.unique(y, return_counts=True)
    second = int(np.sort(counts)[-2]) if len(counts) >= 2 else 0
    n_splits = min(3, second)
    out = {"cv_accuracy": None, "cv_macro_f1": None, "per_class": None, "audit_accuracy": None,
           "n_audit": int(audit_mask.sum()), "cv_folds": n_splits if n_splits >= 2 else 0}
    if n_splits < 2:
        out["note"] = "no cross-validation: fewer than 2 examples in two classes"
        return out
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        res = cross_validate(clone(head), X, y, cv=cv, scoring="accuracy", return_estimator=True,
                             return_indices=True, error_score="raise")
    oof = np.empty(len(y), dtype=object)
    for est, test_idx in zip(res["estimator"], res["indices"]["test"]):
        oof[test_idx] = est.predict(X[test_idx])
    out["oof_proba"] = fold_proba(res["estimator"], res["indices"]["test"], X, classes)
    out["oof_classes"] = classes
    out["cv_accuracy"] = float(np.mean(res["test_score"]))
    out["cv_macro_f1"] = float(f1_score(y, oof, labels=classes, average="macro", zero_division=0))
    report = classification_report(y, oof, labels=classes, output_dict=True, zero_division=0)
    out["per_class"] = {
        str(c): {"precision": round(report[c]["precision"], 4), "recall": round(report[c]["recall"], 4),
                 "f1": round(report[c]["f1-score"], 4), "support": int(report[c]["support"])}
        for c in classes
    }
    if out["n_audit"] >= AUDIT_MIN:
        out["audit_accuracy"] = float(np.mean(oof[audit_mask] == y[audit_mask]))
    return out


class ActiveFeatures(ClassifierMixin, BaseEstimator):
    """Train `estimator` only on the feature columns the training rows use.

    The pool-wide vocabulary has 10^5 columns while a few hundred labelled posts
    use a fraction of them. A column that is zero in every training row gets a
    zero weight from an L2-regularised linear model anyway, so dropping it gives
    the same model, far faster (L-BFGS over 10^6 weights took seconds per fit);
    for the Keras network it also keeps never-trained random input weights out
    of its predictions. The Learner trains every head this way on cached features.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        X = sp.csr_matrix(X)
        self.columns_ = np.unique(X.indices)
        if len(self.columns_) == 0:
            raise ValueError("the labelled posts have no words the vectoriser knows")
        from smartlabel import rowspace

        X = X[:, self.columns_]
        head = clone(self.estimator)
        # a few hundred labels, 10^4+ columns: the same logistic regression, in the row space
        self.estimator_ = rowspace.fit(head, X, y) if rowspace.applies(head, X) else head.fit(X, y)
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


def embeddings_path(models_dir: str | os.PathLike) -> Path:
    """Where sentence-encoder vectors are kept: MODELS_DIR/.cache/embeddings/ (see smartlabel.encoders)."""
    return Path(models_dir) / ".cache" / "embeddings"


def cache_path(models_dir: str | os.PathLike, vectorizer) -> Path:
    """Where the features of this vectoriser are kept: MODELS_DIR/.cache/features-<key>.pkl."""
    return Path(models_dir) / ".cache" / f"features-{vectorizer_key(vectorizer)}.pkl"


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

    # -- persistence --

    def _load(self) -> None:
        if not self.path.exists():
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

    def sync(self, ids: Sequence[int], hashes: Sequence[str], fetch_texts: FetchTexts) -> SyncStats:
        """Bring the cache up to date with the pool `ids` (with their content hashes).

        `fetch_texts(ids)` yields the model-input text of those ids, in that order.
        """
        ids = np.asarray(ids, dtype=np.int64)
        hashes = np.asarray(list(hashes), dtype=object)
        order = np.argsort(ids, kind="stable")
        ids, hashes = ids[order], hashes[order]
        if len(ids) == 0:
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
        from smartlabel import tfidf

        try:
            vec, X = tfidf.fit_transform(self.template, fetch_texts(ids.tolist()))
        except ValueError as exc:
            if "empty vocabulary" in str(exc):
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
