"""Truncated fits (``n_active``) of FastBernoulliMixture and FastPoissonMixture to compare across row
sources: the two starts a run can take, a record of the start each fit took, and the comparison of
a fit with the in-memory fit of the same rows.

The starts: "exact-start" (K = 10, C' = 2, G = 3): the exact labelling pass and the exact first
E-step are affordable; "beyond-the-exact-budgets" (K = 24, C' = 2, G = 3, max_iter = 3, with the
exact budgets and the truncated kernel's cost factor patched to 0): the sets start from random hub
components, the neighbour lists from the coarse cells of the means, and the first E-step is
truncated (K > max_iter C' G).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastelbo.mixture import _exponential_family_truncated, _truncated
from fastelbo.mixture._exponential_family_mixture import ExponentialFamilyMixture
from fastelbo.mixture._exponential_family_truncated import ExponentialFamilyTruncatedSearch
from row_sources import max_relative_difference

#: name: (the estimator's truncation parameters, whether the run starts beyond the exact budgets)
STARTS = {
    "exact-start": (dict(n_components=10, n_active=2, n_neighbors=3, max_iter=12), False),
    "beyond-the-exact-budgets": (dict(n_components=24, n_active=2, n_neighbors=3, max_iter=3), True),
}

DECOMPOSITION_FIELDS = (
    "elbo",
    "entropy_sum",
    "gap",
    "variational_entropy",
    "prior_entropy",
    "observable_entropy",
    "data_term",
    "n_samples",
)


def truncated_params(start, n_features, monkeypatch, seed=3):
    """The parameters of a truncated fit from a fixed start (``weights_init``, ``means_init``) with
    ``tol=0``; for "beyond-the-exact-budgets", the exact budgets and the cost factor patched to 0."""
    params, beyond = STARTS[start]
    if beyond:
        monkeypatch.setattr(_truncated, "_EXACT_START_BUDGET", 0)
        monkeypatch.setattr(_exponential_family_truncated, "_TRUNCATED_COST_FACTOR", 0)
        monkeypatch.setattr(_exponential_family_truncated, "_EXACT_NEIGHBOURS_BUDGET", 0)
    rng = np.random.default_rng(seed)
    K = params["n_components"]
    weights = rng.uniform(0.5, 1.5, size=K)
    return dict(
        params,
        tol=0.0,
        random_state=0,
        weights_init=weights / weights.sum(),
        means_init=rng.uniform(0.1, 0.9, size=(K, n_features)),
    )


def record_starts(monkeypatch):
    """A list to which every fit appends how its run started: "exact first E-step" or "truncated
    first E-step", then "labels start" (the sets from an exact labelling pass) or "hub start"."""
    events = []
    affordable = ExponentialFamilyMixture._exact_step_affordable
    coarse_start = ExponentialFamilyTruncatedSearch._coarse_start
    start = ExponentialFamilyTruncatedSearch.start

    def recording_affordable(self, X):
        result = affordable(self, X)
        events.append("exact first E-step" if result else "truncated first E-step")
        return result

    def recording_coarse_start(self, *args):
        events.append("hub start")
        return coarse_start(self, *args)

    def recording_start(self, X, sample_weight, parameters, n_threads, exact_labels=None):
        def labels():
            events.append("labels start")
            return exact_labels()

        return start(self, X, sample_weight, parameters, n_threads, exact_labels=labels)

    monkeypatch.setattr(ExponentialFamilyMixture, "_exact_step_affordable", recording_affordable)
    monkeypatch.setattr(ExponentialFamilyTruncatedSearch, "_coarse_start", recording_coarse_start)
    monkeypatch.setattr(ExponentialFamilyTruncatedSearch, "start", recording_start)
    return events


def expected_starts(start):
    """What :func:`record_starts` records for one fit from ``start``."""
    if STARTS[start][1]:
        return ["truncated first E-step", "hub start"]
    return ["exact first E-step", "labels start"]


def recorded_reference(estimator, X, start, sample_weight, monkeypatch):
    """The in-memory truncated fit from ``start``, checked to take that start: returns its
    parameters, the start recorder (cleared, for the fits to compare), the fit ``(model, labels)``
    and its ``predict(X)``."""
    params = truncated_params(start, X.shape[1], monkeypatch)
    starts = record_starts(monkeypatch)
    reference = truncated_fit(estimator, X, params, sample_weight)
    assert starts == expected_starts(start)
    starts.clear()
    return params, starts, reference, reference[0].predict(X)


def truncated_fit(estimator, X, params, sample_weight=None):
    """``(model, labels)`` of ``fit_predict`` (labels computed if lazy)."""
    model = estimator(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = model.fit_predict(X, sample_weight=sample_weight)
    return model, np.asarray(labels.compute() if hasattr(labels, "compute") else labels)


def assert_same_truncated_fit(fit, reference, rtol=1e-10):
    """Two fits ``(model, labels)`` agree to ``rtol``: parameters, histories, iterations, the
    training decomposition and the final pass's labels."""
    (model, labels), (expected, expected_labels) = fit, reference
    assert max_relative_difference(model.weights_, expected.weights_) < rtol
    assert max_relative_difference(model.means_, expected.means_) < rtol
    assert model.n_iter_ == expected.n_iter_
    for name in ("lower_bounds_", "elbo_history_", "entropy_sum_history_"):
        np.testing.assert_allclose(
            getattr(model, name), getattr(expected, name), rtol=rtol, atol=0, err_msg=name
        )
    assert model.lower_bound_ == pytest.approx(expected.lower_bound_, rel=rtol, abs=0)
    ours, theirs = model.entropy_decomposition(), expected.entropy_decomposition()
    for field in DECOMPOSITION_FIELDS:
        assert getattr(ours, field) == pytest.approx(getattr(theirs, field), rel=rtol, abs=rtol), field
    assert ours.model == theirs.model
    np.testing.assert_array_equal(labels, expected_labels)
