"""The Bernoulli/Poisson benchmark's NumPy EM (bench/numpy_exponential_family_em.py) and its sparse
count data (bench/sparse_counts.py): the EM computes the model's log-likelihood and exact M-step
(checked against loops written here and against the entropy identity of docs/theory.rst), and the
generator is deterministic, sparse from the start and draws the counts of its stated mixture."""

import math
import pathlib
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import numpy_exponential_family_em as npef  # noqa: E402
import sparse_counts  # noqa: E402

FAMILIES = ("bernoulli", "poisson")


def _data(family, n_samples, n_features, density, n_topics, random_state):
    X = sparse_counts.sparse_counts(n_samples, n_features, density, n_topics, random_state)
    return sparse_counts.binarized(X) if family == "bernoulli" else X


def _loop_row_log_likelihoods(dense, weights, means, family):
    """log p(x_n) by plain loops over rows, components and features with the math module."""
    out = []
    for x in dense:
        terms = []
        for w, mean in zip(weights, means, strict=True):
            s = math.log(w)
            for value, m in zip(x, mean, strict=True):
                if family == "bernoulli":
                    s += value * math.log(m) + (1 - value) * math.log(1 - m)
                else:
                    s += value * math.log(m) - m - math.lgamma(value + 1)
            terms.append(s)
        top = max(terms)
        out.append(top + math.log(sum(math.exp(t - top) for t in terms)))
    return np.array(out)


def _dense_responsibilities(dense, weights, means, family):
    """(N, K) posteriors by dense NumPy (no sparse product, no natural parameters)."""
    if family == "bernoulli":
        log_joint = dense @ np.log(means).T + (1 - dense) @ np.log1p(-means).T
    else:
        log_joint = dense @ np.log(means).T - means.sum(axis=1)
    log_joint = log_joint + np.log(weights)
    log_joint -= log_joint.max(axis=1, keepdims=True)
    q = np.exp(log_joint)
    return q / q.sum(axis=1, keepdims=True)


def _tiny_problem(family, seed):
    rng = np.random.default_rng(seed)
    n, d, k = 7, 5, 3
    if family == "bernoulli":
        dense = (rng.random((n, d)) < 0.4).astype(float)
        means = rng.uniform(0.1, 0.9, (k, d))
    else:
        dense = rng.poisson(1.5, (n, d)).astype(float)
        means = rng.uniform(0.2, 3.0, (k, d))
    return dense, rng.dirichlet(np.ones(k)), means


@pytest.mark.parametrize("family", FAMILIES)
def test_e_step_equals_loops_on_a_tiny_problem(family):
    dense, weights, means = _tiny_problem(family, seed=4)
    X = sp.csr_matrix(dense)
    expected = _loop_row_log_likelihoods(dense, weights, means, family)
    np.testing.assert_allclose(npef.row_log_likelihood(X, weights, means, family), expected, rtol=1e-12)
    # Blocks of 2 rows (the last one short) give the same rows.
    np.testing.assert_allclose(
        npef.row_log_likelihood(X, weights, means, family, block_rows=2), expected, rtol=1e-12
    )
    # fit's first log-likelihood is the mean of the same rows, and its M-step the closed form on the
    # loop's posteriors.
    _, log_likelihoods = npef.fit(X, weights, means, family, n_iter=1)
    np.testing.assert_allclose(log_likelihoods[0], expected.mean(), rtol=1e-12)
    q = _dense_responsibilities(dense, weights, means, family)
    new_weights, new_means, log_likelihood = npef.em_step(X, weights, means, family, block_rows=3)
    np.testing.assert_allclose(log_likelihood, expected.mean(), rtol=1e-12)
    np.testing.assert_allclose(new_weights, q.mean(axis=0), rtol=1e-12)
    closed_form = (q.T @ dense) / q.sum(axis=0)[:, None]
    # The floors: here a word no row has (bernoulli) sits at 1e-10, not 0.
    upper = 1.0 - npef.MEAN_FLOOR if family == "bernoulli" else np.inf
    np.testing.assert_allclose(new_means, np.clip(closed_form, npef.MEAN_FLOOR, upper), rtol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_log_likelihood_never_decreases_and_blocks_do_not_matter(family):
    X = _data(family, 600, 300, 0.03, 4, random_state=1)
    weights, means = npef.initial_parameters(X, 6, family, random_state=2)
    (w, m), log_likelihoods = npef.fit(X, weights, means, family, n_iter=40)
    steps = np.diff(log_likelihoods)
    assert np.all(steps >= -1e-12 * abs(log_likelihoods[-1])), steps.min()
    assert log_likelihoods[-1] > log_likelihoods[0] + 1.0  # EM moved: the check above was not vacuous
    (w_blocks, m_blocks), log_likelihoods_blocks = npef.fit(X, weights, means, family, 40, block_rows=37)
    np.testing.assert_allclose(log_likelihoods_blocks, log_likelihoods, rtol=1e-12)
    np.testing.assert_allclose(w_blocks, w, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(m_blocks, m, rtol=1e-9, atol=1e-14)


def _pseudo_entropy(means, family):
    if family == "bernoulli":
        return -(means * np.log(means) + (1 - means) * np.log(1 - means))
    return means - means * np.log(means)


def _free_energy(dense, q, weights, means, family):
    """F(q, Theta) = < sum_c q_c (log pi_c + log p(x | c)) + H[q] >, dense."""
    if family == "bernoulli":
        log_px = dense @ np.log(means).T + (1 - dense) @ np.log(1 - means).T
    else:
        log_factorials = np.vectorize(math.lgamma)(dense + 1).sum(axis=1)
        log_px = dense @ np.log(means).T - means.sum(axis=1) - log_factorials[:, None]
    q_log_q = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    return float(np.mean((q * (np.log(weights) + log_px)).sum(axis=1) - q_log_q.sum(axis=1)))


@pytest.mark.parametrize("family", FAMILIES)
def test_entropy_identity_after_every_m_step(family):
    """F(q^t, Theta^{t+1}) = <H[q_n]> - H[pi] - sum_c qbar_c sum_d H~(eta_cd) + <sum_d log h(x_nd)>
    (docs/theory.rst), q^t the posteriors at Theta^t computed here, Theta^{t+1} the EM's M-step."""
    X = _data(family, 800, 40, 0.2, 3, random_state=5)
    dense = X.toarray()
    data_term = 0.0 if family == "bernoulli" else -np.vectorize(math.lgamma)(dense + 1).sum(axis=1).mean()
    weights, means = npef.initial_parameters(X, 4, family, random_state=6)
    previous_log_likelihood = None
    for _ in range(8):
        q = _dense_responsibilities(dense, weights, means, family)
        new_weights, new_means, log_likelihood = npef.em_step(X, weights, means, family)
        upper = 1.0 - npef.MEAN_FLOOR if family == "bernoulli" else np.inf
        assert np.all((new_means > npef.MEAN_FLOOR) & (new_means < upper)), "a floor binds: no identity"
        free_energy = _free_energy(dense, q, new_weights, new_means, family)
        q_entropy = -np.mean(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(axis=1))
        entropy_sum = (
            q_entropy
            + new_weights @ np.log(new_weights)
            - q.mean(axis=0) @ _pseudo_entropy(new_means, family).sum(axis=1)
            + data_term
        )
        np.testing.assert_allclose(entropy_sum, free_energy, rtol=1e-9)
        # The sequences interleave: F(q^t, Theta^t) <= S(q^t, Theta^{t+1}) <= F(q^{t+1}, Theta^{t+1}).
        assert log_likelihood <= entropy_sum + 1e-12 * abs(entropy_sum)
        if previous_log_likelihood is not None:
            assert previous_log_likelihood <= log_likelihood + 1e-12 * abs(log_likelihood)
        previous_log_likelihood = entropy_sum
        weights, means = new_weights, new_means


def test_floors_keep_the_log_likelihood_finite():
    dense = np.array([[0, 1, 2], [0, 3, 1], [0, 1, 1], [0, 2, 4]], dtype=float)  # word 0 never seen
    weights, means = np.array([0.5, 0.5]), np.array([[0.5, 1.0, 2.0], [0.5, 2.0, 1.0]])
    (_, poisson_means), log_likelihoods = npef.fit(sp.csr_matrix(dense), weights, means, "poisson", 3)
    np.testing.assert_array_equal(poisson_means[:, 0], npef.MEAN_FLOOR)
    binary = (dense > 0).astype(float)  # word 1 in every row: its probability is floored below 1
    (_, bernoulli_means), bernoulli_log_likelihoods = npef.fit(
        sp.csr_matrix(binary), weights, np.full((2, 3), 0.5), "bernoulli", 3
    )
    np.testing.assert_array_equal(bernoulli_means[:, 0], npef.MEAN_FLOOR)
    np.testing.assert_array_equal(bernoulli_means[:, 1], 1.0 - npef.MEAN_FLOOR)
    assert np.all(np.isfinite(log_likelihoods + bernoulli_log_likelihoods))


def test_data_are_checked():
    counts = sp.csr_matrix(np.array([[0.0, 2.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="0/1"):
        npef.fit(counts, [0.5, 0.5], np.full((2, 2), 0.5), "bernoulli", 1)
    with pytest.raises(ValueError, match="non-negative integers"):
        npef.fit(counts * 0.5, [0.5, 0.5], np.ones((2, 2)), "poisson", 1)


# --- the generator ----------------------------------------------------------------------------------


def test_generator_is_deterministic():
    first = sparse_counts.sparse_counts(3000, 2000, 0.01, 5, random_state=7)
    again = sparse_counts.sparse_counts(3000, 2000, 0.01, 5, random_state=7)
    other = sparse_counts.sparse_counts(3000, 2000, 0.01, 5, random_state=8)
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.nnz != other.nnz or not np.array_equal(first.indices, other.indices)


@pytest.mark.parametrize("density", [0.002, 0.01])
def test_generator_density_values_and_format(density):
    n_samples, n_features = 20_000, 5_000
    X = sparse_counts.sparse_counts(n_samples, n_features, density, 8, random_state=3)
    assert isinstance(X, sp.csr_matrix) and X.shape == (n_samples, n_features)
    assert X.data.dtype == np.float64 and X.indices.dtype == np.int32
    # nnz is about 1e5 to 1e6: its standard deviation is well under 1 %; 3 % is the tolerance.
    assert abs(X.nnz / (n_samples * n_features) - density) <= 0.03 * density
    assert np.all(X.data >= 1) and np.all(X.data == np.round(X.data))
    canonical = X.copy()
    canonical.sum_duplicates()  # would merge repeated (row, word) pairs and sort each row's words
    np.testing.assert_array_equal(canonical.indices, X.indices)
    np.testing.assert_array_equal(canonical.data, X.data)
    B = sparse_counts.binarized(X)
    assert np.all(B.data == 1.0) and np.shares_memory(B.indices, X.indices)
    np.testing.assert_array_equal(B.indptr, X.indptr)


def test_generator_draws_its_poisson_mixture():
    """Within each topic the counts of the frequent words have the stated Poisson means, and variances
    equal to them (a Poisson's); the topics differ."""
    X, truth = sparse_counts.sparse_counts(30_000, 3_000, 0.01, 4, random_state=11, return_truth=True)
    rates = truth["rates"]
    frequent = np.argsort(rates.min(axis=0))[-5:]
    dense = X[:, frequent].toarray()
    for topic in range(4):
        rows = dense[truth["labels"] == topic]
        expected = rates[topic, frequent]
        standard_error = np.sqrt(expected / len(rows))
        assert np.all(np.abs(rows.mean(axis=0) - expected) <= 6 * standard_error)
        np.testing.assert_allclose(rows.var(axis=0), expected, rtol=0.15)
    assert np.abs(np.log(rates[0] / rates[1])).max() > 1.0
    np.testing.assert_allclose(X.nnz, truth["expected_nnz"], rtol=6 / np.sqrt(truth["expected_nnz"]))


def test_generator_memory_is_that_of_the_matrix():
    """Peak traced memory at about 5M nonzeros: the matrix, its spare capacity and one block's
    temporaries, far below any dense array (the full one is 20 GB, one block of rows 2.7 GB)."""
    tracemalloc.start()
    try:
        X = sparse_counts.sparse_counts(50_000, 50_000, 0.002, 20, random_state=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    matrix = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    block_temporaries = 16 * 8 * sparse_counts.BLOCK_TOKENS  # at most sixteen 8-byte arrays of a block
    assert peak <= 1.5 * matrix + block_temporaries, (peak / 2**20, matrix / 2**20)


def test_speed_script_reports_the_em_it_timed(tmp_path, capsys):
    """bench/exponential_family_speed.py on a small case: one JSON line per family, and the
    log-likelihood it reports is that of 1 + 3 iterations of the NumPy EM from the same start."""
    import json

    import exponential_family_speed

    out = tmp_path / "speed.json"
    args = ["--n-samples", "2000", "--n-features", "1000", "--density", "0.01", "--topics", "3"]
    exponential_family_speed.main([*args, "--components", "4", "--repeats", "1", "--json-out", str(out)])
    result = json.loads(out.read_text())
    counts = sparse_counts.sparse_counts(2000, 1000, 0.01, 3)
    for row, family in zip(result["cases"], FAMILIES, strict=True):
        X = sparse_counts.binarized(counts) if family == "bernoulli" else counts
        start = npef.initial_parameters(X, 4, family, random_state=0)
        _, log_likelihoods = npef.fit(X, *start, family, 4)
        assert row["family"] == family and row["nnz"] == counts.nnz
        assert row["log_likelihood_after_4"] == log_likelihoods[-1]
        assert 0 < row["seconds_per_iteration"] and 0 < row["iteration_bound_seconds"]
        assert row["traced_peak_mib"] > 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # the environment, then one line per family
