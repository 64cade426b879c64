"""Heywood cases on awkward data: a factor model whose unique variances end at their floor says so.

A duplicated column lets a factor explain it completely, so its unique variance runs to the floor;
the standardised breast cancer data with five factors do the same (a known Heywood case). There
the fit is a boundary optimum, not a stationary point, and the entropy decomposition's gap
measures the pull of the boundary: every such fit issues exactly one ``HeywoodCaseWarning`` that
names a feature at the floor, and its ``entropy_decomposition().note`` says so. A model away from
the boundary (the tidy control data) issues none and leaves the note empty.

Which features are at the floor is read from the returned unique variances, relative to each
feature's variance in the data (a floor is relative to the data's scale): those within a factor
``AT_FLOOR`` of the smallest ratio. The warning must name at least one of them.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from awkward_data import family
from fastelbo import FastFactorAnalysis, FastMFA, HeywoodCaseWarning

AT_FLOOR = 10.0


def _factor_analysis(n_factors):
    return lambda: FastFactorAnalysis(n_factors)


def _mfa():
    return FastMFA(2, n_factors=2, noise="diag", reg_covar=1e-6, random_state=0)


HEYWOOD = [
    pytest.param(_factor_analysis(2), "duplicated_column", id="FastFactorAnalysis-duplicated_column"),
    pytest.param(_mfa, "duplicated_column", id="FastMFA-diag-duplicated_column"),
    pytest.param(_factor_analysis(5), "breast_cancer_standardised", id="FastFactorAnalysis-5-breast_cancer"),
]
INTERIOR = [
    pytest.param(_factor_analysis(2), "control", id="FastFactorAnalysis-control"),
    pytest.param(_mfa, "control", id="FastMFA-diag-control"),
]


def _fit_recording_warnings(make, family_name):
    X = family(family_name).X
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make().fit(X)
    heywood = [w for w in caught if issubclass(w.category, HeywoodCaseWarning)]
    return model, X, heywood


def features_at_floor(model, X):
    """Indices of the features whose unique variance, relative to the feature's variance, is
    within ``AT_FLOOR`` of the smallest such ratio (over components for a mixture)."""
    noise = np.atleast_2d(np.asarray(model.noise_variance_, dtype=np.float64))
    ratio = np.min(noise / np.var(X, axis=0), axis=0)
    return np.flatnonzero(ratio <= AT_FLOOR * np.min(ratio))


def names_feature(message, j):
    """Whether ``message`` names feature ``j`` (as ``x{j}``, ``feature {j}``, ``column {j}`` or
    ``{j}`` on its own, but neither the count in "1 feature(s)" nor a digit of a number)."""
    return re.search(rf"(?<![\w.+-])(?:x|feature |column )?{j}(?![\w.])(?! feature)", message) is not None


@pytest.mark.parametrize(("make", "family_name"), HEYWOOD)
def test_a_heywood_case_gives_one_warning_naming_a_feature_at_the_floor_and_a_note(make, family_name):
    model, X, heywood = _fit_recording_warnings(make, family_name)
    assert len(heywood) == 1, f"{len(heywood)} HeywoodCaseWarning(s); smallest noise {model.noise_variance_}"
    message = str(heywood[0].message)
    at_floor = features_at_floor(model, X)
    assert any(names_feature(message, j) for j in at_floor), f"names none of {at_floor}: {message}"
    assert model.entropy_decomposition().note, "entropy_decomposition().note is empty at a boundary"


@pytest.mark.parametrize(("make", "family_name"), INTERIOR)
def test_a_fit_away_from_the_boundary_gives_no_heywood_warning_and_no_note(make, family_name):
    model, X, heywood = _fit_recording_warnings(make, family_name)
    assert not heywood, str(heywood[0].message)
    assert model.entropy_decomposition().note == ""


def test_names_feature_reads_labels_not_counts_or_values():
    from fastelbo.exceptions import warn_heywood_case

    with pytest.warns(HeywoodCaseWarning) as caught:
        warn_heywood_case("FastFactorAnalysis", ["x0", "x5"], [1e-12, 2.5e-7])
    message = str(caught[0].message)
    assert names_feature(message, 0) and names_feature(message, 5)
    assert not any(names_feature(message, j) for j in (1, 2, 7, 12))
