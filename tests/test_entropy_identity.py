"""FastGMM against the invariants of docs/theory.rst (invariants): the post-M-step identity F = S at every
iteration, the interleaving of the ELBO and entropy-sum histories, F = S = mean log-likelihood at
convergence, and the decomposition's terms against the NumPy reference."""

import dataclasses
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import reference as ref
from fastelbo import EntropyDecomposition, FastGMM

COV_TYPES = list(ref.COVARIANCE_TYPES)
K = 4


@pytest.fixture(scope="module")
def blobs():
    X, _ = ref.make_blobs_data(600, 3, K, random_state=0)
    return X


def _gmm_from(X, covariance_type, seed=1, **params):
    weights, means, covariances = ref.em_start(X, K, covariance_type, seed)
    return FastGMM(
        K,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=ref.precisions_from_covariances(covariances, covariance_type),
        **params,
    )


def _theta(gmm):
    return (
        gmm.weights_.astype(np.float64),
        gmm.means_.astype(np.float64),
        gmm.covariances_.astype(np.float64),
    )


def _stepwise_trajectory(X, covariance_type, n_iter, reg_covar=0.0, sample_weight=None):
    """Parameters Theta^0..Theta^T and the library's F(q^t,Theta^t), S(q^t,Theta^{t+1}) per step,
    one EM iteration per warm-started fit (weighted by ``sample_weight`` when given)."""
    gmm = _gmm_from(X, covariance_type, reg_covar=reg_covar, max_iter=0, warm_start=True)
    gmm.fit(X, sample_weight=sample_weight)
    thetas, elbos, entropy_sums = [_theta(gmm)], [], []
    gmm.set_params(max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(n_iter):
            gmm.fit(X, sample_weight=sample_weight)
            elbos.append(gmm.elbo_history_[0])
            entropy_sums.append(gmm.entropy_sum_history_[0])
            thetas.append(_theta(gmm))
    return thetas, np.array(elbos), np.array(entropy_sums)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_post_mstep_identity_holds_every_iteration(blobs, covariance_type):
    thetas, elbos, entropy_sums = _stepwise_trajectory(blobs, covariance_type, n_iter=12)
    for t in range(len(elbos)):
        q_t = ref.e_step(blobs, *thetas[t], covariance_type)["resp"]
        post_mstep_elbo = ref.elbo(blobs, q_t, *thetas[t + 1], covariance_type)
        assert abs(entropy_sums[t] - post_mstep_elbo) <= 1e-9 * abs(post_mstep_elbo), t
        expected_elbo = ref.e_step(blobs, *thetas[t], covariance_type)["sum_log_norm"] / len(blobs)
        np.testing.assert_allclose(elbos[t], expected_elbo, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_histories_of_one_fit_equal_the_stepwise_trajectory(blobs, covariance_type):
    _, elbos, entropy_sums = _stepwise_trajectory(blobs, covariance_type, n_iter=8)
    gmm = _gmm_from(blobs, covariance_type, reg_covar=0.0, max_iter=8, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(blobs)
    np.testing.assert_array_equal(gmm.elbo_history_, elbos)
    np.testing.assert_array_equal(gmm.entropy_sum_history_, entropy_sums)
    assert gmm.lower_bounds_ == list(gmm.elbo_history_)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_elbo_and_entropy_sum_histories_interleave(blobs, covariance_type):
    gmm = _gmm_from(blobs, covariance_type, reg_covar=0.0, max_iter=40, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(blobs)
    assert_histories_interleave(gmm)


def assert_histories_interleave(gmm):
    """F(q^t, Theta^t) <= S(q^t, Theta^{t+1}) <= F(q^{t+1}, Theta^{t+1}) over a run that moved."""
    F, S = gmm.elbo_history_, gmm.entropy_sum_history_
    slack = 1e-12 * np.abs(F).max()
    assert np.all(F <= S + slack)
    assert np.all(S[:-1] <= F[1:] + slack)
    assert F[-1] - F[0] > 0.1  # the run did move


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_post_mstep_identity_holds_every_iteration(blobs, covariance_type):
    rng = np.random.default_rng(5)
    sample_weight = rng.uniform(0.2, 3.0, size=len(blobs))
    gmm = _gmm_from(blobs, covariance_type, reg_covar=0.0, max_iter=0).fit(blobs)
    for t in range(8):
        theta_t = _theta(gmm)
        stats = gmm._e_step(blobs, sample_weight=sample_weight)
        reference = ref.e_step(blobs, *theta_t, covariance_type, sample_weight=sample_weight)
        np.testing.assert_allclose(
            stats.elbo, reference["sum_log_norm"] / reference["sum_weight"], rtol=1e-10
        )
        gmm._m_step(stats)
        entropy_sum = gmm._decompose(stats).entropy_sum
        post_mstep_elbo = ref.elbo(
            blobs, reference["resp"], *_theta(gmm), covariance_type, sample_weight=sample_weight
        )
        assert abs(entropy_sum - post_mstep_elbo) <= 1e-9 * abs(post_mstep_elbo), t


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_regularisation_gap_equals_its_closed_form(blobs, covariance_type):
    reg_covar = 1e-2
    thetas, _, entropy_sums = _stepwise_trajectory(blobs, covariance_type, 4, reg_covar=reg_covar)
    n_features = blobs.shape[1]
    for t in range(len(entropy_sums)):
        q_t = ref.e_step(blobs, *thetas[t], covariance_type)["resp"]
        weights, means, covariances = thetas[t + 1]
        post_mstep_elbo = ref.elbo(blobs, q_t, weights, means, covariances, covariance_type)
        matrices = ref.full_covariance_matrices(covariances, covariance_type, K, n_features)
        traces = np.array([np.trace(np.linalg.inv(m)) for m in matrices])
        predicted_gap = 0.5 * reg_covar * q_t.mean(axis=0) @ traces
        np.testing.assert_allclose(post_mstep_elbo - entropy_sums[t], predicted_gap, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_at_convergence_loglik_equals_elbo_equals_entropy_sum(blobs, covariance_type):
    gmm = _gmm_from(blobs, covariance_type, reg_covar=0.0, tol=1e-12, max_iter=2000).fit(blobs)
    assert gmm.converged_
    decomposition = gmm.entropy_decomposition()
    assert abs(decomposition.gap) <= 1e-6 * abs(decomposition.elbo)
    np.testing.assert_allclose(decomposition.elbo, gmm.score(blobs), rtol=1e-12)
    reference = ref.e_step(blobs, *_theta(gmm), covariance_type)
    np.testing.assert_allclose(decomposition.elbo, reference["sum_log_norm"] / len(blobs), rtol=1e-10)
    terms = ref.entropy_terms(reference["resp"], *_theta(gmm)[::2], covariance_type, blobs.shape[1])
    for name in ("variational_entropy", "prior_entropy", "observable_entropy", "entropy_sum"):
        np.testing.assert_allclose(getattr(decomposition, name), terms[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_fit_keeps_the_identity_to_float32_precision(blobs, covariance_type):
    X32 = blobs.astype(np.float32)
    thetas, _, entropy_sums = _stepwise_trajectory(X32, covariance_type, n_iter=6)
    for t in range(len(entropy_sums)):
        q_t = ref.e_step(X32, *thetas[t], covariance_type)["resp"]
        post_mstep_elbo = ref.elbo(X32, q_t, *thetas[t + 1], covariance_type)
        # Parameters are rounded to float32 after the M-step, so the identity holds up to
        # float32 rounding of the parameters (~1e-7 relative), not to float64 round-off.
        assert abs(entropy_sums[t] - post_mstep_elbo) <= 1e-5 * abs(post_mstep_elbo), t


def test_decomposition_on_training_data_equals_the_stored_one(blobs):
    gmm = FastGMM(K, covariance_type="full", random_state=0).fit(blobs)
    stored = gmm.entropy_decomposition()
    recomputed = gmm.entropy_decomposition(blobs)
    for field in ("elbo", "variational_entropy", "prior_entropy", "observable_entropy"):
        np.testing.assert_allclose(getattr(recomputed, field), getattr(stored, field), rtol=1e-12)
    assert recomputed.n_samples == stored.n_samples == len(blobs)
    other = gmm.entropy_decomposition(blobs[:100] + 0.5)
    assert other.n_samples == 100 and other.elbo < stored.elbo


def test_decomposition_result_is_frozen_consistent_and_readable(blobs):
    d = FastGMM(K, random_state=0).fit(blobs).entropy_decomposition()
    assert isinstance(d, EntropyDecomposition)
    assert d.entropy_sum == d.variational_entropy - d.prior_entropy - d.observable_entropy + d.data_term
    assert d.gap == d.elbo - d.entropy_sum
    assert d.data_term == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.elbo = 0.0
    as_dict = d.to_dict()
    for key in ("elbo", "entropy_sum", "gap", "variational_entropy", "prior_entropy"):
        assert as_dict[key] == getattr(d, key)
    assert {"observable_entropy", "data_term", "n_samples"} <= set(as_dict)
    text = repr(d)
    assert "ELBO" in text and "entropy sum" in text and "gap" in text and len(text.splitlines()) >= 8


def test_a_term_that_rounds_to_zero_prints_as_plus_zero():
    # A gap of -1e-14 (round-off at a stationary point) printed as -0.00000000.
    d = EntropyDecomposition(
        elbo=-2.0,
        variational_entropy=1.0 + 1e-14,
        prior_entropy=1.0,
        observable_entropy=2.0,
        data_term=0.0,
        n_samples=3,
        model="m",
    )
    assert d.gap < 0
    lines = {line.split()[0]: line for line in repr(d).splitlines()[1:]}
    assert lines["gap"].split()[4] == "+0.00000000"
    assert lines["A"].split()[2] == "+1.00000000" and lines["ELBO"].split()[2] == "-2.00000000"
    huge = dataclasses.replace(d, elbo=-1e308, observable_entropy=float("inf"))
    lines = {line.split()[0]: line for line in repr(huge).splitlines()[1:]}
    assert lines["ELBO"].split()[2] == "-1.00000000e+308" and lines["E_qbar"].split()[2] == "+inf"


def test_entropy_decomposition_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        FastGMM().entropy_decomposition()
