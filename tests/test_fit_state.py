"""A fit that fails leaves the estimator as it was; an interrupted fit keeps a consistent state.

* Any exception from ``fit`` (bad input found by validation, an ill-defined covariance, an error in
  a hook, Ctrl-C before the first EM iteration, a warning turned into an error) leaves every
  attribute as it was before ``fit``: the same objects, unchanged, and no new ones.
* Ctrl-C after some EM iterations keeps the parameters of the last completed iteration, and every
  fitted attribute describes them: the interrupted estimator equals, bitwise, a fresh fit stopped
  after that many iterations (``max_iter=n, tol=0``), wherever in the iteration Ctrl-C arrived.
* A warm start after a change of ``n_components``, ``covariance_type`` or of the number of features
  is refused before any work is done.
"""

import copy
import warnings

import numpy as np
import pytest
import sklearn.utils.validation
from sklearn.exceptions import ConvergenceWarning

from fastelbo import FastGMM, _core

PARAMETERS = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]
RESULTS = ["converged_", "n_iter_", "lower_bound_", "lower_bounds_", "elbo_history_", "entropy_sum_history_"]
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    centers = 3.0 * rng.standard_normal((3, 4))
    X = centers[rng.randint(3, size=600)] + rng.standard_normal((600, 4))
    X.setflags(write=False)
    return X


def fit_quietly(gmm, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmm.fit(X)


# ----------------------------------------------------------------------------- helpers


def snapshot(estimator):
    """The attribute objects of ``estimator`` and deep copies of their values."""
    return dict(vars(estimator)), copy.deepcopy(vars(estimator))


def same_value(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def assert_unchanged(estimator, before):
    objects, copies = before
    names = set(vars(estimator)) - HookedGMM.BOOKKEEPING
    assert names == set(objects) - HookedGMM.BOOKKEEPING, names ^ set(objects)
    for name in names:
        value = getattr(estimator, name)
        assert value is objects[name], f"{name} was replaced"
        assert same_value(value, copies[name]), f"{name} was modified in place"


class HookedGMM(FastGMM):
    """FastGMM that calls ``self.hook(point, iteration)`` at points of the fit; the hook may raise.

    ``iteration`` counts the E-steps of ``fit`` (1 during the first iteration); the points are
    ``"e_step"`` (the start of the E-step), ``"m_step"`` (its start), ``"assign"`` (half-way
    through the M-step's parameter update: the weights are new, the rest not yet),
    ``"after_m_step"``, ``"decompose"``, ``"initialize_parameters"`` and ``"final_pass"``
    (iteration 0) and ``"check_initial_parameters"`` (validation, after ``validate_data``).
    """

    BOOKKEEPING = {"iteration", "in_m_step"}  # the test's own attributes, not the estimator's
    hook = None
    iteration = 0
    in_m_step = False

    def _call_hook(self, point):
        if self.hook is not None:
            self.hook(point, self.iteration)

    def _check_initial_parameters(self, n_features):
        self._call_hook("check_initial_parameters")
        super()._check_initial_parameters(n_features)

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        self.iteration = 0
        self._call_hook("initialize_parameters")
        super()._initialize_parameters(X, random_state, sample_weight)

    def _e_step(self, X, moments=True, sample_weight=None):
        if moments:  # fit's E-steps compute the moments
            self.iteration += 1
            self._call_hook("e_step")
        return super()._e_step(X, moments=moments, sample_weight=sample_weight)

    def _m_step(self, stats):
        self._call_hook("m_step")
        self.in_m_step = True
        try:
            super()._m_step(stats)
        finally:
            self.in_m_step = False
        self._call_hook("after_m_step")

    def _assign(self, weights, means, covariances, precisions_cholesky, dtype=None):
        if self.in_m_step:
            self.weights_ = np.asarray(weights, dtype=self.means_.dtype)
            self._call_hook("assign")
        super()._assign(weights, means, covariances, precisions_cholesky, dtype)

    def _decompose(self, stats):
        self._call_hook("decompose")
        return super()._decompose(stats)

    def _final_pass(self, X, sample_weight=None):
        self.iteration = 0
        self._call_hook("final_pass")
        return super()._final_pass(X, sample_weight)


def raise_at(point, iteration, error):
    def hook(at_point, at_iteration):
        if (at_point, at_iteration) == (point, iteration):
            raise error

    return hook


def hooked(hook=None, **params):
    gmm = HookedGMM(**params)
    gmm.hook = hook
    return gmm


# ----------------------------------------------------------------------------- failed fits

# (name, change to the estimator or data, expected exception); each makes a fit raise.


def _nan_in_X(gmm, X):
    X = X.copy()
    X[5, 1] = np.nan
    return X


def _too_few_samples_with_other_features(gmm, X):
    # validate_data accepts X and records 6 features before the n_samples check fails.
    return np.ones((2, 6))


def _means_init_of_the_wrong_shape(gmm, X):
    gmm.set_params(means_init=np.zeros((3, 5)))
    return X


def _ill_defined_covariance_at_initialisation(gmm, X):
    # Constant features and reg_covar=0: the initial M-step finds zero variances.
    gmm.set_params(reg_covar=0.0, covariance_type="diag")
    X = X.copy()
    X[:, 2:] = 1.0
    return X


def _ill_defined_covariance_mid_em(gmm, X):
    # Six identical points and reg_covar=0: after about 20 iterations a component collapses onto
    # them and its variances reach zero.
    gmm.set_params(
        n_components=4,
        covariance_type="diag",
        reg_covar=0.0,
        init_params="random",
        random_state=0,
        max_iter=200,
    )
    return np.vstack([X, np.full((6, 4), 8.0)])


def _hook_raises(point, iteration, error):
    def change(gmm, X):
        gmm.hook = raise_at(point, iteration, error)
        return X

    return change


def _convergence_warning_as_error(gmm, X):
    gmm.set_params(max_iter=2, tol=0.0)
    warnings.simplefilter("error", ConvergenceWarning)
    return X


FAILURES = {
    "nan-in-X": (_nan_in_X, ValueError),
    "too-few-samples": (_too_few_samples_with_other_features, ValueError),
    "bad-means-init": (_means_init_of_the_wrong_shape, ValueError),
    "ill-defined-covariance-at-initialisation": (_ill_defined_covariance_at_initialisation, ValueError),
    "ill-defined-covariance-mid-em": (_ill_defined_covariance_mid_em, ValueError),
    "linalg-error-mid-em": (_hook_raises("after_m_step", 2, np.linalg.LinAlgError), np.linalg.LinAlgError),
    "error-in-decompose": (_hook_raises("decompose", 2, RuntimeError), RuntimeError),
    "error-in-final-pass": (_hook_raises("final_pass", 0, RuntimeError), RuntimeError),
    "ctrl-c-in-validation": (
        _hook_raises("check_initial_parameters", 0, KeyboardInterrupt),
        KeyboardInterrupt,
    ),
    "ctrl-c-in-initialisation": (
        _hook_raises("initialize_parameters", 0, KeyboardInterrupt),
        KeyboardInterrupt,
    ),
    "ctrl-c-in-first-e-step": (_hook_raises("e_step", 1, KeyboardInterrupt), KeyboardInterrupt),
    "ctrl-c-in-first-m-step": (_hook_raises("assign", 1, KeyboardInterrupt), KeyboardInterrupt),
    "convergence-warning-as-error": (_convergence_warning_as_error, ConvergenceWarning),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_refit_that_raises_leaves_the_estimator_as_it_was(X, failure):
    change, error = FAILURES[failure]
    gmm = fit_quietly(hooked(n_components=3, random_state=0), X)
    gmm.set_params(random_state=1)  # a refit that succeeded would change every fitted attribute
    with warnings.catch_warnings():
        X_bad = change(gmm, X)
        before = snapshot(gmm)
        with pytest.raises(error):
            gmm.fit(X_bad)
    assert_unchanged(gmm, before)


@pytest.mark.parametrize("failure", FAILURES)
def test_a_first_fit_that_raises_leaves_no_fitted_attribute(X, failure):
    change, error = FAILURES[failure]
    gmm = hooked(n_components=3, random_state=0)
    with warnings.catch_warnings():
        X_bad = change(gmm, X)
        before = snapshot(gmm)
        with pytest.raises(error):
            gmm.fit_predict(X_bad)
    assert_unchanged(gmm, before)
    assert not [name for name in vars(gmm) if name.endswith("_")]


def test_a_failed_refit_restores_the_feature_names(X, monkeypatch):
    # No dataframe library is needed: sklearn reads the names through _get_feature_names.
    class Named(np.ndarray):
        pass

    monkeypatch.setattr(
        sklearn.utils.validation,
        "_get_feature_names",
        lambda X: np.array(["a", "b", "c", "d"], dtype=object) if isinstance(X, Named) else None,
    )
    gmm = fit_quietly(FastGMM(n_components=3, random_state=0), np.asarray(X).view(Named))
    assert list(gmm.feature_names_in_) == ["a", "b", "c", "d"]
    before = snapshot(gmm)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        gmm.fit(np.ones((2, 4)))  # validate_data drops feature_names_in_, then the check fails
    assert_unchanged(gmm, before)

    plain = fit_quietly(FastGMM(n_components=3, random_state=0), X)
    before = snapshot(plain)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        plain.fit(np.ones((2, 4)).view(Named))  # validate_data sets feature_names_in_ first
    assert_unchanged(plain, before)
    assert not hasattr(plain, "feature_names_in_")


def test_the_ill_defined_covariance_cases_fail_where_they_are_meant_to(X):
    # Guards the two cases above: the covariance check fails, at the initialisation or after
    # several completed iterations.
    iterations = []
    for change, first_iteration in [
        (_ill_defined_covariance_at_initialisation, 0),
        (_ill_defined_covariance_mid_em, 5),
    ]:
        gmm = hooked(lambda point, iteration: iterations.append(iteration), n_components=3, random_state=0)
        X_bad = change(gmm, X)
        iterations.clear()
        with pytest.raises(ValueError, match="ill-defined"):
            gmm.fit(X_bad)
        assert max(iterations) >= first_iteration


# ----------------------------------------------------------------------------- Ctrl-C mid-fit

INTERRUPT_POINTS = ["e_step", "m_step", "assign", "after_m_step", "decompose"]


def assert_fit_equals(gmm, expected):
    for name in PARAMETERS + RESULTS:
        assert same_value(getattr(gmm, name), getattr(expected, name)), name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("point", INTERRUPT_POINTS)
def test_ctrl_c_anywhere_in_an_iteration_keeps_the_last_completed_iteration(X, point, covariance_type):
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=0.0)
    gmm = hooked(raise_at(point, 4, KeyboardInterrupt), max_iter=50, **params)
    with pytest.warns(RuntimeWarning, match="after iteration 3") as caught:
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(X)
    assert caught[0].filename == __file__  # the warning points at the caller
    gmm.hook = None

    expected = fit_quietly(FastGMM(max_iter=3, **params), X)
    assert expected.converged_ is False and expected.n_iter_ == 3
    assert_fit_equals(gmm, expected)
    assert len(gmm.elbo_history_) == len(gmm.entropy_sum_history_) == gmm.n_iter_
    assert gmm.lower_bound_ == gmm.elbo_history_[-1]
    assert np.array_equal(gmm.predict_proba(X), expected.predict_proba(X))
    with pytest.raises(ValueError, match="pass X"):
        gmm.entropy_decomposition()
    assert gmm.entropy_decomposition(X) == expected.entropy_decomposition(X)


def test_ctrl_c_in_the_final_pass_keeps_the_finished_run(X):
    params = dict(n_components=3, covariance_type="full", random_state=0, tol=0.0, max_iter=5)
    gmm = hooked(raise_at("final_pass", 0, KeyboardInterrupt), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(RuntimeWarning, match="after iteration 5"):
            with pytest.raises(KeyboardInterrupt):
                gmm.fit(X)
    assert_fit_equals(gmm, fit_quietly(FastGMM(**params), X))
    with pytest.raises(ValueError, match="pass X"):
        gmm.entropy_decomposition()


def test_ctrl_c_during_a_refit_keeps_the_refits_iterations_with_their_own_histories(X):
    params = dict(n_components=3, random_state=0, tol=0.0)
    gmm = fit_quietly(hooked(max_iter=20, **params), X)
    gmm.hook = raise_at("decompose", 3, KeyboardInterrupt)
    with pytest.warns(RuntimeWarning, match="after iteration 2"):
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(X)
    assert_fit_equals(gmm, fit_quietly(FastGMM(max_iter=2, **params), X))


def test_ctrl_c_mid_iteration_of_a_warm_start_keeps_the_continued_parameters(X):
    params = dict(n_components=3, random_state=0, tol=0.0)
    gmm = fit_quietly(hooked(max_iter=2, warm_start=True, **params), X)
    gmm.set_params(max_iter=10)
    gmm.hook = raise_at("after_m_step", 3, KeyboardInterrupt)
    with pytest.warns(RuntimeWarning, match="after iteration 2"):
        with pytest.raises(KeyboardInterrupt):
            gmm.fit(X)
    # 2 iterations, then 2 more from there: the parameters of a 4-iteration fit.
    expected = fit_quietly(FastGMM(max_iter=4, **params), X)
    for name in PARAMETERS:
        assert same_value(getattr(gmm, name), getattr(expected, name)), name
    assert gmm.n_iter_ == 2 and gmm.converged_ is False
    assert np.array_equal(gmm.elbo_history_, expected.elbo_history_[2:])
    assert np.array_equal(gmm.entropy_sum_history_, expected.entropy_sum_history_[2:])


def test_the_convergence_warning_points_at_the_caller(X):
    for method in ("fit", "fit_predict"):
        with pytest.warns(ConvergenceWarning) as caught:
            getattr(FastGMM(n_components=3, random_state=0, max_iter=1), method)(X)
        assert caught[0].filename == __file__, method


# ----------------------------------------------------------------------------- warm starts


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    for name in ("gaussian_mixture_pass", "kmeans_plusplus", "lloyd_kmeans"):
        kernel = getattr(_core, name)

        def recorded(*args, _name=name, _kernel=kernel, **kwargs):
            calls.append(_name)
            return _kernel(*args, **kwargs)

        monkeypatch.setattr(_core, name, recorded)
    return calls


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(n_components=4), "n_components changed from 3 to 4"),
        (dict(covariance_type="diag"), "covariance_type changed from 'full' to 'diag'"),
        (dict(covariance_type="tied"), "covariance_type changed from 'full' to 'tied'"),
    ],
)
def test_a_warm_start_after_a_change_of_shape_parameters_is_refused(X, kernel_calls, change, message):
    gmm = FastGMM(n_components=3, covariance_type="full", random_state=0, warm_start=True).fit(X)
    gmm.set_params(**change)
    before = snapshot(gmm)
    kernel_calls.clear()
    with pytest.raises(ValueError, match=f"warm_start=True but {message} since the last fit; refit with"):
        gmm.fit(X)
    assert not kernel_calls
    assert_unchanged(gmm, before)

    # Going back to the fitted values continues the warm start; a cold start takes the new ones.
    gmm.set_params(n_components=3, covariance_type="full")
    gmm.fit(X)
    gmm.set_params(warm_start=False, **change)
    gmm.fit(X)
    assert gmm.weights_.shape == (gmm.n_components,)
    K, D = gmm.n_components, X.shape[1]
    shapes = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    assert gmm.covariances_.shape == shapes[gmm.covariance_type]


def test_a_warm_start_on_data_with_other_features_is_refused(X, kernel_calls):
    gmm = FastGMM(n_components=3, random_state=0, warm_start=True).fit(X)
    before = snapshot(gmm)
    kernel_calls.clear()
    wider = np.hstack([X, X[:, :1]])
    with pytest.raises(ValueError, match="number of features changed from 4 to 5"):
        gmm.fit(wider)
    assert not kernel_calls
    assert_unchanged(gmm, before)
    assert gmm.n_features_in_ == 4
    gmm.set_params(warm_start=False)
    assert gmm.fit(wider).means_.shape == (3, 5)


def test_a_warm_start_with_unchanged_shape_parameters_continues(X):
    gmm = fit_quietly(FastGMM(n_components=3, random_state=0, warm_start=True, max_iter=2, tol=0.0), X)
    gmm.set_params(reg_covar=1e-6, n_components=3)  # same values: not a change
    fit_quietly(gmm, X)
    expected = fit_quietly(FastGMM(n_components=3, random_state=0, max_iter=4, tol=0.0), X)
    for name in PARAMETERS:
        assert same_value(getattr(gmm, name), getattr(expected, name)), name
