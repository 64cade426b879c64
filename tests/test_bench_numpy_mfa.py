"""The benchmark's NumPy MFA competitor (bench/numpy_mfa.py) computes the same EM as the reference,
so a benchmark comparing against it compares equal work."""

import pathlib
import sys

import numpy as np

import reference_mfa as ref

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import numpy_mfa  # noqa: E402


def test_numpy_mfa_iteration_matches_reference_em():
    rng = np.random.default_rng(4)
    truth = ref.random_parameters(rng, 3, 5, 2)
    X, _ = ref.sample(rng, 300, *truth)
    start = ref.random_parameters(rng, 3, 5, 2, spread=1.0)
    log_likelihood, (weights, means, components, noise) = numpy_mfa.iteration(X, *start, reg_covar=1e-9)
    np.testing.assert_allclose(log_likelihood, ref.log_likelihood(X, *start), rtol=1e-12)
    resp, _, _ = ref.e_step(X, *start)
    expected = ref.m_step(X, resp, *start[1:], reg_covar=1e-9)
    for actual, wanted in zip((weights, means, components, noise), expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-9, atol=1e-12)


def test_numpy_mfa_fit_records_the_log_likelihood_before_each_m_step():
    rng = np.random.default_rng(5)
    truth = ref.random_parameters(rng, 2, 4, 1)
    X, _ = ref.sample(rng, 200, *truth)
    start = ref.random_parameters(rng, 2, 4, 1, spread=1.0)
    parameters, log_likelihoods = numpy_mfa.fit(X, *start, 3)
    expected, current = [], start
    for _ in range(3):
        expected.append(ref.log_likelihood(X, *current))
        resp, _, _ = ref.e_step(X, *current)
        current = ref.m_step(X, resp, *current[1:], reg_covar=1e-6)
    np.testing.assert_allclose(log_likelihoods, expected, rtol=1e-10)
    # EM never lowers the likelihood.
    assert np.all(np.diff(log_likelihoods) >= -1e-12 * np.abs(log_likelihoods[1:]))
    for actual, wanted in zip(parameters, current, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-8, atol=1e-12)
