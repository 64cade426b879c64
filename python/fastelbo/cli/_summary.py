"""What ``fastelbo fit`` reports about a fit: the summary written by ``--json`` and the lines it prints.

The JSON summary holds the data's shape, the estimator and its hyperparameters, the fit's time,
iterations and convergence, the entropy decomposition's terms on the training data
(:meth:`fastelbo.EntropyDecomposition.to_dict`), the per-iteration histories ``elbo_history`` and
``entropy_sum_history``, and the warnings the fit raised. Non-finite numbers are written as null
(standard JSON has no NaN or infinity).
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _plain(value):
    """``value`` as plain JSON: NumPy scalars and arrays as Python numbers and lists, non-finite
    floats as None, anything else unknown as its repr."""
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return repr(value)


def _training_decomposition(model):
    """``(decomposition, None)``, or ``(None, why)`` for a fit that has none (FastPPCA with as many
    components as features: no noise, entropies of -inf)."""
    try:
        return model.entropy_decomposition(), None
    except ValueError as error:
        return None, str(error)


def fit_summary(model, data, model_name, fit_seconds, warnings_raised) -> dict:
    """The JSON-ready summary of a fitted ``model`` on ``data`` (a :class:`~._data.LoadedData`);
    ``decomposition`` is None, and ``no_decomposition`` says why, for a fit without one."""
    import fastelbo

    decomposition, why = _training_decomposition(model)
    return _plain(
        {
            "fastelbo_version": fastelbo.__version__,
            "data": {
                "source": data.source,
                "kind": data.kind,
                "key": data.key,
                "header": list(data.header) if data.header is not None else None,
                "n_samples": data.X.shape[0],
                "n_features": data.X.shape[1],
                "n_source_rows": data.n_source_rows,
                "dtype": str(data.X.dtype),
            },
            "model": model_name,
            "estimator": type(model).__name__,
            "params": {
                name: value
                for name, value in model.get_params().items()
                if value is None or isinstance(value, (str, numbers.Number))
            },
            "fit_time_s": fit_seconds,
            "n_iter": model.n_iter_,
            "converged": model.converged_,
            "lower_bound": model.lower_bound_,
            "decomposition": decomposition.to_dict() if decomposition is not None else None,
            **({"no_decomposition": why} if why is not None else {}),
            "elbo_history": model.elbo_history_,
            "entropy_sum_history": model.entropy_sum_history_,
            "warnings": list(warnings_raised),
        }
    )


def report_lines(model, data, fit_seconds) -> list:
    """The lines ``fastelbo fit`` prints: data, model, time and convergence, then the
    decomposition table."""
    X = data.X
    origin = "built-in data set" if data.kind == "builtin" else f".{data.kind} file"
    details = []
    if data.key is not None:
        details.append(f"array {data.key!r}")
    if data.header is not None:
        details.append("header line skipped")
    if X.shape[0] != data.n_source_rows:
        details.append(f"random subset of {data.n_source_rows} rows")
    suffix = f" ({', '.join(details)})" if details else ""
    iterations = f"{model.n_iter_} iteration{'s' if model.n_iter_ != 1 else ''}"
    decomposition, why = _training_decomposition(model)
    if model.converged_:
        convergence = "converged"
    else:
        convergence = f"did not converge (max_iter={model.max_iter}, tol={model.tol:g})"
    return [
        f"data: {data.source} ({origin}){suffix}: {X.shape[0]} samples x {X.shape[1]} features, {X.dtype}",
        f"model: {' '.join(repr(model).split())}",
        f"fit: {fit_seconds:.3f} s, {iterations}, {convergence}",
        "",
        repr(decomposition) if decomposition is not None else f"no entropy decomposition: {why}",
    ]
