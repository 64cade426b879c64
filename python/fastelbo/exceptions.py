"""Warnings that fastelbo's estimators raise about the fits they return."""

from __future__ import annotations

import warnings

import numpy as np


class HeywoodCaseWarning(UserWarning):
    """A factor model's fit ended with unique (noise) variances at their floor: a Heywood case.

    The likelihood then increases towards the boundary ``noise_variance -> 0`` of the parameter
    space, so the fit is a boundary optimum rather than a stationary point, and the entropy
    decomposition's gap ``F - S`` does not vanish: it measures the pull of the boundary. Typical
    causes are duplicated or collinear columns, or more factors than the data support.

    Besides its message, the warning (``warnings.catch_warnings(record=True)``'s ``w.message``)
    says which variances: ``model`` (the estimator's name), ``variances`` (their values),
    ``features`` (their features' column indices in X, from 0; None where a variance is shared by
    every feature) and ``components`` (FastMFA: their components; else None), so that a caller with
    its own names for the columns (the command line's) can name them.
    """

    model = None
    variances = None
    features = None
    components = None


class Float32RangeWarning(UserWarning):
    """float32 cannot hold what a fit of float32 data needs, and the fit goes on in float64 (its
    parameters are then float64): :class:`fastelbo.FastMFA` decides before fitting, from the data's
    range and the noise floors; :class:`fastelbo.FastGMM` at the first M-step whose covariances,
    rounded to float32, change its objective by more than ``tol`` or are not positive definite."""


class DegenerateComponentWarning(UserWarning):
    """A fitted component of :class:`fastelbo.FastMFA` sits on fewer points than it has factors
    plus two (also importable from ``fastelbo.factor``)."""


def heywood_case_message(model: str, feature_labels, variances, remedy: str = "") -> str:
    """The message of a :class:`HeywoodCaseWarning` naming ``feature_labels`` (at most 10 listed),
    whose unique variances ``variances`` sit at the floor, ending with ``remedy`` if given."""
    labels = [str(label) for label in feature_labels]
    values = np.asarray(variances, dtype=np.float64).ravel()
    pairs = zip(labels[:10], values[:10], strict=False)
    listed = ", ".join(f"{label} ({value:.3g})" for label, value in pairs)
    more = f" and {len(labels) - 10} more" if len(labels) > 10 else ""
    return (
        f"{model}: Heywood case: the unique variance of {len(labels)} feature(s) reached its floor: "
        f"{listed}{more}. The fit is a boundary optimum, not a stationary point; the entropy "
        "decomposition's gap then measures the pull of the boundary rather than unfinished "
        "convergence." + (f" {remedy}" if remedy else "")
    )


def warn_heywood_case(
    model: str, feature_labels, variances, *, features=None, components=None, remedy=""
) -> None:
    """Issue one :class:`HeywoodCaseWarning` naming the features (``feature_labels``) whose unique
    variances (``variances``, the same length) sit at the floor; ``features`` and ``components``
    (column indices from 0 and FastMFA's components, the same length, or None) are kept on the
    warning (see :class:`HeywoodCaseWarning`); ``remedy`` ends the message."""
    warning = HeywoodCaseWarning(heywood_case_message(model, feature_labels, variances, remedy))
    warning.model = model
    warning.variances = np.asarray(variances, dtype=np.float64).ravel().copy()
    warning.features = None if features is None else [int(d) for d in features]
    warning.components = None if components is None else [int(c) for c in components]
    warnings.warn(warning, stacklevel=3)
