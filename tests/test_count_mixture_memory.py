"""A Bernoulli or Poisson mixture on a dense X in memory holds one CSR form of it, 12 bytes per
non-zero (float64 values, int32 columns), and a few chunks of temporaries besides: the conversion
fills arrays allocated at their size, and the initialisation's row norms are summed chunk by chunk.
(SciPy's conversion through COO peaked at about 2.5 times the CSR form, and the row norms took 16
bytes per non-zero at once: a fit on 200,000 x 200 binary uint8 rows peaked 290 MiB above X, now
150 MiB; predict 280 MiB, now 150.)"""

import pytest

import peak_rss
from fastelbo._row_chunks import CHUNK_BYTES

_SCRIPT = """
from fastelbo import FastBernoulliMixture
method, dtype = sys.argv[1], np.dtype(sys.argv[2])
rng = np.random.default_rng(0)
X = np.empty((100_000, 100), dtype=dtype)
for start in range(0, len(X), 10_000):  # no temporary of X's size before the measurement
    X[start : start + 10_000] = rng.random((10_000, 100)) < 0.3
model = FastBernoulliMixture(4, random_state=0, max_iter=2, tol=0)
if method == "predict":
    model.fit(X[:1000])
work = (lambda: model.fit(X)) if method == "fit" else (lambda: model.predict(X))
report(lambda: {"csr": 12 * int(np.count_nonzero(X)) + 4 * (len(X) + 1), "result": type(work()).__name__})
"""


@pytest.mark.parametrize("method", ["fit", "predict"])
@pytest.mark.parametrize("dtype", ["uint8", "float64"])
def test_a_dense_x_costs_its_csr_form_and_a_few_chunks(method, dtype):
    measured = peak_rss.measure(_SCRIPT, method, dtype)
    assert measured["csr"] > 8 * CHUNK_BYTES  # the chunks' temporaries are small beside it
    assert measured["peak"] - measured["baseline"] < measured["csr"] + 6 * CHUNK_BYTES, measured
