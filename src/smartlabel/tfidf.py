"""Fitting the TF-IDF vectoriser on a big pool fast, with the same features a plain fit gives
on a small one.

A plain `TfidfVectorizer.fit_transform` on 80,000 posts counts every 1-2-gram of every post
into one Python dict (millions of entries, ~1 GB at 80k, minutes and GBs at 1M) before it
keeps the `max_features` most frequent. Here, above `VOCABULARY_SAMPLE` posts:

1. the vocabulary (the most frequent terms, as the template says) is chosen on a uniform
   random sample of `VOCABULARY_SAMPLE` posts (seeded: the same pool gives the same
   vocabulary), by `fit_vocabulary` (below: the vocabulary scikit-learn's fit chooses,
   without its n-gram strings). A term frequent enough to be among the top 200,000 of the pool is, with
   overwhelming odds, frequent in a 20,000-post sample too; what is lost are terms rare in
   the whole pool, which the cap would mostly drop anyway;
2. every post is counted against that fixed vocabulary, in `workers` forked processes,
   by `NgramCounter` (below): the same matrix as scikit-learn's
   `CountVectorizer(vocabulary=...).transform`, about 4 times less CPU, because it makes
   no n-gram strings: tokens become integer ids in bulk and bigrams are pairs of ids;
3. the IDF weights come from the whole pool's counts, so they are the pool's, not the
   sample's.

At or below the sample size this is exactly `clone(template).fit_transform(texts)`.
"""

from __future__ import annotations

import multiprocessing as mp
from itertools import chain, repeat
from numbers import Integral
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from smartlabel.cores import default_workers

VOCABULARY_SAMPLE = 20_000
# below this many posts, counting in one process is quicker than forking workers
PARALLEL_MIN = 20_000
WEIGHT_SLICE = 4_000_000  # stored values weighted at a time
SEED = 0

COUNT_CHUNK = 5_000  # posts tokenised at a time by NgramCounter (tens of MB of token strings)

_TEXTS: Sequence[str] = ()
_COUNT: Callable[[Sequence[str]], sp.csr_matrix] | None = None


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
    chosen = [texts[i] for i in picked]
    vocabulary = fit_vocabulary(template, chosen)  # scikit-learn's choice, about 4 times quicker
    if vocabulary is None:  # settings it does not reproduce, or scikit-learn's errors to raise
        vocabulary = clone(template).fit(chosen).vocabulary_
    del chosen
    vec = clone(template).set_params(vocabulary=vocabulary)
    # the pool's texts (hundreds of MB at 1M posts) are let go as soon as the counting
    # workers have forked, before the counted parts come back
    counts = count(vec, texts, workers=workers, consume=True)
    del texts
    weights = TfidfTransformer(norm=vec.norm, use_idf=True, smooth_idf=vec.smooth_idf,
                               sublinear_tf=vec.sublinear_tf)
    weights.idf_ = _idf(counts, vec.smooth_idf)  # what weights.fit(counts) sets, without its big temporary
    vec.idf_ = weights.idf_  # sklearn's setter: the fitted vectoriser transforms like a plain fit
    return vec, _weighted(counts, weights)


def _idf(counts: sp.csr_matrix, smooth_idf: bool) -> np.ndarray:
    """`TfidfTransformer(smooth_idf=...).fit(counts).idf_`, the same values and dtype, with the
    document frequencies counted in slices: scikit-learn's `np.bincount(X.indices)` first
    copies every column index into an int64 array (690 MB at 1M posts), which was the
    orchestrator's peak memory of a first run."""
    n_rows, n_columns = counts.shape
    df = np.zeros(n_columns, dtype=np.int64)
    for start in range(0, counts.nnz, WEIGHT_SLICE):
        df += np.bincount(counts.indices[start:start + WEIGHT_SLICE], minlength=n_columns)
    dtype = counts.dtype if counts.dtype in (np.float64, np.float32) else np.float64
    df = df.astype(dtype)
    df += float(smooth_idf)
    n_rows += int(smooth_idf)
    idf = np.full_like(df, fill_value=n_rows, dtype=dtype)
    idf /= df
    np.log(idf, out=idf)
    idf += 1.0
    return idf


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

    `consume`: `texts` is a list the caller no longer needs; it is emptied as soon as the
    counting workers have forked (they keep their copy), and the C heap's free pages are
    handed back to the system, so the parts coming back do not sit on top of the texts."""
    params = CountVectorizer().get_params()
    counter = CountVectorizer(**{k: v for k, v in vectorizer.get_params().items() if k in params})
    counter.set_params(dtype=np.float32)
    counter.fit(texts[:1])  # validates the fixed vocabulary (and warns as scikit-learn does); no fit needed
    fast = NgramCounter.of(counter)  # None: settings it does not reproduce; scikit-learn counts
    transform = fast.transform if fast is not None else _sklearn_transform(counter)
    workers = default_workers() if workers is None else max(1, int(workers))
    n = len(texts)
    if workers == 1 or n < PARALLEL_MIN or "fork" not in mp.get_all_start_methods():
        return transform(texts)
    global _TEXTS, _COUNT
    _TEXTS, _COUNT = texts, transform  # the forked workers read them without pickling
    try:
        bounds = np.linspace(0, n, workers * 4 + 1).astype(int)
        with mp.get_context("fork").Pool(workers) as pool:
            if consume:
                texts.clear()  # the workers hold their own (copy-on-write) view of the posts
                _release_free_memory()
            parts = pool.map(_count_part, list(zip(bounds[:-1], bounds[1:])))
    finally:
        _TEXTS, _COUNT = (), None
    if consume:
        texts.clear()
    return _stack(parts, len(counter.vocabulary_), counter.dtype)


def _sklearn_transform(counter: CountVectorizer) -> Callable[[Sequence[str]], sp.csr_matrix]:
    return lambda texts: sp.csr_matrix(counter.transform(texts))


def _stack(parts: list[sp.csr_matrix], n_columns: int, dtype=np.float32) -> sp.csr_matrix:
    """`sp.vstack(parts)`, each part freed once copied: the result's pages are touched only as
    they are filled, so memory holds about one matrix, not the parts and their copy."""
    n_rows = sum(p.shape[0] for p in parts)
    nnz = sum(p.nnz for p in parts)
    index = np.int32 if max(nnz, n_columns) < 2**31 else np.int64
    data = np.empty(nnz, dtype=parts[0].dtype if parts else dtype)
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
    if hi > len(_TEXTS):  # a worker forked after the parent let the posts go (the pool replaced one)
        raise RuntimeError(f"counting posts {lo}..{hi}: this worker started after the posts were released")
    return _COUNT(_TEXTS[lo:hi])


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim). Posts of more
    than 512 bytes live in malloc's heap, not Python's arenas, and free() keeps their
    pages: without this, a million released posts still count in the process's memory."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# --- counting n-grams against a fixed vocabulary, in bulk -------------------------------

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# str.translate table: every ASCII character that is not a word character (\w) becomes a space,
# so on an ASCII text `split()` yields the maximal runs of word characters
_ASCII_NON_WORD = {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
_ASCII_WORD_CHARS = [chr(c) for c in range(128) if chr(c).isalnum() or chr(c) == "_"]
# token ids: in no vocabulary term; removed before n-grams are formed; the end of a post
_UNKNOWN, _DROP, _END = -1, -2, -3
_POST_END = "\0"


def _words(docs: list[str], lower: bool, accents, findall) -> list[str]:
    """The tokens of these posts (all `str`) as scikit-learn's word analyzer makes them before
    n-grams (lower-cased, accents stripped, the default token pattern), in order, one list,
    the posts separated by the word "\\0"; one-character runs of word characters are left in
    (scikit-learn's pattern has none: the callers drop them)."""
    if lower:
        docs = list(map(str.lower, docs))
    if accents is not None:
        docs = [d if d.isascii() else accents(d) for d in docs]
    # every post as words separated by whitespace, the posts separated by the word "\0"
    # (no post has one left: translate made it a space, and no token holds one)
    table = _ASCII_NON_WORD
    return f" {_POST_END} ".join([d.translate(table) if d.isascii() else " ".join(findall(d))
                                  for d in docs]).split()


class NgramCounter:
    """`counter.transform(docs)` of a fitted scikit-learn `CountVectorizer` with a fixed
    vocabulary, bit for bit (same shape, dtype, sorted indices, counts), made without the
    n-gram strings scikit-learn builds one by one for every post.

    Per chunk of posts: each post is lower-cased and its accents stripped exactly as
    scikit-learn does (its own function, called only on the non-ASCII posts: on ASCII text
    both strip functions change nothing); tokenised (an ASCII post by `str.translate` of its
    non-word characters to spaces, after which `split` yields the same maximal runs of
    word characters as the default token pattern `\b\w\w+\b`, the one-character runs dropped
    below; any other post by that pattern itself); the chunk's tokens, posts separated by a
    "\\0" word, are mapped to integer ids in one pass of a dict (the ids of the words the
    vocabulary's terms are made of; -1 for any other word; stop words and one-character runs
    are dropped, as scikit-learn drops them before it forms n-grams); a unigram's column is a
    table look-up on its id, a bigram's a hash look-up (pandas) of `id1 * T + id2`, pairs
    across two posts left out; the (row, column) pairs are sorted and the repeats counted:
    CSR rows with sorted columns, as scikit-learn's `sort_indices` leaves them.

    `NgramCounter.of(counter)` is None for settings it does not reproduce, and the caller
    counts with scikit-learn: analyzer other than "word", a callable preprocessor, tokenizer
    or strip_accents, a token_pattern other than the default, input other than "content",
    n-grams longer than 2 words. Posts that are not all `str` (bytes, None, NaN) are
    counted, or rejected, by scikit-learn too.
    """

    def __init__(self, counter: CountVectorizer):
        self.counter = counter
        self.dtype = counter.dtype
        self.binary = bool(counter.binary)
        self.lower = bool(counter.lowercase)
        self.accents = counter.build_preprocessor().keywords["accent_function"]
        self.findall = counter.build_tokenizer()
        self.min_n, self.max_n = counter.ngram_range
        vocabulary = counter.vocabulary_
        self.n_features = len(vocabulary)
        ids: dict[str, int] = {}
        unigrams: list[tuple[int, int]] = []  # (token id, column)
        bigrams: list[tuple[int, int, int]] = []  # (token id, token id, column)
        for term, column in vocabulary.items():
            if not isinstance(term, str):
                continue  # scikit-learn's analyzer makes only strings: never counted
            words = term.split(" ")  # tokens hold no space: a bigram is "w1 w2"
            if len(words) == 1 and self.min_n == 1:
                unigrams.append((ids.setdefault(term, len(ids)), column))
            elif len(words) == 2 and self.max_n == 2:
                a, b = (ids.setdefault(w, len(ids)) for w in words)
                bigrams.append((a, b, column))
            # longer terms, or of a length outside ngram_range, are never counted
        self.n_tokens = T = max(len(ids), 1)
        # look-ups by id; the last entry answers id -1 (_UNKNOWN)
        self.unigram_column = np.full(T + 1, -1, dtype=np.int64)
        for token, column in unigrams:
            self.unigram_column[token] = column
        keys = np.array([a * T + b for a, b, _ in bigrams], dtype=np.int64)
        self.bigram_keys = pd.Index(keys)
        self.bigram_keys.get_indexer(keys[:1])  # builds its hash table now, before any fork
        self.bigram_column = np.array([c for _, _, c in bigrams] + [-1], dtype=np.int64)
        # dropped before n-grams: one-character runs of the ASCII path, stop words
        for word in chain(_ASCII_WORD_CHARS, counter.get_stop_words() or ()):
            ids[word] = _DROP
        ids[_POST_END] = _END
        self.ids = ids

    @classmethod
    def unsupported(cls, counter: CountVectorizer) -> str | None:
        """Why `counter`'s settings are outside what this reproduces; None if they are not."""
        why = cls.unsupported_settings(counter)
        if why is None and not hasattr(counter, "vocabulary_"):
            return "no fixed vocabulary"
        return why

    @staticmethod
    def unsupported_settings(counter) -> str | None:
        """`unsupported` for the settings alone (a vectoriser not fitted yet)."""
        if counter.analyzer != "word":
            return f"analyzer={counter.analyzer!r}"
        if counter.input != "content":
            return f"input={counter.input!r}"
        if counter.preprocessor is not None or counter.tokenizer is not None:
            return "a custom preprocessor or tokenizer"
        if counter.token_pattern != DEFAULT_TOKEN_PATTERN:
            return f"token_pattern={counter.token_pattern!r}"
        if counter.strip_accents and counter.strip_accents not in ("ascii", "unicode"):
            return f"strip_accents={counter.strip_accents!r}"
        min_n, max_n = counter.ngram_range
        if not 1 <= min_n <= max_n <= 2:
            return f"ngram_range={counter.ngram_range!r}"
        return None

    @classmethod
    def of(cls, counter: CountVectorizer) -> "NgramCounter | None":
        return None if cls.unsupported(counter) else cls(counter)

    def transform(self, docs: Sequence[str]) -> sp.csr_matrix:
        if isinstance(docs, str):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        docs = docs if isinstance(docs, list) else list(docs)
        if not docs:
            return sp.csr_matrix((0, self.n_features), dtype=self.dtype)
        parts = [self._chunk(docs[lo:lo + COUNT_CHUNK]) for lo in range(0, len(docs), COUNT_CHUNK)]
        return parts[0] if len(parts) == 1 else _stack(parts, self.n_features, self.dtype)

    def _chunk(self, docs: list[str]) -> sp.csr_matrix:
        if not set(map(type, docs)) <= {str}:
            # bytes are decoded, None and NaN rejected, by scikit-learn's own rules
            return sp.csr_matrix(self.counter.transform(docs))
        n = len(docs)
        words = _words(docs, self.lower, self.accents, self.findall)
        ids = np.fromiter(map(self.ids.get, words, repeat(_UNKNOWN)), dtype=np.int64, count=len(words))
        del words
        ends = ids == _END
        rows = np.cumsum(ends)  # the post of each word
        kept = ids >= _UNKNOWN  # not _DROP (stop words, one-character runs) nor _END
        ids, rows = ids[kept], rows[kept]
        # the counted (row, column) pairs: unigram at token i, bigram starting at token i
        found = []
        if self.min_n == 1:
            column = self.unigram_column[ids]
            hit = column >= 0
            found.append(rows[hit] * self.n_features + column[hit])
        if self.max_n == 2 and len(ids) > 1:
            first, second = ids[:-1], ids[1:]
            pair = (rows[:-1] == rows[1:]) & (first >= 0) & (second >= 0)
            column = self.bigram_column[self.bigram_keys.get_indexer(first[pair] * self.n_tokens + second[pair])]
            hit = column >= 0
            found.append(rows[:-1][pair][hit] * self.n_features + column[hit])
        keys = np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        # each distinct (row, column) once, with the number of times it occurs
        first_of = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
        counts = np.diff(np.r_[first_of, len(keys)])
        keys = keys[first_of]
        index = np.int32 if max(len(keys), self.n_features) < 2**31 else np.int64
        indptr = np.zeros(n + 1, dtype=index)
        np.cumsum(np.bincount(keys // self.n_features, minlength=n), out=indptr[1:])
        data = np.ones(len(keys), dtype=self.dtype) if self.binary else counts.astype(np.intc).astype(self.dtype)
        return sp.csr_matrix((data, (keys % self.n_features).astype(index), indptr),
                             shape=(n, self.n_features))



def fit_vocabulary(vectorizer, docs: Sequence[str]) -> dict[str, int] | None:
    """The `vocabulary_` that `vectorizer.fit(docs)` (a Count- or TfidfVectorizer) chooses,
    the same terms, indices and dict order, without an n-gram string for every occurrence;
    None when scikit-learn must fit (settings `NgramCounter` does not reproduce, posts that
    are not all `str`, a fixed vocabulary, no term or none left after pruning: its errors).

    How: the tokens (`_words`) are numbered by `pd.factorize`; a bigram is a pair of token
    numbers; the terms are numbered in the order scikit-learn first meets them (a post's
    unigrams, then its bigrams), which is its dict's order; document and total frequencies
    are counted with numpy. scikit-learn sorts the terms alphabetically before pruning (so
    `max_features`' ties are broken by its argsort in that order): tokens are made of word
    characters, all above the space, so a term's alphabetical place is that of (its first
    word, then no second word before any, its second word), and only the distinct tokens
    are sorted as strings."""
    if (getattr(vectorizer, "vocabulary", None) is not None or NgramCounter.unsupported_settings(vectorizer)
            or isinstance(docs, str)):
        return None
    docs = docs if isinstance(docs, list) else list(docs)
    if not docs or not set(map(type, docs)) <= {str}:
        return None
    min_n, max_n = vectorizer.ngram_range
    accents = vectorizer.build_preprocessor().keywords["accent_function"]
    words = _words(docs, bool(vectorizer.lowercase), accents, vectorizer.build_tokenizer())
    codes, tokens = pd.factorize(np.array(words, dtype=object))
    del words
    n_tokens = len(tokens)
    stop = vectorizer.get_stop_words() or frozenset()
    dropped = np.fromiter((len(t) < 2 or t in stop for t in tokens), dtype=bool, count=n_tokens)
    ends = np.fromiter((t == _POST_END for t in tokens), dtype=bool, count=n_tokens)
    rows = np.cumsum(ends[codes])  # the post of each token
    kept = ~dropped[codes]  # "\0" is one character: dropped too
    codes, rows = codes[kept].astype(np.int64), rows[kept]
    width = n_tokens + 1  # a term's key: first word * width + second word + 1 (0: a unigram)
    occurrences = _occurrences(codes, rows, width, min_n, max_n)
    if occurrences is None:
        return None  # scikit-learn raises "empty vocabulary"
    keys, occ_rows = occurrences
    term_of, term_keys = pd.factorize(keys)  # terms numbered in first-occurrence order
    n_terms = len(term_keys)
    # frequencies: total (tf), and in how many posts (df)
    tf = np.bincount(term_of, minlength=n_terms)
    seen = np.sort(occ_rows * n_terms + term_of)  # (post, term) pairs; sorting beats np.unique's hash here
    df = np.bincount(seen[np.r_[True, seen[1:] != seen[:-1]]] % n_terms, minlength=n_terms)
    del seen
    if vectorizer.binary:
        tf = df
    # alphabetical order of the terms, as scikit-learn's _sort_features
    rank = np.empty(n_tokens, dtype=np.int64)
    rank[sorted(range(n_tokens), key=tokens.__getitem__)] = np.arange(n_tokens)
    first, second = term_keys // width, term_keys % width - 1
    alphabetical = np.lexsort((np.where(second >= 0, rank[np.maximum(second, 0)], -1), rank[first]))
    mask = _kept_terms(vectorizer, df[alphabetical], tf[alphabetical], len(docs))
    if mask is None:
        return None  # scikit-learn raises
    index = np.full(n_terms, -1, dtype=np.int64)
    index[alphabetical[mask]] = np.arange(int(mask.sum()))
    vocabulary = {}
    for term in np.flatnonzero(index >= 0):  # first-occurrence order: scikit-learn's dict order
        a, b = int(first[term]), int(second[term])
        vocabulary[tokens[a] if b < 0 else f"{tokens[a]} {tokens[b]}"] = int(index[term])
    return vocabulary


def _occurrences(codes: np.ndarray, rows: np.ndarray, width: int, min_n: int, max_n: int):
    """Every term occurrence's key and post, in the order scikit-learn's analyzer emits them
    (post by post, a post's unigrams, then its bigrams); None when there is none."""
    # an occurrence's place: 2 * (the post's first token) + (place in the post's list)
    start = np.searchsorted(rows, rows)
    local = np.arange(len(codes)) - start
    keys, order, occ_rows = [], [], []
    if min_n == 1:
        keys.append(codes * width)
        order.append(2 * start + local)
        occ_rows.append(rows)
    if max_n == 2 and len(codes) > 1:
        pair = rows[:-1] == rows[1:]
        length = np.bincount(rows)[rows]
        keys.append(codes[:-1][pair] * width + codes[1:][pair] + 1)
        order.append((2 * start + length + local)[:-1][pair])
        occ_rows.append(rows[:-1][pair])
    if not keys or not sum(len(k) for k in keys):
        return None
    sequence = np.argsort(np.concatenate(order), kind="stable")
    return np.concatenate(keys)[sequence], np.concatenate(occ_rows)[sequence]


def _kept_terms(vectorizer, dfs: np.ndarray, tfs: np.ndarray, n_doc: int) -> np.ndarray | None:
    """scikit-learn's _limit_features on the terms in alphabetical order (their document and
    total frequencies): which are kept; None where scikit-learn raises (max_df below min_df,
    no term left)."""
    max_df, min_df, limit = vectorizer.max_df, vectorizer.min_df, vectorizer.max_features
    high = max_df if isinstance(max_df, Integral) else max_df * n_doc
    low = min_df if isinstance(min_df, Integral) else min_df * n_doc
    if high < low:
        return None
    mask = (dfs <= high) & (dfs >= low)
    if limit is not None and mask.sum() > limit:
        dtype = vectorizer.dtype  # X.sum(axis=0) of the count matrix: its dtype, for the same argsort
        tfs = tfs.astype(np.result_type(dtype) if np.dtype(dtype).kind == "f" else np.int_)
        picked = (-tfs[mask]).argsort()[:limit]
        new_mask = np.zeros(len(dfs), dtype=bool)
        new_mask[np.where(mask)[0][picked]] = True
        mask = new_mask
    return mask if mask.any() else None
