"""Resolution of the ``n_jobs`` parameter into the thread count handed to the C++ kernels."""

from __future__ import annotations

import functools
import numbers
import os


def available_cpus() -> int:
    """CPUs this process may run on (respects the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def resolve_n_threads(n_jobs) -> int:
    """Translate ``n_jobs`` into a kernel thread count.

    ``None`` returns 0, which the kernels read as "the OpenMP default": all cores unless
    ``OMP_NUM_THREADS`` or ``threadpoolctl.threadpool_limits`` says otherwise (the behaviour of
    scikit-learn's OpenMP estimators). A positive value is used as is; ``-1`` means all CPUs and
    ``-k`` all but ``k - 1``, as in joblib.
    """
    if n_jobs is None:
        return 0
    if not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool):
        raise TypeError(f"n_jobs must be None or an int, got {n_jobs!r}")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive int or a negative int")
    if n_jobs < 0:
        return max(available_cpus() + 1 + int(n_jobs), 1)
    return int(n_jobs)


_BLAS_CONTROLLER = None


def _blas_controller():
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER


def single_threaded_blas(method):
    """Run ``method`` with NumPy's BLAS limited to one thread.

    The parallel work is done by the kernels' OpenMP threads; the BLAS calls around them (the
    M-step's small factorisations) are tiny. A multi-threaded BLAS pool left spinning next to the
    OpenMP pool makes both wait for cores (measured: a 64-feature, 10-component M-step went from
    1 ms to 40 ms on 2 cores), so fastelbo keeps BLAS single-threaded while it works.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas_controller().limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper
