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


# --- NgramCounter: scikit-learn's counts, bit for bit -----------------------------------

TRICKY = [
    "",  # empty
    "   \t\n ",  # whitespace only
    "word",  # one token
    "x",  # one character: no token at all
    "a b c aa bb a cc",  # one-character runs vanish between tokens: "aa bb", "bb cc"
    "Don't STOP believin' -- it's 5.93% of 1,001,430 people_who_care",
    "Café naïve résumé CAFÉ cafe",  # accents: stripped (strip_accents) or kept
    "ΣΟΦΊΑ ΟΔΟΣ σοφία οδός",  # Greek: final sigma when lower-cased
    "Straße STRASSE straße",
    "İstanbul Kelvin \u212a \u212aelvin",  # dotted capital I; the Kelvin sign lower-cases to ASCII k
    "東京 日本語の文章 北京",  # CJK runs are word characters
    "emoji 😀😀 party 🎉 party",
    "tab\tseparated\nnew\rlines\x0bvertical\x0cfeed",
    "nul\0inside\0words \0 here",
    "under_score __init__ _x_ a_",
    "repeat repeat repeat repeat repeat",
    "the the the and of to",  # stop words
    "zzunknownzz qqnotthereqq word zzunknownzz",  # tokens in no vocabulary term
    "x" * 3000 + " long",  # a long token
    "mixed ascii, then ünïcödé: words and bigrams words and",
    "123 4567 89 0 12",
    "ﬁnance ﬂower Ⅻ ½ ²",  # ligatures, roman numeral, fractions: NFKD changes them
]


def _same(got, expected):
    """The same CSR matrix: shape, dtype, index arrays and values, sorted indices."""
    import scipy.sparse as sp

    expected = sp.csr_matrix(expected)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert got.has_sorted_indices and expected.has_sorted_indices
    assert np.array_equal(got.indptr, expected.indptr)
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)


def _fitted_counter(fit_on, **settings):
    """A CountVectorizer with the vocabulary a fit on `fit_on` with `settings` chooses (its
    max_df / max_features pruning included), then fixed, as tfidf.count builds it."""
    from sklearn.feature_extraction.text import CountVectorizer

    fixed = {k: v for k, v in settings.items() if k not in ("max_df", "min_df", "max_features")}
    vocabulary = CountVectorizer(**settings).fit(fit_on).vocabulary_
    return CountVectorizer(vocabulary=vocabulary, **fixed).fit(fit_on[:1])


@pytest.fixture(scope="module")
def pool():
    """Synthetic posts plus the tricky ones, shuffled in."""
    import random

    posts = make_texts(400, seed=5)[0]
    rng = random.Random(7)
    mixed = posts + TRICKY * 3
    rng.shuffle(mixed)
    return mixed


SETTINGS = [
    dict(ngram_range=(1, 2), strip_accents="unicode"),  # smartlabel's (models.text_vectorizer)
    dict(ngram_range=(1, 2), strip_accents="unicode", max_features=60),  # bigrams without their words
    dict(ngram_range=(1, 2), strip_accents="unicode", max_df=0.05),  # frequent words pruned
    dict(ngram_range=(1, 2), stop_words="english"),
    dict(ngram_range=(1, 2), stop_words=["word", "the", "party"], strip_accents="ascii"),
    dict(ngram_range=(1, 2), lowercase=False),
    dict(ngram_range=(1, 1)),
    dict(ngram_range=(2, 2), strip_accents="unicode"),
    dict(ngram_range=(1, 2), binary=True),
    dict(ngram_range=(1, 2), dtype=np.float64),
    dict(ngram_range=(1, 2), dtype=np.int64),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_counts_equal_scikit_learns(pool, settings):
    counter = _fitted_counter(pool, **settings)
    fast = tfidf.NgramCounter.of(counter)
    assert fast is not None, tfidf.NgramCounter.unsupported(counter)
    expected = counter.transform(pool)
    assert expected.nnz > len(pool)  # something to compare
    _same(fast.transform(pool), expected)
    # the tricky posts alone, each alone (a chunk of one post), and none
    _same(fast.transform(TRICKY), counter.transform(TRICKY))
    for post in TRICKY:
        _same(fast.transform([post]), counter.transform([post]))
    _same(fast.transform([]), counter.transform([]))


def test_a_vocabulary_from_other_posts_leaves_words_out(pool):
    """A vocabulary chosen on a sample (as fit_transform does) lacks words of the pool: they
    are counted nowhere, and break no bigram they are not part of."""
    counter = _fitted_counter(pool[: len(pool) // 5], ngram_range=(1, 2), strip_accents="unicode",
                              max_features=300)
    _same(tfidf.NgramCounter.of(counter).transform(pool), counter.transform(pool))


def test_the_tricky_posts_need_what_they_test(pool):
    """The corpus does exercise the cases the counter must get right."""
    counter = _fitted_counter(pool, ngram_range=(1, 2), strip_accents="unicode", max_df=0.05)
    terms = set(counter.vocabulary_)
    words = {t for t in terms if " " not in t}
    bigrams = [t.split(" ") for t in terms if " " in t]
    assert any(a not in words and b in words for a, b in bigrams)  # bigrams whose words are not terms
    assert any(a not in words and b not in words for a, b in bigrams)
    assert any(not p.isascii() for p in TRICKY) and "" in TRICKY


def test_posts_in_many_chunks_equal_one_pass(pool, monkeypatch):
    counter = _fitted_counter(pool, ngram_range=(1, 2), strip_accents="unicode")
    whole = tfidf.NgramCounter.of(counter).transform(pool)
    monkeypatch.setattr(tfidf, "COUNT_CHUNK", 7)
    _same(tfidf.NgramCounter.of(counter).transform(pool), whole)


def test_a_sizeable_corpus_equals_scikit_learns():
    """20,000 posts with a 20,000-word vocabulary (bench/common.py's generator is too slow to
    import here; the same Zipf-like words), smartlabel's own vectoriser settings."""
    rng = np.random.default_rng(11)
    words = np.array(["".join(rng.choice(list("bcdfghjklmnprstvwzaeiou"), size=rng.integers(1, 9)))
                      for _ in range(20_000)])
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    posts = [" ".join(words[rng.choice(len(words), size=int(k), p=p / p.sum())]).capitalize() + "!"
             for k in rng.integers(0, 120, 20_000)]
    template = text_vectorizer(max_features=50_000)
    counter = _fitted_counter(posts[:5_000], **{k: v for k, v in template.get_params().items()
                                               if k in ("ngram_range", "strip_accents", "lowercase",
                                                        "max_features", "dtype", "token_pattern")})
    fast = tfidf.NgramCounter.of(counter)
    _same(fast.transform(posts), counter.transform(posts))


@pytest.mark.parametrize("settings", [
    dict(ngram_range=(1, 3)), dict(analyzer="char_wb", ngram_range=(2, 3)),
    dict(token_pattern=r"(?u)\b\w+\b"), dict(preprocessor=str.upper), dict(tokenizer=str.split),
    dict(strip_accents=lambda s: s.replace("é", "e")),
], ids=["trigrams", "char_wb", "token_pattern", "preprocessor", "tokenizer", "strip_accents"])
def test_other_settings_are_counted_by_scikit_learn(pool, settings):
    from sklearn.feature_extraction.text import CountVectorizer

    counter = _fitted_counter(pool, **settings)
    assert tfidf.NgramCounter.of(counter) is None and tfidf.NgramCounter.unsupported(counter)
    vec = CountVectorizer(vocabulary=counter.vocabulary_, **settings)
    _same(tfidf.count(vec, pool, workers=1), counter.transform(pool).astype(np.float32))


def test_posts_that_are_not_text_are_left_to_scikit_learn(pool):
    counter = _fitted_counter(pool, ngram_range=(1, 2))
    fast = tfidf.NgramCounter.of(counter)
    mixed = ["plain text here", "bytes are decoded".encode(), "more plain text"]
    _same(fast.transform(mixed), counter.transform(mixed))
    with pytest.raises(ValueError, match="np.nan is an invalid document"):
        fast.transform(["text", np.nan])
    with pytest.raises(ValueError, match="string object received"):
        fast.transform("one string, not a list of posts")


def test_count_uses_the_fast_counter_for_smartlabels_vectoriser(pool, monkeypatch):
    monkeypatch.setattr(tfidf, "PARALLEL_MIN", 10)
    vec = text_vectorizer().set_params(vocabulary=text_vectorizer().fit(pool[:300]).vocabulary_)
    calls = []
    real = tfidf.NgramCounter.transform
    monkeypatch.setattr(tfidf.NgramCounter, "transform", lambda self, docs: calls.append(1) or real(self, docs))
    from sklearn.feature_extraction.text import CountVectorizer

    expected = CountVectorizer(vocabulary=vec.vocabulary, ngram_range=(1, 2), strip_accents="unicode",
                               dtype=np.float32).transform(pool)
    _same(tfidf.count(vec, pool, workers=1), expected)
    assert calls  # the fast path ran
    _same(tfidf.count(vec, pool, workers=2), expected)


@pytest.mark.parametrize("smooth", [False, True])
def test_idf_in_slices_equals_scikit_learns_fit(pool, smooth, monkeypatch):
    from sklearn.feature_extraction.text import TfidfTransformer

    counter = _fitted_counter(pool, ngram_range=(1, 2), dtype=np.float32)
    counts = tfidf.NgramCounter.of(counter).transform(pool)
    monkeypatch.setattr(tfidf, "WEIGHT_SLICE", 1000)  # many slices
    got = tfidf._idf(counts, smooth)
    expected = TfidfTransformer(smooth_idf=smooth).fit(counts).idf_
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_consumed_posts_are_released_once_the_workers_have_forked(texts, monkeypatch):
    monkeypatch.setattr(tfidf, "PARALLEL_MIN", 10)
    vec = text_vectorizer().set_params(vocabulary=text_vectorizer().fit(texts[:80]).vocabulary_)
    serial = tfidf.count(vec, texts, workers=1)
    mine = list(texts)
    forked = tfidf.count(vec, mine, workers=2, consume=True)
    assert mine == [] and (serial != forked).nnz == 0 and forked.shape == serial.shape
    # a worker forked after the release (the pool replacing one) refuses to count nothing
    monkeypatch.setattr(tfidf, "_TEXTS", [])
    monkeypatch.setattr(tfidf, "_COUNT", lambda docs: None)
    with pytest.raises(RuntimeError, match="after the posts were released"):
        tfidf._count_part((0, 5))


# --- fit_vocabulary: scikit-learn's choice of terms ---------------------------------------

FIT_SETTINGS = SETTINGS + [
    dict(ngram_range=(1, 2), strip_accents="unicode", max_features=500),  # a cut among many ties
    dict(ngram_range=(1, 2), max_features=200, binary=True),  # ranked by document frequency
    dict(ngram_range=(1, 2), min_df=2, max_df=40),
    dict(ngram_range=(1, 2), min_df=0.01, max_df=0.5, max_features=300, dtype=np.float32),
    dict(ngram_range=(1, 1), max_features=25),
    dict(ngram_range=(2, 2), max_features=100, stop_words="english"),
]


@pytest.mark.parametrize("settings", FIT_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_fit_vocabulary_equals_scikit_learns(pool, settings):
    from sklearn.feature_extraction.text import CountVectorizer

    for docs in (pool, TRICKY, pool[:37] + TRICKY):
        expected = CountVectorizer(**settings).fit(docs).vocabulary_
        got = tfidf.fit_vocabulary(CountVectorizer(**settings), docs)
        assert got == expected
        assert list(got) == list(expected)  # its dict order too (a pickled vectoriser is the same)


def test_fit_vocabulary_of_smartlabels_vectoriser_on_a_sizeable_corpus():
    """Many terms seen equally often around the max_features cut: the cut must fall where
    scikit-learn's falls."""
    rng = np.random.default_rng(3)
    words = ["".join(rng.choice(list("bcdfgklmnprstaeiou"), size=rng.integers(1, 7))) for _ in range(5_000)]
    posts = [" ".join(rng.choice(words, size=int(k))) for k in rng.integers(0, 60, 4_000)]
    template = text_vectorizer(max_features=20_000)
    expected = template.fit(posts).vocabulary_
    got = tfidf.fit_vocabulary(text_vectorizer(max_features=20_000), posts)
    assert len(expected) == 20_000 and got == expected and list(got) == list(expected)


@pytest.mark.parametrize("docs, settings", [
    (["", "  ", "a b c"], {}),  # no term: scikit-learn raises "empty vocabulary"
    (["the and of", "to the"], dict(stop_words="english")),
    (["some text here", "more text"], dict(min_df=5)),  # nothing left after pruning
    (["some text", "more text"], dict(min_df=2, max_df=1)),  # max_df below min_df
    (["some text", b"bytes here"], {}),
    (["some text"], dict(ngram_range=(1, 3))),
    (["some text"], dict(vocabulary=["some", "text"])),
    ([], {}),
])
def test_fit_vocabulary_leaves_the_rest_to_scikit_learn(docs, settings):
    from sklearn.feature_extraction.text import CountVectorizer

    assert tfidf.fit_vocabulary(CountVectorizer(**settings), docs) is None
