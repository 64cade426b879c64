"""Seconds per EM iteration of FastMFA on 8 x 8 grey image patches (scikit-learn's sample photos).

Compares, on the same data and in one run, one EM iteration (E-step pass + M-step) of

- FastMFA (K components, H factors, diagonal noise),
- a vectorised NumPy MFA iteration (the N x K responsibilities in memory, BLAS products per
  component: what a NumPy user would write), optional (``--numpy``),
- FastGMM with full covariances and the same K, optional (``--gmm``).

Each timing is the best of ``--repeat`` iterations after one warm-up iteration. Run from the
repository root::

    python bench/mfa_patches.py --stride 1 --components 64 --factors 8 --numpy --gmm
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastelbo import FastGMM, FastMFA  # noqa: E402
from real_data import image_patches  # noqa: E402


def numpy_mfa_iteration(X, weights, means, components, noise):
    """One vectorised MFA EM iteration in NumPy (Woodbury log-densities, G&H M-step)."""
    N, D = X.shape
    K, H, _ = components.shape
    log_joint = np.empty((N, K))
    latent = []
    for c in range(K):
        W = components[c].T  # D x H
        scaled = W / noise[c][:, None]
        M = np.eye(H) + W.T @ scaled
        beta = np.linalg.solve(M, scaled.T)  # H x D
        E = X - means[c]
        m = E @ beta.T
        r = E - m @ components[c]
        quad = (r * r) @ (1.0 / noise[c]) + np.einsum("nh,nh->n", m, m)
        log_det = np.linalg.slogdet(M)[1] + np.log(noise[c]).sum()
        log_joint[:, c] = np.log(weights[c]) - 0.5 * (D * np.log(2 * np.pi) + log_det + quad)
        latent.append((m, np.linalg.inv(M)))
    log_norm = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - log_norm[:, None])
    nk = resp.sum(axis=0)
    new_means, new_components = np.empty_like(means), np.empty_like(components)
    new_noise = np.empty_like(noise)
    for c in range(K):
        m, sigma = latent[c]
        q = resp[:, c]
        qm = m * q[:, None]
        gram = np.empty((H + 1, H + 1))
        gram[:H, :H] = nk[c] * sigma + qm.T @ m
        gram[:H, H] = gram[H, :H] = qm.sum(axis=0)
        gram[H, H] = nk[c]
        cross = np.vstack([qm.T @ X, q @ X])  # (H + 1) x D
        augmented = np.linalg.solve(gram, cross)
        new_components[c], new_means[c] = augmented[:H], augmented[H]
        new_noise[c] = np.maximum((q @ (X * X) - np.sum(augmented * cross, axis=0)) / nk[c], 1e-6)
    return float(log_norm.mean()), (nk / N, new_means, new_components, new_noise)


def best_time(step, repeat):
    step()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stride", type=int, default=1, help="patch stride (1: all 531,720 patches)")
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--factors", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--numpy", action="store_true", help="also time the NumPy MFA iteration")
    parser.add_argument("--gmm", action="store_true", help="also time FastGMM(covariance_type='full')")
    args = parser.parse_args()

    X = image_patches(stride=args.stride)
    K, H = args.components, args.factors
    print(f"data: {X.shape[0]} patches x {X.shape[1]} pixels; K={K}, H={H}, n_jobs={args.n_jobs}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        mfa = FastMFA(K, n_factors=H, max_iter=0, init_params="k-means++", random_state=0, n_jobs=args.n_jobs)
        mfa.fit(X)
    print(f"FastMFA initialisation (k-means++ seeds + final pass): {time.perf_counter() - start:.2f} s")
    start_parameters = tuple(np.array(p) for p in mfa._get_parameters())

    def mfa_iteration():
        mfa._m_step(mfa._e_step(X))

    seconds = best_time(mfa_iteration, args.repeat)
    print(
        f"FastMFA: {seconds:.3f} s per iteration "
        f"(log-likelihood {mfa.score(X):.4f} after the timed iterations)"
    )

    if args.numpy:
        weights, means, components, noise = (np.array(p, dtype=np.float64) for p in start_parameters)
        noise = noise if noise.ndim == 2 else np.repeat(noise[:, None], X.shape[1], axis=1)
        state = [(weights, means, components, noise)]

        def numpy_iteration():
            _, state[0] = numpy_mfa_iteration(X, *state[0])

        numpy_seconds = best_time(numpy_iteration, args.repeat)
        print(
            f"NumPy MFA: {numpy_seconds:.3f} s per iteration; "
            f"FastMFA is {numpy_seconds / seconds:.1f}x faster"
        )

    if args.gmm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm = FastGMM(K, covariance_type="full", max_iter=0, init_params="k-means++", random_state=0)
            gmm.set_params(reg_covar=1e-6, n_jobs=args.n_jobs).fit(X)

        def gmm_iteration():
            gmm._m_step(gmm._e_step(X))

        gmm_seconds = best_time(gmm_iteration, args.repeat)
        print(
            f"FastGMM full: {gmm_seconds:.3f} s per iteration; "
            f"FastMFA is {gmm_seconds / seconds:.1f}x faster "
            f"per iteration with {mfa._n_parameters()} parameters against {gmm._n_parameters()}"
        )


if __name__ == "__main__":
    main()
