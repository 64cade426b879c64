"""The dense M-step kernel of the Bernoulli and Poisson mixtures (``_core.exponential_family_m_step``)
against the NumPy maths it replaces: the floored means bitwise, their natural parameters and ``b_c =
-sum_d A(eta_cd)`` to 1e-15 relative (bitwise where NumPy's log is the C library's, as here),
``sum_d eta_cd mu_cd`` to round-off, for either layout of sx, any thread count, the output buffer,
and argument checks."""

import numpy as np
import pytest

from fastelbo import _core
from fastelbo.mixture._exponential_family import FAMILIES, dense_m_step


def numpy_m_step(family, sx, nk, mean_floor):
    """The estimator's NumPy maths: means = sx / nk floored, eta, b = -sum_d A."""
    model = FAMILIES[family]
    means = model.floored(sx / nk[:, None], mean_floor)
    natural = model.natural(means)
    return means, natural, -np.sum(model.log_partition(means), axis=1), np.sum(natural * means, axis=1)


def statistics(family, K, D, seed):
    """sx and nk as a pass gives them: sparse columns (many zeros: means at the floor), counts."""
    rng = np.random.default_rng(seed)
    nk = rng.uniform(0.5, 50.0, size=K)
    share = rng.uniform(size=(K, D)) * (rng.uniform(size=(K, D)) < 0.3)
    sx = share * nk[:, None] * (1.0 if family == "bernoulli" else 7.0)
    sx[0, : D // 2] = nk[0]  # Bernoulli means of exactly 1: clipped at 1 - floor
    return sx, nk


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("D", [1, 7, 8, 9, 129, 130, 257, 1000, 4099])  # every branch of the pairwise sum
def test_bitwise_equal_to_the_numpy_maths(family, D):
    K = 11
    sx, nk = statistics(family, K, D, seed=D)
    floor = 1e-10
    means, natural, log_partition, natural_mean = numpy_m_step(family, sx, nk, floor)
    for layout in ("C", "F"):
        step = dense_m_step(family, np.asarray(sx, order=layout), nk, floor, n_threads=2)
        # Division and clip are correctly rounded: bitwise. log and log1p are the C library's
        # (NumPy's too, unless it has SIMD versions of its own on this CPU; then within an ulp of
        # each, so allowed 2 ulps of each term), b the same pairwise sum (bitwise with NumPy 2's).
        np.testing.assert_array_equal(step.means, means)
        terms = np.abs(np.log(means)) + (np.abs(np.log1p(-means)) if family == "bernoulli" else 0.0)
        assert np.all(np.abs(step.natural - natural) <= 4.5e-16 * terms)
        np.testing.assert_allclose(step.log_partition, log_partition, rtol=1e-15, atol=0)
        # sum_d eta mu has terms of both signs: compared to the size of the terms.
        scale = np.sum(np.abs(natural * means), axis=1)
        assert np.all(np.abs(step.natural_mean_sums - natural_mean) <= 1e-14 * scale)
        np.testing.assert_allclose(
            step.pseudo_entropy_sums,
            FAMILIES[family].pseudo_entropy_sums(means, natural),
            rtol=0,
            atol=1e-13 * np.max(scale + np.abs(log_partition)),
        )


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_bitwise_for_any_thread_count(family):
    sx, nk = statistics(family, 203, 517, seed=3)
    steps = [dense_m_step(family, sx, nk, 1e-6, n_threads=t) for t in (1, 2, 3)]
    steps.append(dense_m_step(family, np.asfortranarray(sx), nk, 1e-6, n_threads=2))
    for step in steps[1:]:
        for name in ("means", "natural", "log_partition", "natural_mean_sums"):
            np.testing.assert_array_equal(getattr(step, name), getattr(steps[0], name))


def test_writes_into_given_buffers():
    sx, nk = statistics("poisson", 5, 40, seed=1)
    buffer = np.full((5, 40), np.nan)
    step = dense_m_step("poisson", sx, nk, 1e-10, 1, natural_out=buffer)
    assert step.natural is buffer
    np.testing.assert_array_equal(buffer, np.log(np.maximum(sx / nk[:, None], 1e-10)))


def test_bad_arguments_raise():
    sx, nk = statistics("bernoulli", 4, 6, seed=0)
    with pytest.raises(ValueError, match="family must be 'bernoulli' or 'poisson'"):
        _core.exponential_family_m_step("gauss", sx, False, nk, 1e-10)
    with pytest.raises(ValueError, match=r"sx has shape \(4, 6\), expected \(\*, 4\)"):
        _core.exponential_family_m_step("bernoulli", sx, True, nk, 1e-10)
    with pytest.raises(TypeError, match="nk must be a C-contiguous numpy array of dtype float64"):
        _core.exponential_family_m_step("bernoulli", sx, False, nk.astype(np.float32), 1e-10)
    with pytest.raises(ValueError, match="mean_floor must be in"):
        _core.exponential_family_m_step("bernoulli", sx, False, nk, 0.5)
    with pytest.raises(ValueError, match="natural_out must not share memory"):
        _core.exponential_family_m_step("bernoulli", sx, False, nk, 1e-10, natural_out=sx)
    with pytest.raises(ValueError, match=r"natural_out has shape \(6, 4\)"):
        _core.exponential_family_m_step("bernoulli", sx, False, nk, 1e-10, natural_out=np.zeros((6, 4)))


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("n_active", [None, 2])
def test_the_estimators_m_step_is_the_numpy_maths(family, n_active):
    """Exact (sx read transposed) and truncated EM: after an M-step the means are NumPy's, and the
    eta, b and pseudo-entropy sums the next pass and the decomposition read match NumPy's."""
    from sklearn.utils import check_random_state

    from fastelbo import FastBernoulliMixture, FastPoissonMixture
    from fastelbo.mixture._exponential_family import component_constants

    rng = np.random.default_rng(0)
    X = rng.poisson(0.3, size=(300, 25)).astype(np.float64)
    if family == "bernoulli":
        X = np.minimum(X, 1.0)
    estimator = FastBernoulliMixture if family == "bernoulli" else FastPoissonMixture
    model = estimator(n_components=6, n_active=n_active, random_state=0, mean_floor=1e-8)
    model._check_hyperparameters()
    Xv = model._validate_rows(X, reset=True, min_samples=2)
    model._initialize_parameters(Xv, check_random_state(0), None)
    stats = model._e_step(Xv)
    nk = stats.nk + stats.nk_floor
    means, natural, log_partition, _ = numpy_m_step(family, stats.sx.copy(), nk, 1e-8)
    model._m_step(stats)
    np.testing.assert_array_equal(model.means_, means)
    np.testing.assert_array_equal(model.weights_, nk / nk.sum())
    terms = np.abs(np.log(means)) + (np.abs(np.log1p(-means)) if family == "bernoulli" else 0.0)
    assert np.all(np.abs(model._natural() - natural) <= 4.5e-16 * terms)
    np.testing.assert_allclose(model._log_partition(), log_partition, rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        component_constants(family, model.weights_, model.means_)[2], log_partition, rtol=1e-15, atol=0
    )
    pseudo = FAMILIES[family].pseudo_entropy_sums(means, natural)
    step = model._m_step_results()
    np.testing.assert_allclose(step.pseudo_entropy_sums, pseudo, rtol=1e-13, atol=0)
