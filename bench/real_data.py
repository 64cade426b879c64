"""Real data for the benchmarks: the built-in data sets of :mod:`fastelbo.datasets` (files
scikit-learn ships; nothing is downloaded or cached), and the random subsets the cases take.

- ``image_patches``: grey 8 x 8 patches of scikit-learn's two sample photos, each patch's mean removed.
- ``digits``: scikit-learn's 8 x 8 handwritten digits, what ``python -m fastelbo demo`` fits.
- ``breast_cancer``: scikit-learn's breast-cancer measurements, standardised (the factor models').

``subsample`` takes the random subset of rows a case asks for.
"""

from __future__ import annotations

import numpy as np

from fastelbo.datasets import GREY_WEIGHTS, breast_cancer, digits, image_patches

__all__ = ["GREY_WEIGHTS", "breast_cancer", "digits", "image_patches", "subsample"]


def subsample(X: np.ndarray, n_samples: int, name: str, seed: int = 0) -> np.ndarray:
    """``n_samples`` rows of X (all of them, in order, when it has exactly that many): a random
    subset in the original order, which spreads the rows over all of the data (both photos, say)."""
    if n_samples > len(X):
        raise ValueError(f"{name} data have {len(X)} rows, {n_samples} asked for")
    if n_samples == len(X):
        return X
    rows = np.random.default_rng(seed).choice(len(X), size=n_samples, replace=False)
    return X[np.sort(rows)]
