"""smartlabel.tfidf: the sampled-vocabulary fit gives the pool's IDF and the features a
plain fit would give for the terms it keeps; small pools are fitted exactly as before."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from smartlabel import tfidf
from smartlabel.models import text_vectorizer

from text_corpus import make_texts


@pytest.fixture(scope="module")
def texts():
    return make_texts(200, seed=3)[0]


def test_a_pool_no_bigger_than_the_sample_is_a_plain_fit(texts):
    vec, X = tfidf.fit_transform(text_vectorizer(), texts, sample=len(texts))
    plain = text_vectorizer()
    Xp = plain.fit_transform(texts)
    assert vec.vocabulary_ == plain.vocabulary_
    assert X.dtype == np.float32 and abs(X - Xp).max() < 1e-6


@pytest.mark.parametrize("workers", [1, 2])
def test_sampled_vocabulary_with_the_pools_idf(texts, workers, monkeypatch):
    monkeypatch.setattr(tfidf, "PARALLEL_MIN", 10)  # fork workers even for this small pool
    vec, X = tfidf.fit_transform(text_vectorizer(), texts, sample=100, workers=workers)
    plain = text_vectorizer().fit(texts)
    # every kept term is a term of the pool; fewer terms than the whole pool has
    assert set(vec.vocabulary_) < set(plain.vocabulary_)
    # the IDF of each kept term is the whole pool's, not the sample's
    idf = dict(zip(plain.get_feature_names_out(), plain.idf_))
    for term, column in list(vec.vocabulary_.items())[:200]:
        assert vec.idf_[column] == pytest.approx(idf[term], rel=1e-6)
    # the fitted vectoriser transforms new text exactly as the pool's rows were made
    again = vec.transform(texts[:50])
    assert abs(again - X[:50]).max() < 1e-6
    # rows are L2-normalised TF-IDF, as a plain fit's
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    assert pickle.loads(pickle.dumps(vec)).transform(texts[:3]).shape == (3, len(vec.vocabulary_))


def test_parallel_counting_equals_serial(texts, monkeypatch):
    monkeypatch.setattr(tfidf, "PARALLEL_MIN", 10)
    vec = text_vectorizer().set_params(vocabulary=text_vectorizer().fit(texts[:80]).vocabulary_)
    serial = tfidf.count(vec, texts, workers=1)
    forked = tfidf.count(vec, texts, workers=2)
    assert serial.shape == forked.shape == (len(texts), len(vec.vocabulary))
    assert (serial != forked).nnz == 0 and serial.nnz > 0


def test_the_same_pool_gives_the_same_vocabulary(texts):
    a, _ = tfidf.fit_transform(text_vectorizer(), texts, sample=100, workers=1)
    b, _ = tfidf.fit_transform(text_vectorizer(), texts, sample=100, workers=1)
    assert a.vocabulary_ == b.vocabulary_


@pytest.mark.parametrize("sublinear", [False, True])
def test_weighting_in_place_equals_scikit_learns_transform(texts, sublinear):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    counts = CountVectorizer(ngram_range=(1, 2), dtype=np.float32).fit_transform(texts).tocsr()
    weights = TfidfTransformer(sublinear_tf=sublinear).fit(counts)
    expected = weights.transform(counts.copy())
    got = tfidf._weighted(counts.copy(), weights)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert abs(got - expected).max() == 0


def test_stacking_parts_equals_vstack(texts):
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    X = CountVectorizer(dtype=np.float32).fit_transform(texts).tocsr()
    cuts = [0, 1, 1, len(texts) // 3, len(texts)]  # an empty part too
    parts = [X[a:b] for a, b in zip(cuts, cuts[1:])]
    stacked = tfidf._stack(list(parts), X.shape[1])
    assert stacked.shape == X.shape and (stacked != sp.vstack(parts, format="csr")).nnz == 0
    assert (stacked != X).nnz == 0
