"""A catalogue of awkward data sets: the data users meet as soon as theirs are not tidy.

None of these was tuned to make an estimator pass. Every family is small (the whole awkward-data
suite runs in a couple of minutes) and deterministic (fixed seeds).

Every value (data and weights) is exactly representable in float32, so a float32 fit and a float64
fit see the same numbers and any difference between them is the arithmetic's. Base data are
quantised to multiples of 2**-10 (at most ~14 significant bits), which also keeps sums such as
``2 a - b`` of a collinear column exact in both precisions. Scales and weight multipliers are
powers of two (2**27 ~ 1.3e8, 2**-27 ~ 7.5e-9, 2**+-66 ~ 1e+-20): multiplying by them is exact,
so invariance under rescaling can be checked tightly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

SCALE_DOWN = 2.0**-27  # ~7.5e-9
SCALE_UP = 2.0**27  # ~1.3e8
WEIGHT_TINY = 2.0**-66  # ~1.4e-20
WEIGHT_HUGE = 2.0**66  # ~7.4e19


@dataclass(frozen=True)
class AwkwardData:
    """One data set of the catalogue.

    Attributes
    ----------
    X : ndarray (N, D), float64 whose values are exact in float32
    sample_weight : ndarray (N,) or None
    scale : float
        X is ``scale`` times the data of ``base`` (1.0 otherwise): estimators with an absolute
        regulariser get it scaled by ``scale**2``.
    base : str or None
        The family this one is a rescaling (of X or of the weights) of, for invariance checks.
    weight_factor : float
        ``sample_weight`` is ``weight_factor`` times the base family's weights.
    """

    X: np.ndarray
    sample_weight: np.ndarray | None = None
    scale: float = 1.0
    base: str | None = None
    weight_factor: float = 1.0


def _float32_exact(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def _quantised(a):
    """Multiples of 2**-10: exact in float32 and closed under small integer combinations."""
    return np.round(np.asarray(a) * 1024.0) / 1024.0


def _control():
    """Three well separated, correlated Gaussian blobs in five dimensions (the tidy case)."""
    rng = np.random.RandomState(0)
    D = 5
    centres = rng.randn(3, D) * 6.0
    blocks = [rng.randn(80, D) @ (np.eye(D) + 0.4 * rng.randn(D, D)) + centre for centre in centres]
    return _quantised(np.vstack(blocks))


def _correlated(n=240, d=6, seed=1):
    rng = np.random.RandomState(seed)
    return _quantised(rng.randn(n, d) @ (np.eye(d) + 0.5 * rng.randn(d, d)) + 2.0 * rng.randn(d))


def _weights_of(n, seed=2):
    return _float32_exact(np.random.RandomState(seed).uniform(0.5, 2.0, size=n))


def duplicated_column():
    X = _correlated()
    X[:, -1] = X[:, 0]
    return AwkwardData(X)


def collinear_columns():
    X = _correlated()
    X[:, -1] = 2.0 * X[:, 0] - X[:, 1]
    return AwkwardData(X)


def constant_column():
    X = _correlated()
    X[:, 2] = 3.0
    return AwkwardData(X)


def control():
    return AwkwardData(_control())


def scaled_down():
    return AwkwardData(_control() * SCALE_DOWN, scale=SCALE_DOWN, base="control")


def scaled_up():
    return AwkwardData(_control() * SCALE_UP, scale=SCALE_UP, base="control")


def scaled_huge():
    """Values near 1e19 (2**63 times the control data): squares overflow float32."""
    return AwkwardData(_control() * 2.0**63, scale=2.0**63, base="control")


def duplicated_column_scaled_up():
    """A duplicated column on a large scale (2**17 ~ 1.3e5), where absolute noise floors bite."""
    data = duplicated_column()
    return AwkwardData(data.X * 2.0**17, scale=2.0**17, base="duplicated_column")


def single_feature():
    """One feature: every factor model with more than one factor has more factors than features."""
    rng = np.random.RandomState(7)
    return AwkwardData(_quantised(np.r_[rng.randn(100), 0.5 * rng.randn(100) + 4.0][:, None]))


def mixed_column_scales():
    """One variable per unit system: columns scaled by 2**-27 ... 2**27 (1e-8 ... 1e8)."""
    return AwkwardData(_control() * 2.0 ** np.array([-27.0, -13.0, 0.0, 13.0, 27.0]))


def far_offset_1e4():
    return AwkwardData(_float32_exact(_control() + 1e4))


def far_offset_1e6():
    return AwkwardData(_float32_exact(_control() + 1e6 * np.array([1.0, -1.0, 0.5, 2.0, 1.0])))


def broad_and_tight_clusters():
    """One broad cluster (sd 30) around three tight ones (sd 0.03) inside it."""
    rng = np.random.RandomState(3)
    D = 4
    broad = 30.0 * rng.randn(150, D)
    tight = [0.03 * rng.randn(50, D) + 10.0 * rng.randn(D) for _ in range(3)]
    return AwkwardData(_float32_exact(np.vstack([broad, *tight])))


def clusters_far_apart():
    """Four unit-variance clusters 1e5 apart: with three components one must be broad."""
    rng = np.random.RandomState(4)
    D = 3
    blocks = [rng.randn(75, D) + k * 1e5 * np.ones(D) for k in range(4)]
    return AwkwardData(_float32_exact(np.vstack(blocks)))


def wide():
    """N < D: 20 samples of 40 features near a 3-dimensional subspace."""
    rng = np.random.RandomState(5)
    X = rng.randn(20, 3) @ rng.randn(3, 40) + 0.1 * rng.randn(20, 40)
    return AwkwardData(_quantised(X))


def heavy_ties():
    """Eight distinct rows repeated 30 times each, plus 20 scattered rows."""
    rng = np.random.RandomState(6)
    D = 4
    distinct = _quantised(3.0 * rng.randn(8, D))
    X = np.vstack([np.repeat(distinct, 30, axis=0), _quantised(3.0 * rng.randn(20, D))])
    return AwkwardData(X[rng.permutation(X.shape[0])])


def weighted():
    X = _control()
    return AwkwardData(X, _weights_of(X.shape[0]))


def weights_tiny():
    X = _control()
    return AwkwardData(X, _weights_of(X.shape[0]) * WEIGHT_TINY, base="weighted", weight_factor=WEIGHT_TINY)


def weights_huge():
    X = _control()
    return AwkwardData(X, _weights_of(X.shape[0]) * WEIGHT_HUGE, base="weighted", weight_factor=WEIGHT_HUGE)


def digits():
    """scikit-learn's handwritten digits (first 400 rows; 0..16 grey levels, constant pixels)."""
    from sklearn.datasets import load_digits

    return AwkwardData(load_digits().data[:400].astype(np.float64))


def breast_cancer_standardised():
    """scikit-learn's breast cancer data, every column standardised (the usual preprocessing)."""
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    return AwkwardData(_float32_exact((X - X.mean(axis=0)) / X.std(axis=0)))


#: Every family, by name. A new family enters by one line.
FAMILIES = {
    "control": control,
    "duplicated_column": duplicated_column,
    "collinear_columns": collinear_columns,
    "constant_column": constant_column,
    "scaled_down_2^-27": scaled_down,
    "scaled_up_2^27": scaled_up,
    "scaled_huge_2^63": scaled_huge,
    "duplicated_column_x2^17": duplicated_column_scaled_up,
    "single_feature": single_feature,
    "mixed_column_scales": mixed_column_scales,
    "far_offset_1e4": far_offset_1e4,
    "far_offset_1e6": far_offset_1e6,
    "broad_and_tight_clusters": broad_and_tight_clusters,
    "clusters_1e5_apart": clusters_far_apart,
    "wide_N<D": wide,
    "heavy_ties": heavy_ties,
    "weighted": weighted,
    "weights_x2^-66": weights_tiny,
    "weights_x2^66": weights_huge,
    "digits": digits,
    "breast_cancer_standardised": breast_cancer_standardised,
}


@cache
def family(name) -> AwkwardData:
    """The data of family ``name`` (built once per process)."""
    data = FAMILIES[name]()
    assert np.array_equal(data.X, _float32_exact(data.X)), name  # the catalogue's own promise
    return data
