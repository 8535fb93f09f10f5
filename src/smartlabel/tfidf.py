"""Fitting the TF-IDF vectoriser on a big pool fast, with the same features a plain fit gives
on a small one.

A plain `TfidfVectorizer.fit_transform` on 80,000 posts counts every 1-2-gram of every post
into one Python dict (millions of entries, ~1 GB at 80k, minutes and GBs at 1M) before it
keeps the `max_features` most frequent. Here, above `VOCABULARY_SAMPLE` posts:

1. the vocabulary (the most frequent terms, as the template says) is chosen on a uniform
   random sample of `VOCABULARY_SAMPLE` posts (seeded: the same pool gives the same
   vocabulary). A term frequent enough to be among the top 200,000 of the pool is, with
   overwhelming odds, frequent in a 20,000-post sample too; what is lost are terms rare in
   the whole pool, which the cap would mostly drop anyway;
2. every post is counted against that fixed vocabulary, in `workers` forked processes
   (counting is Python-bound: one core each);
3. the IDF weights come from the whole pool's counts, so they are the pool's, not the
   sample's.

At or below the sample size this is exactly `clone(template).fit_transform(texts)`.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from smartlabel.cores import default_workers

VOCABULARY_SAMPLE = 20_000
# below this many posts, counting in one process is quicker than forking workers
PARALLEL_MIN = 20_000
WEIGHT_SLICE = 4_000_000  # stored values weighted at a time
SEED = 0

_TEXTS: Sequence[str] = ()
_COUNTER: CountVectorizer | None = None


def fit_transform(template, texts: Sequence[str], *, sample: int = VOCABULARY_SAMPLE,
                  workers: int | None = None, seed: int = SEED):
    """A fitted clone of `template` (a TfidfVectorizer) and the pool's features (CSR, float32)."""
    texts = list(texts)
    n = len(texts)
    if n <= sample or not getattr(template, "use_idf", False):
        vec = clone(template)
        return vec, sp.csr_matrix(vec.fit_transform(texts), dtype=np.float32)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=sample, replace=False))
    probe = clone(template)
    probe.fit([texts[i] for i in picked])
    vec = clone(template).set_params(vocabulary=probe.vocabulary_)
    # the pool's texts (hundreds of MB at 1M posts) are let go once counted, before the
    # counted parts are stacked into one matrix
    counts = count(vec, texts, workers=workers, consume=True)
    del texts
    weights = TfidfTransformer(norm=vec.norm, use_idf=True, smooth_idf=vec.smooth_idf,
                               sublinear_tf=vec.sublinear_tf).fit(counts)
    vec.idf_ = weights.idf_  # sklearn's setter: the fitted vectoriser transforms like a plain fit
    return vec, _weighted(counts, weights)


def _weighted(X: sp.csr_matrix, weights: TfidfTransformer) -> sp.csr_matrix:
    """`weights.transform(X)` in place and in slices: what scikit-learn's transform does
    (sublinear tf, idf, row norm), without a second matrix or an idf-per-value temporary
    as big as the matrix (hundreds of MB at 1M posts)."""
    from sklearn.preprocessing import normalize

    X = sp.csr_matrix(X, dtype=np.float32, copy=False)
    idf = np.asarray(weights.idf_, dtype=X.dtype)
    for start in range(0, X.nnz, WEIGHT_SLICE):
        part = slice(start, start + WEIGHT_SLICE)
        if weights.sublinear_tf:
            np.log(X.data[part], out=X.data[part])
            X.data[part] += 1.0
        X.data[part] *= idf[X.indices[part]]
    if weights.norm is not None:
        X = normalize(X, norm=weights.norm, copy=False)
    return sp.csr_matrix(X, dtype=np.float32, copy=False)


def count(vectorizer, texts: Sequence[str], *, workers: int | None = None, consume: bool = False) -> sp.csr_matrix:
    """Term counts of `texts` against the vectoriser's fixed vocabulary (`vocabulary=`).

    `consume`: `texts` is a list the caller no longer needs; it is emptied once counted."""
    params = CountVectorizer().get_params()
    counter = CountVectorizer(**{k: v for k, v in vectorizer.get_params().items() if k in params})
    counter.set_params(dtype=np.float32)
    workers = default_workers() if workers is None else max(1, int(workers))
    n = len(texts)
    if workers == 1 or n < PARALLEL_MIN or "fork" not in mp.get_all_start_methods():
        return counter.fit_transform(texts).tocsr()
    counter.fit(texts[:1])  # validates the fixed vocabulary; counting needs no fit
    global _TEXTS, _COUNTER
    _TEXTS, _COUNTER = texts, counter  # the forked workers read them without pickling
    try:
        bounds = np.linspace(0, n, workers * 4 + 1).astype(int)
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_count_part, list(zip(bounds[:-1], bounds[1:])))
    finally:
        _TEXTS, _COUNTER = (), None
    if consume:
        texts.clear()
    return _stack(parts, len(counter.vocabulary_))


def _stack(parts: list[sp.csr_matrix], n_columns: int) -> sp.csr_matrix:
    """`sp.vstack(parts)`, each part freed once copied: the result's pages are touched only as
    they are filled, so memory holds about one matrix, not the parts and their copy."""
    n_rows = sum(p.shape[0] for p in parts)
    nnz = sum(p.nnz for p in parts)
    index = np.int32 if max(nnz, n_columns) < 2**31 else np.int64
    data = np.empty(nnz, dtype=parts[0].dtype if parts else np.float32)
    indices = np.empty(nnz, dtype=index)
    indptr = np.empty(n_rows + 1, dtype=index)
    indptr[0] = 0
    at = row = 0
    for k in range(len(parts)):
        p, parts[k] = parts[k], None
        m = p.shape[0]
        data[at:at + p.nnz] = p.data
        indices[at:at + p.nnz] = p.indices
        indptr[row + 1:row + 1 + m] = p.indptr[1:] + at
        at, row = at + p.nnz, row + m
        del p
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_columns), copy=False)


def _count_part(bounds: tuple[int, int]) -> sp.csr_matrix:
    lo, hi = bounds
    return _COUNTER.transform(_TEXTS[lo:hi]).tocsr()
