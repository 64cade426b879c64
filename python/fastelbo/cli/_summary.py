"""What ``fastelbo fit`` reports about a fit: the lines it prints and the summary ``--json`` writes.

Both hold the same results (:class:`FitResults`):

- mixtures (gmm, mfa): the weights, means and sizes of the components (how many of the rows fitted
  have each as their most probable component), BIC and AIC, and the component label of every row
  of DATA (``--labels``);
- factor models (ppca, fa): the mean, the noise variance and the loadings (in ``--json``);
- the entropy decomposition of the ELBO ``F`` on the rows fitted, and for FastGMM the share of its
  gap ``F - S`` that ``reg_covar`` accounts for (:func:`regularisation_gap`, which ``fastelbo demo``
  prints too);
- the per-iteration histories ``elbo_history`` and ``entropy_sum_history``.

There is one ELBO: ``elbo`` is ``F`` of the fitted parameters, the decomposition's (for exact EM the
mean log-likelihood, ``score``). scikit-learn's ``lower_bound_`` is the last entry of
``elbo_history``, the ELBO of the last iteration's start, before its M-step.

Non-finite numbers are written to JSON as null (standard JSON has no NaN or infinity).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

#: Components the printed table lists (the heaviest ones); --json lists all.
SHOWN_COMPONENTS = 10
#: Rows per block of the responsibilities :func:`regularisation_gap` sums (bounds its memory).
_BLOCK_ELEMENTS = 1 << 22


def regularisation_gap(model, X) -> float:
    """``reg_covar/2 * sum_c qbar_c tr(Sigma_c^-1)``: about what covariance regularisation adds to a
    FastGMM's gap ``F - S`` (``docs/theory.rst``, Regularisation), with ``qbar`` the mean
    responsibility of every component on X (summed over blocks of rows)."""
    n_components = model.weights_.shape[0]
    block = max(1, _BLOCK_ELEMENTS // n_components)
    qbar = np.zeros(n_components)
    for start in range(0, X.shape[0], block):
        qbar += model.predict_proba(X[start : start + block]).sum(axis=0, dtype=np.float64)
    qbar /= X.shape[0]
    precisions = model.precisions_.astype(np.float64)
    if model.covariance_type == "full":
        traces = np.trace(precisions, axis1=1, axis2=2)
    elif model.covariance_type == "tied":
        traces = np.full(n_components, np.trace(precisions))
    elif model.covariance_type == "diag":
        traces = precisions.sum(axis=1)
    else:
        traces = precisions * model.means_.shape[1]
    return 0.5 * model.reg_covar * float(qbar @ traces)


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


@dataclass(frozen=True)
class FitResults:
    """Everything reported about one fit, computed once for the printed report and ``--json``."""

    #: The training decomposition, or None for a fit that has none (see ``no_decomposition``).
    decomposition: object
    #: Mixtures: ``{"weights", "means", "sizes", "bic", "aic"}``; None for factor models.
    mixture: dict | None
    #: Factor models: ``{"n_factors", "mean", "noise_variance", "components"}``; None for mixtures.
    factors: dict | None
    #: The component of every row of DATA (mixtures, when asked for), else None.
    labels: np.ndarray | None
    #: FastGMM: the share of the gap ``reg_covar`` accounts for; None for the other models.
    reg_covar_gap: float | None
    #: Why there is no decomposition (FastPPCA with as many components as features: no noise,
    #: entropies of -inf); None when there is one.
    no_decomposition: str | None = None


def fit_results(model, data, *, labels=False) -> FitResults:
    """The results of a fitted ``model`` on ``data`` (a :class:`~._data.LoadedData`); ``labels``
    labels every row of DATA (a pass over all its rows when ``--n-samples`` fitted a subset)."""
    X = data.X
    try:
        decomposition, why = model.entropy_decomposition(), None
    except ValueError as error:
        decomposition, why = None, str(error)
    mixture = factors = row_labels = reg_gap = None
    if hasattr(model, "weights_"):
        fitted_labels, bic, aic = model._labels_and_criteria(X)  # one pass over X, not three
        sizes = np.bincount(fitted_labels, minlength=model.weights_.shape[0])
        mixture = {
            "weights": model.weights_,
            "means": model.means_,
            "sizes": sizes,
            "bic": float(bic),
            "aic": float(aic),
        }
        if labels:
            row_labels = fitted_labels if data.X_all is None else model.predict(data.X_all)
    if hasattr(model, "covariance_type") and hasattr(model, "precisions_"):
        reg_gap = regularisation_gap(model, X)
    if not hasattr(model, "weights_"):
        factors = {
            "n_factors": model.components_.shape[0],
            "mean": model.mean_,
            "noise_variance": model.noise_variance_,
            "components": model.components_,
            # The model's x = loadings^T z + mean + noise: FastPPCA's components_ are PCA's unit
            # axes and its loadings loadings_; FastFactorAnalysis's components_ are the loadings.
            "loadings": getattr(model, "loadings_", model.components_),
        }
        if hasattr(model, "explained_variance_"):
            factors["explained_variance"] = model.explained_variance_
    return FitResults(decomposition, mixture, factors, row_labels, reg_gap, why)


def fit_summary(model, data, model_name, fit_seconds, warnings_raised, results: FitResults) -> dict:
    """The JSON-ready summary of a fitted ``model`` on ``data`` (a :class:`~._data.LoadedData`)."""
    import fastelbo

    decomposition = results.decomposition
    summary = {
        "fastelbo_version": fastelbo.__version__,
        "data": {
            "source": data.source,
            "kind": data.kind,
            "key": data.key,
            "header": list(data.header) if data.header is not None else None,
            "columns": [p + 1 for p in data.columns] if data.columns is not None else None,
            "n_samples": data.X.shape[0],
            "n_features": data.X.shape[1],
            "n_source_rows": data.n_source_rows,
            "n_source_columns": data.n_source_columns,
            "dtype": str(data.X.dtype),
            **({"text": data.text} if data.text else {}),
            "standardize": (
                {"mean": data.standardization[0], "scale": data.standardization[1]}
                if data.standardization is not None
                else None
            ),
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
        "elbo": decomposition.elbo if decomposition is not None else model.lower_bound_,
        "decomposition": decomposition.to_dict() if decomposition is not None else None,
        **({"no_decomposition": results.no_decomposition} if decomposition is None else {}),
    }
    if results.reg_covar_gap is not None and decomposition is not None:
        summary["gap"] = {
            "total": decomposition.gap,
            "reg_covar": results.reg_covar_gap,
            "beyond_reg_covar": decomposition.gap - results.reg_covar_gap,
        }
    if results.mixture is not None:
        summary["mixture"] = results.mixture
        if results.labels is not None:
            summary["labels"] = results.labels
    if results.factors is not None:
        summary["factors"] = results.factors
    summary["elbo_history"] = model.elbo_history_
    summary["entropy_sum_history"] = model.entropy_sum_history_
    summary["warnings"] = list(warnings_raised)
    return _plain(summary)


def vector_text(values, edge=3) -> str:
    """A vector as ``[a, b, c, ..., y, z]``: every entry up to ``2 * edge + 1`` of them, else the
    first and last ``edge``; 4 significant digits."""
    values = np.asarray(values, dtype=np.float64).ravel()
    # Round-off next to the vector's scale (a standardised column's mean, say) is written as 0.
    negligible = 1e-12 * max(1.0, float(np.abs(values).max(initial=0.0)))
    shown = [f"{v:.4g}" if abs(v) > negligible else "0" for v in values]
    if len(shown) > 2 * edge + 1:
        shown = shown[:edge] + ["..."] + shown[-edge:]
    return "[" + ", ".join(shown) + "]"


def data_line(data) -> str:
    """``data: SOURCE (what it is, how it was read): N samples x D features, dtype``."""
    X = data.X
    if data.kind == "builtin":
        details = ["built-in data set"]
    elif data.kind == "text":
        text = data.text
        separated = {"blanks": "blank-separated", "one column": "one column"}.get(
            text["separator"], f"{text['separator']}-separated"
        )
        details = [f"text, {separated}"]
        if text["encoding"] != "UTF-8":
            details.append(text["encoding"])
        if text["decimal_comma"]:
            details.append("decimal commas")
        if text["header"]:
            details.append("header line")
        elif text["header_mode"] == "auto":
            details.append("no header line (if line 1 names the columns: --header yes)")
    else:
        details = [f".{data.kind} file"]
    if data.key is not None:
        details.append(f"array {data.key!r}")
    if data.columns is not None:
        from fastelbo.cli._table import column_ranges

        details.append(f"columns {column_ranges(list(data.columns))} of {data.n_source_columns}")
    if X.shape[0] != data.n_source_rows:
        details.append(f"random subset of {data.n_source_rows} rows")
    if data.standardization is not None:
        details.append("standardised")
    return (
        f"data: {data.source} ({', '.join(details)}): {X.shape[0]} samples x {X.shape[1]} features, {X.dtype}"
    )


def report_lines(model, data, fit_seconds, results: FitResults) -> list:
    """The lines ``fastelbo fit`` prints: data, model, time and convergence, the fitted parameters,
    then the decomposition table and (FastGMM) the ``reg_covar`` share of its gap."""
    iterations = f"{model.n_iter_} iteration{'s' if model.n_iter_ != 1 else ''}"
    if model.converged_:
        convergence = "converged"
    else:
        convergence = f"did not converge (max_iter={model.max_iter}, tol={model.tol:g})"
    lines = [
        data_line(data),
        f"model: {' '.join(repr(model).split())}",
        f"fit: {fit_seconds:.3f} s, {iterations}, {convergence}",
        "",
    ]
    units = " (standardised units)" if data.standardization is not None else ""
    if results.mixture is not None:
        lines += _mixture_lines(results.mixture, data.X.shape[0], units)
    if results.factors is not None:
        lines += _factor_lines(results.factors, units)
    if results.decomposition is None:
        lines += ["", f"ELBO F = {model.lower_bound_:.8f} per data point"]
        lines += [f"no entropy decomposition: {results.no_decomposition}"]
    else:
        lines += ["", repr(results.decomposition)]
    if results.reg_covar_gap is not None and results.decomposition is not None:
        gap, share = results.decomposition.gap, results.reg_covar_gap
        lines += [
            "",
            f"gap F - S = {gap:+.6g}: reg_covar={model.reg_covar:g} accounts for about {share:+.6g} "
            "((reg_covar/2) sum_c qbar_c tr(Sigma_c^-1));",
            f"the rest, {gap - share:+.2e}, is the distance from a stationary point (0 there).",
        ]
    return lines


def _mixture_lines(mixture, n_rows, units):
    weights, means, sizes = mixture["weights"], mixture["means"], mixture["sizes"]
    n_components = len(weights)
    order = np.argsort(-np.asarray(weights, dtype=np.float64), kind="stable")
    if n_components > SHOWN_COMPONENTS:
        title = f"{n_components} components, the {SHOWN_COMPONENTS} largest (all in --json):"
        order = order[:SHOWN_COMPONENTS]
    else:
        title = f"{n_components} component{'s' if n_components != 1 else ''}:"
    width = max(len("component"), len(str(n_components - 1)))
    size_width = max(len("rows"), len(str(n_rows)))
    lines = [title, f"  {'component':>{width}}  {'weight':>8}  {'rows':>{size_width}}  mean{units}"]
    for c in order:
        weight, size = float(weights[c]), int(sizes[c])
        lines.append(f"  {c:>{width}}  {weight:>8.4f}  {size:>{size_width}}  {vector_text(means[c])}")
    lines.append(
        f"BIC {mixture['bic']:.6g}, AIC {mixture['aic']:.6g} (on the {n_rows} rows fitted; lower is better)"
    )
    return lines


def _factor_lines(factors, units):
    noise = np.asarray(factors["noise_variance"], dtype=np.float64)
    noise_text = f"{float(noise):.6g}" if noise.ndim == 0 else f"per feature {vector_text(noise)}"
    n = factors["n_factors"]
    return [
        f"{n} factor{'s' if n != 1 else ''} (loadings in --json and --save); noise variance {noise_text}",
        f"mean{units}: {vector_text(factors['mean'])}",
    ]
