"""FastMFA: mixtures of factor analysers (and of probabilistic PCA) fitted by EM, with the E-step in
the blocked C++ kernel and the entropy decomposition of the ELBO: at convergence the ELBO equals
``<H[q_n(c)]> + sum_c qbar_c H[N(m_nc, Sigma_c)] - H[pi] - H/2 log(2 pi e)
- sum_c qbar_c (D/2 log(2 pi e) + 1/2 sum_d log psi_cd)`` (Lücke & Warnken, arXiv:2209.03077)."""

from __future__ import annotations

import functools
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from fastelbo._base import check_integer
from fastelbo._block_reduction import reduce_blocks
from fastelbo._mixture_estimator import MixtureEstimator
from fastelbo._mixture_pass import MixturePassRequest, RowOutputs
from fastelbo._progress import document_progress_parameters
from fastelbo._row_chunks import row_chunks
from fastelbo._row_source import RowSource, initialisation_rows, widened_to_float64
from fastelbo._threads import resolve_n_threads, single_threaded_blas
from fastelbo._validation import SMALLEST_FIT_VARIANCE
from fastelbo.entropy import LOG_2PI_E, EntropyDecomposition, categorical_entropy
from fastelbo.exceptions import DegenerateComponentWarning, Float32RangeWarning, warn_heywood_case
from fastelbo.factor._mfa_mstep import initial_parameters, mfa_m_step, noise_variance_floor
from fastelbo.factor._mfa_parameters import (
    half_log_det_marginal_covariances,
    half_log_det_noise,
    half_log_det_posterior_covariances,
    marginal_covariances,
    n_parameters,
)
from fastelbo.factor._mfa_pass import (
    FactorAnalyserPassParameters,
    column_scale,
    factor_analyser_block_pass,
)
from fastelbo.factor._scatter import check_variances_finite
from fastelbo.mixture._initialization import (
    INIT_PARAMS,
    column_mean_and_variance,
    initial_responsibilities,
    initial_statistics,
)

NOISE_TYPES = ("diag", "spherical")
DECOMPOSITION_FORMS = ("latent", "collapsed")

# float32 data are fitted in float32 only while their deviations from the column means stay below
# FLOAT32_LARGEST_DEVIATION (their squares, summed over a block of rows, must not overflow), every
# noise floor stays above FLOAT32_SMALLEST_FLOOR (a normal float32 whose inverse is finite, with
# room for the sample weights) and reg_covar is at least FLOAT32_SMALLEST_REG_COVAR (a noise of
# standard deviation sqrt(reg_covar) times its feature's is then resolved by float32's 6e-8 to
# about 1e-3 of itself); otherwise in float64 (Float32RangeWarning).
FLOAT32_LARGEST_DEVIATION = 2.0**60
FLOAT32_SMALLEST_FLOOR = SMALLEST_FIT_VARIANCE[np.dtype(np.float32)]
FLOAT32_SMALLEST_REG_COVAR = 1e-8
# float64 fits need every noise floor at or above FLOAT64_SMALLEST_FLOOR (see SMALLEST_FIT_VARIANCE).
FLOAT64_SMALLEST_FLOOR = SMALLEST_FIT_VARIANCE[np.dtype(np.float64)]

HEYWOOD_NOTE = (
    "Heywood case: noise variances sit at their floor, a boundary of the parameter space where the "
    "fit is not a stationary point; the gap F - S measures the pull of that boundary, not "
    "unfinished convergence"
)


@document_progress_parameters()
class FastMFA(MixtureEstimator, DensityMixin, BaseEstimator):
    """Mixture of factor analysers fitted by EM in C++, with the ELBO's entropy decomposition.

    Component ``c`` (weight ``pi_c``) generates ``x = W_c z + mu_c + eps`` with factors
    ``z ~ N(0, I_H)`` and noise ``eps ~ N(0, Psi_c)``: a Gaussian with covariance
    ``W_c W_c^T + Psi_c``, ``O(D H)`` parameters instead of ``O(D^2)``. ``noise='diag'`` is the
    mixture of factor analysers (Ghahramani & Hinton), ``noise='spherical'`` (``Psi_c = sigma_c^2 I``)
    the mixture of probabilistic PCA (Tipping & Bishop). The E-step evaluates the log-joints through
    the Woodbury identity at ``O(D H)`` per point and component; the M-step solves the joint
    (H+1)-dimensional system for loadings and means in closed form.

    Unlike Gaussian mixtures, the ELBO equals its entropy sum only at convergence: the gap
    ``entropy_decomposition().gap`` is a convergence diagnostic. When noise variances end at their
    floor (a Heywood case, typically a duplicated or collinear column), the fit is a boundary
    optimum: a :class:`~fastelbo.exceptions.HeywoodCaseWarning` names the components, features and
    variances, and the decomposition's ``note`` says that the gap then measures the pull of the
    boundary.

    Scale. The noise floors are relative to each feature's variance (see ``reg_covar``), and
    sample weights count only relative to one another, so rescaling a feature rescales its
    parameters (the log-likelihood of ``X * s`` is that of ``X`` minus ``D log s``) and multiplying
    all sample weights by a constant changes nothing: points are counted in units of the smallest
    positive weight (integer weights count like repeated rows). This holds across float64's range:
    a fit whose noise floors (``reg_covar`` times a variance) fall below ``2**-996`` (about
    ``1.5e-300``), where products of noise variances would leave float64's normal numbers, or
    whose variances overflow, raises a ValueError naming X.

    Precision. float32 input is computed in float32 (parameters are stored in the input's dtype)
    when float32 can hold it: deviations from the column means of at most ``2**60``, noise floors
    of at least ``2**-100`` and ``reg_covar >= 1e-8`` (float32 then resolves the smallest noise
    standard deviation, ``1e-4`` of its feature's, to about ``1e-3`` of itself). Otherwise it is
    fitted in float64, with a :class:`~fastelbo.exceptions.Float32RangeWarning`, and the
    parameters are float64.
    Components are evaluated centred on their means and whitened by their noise, and their
    statistics taken of residuals on the noise's scale, so that float32 stays accurate for
    components far from the origin or elongated (factor variances many times the noise). Any
    other input is computed in float64. A log-likelihood that is not finite raises ValueError
    (never a NaN result).

    Data out of memory. X may also be read in blocks, never copied whole into memory: a
    ``numpy.memmap``, an ``h5py.Dataset``, a ``zarr.Array``, a :class:`~fastelbo.RowSource` (to
    choose the block size), or a ``dask.array`` (one block per row chunk, each pass run on the
    active Dask scheduler; ``score_samples``, ``predict`` and ``predict_proba`` then return lazy
    dask arrays). The blocks' statistics merge in a fixed order, so such a fit agrees with the
    in-memory fit to round-off and is bitwise reproducible for a given blocking. It starts from a
    sample of about ``2**18`` rows in runs (every row when there are at most ``2**18``); float32
    blocks that float32 cannot hold (see Precision) are widened to float64 one at a time.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    n_factors : int, default=1
        Number of latent factors ``H`` of every component, at most the number of features.
    noise : {'diag', 'spherical'}, default='diag'
        Noise covariance of a component: diagonal (factor analysers) or spherical (PPCA).
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood (the ELBO).
    reg_covar : float, default=1e-6
        Relative floor of the noise variances (> 0): feature ``d``'s noise variance is at least
        ``reg_covar * var_d``, ``var_d`` the (weighted) variance of feature ``d`` in the training
        data (for a constant feature, the mean variance of the others; spherical noise: ``reg_covar``
        times the mean variance). On standardised data this is the absolute floor ``reg_covar``. A noise
        variance that reaches its floor is a Heywood case (see above).
    max_iter : int, default=100
        Number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best by final lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'afkmc2', 'random', 'random_from_data'}, default='kmeans'
        Initial responsibilities, as :class:`~fastelbo.FastGMM` chooses them (the k-means ones on
        the distinct rows in an order fixed by their values, so the start depends neither on the
        row order nor on integer weights vs repeated rows); every component then starts as the
        maximum-likelihood PPCA of its initial cluster.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation (and of :meth:`sample`).
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then ignored). On data
        far from them (a shift of many noise standard deviations), the broadest component takes
        every row and the others keep their parameters, and EM explains the shift with a common
        latent offset that it unlearns slowly (after 5,000 iterations a warm start on image
        patches plus 1e6 was still 108 nats per sample below a fresh fit): fit such data afresh.
    {progress_parameters}
    n_jobs : int, default=None
        Threads of the C++ kernels (``None``: the OpenMP default; ``-1``: all CPUs). Results are
        bitwise identical for any value.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    components_ : ndarray of shape (n_components, n_factors, n_features)
        Each component's loadings ``W_c^T``, rows as in :class:`sklearn.decomposition.FactorAnalysis`.
    noise_variance_ : ndarray of shape (n_components, n_features) or (n_components,)
        Noise variances: per feature (``'diag'``) or one per component (``'spherical'``).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step of the best run.
    lower_bounds_ : list of float
    elbo_history_ : ndarray
        ``F(q^t, Theta^t)`` per iteration (the mean log-likelihood; it never decreases).
    entropy_sum_history_ : ndarray
        ``S(q^t, Theta^{t+1})`` per iteration; equal to the ELBO only at convergence.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from fastelbo import FastMFA
    >>> rng = np.random.RandomState(0)
    >>> planes = [rng.randn(500, 2) @ rng.randn(2, 6), rng.randn(500, 2) @ rng.randn(2, 6) + 8]
    >>> X = np.vstack(planes) + 0.1 * rng.randn(1000, 6)
    >>> mfa = FastMFA(n_components=2, n_factors=2, tol=1e-8, random_state=0).fit(X)
    >>> d = mfa.entropy_decomposition()
    >>> abs(d.gap) < 1e-3  # F = S at convergence; the gap shrinks as EM approaches it
    True
    """

    _warm_start_parameters = ("n_components", "n_factors", "noise")
    _accepts_row_sources = True
    _sample_rejects_bool = True

    def __init__(
        self,
        n_components=1,
        *,
        n_factors=1,
        noise="diag",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.n_factors = n_factors
        self.noise = noise
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    # -- fitting -----------------------------------------------------------------------------

    def _validate_fit_input(self, X, sample_weight):
        """Validate; refuse more factors than features; move float32 data that float32 cannot hold
        to float64; set the noise floors and the unit in which sample weights count points."""
        X, sample_weight = super()._validate_fit_input(X, sample_weight)
        if self.n_factors > X.shape[1]:
            raise ValueError(
                f"n_factors={self.n_factors} must be at most n_features={X.shape[1]}: a component "
                "cannot have more factors than the data have features"
            )
        # Counts of points (the n_factors + 2 a cluster needs) are in units of the smallest positive
        # weight: integer weights count like repeated rows, and scaling every weight changes nothing.
        self._weight_unit_ = 1.0
        if sample_weight is not None and np.any(sample_weight > 0):
            self._weight_unit_ = float(np.min(sample_weight[sample_weight > 0]))
        # One pass over the blocks of a streamed X (the means), one about the means (variances,
        # largest deviation): X is never read whole into memory.
        _, variance, deviation = column_scale(_as_row_source(X), sample_weight)
        check_variances_finite(variance)
        floor = noise_variance_floor(variance, self.reg_covar, self.noise)
        _check_floors_in_range(floor, self.reg_covar)
        if X.dtype == np.float32:
            if not (
                deviation <= FLOAT32_LARGEST_DEVIATION
                and floor.min() >= FLOAT32_SMALLEST_FLOOR
                and self.reg_covar >= FLOAT32_SMALLEST_REG_COVAR
            ):
                warnings.warn(
                    f"FastMFA: float32 cannot hold X at this precision (largest deviation from a "
                    f"column mean {deviation:.3g}, at most {FLOAT32_LARGEST_DEVIATION:.3g}; smallest "
                    f"noise floor {floor.min():.3g}, at least {FLOAT32_SMALLEST_FLOOR:.3g}; "
                    f"reg_covar={self.reg_covar:g}, at least {FLOAT32_SMALLEST_REG_COVAR:g}); "
                    "fitting in float64, the parameters are float64.",
                    Float32RangeWarning,
                    # user -> BLAS-limit wrapper -> fit -> state-restoring wrapper -> _fit -> here
                    stacklevel=6,
                )
                X = widened_to_float64(X)
                sample_weight = None if sample_weight is None else sample_weight.astype(np.float64)
        self._noise_floor_ = floor
        return X, sample_weight

    def _at_floor(self):
        """(K, D) mask of the noise variances at their floor (False before a fit set floors)."""
        noise = self._noise_variance_per_feature()
        floor = getattr(self, "_noise_floor_", None)
        if floor is None:
            return np.zeros(noise.shape, dtype=bool)
        # The stored variance is the floor rounded to the parameters' dtype.
        slack = 1 + 4 * np.finfo(noise.dtype).eps
        return noise.astype(np.float64) <= floor * slack

    def _warn_degenerate_components(self):
        """Name the components that sit on fewer than ``n_factors + 2`` points (by the final
        E-step), and, in one HeywoodCaseWarning, the noise variances at their floor."""
        counts = self._training_statistics_.nk / getattr(self, "_weight_unit_", 1.0)
        messages = []
        for c in range(self.n_components):
            # Relative slack: responsibilities of 1 - 1e-12 on H + 2 rows still count as H + 2 points.
            if counts[c] < (self.n_factors + 2) * (1 - 1e-9):
                messages.append(
                    f"component {c}: {counts[c]:.4g} points (fewer than n_factors + 2 = {self.n_factors + 2})"
                )
        if messages:
            warnings.warn(
                "FastMFA found degenerate components: "
                + "; ".join(messages)
                + ". Their noise variances tend to their floor and the entropy gap of such a fit "
                "need not vanish; consider fewer components or factors.",
                DegenerateComponentWarning,
                # user -> BLAS-limit wrapper -> fit -> state-restoring wrapper -> _fit -> here
                stacklevel=6,
            )
        at_floor = self._at_floor()
        if not at_floor.any():
            return
        # The floors scale with each feature's variance over all of X, which between-cluster spread
        # can make far larger than the noise within a cluster: then every feature of a component sits
        # at its floor (a collinear column floors one or two).
        remedy = ""
        if self.n_components > 1 and at_floor.all(axis=1).any():
            remedy = (
                f"The floors are reg_covar={self.reg_covar:g} times the features' variances over all "
                "the data (spherical noise: their mean): where clusters lie far apart for their "
                "spread, a smaller reg_covar lowers them."
            )
        if self.noise == "spherical":  # one variance per component, shared by every feature
            floored = np.flatnonzero(at_floor[:, 0])
            labels = [f"component {c} (spherical, all features)" for c in floored]
            warn_heywood_case(
                "FastMFA", labels, self.noise_variance_[floored], components=floored, remedy=remedy
            )
            return
        names = getattr(self, "feature_names_in_", None)
        noise = self._noise_variance_per_feature()
        components, features = np.nonzero(at_floor)
        labels = [
            f"component {c} feature {names[d] if names is not None else d}"
            for c, d in zip(components, features, strict=True)
        ]
        warn_heywood_case(
            "FastMFA",
            labels,
            noise[components, features],
            features=features,
            components=components,
            remedy=remedy,
        )

    # -- inference ---------------------------------------------------------------------------

    def _sample_components(self, rng, counts):
        noise = self._noise_variance_per_feature().astype(np.float64)
        blocks = []
        for c, count in enumerate(counts):
            factors = rng.standard_normal(size=(count, self.n_factors))
            residual = rng.standard_normal(size=(count, self.means_.shape[1])) * np.sqrt(noise[c])
            blocks.append(self.means_[c] + factors @ self.components_[c].astype(np.float64) + residual)
        return np.vstack(blocks)

    def _n_parameters(self):
        return n_parameters(self.n_components, self.n_factors, self.means_.shape[1], self.noise)

    def get_covariances(self):
        """Covariance ``W_c W_c^T + Psi_c`` of every component, shape (n_components, D, D)."""
        check_is_fitted(self)
        return marginal_covariances(self.components_, self._noise_variance_per_feature())

    @single_threaded_blas
    def entropy_decomposition(self, X=None, form="latent"):
        """ELBO and its entropy decomposition (see the module docstring).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            Data to decompose on; ``None``: the training data (from the final E-step of ``fit``).
        form : {'latent', 'collapsed'}, default='latent'
            ``'latent'``: posteriors ``q_n(c, z)`` over components and factors, with the posterior
            entropy ``<H[q_n(c)]> + sum_c qbar_c H[N(m_nc, Sigma_c)]``, the prior entropy
            ``H[pi] + H/2 log(2 pi e)`` and the observable entropy of ``N(W_c z + mu_c, Psi_c)``.
            ``'collapsed'``: the factors integrated out, a mixture of Gaussians with covariances
            ``W_c W_c^T + Psi_c``. The two entropy sums are equal.

        Returns
        -------
        EntropyDecomposition
            ``elbo`` (F), ``entropy_sum`` (S), ``gap`` (F - S, zero only at convergence) and the
            named entropy terms.
        """
        if form not in DECOMPOSITION_FORMS:
            raise ValueError(f"form must be one of {DECOMPOSITION_FORMS}, got {form!r}")
        if form == "latent":
            return super().entropy_decomposition(X)
        check_is_fitted(self)
        if X is None:
            stats = getattr(self, "_training_statistics_", None)
            if stats is None or getattr(self, "_training_decomposition", None) is None:
                raise ValueError("no training decomposition is stored (the fit was interrupted); pass X")
        else:
            stats = self._e_step(self._validate_for_inference(X), moments=False)
        return self._decompose(stats, form="collapsed")

    # -- EM hooks (see fastelbo._base) -------------------------------------------------------

    def _pass(self, X, moments, log_norm=False, responsibilities=False, labels=False, sample_weight=None):
        """One kernel pass with the current parameters; returns (statistics, per-row outputs).

        ``X`` is an in-memory array or a :class:`~fastelbo._row_source.RowSource`, read block by
        block (on the workers for a dask array); the blocks' statistics merge into those of X.
        Moments are taken about the current means (the statistics' reference points).
        """
        source = _as_row_source(X)
        dtype = np.result_type(source.dtype, self.means_.dtype)
        parameters = self._pass_parameters(dtype, moments)
        request = MixturePassRequest(log_norm, responsibilities, labels)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        stats, out, _ = reduce_blocks(
            source,
            functools.partial(factor_analyser_block_pass, parameters, request),
            sample_weight,
            None,  # no per-row state
            request.outputs(len(self.weights_), dtype),
        )
        self._check_finite(stats, out, source, dtype)
        return stats, out

    def _pass_parameters(self, dtype, moments):
        """The parameter snapshot of a pass computing in ``dtype``."""
        return FactorAnalyserPassParameters.of(
            self.weights_,
            self.means_,
            self.components_,
            self._noise_variance_per_feature(),
            dtype,
            moments,
            resolve_n_threads(self.n_jobs),
        )

    def _row_outputs(self, dtype, output):
        dtype = np.result_type(dtype, self.means_.dtype)
        request = MixturePassRequest(**{output: True})
        return RowOutputs(
            functools.partial(factor_analyser_block_pass, self._pass_parameters(dtype, False), request),
            output,
            functools.partial(_check_block_finite, dtype),
        )

    def _e_step(self, X, moments=True, sample_weight=None):
        return self._pass(X, moments=moments, sample_weight=sample_weight)[0]

    @staticmethod
    def _check_finite(stats, out, source, dtype):
        """Refuse a pass whose log-likelihoods are not finite (X or the parameters out of the
        working precision's range), so that no NaN reaches a result.

        Per-row log-likelihoods are checked when they are in memory: those of a dask array are
        lazy, and ``score_samples`` computes them with in-memory passes over its chunks, which
        check them."""
        log_norm = out.get("log_norm")
        if np.isfinite(stats.sum_log_norm) and (
            not isinstance(log_norm, np.ndarray) or np.all(np.isfinite(log_norm))
        ):
            return
        largest = source.max_abs()  # another pass over X, only on the way to this error
        raise ValueError(
            f"FastMFA: the log-likelihood of X is not finite in {np.dtype(dtype).name} "
            f"(largest |X| = {largest:.3g}): "
            "X or the fitted parameters exceed the range of the working precision; rescale X, or pass "
            "float64 data"
        )

    def _final_pass(self, X, sample_weight=None):
        stats, out = self._pass(X, moments=False, labels=True, sample_weight=sample_weight)
        self._training_statistics_ = stats  # for the collapsed decomposition on the training data
        return stats, out["labels"]

    def _m_step(self, stats):
        previous = (self.means_, self.components_, self._noise_variance_per_feature())
        self._assign(*mfa_m_step(stats, self.noise, self._noise_floor_, previous))

    def _decompose(self, stats, form="latent"):
        n_features = self.means_.shape[1]
        noise = self._noise_variance_per_feature()
        qbar = stats.mean_responsibilities
        gaussian = 0.5 * LOG_2PI_E
        if form == "latent":
            # q's own posterior covariances: those of the pass's parameters (Theta^t in the
            # history's S(q^t, Theta^{t+1})), else of the current ones (a pass without moments).
            half_log_det = stats.posterior_half_log_det
            if half_log_det is None:
                half_log_det = half_log_det_posterior_covariances(self.components_, noise)
            posterior = gaussian * self.n_factors + half_log_det
            variational = stats.component_entropy + float(qbar @ posterior)
            prior = categorical_entropy(self.weights_) + gaussian * self.n_factors
            observable = float(qbar @ (gaussian * n_features + half_log_det_noise(noise)))
        else:
            half_log_det = half_log_det_marginal_covariances(self.components_, noise)
            variational = stats.component_entropy
            prior = categorical_entropy(self.weights_)
            observable = float(qbar @ (gaussian * n_features + half_log_det))
        return EntropyDecomposition(
            elbo=stats.elbo,
            variational_entropy=variational,
            prior_entropy=prior,
            observable_entropy=observable,
            data_term=0.0,
            n_samples=stats.n_samples,
            model=(
                f"FastMFA(n_components={self.n_components}, n_factors={self.n_factors}, "
                f"noise={self.noise!r}), {form} form"
            ),
            note=HEYWOOD_NOTE if self._at_floor().any() else "",
        )

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        X, sample_weight = initialisation_rows(
            X,
            sample_weight,
            random_state,
            "use another random_state, drop the rows of zero weight, or load X into memory",
        )
        column_mean, column_variance = column_mean_and_variance(X, sample_weight)
        rows, resp, row_weights = initial_responsibilities(
            X,
            self.n_components,
            self.init_params,
            random_state,
            resolve_n_threads(self.n_jobs),
            column_variance,
            sample_weight,
        )
        # Moments about the column mean, or about the new means where those cancel (seeds far apart
        # for their spread); the check's regularisation is the smallest noise floor.
        stats = initial_statistics(
            rows, resp, column_mean, "full", float(np.min(self._noise_floor_)), row_weights
        )
        parameters = initial_parameters(
            stats,
            self.n_factors,
            self.noise,
            self._noise_floor_,
            lambda: _data_covariance(X, column_mean, sample_weight),
            # A seeding's rows count once each (row_weights None), whatever their sample weights.
            self._weight_unit_ if row_weights is not None else 1.0,
        )
        self._assign(*parameters, dtype=X.dtype)

    def _assign(self, weights, means, components, noise_variance, dtype=None):
        dtype = self.means_.dtype if dtype is None else dtype
        noise_variance = np.asarray(noise_variance)
        if self.noise == "spherical":
            noise_variance = noise_variance[:, 0]
        # Rounded to float32, loadings far below the data's scale round to 0 (or subnormals): the
        # rounding the float32 parameters mean, not an error under the caller's np.errstate.
        with np.errstate(under="ignore"):
            self.weights_ = np.asarray(weights, dtype=dtype)
            self.means_ = np.asarray(means, dtype=dtype)
            self.components_ = np.asarray(components, dtype=dtype)
            self.noise_variance_ = np.asarray(noise_variance, dtype=dtype)

    def _noise_variance_per_feature(self):
        """``noise_variance_`` as (K, D) (spherical variances repeated over the features)."""
        if self.noise_variance_.ndim == 2:
            return self.noise_variance_
        return np.repeat(self.noise_variance_[:, None], self.means_.shape[1], axis=1)

    def _get_parameters(self):
        return (self.weights_, self.means_, self.components_, self.noise_variance_)

    def _set_parameters(self, params):
        self.weights_, self.means_, self.components_, self.noise_variance_ = params

    # -- validation --------------------------------------------------------------------------

    def _check_hyperparameters(self):
        check_integer(self, "n_components", 1)
        check_integer(self, "n_factors", 1)
        self._check_em_hyperparameters()
        value = self.reg_covar
        # A floor on the noise variances, so it must be positive (FastGMM's adds, and may be 0).
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, bool | np.bool_)
            or not np.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"reg_covar must be a finite number > 0, got {value!r}")
        if self.noise not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {NOISE_TYPES}, got {self.noise!r}")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}")


def _as_row_source(X):
    """X as a :class:`~fastelbo._row_source.RowSource` (an in-memory array is one block)."""
    return X if isinstance(X, RowSource) else RowSource(X)


def _check_floors_in_range(floor, reg_covar):
    """ValueError naming X (and reg_covar) where a noise floor is below FLOAT64_SMALLEST_FLOOR."""
    small = floor < FLOAT64_SMALLEST_FLOOR
    if small.any():
        limit = f"2**{int(np.log2(FLOAT64_SMALLEST_FLOOR))} ({FLOAT64_SMALLEST_FLOOR:.3g})"
        raise ValueError(
            f"X is too small for float64: the noise floors (reg_covar={reg_covar:g} times the "
            f"variance) of feature(s) {np.flatnonzero(small)[:10].tolist()} are as small as "
            f"{float(floor.min()):.4g}, below {limit}, where the products of noise variances leave "
            "float64's normal range; rescale X, or raise reg_covar"
        )


def _data_covariance(X, mean, sample_weight=None):
    """(Weighted) covariance of the rows of X about ``mean``, in float64 row chunks."""
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(X.shape[0] if weights is None else weights.sum())
    scatter = np.zeros((X.shape[1], X.shape[1]))
    for start, stop in row_chunks(*X.shape):
        rows = np.asarray(X[start:stop], dtype=np.float64) - mean
        scaled = rows if weights is None else rows * weights[start:stop, None]
        scatter += scaled.T @ rows
    return scatter / total


def _check_block_finite(dtype, stats, outputs, rows):
    """:meth:`FastMFA._check_finite` for a block pass over ``rows``."""
    FastMFA._check_finite(stats, outputs, _as_row_source(rows), dtype)
