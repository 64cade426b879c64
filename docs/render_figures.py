"""Render the README's figures of a real fit: ``docs/convergence.png`` and ``docs/decomposition.png``.

FastMFA (a mixture of probabilistic PCA: ``noise='spherical'``, 10 components of 4 factors) on
scikit-learn's digits (1797 x 64), run to a tight tolerance. Its factor prior ``N(0, I)`` has no free
parameter, so the ELBO ``F`` and the entropy sum ``S`` meet only at convergence
(``docs/theory.rst``, MFA): the first panel shows them meeting, the second the gap closing.

Run from anywhere (needs matplotlib; takes a few seconds)::

    python docs/render_figures.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastelbo import FastMFA, plot_convergence, plot_decomposition  # noqa: E402

DOCS = Path(__file__).resolve().parent


def fit():
    X = load_digits().data
    return FastMFA(
        n_components=10, n_factors=4, noise="spherical", tol=1e-8, max_iter=1000, random_state=0
    ).fit(X)


def main():
    mfa = fit()
    decomposition = mfa.entropy_decomposition()
    print(f"{mfa.n_iter_} iterations, converged_={mfa.converged_}")
    print(decomposition)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    ax_values, _ = plot_convergence(mfa, ax=axes)
    ax_values.set_title("FastMFA on digits: ELBO F and entropy sum S")
    fig.savefig(DOCS / "convergence.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    plot_decomposition(mfa, ax=ax)
    fig.savefig(DOCS / "decomposition.png", dpi=110)
    print(f"wrote {DOCS / 'convergence.png'} and {DOCS / 'decomposition.png'}")


if __name__ == "__main__":
    main()
