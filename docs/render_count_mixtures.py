"""Render the README's picture of the Bernoulli and Poisson mixtures of scikit-learn's digits:
``docs/count_mixture_means.png``.

It fits what the README's "Binary and count data" example fits (FastBernoulliMixture on the pixels
above 7, FastPoissonMixture on the grey levels 0-16 as counts, 10 components each), prints what that
example prints (the README's test compares the two), draws every component's mean as an 8x8 image
(the probability that a pixel is on; the expected grey level), heaviest component first, then prints
the file it wrote.

The output is deterministic: the fits are (bitwise, for any number of threads), and the PNG carries
no metadata that changes between runs. Run from anywhere (needs matplotlib; takes a few seconds)::

    python docs/render_count_mixtures.py                  # rewrites docs/count_mixture_means.png
    python docs/render_count_mixtures.py --output FOLDER  # writes it into FOLDER instead
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastelbo import FastBernoulliMixture, FastPoissonMixture  # noqa: E402

DOCS = Path(__file__).resolve().parent
FIGURE = "count_mixture_means.png"
#: PNG metadata: none that changes with the run or the matplotlib version.
METADATA = {"Software": None}


def fit():
    """The README's two fits."""
    X = load_digits().data
    bernoulli = FastBernoulliMixture(n_components=10, random_state=0).fit(X > 7)
    poisson = FastPoissonMixture(n_components=10, random_state=0).fit(sparse.csr_matrix(X))
    return bernoulli, poisson


def summary(model):
    """The lines the README's example prints about one fit."""
    return [f"{model.n_iter_} {model.converged_}", repr(model.entropy_decomposition())]


def render(bernoulli, poisson, folder):
    """Draw the means of both fits into ``folder``; return the figure's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FIGURE
    rows = [
        (bernoulli, "Bernoulli", "P(pixel > 7)", 1.0),
        (poisson, "Poisson", "expected grey level", 16.0),
    ]
    fig, axes = plt.subplots(2, 10, figsize=(11, 2.9), layout="constrained")
    for ax_row, (model, name, meaning, top) in zip(axes, rows, strict=True):
        order = np.argsort(-model.weights_, kind="stable")
        for ax, c in zip(ax_row, order, strict=True):
            image = ax.imshow(model.means_[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=top)
            ax.set_title(f"{model.weights_[c]:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(name, fontsize=9)
        fig.colorbar(image, ax=list(ax_row), shrink=0.8, label=meaning)
    fig.suptitle("Component means of the digits, heaviest first (titles: mixing weights)", fontsize=10)
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DOCS, help="folder for the PNG (default: docs/)")
    args = parser.parse_args(argv)
    bernoulli, poisson = fit()
    print("\n".join(summary(bernoulli) + summary(poisson)))
    print(f"wrote {render(bernoulli, poisson, args.output)}")


if __name__ == "__main__":
    main()
