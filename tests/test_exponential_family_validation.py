"""Bad input to FastBernoulliMixture and FastPoissonMixture raises a ValueError (or TypeError) that
names the offending value and its position, or the hyperparameter; sparse data is checked without
being densified."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastelbo import FastBernoulliMixture, FastPoissonMixture, RowSource


def binary(n=20, d=5):
    return (np.random.default_rng(0).uniform(size=(n, d)) < 0.5).astype(np.float64)


@pytest.mark.parametrize("to_sparse", [np.asarray, sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.coo_matrix])
@pytest.mark.parametrize(
    ("estimator", "value", "shown"),
    [
        (FastBernoulliMixture, 2.0, "2.0"),
        (FastBernoulliMixture, 0.5, "0.5"),
        (FastBernoulliMixture, -1.0, "-1.0"),
        (FastBernoulliMixture, np.nan, "nan"),
        (FastPoissonMixture, 2.5, "2.5"),
        (FastPoissonMixture, -3.0, "-3.0"),
        (FastPoissonMixture, np.inf, "inf"),
        (FastPoissonMixture, np.nan, "nan"),
    ],
)
def test_a_value_the_family_cannot_model_is_named_with_its_position(to_sparse, estimator, value, shown):
    X = binary()
    X[7, 3] = value
    X[9, 1] = value  # a later one: the first is reported
    with pytest.raises(ValueError, match=rf"X holds {shown} at row 7, column 3") as caught:
        estimator(n_components=2).fit(to_sparse(X))
    # scikit-learn's words for negative data for finite negative values only (-inf is not "data").
    negative = bool(np.isfinite(value) and value < 0)
    assert caught.value.args[0].startswith("Negative values in data passed to X.") == negative
    # The position is also given as attributes, for a caller that names a file's lines instead.
    assert (caught.value.row, caught.value.column) == (7, 3)
    assert caught.value.value == value or np.isnan(value)


def test_minus_infinity_is_not_called_negative_data():
    X = binary()
    X[2, 1] = -np.inf
    with pytest.raises(ValueError, match=r"^FastPoissonMixture needs every value .* holds -inf at row 2"):
        FastPoissonMixture(n_components=2).fit(X)


def test_counts_as_floats_and_integers_are_accepted():
    X = np.random.default_rng(1).poisson(2.0, size=(30, 4))
    a = FastPoissonMixture(n_components=2, random_state=0).fit(X.astype(np.float64))
    b = FastPoissonMixture(n_components=2, random_state=0).fit(X.astype(np.uint16))
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize("dtype", [np.int64, np.int8])
def test_bernoulli_integer_values_other_than_0_and_1_are_refused(dtype):
    X = binary().astype(dtype)
    X[2, 4] = 3
    with pytest.raises(ValueError, match="X holds 3 at row 2, column 4"):
        FastBernoulliMixture().fit(X)


def test_bad_values_in_new_data_are_named_too():
    model = FastBernoulliMixture(n_components=2, random_state=0).fit(binary())
    X = binary(6)
    X[5, 0] = 7.0
    for method in (model.predict, model.predict_proba, model.score_samples, model.score, model.bic):
        with pytest.raises(ValueError, match="X holds 7.0 at row 5, column 0"):
            method(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="X holds 7.0 at row 5, column 0"):
        model.entropy_decomposition(X)
    with pytest.raises(ValueError, match="4 features"):
        model.predict(np.zeros((3, 4)))


@pytest.mark.parametrize(
    "X",
    [np.zeros((0, 3)), np.zeros((5, 0)), np.zeros(5), sp.csr_matrix((0, 3)), [[1.0]]],
    ids=["no rows", "no columns", "1-D", "sparse no rows", "one row"],
)
def test_empty_or_misshapen_data_is_refused(X):
    with pytest.raises(ValueError):
        FastPoissonMixture().fit(X)


def test_sparse_data_is_checked_without_densifying(monkeypatch):
    X = sp.random(200000, 1000, density=1e-4, format="csr", random_state=0)
    X.data[:] = 1.0
    X.data[-1] = 0.25

    def refuse(*args, **kwargs):
        raise AssertionError("densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse)
    monkeypatch.setattr(sp.csr_matrix, "todense", refuse)
    row = int(np.searchsorted(X.indptr, X.nnz - 1, side="right") - 1)
    with pytest.raises(ValueError, match=f"X holds 0.25 at row {row}, column {X.indices[-1]}"):
        FastBernoulliMixture().fit(X)


@pytest.mark.parametrize(
    ("parameters", "name"),
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": 1.5}, "n_components"),
        ({"mean_floor": 0.0}, "mean_floor"),
        ({"mean_floor": 0.5}, "mean_floor"),
        ({"mean_floor": np.nan}, "mean_floor"),
        ({"mean_floor": "small"}, "mean_floor"),
        ({"init_params": "kmeans"}, "init_params"),
        ({"tol": -1.0}, "tol"),
        ({"max_iter": -1}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"random_state": "seed"}, "random_state"),
        ({"warm_start": "yes"}, "warm_start"),
        ({"verbose_interval": 0}, "verbose_interval"),
        ({"weights_init": [0.5, 0.6]}, "weights_init"),
        ({"weights_init": [1.0]}, "weights_init"),
        ({"means_init": np.full((2, 5), 1.5)}, "means_init"),
        ({"means_init": np.full((2, 4), 0.5)}, "means_init"),
        ({"means_init": np.full((2, 5), np.nan)}, "means_init"),
    ],
)
def test_bad_hyperparameters_are_named(parameters, name):
    with pytest.raises(ValueError, match=name):
        FastBernoulliMixture(n_components=parameters.pop("n_components", 2), **parameters).fit(binary())


@pytest.mark.parametrize("estimator", [FastBernoulliMixture, FastPoissonMixture])
def test_float32_initial_weights_are_accepted_as_scikit_learn_accepts_them(estimator):
    # 0.4 + 0.6 in float32 sums to 1 + 3e-8 in float64: refused, the message saying "got sum 1".
    weights = np.array([0.4, 0.6], dtype=np.float32)
    fitted = estimator(n_components=2, weights_init=weights, max_iter=0).fit(binary())
    np.testing.assert_array_equal(fitted.weights_, weights.astype(np.float64))
    with pytest.raises(ValueError, match=r"got sum 1\.000001000"):  # float64 keeps 1e-8
        estimator(n_components=2, weights_init=[0.4, 0.600001]).fit(binary())


def test_a_poisson_floor_must_be_a_normal_float64_and_then_holds():
    # The kernels flush subnormal numbers to zero: a subnormal floor would leave means of 0.
    X = np.random.default_rng(3).poisson(0.05, size=(400, 30))
    X[:, 0] = 0  # a column that is zero throughout: its means sit at the floor
    for floor in (1e-310, 5e-324):
        with pytest.raises(ValueError, match=r"mean_floor must be .*smallest normal float64"):
            FastPoissonMixture(n_components=3, mean_floor=floor).fit(X)
    tiny = np.finfo(np.float64).tiny
    model = FastPoissonMixture(n_components=3, mean_floor=tiny, random_state=0).fit(X)
    assert model.means_.min() >= tiny
    assert np.all(model.means_[:, 0] == tiny)
    assert np.isfinite(model.score(X))


def test_poisson_floor_may_exceed_one_half_but_not_be_negative():
    X = np.random.default_rng(1).poisson(2.0, size=(30, 4))
    FastPoissonMixture(n_components=2, mean_floor=0.7, random_state=0).fit(X)
    with pytest.raises(ValueError, match="mean_floor"):
        FastPoissonMixture(mean_floor=-1.0).fit(X)
    with pytest.raises(
        ValueError, match="means_init must hold rates >= 0; got -0.5 at component 1, column 2"
    ):
        means = np.ones((2, 4))
        means[1, 2] = -0.5
        FastPoissonMixture(n_components=2, means_init=means).fit(X)


def test_fewer_weighted_rows_than_components_is_refused():
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        FastBernoulliMixture(n_components=3).fit(binary(), sample_weight=np.r_[1.0, 1.0, np.zeros(18)])
    with pytest.raises(ValueError, match="sample_weight"):
        FastBernoulliMixture(n_components=2).fit(binary(), sample_weight=-np.ones(20))


@pytest.mark.parametrize("to_sparse", [np.asarray, sp.csr_matrix])
def test_poisson_counts_beyond_2_to_the_53_are_refused(to_sparse):
    """float64 cannot tell consecutive integers apart beyond 2**53: such a value is no count."""
    X = np.ones((6, 3))
    X[4, 2] = 2.0**53
    FastPoissonMixture(n_components=2, random_state=0).fit(to_sparse(X))  # 2**53 itself is a count
    for value in (2.0**53 + 2, 1e300):
        X[4, 2] = value
        with pytest.raises(ValueError, match=r"up to 2\*\*53.*at row 4, column 2"):
            FastPoissonMixture(n_components=2, random_state=0).fit(to_sparse(X))


@pytest.mark.parametrize("to_sparse", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize(("dtype", "value"), [(np.int64, 2**53 + 1), (np.uint64, 2**64 - 1)])
def test_poisson_integer_counts_beyond_2_to_the_53_are_refused(to_sparse, dtype, value):
    """Integer dtypes are read without a float64 copy, so the bound is checked on the integers
    (2**53 + 1 would otherwise be read as 2**53, and 2**64 - 1 scored as if it were likely)."""
    X = np.ones((6, 3), dtype=dtype)
    X[4, 2] = 2**53
    FastPoissonMixture(n_components=2, random_state=0).fit(to_sparse(X))
    X[4, 2] = value
    with pytest.raises(ValueError, match=rf"up to 2\*\*53; X holds {value} at row 4, column 2"):
        FastPoissonMixture(n_components=2, random_state=0).fit(to_sparse(X))
    fitted = FastPoissonMixture(n_components=2, random_state=0).fit(np.ones((6, 3), dtype=dtype))
    with pytest.raises(ValueError, match=r"up to 2\*\*53.*at row 4, column 2"):
        fitted.score_samples(to_sparse(X))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint32])
def test_duplicate_sparse_entries_are_summed_without_wrapping_around(dtype):
    """A small integer dtype cannot hold the sum of duplicates (uint8: 200 + 100 = 44 in uint8);
    the matrix stands for their sum, as if summed in int64."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(60.0, size=(40, 3))
    largest = int(np.iinfo(dtype).max)
    counts[0, 1] = largest + largest // 2  # more than the dtype holds; each half fits
    rows, columns = np.nonzero(counts)
    values = counts[rows, columns]
    halves = values - values // 2  # each entry as two duplicates that fit the dtype
    entry_rows = np.r_[rows, rows]
    order = np.argsort(entry_rows, kind="stable")  # CSR built directly: scipy's COO would sum them
    indptr = np.r_[0, np.cumsum(np.bincount(entry_rows, minlength=counts.shape[0]))]
    data = np.r_[halves, values // 2].astype(dtype)[order]
    duplicated = sp.csr_matrix((data, np.r_[columns, columns][order], indptr), shape=counts.shape)
    assert duplicated.nnz == 2 * len(values)
    reference = FastPoissonMixture(n_components=2, random_state=0).fit(counts)
    # COO's conversion to CSR sums duplicates too (in the dtype, before any check could see them).
    for matrix in (duplicated, duplicated.tocoo(), sp.coo_array(duplicated)):
        fitted = FastPoissonMixture(n_components=2, random_state=0).fit(matrix)
        np.testing.assert_array_equal(fitted.means_, reference.means_)
        assert fitted.score(matrix) == reference.score(counts)
        # Also read in blocks: a RowSource of the matrix was converted to CSR in the dtype.
        streamed = FastPoissonMixture(n_components=2, random_state=0).fit(RowSource(matrix, block_rows=7))
        np.testing.assert_allclose(streamed.means_, reference.means_, rtol=1e-12)
        np.testing.assert_allclose(
            fitted.score_samples(RowSource(matrix, block_rows=7)), reference.score_samples(counts), rtol=1e-12
        )


def test_bernoulli_floor_below_2_to_the_minus_53_is_refused():
    """1 - mean_floor must differ from 1 in float64, or an all-ones column has log(1 - mu) = -inf."""
    X = np.ones((10, 2))
    X[::2, 1] = 0
    with pytest.raises(ValueError, match=r"mean_floor must be .*2\*\*-53 <= mean_floor"):
        FastBernoulliMixture(mean_floor=5e-17).fit(X)
    fitted = FastBernoulliMixture(mean_floor=2.0**-53).fit(X)
    assert 1.0 - 1e-15 < fitted.means_[0, 0] <= 1.0 - 2.0**-53
    assert np.isfinite(fitted.lower_bound_) and np.isfinite(fitted.score(X))
    assert fitted.lower_bound_ == pytest.approx(np.log(0.5), rel=1e-12)  # column 1: a fair coin


@pytest.mark.parametrize("estimator", [FastBernoulliMixture, FastPoissonMixture])
def test_weights_whose_total_float64_cannot_hold_fit_as_the_weights_they_are_multiples_of(estimator):
    # Subnormal weights (a total of 4e-310 divided by was a ZeroDivisionError) and totals beyond
    # float64's range: only the ratios matter.
    X = np.eye(4)[:, :2]
    expected = estimator(n_components=2, random_state=0).fit(X)
    for weight in (1e-310, 1e306):
        fitted = estimator(n_components=2, random_state=0).fit(X, sample_weight=np.full(4, weight))
        np.testing.assert_allclose(fitted.means_, expected.means_, rtol=1e-12)
        assert fitted.lower_bound_ == pytest.approx(expected.lower_bound_, rel=1e-12)


def test_the_value_error_survives_pickling_with_its_position():
    """Errors raised on a Dask worker reach the client pickled: the position must come along."""
    import pickle

    X = binary()
    X[4, 2] = 2.0
    with pytest.raises(ValueError) as caught:
        FastBernoulliMixture(n_components=2).fit(X)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is type(caught.value) and str(copy) == str(caught.value)
    assert (copy.value, copy.row, copy.column, copy.needs) == (2.0, 4, 2, "0 or 1")
