"""The EM driver shared by every fastelbo estimator.

It owns what does not depend on the model: ``n_init`` restarts, ``warm_start``, convergence on the
change of the ELBO, the ELBO and entropy-sum histories, verbose progress, and keeping the work done
when a fit is interrupted with Ctrl-C. A model plugs in through five hooks:

``_initialize_parameters(X, random_state)``  set the initial parameters
``_e_step(X)``                               one statistics pass with the current parameters;
                                             returns statistics with ``.elbo = F(q, Theta)``
``_m_step(stats)``                           set the parameters maximising F for those statistics
``_decompose(stats)``                        :class:`~fastelbo.EntropyDecomposition` of the current
                                             parameters under the pass's posteriors
``_final_pass(X)``                           (statistics, labels) of the fitted parameters
``_get_parameters() / _set_parameters(p)``   snapshot and restore the fitted parameters

The hooks that read X (``_initialize_parameters``, ``_e_step``, ``_final_pass``) also take the
fit's ``sample_weight`` (None: every row weighs 1).

A fit interrupted before any EM iteration has completed leaves the estimator as it was before
``fit``; interrupted later, it keeps the parameters of the last completed iteration.
"""

from __future__ import annotations

import warnings
from time import perf_counter

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastelbo._threads import single_threaded_blas


class EMEstimatorMixin:
    """EM loop over the model hooks (see module docstring)."""

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

    def _fit_em(self, X, previous_state, sample_weight=None):
        """Run EM with restarts, keep the best run, and return the labels of its final E-step.

        ``previous_state`` (from :meth:`_fitted_state` before validation) is restored if the fit
        is interrupted before any iteration completes. ``sample_weight`` (validated, or None for
        all ones) is handed to every hook that reads X.
        """
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        best = None
        for init in range(n_init):
            run = _EMRun(-np.inf if do_init else self.lower_bound_)
            self._verbose_init_begin(init)
            try:
                if do_init:
                    self._initialize_parameters(X, random_state, sample_weight)
                self._iterate(X, run, sample_weight)
            except KeyboardInterrupt:
                if best is not None or run.n_iter > 0:
                    self._keep_interrupted_run(best, run)
                else:
                    self._restore_fitted_state(previous_state)
                raise
            self._verbose_init_end(run)
            if best is None or run.lower_bound > best.lower_bound:
                run.parameters = self._get_parameters()
                best = run
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=5,  # user -> BLAS-limit wrapper -> fit/fit_predict -> _fit -> _fit_em
            )
        self._set_parameters(best.parameters)
        self._store_run(best)
        # Final E-step with the fitted parameters: labels consistent with predict(X), and the
        # decomposition on the training data, from the same pass.
        self._training_decomposition = None
        stats, labels = self._final_pass(X, sample_weight)
        self._training_decomposition = self._decompose(stats)
        return labels

    def _iterate(self, X, run, sample_weight=None):
        for n_iter in range(1, self.max_iter + 1):
            previous = run.lower_bound
            stats = self._e_step(X, sample_weight=sample_weight)  # q^t from Theta^t: F(q^t, Theta^t)
            self._m_step(stats)  # Theta^{t+1}
            run.n_iter = n_iter
            run.lower_bound = stats.elbo
            run.elbo_history.append(stats.elbo)
            run.entropy_sum_history.append(self._decompose(stats).entropy_sum)  # S(q^t, Theta^{t+1})
            change = run.lower_bound - previous
            self._verbose_iteration(n_iter, change, run)
            if abs(change) < self.tol:
                run.converged = True
                break

    def _store_run(self, run):
        self.converged_ = run.converged
        self.n_iter_ = run.n_iter
        self.lower_bound_ = run.lower_bound
        self.lower_bounds_ = list(run.elbo_history)
        self.elbo_history_ = np.asarray(run.elbo_history, dtype=np.float64)
        self.entropy_sum_history_ = np.asarray(run.entropy_sum_history, dtype=np.float64)

    def _keep_interrupted_run(self, best, run):
        """On Ctrl-C keep the better of the best finished run and the interrupted one (whose
        parameters are those of its last completed M-step), so no finished work is lost."""
        if best is not None and best.lower_bound >= run.lower_bound:
            run = best
        else:
            run.parameters = self._get_parameters()
        self._set_parameters(run.parameters)
        run.converged = False
        self._store_run(run)
        self._training_decomposition = None
        warnings.warn(
            f"{type(self).__name__}.fit was interrupted; the estimator keeps the parameters after "
            f"iteration {run.n_iter} (converged_=False).",
            RuntimeWarning,
            stacklevel=6,
        )

    # -- results -----------------------------------------------------------------------------

    @single_threaded_blas
    def entropy_decomposition(self, X=None):
        """ELBO and its entropy decomposition (``shared/THEORY.md``).

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

    # -- progress ----------------------------------------------------------------------------

    def _verbose_init_begin(self, init):
        if self.verbose >= 1:
            print(f"Initialization {init}")

    def _verbose_iteration(self, n_iter, change, run):
        if n_iter % self.verbose_interval != 0:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
        elif self.verbose >= 2:
            now = perf_counter()
            print(
                f"  Iteration {n_iter}\t time lapse {now - run.lap_start:.5f}s\t "
                f"ll change {change:.5f}\t elbo {run.lower_bound:.6f}\t "
                f"entropy sum {run.entropy_sum_history[-1]:.6f}"
            )
            run.lap_start = now

    def _verbose_init_end(self, run):
        if self.verbose == 1:
            print(f"Initialization converged: {run.converged}")
        elif self.verbose >= 2:
            print(
                f"Initialization converged: {run.converged}\t time lapse "
                f"{perf_counter() - run.start:.5f}s\t lower bound {run.lower_bound:.5f}"
            )


class _EMRun:
    """State of one EM run (one initialisation)."""

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound
        self.n_iter = 0
        self.converged = False
        self.elbo_history = []
        self.entropy_sum_history = []
        self.parameters = None
        self.start = self.lap_start = perf_counter()
