"""The initial neighbour lists of truncated EM (``initial_neighbours``) against brute force: every
component's G nearest means, itself first, whatever the block size the memory limit chooses."""

import numpy as np
import pytest

import fastelbo.mixture._truncated as truncated


def brute_force_neighbours(means, n_neighbors):
    """Every pair's squared distance, summed coordinate by coordinate; itself first, then by distance."""
    d2 = np.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=2)
    np.fill_diagonal(d2, -np.inf)
    return np.argsort(d2, axis=1, kind="stable")[:, :n_neighbors].astype(np.int32)


@pytest.mark.parametrize("block_elements", [None, 7 * 53, 53])
@pytest.mark.parametrize("n_neighbors", [1, 4, 53])
def test_nearest_means_for_any_block_size(monkeypatch, block_elements, n_neighbors):
    means = np.random.default_rng(0).normal(size=(53, 6)) * [1, 2, 3, 1, 5, 1] + 10.0
    if block_elements is not None:  # blocks of 7 rows, and of 1 row
        monkeypatch.setattr(truncated, "_NEIGHBOUR_BLOCK_ELEMENTS", block_elements)
    lists = truncated.initial_neighbours(means, n_neighbors)
    assert lists.dtype == np.int32 and lists.shape == (53, n_neighbors)
    np.testing.assert_array_equal(lists, brute_force_neighbours(means, n_neighbors))
