"""What scikit-learn's estimator checks expect of fastelbo's mixtures (FastGMM, FastMFA).

``check_sample_weight_equivalence_on_dense_data`` compares a fit on weighted, *shuffled* rows with a
fit on the rows repeated by their weights. The default ``init_params='kmeans'`` and ``'k-means++'``
pass it: they draw from the distinct rows of positive weight in a canonical order
(fastelbo.mixture._distinct_rows), so both fits start from the same parameters exactly.

``init_params='random'`` is expected to fail it: it reproduces scikit-learn's ``GaussianMixture``
draw for the same ``random_state`` (one row of random responsibilities per row of X, in the order
given; tests/test_sklearn_parity.py checks that), and a draw in row order cannot also be blind to
the row order. ``'random_from_data'`` likewise (scikit-learn's row draw), but no configuration
checked here uses it.
"""

ORDER_DEPENDENT_INITIALISATIONS = ("random", "random_from_data")


def mixture_expected_failed_checks(estimator):
    """The checks a mixture estimator is expected to fail, with the reason (for
    ``parametrize_with_checks(..., expected_failed_checks=...)``)."""
    if estimator.n_components == 1 or estimator.init_params not in ORDER_DEPENDENT_INITIALISATIONS:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            f"init_params={estimator.init_params!r} reproduces scikit-learn's draw in row order, so "
            "shuffled rows start elsewhere"
        )
    }
