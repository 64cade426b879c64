"""What scikit-learn's estimator checks expect of fastelbo's mixtures (FastGMM, FastMFA).

The one expected failure: ``check_sample_weight_equivalence_on_dense_data`` compares a fit on
weighted rows with a fit on the rows repeated, after *shuffling* the weighted rows. A randomly
seeded initialisation (k-means++, random responsibilities) draws different rows from shuffled data,
so with more than one component the fits end in differently ordered (or different) components, as
for scikit-learn's own ``KMeans``, which lists the same expected failure. Weights equal repeated
rows in the same order: tests/test_sample_weight.py checks that.
"""


def mixture_expected_failed_checks(estimator):
    """The checks a mixture estimator is expected to fail, with the reason (for
    ``parametrize_with_checks(..., expected_failed_checks=...)``)."""
    if estimator.n_components == 1:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "the random initialisation draws other rows once the weighted rows are shuffled"
        )
    }
