"""Per-row results of a dask array (``predict``, ``predict_proba``, ``score_samples``,
``transform``) are lazy dask arrays whose tasks carry a snapshot of the fitted parameters, not the
estimator: refitting the estimator before they are computed does not change them, and no task of
their graph holds an estimator.

The reference is the estimator's own in-memory result on each chunk, taken before the refit.
"""

import io
import warnings

import cloudpickle
import numpy as np
import pytest
from sklearn.base import BaseEstimator

from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA

da = pytest.importorskip("dask.array")

CHUNK_ROWS = 130  # the last chunk is shorter


def _clusters(seed, offset=0.0, width=0.5):
    rng = np.random.RandomState(seed)
    centres = rng.randn(3, 5) * 6.0 + offset
    return np.vstack([c + rng.randn(200, 5) @ rng.randn(5, 5) * width for c in centres])


MIXTURE_METHODS = ("predict", "predict_proba", "score_samples")
ESTIMATORS = {
    "FastGMM-full": (lambda: FastGMM(3, random_state=0), MIXTURE_METHODS),
    # Narrow clusters far apart: the diag kernel needs homes, found per chunk.
    "FastGMM-diag-far": (
        lambda: FastGMM(3, covariance_type="diag", random_state=0),
        MIXTURE_METHODS,
    ),
    "FastMFA": (lambda: FastMFA(3, n_factors=2, random_state=0), MIXTURE_METHODS),
    "FastPPCA": (lambda: FastPPCA(2), ("transform", "score_samples")),
    "FastFactorAnalysis": (lambda: FastFactorAnalysis(2), ("transform", "score_samples")),
}


def _estimators_in(graph):
    """The estimators a graph would carry to the workers (found while pickling it as Dask does)."""
    found = []

    class Spy(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, BaseEstimator):
                found.append(obj)
            return None

    Spy(io.BytesIO()).dump(dict(graph))
    return found


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_per_row_results_are_a_snapshot_of_the_fitted_parameters(name):
    make, methods = ESTIMATORS[name]
    offset, width = (1e4, 1e-3) if name.endswith("far") else (0.0, 0.5)
    X = _clusters(0, offset, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence or Heywood warnings are not at stake here
        model = make().fit(X)
        if name.endswith("far"):
            assert model._needs_homes(X.dtype)  # the case exercises the labelling pass
        chunks = [X[start : start + CHUNK_ROWS] for start in range(0, len(X), CHUNK_ROWS)]
        expected = {method: np.concatenate([getattr(model, method)(c) for c in chunks]) for method in methods}
        dask_X = da.from_array(X, chunks=(CHUNK_ROWS, 5))
        lazy = {method: getattr(model, method)(dask_X) for method in methods}
        for method, result in lazy.items():
            assert isinstance(result, da.Array), method
            assert _estimators_in(result.__dask_graph__()) == [], method
        model.fit(_clusters(1, offset, width) * 3.0)  # other parameters before the results are computed
    for method, result in lazy.items():
        np.testing.assert_array_equal(result.compute(), expected[method], err_msg=method)


def test_a_cuda_model_refuses_a_dask_array_for_per_row_results():
    # Without a CUDA build or GPU the device is refused; with one, a dask array is (its chunks are
    # read on the CPU workers), as in fit.
    model = FastGMM(2, random_state=0).fit(_clusters(0))
    model.device = "cuda"
    with pytest.raises(ValueError, match="device='cuda'"):
        model.predict(da.from_array(_clusters(0), chunks=(100, 5)))
