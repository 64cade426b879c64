"""FastPPCA: probabilistic principal component analysis (Tipping & Bishop, 1999), with the
parameters, attributes and methods of :class:`sklearn.decomposition.PCA`.

The model's parameters are the loadings ``loadings_`` (``W^T``, what EM updates), the noise
variance and the mean; PCA's attributes (``components_``, ``explained_variance_``, ...) describe
the same model: ``components_`` are the unit eigenvectors of the model covariance
``loadings_^T loadings_ + noise_variance_ I`` and ``explained_variance_`` its eigenvalues along
them. The closed form sets both from the data covariance's eigendecomposition; EM's loadings are
described by their SVD.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np
from scipy import linalg
from scipy.special import gammaln
from sklearn.utils.validation import check_array, check_is_fitted

from fastelbo._base import check_integer
from fastelbo._progress import document_progress_parameters
from fastelbo._threads import single_threaded_blas
from fastelbo._validation import in_native_byte_order
from fastelbo.factor._factor_model import LinearGaussianFactorModel
from fastelbo.factor._linear_gaussian import (
    LOG_2PI,
    factor_gram,
    factor_posterior,
    gram_directions_apply,
    leading_directions_of_gram,
    mean_log_likelihood,
    optimal_components,
)
from fastelbo.factor._scatter import data_scatter

SOLVERS = ("eigh", "em")
#: scikit-learn PCA's solvers: accepted, all giving the same exact solution here.
SVD_SOLVERS = ("auto", "full", "covariance_eigh", "arpack", "randomized")
POWER_ITERATION_NORMALIZERS = ("auto", "QR", "LU", "none")

#: ``n_components='mle'``: eigenvalues at most this fraction of the largest count as zero (Minka's
#: evidence is not defined for them). scikit-learn's PCA uses 1e-15 in the data's units.
MLE_RELATIVE_EPS = 1e-15

_ZERO_NOISE_DECOMPOSITION = (
    "n_components equals n_features, so noise_variance_ is 0: p(x | z) and the posterior of z are "
    "point masses whose entropies are -inf, and the ELBO has no entropy decomposition (the "
    "likelihood is finite: use score or score_samples). Fit with n_components < n_features for a "
    "decomposition."
)


@document_progress_parameters("EM's progress (``solver='em'``; the closed form prints nothing) on stdout")
class FastPPCA(LinearGaussianFactorModel):
    """Probabilistic PCA: scikit-learn's PCA with the probabilistic model's maximum-likelihood fit,
    EM, and the ELBO's entropy decomposition.

    The model is ``x = loadings_^T z + mean_ + noise``, ``z ~ N(0, I)``, ``noise ~ N(0,
    noise_variance_ I)``; its covariance has eigenvectors ``components_`` (PCA's principal axes)
    with eigenvalues ``explained_variance_``, and ``noise_variance_`` in every other direction.
    It depends on the data only through their mean and covariance: one blocked pass over X
    reduces them to a triangular factor of the covariance (D x D; for wide data, N < D, the N x D
    centred rows themselves, never a D x D matrix), after which every EM iteration costs
    O(min(N, D) D H), independent of the number of samples. ``solver='eigh'`` returns the
    closed-form maximum-likelihood solution from the covariance's eigendecomposition;
    ``solver='em'`` runs EM from a random start, with the ELBO and entropy sum of every iteration
    (and a step off saddle points where EM stalls: see ``tol``).

    X may be an in-memory array, or be read block by block and never copied whole into memory: a
    ``numpy.memmap``, an ``h5py.Dataset``, a ``zarr.Array`` or a :class:`~fastelbo.RowSource`
    (fits agree with the in-memory fit to round-off); a ``dask.array`` is reduced on the Dask
    workers (bitwise the fit of a RowSource with the same blocks), and :meth:`transform` and
    :meth:`score_samples` then return lazy dask arrays.

    **Differences from** :class:`sklearn.decomposition.PCA`, all deliberate: every number FastPPCA
    reports belongs to the maximum-likelihood model, at whose parameters the entropy decomposition
    holds (N samples, D features, H components, ``a = N / (N - 1)``):

    - Variances divide by N (maximum likelihood), PCA's by N - 1: ``explained_variance_`` is
      PCA's divided by ``a``, and so are ``noise_variance_`` and ``get_covariance()`` when
      ``N >= D`` (``get_precision()`` is then ``a`` times PCA's); the whitened :meth:`transform`
      is ``sqrt(a)`` times PCA's (unit variance dividing by N). ``components_`` (with PCA's sign),
      ``explained_variance_ratio_`` and ``singular_values_`` are PCA's to round-off.
    - Fewer samples than features (``N < D``, ``H < N``): ``noise_variance_`` is the mean of the
      ``D - H`` discarded eigenvalues, the zeros beyond the data's rank included (the
      maximum-likelihood noise); PCA averages their sum over ``min(N, D) - H``, so its noise is
      ``r = a (D - H) / (N - H)`` times FastPPCA's (``r = a`` when ``N >= D``). PCA's noise is not
      a stationary point of the likelihood, where the identity ``F = S`` fails.
    - Hence on the training data, for ``H < min(N, D)`` or ``H = D``, ``score`` exceeds PCA's by
      exactly ``1/2 [H log a + (D - H) log r + H/a + (D - H)/r - D]`` per sample, whatever the
      data: ``D/2 (log a + 1/a - 1)`` when ``N >= D``; 33.88 nats for N = 30, D = 100, H = 10.
    - ``H`` at least the data's rank but below D (PCA's default on wide data, ``H = min(N, D) =
      N``): the maximum-likelihood noise would be 0, a singular covariance with an unbounded
      likelihood; FastPPCA holds ``noise_variance_`` at its floor (1e-14 times the mean variance
      of the features; the training decomposition's ``note`` says so), where PCA reports 0 and a
      covariance it cannot invert. H may exceed ``min(N, D)`` (up to D), where PCA raises; the
      directions without variance get ``explained_variance_ = noise_variance_``.
    - ``H = D`` (the default when ``N >= D``): ``noise_variance_`` is exactly 0 as in PCA, and the
      model covariance is the data's with eigenvalues below the floor raised to it, so ``score``
      stays finite for singular data. The entropy decomposition does not exist (``p(x | z)`` and
      the posterior are point masses, entropies -inf): :meth:`entropy_decomposition` raises a
      ValueError; ``entropy_sum_history_`` holds the entropy sum's limit as the noise goes to 0,
      ``-1/2 log|2 pi e C|``, which equals the ELBO when the data covariance is regular.
    - ``whiten`` scales only :meth:`transform` and :meth:`inverse_transform`; the model, hence
      ``score``, ``get_covariance`` and ``get_precision``, does not change with it (PCA's with
      ``whiten=True`` has variance ``ev (ev - noise) + noise`` along each component instead of
      ``ev = explained_variance_``).
    - ``svd_solver``, ``iterated_power``, ``n_oversamples``, ``power_iteration_normalizer`` and
      ``copy`` are accepted and checked but change nothing (beyond PCA's default ``n_components``
      of ``min(N, D) - 1`` for 'arpack'): every value gives the exact solution (no randomized or
      ARPACK approximation, and no restriction of ``n_components`` by solver, 'mle' included),
      and X is never modified. ``tol`` is EM's threshold (PCA's is ARPACK's; it is unused with the
      default ``solver='eigh'``).
    - ``n_components='mle'`` treats eigenvalues below ``1e-15`` times the largest as zero (PCA:
      below 1e-15 in the data's units), so the choice does not depend on the data's scale.
    - X must be dense (PCA takes sparse X with some solvers); :meth:`transform` returns float64 for
      float32 X; :meth:`inverse_transform` of zero components returns the mean (PCA raises);
      ``fit`` takes ``sample_weight``; feature names out are ``fastppca0, ...``.

    Parameters
    ----------
    n_components : int, float, 'mle' or None, default=None
        Number of components H (``0 <= H <= n_features``). None: ``min(n_samples, n_features)``,
        minus one with ``svd_solver='arpack'`` as in PCA (with ``sample_weight``, n_samples counts
        the rows the weights stand for: the total weight over the smallest positive weight).
        A float in (0, 1): the smallest H whose components explain more than that fraction of the
        variance. 'mle': Minka's (2000) choice from the eigenvalues (needs ``n_samples >=
        n_features``; with ``sample_weight``, n_samples counts the rows the weights stand for, and
        the weights must be counts: integer multiples of the smallest positive weight, else a
        ValueError). Fractions and 'mle' are resolved from the data covariance's eigenvalues
        for either ``solver``.
    copy : bool, default=True
        Accepted for compatibility with PCA: X is never modified.
    whiten : bool, default=False
        :meth:`transform` divides each component by ``sqrt(explained_variance_)`` (unit variance,
        dividing by N, on the training data) and :meth:`inverse_transform` multiplies it back.
        The model does not change.
    svd_solver : {'auto', 'full', 'covariance_eigh', 'arpack', 'randomized'}, default='auto'
        Accepted for compatibility with PCA: every value gives the exact solution ('arpack' only
        lowers the default ``n_components`` by one, as in PCA).
    tol : float, default=1e-6
        EM convergence threshold on the change of the mean log-likelihood (the ELBO); unused by
        ``solver='eigh'``. (Not PCA's ARPACK tolerance.) Where the change falls below ``tol``,
        the loadings that maximise the likelihood for EM's noise (the leading eigenvectors of the
        data covariance), with that noise or with its Aitken extrapolation, are tried as well:
        if they raise the likelihood by more than ``tol`` EM goes on from them, so that a run
        stuck at a saddle point (loading directions shrunk to round-off, which EM regrows by less
        than ``tol`` per step) or crawling does not report convergence; a converged run is within
        about ``tol`` of the closed-form optimum.
    iterated_power : int >= 0 or 'auto', default='auto'
        Accepted for compatibility with PCA (randomized SVD's power iterations); no effect.
    n_oversamples : int >= 1, default=10
        Accepted for compatibility with PCA (randomized SVD); no effect.
    power_iteration_normalizer : {'auto', 'QR', 'LU', 'none'}, default='auto'
        Accepted for compatibility with PCA (randomized SVD); no effect.
    random_state : int, RandomState instance or None, default=None
        Seed of EM's random start and of :meth:`sample`.
    solver : {'eigh', 'em'}, default='eigh'
        'eigh': closed form (one step; the histories hold one entry). 'em': EM iterations.
    max_iter : int, default=1000
        Maximum number of EM iterations per initialisation.
    n_init : int, default=1
        Number of EM initialisations (random starts); the best by final ELBO is kept.
    warm_start : bool, default=False
        EM starts the next ``fit`` from the current loadings and noise (``n_init`` is then
        ignored; the data must give the same number of components); the mean is always the data's.
    {progress_parameters}
    n_jobs : int, default=None
        Threads of the C++ pass over tall data (N >= D) that reduces X to its covariance
        (``None``: the OpenMP default; ``-1``: all CPUs); the rest of the fit works on D x D
        matrices with NumPy/SciPy. Results are bitwise identical for any value.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Principal axes: orthonormal rows, the model covariance's leading eigenvectors (the data
        covariance's at the maximum-likelihood solution), sorted by decreasing
        ``explained_variance_``, each with its largest-magnitude entry positive (PCA's sign).
    explained_variance_ : ndarray of shape (n_components,)
        The model's variance along each component: the data's eigenvalue (divided by N) at the
        maximum-likelihood solution, and at least ``noise_variance_`` (at least the floor when
        ``noise_variance_`` is 0). For EM, the fitted model's, equal to the data's at convergence.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``explained_variance_`` divided by the total variance of the training data (NaN for data
        without variance).
    singular_values_ : ndarray of shape (n_components,)
        ``sqrt(n * explained_variance_)``, n the number of rows (with ``sample_weight``, the
        rows the weights stand for: the total weight over the smallest positive weight); the
        singular values of the centred training data along ``components_``.
    loadings_ : ndarray of shape (n_components, n_features)
        The model's ``W^T``: ``sqrt(explained_variance_ - noise_variance_)[:, None] *
        components_`` (rotated so; any rotation of the latent space is the same model).
    noise_variance_ : float
        Isotropic noise variance: the mean of the ``n_features - n_components`` smallest
        eigenvalues, floored at 1e-14 times the mean variance of the features (a floor relative to
        the data's scale, so that ``score`` shifts by exactly ``-D log s`` when X is multiplied by
        s, for any X whose variances float64 holds, about 1e-152 to 1e152 in scale, beyond which
        fitting raises a ValueError; the training decomposition's ``note`` says when the floor
        holds the fit); exactly 0 when ``n_components == n_features``.
    mean_ : ndarray of shape (n_features,)
        Mean of the training data (weighted by ``sample_weight``).
    n_components_ : int
        The number of components used.
    n_samples_ : int
        Number of rows of the training data.
    converged_ : bool
    n_iter_ : int
        EM iterations of the best run (1 for 'eigh').
    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step of the best run.
    lower_bounds_ : list of float
    elbo_history_ : ndarray
        ``F(q^t, Theta^t)`` per iteration: the mean log-likelihood of the parameters entering it.
    entropy_sum_history_ : ndarray
        ``S(q^t, Theta^{t+1})`` per iteration. Equal to F only at convergence.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from fastelbo import FastPPCA
    >>> X = np.random.RandomState(0).randn(500, 5) @ np.random.RandomState(1).randn(5, 5)
    >>> ppca = FastPPCA(n_components=2).fit(X)
    >>> d = ppca.entropy_decomposition()
    >>> abs(d.gap) < 1e-9 * abs(d.elbo)  # F = S at the maximum-likelihood solution
    True
    """

    _noise_type = "spherical"
    _loadings_attribute = "loadings_"  # components_ are PCA's unit axes

    def __init__(
        self,
        n_components=None,
        *,
        copy=True,
        whiten=False,
        svd_solver="auto",
        tol=1e-6,
        iterated_power="auto",
        n_oversamples=10,
        power_iteration_normalizer="auto",
        random_state=None,
        solver="eigh",
        max_iter=1000,
        n_init=1,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.n_init = n_init
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    # -- hyperparameters ---------------------------------------------------------------------

    def _check_hyperparameters(self):
        _check_n_components(self.n_components)
        self._check_model_hyperparameters()
        self._check_em_hyperparameters()

    def _check_model_hyperparameters(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.svd_solver not in SVD_SOLVERS:
            raise ValueError(f"svd_solver must be one of {SVD_SOLVERS}, got {self.svd_solver!r}")
        for name in ("copy", "whiten"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not (isinstance(self.iterated_power, str) and self.iterated_power == "auto"):
            if isinstance(self.iterated_power, str):
                raise ValueError(
                    f"iterated_power must be 'auto' or an integer >= 0, got {self.iterated_power!r}"
                )
            check_integer(self, "iterated_power", 0)
        check_integer(self, "n_oversamples", 1)
        if self.power_iteration_normalizer not in POWER_ITERATION_NORMALIZERS:
            raise ValueError(
                f"power_iteration_normalizer must be one of {POWER_ITERATION_NORMALIZERS}, "
                f"got {self.power_iteration_normalizer!r}"
            )

    def _resolve_n_components(self, n_samples, n_features):
        """H from the data's shape; None where it depends on the data (the default counts the rows
        the sample weights stand for; a fraction of the variance and 'mle' read the eigenvalues),
        which :meth:`_set_closed_form_parameters` resolves."""
        if self.n_components is None:
            return None
        if isinstance(self.n_components, str):  # 'mle': checked with the weights (_minka_count)
            return None
        if not isinstance(self.n_components, numbers.Integral):
            return None
        return int(self.n_components)

    def _check_data_dependent_parameters(self, n_features):
        if self._n_components is not None:
            super()._check_data_dependent_parameters(n_features)

    # -- fitting -----------------------------------------------------------------------------

    def _set_closed_form_parameters(self, X, sample_weight=None):
        if self._n_components is None:
            self._n_components = self._n_components_from_data(X, sample_weight)
        if self.solver == "em":
            if self.warm_start and hasattr(self, "converged_"):
                self._prepare_warm_start()
            return False
        self._set_maximum_likelihood(self._em_scatter)
        if not self._em_scatter.exact and self._needs_exact_factor(self._em_scatter):
            # The smallest eigenvalues of the accumulated covariance carry round-off of ~1e-16 of
            # the largest: a noise that small is taken from the exact factor of the rows.
            self._em_scatter = data_scatter(X, sample_weight)
            self._set_maximum_likelihood(self._em_scatter)
        return True

    def _n_components_from_data(self, X, sample_weight):
        scatter = self._em_scatter
        n_features = scatter.mean.shape[0]
        if self.n_components is None:
            # PCA's min(n_samples, n_features) (minus one for its ARPACK solver), integer weights
            # counting as repeated rows.
            largest = min(int(round(scatter.n_weighted)), n_features)
            return max(largest - 1, 0) if self.svd_solver == "arpack" else largest
        if not scatter.exact:
            # The accumulated covariance blurs eigenvalues near 0 by ~1e-16 of the largest, and
            # Minka's evidence takes their logarithms: both choices read the exact factor of the
            # rows, which the fit then uses.
            self._em_scatter = scatter = data_scatter(X, sample_weight)
        spectrum = _spectrum(scatter.factor)
        if isinstance(self.n_components, str):
            return _minka_dimension(spectrum, _minka_count(scatter, sample_weight))
        return _fraction_dimension(spectrum, float(self.n_components))

    def _prepare_warm_start(self):
        self._last_elbo, self._last_log_step, self._profiled = None, None, False
        if self.loadings_.shape[0] != self._n_components:
            raise ValueError(
                f"warm_start=True but these data give n_components = {self._n_components}, the last fit "
                f"had {self.loadings_.shape[0]}; refit with warm_start=False"
            )
        if self.noise_variance_ == 0:
            # EM needs a positive noise: the same model with the noise at its floor.
            floor = float(self._noise_floor[0])
            scale = np.sqrt(np.maximum(self.explained_variance_ - floor, 0.0))
            self.loadings_ = scale[:, None] * self.components_
            self.noise_variance_ = np.float64(floor)

    def _set_maximum_likelihood(self, scatter):
        """The closed-form ML solution (Tipping & Bishop 1999): the noise is the mean of the D - H
        smallest eigenvalues of the covariance (summed as squares, no subtraction), floored; the
        components are the H leading eigenvectors."""
        n_components = self._n_components
        from_covariance = _principal_directions_of_covariance(scatter, n_components)
        if from_covariance is not None:
            leading, vectors, rest = from_covariance
            total = float(np.sum(leading)) + rest
            rest /= scatter.mean.shape[0] - n_components
        else:
            # Where the covariance's subset eigensolver was tried and could not resolve the
            # spread, the factor's Gram matrix (the same matrix) cannot either: the full SVD.
            tried = scatter.covariance is not None
            squares, vectors = _principal_directions(scatter.factor, n_components, try_gram=not tried)
            leading, rest = squares[:n_components], squares[n_components:]
            rest = float(np.mean(rest)) if rest.size else 0.0
            # The total variance as n_components=fraction sums it (the same eigenvalues).
            total = float(np.sum(squares))
        noise = max(rest, float(self._noise_floor[0]))
        variances = np.maximum(leading, noise)
        self.mean_ = scatter.mean
        self.noise_variance_ = np.float64(noise)
        self.loadings_ = np.sqrt(variances - noise)[:, None] * vectors
        self._set_principal_axes(vectors, variances, scatter, total)

    def _set_principal_axes(self, components, variances, scatter, total):
        self.components_ = components
        self.explained_variance_ = variances
        with np.errstate(invalid="ignore", divide="ignore"):
            self.explained_variance_ratio_ = (
                variances / total if total > 0 else np.full_like(variances, np.nan)
            )
        self.singular_values_ = np.sqrt(scatter.n_weighted * variances)
        self.n_samples_ = scatter.n_samples

    def _describe_loadings(self, scatter):
        """PCA's attributes of the current loadings and noise (EM's parameters): the loadings'
        SVD ``P diag(s) Q`` gives the axes Q (PCA's sign) and the variances ``s^2 + noise``; the
        loadings are rotated to ``diag(s) Q`` (the same model)."""
        n_components, n_features = self.loadings_.shape
        if n_components == 0:
            axes, values = np.zeros((0, n_features)), np.zeros(0)
        else:
            _, values, axes = linalg.svd(self.loadings_, full_matrices=False, lapack_driver="gesvd")
            axes = _flip_signs(axes)
        self.loadings_ = values[:, None] * axes
        total = float(np.sum(scatter.variances))
        self._set_principal_axes(axes, values**2 + float(self.noise_variance_), scatter, total)

    def _finish_fit(self):
        n_components, n_features = self.components_.shape
        self.n_components_ = n_components
        if n_components == n_features:
            # Nothing is left to the noise: the same covariance with noise 0 (PCA's noise).
            self.loadings_ = np.sqrt(self.explained_variance_)[:, None] * self.components_
            self.noise_variance_ = np.float64(0.0)
            self._training_decomposition = None  # see entropy_decomposition

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        scatter = self._em_scatter
        n_features = scatter.mean.shape[0]
        scale = float(np.mean(scatter.variances))
        scale = scale if scale > 0 else float(self._noise_floor[0])
        self.mean_ = scatter.mean
        self.loadings_ = random_state.standard_normal((self._n_components, n_features)) * np.sqrt(scale)
        self.noise_variance_ = np.float64(scale)
        self._last_elbo, self._last_log_step, self._profiled = None, None, False

    def _m_step(self, statistics):
        """EM's step; where EM's change of the ELBO has fallen below ``tol`` (the run would stop),
        also the loadings that maximise the likelihood for EM's new noise (the closed form's
        loadings for that noise: the leading eigenvectors of the data covariance), kept if they
        raise the mean log-likelihood by more than ``tol``, and the run then goes on.

        EM never moves a loading direction it has shrunk to round-off: from a random start whose
        noise is far above the variance of most directions (features in different units), the
        first steps shrink those directions by many orders of magnitude, and they grow back by a
        constant factor per step, each step changing the likelihood by less than ``tol``: EM alone
        would stop at that saddle point (raw wine: -23.33 per sample, the optimum -18.71). Near the
        optimum, where EM's noise crawls, the Aitken extrapolation of the noise ends the crawl."""
        previous = float(self.noise_variance_)
        super()._m_step(statistics)
        last, self._last_elbo = getattr(self, "_last_elbo", None), statistics.elbo
        step = math.log(float(self.noise_variance_)) - math.log(previous)
        last_step, self._last_log_step = getattr(self, "_last_log_step", None), step
        self._profiled = False
        tolerance = self._convergence_tolerance()
        if last is None or not abs(statistics.elbo - last) < tolerance or self._n_components == 0:
            return
        scatter, noise = statistics.scatter, float(self.noise_variance_)
        posterior = factor_posterior(self.loadings_, self._noise_vector())
        best = mean_log_likelihood(scatter, self.mean_, posterior)
        trials = [noise]
        if last_step and 0.0 < step / last_step < 1.0:
            # EM's noise steps shrink by a constant ratio r near its optimum: the r / (1 - r)
            # steps still to come, taken at once (Aitken).
            ratio = step / last_step
            trials.append(max(noise * math.exp(step * ratio / (1.0 - ratio)), float(self._noise_floor[0])))
        found = None
        for trial in trials:
            noise_vector = np.full(self.mean_.shape, trial)
            loadings = optimal_components(
                scatter.factor, noise_vector, self._n_components, factor_gram(scatter, self._n_components)
            )
            value = mean_log_likelihood(scatter, self.mean_, factor_posterior(loadings, noise_vector))
            if value - best > tolerance:
                best, found = value, (loadings, np.float64(trial))
        if found is not None:
            (self.loadings_, self.noise_variance_), self._profiled = found, True

    def _left_stationary_point(self):
        return getattr(self, "_profiled", False)

    def _noise_from_vector(self, noise):
        return np.float64(noise[0])

    def _set_parameters(self, parameters):
        super()._set_parameters(parameters)
        self._describe_loadings(self._em_scatter)  # PCA's axes and variances of the loadings

    # -- inference ---------------------------------------------------------------------------

    @single_threaded_blas
    def transform(self, X):
        """Project X on the principal axes, as PCA does: ``(X - mean_) @ components_.T``, divided
        by ``sqrt(explained_variance_)`` when ``whiten``.

        The posterior mean of the latent factors is this projection (``whiten=False``) times
        ``sqrt(explained_variance_ - noise_variance_) / explained_variance_``, per component.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, streamed (memmap, h5py dataset, Zarr array, RowSource: read block by
            block) or a dask array.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            float64 (a lazy dask array, chunked as X's rows, for a dask array X).
        """
        X = self._validate_rows_for_inference(X)
        scale = self._whitening_scale() if self.whiten else None
        project = functools.partial(_projections, self.components_, self.mean_, scale)
        return self._per_row(X, (self.components_.shape[0],), project)

    def inverse_transform(self, X):
        """Map projections back to feature space, as PCA does: ``X @ components_ + mean_``, the
        components first multiplied by ``sqrt(explained_variance_)`` when ``whiten``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = check_array(
            in_native_byte_order(X), dtype=[np.float64, np.float32], ensure_min_features=0, input_name="X"
        )
        n_components = self.components_.shape[0]
        if X.shape[1] != n_components:
            raise ValueError(
                f"X has {X.shape[1]} columns, but {type(self).__name__} has {n_components} components"
            )
        axes = self.components_ * self._whitening_scale()[:, None] if self.whiten else self.components_
        return X.astype(np.float64, copy=False) @ axes + self.mean_

    def _whitening_scale(self):
        # PCA's guard: a component without variance would divide by 0.
        return np.maximum(np.sqrt(self.explained_variance_), np.finfo(np.float64).eps)

    @single_threaded_blas
    def score_samples(self, X):
        """Log-likelihood ``log p(x_n)`` of every sample under the fitted model, shape (n_samples,)
        (a lazy dask array for a dask array X)."""
        if getattr(self, "noise_variance_", None) != 0:
            return super().score_samples(X)
        # H = D and no noise: the covariance is components_^T diag(explained_variance_) components_.
        X = self._validate_rows_for_inference(X)
        log_likelihoods = functools.partial(
            _noiseless_log_likelihoods, self.components_, self.explained_variance_, self.mean_
        )
        return self._per_row(X, (), log_likelihoods)

    def get_precision(self):
        """Model precision (inverse covariance), through the Woodbury identity written so that it
        does not cancel when the noise variance is tiny relative to the loadings (from the
        eigendecomposition when the noise is 0)."""
        check_is_fitted(self)
        if self.noise_variance_ == 0:
            return (self.components_.T / self.explained_variance_) @ self.components_
        return super().get_precision()

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

        Raises
        ------
        ValueError
            When ``n_components == n_features``: the noise variance is 0, and the entropies of
            ``p(x | z)`` and of the posterior are -inf.
        """
        check_is_fitted(self)
        if self.noise_variance_ == 0:
            raise ValueError(_ZERO_NOISE_DECOMPOSITION)
        return super().entropy_decomposition(X)


def _check_n_components(value):
    """None, an integer >= 0, a float in (0, 1) or 'mle' (scikit-learn PCA's choices)."""
    if value is None or (isinstance(value, str) and value == "mle"):
        return
    is_number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if is_number and (value >= 0 if isinstance(value, numbers.Integral) else 0 < value < 1):
        return
    raise ValueError(f"n_components must be None, an integer >= 0, a float in (0, 1) or 'mle', got {value!r}")


def _flip_signs(vectors):
    """Rows with their largest-magnitude entry made positive (scikit-learn's ``svd_flip`` on V)."""
    signs = np.sign(vectors[np.arange(vectors.shape[0]), np.argmax(np.abs(vectors), axis=1)])
    signs[signs == 0] = 1.0
    return vectors * signs[:, None]


def _principal_directions(factor, n_components, try_gram=True):
    """All D eigenvalues of ``factor^T factor`` (descending, zeros beyond its rows) and its
    ``n_components`` leading eigenvectors (rows, PCA's sign), from an SVD accurate to round-off
    of the largest singular value (wide factors through a QR of their transpose: O(N^2 D), no
    Gram matrix, whose round-off would blur the directions of no variance).

    Directions of no variance (a singular value within ``D eps`` of the largest, or beyond the
    factor's rows) are any orthonormal basis of the complement of the others; they are taken as
    the coordinate axes orthogonalised against the others, a basis that depends only on the data's
    span, so that fits of the same data by another route (tall or wide, repeated rows or integer
    weights) project on the same axes.
    """
    n_rows, n_features = factor.shape
    if n_rows == 0:
        values, vectors = np.zeros(0), np.zeros((0, n_features))
    elif n_rows < n_features:
        basis, triangle = linalg.qr(factor.T, mode="economic")  # factor = triangle^T basis^T
        _, values, right = linalg.svd(triangle.T, lapack_driver="gesvd")
        vectors = right @ basis.T
    else:
        values, vectors = _tall_principal_directions(factor, n_components, try_gram)
    squares = np.concatenate([values**2, np.zeros(n_features - values.shape[0])])
    resolved = values > (values[0] if values.size else 0.0) * n_features * np.finfo(np.float64).eps
    known = min(int(np.count_nonzero(resolved)), n_components)
    vectors = vectors[:known]
    if known < n_components:
        candidates = np.hstack([vectors.T, np.eye(n_features, min(n_features, n_components + known))])
        completion = linalg.qr(candidates, mode="economic")[0].T[known:n_components]
        vectors = np.vstack([vectors, completion])
    return squares, _flip_signs(vectors)


def _tall_principal_directions(factor, n_components, try_gram=True):
    """The singular values of a tall factor and (at least) its ``n_components`` leading right
    singular vectors. Where :func:`gram_directions_apply` (256 features on), the values come from
    an SVD without vectors and the vectors from the Gram matrix's subset eigensolver where that is
    accurate (:func:`leading_directions_of_gram`; not tried again when ``try_gram`` is False): a
    full SVD with vectors took 2.0 s at D = 1,000, the two together 0.4 s. Otherwise, one SVD with
    vectors."""
    if gram_directions_apply(*factor.shape, max(n_components, 1)):
        if n_components == 0:  # the values alone
            return linalg.svd(factor, compute_uv=False), factor[:0]
        from_gram = leading_directions_of_gram(factor, n_components) if try_gram else None
        if from_gram is not None:
            return linalg.svd(factor, compute_uv=False), from_gram[1]
    _, values, vectors = linalg.svd(factor, full_matrices=False, lapack_driver="gesvd")
    return values, vectors


def _principal_directions_of_covariance(scatter, n_components):
    """``(leading, vectors, rest)`` of a fast scatter (one whose accumulated covariance it keeps)
    where :func:`gram_directions_apply`: the ``n_components`` leading eigenvalues and eigenvectors
    (rows, PCA's sign) from the subset eigensolver on the covariance itself
    (:func:`leading_directions_of_gram`), and the sum of the other eigenvalues: the factor's
    variance off the leading directions (the noise is its mean). No SVD of the factor: at D =
    2,000 that and the Gram matrix cost three times the subset eigensolver. None elsewhere (an
    exact factor, a rank-deficient covariance, a spread of the leading values the Gram cannot resolve)."""
    factor = scatter.factor
    if scatter.covariance is None or not gram_directions_apply(*factor.shape, n_components):
        return None
    from_gram = leading_directions_of_gram(factor, n_components, scatter.covariance)
    if from_gram is None:
        return None
    leading, vectors = from_gram
    # The rest as the factor's residual off the leading directions, a sum of squares: the trace
    # minus the leading values cancels where they hold nearly all of it (H = D - 1: 2e-11
    # relative). An error of the directions enters it to second order only.
    residual = factor - (factor @ vectors.T) @ vectors
    rest = float(np.einsum("id,id->", residual, residual))
    return leading, _flip_signs(vectors), rest


def _spectrum(factor):
    """All D eigenvalues of ``factor^T factor``, descending (zeros beyond its rows)."""
    return _principal_directions(factor, 0)[0]


def _fraction_dimension(spectrum, fraction):
    """The smallest H whose leading eigenvalues hold more than ``fraction`` of their sum (0 for
    data without variance)."""
    total = float(np.sum(spectrum))
    if not total > 0:
        return 0
    cumulative = np.cumsum(spectrum / total)
    return min(int(np.searchsorted(cumulative, fraction, side="right")) + 1, spectrum.shape[0])


def _minka_count(scatter, sample_weight):
    """The number of samples N of Minka's evidence for ``n_components='mle'``: the rows, or with
    ``sample_weight`` the rows the weights stand for (integer weights as repeated rows, zero weights
    as absent rows, the weights up to a common factor), at least ``n_features`` of them.

    Raises
    ------
    ValueError
        With fewer such rows than features (as scikit-learn's PCA), or with weights that are not
        counts (integer multiples of the smallest positive weight): the evidence needs a number of
        samples, and other weights do not say how many they stand for (weights 0.7 and 1 were
        counted as 1 and 1.43 rows, a fraction of a sample).
    """
    n_features = scatter.mean.shape[0]
    if sample_weight is not None:
        weights = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), (scatter.n_samples,))
        counts = weights[weights > 0] / np.min(weights[weights > 0])
        if not np.allclose(counts, np.round(counts), rtol=0.0, atol=1e-9 * np.max(counts)):
            raise ValueError(
                "n_components='mle' with sample_weight needs weights that count repeated rows (integer "
                "multiples of the smallest positive weight): Minka's evidence depends on the number "
                "of samples, which other weights do not give; choose an integer n_components, or "
                "fit without weights"
            )
    n_samples = int(round(scatter.n_weighted))
    if n_samples < n_features:
        what = "n_samples" if sample_weight is None else "n_samples (the rows the sample weights stand for)"
        raise ValueError(
            f"n_components='mle' is only supported if n_samples >= n_features, got {what} = "
            f"{n_samples}, n_features = {n_features}"
        )
    return n_samples


def _minka_dimension(spectrum, n_samples):
    """The rank in [1, D - 1] of largest Laplace-approximated evidence (Minka 2000), or 0 when no
    rank has one (D = 1, or no variance)."""
    evidence = [-np.inf] + [
        _minka_log_evidence(spectrum, rank, n_samples) for rank in range(1, spectrum.shape[0])
    ]
    return int(np.argmax(evidence))


def _minka_log_evidence(spectrum, rank, n_samples):
    """Minka's (2000, eq. 30) Laplace approximation of ``log p(X | rank)`` for PPCA with the
    eigenvalues ``spectrum`` (descending) of the covariance of ``n_samples`` rows; -inf where it is
    not defined (an eigenvalue kept is zero, or two that enter the Hessian coincide)."""
    n_features = spectrum.shape[0]
    tiny = MLE_RELATIVE_EPS * spectrum[0]
    if not spectrum[rank - 1] > tiny:
        return -np.inf
    kept = spectrum[:rank]
    noise = max(float(np.mean(spectrum[rank:])), tiny)
    # p(U): the uniform density on the Stiefel manifold, from the areas of unit spheres.
    dims = (n_features - np.arange(rank)) / 2.0
    log_p_axes = -rank * math.log(2.0) + float(np.sum(gammaln(dims) - dims * math.log(math.pi)))
    log_p_values = -0.5 * n_samples * (float(np.sum(np.log(kept))) + (n_features - rank) * math.log(noise))
    n_parameters = n_features * rank - rank * (rank + 1) / 2.0
    log_volume = 0.5 * (n_parameters + rank) * LOG_2PI
    # log|A_Z|: the Hessian's determinant over the pairs (i < rank, j > i).
    fitted = np.concatenate([kept, np.full(n_features - rank, noise)])
    i, j = np.arange(rank)[:, None], np.arange(n_features)[None, :]
    pairs = np.broadcast_to(j > i, (rank, n_features))
    products = ((spectrum[i] - spectrum[j]) * (1.0 / fitted[j] - 1.0 / fitted[i]))[pairs]
    if np.any(products <= 0):
        return -np.inf
    log_hessian = float(np.sum(np.log(products))) + products.shape[0] * math.log(n_samples)
    return log_p_axes + log_p_values + log_volume - 0.5 * log_hessian - 0.5 * rank * math.log(n_samples)


def _projections(components, mean, scale, rows):
    """``(rows - mean) @ components.T`` in float64, divided by ``scale`` unless it is None."""
    projected = (rows.astype(np.float64, copy=False) - mean) @ components.T
    return projected / scale if scale is not None else projected


def _noiseless_log_likelihoods(components, variances, mean, rows):
    """``log p(x)`` of every row under the noiseless model ``components^T diag(variances)
    components`` (H = D), in float64."""
    whitened = ((rows.astype(np.float64, copy=False) - mean) @ components.T) / np.sqrt(variances)
    constant = float(np.sum(np.log(variances))) + mean.shape[0] * LOG_2PI
    return -0.5 * (np.einsum("nh,nh->n", whitened, whitened) + constant)
