"""Results do not depend on the thread count, threadpoolctl controls the kernels' OpenMP pool, fits
are reproducible, NumPy's BLAS limits survive fits overlapping in several threads, and a forked
child can fit.

"Identical" means bitwise identical (``np.array_equal`` / ``==``), not ``allclose``: the kernels
reduce fixed-size row blocks in a fixed order, so the floating-point sums are the same whatever
``n_jobs`` is. The data span many row blocks (blocks hold at most 1024 rows).
"""

import copy
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

import fastelbo
from fastelbo import FastGMM, _core, _threads
from fastelbo._threads import available_cpus, resolve_n_threads

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
DTYPES = [np.float64, np.float32]
N_SAMPLES, N_FEATURES, N_COMPONENTS = 20000, 8, 6
# None: the OpenMP default; -1: all CPUs; 3 and 5: counts that need not divide the round size.
OTHER_N_JOBS = [2, 3, 5, None, -1]

FITTED_ATTRIBUTES = [
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "lower_bound_",
    "lower_bounds_",
    "elbo_history_",
    "entropy_sum_history_",
    "n_iter_",
    "converged_",
]

requires_openmp = pytest.mark.skipif(not _core.openmp_enabled(), reason="fastelbo was built without OpenMP")


@functools.cache
def _data(dtype):
    """Overlapping clusters, so EM takes several iterations to converge."""
    rng = np.random.RandomState(0)
    centers = rng.standard_normal((N_COMPONENTS, N_FEATURES))
    scales = rng.uniform(0.5, 1.5, size=(N_COMPONENTS, N_FEATURES))
    labels = rng.randint(N_COMPONENTS, size=N_SAMPLES)
    X = centers[labels] + scales[labels] * rng.standard_normal((N_SAMPLES, N_FEATURES))
    X = X.astype(dtype)
    X.setflags(write=False)
    return X


def _fit(covariance_type, dtype, n_jobs, init_params="kmeans", random_state=0, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return FastGMM(
            n_components=N_COMPONENTS,
            covariance_type=covariance_type,
            init_params=init_params,
            tol=1e-5,
            max_iter=40,
            random_state=random_state,
            n_jobs=n_jobs,
            **params,
        ).fit(_data(dtype))


@functools.cache
def _single_threaded_fit(covariance_type, dtype):
    return _fit(covariance_type, dtype, n_jobs=1)


def assert_identical_fits(gmm, expected):
    for name in FITTED_ATTRIBUTES:
        value, expected_value = getattr(gmm, name), getattr(expected, name)
        if isinstance(expected_value, np.ndarray):
            assert value.dtype == expected_value.dtype, name
            assert value.shape == expected_value.shape, name
            assert np.array_equal(value, expected_value), name
        else:
            assert value == expected_value, name


def _dtype_id(dtype):
    return np.dtype(dtype).name


@pytest.fixture
def uncapped_n_jobs(monkeypatch):
    """Let n_jobs reach the kernels as given even above the CPU count (which caps it), so that thread
    counts that need not divide the round size (3, 5) are exercised on a small machine too."""
    cpus = available_cpus()
    monkeypatch.setattr(_threads, "available_cpus", lambda: max(cpus, 5))


# ----------------------------------------------------------------------------- n_jobs invariance


@pytest.mark.parametrize("n_jobs", OTHER_N_JOBS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fitted_attributes_are_bitwise_identical_for_any_n_jobs(
    covariance_type, dtype, n_jobs, uncapped_n_jobs
):
    expected = _single_threaded_fit(covariance_type, dtype)
    assert expected.n_iter_ > 2  # the comparison covers several EM iterations
    assert_identical_fits(_fit(covariance_type, dtype, n_jobs), expected)


@pytest.mark.parametrize("init_params", ["k-means++", "random", "random_from_data"])
def test_other_initialisations_are_bitwise_identical_for_any_n_jobs(init_params, uncapped_n_jobs):
    expected = _fit("full", np.float64, n_jobs=1, init_params=init_params)
    for n_jobs in (2, 3, None):
        assert_identical_fits(_fit("full", np.float64, n_jobs, init_params=init_params), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inference_is_bitwise_identical_for_any_n_jobs(covariance_type, dtype, uncapped_n_jobs):
    X = _data(dtype)
    gmm = copy.deepcopy(_single_threaded_fit(covariance_type, dtype))
    outputs = {}
    for n_jobs in [1, *OTHER_N_JOBS]:
        gmm.set_params(n_jobs=n_jobs)
        outputs[n_jobs] = (
            gmm.predict_proba(X),
            gmm.score_samples(X),
            gmm.predict(X),
            gmm.score(X),
            gmm.entropy_decomposition(X),
        )
    proba, log_density, labels, score, decomposition = outputs[1]
    for n_jobs in OTHER_N_JOBS:
        other = outputs[n_jobs]
        assert np.array_equal(other[0], proba), f"predict_proba, n_jobs={n_jobs}"
        assert np.array_equal(other[1], log_density), f"score_samples, n_jobs={n_jobs}"
        assert np.array_equal(other[2], labels), f"predict, n_jobs={n_jobs}"
        assert other[3] == score, f"score, n_jobs={n_jobs}"
        assert other[4] == decomposition, f"entropy_decomposition, n_jobs={n_jobs}"


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_kmeans_kernels_are_bitwise_identical_for_any_thread_count(dtype):
    X = _data(dtype)
    indices = {t: _core.kmeans_plusplus(X, None, 12, 4, 123, t) for t in (1, 2, 3, 0)}
    for t in (2, 3, 0):
        assert np.array_equal(indices[t], indices[1]), t
    centers = np.asarray(X[indices[1]], dtype=np.float64)
    results = {t: _core.lloyd_kmeans(X, None, centers, 50, 0.0, t) for t in (1, 2, 3, 0)}
    labels, centres, inertia, n_iter = results[1]
    assert n_iter > 1
    for t in (2, 3, 0):
        assert np.array_equal(results[t][0], labels), t
        assert np.array_equal(results[t][1], centres), t
        assert results[t][2] == inertia, t
        assert results[t][3] == n_iter, t


# ----------------------------------------------------------------------------- threadpoolctl


@requires_openmp
def test_threadpool_info_lists_an_openmp_runtime():
    openmp = [lib for lib in threadpool_info() if lib["user_api"] == "openmp"]
    assert openmp, threadpool_info()
    assert _core.omp_max_threads() in {lib["num_threads"] for lib in openmp}


@requires_openmp
def test_threadpool_limits_controls_the_kernels_openmp_pool():
    before = _core.omp_max_threads()
    with threadpool_limits(limits=1, user_api="openmp"):
        assert _core.omp_max_threads() == 1
        assert fastelbo.build_info()["openmp_max_threads"] == 1
    assert _core.omp_max_threads() == before


@requires_openmp
def test_fit_under_threadpool_limits_matches_single_threaded_fit():
    expected = _single_threaded_fit("full", np.float64)
    with threadpool_limits(limits=1, user_api="openmp"):
        assert_identical_fits(_fit("full", np.float64, n_jobs=None), expected)


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_random_state_gives_identical_fits(covariance_type, init_params):
    first = _fit(covariance_type, np.float64, None, init_params=init_params, n_init=2)
    second = _fit(covariance_type, np.float64, None, init_params=init_params, n_init=2)
    assert_identical_fits(second, first)
    X = _data(np.float64)
    assert np.array_equal(first.predict_proba(X), second.predict_proba(X))


def test_equally_seeded_random_state_instances_give_identical_fits():
    first = _fit("diag", np.float32, None, random_state=np.random.RandomState(7))
    second = _fit("diag", np.float32, None, random_state=np.random.RandomState(7))
    assert_identical_fits(second, first)


def test_refitting_the_same_estimator_is_reproducible():
    gmm = FastGMM(n_components=N_COMPONENTS, random_state=3, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = gmm.fit(_data(np.float64)).means_.copy()
        second = gmm.fit(_data(np.float64)).means_
    assert np.array_equal(first, second)


# ----------------------------------------------------------------------------- n_jobs above the CPUs


def test_n_jobs_above_the_cpu_count_is_capped_at_it():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == cpus
    assert resolve_n_threads(1000) == cpus
    assert resolve_n_threads(cpus) == cpus
    assert resolve_n_threads(-1) == cpus
    assert resolve_n_threads(None) == 0  # the OpenMP default, left to the kernels


def test_fit_with_n_jobs_1000_matches_single_threaded_fit(monkeypatch):
    kernel_threads = []
    kernel = _core.gaussian_mixture_pass

    def recorded(*args, **kwargs):
        kernel_threads.append(kwargs["n_threads"])
        return kernel(*args, **kwargs)

    monkeypatch.setattr(_core, "gaussian_mixture_pass", recorded)
    gmm = _fit("full", np.float64, n_jobs=1000)
    assert set(kernel_threads) == {available_cpus()}
    assert_identical_fits(gmm, _single_threaded_fit("full", np.float64))


# ----------------------------------------------------------------------------- BLAS limits

WAIT_S = 60  # bound on every wait, so that a broken test fails instead of hanging


def blas_threads():
    """Thread count of every loaded BLAS, read from the libraries themselves."""
    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    if not counts:
        pytest.skip("no BLAS library is loaded")
    return counts


class PausingGMM(FastGMM):
    """FastGMM whose first E-step signals ``entered`` and then waits for ``release``: the fit is
    then inside the single-threaded-BLAS scope until the test lets it go on."""

    def _e_step(self, X, *args, **kwargs):
        if self.pause is not None:
            pause, self.pause = self.pause, None
            pause["blas_threads"] = blas_threads()
            pause["entered"].set()
            assert pause["release"].wait(WAIT_S), "the test did not release the fit"
        return super()._e_step(X, *args, **kwargs)


def paused_fit_in_thread(blas_limit=None):
    """Start a fit in a thread (inside a ``threadpool_limits(blas_limit)`` block of that thread
    if given), wait until it is paused inside fastelbo; return (thread, pause)."""
    pause = {"entered": threading.Event(), "release": threading.Event(), "errors": []}
    gmm = PausingGMM(n_components=3, random_state=0, max_iter=5)
    gmm.pause = pause

    def work():
        try:
            if blas_limit is None:
                gmm.fit(_data(np.float64)[:2000])
            else:
                with threadpool_limits(limits=blas_limit, user_api="blas"):
                    gmm.fit(_data(np.float64)[:2000])
        except BaseException as error:  # reported by the test thread
            pause["errors"].append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert pause["entered"].wait(WAIT_S), pause["errors"]
    return thread, pause


def finish(thread, pause):
    pause["release"].set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert not pause["errors"], pause["errors"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_overlapping_in_two_threads_restore_the_blas_limits():
    # A enters, then B; A leaves while B is still inside; then B leaves. A save-and-restore per call
    # would leave B's saved limit (A's 1) in place at the end.
    original = blas_threads()
    a = paused_fit_in_thread()
    b = paused_fit_in_thread()
    assert a[1]["blas_threads"] == b[1]["blas_threads"] == [1] * len(original)
    finish(*a)
    assert blas_threads() == [1] * len(original)  # B is still working
    finish(*b)
    assert blas_threads() == original


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("user_limit", [1, 3])
def test_fits_overlapping_in_two_threads_keep_the_users_blas_limit(user_limit):
    original = blas_threads()
    with threadpool_limits(limits=user_limit, user_api="blas"):
        limited = blas_threads()
        assert limited == [user_limit] * len(original)
        a = paused_fit_in_thread()
        b = paused_fit_in_thread()
        finish(*a)
        finish(*b)
        assert blas_threads() == limited
    assert blas_threads() == original


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("user_limit", [1, 3])
def test_a_fit_inside_the_users_blas_limit_runs_single_threaded_and_restores_the_limit(user_limit):
    original = blas_threads()
    X = _data(np.float64)[:2000]
    inside = []

    class RecordingGMM(FastGMM):
        def _m_step(self, stats):
            inside.append(blas_threads())
            super()._m_step(stats)

    with threadpool_limits(limits=user_limit, user_api="blas"):
        limited = blas_threads()
        RecordingGMM(n_components=3, random_state=0, max_iter=2, tol=0.0).fit(X)
        assert inside == [[1] * len(original)] * 2
        assert blas_threads() == limited
    assert blas_threads() == original


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_overlapping_another_threads_limited_fit_leaves_the_blas_limits_as_they_were():
    # Thread T opens threadpool_limits(1) and fits inside it; W's fit starts while T's runs and ends
    # after T's block has restored the original limits. The first call in recorded T's limit of 1,
    # and W's end restored it: BLAS stayed at 1 for the rest of the process.
    original = blas_threads()
    if original == [1] * len(original):
        pytest.skip("BLAS already runs one thread: nothing to tell apart")
    t = paused_fit_in_thread(blas_limit=1)
    w = paused_fit_in_thread()
    finish(*t)  # T's fit ends and T's block restores the original limits; W is still inside
    finish(*w)
    assert blas_threads() == original


def _set_blas_for_good(limit):
    """Set every BLAS to ``limit`` as a user would for the whole process (no block, no thread
    keeping threadpoolctl's OpenBLAS control)."""
    threadpool_limits(limits=limit, user_api="blas")
    control = _threads._openblas_control()
    if control is not None:
        control[0].clear_controlling_thread(force=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_block_raising_the_limit_around_a_fit_another_thread_outlasts_leaves_the_users_limit():
    # The user runs BLAS at 1; thread A fits inside threadpool_limits(2); B's fit starts later and
    # ends after A's block. The scope recorded A's 2, and B's end put it back once A's block had
    # restored the user's 1 (its 1 looked like the scope's own).
    original = blas_threads()
    try:
        _set_blas_for_good(1)
        a = paused_fit_in_thread(blas_limit=2)
        b = paused_fit_in_thread()
        finish(*a)
        finish(*b)
        assert blas_threads() == [1] * len(original)
    finally:
        _set_blas_for_good(original[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("user_limit", [1, 3])
def test_a_limit_a_running_thread_sets_for_good_during_a_fit_is_kept(user_limit):
    original = blas_threads()
    done, fit_ended = threading.Event(), threading.Event()

    def set_for_good_and_go_on():
        threadpool_limits(limits=user_limit, user_api="blas")
        done.set()
        fit_ended.wait(WAIT_S)  # still running when the fit ends

    try:
        thread, pause = paused_fit_in_thread()
        setter = threading.Thread(target=set_for_good_and_go_on, daemon=True)
        setter.start()
        assert done.wait(WAIT_S)
        finish(thread, pause)
        assert blas_threads() == [user_limit] * len(original)
    finally:
        fit_ended.set()
        setter.join(WAIT_S)
        _set_blas_for_good(original[0])


def _leave_the_control_with_an_ended_thread():
    """What a thread that once set a limit for good and then ended leaves behind."""
    limit = blas_threads()[0]
    setter = threading.Thread(target=threadpool_limits, kwargs={"limits": limit, "user_api": "blas"})
    setter.start()
    setter.join(WAIT_S)


def _open_and_close_a_block():
    with threadpool_limits(limits=3, user_api="blas"):
        pass


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("stale_control", [False, True], ids=["no holder", "ended holder"])
def test_a_block_opened_and_closed_during_a_fit_leaves_the_limits_restored(stale_control):
    # The control left with an ended thread, then a block in another thread during the fit: the
    # block's end cleared it, which the last call took for a change of hands (BLAS stayed at 1).
    original = blas_threads()
    try:
        if stale_control:
            _leave_the_control_with_an_ended_thread()
        thread, pause = paused_fit_in_thread()
        block = threading.Thread(target=_open_and_close_a_block)
        block.start()
        block.join(WAIT_S)
        finish(thread, pause)
        assert blas_threads() == original
    finally:
        _set_blas_for_good(original[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_that_starts_after_another_threads_block_ended_runs_single_threaded():
    # W's fit found T's block open and left the limits alone; a fit started after the block ended
    # ran with multi-threaded BLAS until W ended.
    original = blas_threads()
    if original == [1] * len(original):
        pytest.skip("BLAS already runs one thread: nothing to tell apart")
    opened, close = threading.Event(), threading.Event()

    def block():
        with threadpool_limits(limits=original[0], user_api="blas"):
            opened.set()
            close.wait(WAIT_S)

    t = threading.Thread(target=block, daemon=True)
    t.start()
    assert opened.wait(WAIT_S)
    w = paused_fit_in_thread()
    close.set()
    t.join(WAIT_S)
    x = paused_fit_in_thread()
    assert x[1]["blas_threads"] == [1] * len(original)
    finish(*x)
    finish(*w)
    assert blas_threads() == original


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_nested_in_another_threads_fit_restores_the_blas_limits():
    original = blas_threads()
    thread, pause = paused_fit_in_thread()
    _fit("diag", np.float64, n_jobs=1)  # enters and leaves while the other fit is inside
    assert blas_threads() == [1] * len(original)
    finish(thread, pause)
    assert blas_threads() == original


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_keyboard_interrupts_landing_anywhere_in_calls_leave_the_blas_limits_restored():
    # A KeyboardInterrupt between the scope's bookkeeping steps (entering, limiting, restoring)
    # left BLAS at 1 thread for the rest of the process, and a later undisturbed call did not mend
    # it. Simulated Ctrl-C: a timer every 0.3 ms whose handler raises KeyboardInterrupt while a
    # short call runs, thousands of times.
    original = blas_threads()
    X = _data(np.float64)[:300]
    gmm = FastGMM(3, random_state=0, n_jobs=1).fit(X)
    armed = [False]

    def interrupt(signum, frame):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    interrupted, deadline = 0, time.monotonic() + 4.0
    try:
        while interrupted < 3000 and time.monotonic() < deadline:
            try:
                try:
                    armed[0] = True
                    gmm.predict_proba(X)
                finally:
                    armed[0] = False
            except KeyboardInterrupt:
                interrupted += 1
            assert blas_threads() == original, f"after {interrupted} interrupted calls"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted > 100
    assert not _threads._BLAS_SCOPE._calls


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fastelbo_calls_nested_in_one_thread_keep_blas_single_threaded_until_the_outermost_ends():
    X = _data(np.float64)[:2000]
    fitted = _fit("diag", np.float64, n_jobs=1)
    original = blas_threads()
    inside = []

    class NestingGMM(FastGMM):
        def _m_step(self, stats):
            fitted.score(X)  # a public method, wrapped itself, called from inside fit
            inside.append(blas_threads())
            super()._m_step(stats)

    NestingGMM(n_components=3, random_state=0, max_iter=2, tol=0.0).fit(X)
    assert inside == [[1] * len(original)] * 2
    assert blas_threads() == original


# ----------------------------------------------------------------------------- fork

FORK_TIMEOUT_S = 60

# Fits FastGMM in a parent and in a child of a fork-context Pool; prints both results as JSON, or
# exits with 3 when the child does not answer in time (the libgomp-after-fork hang).
FORK_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys, threading, warnings
    import numpy as np
    from threadpoolctl import threadpool_info
    from fastelbo import FastGMM
    from fastelbo._threads import resolve_n_threads

    PARENT_N_JOBS, CHILD_N_JOBS, TIMEOUT = {parent_n_jobs!r}, {child_n_jobs!r}, {timeout!r}

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    def fit(n_jobs, gmm_class=FastGMM):
        rng = np.random.RandomState(0)
        centers = 3.0 * rng.standard_normal((3, 4))
        X = centers[rng.randint(3, size=20000)] + rng.standard_normal((20000, 4))
        gmm = gmm_class(n_components=3, random_state=0, n_jobs=n_jobs).fit(X)
        return gmm.lower_bound_

    def child():
        blas_at_start = blas_threads()
        return dict(
            lower_bound=fit(CHILD_N_JOBS),
            n_threads={{str(n): resolve_n_threads(n) for n in (None, -1, 2, 1000)}},
            blas_at_start=blas_at_start,
            blas_after=blas_threads(),
        )

    class PausingGMM(FastGMM):
        def _e_step(self, X, *args, **kwargs):
            if not entered.is_set():
                entered.set()
                release.wait(TIMEOUT)
            return super()._e_step(X, *args, **kwargs)

    if __name__ == "__main__":
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a multi-threaded process
        original_blas = blas_threads()
        entered, release = threading.Event(), threading.Event()
        parent = {{"lower_bound": fit(PARENT_N_JOBS)}}
        # A fit of another thread is inside fastelbo (BLAS limited to 1) when the child is forked.
        busy = threading.Thread(target=fit, args=(1, PausingGMM))
        busy.start()
        entered.wait(TIMEOUT)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            try:
                result = pool.apply_async(child).get(timeout=TIMEOUT)
            except multiprocessing.TimeoutError:
                pool.terminate()
                print("the forked child did not answer in time", flush=True)
                release.set()
                sys.exit(3)
        release.set()
        busy.join()
        parent.update(original_blas=original_blas, blas_after=blas_threads())
        print(json.dumps(dict(parent=parent, child=result)))
    """
)


def run_fork_script(parent_n_jobs, child_n_jobs):
    script = FORK_SCRIPT.format(
        parent_n_jobs=parent_n_jobs, child_n_jobs=child_n_jobs, timeout=FORK_TIMEOUT_S
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=2 * FORK_TIMEOUT_S
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork on this platform")
def test_a_child_forked_after_a_parallel_fit_fits_single_threaded_with_the_same_result():
    # The parent's fit starts libgomp's threads; libgomp would then hang in the child's first
    # parallel region, so the child must not open one, whatever n_jobs says.
    result = run_fork_script(parent_n_jobs=None, child_n_jobs=-1)
    parent, child = result["parent"], result["child"]
    assert child["lower_bound"] == parent["lower_bound"]
    assert child["n_threads"] == {"None": 1, "-1": 1, "2": 1, "1000": 1}
    # The other thread's BLAS limit does not follow the child, nor stay in the parent.
    assert child["blas_at_start"] == child["blas_after"] == parent["original_blas"]
    assert parent["blas_after"] == parent["original_blas"]


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork on this platform")
def test_a_child_forked_before_any_parallel_fit_keeps_its_threads():
    # n_jobs=1 starts no OpenMP threads in the parent, so the child may use all its CPUs.
    result = run_fork_script(parent_n_jobs=1, child_n_jobs=None)
    parent, child = result["parent"], result["child"]
    assert child["lower_bound"] == parent["lower_bound"]
    cpus = available_cpus()
    assert child["n_threads"] == {"None": 0, "-1": cpus, "2": min(2, cpus), "1000": cpus}
