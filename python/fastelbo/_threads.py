"""Threads: ``n_jobs`` resolved into the thread count handed to the C++ kernels, NumPy's BLAS kept
single-threaded while fastelbo works, and fork safety.

Process-wide state is changed only in scope and restored exactly (a rule of the project's design):

* the BLAS limit is set by the first fastelbo call that starts in any thread and restored by the
  last one that ends, so calls overlapping in several threads cannot leave BLAS limited;
* libgomp (GCC's OpenMP runtime) is not fork-safe: a child forked after the parent has started
  OpenMP threads waits forever in its first parallel region, for threads that were not copied. Such
  a child runs the kernels single-threaded (``n_threads == 1`` starts no OpenMP threads).
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
import threading


def available_cpus() -> int:
    """CPUs this process may run on (respects the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


# True once this process, or the process it was forked from, may have started the kernels' OpenMP
# threads (a kernel was handed a thread count other than 1).
_openmp_started = False
# True in a process forked after its parent may have started them: OpenMP must not be used here.
_forked_after_openmp = False


def resolve_n_threads(n_jobs) -> int:
    """Translate ``n_jobs`` into a kernel thread count.

    ``None`` returns 0, which the kernels read as "the OpenMP default": all cores unless
    ``OMP_NUM_THREADS`` or ``threadpoolctl.threadpool_limits`` says otherwise (the behaviour of
    scikit-learn's OpenMP estimators). A positive value is capped at :func:`available_cpus` (more
    threads than CPUs only wait for each other); ``-1`` means all CPUs and ``-k`` all but
    ``k - 1``, as in joblib. In a process forked after fastelbo had started its OpenMP threads the
    answer is always 1: libgomp cannot be used after such a fork.
    """
    global _openmp_started
    if n_jobs is not None and (not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool)):
        raise TypeError(f"n_jobs must be None or an int, got {n_jobs!r}")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int or a negative int")
    if _forked_after_openmp:
        return 1
    if n_jobs is None:
        n_threads = 0
    elif n_jobs < 0:
        n_threads = max(available_cpus() + 1 + int(n_jobs), 1)
    else:
        n_threads = min(int(n_jobs), available_cpus())
    if n_threads != 1:
        _openmp_started = True  # set before the kernel starts the threads, so a fork never misses it
    return n_threads


class _SingleThreadedBlasScope:
    """Reference-counted, process-wide "BLAS limited to one thread" scope.

    The first entrant (in any thread) records the BLAS limits it finds and sets them to 1; later
    and nested entrants only count themselves in; the last one out restores the recorded limits.
    A save-and-restore per call would not do: with two overlapping calls the second records the
    first's limit of 1, and whichever ends last leaves BLAS at 1 for the rest of the process.

    threadpoolctl >= 3.8 lets one thread at a time change the limit of a pthreads OpenBLAS (whose
    pool is process-wide): the first that sets a limit, until it gives control back; changes from
    other threads are ignored. The scope sets the limit in one thread and may restore it in
    another, so it gives back the control its own changes take; while another thread holds control
    (a ``threadpool_limits`` block running there) it leaves the limits alone, but it always undoes
    a change it made.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depths = {}  # thread id -> how many scopes that thread is inside
        self._limiter = None  # threadpoolctl limiter holding the limits found by the first entrant
        self._controller = None

    def enter(self):
        ident = threading.get_ident()
        with self._lock:
            if not self._depths and not _blas_controlled_by_another_thread():
                if self._controller is None:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                with _blas_control():
                    self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._depths[ident] = self._depths.get(ident, 0) + 1

    def exit(self):
        ident = threading.get_ident()
        with self._lock:
            depth = self._depths.pop(ident) - 1
            if depth:
                self._depths[ident] = depth
            elif not self._depths:
                self._restore()

    def _restore(self):
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            # Undoing the scope's own change: taken from another thread's control if need be.
            with _blas_control(take=True):
                limiter.restore_original_limits()

    def after_fork_in_child(self):
        # Only the forking thread exists in the child: the others' scopes will never be left, and
        # one of them may have held the lock at the fork.
        self._lock = threading.Lock()
        ident = threading.get_ident()
        self._depths = {i: d for i, d in self._depths.items() if i == ident}
        if not self._depths:
            self._restore()


def _openblas_control():
    """threadpoolctl's record of the thread allowed to change OpenBLAS's limit (>= 3.8), or None."""
    try:
        from threadpoolctl import OpenBLASController

        return OpenBLASController, OpenBLASController._SHARED_STATE
    except (ImportError, AttributeError):
        return None


def _blas_controlled_by_another_thread():
    control = _openblas_control()
    thread = control and control[1].controlling_thread
    return bool(thread) and thread is not threading.current_thread() and thread.is_alive()


@contextlib.contextmanager
def _blas_control(take=False):
    """Give back, after the block, the OpenBLAS control that the block's limit change took
    (``take``: take it first from whichever thread holds it)."""
    control = _openblas_control()
    had_control = control is not None and control[1].controlling_thread is threading.current_thread()
    if control is not None and take and not had_control:
        control[0].clear_controlling_thread(force=True)
    try:
        yield
    finally:
        if control is not None and not had_control:
            control[0].clear_controlling_thread()  # clears only if this thread holds control


_BLAS_SCOPE = _SingleThreadedBlasScope()


def single_threaded_blas(method):
    """Run ``method`` with NumPy's BLAS limited to one thread.

    The parallel work is done by the kernels' OpenMP threads; the BLAS calls around them (the
    M-step's small factorisations) are tiny. A multi-threaded BLAS pool left spinning next to the
    OpenMP pool makes both wait for cores (measured: a 64-feature, 10-component M-step went from
    1 ms to 40 ms on 2 cores), so fastelbo keeps BLAS single-threaded while it works. The limit
    is shared by all fastelbo calls running at once, in any thread (see
    :class:`_SingleThreadedBlasScope`).
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        _BLAS_SCOPE.enter()
        try:
            return method(*args, **kwargs)
        finally:
            _BLAS_SCOPE.exit()

    return wrapper


def _after_fork_in_child():
    global _forked_after_openmp
    _forked_after_openmp = _openmp_started
    _BLAS_SCOPE.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
