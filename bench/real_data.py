"""Real data for the benchmarks: the built-in data sets of :mod:`fastelbo.datasets` (files
scikit-learn ships; nothing is downloaded or cached), and the random subsets the cases take.

- ``image_patches``: grey 8 x 8 patches of scikit-learn's two sample photos, each patch's mean removed.
- ``digits``: scikit-learn's 8 x 8 handwritten digits, what ``python -m fastelbo demo`` fits.
- ``breast_cancer``: scikit-learn's breast-cancer measurements, standardised (the factor models').

``subsample`` (also fastelbo's) takes the random subset of rows a case asks for.
"""

from __future__ import annotations

from fastelbo.datasets import GREY_WEIGHTS, breast_cancer, digits, image_patches, subsample

__all__ = ["GREY_WEIGHTS", "breast_cancer", "digits", "image_patches", "subsample"]
