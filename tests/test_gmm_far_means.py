"""FastGMM's M-step when the new means lie far from the statistics' reference points (the current
means): a far-off ``means_init``, or a warm start on data moved far away.

The pass takes moments about the current means and the M-step forms the scatter as
``sxx - sx sx^T / nk``, which loses ``log10(sxx / scatter)`` digits to cancellation: a mean that
moved 1e8 standard deviations lost every digit of its covariance (relative errors of 4 in one EM
step, and an "ill-defined covariance" error at 1e9 for full and tied). Such a step takes the moments
again about the new means; every step is compared here with an exact NumPy EM step.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from fastelbo import FastGMM

COVARIANCE_TYPES = list(ref.COVARIANCE_TYPES)


def _three_clusters():
    rng = np.random.RandomState(8)
    return np.r_[rng.randn(60, 3), rng.randn(50, 3) * 0.5 + 4, rng.randn(40, 3) * 2 - 3]


def _unit_parameters(covariance_type, scale):
    """Covariances ``scale * I`` of three components, and the matching precisions_init."""
    covariances = {
        "full": np.array([np.eye(3) * scale] * 3),
        "tied": np.eye(3) * scale,
        "diag": np.full((3, 3), scale),
        "spherical": np.full(3, scale),
    }[covariance_type]
    return covariances, ref.precisions_from_covariances(covariances, covariance_type)


def _exact_step(X, weights, means, covariances, covariance_type, reg_covar=1e-6):
    """One EM step's parameters, and the responsibilities it took."""
    resp = ref.e_step(X, weights, means, covariances, covariance_type)["resp"]
    return ref.m_step(X, resp, reg_covar, covariance_type), resp


def _one_step(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(3, max_iter=1, **params).fit(X)


def _assert_step_equals(gmm, expected):
    """The step's parameters equal the exact step's; the means of components left without any
    responsibility are not compared (the reference sets them to 0, FastGMM keeps the last ones)."""
    weights, means, covariances = expected
    np.testing.assert_allclose(gmm.weights_, weights, rtol=1e-12, atol=1e-15)
    held = weights > 1e-12
    np.testing.assert_allclose(gmm.means_[held], means[held], rtol=1e-12, atol=1e-12 * np.abs(means).max())
    np.testing.assert_allclose(
        gmm.covariances_, covariances, rtol=1e-10, atol=1e-10 * np.abs(covariances).max()
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e4, 1e6, 1e9])
@pytest.mark.parametrize("n_active", [None, 3])
def test_a_step_from_far_off_initial_means_equals_the_exact_step(covariance_type, offset, n_active):
    # n_active = K: truncated EM with every component in every row's set, whose step is the exact
    # one; its moments, too, are taken again about the new means.
    X = _three_clusters()
    weights = np.array([0.2, 0.3, 0.5])
    means = X[:3] + np.array([[offset, 0, 0], [0, offset, 0], [0, 0, -offset]])
    covariances, precisions = _unit_parameters(covariance_type, 2.0)
    gmm = _one_step(
        X,
        covariance_type=covariance_type,
        n_active=n_active,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
    )
    expected, resp = _exact_step(X, weights, means, covariances, covariance_type)
    _assert_step_equals(gmm, expected)
    # The step's entropy sum S(q^0, Theta^1), from the exact responsibilities and parameters.
    terms = ref.entropy_terms(resp, expected[0], expected[2], covariance_type, X.shape[1])
    assert gmm.entropy_sum_history_[-1] == pytest.approx(terms["entropy_sum"], rel=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_truncated_em_from_far_off_means_init_fits_as_well_as_exact_em(covariance_type):
    # Four clusters, the means started 1e8 away: full covariances once raised the ill-defined
    # covariance error here (the truncated step's scatter cancelled to round-off).
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1, (300, 2)) for c in ([0, 0], [6, 0], [0, 6], [6, 6])])
    far = 1e8
    means_init = np.array([[far, far], [-far, far], [far, -far], [-far, -far]])
    params = dict(covariance_type=covariance_type, means_init=means_init, random_state=0, max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = FastGMM(4, **params).fit(X)
        truncated = FastGMM(4, n_active=2, **params).fit(X)
    assert truncated.converged_
    assert truncated.score(X) >= exact.score(X) - 1e-9
    decomposition = truncated.entropy_decomposition()
    assert abs(decomposition.gap) <= 1e-6 * abs(decomposition.elbo)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shift", [1e6, 1e8])
def test_a_warm_start_on_data_moved_far_away_steps_as_exact_em(covariance_type, shift):
    X = _three_clusters()
    gmm = FastGMM(3, covariance_type=covariance_type, random_state=0, max_iter=20, warm_start=True).fit(X)
    weights, means, covariances = gmm.weights_, gmm.means_, gmm.covariances_
    moved = X + shift
    gmm.set_params(max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(moved)
    _assert_step_equals(gmm, _exact_step(moved, weights, means, covariances, covariance_type)[0])


def test_ordinary_fits_take_no_second_pass(monkeypatch):
    # The second pass is for means that jump many standard deviations, not for every EM step.
    import fastelbo.mixture._gaussian as gaussian

    second_passes = []
    original = gaussian.moments_lose_precision

    def counted(*args):
        lose = original(*args)
        second_passes.append(lose)
        return lose

    monkeypatch.setattr(gaussian, "moments_lose_precision", counted)
    X = _three_clusters()
    for covariance_type in COVARIANCE_TYPES:
        FastGMM(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert len(second_passes) > 20 and not any(second_passes)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["k-means++", "afkmc2", "random_from_data", "kmeans"])
@pytest.mark.parametrize("spread", [1e6, 1e9])
def test_a_start_from_seed_rows_far_apart_has_the_exact_initial_covariances(
    covariance_type, init_params, spread
):
    # One seed row per component (or k-means clusters) lies 1e6 or more from the column mean: its
    # moments about that mean cancel to round-off (1e12 eps, far above reg_covar), which made full
    # and tied covariances 'ill-defined'. The initial M-step takes them about the new means, as the
    # exact NumPy M-step of the same one-hot responsibilities does.
    rng = np.random.RandomState(0)
    centres = rng.randn(3, 3) * spread
    labels = np.arange(300) % 3
    X = centres[labels] + rng.randn(300, 3)
    gmm = FastGMM(3, covariance_type=covariance_type, init_params=init_params, random_state=0, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    if init_params == "kmeans":  # the clusters themselves, each one k-means cluster
        resp = np.eye(3)[[np.argmin(((x - gmm.means_) ** 2).sum(axis=1)) for x in X]]
        weights, means, covariances = ref.m_step(X, resp, 1e-6, covariance_type)
        np.testing.assert_allclose(gmm.means_, means, rtol=1e-15)
        np.testing.assert_allclose(gmm.covariances_, covariances, rtol=1e-9, atol=1e-12)
    else:  # one row per component: a scatter of 0 (about a new mean within round-off of the row)
        expected, _ = _unit_parameters(covariance_type, 1e-6)
        np.testing.assert_allclose(gmm.covariances_, expected, rtol=1e-12, atol=1e-24)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_truncated_em_starts_and_fits_clusters_far_apart(covariance_type):
    # Truncated EM's default start is AFK-MC2 seeding; from it, the fit equals exact EM's optimum.
    rng = np.random.RandomState(0)
    X = (rng.randn(3, 2) * 1e6)[np.arange(600) % 3] + rng.randn(600, 2)
    exact = FastGMM(3, covariance_type=covariance_type, random_state=0).fit(X)
    truncated = FastGMM(3, covariance_type=covariance_type, n_active=2, random_state=0).fit(X)
    np.testing.assert_allclose(truncated.score(X), exact.score(X), rtol=1e-12)
