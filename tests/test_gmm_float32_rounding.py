"""float32 FastGMM fits whose covariances float32 cannot hold are reported (Float32RangeWarning).

The size of the effect, ``rounding_cost``, is checked against a direct evaluation of what the
M-step maximises (the expected log-likelihood under fixed responsibilities) at the float64 and the
float32-rounded covariances.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import load_digits, load_iris

from fastelbo import FastGMM
from fastelbo.exceptions import Float32RangeWarning
from fastelbo.mixture._covariance import rounding_cost

REG_COVAR = 1e-6


def _duplicated_column_data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(300, 3) * [1.0, 3.0, 0.5]
    X[:150] += 4
    return np.c_[X, X[:, 0]]  # the last column repeats the first: a variance held by reg_covar


def _m_step_covariances(X, resp, covariance_type):
    """The M-step's covariances (scikit-learn's formulas, float64) and the component weights."""
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    scatters = np.array(
        [(resp[:, c, None] * (X - means[c])).T @ (X - means[c]) / nk[c] for c in range(len(nk))]
    )
    D = X.shape[1]
    if covariance_type == "full":
        covariances = scatters + REG_COVAR * np.eye(D)
    elif covariance_type == "tied":
        covariances = np.einsum("k,kij->ij", nk, scatters) / nk.sum() + REG_COVAR * np.eye(D)
    elif covariance_type == "diag":
        covariances = np.einsum("kii->ki", scatters) + REG_COVAR
    else:
        covariances = np.einsum("kii->k", scatters) / D + REG_COVAR
    return nk / nk.sum(), means, covariances


def _expected_log_likelihood(X, resp, means, covariances, covariance_type):
    """(1/N) sum_n sum_c q_nc log N(x_n; mu_c, Sigma_c), summed directly with SciPy."""
    D = X.shape[1]
    total = 0.0
    for c in range(resp.shape[1]):
        if covariance_type == "full":
            covariance = covariances[c]
        elif covariance_type == "tied":
            covariance = covariances
        elif covariance_type == "diag":
            covariance = np.diag(covariances[c])
        else:
            covariance = covariances[c] * np.eye(D)
        total += resp[:, c] @ multivariate_normal(means[c], covariance).logpdf(X)
    return total / X.shape[0]


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_rounding_cost_is_the_change_of_the_m_step_objective(covariance_type):
    X = _duplicated_column_data()
    resp = np.random.RandomState(1).dirichlet(np.ones(2), size=X.shape[0])
    weights, means, exact = _m_step_covariances(X, resp, covariance_type)
    rounded = exact.astype(np.float32).astype(np.float64)
    expected = abs(
        _expected_log_likelihood(X, resp, means, rounded, covariance_type)
        - _expected_log_likelihood(X, resp, means, exact, covariance_type)
    )
    cost = rounding_cost(exact, rounded, covariance_type, weights, REG_COVAR, X.shape[1])
    # The direct sums lose ~1e-13 absolutely; the costs of full and tied are ~1e-3 here.
    assert cost == pytest.approx(expected, rel=1e-6, abs=1e-11)
    if covariance_type in ("full", "tied"):
        assert cost > 1e-4  # the duplicated direction: float32 moves its variance by a large fraction


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_a_float32_fit_of_a_duplicated_column_warns_that_float32_cannot_hold_it(covariance_type):
    X = _duplicated_column_data().astype(np.float32)
    with pytest.warns(Float32RangeWarning, match="Fit float64 data, or raise reg_covar"):
        FastGMM(2, covariance_type=covariance_type, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32RangeWarning)
        FastGMM(2, covariance_type=covariance_type, random_state=0).fit(X.astype(np.float64))


@pytest.mark.parametrize(
    "data, covariance_type",
    [(load_iris().data, "full"), (load_digits().data, "diag"), (load_digits().data, "tied")],
)
def test_float32_fits_that_float32_holds_do_not_warn(data, covariance_type):
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32RangeWarning)
        FastGMM(3, covariance_type=covariance_type, random_state=0).fit(data.astype(np.float32))


def test_the_warning_describes_the_kept_run_of_several(monkeypatch):
    """With n_init > 1 the warning reads the rounding of the run whose parameters are returned,
    not of the last run: here the first run is kept and only its M-steps lose to rounding."""
    import fastelbo.mixture._gaussian as gaussian_module

    runs = {"started": 0}
    original_initialize = FastGMM._initialize_parameters

    def counting_initialize(self, *args, **kwargs):
        runs["started"] += 1
        return original_initialize(self, *args, **kwargs)

    monkeypatch.setattr(FastGMM, "_initialize_parameters", counting_initialize)
    monkeypatch.setattr(gaussian_module, "rounding_cost", lambda *args: 1.0 if runs["started"] == 1 else 0.0)
    monkeypatch.setattr(FastGMM, "_improves_on", lambda self, value, best: not np.isfinite(best))
    X = load_iris().data.astype(np.float32)
    with pytest.warns(Float32RangeWarning, match="float32 cannot hold"):
        FastGMM(3, n_init=2, random_state=0).fit(X)
    assert runs["started"] == 2
