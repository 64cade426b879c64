"""Slow, obvious float64 NumPy reference for Gaussian-mixture EM and its entropy sum.

This module is the independent test oracle for ``fastelbo``. It is written
directly from ``docs/theory.rst`` for clarity, not speed:
loops over components, explicit full covariance matrices, ``slogdet`` and
``solve`` instead of the precision-Cholesky shortcuts used by fast code.

Conventions follow scikit-learn's ``GaussianMixture`` for ``K`` components and
``D`` features:

==============  =============  =====================================
covariance_type  covariances    precisions_cholesky
==============  =============  =====================================
``"full"``       (K, D, D)      (K, D, D), upper U with P = U U^T
``"tied"``       (D, D)         (D, D), upper U with P = U U^T
``"diag"``       (K, D)         (K, D), 1 / sqrt(var)
``"spherical"``  (K,)           (K,), 1 / sqrt(var)
==============  =============  =====================================

``sample_weight`` is an optional (N,) array of nonnegative weights; ``None``
means all ones. ``W`` is the sum of the weights and averages are
``<f> = (1/W) sum_n w_n f_n``.
"""

import numpy as np
from scipy.special import logsumexp

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

_LOG_2PI = np.log(2.0 * np.pi)
_LOG_2PIE = np.log(2.0 * np.pi * np.e)


# --------------------------------------------------------------------------- helpers


def _as_f64(a):
    """Return ``a`` as a float64 ndarray."""
    return np.asarray(a, dtype=np.float64)


def _check_covariance_type(covariance_type):
    """Raise ValueError for an unknown covariance type."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")


def _sample_weight(sample_weight, n_samples):
    """Return the (N,) float64 sample weights, all ones when ``sample_weight`` is None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=np.float64)
    w = _as_f64(sample_weight)
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if np.any(w < 0):
        raise ValueError("sample_weight must be nonnegative")
    return w


def full_covariance_matrices(covariances, covariance_type, n_components, n_features):
    """Expand covariances of any type into a (K, D, D) stack of full matrices."""
    _check_covariance_type(covariance_type)
    cov = _as_f64(covariances)
    K, D = int(n_components), int(n_features)
    out = np.empty((K, D, D), dtype=np.float64)
    for c in range(K):
        if covariance_type == "full":
            out[c] = cov[c]
        elif covariance_type == "tied":
            out[c] = cov
        elif covariance_type == "diag":
            out[c] = np.diag(cov[c])
        else:  # spherical
            out[c] = cov[c] * np.eye(D)
    return out


def _xlogx(q):
    """Return q * log(q) elementwise with the convention 0 log 0 = 0."""
    q = _as_f64(q)
    out = np.zeros_like(q)
    pos = q > 0
    out[pos] = q[pos] * np.log(q[pos])
    return out


# ------------------------------------------------------------ parameter conversions


def precisions_cholesky_from_covariances(covariances, covariance_type):
    """Return scikit-learn style precisions_cholesky (P = U U^T, U upper) from covariances."""
    _check_covariance_type(covariance_type)
    cov = _as_f64(covariances)

    def one(sigma):
        # Sigma = L L^T (L lower)  =>  P = Sigma^-1 = L^-T L^-1 = U U^T with U = L^-T.
        L = np.linalg.cholesky(sigma)
        L_inv = np.linalg.solve(L, np.eye(sigma.shape[0]))
        return np.triu(L_inv.T)

    if covariance_type == "full":
        return np.stack([one(cov[c]) for c in range(cov.shape[0])])
    if covariance_type == "tied":
        return one(cov)
    if np.any(cov <= 0):
        raise ValueError("variances must be positive")
    return 1.0 / np.sqrt(cov)


def covariances_from_precisions_cholesky(precisions_cholesky, covariance_type):
    """Return covariances from scikit-learn style precisions_cholesky."""
    _check_covariance_type(covariance_type)
    pc = _as_f64(precisions_cholesky)

    def one(U):
        # Sigma = (U U^T)^-1 = U^-T U^-1 = V^T V with V = U^-1.
        V = np.linalg.solve(U, np.eye(U.shape[0]))
        sigma = V.T @ V
        return 0.5 * (sigma + sigma.T)

    if covariance_type == "full":
        return np.stack([one(pc[c]) for c in range(pc.shape[0])])
    if covariance_type == "tied":
        return one(pc)
    return 1.0 / pc**2


# -------------------------------------------------------------------- densities


def log_gaussian_density(X, means, covariances, covariance_type):
    """Return the (N, K) matrix log N(x_n; mu_c, Sigma_c) via slogdet and solve on full matrices."""
    X = _as_f64(X)
    means = _as_f64(means)
    K, D = means.shape
    full = full_covariance_matrices(covariances, covariance_type, K, D)
    out = np.empty((X.shape[0], K), dtype=np.float64)
    for c in range(K):
        sign, logdet = np.linalg.slogdet(full[c])
        if sign <= 0:
            raise ValueError(f"covariance of component {c} is not positive definite")
        diff = X - means[c]  # (N, D)
        sol = np.linalg.solve(full[c], diff.T)  # (D, N) = Sigma^-1 (x - mu)
        maha = np.sum(diff.T * sol, axis=0)  # (N,)
        out[:, c] = -0.5 * (D * _LOG_2PI + logdet + maha)
    return out


def log_joint(X, weights, means, covariances, covariance_type):
    """Return the (N, K) log joint log pi_c + log N(x_n; mu_c, Sigma_c), with log 0 = -inf."""
    weights = _as_f64(weights)
    with np.errstate(divide="ignore"):
        log_pi = np.log(weights)
    return log_pi[np.newaxis, :] + log_gaussian_density(X, means, covariances, covariance_type)


# ------------------------------------------------------------------------ E-step


def e_step(X, weights, means, covariances, covariance_type, sample_weight=None):
    """Return exact posteriors, per-point log-normalisers and entropies, and their weighted sums."""
    X = _as_f64(X)
    w = _sample_weight(sample_weight, X.shape[0])
    lj = log_joint(X, weights, means, covariances, covariance_type)
    log_norm = logsumexp(lj, axis=1)
    resp = np.exp(lj - log_norm[:, np.newaxis])
    entropy = -np.sum(_xlogx(resp), axis=1)
    return {
        "log_norm": log_norm,
        "resp": resp,
        "entropy": entropy,
        "sum_weight": float(np.sum(w)),
        "sum_log_norm": float(np.sum(w * log_norm)),
        "sum_entropy": float(np.sum(w * entropy)),
        "nk": np.sum(w[:, np.newaxis] * resp, axis=0),
    }


# ------------------------------------------------------------- sufficient stats


def sufficient_statistics(X, resp, reference, covariance_type, sample_weight=None):
    """Return weighted sufficient statistics nk, sx, sxx centred at a (K, D) reference r."""
    _check_covariance_type(covariance_type)
    X = _as_f64(X)
    resp = _as_f64(resp)
    ref = _as_f64(reference)
    N, D = X.shape
    K = resp.shape[1]
    w = _sample_weight(sample_weight, N)

    nk = np.zeros(K)
    sx = np.zeros((K, D))
    if covariance_type == "full":
        sxx = np.zeros((K, D, D))
    elif covariance_type == "tied":
        sxx = np.zeros((D, D))
    elif covariance_type == "diag":
        sxx = np.zeros((K, D))
    else:
        sxx = np.zeros(K)

    for c in range(K):
        wq = w * resp[:, c]  # (N,)
        diff = X - ref[c]  # (N, D)
        nk[c] = np.sum(wq)
        sx[c] = np.sum(wq[:, np.newaxis] * diff, axis=0)
        outer = (wq[:, np.newaxis] * diff).T @ diff  # (D, D)
        if covariance_type == "full":
            sxx[c] = outer
        elif covariance_type == "tied":
            sxx += outer
        elif covariance_type == "diag":
            sxx[c] = np.sum(wq[:, np.newaxis] * diff**2, axis=0)
        else:
            sxx[c] = np.sum(wq * np.sum(diff**2, axis=1))
    return {"nk": nk, "sx": sx, "sxx": sxx}


# ------------------------------------------------------------------------ M-step


def m_step(X, resp, reg_covar, covariance_type, sample_weight=None):
    """Return (weights, means, covariances) of the exact two-pass weighted M-step, as sklearn."""
    _check_covariance_type(covariance_type)
    X = _as_f64(X)
    resp = _as_f64(resp)
    N, D = X.shape
    K = resp.shape[1]
    w = _sample_weight(sample_weight, N)
    reg = float(reg_covar)

    nk = np.sum(w[:, np.newaxis] * resp, axis=0) + 10.0 * np.finfo(np.float64).eps
    means = np.empty((K, D))
    for c in range(K):
        means[c] = np.sum((w * resp[:, c])[:, np.newaxis] * X, axis=0) / nk[c]

    # Second pass: centred scatter around the new means.
    scatter = np.empty((K, D, D))
    for c in range(K):
        wq = w * resp[:, c]
        diff = X - means[c]
        scatter[c] = (wq[:, np.newaxis] * diff).T @ diff

    if covariance_type == "full":
        covariances = np.empty((K, D, D))
        for c in range(K):
            covariances[c] = scatter[c] / nk[c] + reg * np.eye(D)
    elif covariance_type == "tied":
        covariances = np.sum(scatter, axis=0) / np.sum(nk) + reg * np.eye(D)
    else:
        diag = np.empty((K, D))
        for c in range(K):
            diag[c] = np.diag(scatter[c]) / nk[c] + reg
        covariances = diag if covariance_type == "diag" else np.mean(diag, axis=1)

    weights = nk / np.sum(nk)
    return weights, means, covariances


# -------------------------------------------------------------- ELBO and entropy


def elbo(X, resp, weights, means, covariances, covariance_type, sample_weight=None):
    """Return the brute-force ELBO F(q, Theta) = <sum_c q (log pi + log N) - sum_c q log q>."""
    X = _as_f64(X)
    resp = _as_f64(resp)
    w = _sample_weight(sample_weight, X.shape[0])
    lj = log_joint(X, weights, means, covariances, covariance_type)
    # Terms with q = 0 contribute 0 even where log pi_c = -inf.
    energy = np.where(resp > 0, resp * np.where(resp > 0, lj, 0.0), 0.0)
    per_point = np.sum(energy, axis=1) - np.sum(_xlogx(resp), axis=1)
    return float(np.sum(w * per_point) / np.sum(w))


def gaussian_entropy(covariance):
    """Return the differential entropy D/2 log(2 pi e) + 1/2 log|Sigma| of N(0, Sigma)."""
    cov = _as_f64(covariance)
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        raise ValueError("covariance is not positive definite")
    return 0.5 * cov.shape[0] * _LOG_2PIE + 0.5 * logdet


def entropy_terms(resp, weights, covariances, covariance_type, n_features, sample_weight=None):
    """Return A, H[pi], sum_c qbar_c H[N(0, Sigma_c)] and the entropy sum S = A - H[pi] - obs."""
    _check_covariance_type(covariance_type)
    resp = _as_f64(resp)
    weights = _as_f64(weights)
    N, K = resp.shape
    D = int(n_features)
    w = _sample_weight(sample_weight, N)
    W = np.sum(w)

    variational = float(np.sum(w * -np.sum(_xlogx(resp), axis=1)) / W)
    prior = float(-np.sum(_xlogx(weights)))
    q_bar = np.sum(w[:, np.newaxis] * resp, axis=0) / W
    full = full_covariance_matrices(covariances, covariance_type, K, D)
    component_entropy = np.array([gaussian_entropy(full[c]) for c in range(K)])
    observable = float(np.sum(q_bar * component_entropy))
    return {
        "variational_entropy": variational,
        "prior_entropy": prior,
        "observable_entropy": observable,
        "entropy_sum": variational - prior - observable,
        "q_bar": q_bar,
        "component_entropy": component_entropy,
    }


# --------------------------------------------------------------------------- EM


def em(
    X,
    weights,
    means,
    covariances,
    covariance_type,
    n_iter,
    reg_covar=0.0,
    sample_weight=None,
):
    """Run n_iter exact EM iterations from Theta^0, recording F, post-M-step F and S each time."""
    _check_covariance_type(covariance_type)
    X = _as_f64(X)
    D = X.shape[1]
    theta = (_as_f64(weights), _as_f64(means), _as_f64(covariances))
    out = {
        "elbo": [],
        "elbo_bruteforce": [],
        "post_mstep_elbo": [],
        "entropy_sum": [],
        "entropy_terms": [],
        "resp": [],
        "params": [],
    }
    for _ in range(int(n_iter)):
        # E-step: q^t from Theta^t; F(q^t, Theta^t) is the mean log-likelihood.
        es = e_step(X, *theta, covariance_type, sample_weight=sample_weight)
        resp = es["resp"]
        out["elbo"].append(es["sum_log_norm"] / es["sum_weight"])
        out["elbo_bruteforce"].append(elbo(X, resp, *theta, covariance_type, sample_weight=sample_weight))
        out["resp"].append(resp)
        # M-step: Theta^{t+1} from q^t.
        theta = m_step(X, resp, reg_covar, covariance_type, sample_weight=sample_weight)
        out["params"].append(theta)
        out["post_mstep_elbo"].append(elbo(X, resp, *theta, covariance_type, sample_weight=sample_weight))
        terms = entropy_terms(resp, theta[0], theta[2], covariance_type, D, sample_weight=sample_weight)
        out["entropy_terms"].append(terms)
        out["entropy_sum"].append(terms["entropy_sum"])
    out["final"] = theta
    return out


# ----------------------------------------------------------------------- k-means


def squared_distances(X, centers):
    """Return the (N, K) matrix of squared Euclidean distances ||x_n - m_k||^2."""
    X = _as_f64(X)
    centers = _as_f64(centers)
    return np.sum((X[:, np.newaxis, :] - centers[np.newaxis, :, :]) ** 2, axis=2)


def lloyd_kmeans(X, centers, n_iter):
    """Run n_iter Lloyd updates from centers; return final (labels, centers, inertia)."""
    X = _as_f64(X)
    centers = _as_f64(centers).copy()
    K = centers.shape[0]
    for _ in range(int(n_iter)):
        labels = np.argmin(squared_distances(X, centers), axis=1)
        new_centers = centers.copy()
        for k in range(K):
            members = labels == k
            if np.any(members):  # empty cluster keeps its old center
                new_centers[k] = np.mean(X[members], axis=0)
        centers = new_centers
    # Final assignment against the returned centers.
    d2 = squared_distances(X, centers)
    labels = np.argmin(d2, axis=1)  # first index on ties
    inertia = float(np.sum(d2[np.arange(X.shape[0]), labels]))
    return labels, centers, inertia


class Xoshiro256:
    """xoshiro256** seeded through splitmix64, as the kernels' generator (csrc .../random.hpp)."""

    _MASK = (1 << 64) - 1

    def __init__(self, seed):
        self._state = []
        x = seed & self._MASK
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & self._MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
            self._state.append(z ^ (z >> 31))

    @classmethod
    def _rotl(cls, x, k):
        return ((x << k) | (x >> (64 - k))) & cls._MASK

    def next(self):
        s = self._state
        result = (self._rotl((s[1] * 5) & self._MASK, 7) * 9) & self._MASK
        t = (s[1] << 17) & self._MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self):
        """Uniform on [0, 1) with 53 random bits."""
        return (self.next() >> 11) * 2.0**-53


def greedy_kmeans_plusplus(X, n_clusters, n_local_trials, seed):
    """Greedy k-means++ without any pruning: each step draws n_local_trials rows with probability
    proportional to D(x)^2 and keeps the one that lowers the potential most (first on ties)."""
    X = _as_f64(X)
    rng = Xoshiro256(seed)
    n = X.shape[0]

    def draw(weights):
        cumulative = np.cumsum(weights)
        return min(int(np.searchsorted(cumulative, rng.uniform() * cumulative[-1], side="left")), n - 1)

    chosen = [draw(np.ones(n))]
    closest = squared_distances(X, X[chosen])[:, 0]
    for _ in range(1, n_clusters):
        candidates = [draw(closest) for _ in range(n_local_trials)]
        potentials = np.minimum(closest[:, None], squared_distances(X, X[candidates])).sum(axis=0)
        best = candidates[int(np.argmin(potentials))]
        chosen.append(best)
        closest = np.minimum(closest, squared_distances(X, X[[best]])[:, 0])
    return np.array(chosen)


# -------------------------------------------------------------------------- data


def _random_rotation(rng, D):
    """Return a random D x D orthogonal matrix."""
    Q, R = np.linalg.qr(rng.standard_normal((D, D)))
    return Q * np.sign(np.diag(R))[np.newaxis, :]


def make_blobs_data(
    n_samples,
    n_features,
    n_components,
    random_state,
    separation=5.0,
    dtype=np.float64,
):
    """Return (X, true_labels) from well-separated, well-conditioned anisotropic Gaussian blobs."""
    rng = np.random.default_rng(random_state)
    N, D, K = int(n_samples), int(n_features), int(n_components)
    if N < K:
        raise ValueError("n_samples must be >= n_components")

    # Covariances: random rotation, eigenvalues in [0.25, 1], so every std <= 1.
    covs = []
    for _ in range(K):
        Q = _random_rotation(rng, D)
        eig = rng.uniform(0.25, 1.0, size=D)
        covs.append((Q * eig) @ Q.T)

    # Means: rejection sampling so that every pair is >= separation apart.
    side = separation * max(2.0, 2.0 * K ** (1.0 / D))
    means = np.empty((K, D))
    k = 0
    tries = 0
    while k < K:
        candidate = rng.uniform(-side / 2, side / 2, size=D)
        if k == 0 or np.min(np.linalg.norm(means[:k] - candidate, axis=1)) >= separation:
            means[k] = candidate
            k += 1
        tries += 1
        if tries > 1000:
            side *= 1.5
            tries = 0

    counts = np.full(K, N // K)
    counts[: N % K] += 1
    X_parts, labels = [], []
    for c in range(K):
        L = np.linalg.cholesky(covs[c])
        X_parts.append(means[c] + rng.standard_normal((counts[c], D)) @ L.T)
        labels.append(np.full(counts[c], c))
    X = np.concatenate(X_parts)
    y = np.concatenate(labels)
    perm = rng.permutation(N)
    return X[perm].astype(dtype), y[perm]


def em_start(X, n_components, covariance_type, random_state, temperature=20.0, reg_covar=1e-3):
    """Return a broad starting Theta^0 = (weights, means, covariances) for EM from soft assignments
    of every point to ``n_components`` random data points."""
    rng = np.random.default_rng(random_state)
    X = _as_f64(X)
    centers = X[rng.choice(X.shape[0], n_components, replace=False)]
    logits = -squared_distances(X, centers) / (2.0 * temperature)
    resp = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return m_step(X, resp, reg_covar, covariance_type)


def precisions_from_covariances(covariances, covariance_type):
    """Return the precisions (inverse covariances) in scikit-learn's ``precisions_`` shape."""
    covariances = _as_f64(covariances)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / covariances
