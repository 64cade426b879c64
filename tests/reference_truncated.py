"""Slow, obvious float64 NumPy references for the large-K machinery: AFK-MC² seeding and the
truncated variational E-step (``shared/THEORY.md`` §2.1 truncated q, §4).

Written from the papers and THEORY.md, one data point at a time, for clarity, not speed.
"""

import numpy as np

from reference import Xoshiro256

_LOG_2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------- AFK-MC²


def _weights(sample_weight, n):
    return np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)


def _draw(rng, probabilities):
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, rng.uniform() * cumulative[-1], side="left"))
    return min(index, len(probabilities) - 1)


def afkmc2_proposal(X, first_row, sample_weight=None):
    """q(x) = 1/2 w d(x, c1)^2 / sum w d^2 + 1/2 w / W (Bachem et al. 2016, weighted)."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    d2 = np.sum((X - X[first_row]) ** 2, axis=1)
    if np.sum(w * d2) == 0:
        return w / w.sum()
    return 0.5 * w * d2 / np.sum(w * d2) + 0.5 * w / w.sum()


def afkmc2(X, n_clusters, chain_length, seed, sample_weight=None):
    """AFK-MC²: the first centre drawn proportional to w, then one Metropolis-Hastings chain of
    ``chain_length`` proposals from q per further centre, target w D(x)^2. Random numbers are drawn
    per chain as (proposal 0), (proposal j, acceptance u_j) for j >= 1, like the kernel."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    rng = Xoshiro256(seed)
    chosen = [_draw(rng, w)]
    if n_clusters == 1:
        return np.array(chosen)
    q = afkmc2_proposal(X, chosen[0], sample_weight)

    def potential(row):
        return min(float(np.sum((X[row] - X[c]) ** 2)) for c in chosen)

    for _ in range(1, n_clusters):
        proposals, uniforms = [], []
        for j in range(chain_length):
            proposals.append(_draw(rng, q))
            uniforms.append(0.0 if j == 0 else rng.uniform())
        x = proposals[0]
        dx = potential(x)
        for j in range(1, chain_length):
            y = proposals[j]
            dy = potential(y)
            if w[y] * dy * q[x] > uniforms[j] * w[x] * dx * q[y]:
                x, dx = y, dy
        chosen.append(x)
    return np.array(chosen)


def kmeans_potential(X, centers, sample_weight=None):
    """sum_n w_n min_c ||x_n - c||^2."""
    X = np.asarray(X, dtype=np.float64)
    w = _weights(sample_weight, X.shape[0])
    d2 = ((X[:, None, :] - np.asarray(centers, dtype=np.float64)[None, :, :]) ** 2).sum(axis=2)
    return float(w @ d2.min(axis=1))
