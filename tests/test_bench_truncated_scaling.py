"""bench/truncated_scaling.py drives FastGMM's truncated search through private hooks; this runs
its timing function on a tiny case, so that a change of those hooks fails here, not in the report."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import truncated_scaling  # noqa: E402
from fastelbo import FastGMM  # noqa: E402


@pytest.mark.parametrize("truncated", [True, False])
def test_iteration_seconds_times_a_truncated_and_an_exact_iteration(truncated):
    X = truncated_scaling.clustered_data(2000, 4, 12)
    gmm = FastGMM(12, covariance_type="diag", n_active=3, n_neighbors=4, random_state=0, max_iter=3)
    gmm.fit(X)
    means = gmm.means_.copy()
    seconds = truncated_scaling.iteration_seconds(gmm, X, truncated, repeats=1)
    assert np.isfinite(seconds) and seconds > 0
    np.testing.assert_array_equal(gmm.means_, means)  # timed on a copy
