"""New rows that are already what scikit-learn's ``validate_data`` would return (a plain
C-contiguous native float64/float32 ndarray, finite, with the fitted features, for an estimator
fitted without feature names) skip it: about 60 microseconds a call, more than a pass over a few
rows. Everything else goes through it. The shortcut must accept only arrays that ``validate_data``
returns unchanged, silently; every other input keeps scikit-learn's checks and messages.
"""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.utils.validation import validate_data

from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA
from fastelbo._validation import valid_as_given

ESTIMATORS = [
    lambda: FastGMM(2, random_state=0),
    lambda: FastPPCA(2),
    lambda: FastFactorAnalysis(2),
    lambda: FastMFA(2, n_factors=1, random_state=0),
]


def _fitted(make, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make().fit(X)


def _inputs(X):
    """New rows in forms validate_data returns as they are, converts, warns about or refuses."""
    big = np.ascontiguousarray(X[:5]).astype(">f8")
    with_nan, with_inf = X[:5].copy(), X[:5].copy()
    with_nan[1, 2], with_inf[0, 0] = np.nan, np.inf
    huge32 = np.full((3, X.shape[1]), 3e38, dtype=np.float32)  # its sum overflows; the values are finite
    # Partial sums overflow to +inf and -inf: the sum is NaN (a warning, counted once).
    alternating = np.where(np.arange(4)[:, None] % 2 == 0, 1e308, -1e308) * np.ones((4, X.shape[1]))
    return {
        "float64": X[:5].copy(),
        "float32": X[:5].astype(np.float32),
        "one row": X[:1].copy(),
        "huge float32": huge32,
        "alternating 1e308": alternating,
        "Fortran": np.asfortranarray(X[:5]),
        "strided": X[:10:2],
        "big-endian": big,
        "float16": X[:5].astype(np.float16),
        "int": X[:5].astype(np.int64),
        "NaN": with_nan,
        "inf": with_inf,
        "no rows": X[:0].copy(),
        "too few features": X[:5, :-1].copy(),
        "one-dimensional": X[0].copy(),
        "matrix": X[:5].copy().view(np.matrix),
        "memmap-like subclass": X[:5].copy().view(type("Sub", (np.ndarray,), {})),
    }


def test_the_shortcut_itself_never_warns_and_wants_a_feature():
    X = np.random.RandomState(0).standard_normal((40, 6))
    gmm = _fitted(ESTIMATORS[0], X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # validate_data warns about the NaN sum itself, once
        for rows in _inputs(X).values():
            valid_as_given(gmm, rows, 1)
    gmm.n_features_in_ = 0  # no fit has no features; scikit-learn refuses (n, 0) rows in any case
    assert not valid_as_given(gmm, np.zeros((3, 0)), 1)


def _validated(estimator, X):
    """validate_data's result and whether it warned, or the exception it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = validate_data(
                estimator, X, reset=False, dtype=[np.float64, np.float32], ensure_min_samples=1, order="C"
            )
        except (ValueError, TypeError) as error:
            return error, caught
    return out, caught


@pytest.mark.parametrize("make", ESTIMATORS)
def test_only_arrays_validate_data_returns_unchanged_and_silently_are_taken_as_given(make):
    X = np.random.RandomState(0).standard_normal((40, 6))
    estimator = _fitted(make, X)
    taken = set()
    for name, rows in _inputs(X).items():
        if valid_as_given(estimator, rows, 1):
            taken.add(name)
            out, caught = _validated(estimator, rows)
            assert out is rows and not caught, name
    # The plain arrays take the shortcut (float32 whose sum overflows goes through validate_data,
    # which accepts it after its element-wise check).
    assert taken == {"float64", "float32", "one row"}


def test_assume_finite_is_honoured_as_scikit_learn_honours_it():
    X = np.random.RandomState(0).standard_normal((40, 6))
    gmm = _fitted(ESTIMATORS[0], X)
    rows = X[:3].copy()
    rows[0, 0] = np.nan
    assert not valid_as_given(gmm, rows, 1)
    with sklearn.config_context(assume_finite=True):
        assert valid_as_given(gmm, rows, 1)
        assert validate_data(gmm, rows, reset=False) is rows  # scikit-learn does not look either


def test_estimators_fitted_with_feature_names_still_warn_about_arrays_without():
    X = np.random.RandomState(0).standard_normal((40, 3))
    for make in ESTIMATORS:
        estimator = _fitted(make, X)
        # What a fit on a data frame with these column names records (no data frame library needed).
        estimator.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
        assert not valid_as_given(estimator, X[:2].copy(), 1)
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            estimator.score_samples(X[:2].copy())


@pytest.mark.parametrize("make", ESTIMATORS)
def test_bad_rows_keep_scikit_learns_messages(make):
    X = np.random.RandomState(0).standard_normal((40, 6))
    estimator = _fitted(make, X)
    bad = X[:3].copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        estimator.score_samples(bad)
    with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 6 features"):
        estimator.score_samples(X[:3, :5].copy())
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        estimator.score_samples(X[:0].copy())
