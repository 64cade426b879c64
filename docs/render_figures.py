"""Render the README's figures of a real fit: ``docs/convergence.png`` and ``docs/decomposition.png``.

FastMFA (a mixture of probabilistic PCAs: ``noise='spherical'``, 10 components of 2 factors) on
scikit-learn's digits (1797 x 64), run to a tight tolerance: the fit of the README's "Seeing it
converge" example. Its factor prior ``N(0, I)`` has no free parameter, so the ELBO ``F`` and the
entropy sum ``S`` meet only at convergence (``docs/theory.rst``, MFA): the first panel shows them
meeting, the second the gap closing. It prints what the README's example prints (the README's test
compares the two), then the files it wrote.

The output is deterministic: the fit is (bitwise, for any number of threads), and the PNGs carry no
metadata that changes between runs. Run from anywhere (needs matplotlib; takes a few seconds)::

    python docs/render_figures.py                  # rewrites docs/convergence.png and docs/decomposition.png
    python docs/render_figures.py --output FOLDER  # writes them into FOLDER instead
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastelbo import FastMFA, plot_convergence, plot_decomposition  # noqa: E402

DOCS = Path(__file__).resolve().parent
FIGURES = ("convergence.png", "decomposition.png")
#: PNG metadata: none that changes with the run or the matplotlib version.
METADATA = {"Software": None}


def fit():
    """The README's fit."""
    X = load_digits().data
    return FastMFA(
        n_components=10, n_factors=2, noise="spherical", tol=1e-8, max_iter=1000, random_state=0
    ).fit(X)


def summary(mfa):
    """The lines the README's example prints about the fit (the figure's caption quotes them)."""
    gap = mfa.elbo_history_ - mfa.entropy_sum_history_
    return [
        f"{mfa.n_iter_} iterations, converged_={mfa.converged_}",
        f"F - S: {gap[0]:+.2f} after iteration 1, {gap[29]:+.1e} after 30, "
        f"{gap[-1]:+.1e} after {mfa.n_iter_}",
    ]


def render(mfa, folder):
    """Draw the two figures of ``mfa`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    convergence, decomposition = (folder / name for name in FIGURES)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    ax_values, _ = plot_convergence(mfa, ax=axes)
    ax_values.set_title("FastMFA on digits: ELBO F and entropy sum S")
    fig.savefig(convergence, dpi=110, metadata=METADATA)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    plot_decomposition(mfa, ax=ax)
    fig.savefig(decomposition, dpi=110, metadata=METADATA)
    plt.close(fig)
    return convergence, decomposition


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCS, help="folder for the PNGs (default: docs/)")
    args = parser.parse_args(argv)
    mfa = fit()
    print("\n".join(summary(mfa)))
    paths = render(mfa, args.output)
    print("wrote " + " and ".join(str(path) for path in paths))


if __name__ == "__main__":
    main()
