"""The warm-started eigensolver of factor analysis's steps: its pairs equal LAPACK's wherever it
returns them, it gives up (None) within its budget on spectra it cannot resolve, and the
factor-analysis step that uses it then takes the exact path, so that the step's loadings equal the
exact path's on every spectrum. A fit through it equals a fit forced onto the exact path."""

import warnings

import numpy as np
import pytest
from scipy import linalg
from threadpoolctl import threadpool_limits

import fastelbo.factor._linear_gaussian as linear_gaussian
import fastelbo.factor._warm_eigensolver as warm_eigensolver
from fastelbo import FastFactorAnalysis
from fastelbo.factor._warm_eigensolver import RESIDUAL_TOLERANCE, warm_leading_eigenpairs


def _matrix_with_spectrum(values, seed=0):
    """A symmetric matrix with eigenvalues ``values`` and random eigenvectors (returned too)."""
    rng = np.random.default_rng(seed)
    vectors = linalg.qr(rng.normal(size=(values.shape[0], values.shape[0])))[0]
    return (vectors * values) @ vectors.T, vectors


def _counted(matrix):
    """``apply(X) = matrix @ X`` and a list that records the columns of every product."""
    columns = []

    def apply(block):
        columns.append(block.shape[1])
        return matrix @ block

    return apply, columns


def _start_near(vectors, n_wanted, distance, seed=1):
    """The leading ``n_wanted`` eigenvectors perturbed by about ``distance``."""
    rng = np.random.default_rng(seed)
    return vectors[:, -n_wanted:][:, ::-1] + distance * rng.normal(size=(vectors.shape[0], n_wanted))


def _signal_and_bulk(n_features, n_wanted, seed=0):
    """A factor-analysis-like spectrum: ``n_wanted`` strong values over a bulk near 1."""
    rng = np.random.default_rng(seed)
    bulk = rng.uniform(0.5, 1.5, n_features - n_wanted)
    return np.concatenate([bulk, np.geomspace(10.0, 500.0, n_wanted)])


HOSTILE_SPECTRA = {
    # The H-th and (H+1)-th eigenvalues 1e-9 apart: no start within reach separates them.
    "tiny gap": lambda d, h: np.concatenate(
        [np.linspace(0.5, 1.0, d - h - 1), [3.0, 3.0 + 3e-9], np.geomspace(5, 50, h - 1)]
    ),
    # A cluster of equal eigenvalues across the H-th: the wanted subspace is not defined.
    "clustered": lambda d, h: np.concatenate(
        [np.linspace(0.5, 1.0, d - h - 5), np.full(10, 2.0), np.geomspace(5, 50, h - 5)]
    ),
    # The H-th eigenvalue inside the noise bulk (loadings a fit cannot resolve).
    "wanted in the bulk": lambda d, h: np.concatenate([np.linspace(0.5, 1.5, d - 3), [10.0, 20.0, 30.0]]),
    # Fewer non-zero eigenvalues than wanted.
    "rank-deficient": lambda d, h: np.concatenate([np.zeros(d - h + 3), np.geomspace(1.0, 10.0, h - 3)]),
    # A Heywood case's spread: 1e10 between the largest and the H-th.
    "huge spread": lambda d, h: np.concatenate([np.linspace(0.5, 1.5, d - h), np.geomspace(2.0, 2e10, h)]),
}


def _assert_pairs_are_lapacks(matrix, n_wanted, values, vectors):
    """Values within the tolerance of LAPACK's, certified residuals, orthonormal vectors, and
    (where the gap after the wanted values defines it) the same subspace to Davis-Kahan's bound."""
    n_features = matrix.shape[0]
    expected_values, expected_vectors = linalg.eigh(matrix)
    norm = expected_values[-1]
    np.testing.assert_allclose(
        values, expected_values[::-1][:n_wanted], rtol=0, atol=10 * RESIDUAL_TOLERANCE * norm
    )
    residuals = matrix @ vectors - vectors * values
    assert np.max(np.linalg.norm(residuals, axis=0)) <= RESIDUAL_TOLERANCE * norm
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(n_wanted), atol=1e-12)
    gap = expected_values[n_features - n_wanted] - expected_values[n_features - n_wanted - 1]
    if gap > 1e-6 * norm:
        others = expected_vectors[:, : n_features - n_wanted]
        sines = np.linalg.norm(others.T @ vectors, 2)
        assert sines <= np.sqrt(n_wanted) * RESIDUAL_TOLERANCE * norm / gap + 1e-13


@pytest.mark.parametrize("distance", [1e-8, 1e-4, 1e-2])
@pytest.mark.parametrize("n_features, n_wanted", [(120, 5), (300, 20)])
def test_from_a_nearby_start_the_pairs_are_lapacks(n_features, n_wanted, distance):
    matrix, vectors = _matrix_with_spectrum(_signal_and_bulk(n_features, n_wanted))
    apply, columns = _counted(matrix)
    solved = warm_leading_eigenpairs(
        apply, _start_near(vectors, n_wanted, distance), n_wanted, column_budget=n_features
    )
    assert isinstance(solved, tuple)
    values, found, used = solved
    assert used == sum(columns) <= n_features
    _assert_pairs_are_lapacks(matrix, n_wanted, values, found)


@pytest.mark.parametrize("spectrum", sorted(HOSTILE_SPECTRA))
@pytest.mark.parametrize("n_features, n_wanted", [(120, 8), (300, 20)])
def test_on_hostile_spectra_the_pairs_are_lapacks_or_none_within_budget(spectrum, n_features, n_wanted):
    values = HOSTILE_SPECTRA[spectrum](n_features, n_wanted)
    assert values.shape == (n_features,)
    matrix, vectors = _matrix_with_spectrum(values, seed=2)
    apply, columns = _counted(matrix)
    budget = n_features / 3
    solved = warm_leading_eigenpairs(
        apply, _start_near(vectors, n_wanted, 1e-3), n_wanted, column_budget=budget
    )
    assert sum(columns) <= budget
    if isinstance(solved, tuple):  # else refused: None, or NO_GAP
        _assert_pairs_are_lapacks(matrix, n_wanted, *solved[:2])


def test_all_but_one_direction_is_refused_or_exact():
    # H = D - 1: the block spans nearly everything; the only other direction is the last one.
    matrix, vectors = _matrix_with_spectrum(np.geomspace(0.1, 100.0, 40), seed=3)
    apply, columns = _counted(matrix)
    solved = warm_leading_eigenpairs(apply, _start_near(vectors, 39, 1e-3), 39, column_budget=400)
    if isinstance(solved, tuple):
        _assert_pairs_are_lapacks(matrix, 39, *solved[:2])


def test_a_start_with_a_zero_loading_is_refused_without_a_product():
    matrix, vectors = _matrix_with_spectrum(_signal_and_bulk(100, 5))
    start = _start_near(vectors, 5, 1e-6)
    start[:, 2] = 0.0
    apply, columns = _counted(matrix)
    assert warm_leading_eigenpairs(apply, start, 5, column_budget=100) is None
    assert columns == []


def _whitened_problem(spectrum, n_components, seed=4):
    """A tall factor whose whitened Gram (unit noise) has the spectrum, and loadings whose span
    is 1e-6 from the leading eigenvectors (the previous step's, for nearby noise variances)."""
    _, vectors = _matrix_with_spectrum(spectrum, seed=seed)
    factor = (vectors * np.sqrt(spectrum)) @ vectors.T  # the symmetric square root
    start = _start_near(vectors, n_components, 1e-6, seed=seed).T
    return factor, factor.T @ factor, start


@pytest.mark.parametrize("spectrum", ["benign", *sorted(HOSTILE_SPECTRA)])
def test_the_steps_loadings_equal_the_exact_paths_on_every_spectrum(monkeypatch, spectrum):
    # Would fail if the solver's uncertified pairs were used: the exact path (LAPACK's subset
    # solver, or the SVD for a huge spread) is taken wherever the solver gives up.
    n_features, n_components = 600, 20
    make = HOSTILE_SPECTRA.get(spectrum, lambda d, h: _signal_and_bulk(d, h))
    factor, gram, start = _whitened_problem(make(n_features, n_components), n_components)
    noise = np.ones(n_features)
    outcomes = []
    solve = warm_eigensolver.warm_leading_eigenpairs

    def recorded(*args, **kwargs):
        outcomes.append(solve(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(linear_gaussian, "warm_leading_eigenpairs", recorded)
    warm = linear_gaussian.optimal_components(factor, noise, n_components, gram, start)
    assert len(outcomes) == 1
    monkeypatch.setattr(linear_gaussian, "WARM_START_DIRECTIONS", False)
    exact = linear_gaussian.optimal_components(factor, noise, n_components, gram, start)
    if spectrum == "benign":
        assert isinstance(outcomes[0], tuple)
    scale = np.max(np.abs(exact))
    if spectrum in ("clustered", "rank-deficient", "tiny gap"):
        # Loadings inside a cluster (or of zero scale) are not unique: compare what is, the
        # model covariance they give.
        np.testing.assert_allclose(warm.T @ warm, exact.T @ exact, atol=1e-10 * scale**2)
    else:
        np.testing.assert_allclose(warm, exact, atol=1e-10 * scale)


def _bench_like_data(n_samples=3000, n_features=300, n_factors=20, seed=5):
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n_factors, n_features)) * rng.uniform(0.2, 2.0, (n_factors, 1))
    noise = rng.uniform(0.2, 2.0, n_features)
    return rng.normal(size=(n_samples, n_factors)) @ loadings + rng.normal(
        size=(n_samples, n_features)
    ) * np.sqrt(noise)


def _recording_certified():
    """``(certified, recorded)``: a list of whether each solve certified, and the solver that
    appends to it."""
    certified = []
    solve = warm_eigensolver.warm_leading_eigenpairs

    def recorded(*args, **kwargs):
        solved = solve(*args, **kwargs)
        certified.append(isinstance(solved, tuple))
        return solved

    return certified, recorded


def test_a_fit_through_the_warm_solver_equals_the_fit_on_the_exact_path(monkeypatch):
    X = _bench_like_data()
    certified, recorded = _recording_certified()
    monkeypatch.setattr(linear_gaussian, "warm_leading_eigenpairs", recorded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = FastFactorAnalysis(20, tol=1e-6).fit(X)
        monkeypatch.setattr(linear_gaussian, "WARM_START_DIRECTIONS", False)
        exact = FastFactorAnalysis(20, tol=1e-6).fit(X)
    assert sum(certified) > len(certified) / 2  # the warm solver did most of the steps
    assert warm.n_iter_ == exact.n_iter_
    assert warm.score(X) == pytest.approx(exact.score(X), rel=1e-12)
    np.testing.assert_allclose(warm.noise_variance_, exact.noise_variance_, rtol=1e-9)
    np.testing.assert_allclose(warm.components_, exact.components_, rtol=1e-8, atol=1e-10)


def test_a_fit_through_the_warm_solver_is_bitwise_the_same_on_one_or_two_blas_threads():
    X = _bench_like_data(seed=6)
    fits = []
    for threads in (1, 2, 1):
        with threadpool_limits(threads):
            fits.append(FastFactorAnalysis(20, n_jobs=threads).fit(X))
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.components_, fits[0].components_)
        np.testing.assert_array_equal(fit.noise_variance_, fits[0].noise_variance_)
        assert fit.loglike_ == fits[0].loglike_


def test_a_run_on_a_gapless_spectrum_stops_trying_after_its_credit():
    # Isotropic noise has no gap at any eigenvalue: every warm solve fails and is paid on top of
    # the exact one (24x24 image patches took 31% longer before the credit). Each run (one per
    # start) now pays for INITIAL_CREDIT failures, then takes the exact path; the fit is the same.
    X = np.random.default_rng(7).normal(size=(3000, 300))
    certified, recorded = _recording_certified()
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(linear_gaussian, "warm_leading_eigenpairs", recorded)
        warm = FastFactorAnalysis(20, tol=1e-6).fit(X)
        patch.setattr(linear_gaussian, "WARM_START_DIRECTIONS", False)
        exact = FastFactorAnalysis(20, tol=1e-6).fit(X)
    assert warm.n_iter_ > 2 * warm_eigensolver.INITIAL_CREDIT  # steps enough to run out of it
    assert not any(certified)
    assert len(certified) <= warm.n_init * warm_eigensolver.INITIAL_CREDIT
    assert warm.n_iter_ == exact.n_iter_
    np.testing.assert_array_equal(warm.noise_variance_, exact.noise_variance_)


def test_the_credit_is_spent_by_gapless_solves_and_earned_back_by_certified_ones():
    credit = warm_eigensolver.WarmSolveCredit()
    certified = (np.ones(1), np.eye(2)[:, :1], 4)
    # Failures of a far start cost nothing; certified solves bank at most MAX_CREDIT.
    outcomes = [None] * 10 + [certified] * 5 + [warm_eigensolver.NO_GAP] * warm_eigensolver.MAX_CREDIT
    for outcome in outcomes:
        assert credit.allows()
        credit.record(outcome)
    assert not credit.allows()


def test_a_continuation_finds_a_stronger_direction_its_loadings_do_not_reach(monkeypatch):
    # Two blocks of features that the covariance does not couple at all; the first fit's data had
    # only noise in block B, so its loadings are exactly 0 there, and every Krylov product from
    # them stays in block A. Continued on data with a strong factor in B, the solver certified
    # exact eigenpairs of block A that were not the leading ones: the fit stopped 140 nats per
    # sample short. Random directions in every start reach B.
    rng = np.random.default_rng(0)
    n_samples, in_a, in_b, n_components = 1200, 230, 40, 3
    half = n_samples // 2
    scales = np.array([1.0, 1.0, 0.14])[:, None]
    a = rng.standard_normal((half, n_components)) @ (rng.standard_normal((n_components, in_a)) * scales)
    a += 0.5 * rng.standard_normal((half, in_a))
    b = rng.standard_normal((n_samples - half, 1)) * 3.0 + 0.05 * rng.standard_normal(
        (n_samples - half, in_b)
    )
    X = np.zeros((n_samples, in_a + in_b))
    X[:half, :in_a] = a - a.mean(0)
    X[half:, in_a:] = b - b.mean(0)
    first = X.copy()
    first[half:, in_a:] = 0.3 * rng.standard_normal((n_samples - half, in_b))
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for warm in (True, False):
            monkeypatch.setattr(linear_gaussian, "WARM_START_DIRECTIONS", warm)
            fits[warm] = FastFactorAnalysis(n_components, warm_start=True).fit(first).fit(X)
    assert fits[True].n_iter_ == fits[False].n_iter_
    assert fits[True].score(X) == pytest.approx(fits[False].score(X), rel=1e-12)
    # The likelihood is flat here along some noise variances: the exact path's own continuation
    # and straight fit end 3.4e-7 apart in them, at the same score.
    np.testing.assert_allclose(fits[True].noise_variance_, fits[False].noise_variance_, rtol=1e-6)


@pytest.mark.parametrize("perturbation", [0.0, 1e-14, 1e-6])
def test_a_start_exact_on_one_block_does_not_certify_without_the_others(perturbation):
    # M is block diagonal; the start is exactly (or nearly) the top 3 eigenvectors of block A
    # (900, 900, 18), block B has an eigenvalue of 40. From an exact start the pairs certified at
    # once, [900, 900, 18]: no product ever left block A. Whatever the solver returns now is
    # LAPACK's answer or a refusal.
    rng = np.random.default_rng(0)
    n_features, in_b, n_wanted = 300, 40, 3
    in_a = n_features - in_b
    basis_a = linalg.qr(rng.standard_normal((in_a, in_a)))[0]
    basis_b = linalg.qr(rng.standard_normal((in_b, in_b)))[0]
    values_a = 1 + 0.3 * rng.random(in_a)
    values_a[:3] = (900, 900, 18)
    values_b = 1 + 0.3 * rng.random(in_b)
    values_b[0] = 40
    matrix = np.zeros((n_features, n_features))
    matrix[:in_a, :in_a] = (basis_a * values_a) @ basis_a.T
    matrix[in_a:, in_a:] = (basis_b * values_b) @ basis_b.T
    start = np.zeros((n_features, n_wanted))
    start[:in_a] = basis_a[:, :n_wanted] + perturbation * rng.standard_normal((in_a, n_wanted))
    solved = warm_leading_eigenpairs(lambda block: matrix @ block, start, n_wanted, column_budget=100)
    if isinstance(solved, tuple):
        _assert_pairs_are_lapacks(matrix, n_wanted, *solved[:2])
