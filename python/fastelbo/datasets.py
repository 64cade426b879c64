"""Built-in data sets, from files scikit-learn ships (nothing is downloaded or cached).

- ``image_patches``: grey 8 x 8 patches of scikit-learn's two sample photos (china.jpg, flower.jpg),
  each patch's mean removed, the data of a Gaussian-mixture patch prior (Zoran & Weiss's EPLL).
- ``digits``: scikit-learn's 8 x 8 handwritten digits, what ``fastelbo demo`` fits.
- ``breast_cancer`` and ``wine``: scikit-learn's measurements, standardised (their raw features
  differ in scale by orders of magnitude).
- ``iris``: scikit-learn's iris measurements, as they are (all in centimetres).

:func:`~fastelbo.datasets.load_dataset` loads one by the name the command line uses
(:data:`~fastelbo.datasets.DATASETS`), and :func:`~fastelbo.datasets.subsample` takes a random
subset of the rows of one.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DATASETS",
    "breast_cancer",
    "digits",
    "image_patches",
    "iris",
    "load_dataset",
    "subsample",
    "wine",
]

# ITU-R BT.601 luma weights of R, G and B.
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def image_patches(size: int = 8, stride: int = 1, dtype="float64") -> np.ndarray:
    """Every ``size`` x ``size`` patch of scikit-learn's two sample photos, in grey, mean removed.

    Parameters
    ----------
    size : int
        Side of a square patch in pixels.
    stride : int
        Step between neighbouring patches in both directions; 1 takes every overlapping patch
        (265,860 per 427 x 640 photo at ``size=8``, 531,720 in all).
    dtype : str or numpy dtype
        Type of the result; the patches are computed in float64 and rounded once.

    Returns
    -------
    ndarray of shape (n_patches, size * size)
        Rows are patches in row-major pixel order, china.jpg's first; grey levels scaled to [0, 1]
        before each patch's own mean (its DC component) is subtracted, so each row sums to zero and
        the data span only ``size * size - 1`` dimensions.
    """
    from sklearn.datasets import load_sample_images

    try:
        images = load_sample_images().images
    except ImportError:  # scikit-learn reads the JPEG files with Pillow, which it does not require
        raise ImportError(
            "image_patches needs Pillow to read scikit-learn's sample photos: pip install pillow "
            "(or pip install fastelbo[datasets])"
        ) from None
    rows = []
    for image in images:
        grey = image @ np.asarray(GREY_WEIGHTS) / 255.0
        windows = np.lib.stride_tricks.sliding_window_view(grey, (size, size))[::stride, ::stride]
        rows.append(windows.reshape(-1, size * size))
    patches = np.concatenate(rows)
    patches -= patches.mean(axis=1, keepdims=True)
    return patches.astype(dtype, copy=False)


def digits(dtype="float64") -> np.ndarray:
    """scikit-learn's digits: 1797 images of 8 x 8 grey levels 0 to 16, one per row.

    Several border pixels are 0 in every image, so the data's covariance is singular.
    """
    from sklearn.datasets import load_digits

    return load_digits().data.astype(dtype)


def _standardised(X, dtype):
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(dtype)


def breast_cancer(dtype="float64") -> np.ndarray:
    """scikit-learn's breast-cancer data (569 x 30), each feature standardised to mean 0, variance 1:
    its raw features differ in scale by five orders of magnitude."""
    from sklearn.datasets import load_breast_cancer

    return _standardised(load_breast_cancer().data, dtype)


def wine(dtype="float64") -> np.ndarray:
    """scikit-learn's wine data (178 x 13), each feature standardised to mean 0, variance 1: its raw
    features differ in scale by three orders of magnitude."""
    from sklearn.datasets import load_wine

    return _standardised(load_wine().data, dtype)


def iris(dtype="float64") -> np.ndarray:
    """scikit-learn's iris measurements (150 x 4, centimetres), as they are."""
    from sklearn.datasets import load_iris

    return load_iris().data.astype(dtype)


#: The data sets :func:`~fastelbo.datasets.load_dataset` knows, by name; ``patches`` is
#: :func:`~fastelbo.datasets.image_patches` with its defaults (every overlapping 8 x 8 patch:
#: 531,720 x 64).
DATASETS = {
    "digits": digits,
    "wine": wine,
    "breast_cancer": breast_cancer,
    "iris": iris,
    "patches": image_patches,
}


def load_dataset(name: str, dtype="float64") -> np.ndarray:
    """The built-in data set ``name`` (a key of :data:`~fastelbo.datasets.DATASETS`) as an array of ``dtype``.

    Raises
    ------
    ValueError
        If ``name`` is not a built-in data set.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](dtype=dtype)


def subsample(X: np.ndarray, n_samples: int, name: str = "the", seed: int = 0) -> np.ndarray:
    """``n_samples`` rows of X (all of them, in order, when it has exactly that many): a random
    subset in the original order, which spreads the rows over all of the data (both photos, say).

    Raises
    ------
    ValueError
        If X has fewer than ``n_samples`` rows (``name`` names the data in the message).
    """
    if n_samples > len(X):
        raise ValueError(f"{name} data have {len(X)} rows, {n_samples} asked for")
    if n_samples == len(X):
        return X
    return X[subsample_rows(len(X), n_samples, seed)]


def subsample_rows(n_rows: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """The rows :func:`subsample` takes from ``n_rows`` rows (positions, increasing), for
    ``n_samples < n_rows``."""
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=n_samples, replace=False))
