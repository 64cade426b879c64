"""The estimator shared by FastPPCA and FastFactorAnalysis: a linear-Gaussian factor model fitted
by EM on the data's mean and a factor of their covariance.

One pass per ``fit`` computes the mean of X and a factor ``L`` of its covariance (:mod:`._scatter`:
D x D for tall data, the N x D centred rows for wide data), reading X block by block (an in-memory
array is one block; a memmap, HDF5 or Zarr array or a RowSource is streamed; a dask array is
reduced on the Dask workers); the model's mean is their
maximum-likelihood value from then on, and every EM iteration works on ``L`` only
(:mod:`._linear_gaussian`), at O(rows(L) D H) whatever the number of rows of X. The histories:
``elbo_history_[t] = F(q^t, Theta^t)``, the mean log-likelihood of the parameters entering
iteration t (the posteriors are exact), and ``entropy_sum_history_[t] = S(q^t, Theta^{t+1})``.
For factor models ``F = S`` holds only at a stationary point (the prior ``N(0, I)`` has no free
parameter), so the gap ``F - S`` measures how far a fit is from one; at a boundary optimum (a
noise variance at its floor) it stays.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import weakref
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastelbo._base import _KEPT_INTERRUPTED_FIT, EMEstimator, check_integer, restores_state_on_error
from fastelbo._dask_backend import DaskRowSource, is_dask_array, map_rows
from fastelbo._row_chunks import row_chunks
from fastelbo._row_source import RowSource
from fastelbo._threads import single_threaded_blas
from fastelbo.entropy import LOG_2PI_E, EntropyDecomposition
from fastelbo.exceptions import warn_heywood_case
from fastelbo.factor._linear_gaussian import (
    LOG_2PI,
    FactorPosterior,
    em_update,
    factor_posterior,
    mean_log_likelihood,
    noise_floor,
    observable_entropy,
    variational_entropy,
)
from fastelbo.factor._scatter import DataScatter, data_scatter, fast_data_scatter

#: The last exact posterior of every fitted estimator, by the estimator's id: ``(a weak reference
#: to the estimator, the parameters it is of, the posterior)`` (see
#: ``LinearGaussianFactorModel._posterior``). Keyed by id, not by the estimator, so that a subclass
#: without a hash (one that defines ``__eq__``) is served too; an entry goes with its estimator.
_POSTERIORS = {}


def _forget_posterior(estimator_id, _reference):
    """Drop an estimator's entry of :data:`_POSTERIORS` when it is collected (before its id can
    be reused)."""
    _POSTERIORS.pop(estimator_id, None)


#: A noise variance below this fraction of its feature's variance (of the mean variance, for a
#: constant feature) makes the fit switch from the fast covariance factor to the exact one: the
#: fast factor's round-off (~1e-16 of the covariance's norm) divided by such a noise would show.
EXACT_FACTOR_BELOW = 1e-6


@dataclass(frozen=True)
class FactorStatistics:
    """What an E-step of a factor model produces: the data's scatter and the exact posterior of
    the current parameters, with the posterior means of the covariance factor's rows, the ELBO
    (the mean log-likelihood) and the posterior entropy."""

    scatter: DataScatter
    posterior: FactorPosterior
    means: np.ndarray
    elbo: float
    variational_entropy: float

    @property
    def n_samples(self):
        return self.scatter.n_samples


class LinearGaussianFactorModel(
    EMEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Base of the linear-Gaussian factor models (not public).

    Subclasses set ``_noise_type`` ('diag' or 'spherical'), implement
    ``_initialize_parameters``, ``_check_model_hyperparameters`` and ``_resolve_n_components``, and store
    the noise as they expose it (:meth:`_noise_from_vector`).
    """

    _warm_start_parameters = ("n_components",)
    _noise_type = "diag"
    # The fit reads X only in the scatter passes (block by block), inference per block: memmaps,
    # HDF5 and Zarr arrays, RowSources and dask arrays are never copied whole into memory.
    _accepts_row_sources = True
    # loglike_ is in the weights' units; the scatter passes divide by the largest weight themselves.
    _outputs_use_weight_ratios_only = False

    # -- fitting -----------------------------------------------------------------------------

    @restores_state_on_error
    def _fit(self, X, sample_weight=None):
        X, sample_weight = self._validate_fit_input(X, sample_weight)
        self._n_components = self._resolve_n_components(*X.shape)
        self._check_data_dependent_parameters(X.shape[1])
        warm = self.warm_start and hasattr(self, "converged_")
        if warm:
            self._check_warm_start_features(X.shape[1])
        self._em_scatter = fast_data_scatter(X, sample_weight, self.n_jobs)
        self._noise_floor = noise_floor(self._em_scatter.variances, self._noise_type)
        try:
            if warm:
                # The mean is fitted in closed form: EM continues from the new data's.
                self.mean_ = self._em_scatter.mean
            if self._set_closed_form_parameters(X, sample_weight):
                self._fit_closed_form(X, sample_weight)
            else:
                try:
                    self._fit_em(X, sample_weight=sample_weight)
                except KeyboardInterrupt as interrupt:
                    if getattr(interrupt, _KEPT_INTERRUPTED_FIT, False):
                        self._describe_kept_iterations(X, sample_weight)
                    raise
            self._finish_fit()
            self._report_boundary()
        finally:
            # The scatter (and its Gram matrix) belong to this fit's data; the estimator keeps none.
            vars(self).pop("_em_scatter", None)
            vars(self).pop("_em_gram", None)
            vars(self).pop("_start_index", None)

    def _floored_features(self):
        """Indices of the features whose noise variance sits at its floor (none for models
        whose noise cannot reach a boundary)."""
        return np.flatnonzero(self._noise_vector() <= self._noise_floor * (1.0 + 1e-9))

    def _report_boundary(self):
        """Warn of a Heywood case (noise variances at their floor) and say in the training
        decomposition what its gap then means."""
        floored = self._floored_features()
        if floored.size == 0:
            return
        if self._noise_type == "diag":
            # Unique variances at the floor: a Heywood case (PPCA's one noise is not unique).
            names = getattr(self, "feature_names_in_", None)
            labels = [names[d] if names is not None else f"x{d}" for d in floored]
            warn_heywood_case(type(self).__name__, labels, self._noise_vector()[floored], features=floored)
        if self._training_decomposition is not None:
            # PPCA's one noise variance is shared by the features: one variance at its floor.
            shared = self._noise_type == "spherical"
            self._training_decomposition = dataclasses.replace(
                self._training_decomposition,
                note=_boundary_note(1 if shared else len(floored), shared, len(floored)),
            )

    def _set_closed_form_parameters(self, X, sample_weight=None):
        """Set the maximum-likelihood parameters of the data X in closed form and return True, or
        return False to fit by EM (the default)."""
        return False

    def _finish_fit(self):
        """Attributes derived after the fit (none by default)."""

    def _describe_kept_iterations(self, X, sample_weight):
        """After a Ctrl-C that kept the completed iterations: the final E-step and the derived
        attributes (loglike_, the rotation, ...) of those parameters, as ``fit(max_iter=n_iter_)``
        has them. Both read the data scatter (D x D), not X, so they take no time to speak of."""
        stats, _ = self._final_pass(X, sample_weight)
        self._training_decomposition = self._decompose(stats)
        self._finish_fit()

    def _check_hyperparameters(self):
        if self.n_components is not None:
            check_integer(self, "n_components", 0)
        self._check_model_hyperparameters()
        self._check_em_hyperparameters()

    def _check_model_hyperparameters(self):
        """Validate the hyperparameters of the subclass's own (ValueError naming the bad one)."""

    def _check_data_dependent_parameters(self, n_features):
        if self._n_components > n_features:
            raise ValueError(
                f"n_components must be <= n_features, got n_components = {self._n_components}, "
                f"n_features = {n_features}"
            )

    # -- inference ---------------------------------------------------------------------------

    @single_threaded_blas
    def transform(self, X):
        """Posterior mean of the latent factors of every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, streamed (memmap, h5py dataset, Zarr array, RowSource: read block by
            block) or a dask array.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            ``E[z | x] = G components diag(noise)^-1 (x - mean_)`` (a lazy dask array, chunked as
            X's rows, for a dask array X).
        """
        X = self._validate_rows_for_inference(X)
        return self._per_row(
            X, (self.components_.shape[0],), functools.partial(_latent_means, self._posterior(), self.mean_)
        )

    @single_threaded_blas
    def score_samples(self, X):
        """Log-likelihood ``log p(x_n)`` of every sample under the fitted model, shape (n_samples,)
        (a lazy dask array for a dask array X)."""
        X = self._validate_rows_for_inference(X)
        return self._per_row(X, (), functools.partial(_log_likelihoods, self._posterior(), self.mean_))

    @single_threaded_blas
    def score(self, X, y=None):
        """Mean log-likelihood of the samples: ``score_samples(X).mean()`` (a float, computed on
        the Dask workers for a dask array X)."""
        log_likelihoods = self.score_samples(X)
        if is_dask_array(log_likelihoods):
            return float(log_likelihoods.mean().compute())
        return float(np.mean(log_likelihoods))

    def _per_row(self, X, trailing, rows_function):
        """``rows_function`` (rows -> per-row results, a pure function of the fitted parameters'
        snapshot) over validated X: on an array in row chunks of a few MiB (its float64
        temporaries, the deviations and residuals, were three copies of X at once); on a streamed
        source block by block, the results concatenated; on a dask array lazily, chunk by chunk on
        the workers (dask-ml's convention: the snapshot, not the estimator, travels)."""
        if isinstance(X, DaskRowSource):
            return map_rows(X, rows_function, trailing, np.float64)
        if isinstance(X, RowSource):
            return np.concatenate([rows_function(rows) for _, _, rows in X.blocks()])
        results = np.empty((X.shape[0], *trailing))
        for start, stop in row_chunks(*X.shape):
            results[start:stop] = rows_function(X[start:stop])
        return results

    def get_covariance(self):
        """Model covariance ``W W^T + diag(noise)``, ``W^T`` the loadings (FastFactorAnalysis's
        ``components_``, FastPPCA's ``loadings_``), shape (n_features, n_features)."""
        check_is_fitted(self)
        loadings = self._loadings()
        return loadings.T @ loadings + np.diag(self._noise_vector())

    def get_precision(self):
        """Model precision (inverse covariance), through the Woodbury identity written so that it
        does not cancel when a noise variance is tiny relative to the loadings."""
        check_is_fitted(self)
        return self._posterior().precision()

    def sample(self, n_samples=1):
        """Draw samples from the fitted model (generator seeded from ``random_state``).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        if isinstance(n_samples, np.ndarray) and n_samples.ndim == 0:
            n_samples = n_samples.item()
        if not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        rng = check_random_state(self.random_state)
        loadings = self._loadings()
        n_components, n_features = loadings.shape
        latents = rng.standard_normal((int(n_samples), n_components))
        noise = rng.standard_normal((int(n_samples), n_features)) * np.sqrt(self._noise_vector())
        return self.mean_ + latents @ loadings + noise

    #: The attribute holding the model's loadings W^T, shape (n_components, n_features): what EM
    #: updates and the posterior reads (FastPPCA keeps PCA's unit axes in components_).
    _loadings_attribute = "components_"

    def _loadings(self):
        """The model's loadings W^T (see :attr:`_loadings_attribute`)."""
        return getattr(self, self._loadings_attribute)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    # -- EM hooks (see fastelbo._base) -------------------------------------------------------

    def _posterior(self):
        """The exact posterior of the current parameters (an SVD of the D x H whitened loadings),
        reused while the parameters are the same numbers: inference on a few rows would otherwise
        spend most of its time on it. The cache lives outside the estimator's ``__dict__``
        (inference must not change it, scikit-learn's ``check_dict_unchanged``) in
        :data:`_POSTERIORS`, and is compared by value, so parameters changed in place are seen."""
        loadings, noise = np.asarray(self._loadings()), np.asarray(self._noise_vector())
        key = (loadings.shape, loadings.dtype.str, loadings.tobytes(), noise.tobytes())
        cached = _POSTERIORS.get(id(self))
        if cached is not None and cached[0]() is self and cached[1] == key:
            return cached[2]
        # From copies: the posterior (and its projection, computed on first use) must not follow
        # later changes of the arrays in place.
        posterior = factor_posterior(loadings.copy(), noise.copy())
        reference = weakref.ref(self, functools.partial(_forget_posterior, id(self)))
        _POSTERIORS[id(self)] = (reference, key, posterior)
        return posterior

    def _statistics(self, scatter):
        posterior = self._posterior()
        means = posterior.means(scatter.factor)
        elbo = mean_log_likelihood(scatter, self.mean_, posterior, means)
        return FactorStatistics(scatter, posterior, means, elbo, variational_entropy(posterior))

    def _e_step(self, X, moments=True, sample_weight=None):
        scatter = getattr(self, "_em_scatter", None) if moments else None
        if scatter is not None and not scatter.exact and self._needs_exact_factor(scatter):
            # From here on, the factor from the rows themselves (the fit's data; same mean).
            scatter = self._em_scatter = data_scatter(X, sample_weight)
        if scatter is None:
            scatter = data_scatter(X, sample_weight, self.n_jobs)
        return self._statistics(scatter)

    def _needs_exact_factor(self, scatter):
        variances = scatter.variances
        reference = np.where(variances > 0, variances, np.mean(variances))
        return bool(np.any(self._noise_vector() < EXACT_FACTOR_BELOW * reference))

    def _m_step(self, statistics):
        loadings, noise = em_update(
            statistics.scatter.factor,
            statistics.posterior,
            statistics.means,
            self._noise_floor,
            self._noise_type,
        )
        setattr(self, self._loadings_attribute, loadings)
        self.noise_variance_ = self._noise_from_vector(noise)

    def _decompose(self, statistics):
        # The posterior's loadings (FastPPCA's components_ are unit axes, its loadings loadings_).
        n_components = statistics.posterior.components.shape[0]
        return EntropyDecomposition(
            elbo=statistics.elbo,
            variational_entropy=statistics.variational_entropy,
            prior_entropy=0.5 * n_components * LOG_2PI_E,
            observable_entropy=observable_entropy(self._noise_vector()),
            data_term=0.0,
            n_samples=statistics.n_samples,
            model=f"{type(self).__name__}(n_components={n_components})",
        )

    def _final_pass(self, X, sample_weight=None):
        return self._e_step(X, sample_weight=sample_weight), None

    def _get_parameters(self):
        return (self.mean_, self._loadings(), self.noise_variance_)

    def _set_parameters(self, parameters):
        self.mean_, loadings, self.noise_variance_ = parameters
        setattr(self, self._loadings_attribute, loadings)

    def _noise_vector(self):
        """The noise variance of every feature, shape (n_features,)."""
        return np.broadcast_to(np.asarray(self.noise_variance_, dtype=np.float64), self.mean_.shape)

    def _noise_from_vector(self, noise):
        """The fitted ``noise_variance_`` from a per-feature vector."""
        return noise

    # -- validation --------------------------------------------------------------------------

    def _validate_for_inference(self, X):
        # Arrays are computed on in float64; a row source's blocks are converted as they are read.
        X = self._validate_rows_for_inference(X)
        return X if isinstance(X, RowSource) else X.astype(np.float64, copy=False)

    def _validate_rows_for_inference(self, X):
        """New data as :meth:`_validate_for_inference` gives them, but float32 arrays stay float32:
        for the per-row functions of :meth:`_per_row`, which convert one chunk at a time (a whole
        float64 copy of a float32 X was twice its size)."""
        return super()._validate_for_inference(X)


def _boundary_note(n_floored, shared=False, n_features=None):
    """The training decomposition's note of a fit with ``n_floored`` noise variances at their
    floor; ``shared``: the one noise variance of all ``n_features`` features (PPCA)."""
    what = (
        f"the noise variance (one, shared by the {n_features} features) at its floor"
        if shared
        else f"{n_floored} noise variance(s) at their floor"
    )
    return (
        f"{what} (a boundary of the parameter space): the fit is a boundary optimum, not a "
        "stationary point, and the gap F - S measures the pull of the boundary, not unfinished "
        "convergence"
    )


def _latent_means(posterior, mean, rows):
    """``E[z | x]`` of every row (in float64): one product with the posterior's projection."""
    return (rows.astype(np.float64, copy=False) - mean) @ posterior.projection.T


def _log_likelihoods(posterior, mean, rows):
    """``log p(x)`` of every row (in float64)."""
    # x^T C^-1 x as a sum of non-negative terms: O(D H) per sample, no D x D inverse, and no
    # cancellation when a noise variance is tiny relative to the loadings.
    mahalanobis = posterior.mahalanobis(rows.astype(np.float64, copy=False) - mean)
    return -0.5 * (mahalanobis + posterior.log_det_model_covariance + mean.shape[0] * LOG_2PI)
