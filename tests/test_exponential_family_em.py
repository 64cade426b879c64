"""FastBernoulliMixture and FastPoissonMixture: the entropy identity after every M-step and at
convergence (checked with the independent reference), the floor's documented effect, sparse and
dense input, sample weights, determinism, and the scikit-learn surface."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state

from fastelbo import FastBernoulliMixture, FastPoissonMixture
from fastelbo.mixture import FastBernoulliMixture as MixtureModuleBernoulli
from fastelbo.mixture import _sparse_initialization
from fastelbo.mixture._exponential_family import FAMILIES, floor_gap
from reference_exponential_family import e_step, entropy_sum, free_energy, poisson_entropy

ESTIMATORS = {"bernoulli": FastBernoulliMixture, "poisson": FastPoissonMixture}


def clustered_data(family, n=300, d=12, k=3, seed=0):
    """Rows from k clusters whose means stay away from the floor (so no floor binds)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    if family == "bernoulli":
        centres = rng.uniform(0.2, 0.8, size=(k, d))
        return (rng.uniform(size=(n, d)) < centres[labels]).astype(np.float64)
    centres = rng.uniform(1.0, 6.0, size=(k, d))
    return rng.poisson(centres[labels]).astype(np.float64)


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)


def run_em_steps(model, X, sample_weight, n_steps, check):
    """EM steps through the estimator's own hooks; ``check(q, stats)`` after every M-step, with q the
    reference posteriors at the parameters before it."""
    model._check_hyperparameters()
    Xv = model._validate_rows(X, reset=True, min_samples=2)
    model._initialize_parameters(Xv, check_random_state(model.random_state), sample_weight)
    for _ in range(n_steps):
        q = e_step(dense(X), model.weights_, model.means_, model._family, sample_weight)["responsibilities"]
        stats = model._e_step(Xv, sample_weight=sample_weight)
        model._m_step(stats)
        check(q, stats)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_entropy_sum_equals_the_elbo_after_every_m_step(family, weighted, sparse):
    X = clustered_data(family, seed=1)
    w = np.random.default_rng(2).uniform(0.1, 3.0, size=X.shape[0]) if weighted else None
    model = ESTIMATORS[family](n_components=3, random_state=0)
    checked = []

    def check(q, stats):
        floor = model.mean_floor
        assert np.all(model.means_ > floor) and (family == "poisson" or np.all(model.means_ < 1 - floor))
        F = free_energy(X, q, model.weights_, model.means_, family, w)  # F(q^t, Theta^{t+1})
        S = model._decompose(stats).entropy_sum
        S_reference = entropy_sum(X, q, model.weights_, model.means_, family, w)
        assert abs(F - S) <= 1e-9 * abs(F)
        assert abs(S - S_reference) <= 1e-9 * abs(F)
        checked.append(F)

    run_em_steps(model, sp.csr_matrix(X) if sparse else X, w, 12, check)
    assert len(checked) == 12 and checked[-1] > checked[0]


def test_the_true_poisson_entropy_does_not_give_the_elbo():
    X = clustered_data("poisson", seed=3)
    model = FastPoissonMixture(n_components=3, random_state=0)
    gaps = []

    def check(q, stats):
        F = free_energy(X, q, model.weights_, model.means_, "poisson")
        pseudo = entropy_sum(X, q, model.weights_, model.means_, "poisson")
        true = entropy_sum(
            X, q, model.weights_, model.means_, "poisson", observable_entropy=lambda m, f: poisson_entropy(m)
        )
        assert abs(F - pseudo) <= 1e-9 * abs(F)
        gaps.append(abs(F - true) / abs(F))

    run_em_steps(model, X, None, 5, check)
    assert min(gaps) > 1e-2  # far off at every step, not round-off


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_the_floor_moves_the_identity_by_its_documented_amount(family):
    X = clustered_data(family, seed=4)
    X[:, 5] = 0.0  # a column of zeros: its means sit at the floor in every component
    if family == "bernoulli":
        X[:, 7] = 1.0  # a column of ones: at 1 - floor
    model = ESTIMATORS[family](n_components=3, random_state=0, mean_floor=1e-6)
    model_family = FAMILIES[family]
    gaps = []

    def check(q, stats):
        F = free_energy(X, q, model.weights_, model.means_, family)
        S = model._decompose(stats).entropy_sum
        predicted = floor_gap(model_family, stats, model.means_)
        floored = np.isclose(model.means_, model.mean_floor, rtol=0, atol=0) | np.isclose(
            model.means_, 1 - model.mean_floor, rtol=0, atol=0
        )
        bound = model_family.floor_bound(model.mean_floor) * (
            stats.mean_responsibilities @ floored.sum(axis=1)
        )
        assert abs(F - S - predicted) <= 1e-9 * abs(F)  # the exact amount
        assert abs(F - S) <= bound * (1 + 1e-9)  # within the documented bound
        gaps.append(abs(F - S))

    run_em_steps(model, X, None, 6, check)
    assert max(gaps) > 1e-4 * model_family.floor_bound(model.mean_floor)  # the floor did bind


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_gap_vanishes_at_convergence(family):
    X = clustered_data(family, n=400, seed=5)
    model = ESTIMATORS[family](n_components=3, tol=1e-10, max_iter=2000, random_state=0).fit(X)
    assert model.converged_
    d = model.entropy_decomposition()
    assert abs(d.gap) <= 1e-6 * abs(d.elbo)
    assert d.elbo == model.score(X) or abs(d.elbo - model.score(X)) <= 1e-12 * abs(d.elbo)
    history = model.elbo_history_
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))  # EM never decreases the ELBO
    # entropy_sum_history_[t] = F(q^t, Theta^{t+1}) lies between consecutive ELBOs.
    S = model.entropy_sum_history_
    assert np.all(history[:-1] <= S[:-1] + 1e-9 * np.abs(S[:-1]))
    assert np.all(S[:-1] <= history[1:] + 1e-9 * np.abs(S[:-1]))
    if family == "poisson":
        expected = np.mean(-np.sum(__import__("scipy.special").special.gammaln(X + 1), axis=1))
        assert d.data_term == pytest.approx(expected, rel=1e-12)
    else:
        assert d.data_term == 0.0


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_digits_fit_converges_and_satisfies_the_identity(family):
    digits = load_digits().data
    X = (digits > 7) if family == "bernoulli" else digits.astype(np.int64)
    model = ESTIMATORS[family](n_components=10, tol=1e-8, max_iter=1000, random_state=0)
    labels = model.fit_predict(sp.csr_matrix(X))
    assert model.converged_
    d = model.entropy_decomposition()
    floored = np.sum((model.means_ <= model.mean_floor) | (model.means_ >= 1 - model.mean_floor), axis=1)
    bound = FAMILIES[family].floor_bound(model.mean_floor) * (model.weights_ @ floored)
    assert abs(d.gap) <= 1e-6 * abs(d.elbo) + bound
    # The fit is a clustering worth its name: labels agree with the digits far beyond chance.
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(load_digits().target, labels) > 0.3
    np.testing.assert_array_equal(labels, model.predict(X))


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("init_params", ["k-means++", "random"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dense_csr_csc_and_csr_array_give_bitwise_the_same_fit(family, init_params, weighted, monkeypatch):
    # Chunks of 128 rows for the column means: several, summed in the same order for every form;
    # a dense chunk converted to CSR in pieces of 50 rows, stacked.
    monkeypatch.setattr(_sparse_initialization, "COLUMN_MEAN_ROWS", 128)
    monkeypatch.setattr(
        _sparse_initialization, "row_chunks", lambda n, _: ((a, min(a + 50, n)) for a in range(0, n, 50))
    )
    X = clustered_data(family, n=500, d=20, seed=6)
    X[:, 3] = 0.0
    # Non-integer weights: their products with the rows round, so the order of the sums shows.
    weights = check_random_state(2).uniform(0.1, 2.0, len(X)) if weighted else None
    params = dict(n_components=4, random_state=1, max_iter=30, init_params=init_params)
    fits = []
    for data in (X, sp.csr_matrix(X), sp.csc_matrix(X), sp.csr_array(X), X.astype(np.int64)):
        model = ESTIMATORS[family](**params).fit(data, sample_weight=weights)
        fits.append(model)
    for model in fits[1:]:
        np.testing.assert_array_equal(model.means_, fits[0].means_)
        np.testing.assert_array_equal(model.weights_, fits[0].weights_)
        np.testing.assert_array_equal(model.elbo_history_, fits[0].elbo_history_)
        np.testing.assert_array_equal(model.entropy_sum_history_, fits[0].entropy_sum_history_)


def test_bool_input_fits_like_float_input():
    X = clustered_data("bernoulli", seed=7)
    a = FastBernoulliMixture(n_components=3, random_state=0).fit(X.astype(bool))
    b = FastBernoulliMixture(n_components=3, random_state=0).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_explicit_zeros_and_duplicates_in_csr_change_nothing():
    X = clustered_data("poisson", n=200, seed=8)
    csr = sp.csr_matrix(X)
    coo = csr.tocoo()
    # Each entry split in two halves plus an explicit zero, in reversed order.
    rows = np.r_[coo.row, coo.row, coo.row][::-1]
    cols = np.r_[coo.col, coo.col, coo.col][::-1]
    vals = np.r_[coo.data - np.floor(coo.data / 2), np.floor(coo.data / 2), np.zeros(coo.nnz)][::-1]
    messy = sp.csr_matrix((vals, (rows, cols)), shape=X.shape)
    messy.has_canonical_format = False
    a = FastPoissonMixture(n_components=3, random_state=0).fit(messy)
    b = FastPoissonMixture(n_components=3, random_state=0).fit(csr)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.elbo_history_, b.elbo_history_)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_integer_weights_fit_like_repeated_rows_and_scaled_weights_change_nothing(family):
    X = clustered_data(family, n=150, seed=9)
    w = np.random.default_rng(0).integers(0, 4, size=X.shape[0])
    w[0] = 1
    options = dict(n_components=3, tol=1e-10, max_iter=500, random_state=0)
    weighted = ESTIMATORS[family](**options).fit(sp.csr_matrix(X), sample_weight=w)
    repeated = ESTIMATORS[family](**options).fit(sp.csr_matrix(np.repeat(X, w, axis=0)))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-6)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-9)
    scaled = ESTIMATORS[family](**options).fit(X, sample_weight=w * 3.7)
    np.testing.assert_allclose(scaled.means_, weighted.means_, rtol=1e-9, atol=1e-12)
    assert scaled.lower_bound_ == pytest.approx(weighted.lower_bound_, rel=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_fit_is_bitwise_identical_for_any_n_jobs_and_deterministic(family):
    X = sp.csr_matrix(clustered_data(family, n=6000, d=30, k=4, seed=10))
    fits = [
        ESTIMATORS[family](n_components=20, random_state=3, max_iter=5, n_jobs=n_jobs).fit(X)
        for n_jobs in (1, 2, 2)
    ]
    for model in fits[1:]:
        np.testing.assert_array_equal(model.means_, fits[0].means_)
        np.testing.assert_array_equal(model.elbo_history_, fits[0].elbo_history_)
        np.testing.assert_array_equal(model.predict_proba(X), fits[0].predict_proba(X))
    other = ESTIMATORS[family](n_components=20, random_state=4, max_iter=5).fit(X)
    assert not np.array_equal(other.means_, fits[0].means_)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data", "random"])
@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_every_initialisation_starts_off_the_floor_and_is_deterministic(family, init_params):
    X = sp.csr_matrix(clustered_data(family, seed=11))
    model = ESTIMATORS[family](n_components=4, init_params=init_params, random_state=5, max_iter=0)
    model.fit(X)  # max_iter=0: the initial parameters
    again = ESTIMATORS[family](n_components=4, init_params=init_params, random_state=5, max_iter=0)
    again.fit(X)
    np.testing.assert_array_equal(model.means_, again.means_)
    assert np.all(model.means_ > model.mean_floor)
    if family == "bernoulli":
        assert np.all(model.means_ < 1 - model.mean_floor)
    if init_params != "random":
        assert len({tuple(row) for row in model.means_}) == 4  # distinct seeds


def test_kmeans_plusplus_seeds_spread_over_the_clusters():
    rng = np.random.default_rng(0)
    blocks = [np.zeros((100, 30)) for _ in range(3)]
    for c, block in enumerate(blocks):
        block[:, c * 10 : (c + 1) * 10] = rng.uniform(size=(100, 10)) < 0.9
    X = sp.csr_matrix(np.vstack(blocks))
    model = FastBernoulliMixture(n_components=3, random_state=0, max_iter=0).fit(X)
    # Each seed lies in another cluster: its block of columns holds the largest means.
    assert sorted(np.argmax(model.means_.reshape(3, 3, 10).sum(axis=2), axis=1)) == [0, 1, 2]


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_scikit_learn_surface(family):
    X = clustered_data(family, seed=12)
    model = ESTIMATORS[family](n_components=3, random_state=0).fit(X)
    reference = e_step(X, model.weights_, model.means_, family)
    np.testing.assert_allclose(model.score_samples(X), reference["log_norm"], rtol=1e-10)
    np.testing.assert_allclose(
        model.predict_proba(sp.csr_matrix(X)), reference["responsibilities"], rtol=1e-10, atol=1e-14
    )
    np.testing.assert_array_equal(model.predict(X), reference["labels"])
    assert model.score(X) == pytest.approx(reference["log_norm"].mean(), rel=1e-12)
    n_parameters = 3 * X.shape[1] + 2
    assert model.bic(X) == pytest.approx(
        -2 * reference["log_norm"].sum() + n_parameters * np.log(len(X)), rel=1e-12
    )
    assert model.aic(X) == pytest.approx(-2 * reference["log_norm"].sum() + 2 * n_parameters, rel=1e-12)
    samples, labels = model.sample(2000)
    assert samples.shape == (2000, X.shape[1]) and labels.shape == (2000,)
    assert not FAMILIES[family].invalid(samples).any()
    for c in range(3):  # each component's samples have its means
        np.testing.assert_allclose(
            samples[labels == c].mean(axis=0), model.means_[c], atol=0.5 if family == "poisson" else 0.15
        )
    d = model.entropy_decomposition(X)
    assert d.elbo == pytest.approx(model.score(X), rel=1e-12)
    assert model.means_.dtype == np.float64 and model.means_.shape == (3, X.shape[1])
    assert model.n_features_in_ == X.shape[1]
    assert MixtureModuleBernoulli is FastBernoulliMixture


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_warm_start_continues_from_the_fitted_parameters(family):
    X = clustered_data(family, seed=13)
    model = ESTIMATORS[family](n_components=3, random_state=0, max_iter=3)
    with pytest.warns(UserWarning):
        model.fit(X)
    first = model.lower_bound_
    model.set_params(warm_start=True, max_iter=2000, tol=1e-8)
    model.fit(X)
    assert model.elbo_history_[0] >= first - 1e-12 * abs(first)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
@pytest.mark.parametrize("n_active", [None, 2])
def test_a_warm_refit_on_bool_integer_or_float32_counts_equals_the_float64_refit(family, n_active):
    # The fitted means were cast to X's dtype for the warm start: int8 0/1 data rounded them to 0
    # (an 'overflowed float64' error), bool data raised NumPy's TypeError.
    X = clustered_data(family, seed=15)
    dtypes = [np.int8, np.uint8, np.int64, np.float32] + ([bool] if family == "bernoulli" else [])
    params = dict(n_components=3, random_state=0, max_iter=4, n_active=n_active, warm_start=True)
    reference = ESTIMATORS[family](**params).fit(X).fit(X)
    for dtype in dtypes:
        for second in (X.astype(dtype), sp.csr_matrix(X.astype(dtype))):
            model = ESTIMATORS[family](**params).fit(X).fit(second)
            assert model.means_.dtype == np.float64, dtype
            np.testing.assert_array_equal(model.means_, reference.means_)
            np.testing.assert_array_equal(model.weights_, reference.weights_)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_initial_parameters_are_used_and_floored(family):
    X = clustered_data(family, seed=14)
    means = np.full((2, X.shape[1]), 0.5)
    means[0, 0] = 0.0
    model = ESTIMATORS[family](n_components=2, weights_init=[0.3, 0.7], means_init=means, max_iter=0).fit(X)
    np.testing.assert_array_equal(model.weights_, [0.3, 0.7])
    assert model.means_[0, 0] == model.mean_floor and model.means_[1, 1] == 0.5


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_model_data_versions_of_the_checks_scikit_learn_runs_on_real_values(family):
    """What check_estimators_pickle, check_fit_idempotent, check_readonly_memmap_input,
    check_methods_sample_order_invariance and check_dont_overwrite_parameters assert, on data of
    the model (tests/test_exponential_family_estimator_checks.py explains why scikit-learn's own
    data cannot be used)."""
    import pickle

    from sklearn.base import clone

    X = clustered_data(family, seed=15)
    model = ESTIMATORS[family](n_components=3, random_state=0)
    params = model.get_params()
    model.fit(X)
    assert model.get_params() == params  # hyperparameters are not overwritten by fit
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    refit = clone(model).fit(X)
    np.testing.assert_array_equal(refit.means_, model.means_)  # fit is idempotent
    readonly = X.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(clone(model).fit(readonly).means_, model.means_)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(model.score_samples(X[order]), model.score_samples(X)[order])
    assert not [name for name in vars(model) if name.startswith("_em_")]  # no run state kept
