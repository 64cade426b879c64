"""The scikit-learn surface shared by the mixture estimators (FastGMM, FastMFA).

A mixture's kernel pass returns the statistics of X (with ``sum_log_norm``) and per-row outputs
(``log_norm``, ``responsibilities``, ``labels``); :class:`MixtureEstimator` builds ``fit_predict``,
``score_samples``, ``score``, ``predict``, ``predict_proba``, ``bic``, ``aic`` and ``sample`` on it,
and the fit around :meth:`~fastelbo._base.EMEstimator._fit_em`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastelbo._base import EMEstimator, restores_state_on_error
from fastelbo._dask_backend import DaskRowSource, map_rows
from fastelbo._threads import single_threaded_blas
from fastelbo._validation import check_sample_count


class MixtureEstimator(EMEstimator):
    """Base of the mixture estimators (not public).

    Besides the EM hooks, a subclass implements ``_pass(X, moments, log_norm=False,
    responsibilities=False, labels=False, sample_weight=None)`` (one kernel pass: statistics and
    per-row outputs), ``_n_parameters()`` (for :meth:`bic` and :meth:`aic`) and
    ``_sample_components(rng, counts)`` (``counts[c]`` draws from component ``c``, stacked in order),
    and stores ``weights_``.
    """

    #: Whether :meth:`sample` refuses ``n_samples=True`` (scikit-learn's mixtures accept it as 1).
    _sample_rejects_bool = False

    # -- fitting -----------------------------------------------------------------------------

    @single_threaded_blas
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of every training point.

        Parameters
        ----------
        X, y, sample_weight
            As in :meth:`fit` (training data, ignored, row weights).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels of the training rows (zero-weight rows included).
        """
        return self._fit(X, sample_weight)

    @restores_state_on_error
    def _fit(self, X, sample_weight=None):
        X, sample_weight = self._validate_fit_input(X, sample_weight)
        n_rows = X.shape[0] if sample_weight is None else int(np.count_nonzero(sample_weight))
        if n_rows < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {n_rows}"
                + ("" if sample_weight is None else " (rows with a non-zero sample_weight)")
            )
        self._check_initial_parameters(X.shape[1])
        if self.warm_start and hasattr(self, "converged_") and not self._cannot_hold_in(X.dtype):
            # Continue in the new data's precision (parameters live in the input dtype), unless
            # that dtype cannot hold the parameters: the run then goes on in float64 at once.
            self._set_parameters(self._parameters_in(X.dtype))
        try:
            labels = self._fit_em(X, sample_weight=sample_weight)
            self._warn_degenerate_components()
        finally:
            self._discard_run_state()
        return labels

    def _cannot_hold_in(self, dtype):
        """Whether a warm start on data of ``dtype`` cannot hold the fitted parameters (the model
        then arranges for its run to go on in float64); never by default."""
        return False

    def _parameters_in(self, dtype):
        """The fitted parameters (a :meth:`_get_parameters` snapshot) rounded to ``dtype``, for a
        warm start on data of that dtype."""
        return tuple(p.astype(dtype) for p in self._get_parameters())

    def _check_initial_parameters(self, n_features):
        """Validate user-given initial parameters against the data's features (none by default)."""

    def _warn_degenerate_components(self):
        """Warn about fitted components the model considers degenerate (none by default).

        Called by ``_fit`` itself, so a warning's stacklevel is 6: user -> BLAS-limit wrapper ->
        fit/fit_predict -> state-restoring wrapper -> ``_fit`` -> here.
        """

    def _discard_run_state(self):
        """Drop what an EM run kept about its training data (nothing by default); runs after every
        fit, failed or not."""

    # -- inference ---------------------------------------------------------------------------

    def _inference_pass(self, X, **outputs):
        """A pass without moments on new data."""
        return self._pass(X, moments=False, **outputs)

    def _per_row(self, X, output, trailing=()):
        """A per-row ``output`` of an inference pass (``"log_norm"``, ``"labels"`` or
        ``"responsibilities"``) over validated X as a lazy dask array, computed chunk by chunk on
        the workers (dask-ml's convention), for a dask array X; None for other inputs."""
        if not isinstance(X, DaskRowSource):
            return None
        dtype = np.int64 if output == "labels" else np.result_type(X.dtype, self.means_.dtype)
        return map_rows(X, self._row_outputs(X.dtype, output), trailing, dtype)

    def _row_outputs(self, dtype, output):
        """A :class:`~fastelbo._mixture_pass.RowOutputs`: the per-row ``output`` of an inference
        pass over a block of rows of ``dtype``, a pure function of the fitted parameters' snapshot."""
        raise NotImplementedError

    @single_threaded_blas
    def score_samples(self, X):
        """Log-likelihood ``log p(x_n)`` of every sample, shape (n_samples,) (a dask array for a
        dask array X)."""
        X = self._validate_for_inference(X)
        lazy = self._per_row(X, "log_norm")
        if lazy is not None:
            return lazy
        _, out = self._inference_pass(X, log_norm=True)
        return out["log_norm"]

    @single_threaded_blas
    def score(self, X, y=None):
        """Mean log-likelihood of X: ``score_samples(X).mean()``, as scikit-learn defines it (so in
        float32 for float32 input)."""
        return float(np.mean(self.score_samples(X)))

    @single_threaded_blas
    def predict(self, X):
        """Most probable component of every sample, shape (n_samples,) (a dask array for a dask
        array X)."""
        X = self._validate_for_inference(X)
        lazy = self._per_row(X, "labels")
        if lazy is not None:
            return lazy
        _, out = self._inference_pass(X, labels=True)
        return out["labels"]

    @single_threaded_blas
    def predict_proba(self, X):
        """Posterior probability of every component for every sample, shape (n_samples, K) (a
        dask array for a dask array X)."""
        X = self._validate_for_inference(X)
        lazy = self._per_row(X, "responsibilities", (len(self.weights_),))
        if lazy is not None:
            return lazy
        _, out = self._inference_pass(X, responsibilities=True)
        return out["responsibilities"]

    def sample(self, n_samples=1):
        """Draw samples from the fitted model, with scikit-learn's generator use (seeded from
        ``random_state``).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples. Like scikit-learn, a float is accepted and truncated (``2.0`` and
            ``2.5`` draw 2 samples); a value below 1 raises ValueError.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The samples, grouped by component.
        y : ndarray of shape (n_samples,)
            Their component labels.
        """
        check_is_fitted(self)
        n_samples = check_sample_count(n_samples, allow_bool=not self._sample_rejects_bool)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_.astype(np.float64))
        X = self._sample_components(rng, counts)
        y = np.concatenate([np.full(count, c, dtype=int) for c, count in enumerate(counts)])
        return X, y

    @single_threaded_blas
    def bic(self, X):
        """Bayesian information criterion of X (lower is better)."""
        X = self._validate_for_inference(X)
        return self._criteria(self._inference_pass(X)[0].sum_log_norm, X.shape[0])[0]

    @single_threaded_blas
    def aic(self, X):
        """Akaike information criterion of X (lower is better)."""
        X = self._validate_for_inference(X)
        return self._criteria(self._inference_pass(X)[0].sum_log_norm, X.shape[0])[1]

    @single_threaded_blas
    def _labels_and_criteria(self, X):
        """``(predict(X), bic(X), aic(X))`` from one pass over X."""
        X = self._validate_for_inference(X)
        stats, out = self._inference_pass(X, labels=True)
        return (out["labels"], *self._criteria(stats.sum_log_norm, X.shape[0]))

    def _criteria(self, sum_log_norm, n_samples):
        """``(BIC, AIC)`` of data whose total log-likelihood is ``sum_log_norm``."""
        return (
            -2 * sum_log_norm + self._n_parameters() * np.log(n_samples),
            -2 * sum_log_norm + 2 * self._n_parameters(),
        )
