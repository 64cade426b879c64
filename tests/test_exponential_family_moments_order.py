"""The exact pass's moments sx where sx is larger than the caches: each round of rows is added
either column by column (rows that keep most of their K responsibilities, their non-zeros sorted by
column) or component by component (rows that keep a few, no sort). Both orders, and passes that
mix them, equal an independent NumPy evaluation and are bitwise the same for any thread count; a
pass whose rounds all take one order is bitwise the same as one whose rounds all take the other.

The parameters are the kernel's natural parameters, chosen so that a row's posterior is what the
test needs: a row holding a component's own columns is one-hot (the other log-joints are 800
lower, whose exponentials underflow to exact zeros), and a row holding only shared columns has the
uniform posterior (every component's log-joint the same)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import gammaln, logsumexp

from test_exponential_family_floored_columns import natural_exact_pass

# sx (D x K doubles) larger than the pass's cached 4 MiB, so that rounds are added in one of the
# two orders; K large enough that a round of rows stored as K values holds a few thousand rows.
N_COMPONENTS, N_FEATURES = 512, 2048
OWN_VALUE, SHARED_VALUE = 400.0, -3.0


def natural_parameters(seed):
    """eta (K, D): component c's own columns 2c and 2c + 1 at OWN_VALUE, every other entry (and the
    shared columns 2K .. D-1 of every component) at SHARED_VALUE; equal weights and log-partitions
    up to a small random spread that no row's posterior notices."""
    rng = np.random.default_rng(seed)
    eta = np.full((N_COMPONENTS, N_FEATURES), SHARED_VALUE)
    c = np.arange(N_COMPONENTS)
    eta[c, 2 * c] = eta[c, 2 * c + 1] = OWN_VALUE
    log_weights = np.full(N_COMPONENTS, -np.log(N_COMPONENTS))
    log_partition = np.full(N_COMPONENTS, -1.5)
    return log_weights, eta, log_partition, rng


def rows(kinds, family, rng):
    """CSR rows, one per entry of kinds: 'sharp' holds a random component's own columns and a few
    shared ones (a one-hot posterior), 'spread' only shared columns (the uniform posterior)."""
    shared = np.arange(2 * N_COMPONENTS, N_FEATURES)
    row_columns = []
    for kind in kinds:
        columns = rng.choice(shared, size=rng.integers(3, 9), replace=False)
        if kind == "sharp":
            c = rng.integers(N_COMPONENTS)
            columns = np.r_[columns, 2 * c, 2 * c + 1]
        row_columns.append(np.sort(columns))
    indptr = np.r_[0, np.cumsum([len(r) for r in row_columns])].astype(np.int64)
    indices = np.concatenate(row_columns).astype(np.int32)
    values = np.ones(len(indices)) if family == "bernoulli" else rng.integers(1, 4, size=len(indices)) * 1.0
    return sp.csr_array((values, indices, indptr), shape=(len(kinds), N_FEATURES))


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
    """The pass's outputs from the definitions, in NumPy on dense arrays."""
    log_weights, eta, log_partition, _ = parameters
    dense = X.toarray()
    log_joint = log_weights + log_partition + dense @ eta.T
    log_base = -gammaln(dense + 1.0).sum(axis=1) if family == "poisson" else np.zeros(len(dense))
    log_norm = logsumexp(log_joint, axis=1)
    q = np.exp(log_joint - log_norm[:, None])
    wq = w[:, None] * q
    return {"log_norm": log_norm + log_base, "responsibilities": q, "nk": wq.sum(axis=0), "sx": wq.T @ dense}


def assert_matches_reference(out, X, family, parameters, w):
    expected = reference(X, family, parameters, w)
    for name in ("log_norm", "responsibilities", "nk", "sx"):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


def case(kinds, family, seed):
    parameters = natural_parameters(seed)
    X = rows(kinds, family, parameters[3])
    w = parameters[3].uniform(0.2, 2.0, size=X.shape[0])
    return X, parameters, w


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_sharp_rows_are_added_component_by_component(family):
    X, parameters, w = case(["sharp"] * 3000, family, seed=1)
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
def test_spread_rows_are_added_column_by_column(family):
    X, parameters, w = case(["spread"] * 3000, family, seed=2)
    out = exact_pass(X, family, parameters, w)
    assert np.all(np.count_nonzero(out["responsibilities"], axis=1) == N_COMPONENTS)
    assert out["rounds_by_column"] >= 1 and out["rounds_by_component"] == 0
    # The first round is sorted while its posteriors are computed, as are those after a round
    # added column by column.
    assert out["rounds_sorted_late"] == 0
    assert_matches_reference(out, X, family, parameters, w)


@pytest.mark.parametrize("family", ["bernoulli", "poisson"])
def test_a_pass_mixing_both_orders_matches_the_reference_bitwise_for_any_thread_count(family):
    # The first round (rows of K values at first: 8 MiB of them, 2,048 rows here) is all sharp and
    # added component by component; the next round, larger as its predecessor's rows took 12 bytes
    # each, is mostly spread, added column by column and sorted only after its posteriors.
    kinds = ["sharp"] * 2048 + ["spread"] * 2500 + ["sharp"] * 300
    X, parameters, w = case(kinds, family, seed=3)
    runs = {t: exact_pass(X, family, parameters, w, n_threads=t) for t in (1, 2, 3)}
    first = runs[1]
    assert first["rounds_by_component"] >= 1 and first["rounds_by_column"] >= 1
    assert first["rounds_sorted_late"] >= 1
    for run in runs.values():
        for name in ("sx", "nk", "log_norm", "responsibilities"):
            np.testing.assert_array_equal(run[name], first[name], err_msg=name)
    assert_matches_reference(first, X, family, parameters, w)
