"""Cold start: before a model can tell what it does not know, hand out posts that represent the pool.

With few labels, uncertainty sampling asks a weak model what confuses it, and its answer is
close to noise (measured: below random sampling on news corpora under ~100 labels). Until
COLD_START_LABELS posts are labelled the orchestrator writes priorities from
`representative_order` instead (the run's `acquisition` is `coldstart`; with too few labels
to train at all, a run of kind `coldstart` carries them alone), and the queue hands them out
as `coldstart` ("chosen to represent the pool" on the page). The random exploration share
and the audit sample are untouched: they stay uniform, because they measure the model.

The order (deterministic for a seed):

1. **Representation**: the Learner's cached features, no new featurisation. For `embed` and
   `minilm` the sentence-embedding columns (`models.EncoderFeatures`, from the embedding
   cache: nothing is embedded again); otherwise TF-IDF reduced to `COMPONENTS` dimensions with
   TruncatedSVD fitted on a sample. Rows are L2-normalised (cosine geometry).
2. **A sample** of at most `SAMPLE` open posts (uniform): the candidates of the greedy order.
   The other open posts come after them, in random order; the first SAMPLE hand-outs are far
   more than a cold start lasts.
3. **Density**: each candidate's mean cosine similarity to its `NEIGHBOURS` nearest
   candidates (a post in a big dense region represents many posts).
4. **Density-weighted farthest-point order** (a deterministic k-means++ seeding):
   repeatedly take the candidate maximising density x (distance to the nearest post already
   chosen or already labelled), where distance = 1 - cosine similarity. The first pick is the
   densest post (or the one farthest from the labelled ones); each next one is far from every
   earlier pick, so concurrent labellers popping successive posts get posts from different
   regions, and labelled posts push the order away from what is already known.

At 80,000 posts with 100k TF-IDF columns this takes about a second (BENCHMARKS.md, issue 15).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

ACQUISITION = "coldstart"  # model_runs.acquisition of a run whose priorities come from here
REASON = "coldstart"  # the queue's hand-out reason for them
SAMPLE = 3000
COMPONENTS = 64
NEIGHBOURS = 10
DENSITY_POWER = 2.0  # the weight of density against distance (measured: 2 beat 0, 0.5 and 1 on aldata)
SVD_FIT_ROWS = 5000
CLUSTERS = 300
METHOD = "greedy"
MIN_ROWS = 3  # a TF-IDF column counts when this many of the rows use it


def embedding_columns(learner) -> slice | None:
    """The feature columns that hold a sentence embedding (encoder models), else None."""
    cache = getattr(learner, "cache", None)
    vec = getattr(cache, "vectorizer", None) if cache is not None else None
    n_tfidf = getattr(vec, "n_tfidf_", None)
    if n_tfidf is None or cache.X.shape[1] <= n_tfidf:
        return None
    return slice(int(n_tfidf), int(cache.X.shape[1]))


def reduce(X, *, columns: slice | None = None, rng: np.random.Generator | int | None = 0,
           components: int = COMPONENTS, fit_rows: int = SVD_FIT_ROWS) -> np.ndarray:
    """Dense, L2-normalised rows of X: the `columns` as they are (an embedding), or TF-IDF
    reduced with TruncatedSVD (fitted on at most `fit_rows` random rows)."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = X.shape[0]
    if columns is not None:
        Z = X[:, columns]
        Z = Z.toarray() if sp.issparse(Z) else np.asarray(Z)
    else:
        X = sp.csr_matrix(X, dtype=np.float32)
        X = _shared_columns(X)
        # few dimensions for a small pool: the top directions are its topics, the tail is the
        # rare words (a post's own names and numbers) that make every post far from every other
        k = min(components, X.shape[1] - 1, max(n // 10, 2))
        if k < 2 or n < 3:
            Z = X.toarray() if X.shape[1] <= 512 else np.zeros((n, 1), dtype=np.float32)
        else:
            from sklearn.decomposition import TruncatedSVD

            fit = X[np.sort(gen.choice(n, size=min(n, fit_rows), replace=False))]
            svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=4,
                               random_state=int(gen.integers(2**31 - 1)))
            svd.fit(fit)
            Z = np.asarray(X @ svd.components_.T)
    Z = np.asarray(Z, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms > 0, norms, 1.0)


def _shared_columns(X: sp.csr_matrix, min_rows: int = MIN_ROWS) -> sp.csr_matrix:
    """The columns at least `min_rows` of these rows use (all used ones if that leaves too few).

    A word (or bigram) of one or two posts says nothing about which posts are alike, and the
    pool-wide vocabulary made the SVD's dense (columns x k) steps take 30 s at 200k columns
    (110k of them used by 3,000 R8 posts; 21k used by three or more: about 1 s)."""
    counts = np.bincount(X.indices, minlength=X.shape[1])
    keep = np.flatnonzero(counts >= min_rows)
    if len(keep) < 2:
        keep = np.flatnonzero(counts > 0)
    return X[:, keep]


def greedy_order(Z: np.ndarray, labelled: np.ndarray | None = None, *, picks: int | None = None,
                 neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Positions of Z's rows in density-weighted farthest-point order (see the module docstring).

    `labelled`: normalised rows of posts already labelled (the order keeps away from them).
    Returns `picks` positions (all rows by default)."""
    n = Z.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    picks = n if picks is None else min(int(picks), n)
    S = Z @ Z.T  # cosine similarities, n <= SAMPLE
    k = min(neighbours, n - 1)
    if k >= 1:
        np.fill_diagonal(S, -np.inf)
        top = -np.partition(-S, k - 1, axis=1)[:, :k]
        density = np.clip(top.mean(axis=1), 0.0, None) + 1e-3
        np.fill_diagonal(S, 1.0)
    else:
        density = np.ones(n)
    dist = np.full(n, 1.0, dtype=np.float64)
    if labelled is not None and len(labelled):
        sims = Z @ np.asarray(labelled, dtype=np.float32).T
        dist = np.clip(1.0 - sims.max(axis=1), 0.0, None).astype(np.float64)
    # a small floor: a post identical to a labelled one still ranks by its density
    dist = np.maximum(dist, 1e-6)
    chosen = np.empty(picks, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    for r in range(picks):
        score = np.where(taken, -1.0, density ** DENSITY_POWER * dist)
        j = int(np.argmax(score))
        chosen[r] = j
        taken[j] = True
        dist = np.minimum(dist, np.maximum(1.0 - S[j], 1e-6))
    return chosen


def kmeans_order(Z: np.ndarray, labelled: np.ndarray | None = None, *, clusters: int | None = None,
                 seed: int = 0) -> np.ndarray:
    """Positions of Z's rows: k-means (k-means++ seeding) on Z, each cluster's post nearest its
    centre, biggest clusters first (k-means spends its centres where posts are dense, so the
    order follows the pool's mass); a cluster that holds labelled posts counts for less
    (size / (1 + labelled posts nearest to it)). The other rows follow in greedy order."""
    from sklearn.cluster import MiniBatchKMeans

    n = Z.shape[0]
    k = min(n, clusters or CLUSTERS)
    if k < 2:
        return greedy_order(Z, labelled)
    km = MiniBatchKMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed, batch_size=1024,
                         max_iter=50).fit(Z)
    assign = km.labels_
    size = np.bincount(assign, minlength=k).astype(float)
    if labelled is not None and len(labelled):
        size /= 1.0 + np.bincount(km.predict(np.asarray(labelled, dtype=np.float32)), minlength=k)
    sims = np.einsum("ij,ij->i", Z, km.cluster_centers_[assign])
    first = []
    for c in np.argsort(-size, kind="stable"):
        members = np.flatnonzero(assign == c)
        if len(members):
            first.append(int(members[np.argmax(sims[members])]))
    first = np.asarray(first, dtype=np.int64)
    rest = np.setdiff1d(np.arange(n), first)
    rest = rest[greedy_order(Z[rest], np.vstack([Z[first]] + ([labelled] if labelled is not None and len(labelled) else [])))]
    return np.concatenate([first, rest])


def representative_order(X_open, X_labelled=None, *, columns: slice | None = None,
                         rng: np.random.Generator | int | None = 0, sample: int = SAMPLE) -> np.ndarray:
    """Priorities (higher = hand out first) for the open posts' feature rows `X_open`.

    The greedy order over a sample of at most `sample` open posts ranks first (priorities
    above 1), the rest follow in random order (below 1). `X_labelled`: feature rows of the
    labelled posts, kept away from."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = X_open.shape[0]
    prio = gen.random(n)  # the rest: random, in [0, 1)
    if n == 0:
        return prio
    cand = np.sort(gen.choice(n, size=min(n, sample), replace=False))
    n_lab = 0 if X_labelled is None else X_labelled.shape[0]
    both = X_open[cand] if n_lab == 0 else _vstack(X_open[cand], X_labelled)
    Z = reduce(both, columns=columns, rng=gen)
    if METHOD == "kmeans":
        order = kmeans_order(Z[:len(cand)], Z[len(cand):] if n_lab else None, seed=int(gen.integers(2**31 - 1)))
    else:
        order = greedy_order(Z[:len(cand)], Z[len(cand):] if n_lab else None)
    prio[cand[order]] = 1.0 + (len(order) - np.arange(len(order))) / len(order)
    return prio


def _vstack(a, b):
    if sp.issparse(a) or sp.issparse(b):
        return sp.vstack([sp.csr_matrix(a), sp.csr_matrix(b)], format="csr")
    return np.vstack([a, b])


def applies(n_labelled: int, threshold: int) -> bool:
    """Is the pool still in its cold start (COLD_START_LABELS; 0 disables it)?"""
    return int(threshold) > 0 and int(n_labelled) < int(threshold)


def order_for(learner, open_ids: Sequence[int], labelled_ids: Sequence[int], *,
              rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Cold-start priorities of the open posts from a synced Learner's cached features.

    A model that reads raw text (keras without a separable vectoriser) has no cached
    features: its posts get TF-IDF features fitted on the fly from the candidates' text."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    open_ids = np.asarray(open_ids, dtype=np.int64)
    labelled_ids = np.asarray(labelled_ids, dtype=np.int64)
    if learner.cache is not None:
        X_open = learner.features(open_ids)
        X_lab = learner.features(labelled_ids) if len(labelled_ids) else None
        return representative_order(X_open, X_lab, columns=embedding_columns(learner), rng=gen)
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(learner.features(np.concatenate([open_ids, labelled_ids])))
    try:
        X = TfidfVectorizer(sublinear_tf=True, min_df=1).fit_transform([t or "" for t in texts])
    except ValueError:  # no words at all: random order
        return gen.random(len(open_ids))
    n = len(open_ids)
    return representative_order(X[:n], X[n:] if len(labelled_ids) else None, rng=gen)
