"""Slow, obvious float64 NumPy reference for Bernoulli and Poisson mixtures and their entropy sum.

The independent test oracle of ``FastBernoulliMixture`` / ``FastPoissonMixture`` and of their kernel,
written from the densities themselves on dense arrays (not from the natural-parameter form the
kernel uses):

    Bernoulli: log p(x | c) = sum_d x_d log mu_cd + (1 - x_d) log(1 - mu_cd)
    Poisson:   log p(x | c) = sum_d x_d log lam_cd - lam_cd - log(x_d!)

``sample_weight`` is an optional (N,) array of non-negative weights (None: all ones); averages are
``<f> = (1/W) sum_n w_n f_n``.
"""

import numpy as np
from scipy.special import gammaln, logsumexp

FAMILIES = ("bernoulli", "poisson")


def _weights(sample_weight, n):
    return np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)


def log_densities(X, means, family):
    """(N, K) ``log p(x_n | c)``, looping over components."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], means.shape[0]))
    for c, mu in enumerate(np.asarray(means, dtype=np.float64)):
        if family == "bernoulli":
            out[:, c] = np.sum(X * np.log(mu) + (1.0 - X) * np.log(1.0 - mu), axis=1)
        else:
            out[:, c] = np.sum(X * np.log(mu) - mu - gammaln(X + 1.0), axis=1)
    return out


def log_base(X, family):
    """(N,) ``sum_d log h(x_nd)``: 0 (Bernoulli) or ``-sum_d log(x_nd!)`` (Poisson)."""
    X = np.asarray(X, dtype=np.float64)
    return np.zeros(X.shape[0]) if family == "bernoulli" else -np.sum(gammaln(X + 1.0), axis=1)


def e_step(X, weights, means, family, sample_weight=None):
    """Everything one exact E-step gives: sums, nk, sx (K, D), per-row outputs."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.asarray(weights, dtype=np.float64))
    joint = log_densities(X, means, family) + log_pi
    log_norm = logsumexp(joint, axis=1)
    q = np.exp(joint - log_norm[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=1)
    base = log_base(X, family)
    wq = q * w[:, None]
    return {
        "sum_weight": w.sum(),
        "sum_log_norm": w @ log_norm,
        "sum_entropy": w @ entropy,
        "sum_log_base": w @ base,
        "nk": wq.sum(axis=0),
        "sx": wq.T @ X,
        "log_norm": log_norm,
        "responsibilities": q,
        "labels": np.argmax(joint, axis=1),
    }


def m_step(X, q, family, sample_weight=None):
    """Closed-form ``(weights, means)`` from responsibilities (no floor)."""
    w = _weights(sample_weight, q.shape[0])
    wq = q * w[:, None]
    nk = wq.sum(axis=0)
    return nk / w.sum(), (wq.T @ np.asarray(X, dtype=np.float64)) / nk[:, None]


def free_energy(X, q, weights, means, family, sample_weight=None):
    """``F(q, Theta) = <sum_c q_nc (log pi_c + log p(x_n | c)) + H[q_n]>`` for any responsibilities."""
    w = _weights(sample_weight, q.shape[0])
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.asarray(weights, dtype=np.float64))
    joint = log_densities(X, means, family) + log_pi
    with np.errstate(divide="ignore", invalid="ignore"):
        per_row = np.sum(np.where(q > 0, q * (joint - np.log(q)), 0.0), axis=1)
    return (w @ per_row) / w.sum()


def pseudo_entropy(means, family):
    """(K, D) ``A(eta) - eta A'(eta)``: the binary entropy, or ``lam - lam log lam``."""
    mu = np.asarray(means, dtype=np.float64)
    if family == "bernoulli":
        return -mu * np.log(mu) - (1.0 - mu) * np.log(1.0 - mu)
    return mu - mu * np.log(mu)


def poisson_entropy(rates, terms=400):
    """(K, D) the true entropy ``-sum_k p(k) log p(k)`` of Poisson(rate), summed over k < terms."""
    lam = np.asarray(rates, dtype=np.float64)[..., None]
    k = np.arange(terms, dtype=np.float64)
    log_p = k * np.log(lam) - lam - gammaln(k + 1.0)
    return -np.sum(np.exp(log_p) * log_p, axis=-1)


def entropy_sum(X, q, weights, means, family, sample_weight=None, observable_entropy=pseudo_entropy):
    """``S = <H[q_n]> - H[pi] - sum_c qbar_c sum_d H~_cd + <log h(x_n)>`` of responsibilities ``q``
    and parameters ``(weights, means)``."""
    w = _weights(sample_weight, q.shape[0])
    W = w.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        posterior = (w @ -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=1)) / W
        pi = np.asarray(weights, dtype=np.float64)
        prior = -np.sum(np.where(pi > 0, pi * np.log(pi), 0.0))
    qbar = (w @ q) / W
    observable = qbar @ np.sum(observable_entropy(means, family), axis=1)
    data = (w @ log_base(X, family)) / W
    return posterior - prior - observable + data


def truncated_e_step(X, weights, means, family, active, sample_weight=None):
    """The truncated posterior on given sets ``active`` (N, C'): ``q_n`` (N, K) the exact posterior
    restricted to ``K_n`` and renormalised (zero elsewhere), and the truncated free energy
    ``<log sum_{c in K_n} pi_c p(x_n | c)>``, which equals ``F(q, Theta)`` for that q."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.asarray(weights, dtype=np.float64))
    joint = log_densities(X, means, family) + log_pi  # log h included (Poisson)
    rows = np.arange(X.shape[0])[:, None]
    in_set = np.full(joint.shape, -np.inf)
    in_set[rows, active] = joint[rows, active]
    log_norm = logsumexp(in_set, axis=1)
    q = np.exp(in_set - log_norm[:, None])
    return q, (w @ log_norm) / w.sum()
