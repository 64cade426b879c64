"""FastFactorAnalysis: a drop-in replacement for :class:`sklearn.decomposition.FactorAnalysis`
fitted by EM on the data's covariance, with the ELBO's entropy decomposition."""

from __future__ import annotations

import numpy as np
from scipy import linalg

from fastelbo._base import check_integer
from fastelbo._progress import document_progress_parameters
from fastelbo._validation import as_float_array
from fastelbo.factor._factor_model import LinearGaussianFactorModel
from fastelbo.factor._linear_gaussian import (
    components_given_noise,
    factor_gram,
    factor_posterior,
    mean_log_likelihood,
    optimal_components,
)
from fastelbo.factor._rotation import ROTATIONS, orthomax, with_positive_largest_loadings
from fastelbo.factor._scatter import power_of_two_scales
from fastelbo.factor._warm_eigensolver import WarmSolveCredit

SVD_METHODS = ("lapack", "randomized")
#: The starting noise variances of the runs: the features' variances (scikit-learn's start for
#: standardised data), and each feature's variance unexplained by the others (the classical
#: squared-multiple-correlation start). Neither is best on every data set of scikit-learn's.
STARTS = ("variances", "unexplained")
#: Final mean log-likelihoods of two starts closer than this (nats per sample) are a tie.
TIE_MARGIN = 1e-8
#: Multiples of the last step in log-noise space tried after each M-step, longer and longer while
#: the likelihood keeps increasing.
EXTRAPOLATION_STEPS = (1.0, 4.0, 16.0, 64.0)
#: Steps of a run before extrapolation is tried: EM's first steps are long, a crawl comes later.
EXTRAPOLATE_AFTER = 10
#: Relative increase of the mean log-likelihood below which an extrapolation trial counts as a tie
#: with the current parameters (kept out): 8 ulps, the round-off of comparing two evaluations that
#: agree in all but their last bits. Without it, a trial on a flat ridge won or lost by one ulp,
#: and fits whose eigenvectors differ by round-off (LAPACK's and the warm-started solver's) took
#: noise variances 5e-8 apart at the same likelihood. Real gains of a trial are far larger (1e-13
#: relative and up on the bench's data; a margin that large changed their fits' noise by 1e-5).
TRIAL_TIE_MARGIN = 8 * np.finfo(np.float64).eps
#: A unique variance below this fraction of its feature's variance and still falling is also
#: tried at its floor.
HEYWOOD_THRESHOLD = 1e-4


def unexplained_variances(factor):
    """``1 / (S^-1)_dd``: the variance of every feature left after its linear regression on the
    others, from a covariance factor ``L`` (``S = L^T L``); a feature the others explain exactly
    (a duplicated or constant column; every feature when N < D) gets a variance of the order of
    round-off, which the noise floor then replaces.

    The columns are first scaled to unit norm by powers of two (exact), so that the singularity
    test compares features on one scale, not a small variance with a large one in other units.
    Where S is singular (a triangle of ``L = Q R`` with a diagonal entry within round-off of 0,
    or fewer rows than features, as the fast factor of a rank-deficient covariance has), the
    regression is taken with a ridge of ``eps`` on the unit diagonal: the features that others
    explain exactly get about that much (below every noise floor), the others their residual
    variance to about ``eps / fraction unexplained`` relative. (A ridge of round-off's size would
    let the null directions' round-off, amplified by its inverse, move them by 1e-5; with all of
    them 0 instead, one duplicated column made the start degenerate, 7 nats per sample short of
    the fit it led to.)"""
    n_features = factor.shape[1]
    scale = power_of_two_scales(np.einsum("id,id->d", factor, factor))
    scaled = factor / scale[None, :]
    triangle = linalg.qr(scaled, mode="r")[0][:n_features] if factor.shape[0] >= n_features else None
    if triangle is None or _singular(triangle):
        ridge = np.sqrt(np.finfo(np.float64).eps) * np.eye(n_features)
        triangle = linalg.qr(np.vstack([scaled, ridge]), mode="r")[0][:n_features]
    inverse = linalg.solve_triangular(triangle, np.eye(n_features))
    return scale**2 / np.einsum("dk,dk->d", inverse, inverse)


def _beats(value, best):
    """Whether a trial's likelihood is higher than ``best`` by more than a tie
    (:data:`TRIAL_TIE_MARGIN`)."""
    return value > best + TRIAL_TIE_MARGIN * abs(best)


def _singular(triangle):
    """Whether a triangle's diagonal has an entry within round-off (``D eps`` of the largest) of 0."""
    diagonal = np.abs(np.diag(triangle))
    return bool(np.any(diagonal <= np.finfo(np.float64).eps * triangle.shape[0] * diagonal.max(initial=0.0)))


@document_progress_parameters()
class FastFactorAnalysis(LinearGaussianFactorModel):
    """Factor analysis by EM, with the ELBO's entropy decomposition.

    Same parameters, attributes and methods as :class:`sklearn.decomposition.FactorAnalysis`, plus
    ``sample_weight``, :meth:`sample`, :meth:`entropy_decomposition`, the histories
    ``elbo_history_`` and ``entropy_sum_history_``, and ``warm_start``, ``verbose`` and ``n_jobs``.
    The model is ``x = components_^T z + mean_ + noise``, ``z ~ N(0, I)``, ``noise ~ N(0,
    diag(noise_variance_))``. It depends on the data only through their mean and covariance: one
    blocked pass over X reduces them to a triangular factor of the covariance (D x D; for wide
    data, N < D, the N x D centred rows themselves, never a D x D matrix), after which every
    iteration costs O(min(N, D) D H), independent of the number of samples.

    X may be an in-memory array, or be read block by block and never copied whole into memory: a
    ``numpy.memmap``, an ``h5py.Dataset``, a ``zarr.Array`` or a :class:`~fastelbo.RowSource`
    (fits agree with the in-memory fit to round-off); a ``dask.array`` is reduced on the Dask
    workers (bitwise the fit of a RowSource with the same blocks), and :meth:`transform` and
    :meth:`score_samples` then return lazy dask arrays.

    Each iteration is a parameter-expanded EM step, then the loadings that maximise the
    likelihood for its noise variances (scikit-learn's step), then an extrapolation of the noise
    variances in log space and a try of falling noise variances below 1e-4 of their feature's
    variance at their floor, each kept only if the likelihood increases (EM alone crawls towards
    such boundary optima for tens of thousands of iterations). Two deterministic starts are run
    and the better kept (the ``n_init`` property says which are run).

    Every reported likelihood (``score``, ``score_samples``, ``lower_bound_``, ``loglike_``, the
    histories, the entropy decomposition) and ``get_precision`` are computed in forms that do not
    cancel when a noise variance is tiny relative to the loadings. A fit that ends with noise
    variances at their floor (a Heywood case) issues one
    :class:`~fastelbo.exceptions.HeywoodCaseWarning` naming the features, and its
    :meth:`entropy_decomposition` carries a ``note``: the gap then measures the pull of the
    boundary.

    Parameters
    ----------
    n_components : int, default=None
        Dimensionality of the latent space (``0 <= n_components <= n_features``; 0: the features'
        independent Gaussians, no factors). None: ``n_features``.
    tol : float, default=1e-2
        Stopping tolerance on the increase of the total log-likelihood (scikit-learn's meaning:
        the mean log-likelihood's change times the number of samples). With ``sample_weight``
        the count is the total weight in units of the smallest positive weight: it does not
        change when all weights are multiplied by one constant (the fit and ``n_iter_`` do not
        either), and integer weights count like repeated rows.
    copy : bool, default=True
        Accepted for compatibility; X is never modified.
    max_iter : int, default=1000
        Maximum number of EM iterations.
    noise_variance_init : array-like of shape (n_features,), default=None
        Initial noise variances. None: the variances of the features. The initial components are
        the ones maximising the likelihood for these noise variances.
    svd_method : {'lapack', 'randomized'}, default='randomized'
        Accepted for compatibility; the only decomposition needed (of a D x D matrix, at the
        start) is always exact.
    iterated_power : int, default=3
        Accepted for compatibility (scikit-learn's power iterations of 'randomized').
    rotation : {'varimax', 'quartimax'}, default=None
        Orthomax rotation of the fitted components (the likelihood does not change). None: the
        components are scikit-learn's principal-factor orientation, ordered by decreasing
        ``components_ diag(noise_variance_)^-1 components_^T`` (a diagonal matrix). Loadings are
        identified only up to a rotation, and this fixes one; with this orientation or an
        orthomax rotation, ``components_`` and :meth:`transform` equal scikit-learn's up to the
        sign of each component where both fits reach the same optimum. The sign is fixed too:
        every component's largest loading (in magnitude) is positive.
    random_state : int, RandomState instance or None, default=0
        Seed of :meth:`sample` (the fit itself is deterministic).
    warm_start : bool, default=False
        Start the next ``fit`` from the current components and noise variances.
    {progress_parameters}
    n_jobs : int, default=None
        Threads of the C++ pass over tall data (N >= D) that reduces X to its covariance
        (``None``: the OpenMP default; ``-1``: all CPUs); the rest of the fit works on D x D
        matrices with NumPy/SciPy. Results are bitwise identical for any value.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Components with maximum variance (the loadings).
    noise_variance_ : ndarray of shape (n_features,)
        Estimated noise variance of every feature, floored relative to the data's scale: at
        1e-10 times the feature's variance, or for a constant feature at 1e-14 times the mean
        variance of the features (scikit-learn floors at an absolute 1e-12). The floors make
        the fit equivariant to rescaling X: ``score`` shifts by exactly ``-D log s``, for any X
        whose variances float64 holds (features varying at scales of about 1e-152 to 1e152;
        beyond, fitting raises a ValueError saying so).
    mean_ : ndarray of shape (n_features,)
        Per-feature empirical mean (weighted by ``sample_weight``).
    loglike_ : list of float
        Total (weighted) log-likelihood of the parameters after every iteration: the last is
        that of the returned parameters, ``score_samples(X).sum()`` (as scikit-learn's);
        ``loglike_[t] = elbo_history_[t + 1]`` times the number of samples, or the total weight.
    n_iter_ : int
        Number of iterations run.
    converged_ : bool
    lower_bound_ : float
        Mean log-likelihood of the returned parameters (``loglike_[-1]`` per sample, or per unit
        of weight).
    lower_bounds_ : list of float
        ``elbo_history_`` as a list (scikit-learn's mixtures' name): the mean log-likelihood of
        the parameters *entering* each iteration, so, unlike a mixture's, its last entry is one
        iteration before ``lower_bound_``.
    elbo_history_ : ndarray
        ``F(q^t, Theta^t)`` per iteration: the mean log-likelihood of the parameters entering it.
    entropy_sum_history_ : ndarray
        ``S(q^t, Theta^{t+1})`` per iteration. Equal to F only at convergence: the gap
        ``F - S`` is a convergence diagnostic.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastelbo import FastFactorAnalysis
    >>> X = StandardScaler().fit_transform(load_breast_cancer().data)
    >>> fa = FastFactorAnalysis(n_components=3, tol=1e-9, max_iter=10_000).fit(X)
    >>> d = fa.entropy_decomposition()
    >>> abs(d.gap) < 1e-6 * abs(d.elbo)  # F = S at convergence
    True
    """

    _noise_type = "diag"

    @property
    def n_init(self):
        """Deterministic starts tried, the best kept: the features' variances and their
        unexplained variances (:data:`STARTS`); only ``noise_variance_init`` when given, and only
        the variances for wide data (N < D), where the others explain every feature. The data
        are known only during a fit: before and after one, the count for tall data."""
        if self.noise_variance_init is not None:
            return 1
        scatter = getattr(self, "_em_scatter", None)
        if scatter is not None and scatter.exact and scatter.factor.shape[0] < scatter.factor.shape[1]:
            # Wide data (their rows are the factor): every feature is fully "explained". (The fast
            # factor of tall data has fewer rows only where the covariance is singular.)
            return 1
        return len(STARTS)

    def __init__(
        self,
        n_components=None,
        *,
        tol=1e-2,
        copy=True,
        max_iter=1000,
        noise_variance_init=None,
        svd_method="randomized",
        iterated_power=3,
        rotation=None,
        random_state=0,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.tol = tol
        self.copy = copy
        self.max_iter = max_iter
        self.noise_variance_init = noise_variance_init
        self.svd_method = svd_method
        self.iterated_power = iterated_power
        self.rotation = rotation
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    def _check_model_hyperparameters(self):
        if not isinstance(self.copy, (bool, np.bool_)):
            raise ValueError(f"copy must be a bool, got {self.copy!r}")
        if self.svd_method not in SVD_METHODS:
            raise ValueError(f"svd_method must be one of {SVD_METHODS}, got {self.svd_method!r}")
        check_integer(self, "iterated_power", 0)
        if self.rotation is not None and self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be None or one of {ROTATIONS}, got {self.rotation!r}")

    def _check_data_dependent_parameters(self, n_features):
        super()._check_data_dependent_parameters(n_features)
        if self.noise_variance_init is not None:
            noise = as_float_array(self.noise_variance_init, "noise_variance_init")
            if noise.shape != (n_features,):
                raise ValueError(
                    f"noise_variance_init must have shape ({n_features},) (one variance per feature), "
                    f"got {noise.shape}"
                )
            if np.any(noise <= 0):
                raise ValueError("noise_variance_init must be positive")

    def _resolve_n_components(self, n_samples, n_features):
        return n_features if self.n_components is None else int(self.n_components)

    def _convergence_tolerance(self):
        # tol bounds the change of the total log-likelihood (scikit-learn's meaning).
        return self.tol / self._em_scatter.n_weighted

    def _improves_on(self, lower_bound, best_lower_bound):
        # Starts that end within 1e-8 nats per sample of each other reached the same optimum
        # (a scale-free margin: per-sample differences do not change when X or the weights are
        # rescaled): keep the first, so that round-off cannot swap them.
        return lower_bound > best_lower_bound + TIE_MARGIN

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        scatter = self._em_scatter
        self._steps_taken, self._last_elbo, self._last_log_step = 0, None, None
        self._warm_credit = WarmSolveCredit()  # each run pays for its own failed warm solves
        start = getattr(self, "_start_index", 0)
        self._start_index = start + 1
        if self.noise_variance_init is not None:
            noise = as_float_array(self.noise_variance_init, "noise_variance_init").copy()
        elif STARTS[start % len(STARTS)] == "unexplained":
            noise = np.maximum(unexplained_variances(scatter.factor), self._noise_floor)
        else:
            noise = np.maximum(scatter.variances, self._noise_floor)
        self.mean_ = scatter.mean
        self.components_ = components_given_noise(
            scatter.factor, noise, self._n_components, self._gram(scatter)
        )
        self.noise_variance_ = noise

    def _gram(self, scatter):
        """:func:`factor_gram` of the scatter's factor, computed once per factor (the run's
        scatter is replaced when the fit needs an exact factor)."""
        kept = getattr(self, "_em_gram", None)
        if kept is None or kept[0] is not scatter.factor:
            kept = self._em_gram = (scatter.factor, factor_gram(scatter, self._n_components))
        return kept[1]

    def _optimal_components(self, scatter, noise, start):
        """:func:`optimal_components` for ``noise``, its eigenpairs first sought by the warm-started
        solver from the loadings ``start`` (state a warm start reproduces)."""
        return optimal_components(
            scatter.factor, noise, self._n_components, self._gram(scatter), start, self._warm_solves()
        )

    def _warm_solves(self):
        """The run's :class:`~fastelbo.factor._warm_eigensolver.WarmSolveCredit` (a warm start
        continues the last run's)."""
        credit = getattr(self, "_warm_credit", None)
        if credit is None:
            credit = self._warm_credit = WarmSolveCredit()
        return credit

    def _m_step(self, statistics):
        # The PX-EM step, then the components that maximise the likelihood for its noise: each
        # half increases the likelihood, and the second moves along the ridge of equally good
        # noise/loading trade-offs that EM alone crawls along. The EM step's loadings nearly span
        # the optimal ones: they start the warm-started eigensolver (state that a warm start
        # reproduces).
        previous = np.asarray(self.noise_variance_)
        super()._m_step(statistics)
        scatter = statistics.scatter
        self.components_ = self._optimal_components(scatter, self.noise_variance_, self.components_)
        # Counted across warm starts (a cold start resets them): a warm continuation takes the
        # steps the straight fit would.
        self._steps_taken = getattr(self, "_steps_taken", 0) + 1
        last_elbo, self._last_elbo = getattr(self, "_last_elbo", None), statistics.elbo
        step = np.log(self.noise_variance_) - np.log(np.maximum(previous, self._noise_floor))
        last_step, self._last_log_step = getattr(self, "_last_log_step", None), step
        # Also before a run would stop (an increase below tol), first with Aitken's multiple: where
        # EM crawls along a ridge of nearly equal likelihoods from the start, steps shrink by a
        # constant ratio r, and the r / (1 - r) steps still to come are taken at once.
        stopping = last_elbo is not None and statistics.elbo - last_elbo < self._convergence_tolerance()
        if self._steps_taken > EXTRAPOLATE_AFTER or stopping:
            multiples = EXTRAPOLATION_STEPS
            if stopping and last_step is not None and np.any(last_step):
                ratio = float(step @ last_step) / float(last_step @ last_step)
                if 0.0 < ratio < 1.0:
                    multiples = (ratio / (1.0 - ratio), *EXTRAPOLATION_STEPS)
            self._extrapolate_noise(statistics.scatter, step, multiples)

    def _extrapolate_noise(self, scatter, step, multiples=EXTRAPOLATION_STEPS):
        """Try ``step``, the step just taken in log-noise space, again ``multiples`` times longer
        (components re-optimised, floors kept), and keep the best if it increases the
        likelihood. EM creeps towards optima with a noise variance near 0 (Heywood cases) by
        geometrically shrinking steps, tens of thousands of iterations; the likelihood stays
        monotone, since only improvements are kept."""
        noise = self.noise_variance_
        if not np.any(step):
            return
        best = mean_log_likelihood(scatter, self.mean_, factor_posterior(self.components_, noise))
        found = None
        # Each trial's eigensolver starts from the loadings of the nearest noise already solved.
        components = self.components_
        for multiple in multiples:
            trial = np.maximum(noise * np.exp(multiple * step), self._noise_floor)
            components = self._optimal_components(scatter, trial, components)
            value = mean_log_likelihood(scatter, self.mean_, factor_posterior(components, trial))
            if not _beats(value, best):
                break
            best, found = value, (components, trial)
        # Noise variances far below their feature's variance and still falling: try them at
        # their floor at once (the boundary optimum EM would need ever longer to reach).
        noise, components = found[1] if found else noise, found[0] if found else self.components_
        heading = (noise < HEYWOOD_THRESHOLD * scatter.variances) & (step < 0) & (noise > self._noise_floor)
        if np.any(heading):
            trial = np.where(heading, self._noise_floor, noise)
            components = self._optimal_components(scatter, trial, components)
            value = mean_log_likelihood(scatter, self.mean_, factor_posterior(components, trial))
            if _beats(value, best):
                found = (components, trial)
        if found is not None:
            self.components_, self.noise_variance_ = found

    def _finish_fit(self):
        # loglike_ and lower_bound_ describe the parameters after each iteration, the last the
        # returned ones (as scikit-learn's): loglike_[-1] == score_samples(X) @ weights.
        final = self._training_decomposition
        if final is not None and self.n_iter_ > 0:
            after_each = np.append(self.elbo_history_[1:], final.elbo)
            self.loglike_ = list(after_each * self._em_scatter.sum_weight)
            self.lower_bound_ = final.elbo
        else:
            self.loglike_ = []
        if self.rotation is not None:
            self.components_ = orthomax(self.components_, self.rotation)
        self.components_ = with_positive_largest_loadings(self.components_)
