"""Slow, obvious float64 NumPy references for the large-K machinery: AFK-MC² seeding and the
truncated variational E-step (``docs/theory.rst``, truncated EM).

Written from the papers and docs/theory.rst, one data point at a time, for clarity, not speed.
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


# --------------------------------------------------------------------------- truncated E-step


def diagonal_log_joint(X, weights, means, variances):
    """(N, K) log pi_c + log N(x_n; mu_c, diag(variances_c)), variances (K, D)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], means.shape[0]))
    for c in range(means.shape[0]):
        diff = X - means[c]
        with np.errstate(divide="ignore"):
            log_weight = np.log(weights[c])
        out[:, c] = (
            log_weight
            - 0.5 * X.shape[1] * _LOG_2PI
            - 0.5 * np.sum(np.log(variances[c]))
            - 0.5 * np.sum(diff**2 / variances[c], axis=1)
        )
    return out


def full_log_joint(X, weights, means, covariances):
    """(N, K) log pi_c + log N(x_n; mu_c, Sigma_c), covariances (K, D, D)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], means.shape[0]))
    for c in range(means.shape[0]):
        diff = X - means[c]
        _, log_det = np.linalg.slogdet(covariances[c])
        mahalanobis = np.sum(diff * np.linalg.solve(covariances[c], diff.T).T, axis=1)
        with np.errstate(divide="ignore"):
            log_weight = np.log(weights[c])
        out[:, c] = log_weight - 0.5 * X.shape[1] * _LOG_2PI - 0.5 * log_det - 0.5 * mahalanobis
    return out


def gaussian_log_joint(X, weights, means, covariances):
    """(N, K) log-joints: covariances (K, D) diagonal variances or (K, D, D) full matrices."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariances.ndim == 3:
        return full_log_joint(X, weights, means, covariances)
    return diagonal_log_joint(X, weights, means, covariances)


def truncated_e_step(
    X, weights, means, variances, active, neighbours, random_candidates, reference=None, sample_weight=None
):
    """The truncated variational E-step of docs/theory.rst (truncated EM), one row at a time.

    Row n's candidates: S_n = K_n ∪ (∪_{c∈K_n} G_c) ∪ {r_n}; its new K_n: the C' largest log-joints
    (ties: smaller index), best first; q_n the posterior restricted to K_n. The neighbour list of b
    is refreshed from the rows whose old best component is b: b, then the G - 1 other candidates they
    evaluated with the largest average log-joint, filled up with the old list. Returns a dict like
    the kernel's (moments about ``reference`` when given: ``sxx`` the diagonal second moments (K, D),
    ``sxx_full`` the full ones (K, D, D)). ``variances``: (K, D) diagonal variances, or (K, D, D)
    covariance matrices (a tied model repeats its one matrix).
    """
    X = np.asarray(X, dtype=np.float64)
    N, C = active.shape
    K, G = neighbours.shape
    w = _weights(sample_weight, N)
    lj = gaussian_log_joint(X, weights, means, variances)
    new_active = np.empty_like(active)
    q = np.empty((N, C))
    log_norm = np.empty(N)
    entropy = np.empty(N)
    scores = [dict() for _ in range(K)]
    for n in range(N):
        candidates = set(active[n].tolist())
        for c in active[n]:
            candidates.update(neighbours[c].tolist())
        if random_candidates is not None:
            candidates.add(int(random_candidates[n]))
        ranked = sorted(candidates, key=lambda c: (-lj[n, c], c))
        best = ranked[:C]
        new_active[n] = best
        values = lj[n, best]
        log_norm[n] = np.logaddexp.reduce(values)
        q[n] = np.exp(values - log_norm[n])
        entropy[n] = -np.sum(q[n] * np.log(q[n], where=q[n] > 0, out=np.zeros(C)))
        b = int(active[n, 0])
        for c in candidates:
            if c != b:
                total, count = scores[b].get(c, (0.0, 0))
                scores[b][c] = (total + lj[n, c], count + 1)
    new_neighbours = neighbours.copy()
    for b in range(K):
        if not np.any(active[:, 0] == b):
            continue
        ranked = sorted(scores[b], key=lambda c: (-scores[b][c][0] / scores[b][c][1], c))[: G - 1]
        listed = [b, *ranked]
        listed += [c for c in neighbours[b] if c not in listed][: G - len(listed)]
        new_neighbours[b] = listed
    out = {
        "active": new_active,
        "responsibilities": q,
        "log_norm": log_norm,
        "neighbours": new_neighbours,
        "sum_weight": float(w.sum()),
        "sum_log_norm": float(w @ log_norm),
        "sum_entropy": float(w @ entropy),
    }
    nk = np.zeros(K)
    sx = np.zeros((K, X.shape[1]))
    sxx = np.zeros((K, X.shape[1]))
    sxx_full = np.zeros((K, X.shape[1], X.shape[1]))
    for n in range(N):
        for j, c in enumerate(new_active[n]):
            nk[c] += w[n] * q[n, j]
            if reference is not None:
                diff = X[n] - reference[c]
                sx[c] += w[n] * q[n, j] * diff
                sxx[c] += w[n] * q[n, j] * diff**2
                sxx_full[c] += w[n] * q[n, j] * np.outer(diff, diff)
    out["nk"] = nk
    if reference is not None:
        out["sx"] = sx
        out["sxx"] = sxx
        out["sxx_full"] = sxx_full
    return out


def truncated_log_likelihood_bound(X, weights, means, variances, active):
    """<log sum_{c in K_n} pi_c N(x_n | c)> for given sets (unweighted)."""
    lj = gaussian_log_joint(X, weights, means, variances)
    return float(np.mean(np.logaddexp.reduce(np.take_along_axis(lj, active, axis=1), axis=1)))
