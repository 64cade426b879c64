"""The kernels compute with subnormal floats flushed to zero on their own threads, and leave the
floating-point environment of the caller (and of pooled OpenMP threads) exactly as they found it."""

import signal
import sys
import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastelbo import (
    FastBernoulliMixture,
    FastFactorAnalysis,
    FastGMM,
    FastMFA,
    FastPoissonMixture,
    FastPPCA,
    _core,
)

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


# ------------------------------------------------------------------ threads the kernels start
#
# A new thread copies the flush mode of the thread that creates it, and OpenMP creates a pool's
# threads when a thread first enters a parallel region with a team that large. A Python thread of
# its own has no pool yet, so the threads of its first kernel call are created during that call.


def _in_a_new_thread(work):
    """Return ``work()`` run in a new Python thread (whose OpenMP pool is empty), re-raising what it
    raised."""
    result = {}

    def run():
        try:
            result["value"] = work()
        except BaseException as error:  # re-raised in the calling thread
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.parametrize("team_sizes", [(2,), (4,), (2, 4)], ids=["2", "4", "2-then-4"])
def test_pool_threads_created_by_a_seeding_do_not_flush(team_sizes):
    # AFK-MC² flushes subnormals on its calling thread for the whole seeding (its serial chain steps
    # compute too) and enters its parallel regions from there: the pool threads those create (all
    # of them, or, for (2, 4), two more when the team grows) must start in the caller's mode.
    X = _well_separated(np.float64, n=2000)

    def seed_then_look():
        for n_threads in team_sizes:
            _core.afkmc2(X, None, 5, 20, 0, n_threads)
        return _core._flushes_subnormals(), _core._pool_flushes_subnormals(max(team_sizes))

    assert _in_a_new_thread(seed_then_look) == (False, [0] * max(team_sizes))


def test_pool_threads_created_by_a_seeding_copy_a_flushing_callers_mode():
    # The caller's mode, not a cleared one: the threads a kernel starts for a caller that flushes
    # flush, as the threads of the caller's own parallel regions would.
    X = _well_separated(np.float64, n=2000)

    def seed_then_look():
        _core._set_flushing_subnormals(True)
        try:
            _core.afkmc2(X, None, 5, 20, 0, 2)
            return _core._flushes_subnormals(), _core._pool_flushes_subnormals(2)
        finally:
            _core._set_flushing_subnormals(False)

    assert _in_a_new_thread(seed_then_look) == (True, [1, 1])


def _dense_rows():
    return _well_separated(np.float64, n=1500)


def _binary_rows():
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=1500)
    centres = np.where(rng.uniform(size=(4, 40)) < 0.5, 0.02, 0.98)
    return sp.csr_matrix((rng.uniform(size=(1500, 40)) < centres[labels]).astype(np.float64))


# Every kernel family with its seedings: (estimator, parameters, data, methods used after the fit).
ESTIMATORS = {
    "gmm-kmeans": (FastGMM, dict(n_components=4, init_params="kmeans"), _dense_rows, ["predict_proba"]),
    "gmm-k-means++": (FastGMM, dict(n_components=4, init_params="k-means++"), _dense_rows, ["score_samples"]),
    "gmm-afkmc2": (FastGMM, dict(n_components=4, init_params="afkmc2"), _dense_rows, ["predict"]),
    "gmm-truncated": (
        FastGMM,
        dict(n_components=6, n_active=2, covariance_type="diag"),
        _dense_rows,
        ["predict_proba", "score_samples"],
    ),
    "ppca": (FastPPCA, dict(n_components=2), _dense_rows, ["transform", "score_samples"]),
    "factor-analysis": (FastFactorAnalysis, dict(n_components=2), _dense_rows, ["transform"]),
    "mfa": (FastMFA, dict(n_components=3, n_factors=1), _dense_rows, ["predict_proba", "score_samples"]),
    "bernoulli": (FastBernoulliMixture, dict(n_components=4), _binary_rows, ["predict_proba"]),
    "bernoulli-truncated": (FastBernoulliMixture, dict(n_components=6, n_active=2), _binary_rows, ["bic"]),
    "poisson": (FastPoissonMixture, dict(n_components=4), _binary_rows, ["score_samples"]),
    "poisson-truncated": (FastPoissonMixture, dict(n_components=6, n_active=2), _binary_rows, ["score"]),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ESTIMATORS)
def test_pool_threads_created_by_any_estimator_do_not_flush(name):
    cls, params, rows, methods = ESTIMATORS[name]
    X = rows()

    def fit_use_then_look():
        model = cls(**params, max_iter=5, random_state=0, n_jobs=2).fit(X)
        for method in methods:
            getattr(model, method)(X)
        return _core._flushes_subnormals(), _core._pool_flushes_subnormals(2)

    assert _in_a_new_thread(fit_use_then_look) == (False, [0, 0])


# ------------------------------------------------------------------ the caller's code during a kernel
#
# A kernel's interrupt poll runs Python's signal handlers on the calling thread while the kernel is
# working: they must run in the caller's floating-point mode, not the kernel's.


def _long_gaussian_pass(n_threads):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200_000, 16))
    K = 32
    _core.gaussian_mixture_pass(
        X,
        None,
        np.log(np.full(K, 1 / K)),
        rng.standard_normal((K, 16)),
        np.ones((K, 16)),
        None,
        None,
        "diag",
        compute_moments=False,
        return_labels=True,
        n_threads=n_threads,
    )


def _long_seeding(n_threads):
    X = np.random.RandomState(0).standard_normal((20_000, 8))
    _core.afkmc2(X, None, 600, 200, 0, n_threads)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("kernel", [_long_gaussian_pass, _long_seeding])
def test_signal_handlers_run_during_a_kernel_see_the_callers_mode(kernel, n_threads):
    seen = []

    def handler(signum, frame):
        seen.append((_core._flushes_subnormals(), bool(_python_makes_subnormals())))

    done = threading.Event()

    def signal_often():
        main = threading.main_thread().ident
        while True:
            signal.pthread_kill(main, signal.SIGUSR1)
            if done.wait(0.002):
                return

    previous = signal.signal(signal.SIGUSR1, handler)
    sender = threading.Thread(target=signal_often, daemon=True)
    try:
        sender.start()
        kernel(n_threads)
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
    assert seen
    assert set(seen) == {(False, True)}
    assert not _core._flushes_subnormals()


def _estimators_on_float32_data():
    """One of every estimator kind, for float32 data."""
    gmms = [FastGMM(3, covariance_type=c, random_state=0, max_iter=15) for c in COVARIANCE_TYPES]
    gmms += [FastGMM(3, covariance_type=c, n_active=2, random_state=0, max_iter=15) for c in ("full", "diag")]
    factor_models = [
        FastPPCA(2),
        FastPPCA(2, solver="em", random_state=0),
        FastFactorAnalysis(2, rotation="varimax"),
    ]
    mfas = [
        FastMFA(2, n_factors=f, noise=n, random_state=0, max_iter=10)
        for f, n in ((2, "diag"), (1, "spherical"))
    ]
    return gmms + factor_models + mfas


@pytest.mark.parametrize("estimator", _estimators_on_float32_data(), ids=repr)
def test_fits_and_outputs_on_float32_data_raise_no_floating_point_error_under_a_callers_errstate(estimator):
    # Parameters rounded to float32 (means and loadings far below the data's scale) raised
    # 'FloatingPointError: underflow encountered in cast' under np.errstate(all="raise").
    from sklearn.datasets import load_digits

    rng = np.random.RandomState(1)
    centres = np.array([[0, 0, 0, 0], [6, 6, 0, 0], [0, -6, 6, 3]], float)
    clusters_on_a_grid = np.round((centres[rng.randint(0, 3, 60)] + rng.randn(60, 4)) * 4) / 4
    for X in (load_digits().data[:400] + 0.01 * np.arange(64), clusters_on_a_grid):
        X = X.astype(np.float32)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("ignore")
            estimator.fit(X)
            estimator.score_samples(X)
            estimator.entropy_decomposition(X)
            if hasattr(estimator, "predict_proba"):
                estimator.predict_proba(X)
                estimator.sample(5)
            else:
                estimator.transform(X)
