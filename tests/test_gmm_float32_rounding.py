"""float32 FastGMM fits whose covariances float32 cannot hold are reported (Float32RangeWarning)
and continued in float64; float32 means are stored with the covariances about them.

The size of the effect, ``rounding_cost``, is checked against a direct evaluation of what the
M-step maximises (the expected log-likelihood under fixed responsibilities) at the float64 and the
float32-rounded covariances.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import load_digits, load_iris

from fastelbo import FastGMM
from fastelbo._row_source import RowSource
from fastelbo.exceptions import Float32RangeWarning
from fastelbo.mixture._covariance import rounding_cost
from fastelbo.mixture._gaussian_mstep import about_stored_means

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
    with pytest.warns(Float32RangeWarning, match="continues in float64"):
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


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_fit_float32_cannot_hold_continues_in_float64_to_the_float64_answer(covariance_type, streamed):
    X = _duplicated_column_data()
    X32 = X.astype(np.float32)
    with pytest.warns(Float32RangeWarning, match="continues in float64"):
        fitted = FastGMM(2, covariance_type=covariance_type, tol=1e-8, max_iter=2000, random_state=0).fit(
            RowSource(X32, block_rows=64) if streamed else X32
        )
    assert fitted.means_.dtype == fitted.covariances_.dtype == fitted.weights_.dtype == np.float64
    # Both phases are the fit's: one history entry per iteration, the last one the lower bound.
    assert len(fitted.elbo_history_) == len(fitted.entropy_sum_history_) == fitted.n_iter_
    assert fitted.lower_bound_ == fitted.elbo_history_[-1]
    assert fitted.converged_
    # The float64 fit of the float32-exact data from the float64 fit's own start reaches the same
    # optimum; the variance along the duplicated direction is reg_covar, as float64 holds it.
    reference = FastGMM(2, covariance_type=covariance_type, tol=1e-8, max_iter=2000, random_state=0)
    reference.fit(X32.astype(np.float64))
    assert fitted.score(X32.astype(np.float64)) == pytest.approx(
        reference.score(X32.astype(np.float64)), abs=1e-6
    )
    covariances = np.atleast_3d(fitted.covariances_.T).T if covariance_type == "tied" else fitted.covariances_
    for covariance in covariances.reshape(-1, 4, 4):
        assert np.linalg.eigvalsh(covariance)[0] == pytest.approx(REG_COVAR, rel=1e-6)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_means_far_from_the_origin_are_stored_with_the_scatter_about_them(covariance_type):
    """The M-step's covariances, re-centred on the means as float32 stores them, equal the
    scatter about those stored means computed directly."""
    X = _duplicated_column_data()[:, :3] + [1e6, -2e6, 3e5]  # float32 spacing 0.06 to 0.25 there
    resp = np.random.RandomState(1).dirichlet(np.ones(2), size=X.shape[0])
    weights, means, exact = _m_step_covariances(X, resp, covariance_type)
    stored, recentred = about_stored_means(weights, means, exact, covariance_type, np.float32)
    assert np.array_equal(stored, means.astype(np.float32).astype(np.float64))
    assert np.any(stored != means)
    nk = resp.sum(axis=0)
    direct = np.array(
        [(resp[:, c, None] * (X - stored[c])).T @ (X - stored[c]) / nk[c] for c in range(2)]
    ) + REG_COVAR * np.eye(3)
    if covariance_type == "tied":
        direct = np.einsum("k,kij->ij", weights, direct)
    elif covariance_type == "diag":
        direct = np.einsum("kii->ki", direct)
    elif covariance_type == "spherical":
        direct = np.einsum("kii->k", direct) / 3
    assert recentred == pytest.approx(direct, rel=1e-9)
    # float64 means are stored as they are: nothing changes.
    same_means, same = about_stored_means(weights, means, exact, covariance_type, np.float64)
    assert np.array_equal(same_means, means) and np.array_equal(same, exact)


@pytest.mark.parametrize("n_active", [None, 2])
def test_the_float32_phase_ends_at_the_first_m_step_float32_cannot_hold(n_active):
    """Iterating on in float32 past that point only moves the parameters by rounding (the ELBO
    jumps by the rounding cost, and a rescaled copy of X wanders elsewhere); stopping there makes
    the fit of X * 2**17 (reg_covar * 2**34) the fit of X, iteration by iteration."""
    X = _duplicated_column_data().astype(np.float32)
    scale = 2.0**17
    fits = []
    for factor in (1.0, scale):
        with pytest.warns(Float32RangeWarning, match="continues in float64"):
            fits.append(
                FastGMM(3, n_active=n_active, reg_covar=REG_COVAR * factor**2, random_state=0).fit(X * factor)
            )
    plain, scaled = fits
    assert plain.n_iter_ == scaled.n_iter_
    shift = X.shape[1] * np.log(scale)
    # The first M-step already loses to rounding: it is redone in float64 from the start (the
    # initial parameters rounded to float32, so the first ELBOs agree to float32 precision), and
    # from there the fits are equal to float64 round-off.
    assert scaled.elbo_history_[0] + shift == pytest.approx(plain.elbo_history_[0], rel=1e-5)
    assert scaled.elbo_history_[1:] + shift == pytest.approx(plain.elbo_history_[1:], rel=1e-9, abs=1e-9)
    # After its first iteration the ELBO of the float64 phase never decreases beyond round-off.
    assert np.all(np.diff(plain.elbo_history_[1:]) > -1e-9)


def _wide_duplicated_column_data():
    """Three clusters, the first column of standard deviation 30 repeated: float32 rounds the
    covariance along the duplicated direction (reg_covar = 1e-6 beside variances of ~900) to a
    matrix that is not positive definite."""
    rng = np.random.RandomState(0)
    X = rng.randn(600, 3) * [30.0, 3.0, 0.5]
    X[:200] += 4
    X[200:400] -= [3, 0, 4]
    return np.c_[X, X[:, 0]].astype(np.float32)


def test_a_float32_covariance_that_rounds_to_indefinite_continues_in_float64():
    X32 = _wide_duplicated_column_data()
    X64 = X32.astype(np.float64)
    reference = FastGMM(3, random_state=0).fit(X64)
    with pytest.warns(Float32RangeWarning, match="not positive definite"):
        fitted = FastGMM(3, random_state=0).fit(X32)
    assert fitted.means_.dtype == np.float64
    assert fitted.score(X64) == pytest.approx(reference.score(X64), abs=1e-9)
    # The same from float64 initial parameters: the float32 M-step cannot store its covariances.
    start = dict(
        weights_init=reference.weights_, means_init=reference.means_, precisions_init=reference.precisions_
    )
    with pytest.warns(Float32RangeWarning, match="continues in float64"):
        restarted = FastGMM(3, **start).fit(X32)
    restarted64 = FastGMM(3, **start).fit(X64)
    # One float32 E-step first (its statistics to float32 precision), then float64.
    assert restarted.score(X64) == pytest.approx(restarted64.score(X64), abs=1e-6)


@pytest.mark.parametrize("max_iter", [1, 2, 3, 50])
def test_max_iter_counts_the_float32_and_float64_iterations_together(max_iter):
    X = _duplicated_column_data().astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = FastGMM(3, tol=0.0, max_iter=max_iter, random_state=0).fit(X)
    assert fitted.means_.dtype == np.float64
    assert fitted.n_iter_ == len(fitted.elbo_history_) == max_iter


def test_restarts_are_compared_after_their_float64_continuation(monkeypatch):
    """With n_init > 1 every run that float32 cannot hold goes on in float64 before the runs are
    compared: the fit keeps the run whose continued ELBO is best, each run as it ends when fitted
    alone. (Whether float32 and float64 input find the same runs depends on rounding: a float32
    phase may go on to another optimum.)"""
    rng = np.random.RandomState(0)
    centres = rng.uniform(-10, 10, size=(12, 2))
    X = np.vstack([c + rng.randn(150, 2) * rng.uniform(0.3, 1.5) for c in centres])
    X32 = np.c_[X, X[:, 0]].astype(np.float32)
    starts = []  # the random state each run of n_init starts from, to fit it alone
    initialize = FastGMM._initialize_parameters

    def recording(self, X, random_state, sample_weight=None):
        starts.append(random_state.get_state())
        return initialize(self, X, random_state, sample_weight)

    monkeypatch.setattr(FastGMM, "_initialize_parameters", recording)
    kwargs = dict(init_params="random_from_data", reg_covar=1e-5)
    for seed in range(3):
        starts.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Float32RangeWarning)
            fitted = FastGMM(8, n_init=4, random_state=seed, **kwargs).fit(X32)
            runs = []
            for state in list(starts):
                random_state = np.random.RandomState()
                random_state.set_state(state)
                runs.append(FastGMM(8, random_state=random_state, **kwargs).fit(X32))
        assert any(run.means_.dtype == np.float64 for run in runs)  # some runs were continued
        best = max(runs, key=lambda run: run.lower_bound_)
        assert fitted.lower_bound_ == best.lower_bound_
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_array_equal(getattr(fitted, name), getattr(best, name), err_msg=name)


def test_a_warm_start_on_float32_data_keeps_parameters_float32_cannot_hold_in_float64():
    """Refitting a continued fit on the same float32 data goes on in float64 at once: no float32
    iteration that rounds the parameters again (the ELBO dipped by 3.5e-3 there), the same
    iterations as a float64 warm start."""
    X32 = _duplicated_column_data().astype(np.float32)
    with pytest.warns(Float32RangeWarning):
        fitted = FastGMM(2, covariance_type="tied", tol=1e-8, max_iter=500, random_state=0).fit(X32)
    assert fitted.means_.dtype == np.float64
    double = copy.deepcopy(fitted).set_params(warm_start=True).fit(X32.astype(np.float64))
    with pytest.warns(Float32RangeWarning, match="continues in float64"):
        single = copy.deepcopy(fitted).set_params(warm_start=True).fit(X32)
    assert single.means_.dtype == np.float64
    assert single.n_iter_ == double.n_iter_
    np.testing.assert_allclose(single.elbo_history_, double.elbo_history_, rtol=1e-12)
    np.testing.assert_allclose(single.means_, double.means_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_the_iteration_float32_cannot_hold_is_redone_from_float64_statistics(covariance_type):
    """The M-step whose float32 rounding costs too much is redone in float64 from the parameters it
    started from: its own float64 covariances, from float32 statistics, held the duplicated
    direction's variance up to 30% below reg_covar (after one iteration the ELBO was 0.18 nats per
    sample too high, and fell by as much at the next)."""
    rng = np.random.RandomState(41)
    X = np.r_[rng.randn(300, 4), rng.randn(300, 4) * 0.5 + 2, rng.randn(200, 4) * 2 - 1]
    X64 = np.c_[X, X[:, 0]].astype(np.float32).astype(np.float64)
    start = FastGMM(3, covariance_type=covariance_type, max_iter=5, random_state=0).fit(X64)
    options = dict(
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        max_iter=1,
        tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = FastGMM(3, **options).fit(X64.astype(np.float32))
        reference = FastGMM(3, **options).fit(X64)
    assert fitted.means_.dtype == np.float64
    covariances = fitted.covariances_.reshape(-1, 5, 5)
    assert min(np.linalg.eigvalsh(c)[0] for c in covariances) >= REG_COVAR * (1 - 1e-6)
    # From the start rounded to float32: equal to the float64 step to float32 precision.
    assert fitted.score(X64) == pytest.approx(reference.score(X64), abs=1e-6)
