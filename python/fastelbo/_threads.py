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

import functools
import numbers
import os
import threading
import weakref


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


class _Call:
    """One call inside the scope, and its thread (weakly referenced: see
    :class:`_SingleThreadedBlasScope`)."""

    __slots__ = ("thread", "__weakref__")

    def __init__(self):
        self.thread = threading.get_ident()


class _SingleThreadedBlasScope:
    """Process-wide "BLAS limited to one thread" scope, shared by every call inside it.

    A call that finds no other call inside (in any thread) records the BLAS libraries' limits and
    sets them to 1; the last one out restores the recorded limits. A save-and-restore per call
    would not do: with two overlapping calls the second records the first's limit of 1, and
    whichever ends last leaves BLAS at 1 for the rest of the process.

    A signal handler's exception (Ctrl-C's KeyboardInterrupt) can land between any two bytecodes,
    so the bookkeeping heals rather than trusts that every entry is matched by an exit: the calls
    inside are a weak set of the calls' own objects (a call whose exit never ran leaves it when
    its frame is gone), the recorded limits are cleared only once restored, and every entry or
    exit that finds no live call inside restores them first (a restore cut short is completed).

    threadpoolctl >= 3.8 lets one thread at a time change the limit of a pthreads OpenBLAS (whose
    pool is process-wide): the first that sets a limit, until it gives control back; changes from
    other threads are ignored. The scope sets and restores limits without taking that control
    (its own changes are undone by the scope itself, in whichever thread ends last). While another
    thread holds control (a ``threadpool_limits`` block running there) it leaves the limits alone.

    Limits set by someone else while calls run are theirs, and the last call leaves them: a library
    no longer at the scope's 1, or every library once OpenBLAS's control has changed hands between
    live threads since the limits were recorded (a ``threadpool_limits`` block that was open when
    the limits were recorded has ended and restored its own start; or a running thread set a
    limit for good). A call that comes in while no limit is in force (the calls inside found
    another thread's block open, which has since ended) limits BLAS then.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = weakref.WeakSet()  # the calls inside the scope, in any thread
        self._recorded = None  # [(BLAS library controller, its limit)] found by the first call in
        self._owner = None  # the thread that held OpenBLAS's control when they were recorded
        self._controller = None

    def enter(self, call):
        with self._lock:
            if not self._calls:
                self._restore()  # left by a call whose exit was cut short
            # Also a call that comes in after another thread's block has ended, where the calls
            # inside found it open and left the limits alone.
            if self._recorded is None and not _blas_controlled_by_another_thread():
                self._limit()
            self._calls.add(call)

    def exit(self, call):
        with self._lock:
            self._calls.discard(call)
            if not self._calls:
                self._restore()

    def _limit(self):
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        libraries = self._controller.select(user_api="blas").lib_controllers
        # Recorded before anything changes, so that a change cut short is still undone; with the
        # thread holding OpenBLAS's control then (one inside a threadpool_limits block, or None).
        self._owner = _blas_owner()
        self._recorded = [(library, library.num_threads) for library in libraries]
        for library in libraries:
            _set_limit(library, 1)

    def _restore(self):
        if self._recorded is None:
            return
        # Undoing the scope's own change, where no one else changed the limits since (class
        # docstring).
        owner_unchanged = _blas_owner() is self._owner
        for library, limit in self._recorded:
            if owner_unchanged and library.num_threads == 1:
                _set_limit(library, limit)
        self._recorded = None

    def after_fork_in_child(self):
        # Only the forking thread exists in the child: the others' calls will never end, and one
        # of them may have held the lock at the fork. The forking thread's calls (a fork from
        # inside a fastelbo call) are still inside.
        self._lock = threading.Lock()
        forking = threading.get_ident()
        self._calls = weakref.WeakSet(call for call in self._calls if call.thread == forking)
        if not self._calls:
            self._restore()


def _openblas_control():
    """threadpoolctl's record of the thread allowed to change OpenBLAS's limit (>= 3.8), or None."""
    try:
        from threadpoolctl import OpenBLASController

        return OpenBLASController, OpenBLASController._SHARED_STATE
    except (ImportError, AttributeError):
        return None


def _blas_owner():
    """The live thread holding OpenBLAS's control (threadpoolctl >= 3.8), or None. (A thread that
    has ended holds nothing: threadpoolctl hands its control to the next thread that sets a limit.)"""
    control = _openblas_control()
    thread = control[1].controlling_thread if control is not None else None
    return thread if thread is not None and thread.is_alive() else None


def _set_limit(library, limit):
    """Set a BLAS library's thread limit without taking threadpoolctl's OpenBLAS control (whose
    holder alone may change the limit; the scope changes it only to undo its own change)."""
    direct = getattr(library, "_real_set_num_threads", None)
    (direct if direct is not None else library.set_num_threads)(limit)


def _blas_controlled_by_another_thread():
    control = _openblas_control()
    thread = control and control[1].controlling_thread
    return bool(thread) and thread is not threading.current_thread() and thread.is_alive()


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
        call = _Call()
        try:
            _BLAS_SCOPE.enter(call)
            return method(*args, **kwargs)
        finally:
            try:
                _BLAS_SCOPE.exit(call)
            except BaseException:
                _BLAS_SCOPE.exit(call)  # a signal's exception cut it short: complete it (idempotent)
                raise

    return wrapper


def _after_fork_in_child():
    global _forked_after_openmp
    _forked_after_openmp = _openmp_started
    _BLAS_SCOPE.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
