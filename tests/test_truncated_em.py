"""FastGMM(n_active=C') — truncated variational EM — against docs/theory.rst (mixtures) (truncated q):
the post-M-step identity and the interleaving of the histories at every iteration, the truncated
free energy below the exact log-likelihood, C' = K as exact EM, determinism and thread-count
independence, and argument checks."""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM
from fastelbo.mixture._truncated import TruncatedSearch
from reference import make_blobs_data
from reference_truncated import gaussian_log_joint
from truncated_stopping import assert_stopped_after_settled_steps

K = 12
_E_STEP = TruncatedSearch.e_step


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs_data(900, 3, K, random_state=0, separation=4.0)
    return X


def _variances(gmm):
    """The covariances as the reference takes them: (K, D) variances, or (K, D, D) for tied."""
    cov = gmm.covariances_.astype(np.float64)
    if gmm.covariance_type == "full":
        return cov
    if gmm.covariance_type == "tied":
        return np.repeat(cov[None], gmm.n_components, axis=0)
    return cov if gmm.covariance_type == "diag" else np.repeat(cov[:, None], gmm.means_.shape[1], axis=1)


def _recorded_fit(monkeypatch, X, sample_weight=None, **params):
    """Fit, recording for every EM E-step the parameters it used and the sets K_n it produced."""
    calls = []
    original = _E_STEP

    def recording(self, X_, w_, parameters, n_threads, moments=True):
        weights, means, _, _ = parameters
        theta = (np.array(weights, dtype=np.float64), np.array(means, dtype=np.float64))
        stats = original(self, X_, w_, parameters, n_threads, moments)
        if moments:
            calls.append((theta, self.active.copy()))
        return stats

    gmm = FastGMM(K, reg_covar=0.0, **params)
    monkeypatch.setattr(TruncatedSearch, "e_step", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X, sample_weight=sample_weight)
    return gmm, calls


def _theta_sequence(monkeypatch, X, sample_weight, n_iter, **params):
    """Theta^0..Theta^T (weights, means, variances) and K_n^t of a fit of n_iter iterations: the
    parameters after iteration t are those a fit with max_iter=t ends with (deterministic runs)."""
    gmm, calls = _recorded_fit(monkeypatch, X, sample_weight, max_iter=n_iter, tol=0.0, **params)
    thetas = []
    for t in range(1, n_iter + 1):
        short, _ = _recorded_fit(monkeypatch, X, sample_weight, max_iter=t, tol=0.0, **params)
        thetas.append((short.weights_.astype(np.float64), short.means_.astype(np.float64), _variances(short)))
    return gmm, calls, thetas


def _start(X, covariance_type, seed):
    """How a run starts: AFK-MC2 seeding, or for full covariances (whose reg_covar=0 fits need a
    start without near-empty components) a broad soft start given as initial parameters."""
    if covariance_type != "full":
        return dict(init_params="afkmc2")
    weights, means, covariances = ref.em_start(X, K, "full", seed)
    precisions = ref.precisions_from_covariances(covariances, "full")
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


def _restricted(lj, active):
    values = np.take_along_axis(lj, active, axis=1)
    log_norm = np.logaddexp.reduce(values, axis=1)
    return values, log_norm, np.exp(values - log_norm[:, None])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
def test_post_mstep_identity_and_interleaving_hold_every_iteration(
    monkeypatch, blobs, covariance_type, weighted
):
    w = np.random.default_rng(4).uniform(0.2, 2.0, len(blobs)) if weighted else np.ones(len(blobs))
    params = dict(covariance_type=covariance_type, n_active=3, n_neighbors=4, random_state=2)
    params.update(_start(blobs, covariance_type, 2))
    gmm, calls, thetas = _theta_sequence(monkeypatch, blobs, w if weighted else None, 8, **params)
    F, S = gmm.elbo_history_, gmm.entropy_sum_history_
    assert len(F) == len(calls) == 8
    # Theta^0 (before the first M-step) is not recorded, so t starts at 1.
    for t in range(1, len(calls)):
        (weights_t, means_t), active = calls[t]
        np.testing.assert_array_equal(means_t, thetas[t - 1][1])  # the runs are deterministic
        weights_next, means_next, variances_next = thetas[t]
        lj_next = gaussian_log_joint(blobs, weights_next, means_next, variances_next)
        _, _, variances_t = thetas[t - 1]
        lj_t = gaussian_log_joint(blobs, weights_t, means_t, variances_t)
        _, log_norm, q = _restricted(lj_t, active)
        assert F[t] == pytest.approx(w @ log_norm / w.sum(), rel=1e-10), t
        entropy = -np.sum(q * np.log(np.where(q > 0, q, 1.0)), axis=1)
        post_mstep = (
            w @ (np.sum(q * np.take_along_axis(lj_next, active, axis=1), axis=1) + entropy)
        ) / w.sum()
        assert abs(S[t] - post_mstep) <= 1e-9 * abs(post_mstep), t
    assert np.all(F[:-1] <= S[:-1] + 1e-12 * np.abs(S[:-1]))
    assert np.all(S[:-1] <= F[1:] + 1e-12 * np.abs(F[1:]))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_truncated_free_energy_never_exceeds_the_log_likelihood(monkeypatch, blobs, covariance_type):
    params = dict(covariance_type=covariance_type, n_active=2, n_neighbors=3, random_state=0)
    params.update(_start(blobs, covariance_type, 0))
    gmm, calls, thetas = _theta_sequence(monkeypatch, blobs, None, 6, **params)
    for t in range(1, len(calls)):
        weights, means, variances = thetas[t - 1]
        log_likelihood = np.mean(
            np.logaddexp.reduce(gaussian_log_joint(blobs, weights, means, variances), axis=1)
        )
        assert gmm.elbo_history_[t] <= log_likelihood + 1e-12 * abs(log_likelihood), t
    final = gmm.entropy_decomposition()
    assert final.elbo <= gmm.score(blobs) + 1e-12


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_all_components_active_reproduce_exact_em(blobs, covariance_type):
    common = dict(covariance_type=covariance_type, init_params="afkmc2", random_state=1, max_iter=15, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = FastGMM(K, **common).fit(blobs)
        truncated = FastGMM(K, n_active=K, n_neighbors=K, **common).fit(blobs)
    np.testing.assert_allclose(truncated.elbo_history_, exact.elbo_history_, rtol=1e-10)
    np.testing.assert_allclose(truncated.entropy_sum_history_, exact.entropy_sum_history_, rtol=1e-10)
    np.testing.assert_allclose(truncated.means_, exact.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(truncated.covariances_, exact.covariances_, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deterministic_and_bitwise_identical_for_any_thread_count(blobs, dtype, covariance_type):
    X = np.repeat(blobs, 4, axis=0).astype(dtype) + np.random.default_rng(0).normal(
        0, 0.1, (4 * len(blobs), 3)
    )
    X = X.astype(dtype)
    fits = []
    for n_jobs in (1, 2, 2):
        gmm = FastGMM(
            K, covariance_type=covariance_type, n_active=3, random_state=5, max_iter=10, n_jobs=n_jobs
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = gmm.fit_predict(X)
        fits.append((gmm, labels))
    for gmm, labels in fits[1:]:
        np.testing.assert_array_equal(gmm.means_, fits[0][0].means_)
        np.testing.assert_array_equal(gmm.covariances_, fits[0][0].covariances_)
        np.testing.assert_array_equal(gmm.elbo_history_, fits[0][0].elbo_history_)
        np.testing.assert_array_equal(labels, fits[0][1])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_exact_inference_after_truncated_fit(blobs, covariance_type):
    gmm = FastGMM(K, covariance_type=covariance_type, n_active=3, random_state=0).fit(blobs)
    weights, means, variances = gmm.weights_, gmm.means_, _variances(gmm)
    lj = gaussian_log_joint(blobs, weights, means, variances)
    np.testing.assert_allclose(gmm.score_samples(blobs), np.logaddexp.reduce(lj, axis=1), rtol=1e-10)
    np.testing.assert_array_equal(gmm.predict(blobs), np.argmax(lj, axis=1))
    assert gmm.lower_bound_ <= gmm.score(blobs)


def test_bad_truncation_arguments_raise_value_error(blobs):
    with pytest.raises(ValueError, match="n_active"):
        FastGMM(3, covariance_type="diag", n_active=4).fit(blobs)
    with pytest.raises(ValueError, match="n_active"):
        FastGMM(3, covariance_type="diag", n_active=0).fit(blobs)
    with pytest.raises(ValueError, match="n_neighbors"):
        FastGMM(3, covariance_type="diag", n_neighbors=2).fit(blobs)
    with pytest.raises(ValueError, match="n_neighbors"):
        FastGMM(3, covariance_type="diag", n_active=2, n_neighbors=5).fit(blobs)


class _RunRecordingGMM(FastGMM):
    """FastGMM that keeps, for every one of its n_init runs, the lower bound it ended with and a
    copy of its truncated state (the rows' sets K_n, the neighbour lists, the random generator)."""

    def _iterate(self, X, run, sample_weight=None):
        super()._iterate(X, run, sample_weight)
        self.runs.append((run.done.lower_bound, copy.deepcopy(self._em_truncated)))


def test_final_pass_of_several_restarts_continues_from_the_best_run(blobs):
    gmm = _RunRecordingGMM(
        K, covariance_type="diag", n_active=2, n_neighbors=3, n_init=4, max_iter=3, tol=0.0, random_state=3
    )
    gmm.runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = gmm.fit_predict(blobs)
    bounds = [bound for bound, _ in gmm.runs]
    best = int(np.argmax(bounds))
    # The test needs a best run that is not the last (else the last run's state would pass too).
    assert best != len(bounds) - 1, bounds
    assert gmm.lower_bound_ == bounds[best]
    # The final pass: one more truncated E-step from the best run's sets at the fitted parameters.
    search = gmm.runs[best][1]
    stats = search.e_step(blobs, None, gmm._truncated_parameters(), 1, moments=False)
    np.testing.assert_array_equal(labels, search.labels())
    assert gmm.entropy_decomposition().elbo == stats.elbo
    # The last run's state gives another training ELBO (so the check above can fail).
    last = gmm.runs[-1][1]
    assert last.e_step(blobs, None, gmm._truncated_parameters(), 1, moments=False).elbo != stats.elbo


def test_a_stalled_search_step_is_not_convergence(monkeypatch):
    """With n_active=1 a step whose search finds nothing changes the free energy by exactly 0
    (the parameters are at their fixed point for the sets), while later steps still find better
    sets: the fit stopped there (at -12.561 after 15 iterations, where 300 reach -12.468). It
    converges only after SETTLED_STEPS consecutive E-steps that changed no row's set."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=2000, centers=30, n_features=5, random_state=7, cluster_std=1.5)
    record = []

    def recording(self, X, sample_weight, parameters, n_threads, moments=True):
        before = self.active.copy() if moments else None
        stats = _E_STEP(self, X, sample_weight, parameters, n_threads, moments)
        if moments:
            changed = sum(set(a) != set(b) for a, b in zip(before, self.active, strict=True))
            record.append((changed, stats.elbo))
        return stats

    monkeypatch.setattr(TruncatedSearch, "e_step", recording)
    kwargs = dict(n_components=40, n_active=1, n_neighbors=3, covariance_type="diag", random_state=7)
    model = FastGMM(tol=1e-3, max_iter=300, **kwargs).fit(X)
    elbos, stalled = assert_stopped_after_settled_steps(model, record)
    monkeypatch.undo()
    with pytest.warns(ConvergenceWarning):
        long = FastGMM(tol=0, max_iter=300, **kwargs).fit(X)
    assert elbos[stalled[0]] < long.lower_bound_ - 0.05
    assert model.lower_bound_ > long.lower_bound_ - 0.05


def test_data_that_leave_no_set_to_change_converge_after_exactly_settled_steps():
    """The docstring's bound: a run converges no earlier than SETTLED_STEPS iterations, which data
    that leave no row's most probable component to change (one repeated row) reach exactly."""
    from fastelbo.mixture._truncated import SETTLED_STEPS

    X = np.tile([[1.0, 2.0]], (8, 1))
    params = dict(n_components=3, covariance_type="diag", n_active=2, random_state=0)
    settled = FastGMM(max_iter=100, **params).fit(X)
    assert settled.converged_ and settled.n_iter_ == SETTLED_STEPS
    with pytest.warns(ConvergenceWarning):
        short = FastGMM(max_iter=SETTLED_STEPS - 1, **params).fit(X)
    assert not short.converged_


def test_float32_truncated_free_energy_is_that_of_its_sets_where_components_lie_far_apart(monkeypatch):
    """digits' constant pixels give variances of reg_covar beside ones of ~10, so component means
    lie up to 3e8 apart in each other's metrics: expanded about a shared point in float32, such a
    component's log-joints lost every digit, and the reported free energy rose 1.4e-2 above the
    log-likelihood. Each E-step's F must be the float64 truncated free energy of the float32
    parameters and the sets it produced, to float32's precision."""
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float32)
    recorded = []
    original = _E_STEP

    def recording(self, X_, w_, parameters, n_threads, moments=True):
        stats = original(self, X_, w_, parameters, n_threads, moments)
        if moments:
            weights, means, precisions_cholesky, _ = parameters
            recorded.append((weights, means, precisions_cholesky, self.active.copy()))
        return stats

    monkeypatch.setattr(TruncatedSearch, "e_step", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(40, covariance_type="diag", n_active=3, random_state=0, max_iter=8, tol=0).fit(X)
    assert gmm.means_.dtype == np.float32 and len(recorded) == 8
    X64 = X.astype(np.float64)
    for t, (weights, means, precisions_cholesky, active) in enumerate(recorded):
        variances = 1.0 / np.asarray(precisions_cholesky, dtype=np.float64) ** 2
        weights, means = np.asarray(weights, np.float64), np.asarray(means, np.float64)
        lj = gaussian_log_joint(X64, weights, means, variances)
        expected = np.mean(_restricted(lj, active)[1])
        assert abs(gmm.elbo_history_[t] - expected) <= 1e-5 * abs(expected), t
    assert gmm.entropy_decomposition().elbo <= gmm.score(X) + 1e-5 * abs(gmm.score(X))


def test_float32_predict_truncated_near_float32s_range_labels_as_predict():
    # Blobs at 1e18 in float32 (the fit, score and predict were right): ||x - point||^2 of the
    # expansion overflowed, and 42 of 1000 rows got a label that was not even the best of their set.
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=1000, centers=12, n_features=3, random_state=4, cluster_std=1.0)
    X = (X * 1e18).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = FastGMM(
            12, covariance_type="spherical", n_active=3, random_state=0, max_iter=30, reg_covar=1e30
        ).fit(X)
    np.testing.assert_array_equal(gmm.predict_truncated(X), gmm.predict(X))
