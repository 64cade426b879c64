"""FastMFA's EM against the NumPy reference, and the entropy identity of docs/theory.rst (MFA)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference_mfa as R
from fastelbo import FastMFA
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor import DegenerateComponentWarning


def _data(seed=1, K=2, D=5, H=1, N=2000, spread=5.0):
    rng = np.random.default_rng(seed)
    params = R.random_parameters(rng, K, D, H, spread=spread)
    X, _ = R.sample(rng, N, *params)
    return X


def _parameters(model):
    return (model.weights_, model.means_, model.components_, model._noise_variance_per_feature())


@pytest.mark.parametrize("noise", ["diag", "spherical"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_one_em_iteration_equals_numpy_em(noise, with_weights):
    X = _data(K=3, D=6, H=2, N=400, spread=2.0)
    sample_weight = np.random.default_rng(5).uniform(0.1, 2.0, size=X.shape[0]) if with_weights else None
    model = FastMFA(3, n_factors=2, noise=noise, max_iter=1, random_state=0, reg_covar=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, sample_weight=sample_weight)
    # Start from the fitted parameters: one more iteration in FastMFA and in NumPy.
    start = [np.array(p) for p in _parameters(model)]
    resp, log_norm, _ = R.e_step(X, *start)
    expected = R.m_step(X, resp, *start[1:], noise=noise, reg_covar=1e-12, sample_weight=sample_weight)

    stats = model._e_step(X, sample_weight=sample_weight)
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    assert stats.elbo == pytest.approx(w @ log_norm / w.sum(), rel=1e-10)
    model._m_step(stats)
    for name, got, want in zip(
        ("weights", "means", "components", "noise"), _parameters(model), expected, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("noise", ["diag", "spherical"])
def test_log_likelihood_never_decreases(noise):
    X = _data(K=3, D=8, H=2, N=1500, spread=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastMFA(3, n_factors=2, noise=noise, max_iter=60, tol=0, init_params="random", random_state=0)
        model.fit(X)
    history = model.elbo_history_
    assert len(history) == 60
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))
    assert history[-1] > history[0] + 0.1  # and it does learn


@pytest.mark.parametrize(
    ("noise", "K", "D", "H", "N"),
    [("diag", 2, 5, 1, 2000), ("diag", 3, 8, 2, 3000), ("spherical", 3, 8, 2, 3000)],
)
def test_gap_vanishes_at_convergence_and_both_forms_agree(noise, K, D, H, N):
    X = _data(K=K, D=D, H=H, N=N, spread=5.0 if K == 2 else 6.0)
    model = FastMFA(K, n_factors=H, noise=noise, tol=1e-12, max_iter=3000, random_state=0).fit(X)
    assert model.converged_
    latent = model.entropy_decomposition()
    collapsed = model.entropy_decomposition(form="collapsed")
    assert abs(latent.gap) <= 1e-6 * abs(latent.elbo)
    assert latent.elbo == pytest.approx(model.score(X), rel=1e-12)
    # The two forms: different terms, the same sum (determinant lemma), computed independently.
    assert collapsed.entropy_sum == pytest.approx(latent.entropy_sum, rel=1e-12)
    assert collapsed.variational_entropy != pytest.approx(latent.variational_entropy, rel=1e-3)
    # And both equal the dense reference (the reference's q from the same parameters).
    params = _parameters(model)
    for form, decomposition in (("latent", latent), ("collapsed", collapsed)):
        assert decomposition.entropy_sum == pytest.approx(R.entropy_sum(X, params, params, form), rel=1e-10)


def test_gap_is_visibly_non_zero_after_three_iterations_from_a_poor_start():
    X = _data(K=3, D=8, H=2, N=3000, spread=6.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastMFA(3, n_factors=2, max_iter=3, init_params="random", random_state=0).fit(X)
    for form in ("latent", "collapsed"):
        decomposition = model.entropy_decomposition(form=form)
        assert abs(decomposition.gap) > 1e-3 * abs(decomposition.elbo)
        assert np.isfinite(decomposition.gap)
    # The per-iteration histories show the same gap: F and S differ before convergence.
    assert np.all(np.abs(model.elbo_history_ - model.entropy_sum_history_) > 1e-4)


def test_entropy_sum_history_is_the_entropy_sum_after_each_m_step():
    X = _data(K=2, D=5, H=1, N=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastMFA(2, n_factors=1, max_iter=2, tol=0, random_state=0, reg_covar=1e-12).fit(X)
        before = FastMFA(2, n_factors=1, max_iter=1, tol=0, random_state=0, reg_covar=1e-12).fit(X)
    # S(q^1, Theta^2): posteriors of the parameters after one iteration, entropies after two.
    expected = R.entropy_sum(X, _parameters(before), _parameters(model))
    assert model.entropy_sum_history_[1] == pytest.approx(expected, rel=1e-10)


def test_degenerate_component_is_named_floored_relative_to_the_data_and_its_gap_stays_finite():
    rng = np.random.default_rng(0)
    cluster = rng.standard_normal((300, 4))
    # Two points far away: a component there lies on their line, its noise variance -> 0.
    line = 40.0 + np.outer(np.arange(2.0), [1.0, 2.0, -1.0, 0.5])
    X = np.vstack([cluster, line])
    model = FastMFA(2, n_factors=1, max_iter=50, reg_covar=1e-6, random_state=0)
    with pytest.warns(DegenerateComponentWarning) as record:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
    line_component = int(np.argmax(model.means_[:, 0]))
    degenerate = [str(w.message) for w in record if w.category is DegenerateComponentWarning]
    assert len(degenerate) == 1
    assert f"component {line_component}: 2 points (fewer than n_factors + 2 = 3)" in degenerate[0]
    assert f"component {1 - line_component}" not in degenerate[0]
    heywood = [str(w.message) for w in record if w.category is HeywoodCaseWarning]
    assert len(heywood) == 1
    assert all(f"component {line_component} feature {d}" in heywood[0] for d in range(4))
    assert f"component {1 - line_component} feature" not in heywood[0]
    # The floor is reg_covar times each feature's variance in the data.
    np.testing.assert_allclose(model.noise_variance_[line_component], 1e-6 * X.var(axis=0), rtol=1e-12)
    decomposition = model.entropy_decomposition()
    assert np.isfinite(decomposition.gap) and np.isfinite(decomposition.elbo)
    assert "pull of that boundary" in decomposition.note
    assert all(np.all(np.isfinite(p)) for p in _parameters(model))


def test_decomposition_of_given_data_equals_the_stored_training_decomposition():
    X = _data(K=2, D=5, H=1, N=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastMFA(2, n_factors=1, max_iter=5, random_state=0).fit(X)
    for form in ("latent", "collapsed"):
        stored, recomputed = model.entropy_decomposition(form=form), model.entropy_decomposition(X, form=form)
        assert recomputed.to_dict() == pytest.approx(stored.to_dict())
        assert stored.model.endswith(f"{form} form")
