"""The timing rules of the benchmark report: best of several calls, but one call when it is long;
seconds per EM iteration as a difference of whole fits, or of one iteration through an estimator's
own hooks where whole fits take too long; the load average quoted with the times."""

from __future__ import annotations

import functools
import pathlib
import time

import numpy as np

LONG_RUN_SECONDS = 20.0
MEASURED_ITERATIONS = 3
MIN_MEASURED_SECONDS = 0.25
MAX_MEASURED_ITERATIONS = 1600
RESOLVED_SHARE = 0.5  # the m iterations must be at least this share of T(1 + m): the jitter of T(1)
# then moves the result by at most its own relative size


def best_time(run, repeats, times=None, long_run_seconds=LONG_RUN_SECONDS):
    """Best of ``repeats`` timed calls of ``run``, but one call when it takes over
    ``long_run_seconds``: the real-data cases would take many minutes more, for noise that is small
    against such a time. Returns (seconds, what the last call returned); each call's seconds are
    appended to ``times`` if given."""
    best, value = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        seconds = time.perf_counter() - start
        if times is not None:
            times.append(seconds)
        best = min(best, seconds)
        if best > long_run_seconds:
            break
    return best, value


def seconds_per_iteration(
    run, repeats, evaluate=None, calls=None, long_run_seconds=LONG_RUN_SECONDS, iterations=None
):
    """(T(1 + m) - T(1)) / m, each T the best of ``repeats`` after a warm-up, where ``run(n_iter)``
    runs ``n_iter`` EM iterations from a fixed start and returns the last log-likelihood: the
    difference cancels initialisation, the final E-step and any fixed overhead. m is chosen so that
    the m iterations take about MIN_MEASURED_SECONDS (at least MEASURED_ITERATIONS) and at least
    RESOLVED_SHARE of T(1 + m), so small cases are not lost in noise. Returns (seconds, m,
    log-likelihood after 1 + MEASURED_ITERATIONS iterations).

    With ``evaluate``, ``run`` returns what the fit ended with and ``evaluate`` of it, called
    outside the timed calls, gives the log-likelihood: a costly evaluation then adds neither to T
    (where it would push a call past ``long_run_seconds``, so it is taken once) nor to its noise.

    ``calls``, a dict if given, receives every timed call's seconds by its iteration count, the
    warm-up under "warm-up": how much the times moved, beside the best. A T over
    ``long_run_seconds`` is taken once (best_time).

    ``iterations`` fixes m (no choice, no growth): another system's m, so that both are timed over
    the same iterations where an iteration's cost changes as the fit goes on."""
    calls = {} if calls is None else calls
    warm_up = time.perf_counter()
    run(1)
    warm_up = time.perf_counter() - warm_up
    calls["warm-up"] = [warm_up]
    n_iter = np.clip(np.ceil(MIN_MEASURED_SECONDS / max(warm_up / 3, 1e-6)), MEASURED_ITERATIONS, 100)
    n_iter = int(n_iter if iterations is None else iterations)
    one, _ = best_time(lambda: run(1), repeats, calls.setdefault("1", []), long_run_seconds)
    while True:
        many, bound = best_time(
            functools.partial(run, 1 + n_iter),
            repeats,
            calls.setdefault(str(1 + n_iter), []),
            long_run_seconds,
        )
        # On a noisy machine a few cheap iterations can vanish in the jitter of T(1) (the warm-up,
        # which includes one-off set-up, overstates an iteration): more of them until they are a
        # resolved share of the run.
        if iterations is not None or many - one >= RESOLVED_SHARE * many or n_iter >= MAX_MEASURED_ITERATIONS:
            break
        n_iter = min(4 * n_iter, MAX_MEASURED_ITERATIONS)
    if n_iter != MEASURED_ITERATIONS:
        bound = run(1 + MEASURED_ITERATIONS)  # the agreement check compares equal iteration counts
    if evaluate is not None:
        bound = evaluate(bound)
    return max(many - one, 0.0) / n_iter, n_iter, bound


def record_seconds_per_iteration(
    row,
    system,
    run,
    repeats,
    log,
    log_prefix,
    evaluate=None,
    long_run_seconds=LONG_RUN_SECONDS,
    iterations=None,
):
    """Times ``run`` by ``seconds_per_iteration`` into ``row`` (its ``seconds_per_iteration``,
    ``measured_iterations``, ``log_likelihood`` and ``timed_calls`` under ``system``; ``evaluate``,
    ``long_run_seconds`` and ``iterations`` as there), or records in ``row["errors"]`` why there is
    no result: a ValueError from the system (scikit-learn's float32 covariances can break down) or a
    non-finite log-likelihood."""
    try:
        calls = row.setdefault("timed_calls", {}).setdefault(system, {})
        seconds, n_iter, bound = seconds_per_iteration(
            run, repeats, evaluate, calls, long_run_seconds, iterations
        )
    except ValueError as error:
        row["errors"][system] = str(error)
        log(f"{log_prefix}{system:<9} failed: {error}")
        return
    if not np.isfinite(bound):
        row["errors"][system] = f"non-finite log-likelihood {bound}"
        log(f"{log_prefix}{system:<9} failed: non-finite log-likelihood")
        return
    row["seconds_per_iteration"][system] = seconds
    row["measured_iterations"][system] = n_iter
    row["log_likelihood"][system] = bound
    log(
        f"{log_prefix}{system:<9} {seconds:9.4f} s/iter  loglik {bound:.10g}  (m={n_iter})  "
        + format_calls(calls)
    )


def format_calls(calls) -> str:
    """Every timed call's seconds, e.g. "T(1) 5.20 5.34 | T(4) 16.35 19.11" (the warm-up left out)."""
    return " | ".join(
        f"T({n_iter}) " + " ".join(f"{seconds:.2f}" for seconds in times)
        for n_iter, times in calls.items()
        if n_iter != "warm-up"
    )


def hook_iteration_seconds(model, X, repeats, warm_up=1):
    """Best time of one EM iteration as ``fit`` runs it (the estimator's E-step, M-step and
    decomposition hooks) from the initialisation ``model`` makes, over ``repeats`` iterations after
    ``warm_up`` untimed ones (2 for a truncated run: its second iteration also starts the search);
    returns (seconds, the first E-step's ELBO, every timed iteration's seconds in order). The run's
    state is discarded afterwards."""
    from sklearn.utils import check_random_state

    model._check_hyperparameters()
    rows = model._validate_rows(X, reset=True, min_samples=2)
    model._initialize_parameters(rows, check_random_state(model.random_state), None)
    times, first = [], None
    for _ in range(repeats + warm_up):
        start = time.perf_counter()
        stats = model._e_step(rows)
        model._m_step(stats)
        model._decompose(stats)
        times.append(time.perf_counter() - start)
        first = stats.elbo if first is None else first
    model._discard_run_state()
    timed = times[warm_up:]
    return min(timed), float(first), timed


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``/proc/loadavg``), or None where there is none."""
    try:
        return [float(v) for v in pathlib.Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def format_load_average(values) -> str:
    """``load_average()``'s values as ``/proc/loadavg`` writes them, or "n/a"."""
    return "n/a" if not values else " ".join(f"{v:.2f}" for v in values)
