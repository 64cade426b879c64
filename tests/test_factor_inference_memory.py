"""Inference of the factor models on an array in memory works in row chunks: ``score_samples``,
``score`` and ``transform`` add a few chunks of temporaries (4 MiB each), not copies of X (their
float64 deviations, whitened rows and residuals were three copies of X at once: 9 GB for a 3 GB X;
a float32 X was first converted whole to float64, twice its size)."""

import pytest

import peak_rss
from fastelbo._row_chunks import CHUNK_BYTES

_SCRIPT = """
from fastelbo import FastFactorAnalysis, FastPPCA
model_class = {"FastPPCA": FastPPCA, "FastFactorAnalysis": FastFactorAnalysis}[sys.argv[1]]
method = getattr(model_class, sys.argv[2]).__name__
dtype = np.dtype(sys.argv[3])
n = 20000 * 8 // dtype.itemsize  # X of 76 MiB either way
rng = np.random.default_rng(0)
X = rng.standard_normal((n, 5)) @ rng.standard_normal((5, 500)) + rng.standard_normal((n, 500))
X = X.astype(dtype)
model = model_class(n_components=5).fit(X)
report(lambda: {"size": X.nbytes, "result": np.ndim(getattr(model, method)(X))})
"""


@pytest.mark.parametrize("model", ["FastPPCA", "FastFactorAnalysis"])
@pytest.mark.parametrize("method", ["score_samples", "score", "transform"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inference_on_an_array_in_memory_adds_no_copy_of_it(model, method, dtype):
    measured = peak_rss.measure(_SCRIPT, model, method, dtype)
    # A chunk's temporaries are a few chunks' bytes (three at most at once), X is 20 chunks.
    assert measured["size"] > 16 * CHUNK_BYTES
    assert measured["peak"] - measured["baseline"] < 5 * CHUNK_BYTES, measured
