"""The exact pass's moments sx where sx is larger than the caches: each round of rows is added
either column by column (rows that keep most of their K responsibilities, their non-zeros sorted by
column) or component by component (rows that keep a few, no sort). Both orders, and passes that
mix them, equal an independent NumPy evaluation and are bitwise the same for any thread count; a
pass whose rounds all take one order is bitwise the same as one whose rounds all take the other.

The parameters are the kernel's natural parameters, chosen so that a row's posterior is what the
test needs: a row holding a component's own columns is one-hot (the other log-joints are 800
lower, whose exponentials underflow to exact zeros), and a row holding only shared columns has the
uniform posterior (every component's log-joint the same).

Two shapes: K = 512, whose rounds added column by column read each row's K responsibilities per
non-zero, and K = 100, whose rounds added column by column go tile by tile over the components."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import gammaln, logsumexp

from test_exponential_family_floored_columns import natural_exact_pass

# (K, D): sx (D x K doubles) larger than the pass's cached 4 MiB, so that rounds are added in one
# of the two orders.
SHAPES = [(512, 2048), (100, 5300)]
OWN_VALUE, SHARED_VALUE = 400.0, -3.0
# Rows of K values the pass's first round holds (its 8 MiB of responsibilities).
ROUND_BYTES = 8 * 2**20


@pytest.fixture(params=SHAPES, ids=lambda shape: f"K{shape[0]}")
def shape(request):
    return request.param


def natural_parameters(seed, shape):
    """eta (K, D): component c's own columns 2c and 2c + 1 at OWN_VALUE, every other entry (and the
    shared columns 2K .. D-1 of every component) at SHARED_VALUE; equal weights and log-partitions
    up to a small random spread that no row's posterior notices."""
    n_components, n_features = shape
    rng = np.random.default_rng(seed)
    eta = np.full((n_components, n_features), SHARED_VALUE)
    c = np.arange(n_components)
    eta[c, 2 * c] = eta[c, 2 * c + 1] = OWN_VALUE
    log_weights = np.full(n_components, -np.log(n_components))
    log_partition = np.full(n_components, -1.5)
    return log_weights, eta, log_partition, rng


def rows(kinds, family, rng, shape):
    """CSR rows, one per entry of kinds: 'sharp' holds a random component's own columns and a few
    shared ones (a one-hot posterior), 'spread' only shared columns (the uniform posterior)."""
    n_components, n_features = shape
    shared = np.arange(2 * n_components, n_features)
    row_columns = []
    for kind in kinds:
        columns = rng.choice(shared, size=rng.integers(3, 9), replace=False)
        if kind == "sharp":
            c = rng.integers(n_components)
            columns = np.r_[columns, 2 * c, 2 * c + 1]
        row_columns.append(np.sort(columns))
    indptr = np.r_[0, np.cumsum([len(r) for r in row_columns])].astype(np.int64)
    indices = np.concatenate(row_columns).astype(np.int32)
    values = np.ones(len(indices)) if family == "bernoulli" else rng.integers(1, 4, size=len(indices)) * 1.0
    return sp.csr_array((values, indices, indptr), shape=(len(kinds), n_features))


def exact_pass(X, family, parameters, w, n_threads=0, skip_zero_responsibilities=True):
    log_weights, eta, log_partition, _ = parameters
    return natural_exact_pass(
        X,
        family,
        log_weights,
        eta,
        log_partition,
        w,
        n_threads=n_threads,
        skip_zero_responsibilities=skip_zero_responsibilities,
    )


def reference(X, family, parameters, w):
    """The pass's outputs from the definitions, in NumPy and SciPy (X's products sparse)."""
    log_weights, eta, log_partition, _ = parameters
    log_joint = log_weights + log_partition + X @ eta.T
    row_of = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    log_base = -np.bincount(row_of, weights=gammaln(X.data + 1.0), minlength=X.shape[0])
    if family == "bernoulli":
        log_base[:] = 0.0
    log_norm = logsumexp(log_joint, axis=1)
    q = np.exp(log_joint - log_norm[:, None])
    wq = w[:, None] * q
    return {"log_norm": log_norm + log_base, "responsibilities": q, "nk": wq.sum(axis=0), "sx": (X.T @ wq).T}


def assert_matches_reference(out, X, family, parameters, w):
    expected = reference(X, family, parameters, w)
    for name in ("log_norm", "responsibilities", "nk", "sx"):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


def case(kinds, family, seed, shape):
    parameters = natural_parameters(seed, shape)
    X = rows(kinds, family, parameters[3], shape)
    w = parameters[3].uniform(0.2, 2.0, size=X.shape[0])
    return X, parameters, w


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_sharp_rows_are_added_component_by_component(family, shape):
    X, parameters, w = case(["sharp"] * 3000, family, seed=1, shape=shape)
    out = exact_pass(X, family, parameters, w)
    assert np.all(np.count_nonzero(out["responsibilities"], axis=1) == 1)
    assert out["rounds_by_component"] >= 1 and out["rounds_by_column"] == 0
    assert_matches_reference(out, X, family, parameters, w)
    # Every term kept, every row is stored as K values and every round added column by column:
    # the same sums in the same order, bitwise.
    every_term = exact_pass(X, family, parameters, w, skip_zero_responsibilities=False)
    assert every_term["rounds_by_column"] >= 1 and every_term["rounds_by_component"] == 0
    np.testing.assert_array_equal(every_term["sx"], out["sx"])


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_spread_rows_are_added_column_by_column(family, shape):
    X, parameters, w = case(["spread"] * 3000, family, seed=2, shape=shape)
    out = exact_pass(X, family, parameters, w)
    assert np.all(np.count_nonzero(out["responsibilities"], axis=1) == shape[0])
    assert out["rounds_by_column"] >= 1 and out["rounds_by_component"] == 0
    # The first round is sorted while its posteriors are computed, as are those after a round
    # added column by column.
    assert out["rounds_sorted_late"] == 0
    assert_matches_reference(out, X, family, parameters, w)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_a_pass_mixing_both_orders_matches_the_reference_bitwise_for_any_thread_count(family, shape):
    # The first round (rows of K values at first: 8 MiB of them, 2,048 rows at K = 512) is all
    # sharp and added component by component; the next round, larger as its predecessor's rows
    # took 12 bytes each, is mostly spread, added column by column and sorted only after its
    # posteriors.
    first_round = ROUND_BYTES // (8 * shape[0])
    kinds = ["sharp"] * first_round + ["spread"] * (first_round * 5 // 4) + ["sharp"] * (first_round // 7)
    X, parameters, w = case(kinds, family, seed=3, shape=shape)
    runs = {t: exact_pass(X, family, parameters, w, n_threads=t) for t in (1, 2, 3)}
    first = runs[1]
    assert first["rounds_by_component"] >= 1 and first["rounds_by_column"] >= 1
    assert first["rounds_sorted_late"] >= 1
    for run in runs.values():
        for name in ("sx", "nk", "log_norm", "responsibilities"):
            np.testing.assert_array_equal(run[name], first[name], err_msg=name)
    assert_matches_reference(first, X, family, parameters, w)


# A count that float32 does not hold: 2^24 + 1 rounds to 2^24.
BEYOND_FLOAT32 = 2.0**24 + 1


@pytest.mark.parametrize("where", ["every value", "the last row"])
def test_counts_beyond_float32_are_added_exactly(where, shape):
    # A round whose values are all exact in float32 keeps them in 8-byte records, any other in
    # 16-byte ones; a count of 2^24 + 1 must reach sx unrounded either way. With "the last row"
    # the pass's first round takes 8-byte records and its last 16-byte ones.
    two_rounds = ["spread"] * (ROUND_BYTES // (8 * shape[0]) + 500)
    X, parameters, w = case(two_rounds, "poisson", seed=4, shape=shape)
    last = X.indptr[-2]
    if where == "every value":
        X.data[:] = BEYOND_FLOAT32
    else:
        X.data[last:] = BEYOND_FLOAT32
    assert np.float64(np.float32(X.data[last])) != X.data[last]
    out = exact_pass(X, "poisson", parameters, w)
    assert out["rounds_by_column"] >= 2 and out["rounds_by_component"] == 0
    # The posteriors are uniform up to the round-off of log-joints near -4e8, where the NumPy
    # reference's product and the kernel's sums differ by ulps (1e-8 of a responsibility).
    expected = reference(X, "poisson", parameters, w)
    np.testing.assert_allclose(out["responsibilities"], expected["responsibilities"], rtol=1e-7)
    # sx from the pass's own responsibilities: a count rounded to float32 would move the last
    # row's terms by a relative 6e-8, far beyond rtol 1e-10.
    wq = w[:, None] * out["responsibilities"]
    np.testing.assert_allclose(out["sx"], (X.T @ wq).T, rtol=1e-10, atol=1e-12)
