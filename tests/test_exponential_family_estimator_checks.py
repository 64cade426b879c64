"""FastBernoulliMixture and FastPoissonMixture under scikit-learn's estimator checks.

scikit-learn's checks feed real-valued data (shifted to be non-negative, as the estimators' tag
``positive_only`` asks); values that are not 0/1 (Bernoulli) or integer counts (Poisson) are not
data of these models, and the estimators refuse them with a ValueError naming the value. The checks
that need such data to be fitted are the expected failures below; every other check runs.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastelbo import FastBernoulliMixture, FastPoissonMixture

ESTIMATORS = [
    FastBernoulliMixture(),
    FastBernoulliMixture(n_components=2, init_params="random_from_data", n_jobs=2),
    FastPoissonMixture(),
    FastPoissonMixture(n_components=2, init_params="random", n_init=2, n_jobs=1),
]


#: The checks that fit real-valued data (values such as 1.6355 or 0.53): every one of them stops at
#: the estimators' ValueError "X holds 1.6355 at row 0, column 0".
REAL_VALUED_DATA_CHECKS = {
    "check_all_zero_sample_weights_error",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_estimators_pickle(readonly_memmap=True)",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
    "check_sample_weights_list",
}
#: Checks whose data are small integers (counts, not all 0 or 1): only the Bernoulli refuses them.
INTEGER_DATA_CHECKS = {
    "check_sample_weights_not_an_array",
    "check_sample_weights_not_overwritten",
    "check_sample_weights_shape",
}


def expected_failed_checks(estimator):
    names = REAL_VALUED_DATA_CHECKS
    if isinstance(estimator, FastBernoulliMixture):
        names = names | INTEGER_DATA_CHECKS
    return {name: "fits data that are not values of the model (see the module docstring)" for name in names}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_check(estimator, check):
    check(estimator)
