"""A fast, vectorised NumPy/SciPy EM for Bernoulli and Poisson mixtures on sparse CSR data: the
competitor a NumPy user would write for FastBernoulliMixture and FastPoissonMixture.

Model: ``p(x) = sum_c pi_c prod_d h(x_d) exp(eta_cd x_d - A(eta_cd))``, so that

    log pi_c + log p(x | c) = x @ eta_c + b_c + log pi_c + sum_d log h(x_d),

- Bernoulli: ``eta = logit(mu)``, ``b_c = sum_d log(1 - mu_cd)``, ``h = 1``;
- Poisson: ``eta = log(lambda)``, ``b_c = -sum_d lambda_cd``, ``log h(x) = -log(x!)``.

The data term ``sum_d log h(x_nd)`` is the same for every component: it cancels in the
responsibilities and is added to the log-likelihood only (computed once per fit, O(nnz)).

An iteration, for each block of rows: ``log_joint = X_block @ eta.T + b + log pi`` (SciPy's sparse x
dense product), ``scipy.special.logsumexp`` over the components, responsibilities ``R`` in place, and
the M-step statistics ``nk += R.sum(0)`` and ``S += X_block.T @ R`` (sparse x dense again); then
``means = S / nk``, floored to ``[MEAN_FLOOR, 1 - MEAN_FLOOR]`` (Bernoulli) or ``>= MEAN_FLOOR``
(Poisson), and ``pi = nk / N``. No Python loop runs over rows or components; the loop over blocks
bounds memory: a block's log-joints, of at most ``BLOCK_BYTES`` (64 MiB), replace the N x K
responsibilities a whole-matrix EM would hold. The natural parameters are kept as a C-contiguous
(D, K) array, the layout SciPy's product wants (a transposed view would be copied at every call).
Everything runs on one thread: SciPy's sparse products and NumPy's element-wise work are serial.

The log-likelihood reported for an iteration is the mean ``log p(x_n)`` at the parameters its E-step
used (before its M-step), as ``numpy_em.fit`` reports it; it never decreases (EM).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, logsumexp

FAMILIES = ("bernoulli", "poisson")
MEAN_FLOOR = 1e-10
BLOCK_BYTES = 64 * 2**20
_CHECK_CHUNK = 1 << 20


def floor_means(means, family):
    """Means (probabilities or rates) moved inside the floors, as a new array."""
    _check_family(family)
    if family == "bernoulli":
        return np.clip(means, MEAN_FLOOR, 1.0 - MEAN_FLOOR)
    return np.maximum(means, MEAN_FLOOR)


def natural_parameters(means_dk, family):
    """(eta, b) from (D, K) means: eta (D, K) C-contiguous, b (K,)."""
    _check_family(family)
    if family == "bernoulli":
        log_not = np.log1p(-means_dk)
        eta = np.log(means_dk)
        eta -= log_not
        return eta, log_not.sum(axis=0)
    return np.log(means_dk), -means_dk.sum(axis=0)


def data_term_rows(X, family):
    """(N,) ``sum_d log h(x_nd)``: zeros (Bernoulli), ``-sum_d log(x_nd!)`` (Poisson)."""
    _check_family(family)
    if family == "bernoulli":
        return np.zeros(X.shape[0])
    # A CSR matrix sharing X's index arrays (no copy): only the log-factorials are new.
    log_factorials = sp.csr_matrix((gammaln(X.data + 1.0), X.indices, X.indptr), shape=X.shape, copy=False)
    return -np.asarray(log_factorials.sum(axis=1)).ravel()


def log_joint(X, log_weights, eta, b):
    """(n, K) ``log pi_c + x_n @ eta_c + b_c`` (without the data term) for CSR rows ``X``."""
    out = X @ eta
    out += b + log_weights
    return out


def row_log_likelihood(X, weights, means, family, block_rows=None):
    """(N,) ``log p(x_n)`` with the data term, for (K, D) ``means``; blocks of rows as ``fit``."""
    X = _as_csr(X)
    eta, b = natural_parameters(np.ascontiguousarray(np.asarray(means, dtype=np.float64).T), family)
    log_weights = _log(weights)
    out = np.empty(X.shape[0])
    for start, stop in _blocks(X.shape[0], len(b), block_rows):
        block = X if stop - start == X.shape[0] else X[start:stop]
        out[start:stop] = logsumexp(log_joint(block, log_weights, eta, b), axis=1)
    return out + data_term_rows(X, family)


def em_step(X, weights, means, family, block_rows=None):
    """One EM iteration from (K,) ``weights`` and (K, D) ``means``: returns the new (weights,
    means) and the mean log-likelihood at the given parameters."""
    X = _as_csr(X)
    _check_data(X, family)
    means_dk = np.ascontiguousarray(np.asarray(means, dtype=np.float64).T)
    nk, moments, lse_sum = _statistics(X, _log(weights), *natural_parameters(means_dk, family), block_rows)
    new_weights, new_means_dk = _m_step(nk, moments, family)
    log_likelihood = (lse_sum + data_term_rows(X, family).sum()) / X.shape[0]
    return new_weights, new_means_dk.T, log_likelihood


def fit(X, weights, means, family, n_iter, block_rows=None):
    """``n_iter`` EM iterations from (K,) ``weights`` and (K, D) ``means`` (probabilities or rates,
    floored first). Returns ((weights, means), mean log-likelihoods), the i-th log-likelihood that of
    the parameters the i-th E-step used."""
    X = _as_csr(X)
    _check_data(X, family)
    data_term = data_term_rows(X, family).sum()  # constant: once per fit
    weights = np.asarray(weights, dtype=np.float64)
    means_dk = floor_means(np.ascontiguousarray(np.asarray(means, dtype=np.float64).T), family)
    log_likelihoods = []
    for _ in range(n_iter):
        nk, moments, lse_sum = _statistics(
            X, _log(weights), *natural_parameters(means_dk, family), block_rows
        )
        log_likelihoods.append(float((lse_sum + data_term) / X.shape[0]))
        weights, means_dk = _m_step(nk, moments, family)
    return (weights, means_dk.T), log_likelihoods


def initial_parameters(X, n_components, family, random_state=0):
    """A simple common start (uniform weights; each mean halfway between a distinct random row and
    the column means, floored), for benchmarks and tests that start every system from one point."""
    X = _as_csr(X)
    rng = np.random.default_rng(random_state)
    rows = rng.choice(X.shape[0], size=n_components, replace=False)
    column_means = np.asarray(X.mean(axis=0)).ravel()
    means = 0.5 * (X[rows].toarray() + column_means)
    if family == "bernoulli":
        means = np.minimum(means, 1.0)
    return np.full(n_components, 1.0 / n_components), floor_means(means, family)


def _statistics(X, log_weights, eta, b, block_rows):
    """E-step and M-step sums over blocks of rows: nk (K,), moments S = X^T R (D, K), sum of
    log-sum-exps."""
    n_features, n_components = eta.shape
    nk = np.zeros(n_components)
    moments = None
    lse_sum = 0.0
    for start, stop in _blocks(X.shape[0], n_components, block_rows):
        block = X if stop - start == X.shape[0] else X[start:stop]  # a slice copies its rows
        resp = log_joint(block, log_weights, eta, b)
        log_norm = logsumexp(resp, axis=1)
        lse_sum += log_norm.sum()
        resp -= log_norm[:, None]
        np.exp(resp, out=resp)
        nk += resp.sum(axis=0)
        product = block.T @ resp  # CSC x dense: (D, K)
        if moments is None:
            moments = product
        else:
            moments += product
    return nk, moments, lse_sum


def _m_step(nk, moments, family):
    """(weights, (D, K) floored means) from nk and S = X^T R."""
    # A component no row chose (nk = 0 to round-off) gets means 0, floored, not 0/0.
    means_dk = moments / (nk + 10 * np.finfo(np.float64).eps)
    return nk / nk.sum(), floor_means(means_dk, family)


def _blocks(n_rows, n_components, block_rows):
    if block_rows is None:
        block_rows = max(1, BLOCK_BYTES // (8 * n_components))
    return [(start, min(start + block_rows, n_rows)) for start in range(0, n_rows, block_rows)]


def _log(weights):
    with np.errstate(divide="ignore"):  # a weight of 0 is log 0 = -inf: no row joins it
        return np.log(np.asarray(weights, dtype=np.float64))


def _as_csr(X):
    if not sp.issparse(X):
        raise TypeError("X must be a scipy.sparse matrix")
    X = X.tocsr()
    return X if X.dtype == np.float64 else X.astype(np.float64)


def _check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")


def _check_data(X, family):
    """Bernoulli data are 0/1, Poisson data non-negative integers (one O(nnz) pass per fit)."""
    _check_family(family)
    for start in range(0, X.nnz, _CHECK_CHUNK):  # in chunks: temporaries of a few MiB, not O(nnz)
        values = X.data[start : start + _CHECK_CHUNK]
        if family == "bernoulli":
            valid = np.all((values == 0.0) | (values == 1.0))
        else:
            valid = np.all(values >= 0.0) and np.all(values == np.floor(values))
        if not valid:
            kind = "0/1" if family == "bernoulli" else "non-negative integers"
            raise ValueError(f"{family} data must be {kind}")
