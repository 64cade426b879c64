"""The kernels compute with subnormal floats flushed to zero on their own threads, and leave the
floating-point environment of the caller (and of pooled OpenMP threads) exactly as they found it."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM, _core

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _well_separated(dtype, n_components=4, n_features=5, n=3000, seed=0):
    """Clusters 30 standard deviations apart: posteriors are sharp, exp() underflows a lot."""
    rng = np.random.RandomState(seed)
    centres = 30.0 * rng.standard_normal((n_components, n_features))
    X = centres[rng.randint(n_components, size=n)] + rng.standard_normal((n, n_features))
    return X.astype(dtype)


def _fit_and_use(covariance_type, dtype, n_jobs):
    X = _well_separated(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(4, covariance_type=covariance_type, max_iter=5, random_state=0, n_jobs=n_jobs).fit(X)
    gmm.predict_proba(X)
    gmm.score_samples(X)
    return gmm


def _python_makes_subnormals():
    tiny = sys.float_info.min
    return tiny / 2 > 0.0 and np.float32(1e-38) / np.float32(100) > 0 and np.float64(tiny) / 4 > 0


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_leaves_subnormal_arithmetic_working(covariance_type, dtype, n_jobs):
    assert not _core._flushes_subnormals()
    _fit_and_use(covariance_type, dtype, n_jobs)
    assert not _core._flushes_subnormals()
    assert _python_makes_subnormals()
    # The OpenMP threads the kernels ran on are back in their original mode too.
    assert _core._pool_flushes_subnormals(2) == [0, 0]


def test_a_callers_flush_mode_is_restored_not_cleared():
    _core._set_flushing_subnormals(True)
    try:
        assert _core._flushes_subnormals()
        _fit_and_use("diag", np.float64, n_jobs=1)
        assert _core._flushes_subnormals()
    finally:
        _core._set_flushing_subnormals(False)
    assert _python_makes_subnormals()


@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernels_flush_subnormal_responsibilities_to_zero(n_threads):
    # Two equal best components (s = 2) and a third whose term exp(-708.3) = 2.4e-308 is normal, so
    # it survives the exp; its responsibility 1.2e-308 would be subnormal and is flushed to 0. The
    # whole row is one float64 spherical problem in one dimension.
    means = np.array([[0.0], [0.0], [np.sqrt(2 * 708.3)]])
    X = np.zeros((64, 1))
    out = _core.gaussian_mixture_pass(
        X,
        None,
        np.log(np.full(3, 1 / 3)),
        means,
        np.ones(3),
        None,
        None,
        "spherical",
        compute_moments=False,
        return_responsibilities=True,
        n_threads=n_threads,
    )
    resp = out["responsibilities"]
    np.testing.assert_array_equal(resp[:, :2], 0.5)
    assert np.all(resp[:, 2] == 0.0)
    assert not _core._flushes_subnormals()
