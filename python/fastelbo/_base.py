"""The EM driver shared by every fastelbo estimator.

It owns what does not depend on the model: ``n_init`` restarts, ``warm_start``, convergence on the
change of the ELBO, the ELBO and entropy-sum histories, verbose progress (reported by
:mod:`fastelbo._progress`), keeping the estimator consistent when a fit fails or is interrupted
with Ctrl-C, and the validation of the driver's own
hyperparameters (``max_iter, tol, n_init, warm_start, random_state, verbose, verbose_interval,
n_jobs``). A model plugs in by subclassing :class:`EMEstimator` and implementing its abstract
hooks (each documented there); ``_warm_start_parameters`` names the hyperparameters a warm start
must not change (they fix the parameters' shapes).

The model's ``_fit`` is decorated with :func:`restores_state_on_error`: a fit that raises leaves the
estimator exactly as it was before ``fit``, except when Ctrl-C arrives after an EM iteration has
completed; the estimator then keeps the parameters of the last completed iteration, with every
fitted attribute describing those parameters.

The hooks that read X (``_initialize_parameters``, ``_e_step``, ``_final_pass``) also take the
fit's ``sample_weight`` (None: every row weighs 1). :meth:`EMEstimator.fit` calls the model's
``_fit``, which validates its input with :meth:`EMEstimator._validate_fit_input`.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from fastelbo._dask_backend import DaskRowSource, is_dask_array
from fastelbo._progress import FitProgress
from fastelbo._row_source import RowSource, check_streamed_input, is_streamed
from fastelbo._threads import resolve_n_threads, single_threaded_blas
from fastelbo._validation import as_numpy, check_sample_weight, in_native_byte_order, valid_as_given

# Set on a KeyboardInterrupt after which the estimator kept an interrupted fit's completed work.
_KEPT_INTERRUPTED_FIT = "_fastelbo_kept_interrupted_fit"


class BeyondDtype(Exception):
    """Raised by a model's ``_m_step`` when X's dtype cannot store the parameters it found (a
    float32 covariance that is not positive definite once rounded, or whose rounding costs more
    than the fit can afford); the parameters are left as they were, the iteration is not
    recorded, and :meth:`EMEstimator._parameters_lost_to_rounding` is then true."""


def restores_state_on_error(fit):
    """Decorate a model's ``_fit`` so that a fit that raises changes nothing.

    The fitted attributes (:meth:`EMEstimator._fitted_state`, which include the
    ``n_features_in_`` and ``feature_names_in_`` that validation sets before later checks can fail)
    are snapshotted before ``fit`` and restored, as the same objects, when it raises anything, with
    one exception: a Ctrl-C after which the fit kept its completed EM iterations.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        previous_state = self._fitted_state()
        self._check_warm_start_parameters()
        try:
            return fit(self, *args, **kwargs)
        except BaseException as error:
            if not getattr(error, _KEPT_INTERRUPTED_FIT, False):
                self._restore_fitted_state(previous_state)
            raise

    return wrapper


class EMEstimator(ABC):
    """EM loop over a model's hooks: the seam every fastelbo estimator plugs into.

    A subclass implements the abstract hooks below and stores the driver's hyperparameters
    ``max_iter, tol, n_init, warm_start, random_state, verbose, verbose_interval, n_jobs`` as
    attributes (its ``__init__`` takes them as keyword parameters); :meth:`_check_em_hyperparameters`
    validates them, once, for every model. The driver calls the hooks in this order::

        _initialize_parameters -> (_e_step -> _m_step -> _decompose) * n_iter -> _final_pass -> _decompose

    snapshotting the parameters with :meth:`_get_parameters` after every iteration and restoring
    the best run's with :meth:`_set_parameters`. Statistics are whatever object the model's
    :meth:`_e_step` returns; the driver reads only their ``elbo``.
    """

    #: Names of the hyperparameters a warm start must not change (they fix the parameters' shapes).
    _warm_start_parameters = ()

    #: Whether the hooks read X through a :class:`~fastelbo._row_source.RowSource`, so that a
    #: streamed input (memmap, HDF5, Zarr) reaches them as one, never copied whole into memory;
    #: otherwise every input is validated into an in-memory array first.
    _accepts_row_sources = False

    #: Whether every output depends on the sample weights' ratios only, so that the hooks get them
    #: scaled by a power of two to a largest in [0.5, 1) (see ``check_sample_weight``).
    _outputs_use_weight_ratios_only = True

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _initialize_parameters(self, X, random_state, sample_weight=None):
        """Set the initial parameters of one EM run (one of ``n_init``).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features) or RowSource
            The validated training data (float32 or float64, C-contiguous), or a
            :class:`~fastelbo._row_source.RowSource` of a streamed input where the model sets
            ``_accepts_row_sources``.
        random_state : numpy.random.RandomState
            The fit's generator, shared by the successive runs (each run draws after the previous).
        sample_weight : ndarray of shape (n_samples,) or None
            Validated non-negative row weights; None: every row weighs 1.
        """

    @abstractmethod
    def _e_step(self, X, moments=True, sample_weight=None):
        """One statistics pass over X with the current parameters ``Theta^t``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated data: the training data during ``fit`` (the same object at every iteration,
            so a model may compute data-only statistics once per fit), new data for
            :meth:`entropy_decomposition`.
        moments : bool, default=True
            Whether the statistics must carry what :meth:`_m_step` needs; False asks only for the
            terms of :meth:`_decompose` (decomposing new data).
        sample_weight : ndarray of shape (n_samples,) or None
            Row weights, as in :meth:`_initialize_parameters`.

        Returns
        -------
        statistics
            Any object with ``.elbo``, the ELBO ``F(q^t, Theta^t)`` per data point (weighted mean),
            and whatever :meth:`_m_step` and :meth:`_decompose` read.
        """

    @abstractmethod
    def _m_step(self, statistics):
        """Set the parameters ``Theta^{t+1}`` that maximise ``F(q^t, Theta)`` for the statistics
        of an E-step (closed form, in place)."""

    @abstractmethod
    def _decompose(self, statistics):
        """The :class:`~fastelbo.EntropyDecomposition` of the current parameters under the
        posteriors ``q`` of the pass that produced ``statistics``.

        Called after :meth:`_m_step` (its ``entropy_sum`` is the history's ``S(q^t, Theta^{t+1})``)
        and on the statistics of :meth:`_final_pass` (the training decomposition).
        """

    @abstractmethod
    def _final_pass(self, X, sample_weight=None):
        """The pass with the fitted parameters that ends ``fit``.

        Returns
        -------
        statistics
            As :meth:`_e_step` returns them; :meth:`_decompose` makes the training decomposition.
        labels : ndarray of shape (n_samples,) or None
            Per-row outputs ``fit_predict`` returns (None for models without labels).
        """

    @abstractmethod
    def _get_parameters(self):
        """A snapshot of the fitted parameters (a tuple of arrays that later M-steps do not modify
        in place)."""

    @abstractmethod
    def _set_parameters(self, parameters):
        """Restore a snapshot from :meth:`_get_parameters`, with every attribute derived from it."""

    def _run_state(self):
        """What one EM run left besides its parameters that the final E-step continues from (a
        model's per-run search state, say), or None; kept with the run so that the final pass of
        the best of ``n_init`` runs uses the best run's, not the last run's."""
        return None

    def _restore_run_state(self, state):
        """Make ``state`` from :meth:`_run_state` the current run's again (before the final pass);
        models without run state have nothing to restore."""
        del state

    def _improves_on(self, lower_bound, best_lower_bound):
        """Whether a finished run's final ELBO beats the best so far (the best of ``n_init``
        runs is kept; a model may treat runs within its tolerance as ties, the first kept)."""
        return lower_bound > best_lower_bound

    def _left_stationary_point(self):
        """Whether the last M-step, taken where EM's own change of the ELBO fell below ``tol``,
        moved the parameters further than EM would (a model's step off a saddle point, where EM
        crawls): the run then goes on instead of stopping. Never by default."""
        return False

    def _search_settled(self):
        """Whether a run whose change of the ELBO fell below ``tol`` may stop: a model whose
        E-step searches (truncated EM) says whether its search has settled; always by default."""
        return True

    def _convergence_tolerance(self):
        """The change of the per-point ELBO below which a run has converged: ``tol``, unless a
        model defines ``tol`` on another scale (override)."""
        return self.tol

    # -- fitting -----------------------------------------------------------------------------

    @single_threaded_blas
    def fit(self, X, y=None, sample_weight=None):
        """Fit the model's parameters to X (by EM, ``n_init`` runs and the best kept, unless the
        estimator solves in closed form).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Non-negative, finite weight of every row (a scalar: the same for all); None: all 1.
            The fit maximises the weighted mean log-likelihood ``(1/W) sum_n w_n log p(x_n)``;
            integer weights act like repeated rows, zero weights like absent rows (for truncated
            EM, ``n_active``, in the model only: each row searches its own set of components, so
            the copies of a repeated row, or a zero-weight row's draws, take other paths than one
            weighted row, and the fits differ). A mixture needs at least ``n_components`` rows
            with a positive weight.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._fit(X, sample_weight)
        return self

    # -- validation --------------------------------------------------------------------------

    def _validate_fit_input(self, X, sample_weight):
        """Check the hyperparameters (the model's ``_check_hyperparameters``), then validate the
        training data and the sample weights; return both."""
        self._check_hyperparameters()
        X = self._validate_rows(X, reset=True, min_samples=2)
        return X, check_sample_weight(sample_weight, X, scale_to_unit=self._outputs_use_weight_ratios_only)

    def _validate_rows(self, X, reset, min_samples):
        """X validated as scikit-learn validates it (an in-memory float32/float64 C-contiguous
        array), or, for a model that streams, a :class:`~fastelbo._row_source.RowSource` of a
        streamed input whose shape and dtype are checked here and its values block by block."""
        if not reset and valid_as_given(self, X, min_samples):
            return X
        if self._accepts_row_sources and is_dask_array(X):
            if sp.issparse(getattr(X, "_meta", None)):  # chunks of scipy.sparse matrices
                raise TypeError(
                    "Sparse data was passed for X, but dense data is required. Use '.map_blocks(lambda "
                    "b: b.toarray())' on the dask array to convert its chunks to dense NumPy arrays."
                )
            source = DaskRowSource(X)
            validate_data(self, X, skip_check_array=True, reset=reset)
            if source.n_samples < min_samples:
                raise ValueError(
                    f"Found array with {source.n_samples} sample(s) (shape={source.shape}) while a "
                    f"minimum of {min_samples} is required."
                )
            return source
        if self._accepts_row_sources and (isinstance(X, RowSource) or is_streamed(X)):
            source = X if isinstance(X, RowSource) else RowSource(X)
            if source.streamed:
                check_streamed_input(source.data, "X", min_samples=min_samples)
                validate_data(self, source.data, skip_check_array=True, reset=reset)
                return source
            X = source.data  # an in-memory array in one block: validated as any array
        return validate_data(
            self,
            in_native_byte_order(as_numpy(X, "X")),
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_min_samples=min_samples,
            order="C",
        )

    def _validate_for_inference(self, X):
        """New data for a fitted estimator, as ``fit`` validates it (same features, float32/64)."""
        check_is_fitted(self)
        return self._validate_rows(X, reset=False, min_samples=1)

    def _check_em_hyperparameters(self):
        """Validate the driver's hyperparameters; ValueError or TypeError naming the bad one."""
        check_integer(self, "max_iter", 0)
        check_integer(self, "n_init", 1)
        check_integer(self, "verbose", 0, allow_bool=True)  # scikit-learn accepts verbose=True
        check_integer(self, "verbose_interval", 1)
        check_nonnegative_real(self, "tol")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be a bool, got {self.warm_start!r}")
        try:
            check_random_state(self.random_state)
        except ValueError:
            # scikit-learn's estimators' words (an int out of NumPy's seed range included).
            raise ValueError(
                f"The 'random_state' parameter of {type(self).__name__} must be an int in the range "
                "[0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' or None. "
                f"Got {self.random_state!r} instead."
            ) from None
        resolve_n_threads(self.n_jobs)

    def _fitted_state(self):
        """The fitted attributes (public ``*_`` and the stored training decomposition)."""
        return {
            name: value
            for name, value in vars(self).items()
            if (name.endswith("_") and not name.startswith("__")) or name == "_training_decomposition"
        }

    def _restore_fitted_state(self, state):
        for name in self._fitted_state():
            delattr(self, name)
        for name, value in state.items():
            setattr(self, name, value)

    def _check_warm_start_parameters(self):
        """Refuse a warm start from parameters whose shape the changed hyperparameters contradict."""
        if not (isinstance(self.warm_start, bool | np.bool_) and self.warm_start):
            return
        fitted_with = getattr(self, "_fitted_with_", None)
        if fitted_with is None:
            return
        for name, value in fitted_with.items():
            if name in self._warm_start_parameters and getattr(self, name) != value:
                raise ValueError(
                    f"warm_start=True but {name} changed from {value!r} to {getattr(self, name)!r} "
                    "since the last fit; refit with warm_start=False"
                )

    def _check_warm_start_features(self, n_features):
        """Refuse a warm start on data with another number of features (call after validation)."""
        fitted_with = getattr(self, "_fitted_with_", None)
        if fitted_with is not None and fitted_with["n_features"] != n_features:
            raise ValueError(
                f"warm_start=True but the number of features changed from {fitted_with['n_features']} "
                f"to {n_features} since the last fit; refit with warm_start=False"
            )

    def _fit_em(self, X, sample_weight=None):
        """Run EM with restarts, keep the best run, and return the labels of its final E-step.

        ``sample_weight`` (validated, or None for all ones) is handed to every hook that reads X.
        A run whose parameters X's dtype cannot hold (:meth:`_parameters_lost_to_rounding`) goes
        on in float64 (:meth:`_float64_continuation`) within the same iterations, so that runs are
        compared, and ``max_iter`` counted, as one.
        """
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:
            self._check_warm_start_features(X.shape[1])
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        progress = FitProgress(self.verbose, self.verbose_interval, self.max_iter)
        widened = None  # (X, sample_weight) in float64, once a run has needed them
        best = run = None
        try:
            for init in range(n_init):
                run = None  # a run exists once its initial parameters are complete
                progress.init_begin(init)
                if do_init:
                    self._initialize_parameters(X, random_state, sample_weight)
                run = _EMRun(
                    -np.inf if do_init else self._warm_start_lower_bound(), self._get_parameters(), progress
                )
                progress.iterations_begin()
                run.data = (X, sample_weight)
                if not self._parameters_lost_to_rounding():  # (a start the dtype cannot hold skips it)
                    self._iterate(X, run, sample_weight)
                if self._parameters_lost_to_rounding():
                    if widened is None:
                        widened = self._float64_continuation(X, sample_weight)
                    parameters = self._float64_parameters()
                    self._discard_run_state()  # what the run kept belongs to the narrower dtype
                    self._set_parameters(parameters)
                    run.done = run.done._replace(parameters=parameters)
                    run.converged = False  # whatever the narrower phase's last step said
                    run.data = widened
                    self._iterate(widened[0], run, widened[1])
                run.state = self._run_state()
                progress.init_end(run.converged, run.done.lower_bound)
                if best is None or self._improves_on(run.done.lower_bound, best.done.lower_bound):
                    best = run
            self._set_parameters(best.done.parameters)
            self._store_run(best.done, best.converged)
            self._warn_unconverged()
            self._restore_run_state(best.state)
            # Final E-step with the fitted parameters: labels consistent with predict(X), and the
            # decomposition on the training data, from the same pass.
            self._training_decomposition = None
            stats, labels = self._final_pass(*best.data)
            self._training_decomposition = self._decompose(stats)
        except KeyboardInterrupt as interrupt:
            progress.close()  # leave the terminal on a fresh line before the warning
            if self._keep_interrupted_run(best, run):
                setattr(interrupt, _KEPT_INTERRUPTED_FIT, True)
            raise
        finally:
            progress.close()
        return labels

    def _fit_closed_form(self, X, sample_weight=None):
        """Store a fit whose parameters the model has set in closed form (one exact step, no
        iterations), and return the labels of its final pass.

        The histories then hold that step: ``elbo_history_`` the ELBO of the fitted parameters
        under their exact posteriors, ``entropy_sum_history_`` its entropy sum; ``n_iter_ == 1``.
        """
        self._training_decomposition = None
        stats, labels = self._final_pass(X, sample_weight)
        decomposition = self._decompose(stats)
        done = _Progress(1, stats.elbo, (stats.elbo,), (decomposition.entropy_sum,), self._get_parameters())
        self._store_run(done, converged=True)
        self._training_decomposition = decomposition
        return labels

    def _warm_start_lower_bound(self):
        """The ELBO a warm start's first change is measured from: that of the last iteration's
        E-step (``elbo_history_[-1]``), as the straight fit would measure it. (A model whose
        ``lower_bound_`` describes the returned parameters, as factor analysis's does, would
        otherwise see a change of 0 and stop after one iteration.)"""
        history = getattr(self, "elbo_history_", ())
        return float(history[-1]) if len(history) else -np.inf

    def _iterate(self, X, run, sample_weight=None):
        for n_iter in range(run.done.n_iter + 1, self.max_iter + 1):
            done = run.done
            stats = self._e_step(X, sample_weight=sample_weight)  # q^t from Theta^t: F(q^t, Theta^t)
            try:
                self._m_step(stats)  # Theta^{t+1}
            except BeyondDtype:
                break  # the iteration is not recorded; the run goes on in float64 (see _fit_em)
            entropy_sum = self._decompose(stats).entropy_sum  # S(q^t, Theta^{t+1})
            # One assignment records the iteration: a Ctrl-C anywhere above leaves run.done (the
            # parameters and the histories that describe them) as it was.
            run.done = _Progress(
                n_iter,
                stats.elbo,
                (*done.elbo_history, stats.elbo),
                (*done.entropy_sum_history, entropy_sum),
                self._get_parameters(),
            )
            change = stats.elbo - done.lower_bound
            run.progress.iteration(n_iter, stats.elbo, entropy_sum, change)
            if (
                abs(change) < self._convergence_tolerance()
                and self._search_settled()
                and not self._left_stationary_point()
            ):
                run.converged = True
                break

    def _parameters_lost_to_rounding(self):
        """Whether the last M-step's parameters, stored in the data's dtype, lose more than the fit
        can afford (float32 holding a covariance near its condition limit): the run then stops
        iterating in that dtype, which would only move the parameters by rounding, and goes on in
        float64. Never by default."""
        return False

    def _float64_continuation(self, X, sample_weight):
        """``(X, sample_weight)`` read in float64 for runs that continue in float64 (the model
        says why, once per fit). Only called where :meth:`_parameters_lost_to_rounding` can be
        true."""
        raise NotImplementedError

    def _float64_parameters(self):
        """The parameters a float64 continuation starts from: by default the current ones, widened."""
        return self._parameters_in(np.float64)

    def _warn_unconverged(self):
        """ConvergenceWarning when the fit just stored stopped at ``max_iter``."""
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                # user -> BLAS-limit wrapper -> fit/fit_predict -> state-restoring wrapper -> _fit
                # -> _fit_em -> here
                stacklevel=7,
            )

    def _store_run(self, done, converged):
        self.converged_ = converged
        self.n_iter_ = done.n_iter
        self.lower_bound_ = done.lower_bound
        self.lower_bounds_ = list(done.elbo_history)
        self.elbo_history_ = np.asarray(done.elbo_history, dtype=np.float64)
        self.entropy_sum_history_ = np.asarray(done.entropy_sum_history, dtype=np.float64)
        self._fitted_with_ = {name: getattr(self, name) for name in self._warm_start_parameters}
        self._fitted_with_["n_features"] = self.n_features_in_

    def _keep_interrupted_run(self, best, run):
        """On Ctrl-C keep the better of the best finished run and the interrupted one, each with
        the parameters of its last completed iteration, so no finished work is lost; return False
        when there is nothing to keep (no iteration completed)."""
        if run is not None and run is not best and run.done.n_iter > 0:
            if best is None or run.done.lower_bound > best.done.lower_bound:
                best = run
        if best is None:
            return False
        self._set_parameters(best.done.parameters)
        self._store_run(best.done, converged=False)
        self._training_decomposition = None
        warnings.warn(
            f"{type(self).__name__}.fit was interrupted; the estimator keeps the parameters after "
            f"iteration {best.done.n_iter} (converged_=False).",
            RuntimeWarning,
            stacklevel=7,  # as the ConvergenceWarning, plus _keep_interrupted_run
        )
        return True

    # -- results -----------------------------------------------------------------------------

    @single_threaded_blas
    def entropy_decomposition(self, X=None):
        """ELBO and its entropy decomposition (``docs/theory.rst``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            Data to decompose on. ``None`` returns the decomposition on the training data, taken
            from the final E-step of ``fit`` (no extra pass over the data).

        Returns
        -------
        EntropyDecomposition
            ``elbo`` (F), ``entropy_sum`` (S), ``gap`` (F - S) and the named entropy terms.
        """
        check_is_fitted(self)
        if X is None:
            decomposition = getattr(self, "_training_decomposition", None)
            if decomposition is None:
                raise ValueError(
                    "no training decomposition is stored (the fit was interrupted or max_iter=0 "
                    "was used with warm_start); pass X"
                )
            return decomposition
        return self._decompose(self._e_step(self._validate_for_inference(X), moments=False))


def check_integer(estimator, name, minimum, allow_bool=False):
    """Refuse ``estimator.<name>`` unless it is an integer (not a bool, unless ``allow_bool``)
    of at least ``minimum``; the ValueError names it."""
    value = getattr(estimator, name)
    is_bool = isinstance(value, (bool, np.bool_))
    if is_bool and allow_bool:
        return
    if not isinstance(value, numbers.Integral) or is_bool or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_nonnegative_real(estimator, name):
    """Refuse ``estimator.<name>`` unless it is a finite real number >= 0 (not a bool)."""
    value = getattr(estimator, name)
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


class _Progress(NamedTuple):
    """What a run has completed: ``n_iter`` iterations, their histories, and the parameters after
    them (the last M-step's)."""

    n_iter: int
    lower_bound: float
    elbo_history: tuple
    entropy_sum_history: tuple
    parameters: tuple


class _EMRun:
    """State of one EM run (one initialisation), with the fit's progress report."""

    def __init__(self, lower_bound, parameters, progress):
        self.done = _Progress(0, lower_bound, (), (), parameters)
        self.converged = False
        self.state = None  # the model's _run_state() once the run has finished
        self.data = None  # (X, sample_weight) its last iterations read: the fit's, or widened
        self.progress = progress  # a FitProgress, told of every completed iteration
