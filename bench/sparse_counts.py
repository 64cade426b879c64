"""Sparse bag-of-words counts (documents x words) with a Zipf vocabulary and mixture structure, for
the Bernoulli and Poisson mixture benchmarks.

The model (``sparse_counts`` draws from it exactly):

- a background word distribution ``p0_d`` proportional to ``1 / (d + 1) ** zipf_exponent``: word ids are
  frequency ranks, 0 the most frequent, as in a vocabulary sorted by frequency;
- ``n_topics`` topics, each the background with a random subset of ``topic_share`` of the vocabulary
  made ``topic_boost`` times more likely (renormalised), so every topic keeps the Zipf background and
  differs from the others on its own words;
- each document draws a topic ``z_n`` (weights from a symmetric Dirichlet(2)), a length
  ``L_n ~ Poisson(mean_length)`` and ``L_n`` words independently from its topic.

Poisson lengths make the count of each word independent given the topic: ``x_nd ~ Poisson(mean_length
p_{z_n d})``. So the counts are exactly a Poisson mixture with rates ``mean_length * p_td``, and their
binarised form exactly a Bernoulli mixture with ``mu_td = 1 - exp(-mean_length p_td)``: EM has the
generating structure to find. ``mean_length`` is solved for so that the expected density (share of
nonzero entries) is ``density``; the realised density is within a few sqrt(nnz) of it.

Memory and speed: nothing N x D is ever made. Rows are drawn in blocks of about BLOCK_TOKENS
tokens; within a row the words come out sorted (the sorted uniforms of a row are normalised
cumulative sums of exponentials, and the inverse-CDF lookup keeps their order), so repeated words are
adjacent and the row's distinct words and counts follow in one pass with no sort. The output arrays
are allocated once at the expected nnz plus a margin of eight standard deviations (grown if ever
exceeded) and trimmed at the end, so the peak is the matrix itself (12 bytes a nonzero: float64 data,
int32 indices) plus one block's temporaries (about 100 MB) and 16 bytes a row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

BLOCK_TOKENS = 1 << 20  # tokens drawn at once: about ten float64/int64 arrays of this length live
ZIPF_EXPONENT = 1.0
TOPIC_SHARE = 0.02
TOPIC_BOOST = 20.0
_INT32_MAX = np.iinfo(np.int32).max


def topic_distributions(
    n_features, n_topics, rng, zipf_exponent=ZIPF_EXPONENT, topic_share=TOPIC_SHARE, topic_boost=TOPIC_BOOST
):
    """(n_topics, n_features) word distributions: the Zipf background with each topic's random word
    subset boosted, each row summing to 1."""
    background = 1.0 / np.arange(1, n_features + 1, dtype=np.float64) ** zipf_exponent
    n_topic_words = max(1, int(round(topic_share * n_features)))
    weights = np.ones((n_topics, n_features))
    for t in range(n_topics):  # n_topics small: one draw of a word subset each
        weights[t, rng.choice(n_features, n_topic_words, replace=False)] = topic_boost
    p = background * weights
    return p / p.sum(axis=1, keepdims=True)


def expected_distinct_words(mean_length, p):
    """Expected number of distinct words of a document of each topic: sum_d 1 - exp(-L p_td)."""
    return -np.expm1(-mean_length * p).sum(axis=1)


def solve_mean_length(p, topic_weights, target_distinct):
    """The Poisson mean length whose expected distinct words per document is ``target_distinct``
    (bisection on a function increasing in the length)."""
    if not 0 < target_distinct < p.shape[1]:
        raise ValueError(f"density must give between 0 and {p.shape[1]} words a row, not {target_distinct}")
    lo, hi = 0.0, 1.0
    while topic_weights @ expected_distinct_words(hi, p) < target_distinct:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if topic_weights @ expected_distinct_words(mid, p) < target_distinct:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-7 * hi:  # the realised density varies far more
            break
    return 0.5 * (lo + hi)


def sparse_counts(n_samples, n_features, density=0.002, n_topics=20, random_state=0, return_truth=False):
    """Word counts of ``n_samples`` documents over ``n_features`` words as a CSR matrix.

    Returns a ``scipy.sparse.csr_matrix`` of float64 counts (integer-valued, >= 1 where stored) with
    sorted, distinct column indices in each row; indices and indptr are int32 while nnz fits, int64
    otherwise. With ``return_truth`` also a dict: ``labels`` (each row's topic), ``weights`` (topic
    weights), ``rates`` ((n_topics, n_features) Poisson rates of the counts), ``mean_length`` and
    ``expected_nnz`` (given the labels). Deterministic in ``random_state``.
    """
    rng = np.random.default_rng(random_state)
    p = topic_distributions(n_features, n_topics, rng)
    topic_weights = rng.dirichlet(np.full(n_topics, 2.0))
    mean_length = solve_mean_length(p, topic_weights, density * n_features)
    labels = rng.choice(n_topics, size=n_samples, p=topic_weights)
    lengths = rng.poisson(mean_length, size=n_samples)

    distinct = expected_distinct_words(mean_length, p)
    expected_nnz = float(np.bincount(labels, minlength=n_topics) @ distinct)
    # The distinct count of a row is a sum of independent Bernoullis: its variance is at most its mean.
    capacity = int(expected_nnz + 8.0 * np.sqrt(expected_nnz) + 1024)
    index_dtype = np.int32 if capacity <= _INT32_MAX and n_features <= _INT32_MAX else np.int64
    indices = np.empty(capacity, dtype=index_dtype)
    data = np.empty(capacity, dtype=np.float64)
    indptr = np.zeros(n_samples + 1, dtype=np.int64)

    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0  # a uniform below 1 then never falls beyond the last word

    rows_per_block = max(1, int(BLOCK_TOKENS // (mean_length + 1.0)))
    nnz = 0
    for start in range(0, n_samples, rows_per_block):
        stop = min(start + rows_per_block, n_samples)
        words, counts, row_nnz = _block(rng, lengths[start:stop], labels[start:stop], cdf)
        if nnz + len(words) > len(data):  # beyond eight standard deviations: grow (never seen)
            grown = max(2 * len(data), nnz + len(words))
            indices, data = _grow(indices, grown), _grow(data, grown)
        indices[nnz : nnz + len(words)] = words
        data[nnz : nnz + len(words)] = counts
        indptr[start + 1 : stop + 1] = nnz + np.cumsum(row_nnz)
        nnz += len(words)

    # Trimmed in place (realloc), not copied: the spare capacity is returned without a second matrix.
    indices.resize(nnz, refcheck=False)
    data.resize(nnz, refcheck=False)
    if index_dtype == np.int32 and nnz <= _INT32_MAX:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)  # scipy keeps indices and indptr of one dtype
    X = sp.csr_matrix((data, indices, indptr), shape=(n_samples, n_features), copy=False)
    X.has_sorted_indices = True  # true by construction; spares scipy a check
    if not return_truth:
        return X
    truth = {
        "labels": labels,
        "weights": topic_weights,
        "rates": mean_length * p,
        "mean_length": mean_length,
        "expected_nnz": expected_nnz,
    }
    return X, truth


def binarized(X):
    """The 0/1 version of counts ``X`` (what a Bernoulli mixture fits): the same sparsity pattern,
    data all 1.0. It shares ``X``'s index arrays (no copy of them): do not modify them in place."""
    B = sp.csr_matrix((np.ones_like(X.data), X.indices, X.indptr), shape=X.shape, copy=False)
    B.has_sorted_indices = X.has_sorted_indices
    return B


def sparse_binary(n_samples, n_features, density=0.002, n_topics=20, random_state=0):
    """``binarized(sparse_counts(...))``: a Bernoulli mixture's data with the same structure."""
    return binarized(sparse_counts(n_samples, n_features, density, n_topics, random_state))


def _grow(array, size):
    grown = np.empty(size, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _block(rng, lengths, labels, cdf):
    """Distinct words (sorted within each row), their counts, and the number of distinct words per
    row, for rows with these lengths and topics."""
    n_rows, n_features = len(lengths), cdf.shape[1]
    # Rows grouped by topic, each row's slots repeated: the tokens of one topic are contiguous.
    # int32 keys where (row, word) pairs of the block fit: their sort is about 3x faster than int64's.
    key_dtype = np.int32 if n_rows * n_features <= _INT32_MAX else np.int64
    by_topic = np.argsort(labels, kind="stable")
    rows = np.repeat(by_topic.astype(key_dtype), lengths[by_topic])
    ends = np.cumsum(np.bincount(labels, weights=lengths, minlength=len(cdf)).astype(np.int64))
    words = np.empty(len(rows), dtype=key_dtype)
    for topic in np.flatnonzero(np.diff(ends, prepend=0)):
        start, stop = ends[topic - 1] if topic else 0, ends[topic]
        # Sorted uniforms without a sort: partial sums of m + 1 exponentials over their total. Sorted
        # keys make the inverse-CDF lookup several times faster than random ones.
        partial = np.cumsum(rng.standard_exponential(stop - start + 1))
        uniforms = partial[:-1] / partial[-1]
        words[start:stop] = np.searchsorted(cdf[topic], uniforms, side="right")
        # The tokens are exchangeable: a random permutation deals the topic's words to its rows.
        rows[start:stop] = rng.permutation(rows[start:stop])
    np.minimum(words, n_features - 1, out=words)  # a uniform at the CDF's last rounding step
    keys = rows * n_features + words  # (row, word) in row-major order
    del rows, words
    keys.sort()
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    del new
    counts = np.diff(starts, append=len(keys)).astype(np.float64)
    row, word = np.divmod(keys[starts], n_features)
    return word, counts, np.bincount(row, minlength=n_rows)
