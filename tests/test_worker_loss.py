"""A Dask worker lost mid-fit (its process killed): Dask recomputes what the worker held (row chunks,
each chunk's per-row state, partial statistics) from the graph, and the fit ends as an undisturbed
one, bit for bit, within seconds; never a hang. FastGMM's exact fit has the same test in
``test_gmm_row_sources.py``; here the truncated FastGMM (whose candidate sets live on the workers
chunk by chunk), FastMFA, and the factor models' inference after a fit."""

import time

import numpy as np
import pytest

from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA
from lost_workers import kill_a_worker, wait_for_restarted_workers

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")

#: A recomputation after a lost worker takes seconds here; a hang would take forever.
SECONDS = 120


def _data():
    state = da.random.RandomState(0)
    n_samples = 6000
    centres = np.array([[0.0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 8], [8, 0, 4, 0]])
    labels = state.randint(0, 4, size=n_samples, chunks=1500)
    noise = state.standard_normal((n_samples, 4), chunks=(1500, 4))
    return (noise + da.from_array(centres)[labels]).persist()


def _losing_a_worker(cls, client, after):
    """``cls`` that kills one worker process after its ``after``-th M-step (from the client, so
    that the next E-step meets the lost worker)."""

    def _m_step(self, stats):
        cls._m_step(self, stats)
        self._m_steps = getattr(self, "_m_steps", 0) + 1
        if self._m_steps == after:
            kill_a_worker(client)

    return type(f"WorkerLosing{cls.__name__}", (cls,), {"_m_step": _m_step})


MIXTURES = {
    "FastGMM-truncated": (
        FastGMM,
        dict(n_components=8, n_active=3, covariance_type="diag", random_state=0, tol=0.0, max_iter=8),
    ),
    "FastMFA": (FastMFA, dict(n_components=4, n_factors=1, random_state=0, tol=0.0, max_iter=8)),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", MIXTURES)
def test_a_worker_lost_mid_fit_is_recomputed_and_the_fit_is_unchanged(dask_client, name):
    cls, params = MIXTURES[name]
    with dask_client.as_current():
        X = _data()
        undisturbed = cls(**params).fit(X)
        disturbed = _losing_a_worker(cls, dask_client, after=3)(**params)
        start = time.perf_counter()
        disturbed.fit(X)
        elapsed = time.perf_counter() - start
        in_memory = X.compute()
    wait_for_restarted_workers(dask_client)
    assert elapsed < SECONDS
    assert disturbed._m_steps == params["max_iter"]
    np.testing.assert_array_equal(disturbed.means_, undisturbed.means_)
    np.testing.assert_array_equal(disturbed.weights_, undisturbed.weights_)
    assert disturbed.lower_bound_ == undisturbed.lower_bound_
    np.testing.assert_array_equal(disturbed.predict(in_memory), undisturbed.predict(in_memory))


@pytest.mark.parametrize("cls", [FastPPCA, FastFactorAnalysis])
def test_inference_after_a_lost_worker_is_recomputed(dask_client, cls):
    """The factor models read X in their scatter passes only; a worker lost before ``transform``
    and ``score_samples`` of a dask array costs a recomputation of its chunks, not the answer."""
    with dask_client.as_current():
        X = _data()
        model = cls(n_components=2).fit(X)
        expected = model.transform(X).compute(), model.score_samples(X).compute()
        kill_a_worker(dask_client)
        start = time.perf_counter()
        latents, scores = model.transform(X).compute(), model.score_samples(X).compute()
        elapsed = time.perf_counter() - start
    wait_for_restarted_workers(dask_client)
    assert elapsed < SECONDS
    np.testing.assert_array_equal(latents, expected[0])
    np.testing.assert_array_equal(scores, expected[1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_passes_at_a_fixed_point_of_em_ask_for_no_released_results(dask_client, caplog):
    """Once EM stops moving the parameters, pass after pass builds the same graph: with keys derived
    from its contents, the scheduler was asked for the results the previous pass had just
    released, and logged "Couldn't gather keys ... 'forgotten'" errors (and rescheduled) in a fit
    that nothing disturbed. Every pass has keys of its own."""
    rng = np.random.RandomState(0)
    centres = rng.randn(4, 8) * 30.0
    X = centres[rng.randint(4, size=40_000)] + rng.randn(40_000, 8)
    params = dict(n_components=4, covariance_type="full", random_state=0, tol=0.0, max_iter=40)
    expected = FastGMM(**params).fit(X)
    with dask_client.as_current(), caplog.at_level("ERROR", logger="distributed"):
        fitted = FastGMM(**params).fit(da.from_array(X, chunks=(5_000, 8)).persist())
    assert np.array_equal(fitted.means_, expected.means_)
    assert fitted.elbo_history_[-1] == fitted.elbo_history_[-2]  # a fixed point was reached
    assert not [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
