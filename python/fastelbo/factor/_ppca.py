"""FastPPCA: probabilistic principal component analysis (Tipping & Bishop, 1999)."""

from __future__ import annotations

import numpy as np

from fastelbo._progress import document_progress_parameters
from fastelbo.factor._factor_model import LinearGaussianFactorModel
from fastelbo.factor._linear_gaussian import ppca_maximum_likelihood
from fastelbo.factor._scatter import data_scatter

SOLVERS = ("eigh", "em")


@document_progress_parameters("EM's progress (``solver='em'``; the closed form prints nothing) on stdout")
class FastPPCA(LinearGaussianFactorModel):
    """Probabilistic PCA, with the ELBO's entropy decomposition.

    The model is ``x = components_^T z + mean_ + noise``, ``z ~ N(0, I)``, ``noise ~ N(0,
    noise_variance_ I)``. It depends on the data only through their mean and covariance: one
    blocked pass over X reduces them to a triangular factor of the covariance (D x D; for wide
    data, N < D, the N x D centred rows themselves, never a D x D matrix), after which every EM
    iteration costs O(min(N, D) D H), independent of the number of samples. ``solver='eigh'``
    returns the closed-form maximum-likelihood solution from the covariance's eigendecomposition
    (its ``score`` is the one :meth:`sklearn.decomposition.PCA.score` computes with ML
    variances); ``solver='em'`` runs EM from a random start, with the ELBO and entropy sum of
    every iteration.

    X may be an in-memory array, or be read block by block and never copied whole into memory: a
    ``numpy.memmap``, an ``h5py.Dataset``, a ``zarr.Array`` or a :class:`~fastelbo.RowSource`
    (fits agree with the in-memory fit to round-off); a ``dask.array`` is reduced on the Dask
    workers (bitwise the fit of a RowSource with the same blocks), and :meth:`transform` and
    :meth:`score_samples` then return lazy dask arrays.

    Parameters
    ----------
    n_components : int, default=None
        Number of latent factors H (``<= n_features``). None: ``max(n_features - 1, 1)`` (at least
        one dimension is left to the noise).
    solver : {'eigh', 'em'}, default='eigh'
        'eigh': closed form (one step; the histories hold one entry). 'em': EM iterations.
    tol : float, default=1e-6
        EM convergence threshold on the change of the mean log-likelihood (the ELBO).
    max_iter : int, default=1000
        Maximum number of EM iterations per initialisation.
    n_init : int, default=1
        Number of EM initialisations (random starts); the best by final ELBO is kept.
    random_state : int, RandomState instance or None, default=None
        Seed of EM's random start and of :meth:`sample`.
    warm_start : bool, default=False
        EM starts the next ``fit`` from the current components and noise (``n_init`` is then
        ignored); the mean is always the data's.
    {progress_parameters}
    n_jobs : int, default=None
        Accepted for compatibility: the pass over X runs in the calling thread, so results are
        bitwise identical for any value.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Loadings ``W^T`` (rows ``sqrt(lambda_h - noise_variance_) u_h^T`` at the ML solution).
    noise_variance_ : float
        Isotropic noise variance, floored at 1e-14 times the mean variance of the features (a
        floor relative to the data's scale, so that ``score`` shifts by exactly ``-D log s``
        when X is multiplied by s; it is reached when ``n_components`` equals the number of
        features, and the training decomposition's ``note`` then says so).
    mean_ : ndarray of shape (n_features,)
        Mean of the training data (weighted by ``sample_weight``).
    n_components_ : int
        The number of factors used.
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

    def __init__(
        self,
        n_components=None,
        *,
        solver="eigh",
        tol=1e-6,
        max_iter=1000,
        n_init=1,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_jobs = n_jobs

    def _check_model_hyperparameters(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")

    def _resolve_n_components(self, n_samples, n_features):
        if self.n_components is None:
            return max(n_features - 1, 1)
        return int(self.n_components)

    def _set_closed_form_parameters(self, X, sample_weight=None):
        if self.solver == "em":
            return False
        self._set_maximum_likelihood(self._em_scatter)
        if not self._em_scatter.exact and self._needs_exact_factor(self._em_scatter):
            # The smallest eigenvalues of the accumulated covariance carry round-off of ~1e-16 of
            # the largest: a noise that small is taken from the exact factor of the rows.
            self._em_scatter = data_scatter(X, sample_weight)
            self._set_maximum_likelihood(self._em_scatter)
        return True

    def _set_maximum_likelihood(self, scatter):
        components, noise = ppca_maximum_likelihood(scatter.factor, self._n_components, self._noise_floor[0])
        self.mean_ = scatter.mean
        self.components_ = components
        self.noise_variance_ = self._noise_from_vector(noise)

    def _finish_fit(self):
        self.n_components_ = self.components_.shape[0]

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        scatter = self._em_scatter
        n_features = scatter.mean.shape[0]
        scale = float(np.mean(scatter.variances))
        scale = scale if scale > 0 else float(self._noise_floor[0])
        self.mean_ = scatter.mean
        self.components_ = random_state.standard_normal((self._n_components, n_features)) * np.sqrt(scale)
        self.noise_variance_ = np.float64(scale)

    def _noise_from_vector(self, noise):
        return np.float64(noise[0])
