"""FastPPCA and FastFactorAnalysis pass scikit-learn's estimator checks, with no expected failures.

Each check of :func:`sklearn.utils.estimator_checks.check_estimator` is its own test, for default
estimators and a few non-default configurations (EM solver, explicit thread counts, a rotation).
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastelbo import FastFactorAnalysis, FastPPCA

ESTIMATORS = [
    FastPPCA(),
    FastPPCA(n_components=1, solver="em", random_state=0, n_jobs=2),
    FastFactorAnalysis(),
    FastFactorAnalysis(n_components=1, n_jobs=1),
    FastFactorAnalysis(n_components=2, rotation="varimax"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_check(estimator, check):
    check(estimator)
