"""FastGMM: a drop-in replacement for :class:`sklearn.mixture.GaussianMixture` whose E-step runs in
the blocked C++ kernel, and which reports the ELBO's entropy decomposition."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state

from fastelbo._base import BeyondDtype, check_integer, check_nonnegative_real
from fastelbo._block_reduction import reduce_blocks
from fastelbo._mixture_estimator import MixtureEstimator
from fastelbo._mixture_pass import RowOutputs
from fastelbo._progress import document_progress_parameters
from fastelbo._row_source import RowSource, describe, initialisation_rows, widened_to_float64
from fastelbo._threads import resolve_n_threads, single_threaded_blas
from fastelbo._validation import SMALLEST_FIT_VARIANCE, as_float_array, normalisation_tolerance
from fastelbo.entropy import EntropyDecomposition, categorical_entropy, gaussian_entropy
from fastelbo.exceptions import Float32RangeWarning
from fastelbo.mixture._covariance import (
    COVARIANCE_TYPES,
    ILL_DEFINED_COVARIANCE,
    check_precisions_init,
    covariances_from_precisions_cholesky,
    covariances_in_dtype,
    half_log_det_covariances,
    n_parameters,
    precisions_cholesky_from_precisions,
    precisions_from_cholesky,
    rounding_cost,
)
from fastelbo.mixture._cuda_backend import (
    discard_device_rows,
    resolve_device,
    uses_cuda,
)
from fastelbo.mixture._cuda_backend import gaussian_pass as cuda_gaussian_pass
from fastelbo.mixture._gaussian_mstep import (
    about_stored_means,
    gaussian_m_step,
    moments_lose_precision,
    new_means,
)
from fastelbo.mixture._gaussian_pass import GaussianPassParameters, GaussianPassRequest, gaussian_block_pass
from fastelbo.mixture._initialization import (
    INIT_PARAMS,
    column_mean_and_variance,
    initial_responsibilities,
    initial_statistics,
)
from fastelbo.mixture._posterior_reach import posterior_reach
from fastelbo.mixture._truncated import TruncatedSearch, check_truncation, initial_neighbours

#: Largest expansion condition number (see ``FastGMM._needs_homes``) used without home labels:
#: about 2 of float32's 7 digits, 5 of float64's 16. (1e3 for float64 gains two digits, and cost
#: 13% per iteration of a diag fit with kappa 2e3 and 2.2x in score_samples with kappa 1e4:
#: bench/expansion_threshold.py.)
_MAX_EXPANSION_CONDITION = {np.float32: 1e2, np.float64: 1e5}


def _too_small_for(dtype, what, smallest):
    """Why ``dtype`` cannot hold a fit whose ``what`` reach ``smallest``, or None if it can (a
    variance of 0 or less is an ill-defined covariance, which the covariance check names)."""
    limit = SMALLEST_FIT_VARIANCE[np.dtype(dtype)]
    if not 0 < smallest < limit:
        return None
    return (
        f"{what} reach {smallest:.4g}, below 2**{int(np.log2(limit))} ({limit:.3g}), where squared "
        f"deviations leave {np.dtype(dtype).name}'s normal numbers"
    )


def _numerically_singular(covariances, precisions_cholesky):
    """Whether a covariance matrix whose Cholesky factorisation succeeded is singular to float64
    precision: a pivot ``L_ii^2 = 1 / U_ii^2`` at most ``D eps max_i Sigma_ii`` (the size of the
    factorisation's backward error, and ``matrix_rank``'s tolerance) is zero within round-off.
    float32 can round a covariance to an exactly singular matrix (two columns equal bit for bit,
    reg_covar lost beside much larger variances); whether the factorisation then meets a negative,
    zero or tiny positive pivot depends on the LAPACK kernel's order of operations."""
    covariances = np.asarray(covariances, dtype=np.float64)
    factors = np.asarray(precisions_cholesky, dtype=np.float64)
    pivots = 1.0 / np.diagonal(factors, axis1=-2, axis2=-1) ** 2
    scale = np.diagonal(covariances, axis1=-2, axis2=-1).max(axis=-1)
    return bool(np.any(pivots.min(axis=-1) <= covariances.shape[-1] * np.finfo(np.float64).eps * scale))


@document_progress_parameters()
class FastGMM(MixtureEstimator, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM in C++, with the ELBO's entropy decomposition.

    Same parameters, attributes and methods as :class:`sklearn.mixture.GaussianMixture`, plus
    ``n_jobs``, :meth:`entropy_decomposition` and the histories ``elbo_history_`` and
    ``entropy_sum_history_``. float32 input is computed in float32 (parameters are stored in the
    input's dtype); any other input in float64.

    Precision: the diag, spherical and tied kernels evaluate log-joints as matrix products of rows
    expanded about a point shared by many rows, which loses about log10(kappa) digits, kappa the
    largest squared Mahalanobis distance of a component mean from the mixture's mean: a
    log-likelihood is accurate to about ``(4 + 2 n_features) eps min(kappa, limit)``, with limit
    ``1e5`` in float64 and ``1e2`` in float32; beyond the limit rows are expanded about their own
    most probable component. Rows for which a component far from that point (in its own metric)
    may matter are evaluated without the expansion in float64 instead, so float32 gives the
    float64 answer to float32 precision for components of very different widths at any offset
    float32 can represent. Where the fitted parameters themselves cannot be held in float32 (a
    covariance whose condition number approaches ~1e7: a duplicated or collinear column held apart
    by ``reg_covar``), the fit continues in float64: at the first M-step whose covariances, rounded
    to float32, change its objective by more than ``tol`` (or are not positive definite), ``fit``
    warns (:class:`~fastelbo.exceptions.Float32RangeWarning`), reads X in float64 (an in-memory
    array is converted; a streamed one block by block) and redoes that iteration in float64 from
    the parameters it started from (its float32 statistics hold the near-singular directions no
    better than the rounding), within the same ``max_iter`` (with ``n_init > 1`` every run does so before
    the runs are compared); the parameters are then float64. The means are stored in the
    parameters' dtype and the covariances are the scatter about the stored means, so a float32
    mean far from the origin (spacing 0.06 at 1e6) costs only what its rounding must.
    ``covariances_`` and ``precisions_cholesky_`` always describe the same (rounded) model.
    Variances (of X's columns, or fitted) below ``2**-100`` (about ``7.9e-31``: X scaled by
    ``1e-16`` or less, say), whose squared deviations float32 would flush to zero, take the same
    route: such float32 data are fitted in float64 from the start (or from that M-step), with the
    warning; in float64 the limit is ``2**-996`` (about ``1.5e-300``), and below it ``fit`` raises a
    ValueError naming X.

    ``fit(X, sample_weight=w)`` fits the weighted model: the ELBO, ``lower_bound_`` and the entropy
    decomposition are weighted averages ``(1/W) sum_n w_n f_n``, and an
    integer weight acts like repeating the row that many times (zero: the row is absent). With
    ``n_active`` that holds for the model fitted, not the path: each row searches its own set of
    components (the copies of a repeated row separately, with draws of their own), so truncated
    fits of weighted and of repeated rows differ.

    Input from another array library (scikit-learn's ``array_api_dispatch``) is converted to NumPy
    when it can be (CPU arrays); fitted attributes and results are NumPy arrays.

    Data larger than memory: a ``numpy.memmap``, an ``h5py`` dataset, a ``zarr`` array or a
    :class:`~fastelbo.RowSource` is read in blocks of rows, never copied whole (exact and truncated
    EM; the initialisation runs on a sample of about 2**18 rows in runs of consecutive rows drawn
    with ``random_state``, every row when there are fewer). A ``dask.array`` chunked by rows is fitted
    on the active Dask scheduler: the E-step runs on the workers, one chunk per task, and only
    statistics and parameters travel; per-row results of dask input are lazy dask arrays. Results
    equal the in-memory fit to round-off, and are bitwise identical for a given block size (chunk
    sizes) and any number of threads or workers.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Form of the component covariances.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood (the ELBO).
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance. It keeps covariances positive definite; it also
        makes the entropy identity inexact by about ``reg_covar/2 * sum_c qbar_c tr(Sigma_c^-1)``.
        It is absolute, as in scikit-learn: a variance in the squared units of X, so on data of a
        small scale (variances near or below 1e-6) it dominates the fit; scale it with the data.
        Everything else is scale-free: with X multiplied by s and ``reg_covar`` by s**2, the fit is
        the same up to round-off (means times s, covariances times s**2) and every log-likelihood
        shifts by exactly ``-n_features * log(s)``; multiplying all sample weights by a constant
        changes nothing (the only internal floor, on the components' weights, is relative to the
        mean sample weight).
    max_iter : int, default=100
        Number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best by final lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'afkmc2', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are chosen, as in scikit-learn, plus 'afkmc2': AFK-MC²
        seeding (Bachem et al., NeurIPS 2016), k-means++ approximated by Markov chains of
        ``afkmc2_chain_length`` rows, at cost ``O(N·D + m·K²·D)`` instead of k-means++'s
        ``O(N·K·D)``; like 'k-means++' it puts one-hot responsibilities on its K seed rows. The
        k-means seeding and Lloyd iterations run in C++ with fastelbo's own random generator
        (seeded from ``random_state``), so for the same seed the initial clusters of 'kmeans' and 'k-means++'
        differ from scikit-learn's ('random' and 'random_from_data' draw what scikit-learn draws
        when no ``sample_weight`` is given). With ``sample_weight`` the seeding and k-means are
        weighted; 'random_from_data' then draws its rows with probability proportional to the
        weights, like ``KMeans(init='random')``. 'kmeans' and 'k-means++' seed and cluster X's
        distinct rows of positive weight (duplicates merged, their weights summed) in an order
        fixed by the rows' values, so the start does not depend on the order of the rows, and
        integer weights start exactly as the rows repeated, and ``s X + b`` (s > 0) starts from the
        start of X mapped (the cost: an ``O(N log N)`` sort of the rows' values, read in place,
        and a centred float32 copy of the rows for the k-means++ seeding, as large as a float32 X,
        half a float64 one: 'afkmc2' and 'random_from_data' make none); 'random' and
        'random_from_data' draw in row order. Every start is the exact M-step of its
        responsibilities. With one-hot responsibilities ('random_from_data', 'k-means++',
        'afkmc2') and ``covariance_type='tied'`` scikit-learn's start differs: its tied estimator
        sums ``X^T X`` over all rows, as if each row's responsibilities summed to 1, and starts
        from a covariance of the order of the data's second moment, where fastelbo's is
        ``reg_covar`` times the identity (the scatter of K single rows about themselves), so the
        two fits take different paths.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixing weights.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped as ``covariances_``.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation (and of :meth:`sample`). The k-means initialisations draw one
        seed from it for fastelbo's own generator (see ``init_params``).
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then ignored). Exact EM
        then continues exactly as one longer fit. Truncated EM (``n_active``) keeps no per-row
        state between fits: a warm start finds every row's set K_n anew from the current
        parameters (as a first E-step does), so its free energy may start below where the last
        fit ended and its path differ from one longer fit's.
    {progress_parameters}
    afkmc2_chain_length : int, default=200
        Length m of the Markov chains of ``init_params='afkmc2'`` (longer: closer to k-means++).
    n_active : int, default=None
        None: exact EM. An integer C' turns on truncated variational EM for many components
        (Forster & Lücke, AISTATS 2018; every ``covariance_type``): every training row
        keeps C' components and each E-step searches the neighbour lists of those plus one random
        component, at cost ``O(N·C'·G·D)`` per iteration (full: ``O(N·C'·G·D²)``) instead of
        ``O(N·K·D)``, with ``N·C'`` int32 of per-row state. ``elbo_history_``, ``lower_bound_`` and
        the training decomposition then report the truncated free energy
        ``<log sum_{c in K_n} pi_c N(x_n; mu_c, Sigma_c)>`` (at most the mean log-likelihood), for
        which the entropy identities hold exactly; ``fit_predict`` returns every row's best component
        in its set. ``init_params='kmeans'`` (the default, ``O(N·K·D)`` per Lloyd iteration) is
        replaced by 'afkmc2' in this mode. Each run starts its neighbour lists as the nearest
        means, exactly where ``K²·D <= 2**30`` and otherwise within a coarse clustering of the means
        (cells around sqrt(K) pivots, ``O(K·sqrt(K)·D)``); its sets with one exact labelling pass
        where ``N·K·D <= 2e10``, otherwise as every row's nearest means in its coarse cell
        (``O(N·sqrt(K)·D)``); then up to 30 E-steps at the initial parameters, ``O(N·C'·G·D)`` each.
        ``score``, ``score_samples``, ``predict``,
        ``predict_proba``, ``bic``, ``aic`` and ``entropy_decomposition(X)`` stay exact: one full
        pass over all K components, ``O(N·K·D)``. A run converges once the change falls below
        ``tol`` after 10 consecutive E-steps that changed no row's most probable component (a
        search step that finds nothing changes the free energy by exactly 0, yet later steps may
        still find better sets), so it runs at least 10 iterations (11 where its first E-step
        changes a row's most probable component, as it does unless the data leave nothing to
        change): with ``max_iter < 10`` it ends unconverged. A component in no row's set gets no
        responsibility at all: from a start far from the data (a far-off ``means_init``, a warm
        start on rescaled data) truncated EM can leave components empty, or with ``reg_covar``
        below the data's scale, fitted to a few rows and not positive definite (the
        ill-defined-covariance error), where exact EM keeps them with tiny weights.
    n_neighbors : int, default=None
        G, the length of every component's neighbour list in truncated EM (None: min(5, K)).
        Needs ``n_active``.
    n_jobs : int, default=None
        Threads of the C++ kernels. ``None``: the OpenMP default (all cores unless limited by
        ``OMP_NUM_THREADS`` or ``threadpoolctl``); ``-1``: all CPUs. Results are bitwise identical
        for any value.
    device : {'cpu', 'cuda', 'auto'}, default='cpu'
        Where the E-steps run. 'cuda' runs them on the GPU (needs a build with the CUDA kernels,
        ``FASTELBO_CUDA=ON``, and a usable GPU; fit raises a ValueError naming which is missing):
        X is copied to the GPU once per fit, and the statistics feed the same M-step, so fits agree
        with the CPU's to rounding, and are deterministic on a given GPU. Exact EM only (not with
        ``n_active``); ``predict_proba`` runs on the CPU. 'auto': the GPU when both are present
        (and ``n_active`` is None), else the CPU.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Fitted parameters, in scikit-learn's shapes.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step of the best run (weighted by
        ``sample_weight`` when one was given): that of the parameters *entering* the last
        iteration, as scikit-learn's ``lower_bound_``. ``score`` and ``entropy_decomposition``
        evaluate the returned parameters, one M-step later, so they are at least as high (markedly
        higher after a single iteration) until EM has converged.
    lower_bounds_ : list of float
        ``lower_bound`` at every iteration of the best run.
    elbo_history_ : ndarray
        ``F(q^t, Theta^t)`` per iteration (equal to ``lower_bounds_``). No E-step lowers it; an
        M-step maximises F less the regulariser's term below, so where that term is not
        negligible F can fall by as much as the term changes (truncated EM on scikit-learn's
        digits, whose constant pixels ``reg_covar=0.1`` holds: by up to 1.3e-3).
    entropy_sum_history_ : ndarray
        ``S(q^t, Theta^{t+1})`` per iteration: equals ``F(q^t, Theta^{t+1})`` after every M-step,
        less the regulariser's ``reg_covar / 2 sum_c qbar_c tr(Sigma_c^-1)``, so
        ``entropy_sum_history_[t] <= elbo_history_[t + 1]``; ``elbo_history_[t] <=
        entropy_sum_history_[t]`` too where that term is negligible (not where ``reg_covar`` holds
        a direction of a covariance, a duplicated column's, say).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from fastelbo import FastGMM
    >>> X = np.r_[np.random.RandomState(0).randn(200, 2), np.random.RandomState(1).randn(200, 2) + 6]
    >>> gmm = FastGMM(n_components=2, random_state=0).fit(X)
    >>> d = gmm.entropy_decomposition()
    >>> abs(d.elbo - d.entropy_sum) < 1e-4  # F = S at convergence (up to reg_covar)
    True
    """

    _warm_start_parameters = ("n_components", "covariance_type")
    _accepts_row_sources = True

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        afkmc2_chain_length=200,
        n_active=None,
        n_neighbors=None,
        n_jobs=None,
        device="cpu",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.afkmc2_chain_length = afkmc2_chain_length
        self.n_active = n_active
        self.n_neighbors = n_neighbors
        self.n_jobs = n_jobs
        self.device = device

    # -- fitting -----------------------------------------------------------------------------

    def _discard_run_state(self):
        # The homes (see _e_step) belong to one EM run over this X; the estimator keeps none.
        vars(self).pop("_float32_rounding_cost", None)
        vars(self).pop("_float32_cause", None)
        vars(self).pop("_em_home", None)
        vars(self).pop("_em_truncated", None)
        vars(self).pop("_em_truncated_seed", None)
        discard_device_rows(self)

    # -- inference ---------------------------------------------------------------------------

    @single_threaded_blas
    def predict_truncated(self, X):
        """Approximate most probable component of every sample by the truncated search of
        ``n_active``: ``O(N·C'·G·D)`` per step instead of the ``O(N·K·D)`` of :meth:`predict`.

        Every row starts from the best ``n_active`` of ``4·sqrt(K)`` random hub components and their
        neighbour lists (one exact evaluation of the hubs, ``O(N·sqrt(K)·D)``), then walks the
        neighbour lists (first the ``n_neighbors`` nearest component means, then refreshed as in
        fit) by truncated E-steps at the fitted parameters until no row changes its best component
        (at most 30 steps). Approximate: a greedy walk can stop at a component whose lists hold
        nothing better, and such a row gets the best component it met (on well-separated clusters
        with a model that fits them, 96-99.7% of rows agree with :meth:`predict` in the tests);
        where component means are nearly equidistant (high dimension) or broad components overlap
        others, the walk finds less. Deterministic for a given ``random_state``. Needs a model with
        ``n_active`` set, and X in memory (a NumPy array; not a streamed source or a dask array).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64
        """
        X = _in_memory_rows(self._validate_for_inference(X), "predict_truncated")
        if self.n_active is None:
            raise ValueError(
                "predict_truncated needs n_active (the size of every row's set); got n_active=None"
            )
        C, G = check_truncation(self.n_active, self.n_neighbors, self.n_components)
        lists = initial_neighbours(self.means_, G)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        search = TruncatedSearch(X.shape[0], C, lists.shape[1], seed)
        return search.walk(X, self._truncated_parameters(), lists, resolve_n_threads(self.n_jobs))

    def _sample_components(self, rng, counts):
        _, n_features = self.means_.shape
        if self.covariance_type == "full":
            return np.vstack(
                [
                    rng.multivariate_normal(mean, covariance, int(count))
                    for (mean, covariance, count) in zip(self.means_, self.covariances_, counts, strict=True)
                ]
            )
        if self.covariance_type == "tied":
            return np.vstack(
                [
                    rng.multivariate_normal(mean, self.covariances_, int(count))
                    for (mean, count) in zip(self.means_, counts, strict=True)
                ]
            )
        return np.vstack(
            [
                mean + rng.standard_normal(size=(count, n_features)) * np.sqrt(covariance)
                for (mean, covariance, count) in zip(self.means_, self.covariances_, counts, strict=True)
            ]
        )

    def _n_parameters(self):
        return n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    # -- EM hooks (see fastelbo._base) -------------------------------------------------------

    def _pass(
        self,
        X,
        moments,
        log_norm=False,
        responsibilities=False,
        labels=False,
        sample_weight=None,
        home=None,
        refine=True,
        homes_only=False,
        reference=None,
        direct=None,
    ):
        """One kernel pass with the current parameters; returns (statistics, per-row outputs).

        ``X`` is an in-memory array or a :class:`RowSource`, read block by block. Moments are taken
        about the current means (the statistics' reference points), or about ``reference`` (K, D)
        where given (CPU only). ``home`` (one int64 array of
        labels per block of X, or None; a labelling pass returns them as ``out["homes"]``) names
        a component near each row: the tied kernel, and the diag and spherical kernels with
        moments, expand log-joints and moments about the centroid of a run of rows that share a
        home, which keeps them accurate when clusters sit far apart (see :meth:`_needs_homes`).
        Whatever the homes, a row that a component far from its run's centroid may matter to is
        evaluated without the expansion, in float64 (see :meth:`_needs_homes`); ``refine=False``
        skips that, for a rough labelling only (no moments). Diag and spherical passes that
        :meth:`_sums_directly` chooses sum every log-joint (and moment) directly in float64 and
        ignore homes. ``homes_only``: the
        labels are wanted as ``out["homes"]`` only, so no (N,) array of them is concatenated.
        ``direct``: whether log-joints (and moments) are summed directly, where the caller has
        decided it (:meth:`_sums_directly`).
        """
        source = X if isinstance(X, RowSource) else RowSource(X)
        if uses_cuda(self, responsibilities):
            if source.streamed:
                raise ValueError(
                    f"device='cuda' needs X in memory; {describe(source.data)} is read in blocks on "
                    "the CPU: use device='cpu', or load X into a NumPy array"
                )
            stats, out = cuda_gaussian_pass(self, source.array, moments, log_norm, labels, sample_weight)
            if labels:
                out["homes"] = [out["labels"]]  # one block, as from the CPU pass
            return stats, out
        dtype = np.result_type(source.dtype, self.means_.dtype)
        parameters = self._pass_parameters(dtype, moments)
        if reference is not None:
            parameters = dataclasses.replace(
                parameters, reference=np.ascontiguousarray(reference, dtype=np.float64)
            )
        if direct is None:
            direct = self._sums_directly(dtype, moments)
        request = GaussianPassRequest(log_norm, responsibilities, labels, refine, homes_only, direct)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        stats, out, homes = reduce_blocks(
            source,
            functools.partial(gaussian_block_pass, parameters, request),
            sample_weight,
            home,
            request.outputs(self.n_components, dtype),
        )
        if labels:
            out["homes"] = homes
        return stats, out

    def _pass_parameters(self, dtype, moments):
        """The parameter snapshot of a pass computing in ``dtype``."""
        return GaussianPassParameters.of(
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self.covariance_type,
            dtype,
            moments,
            resolve_n_threads(self.n_jobs),
        )

    def _row_outputs(self, dtype, output):
        if uses_cuda(self, output == "responsibilities"):
            raise ValueError(
                "device='cuda' needs X in memory; a dask array is read in chunks on the CPU workers: "
                "use device='cpu', or load X into a NumPy array"
            )
        working = np.result_type(dtype, self.means_.dtype)
        parameters = self._pass_parameters(working, moments=False)
        # Rows that need homes get them from a labelling pass over their block first, as in
        # _inference_pass.
        labelling = None
        if self._inference_needs_homes(dtype):
            labelling = GaussianPassRequest(labels=True, refine=False)
        request = GaussianPassRequest(**{output: True}, direct=self._sums_directly(working))
        return RowOutputs(
            functools.partial(gaussian_block_pass, parameters, request),
            output,
            _check_block_finite,
            None if labelling is None else functools.partial(gaussian_block_pass, parameters, labelling),
        )

    def _inference_pass(self, X, **outputs):
        """A pass without moments on new data. Diag and spherical covariances sum each row's
        log-joints directly and need no homes. Tied ones expand: a single row needs no home (it is its
        own run either way, so the pass gives the same bits without the labelling pass), but two rows
        or more without homes may share a run whose centroid lies far from both, which costs digits
        (1e-12 nats in float64 for clusters 1e4 widths apart)."""
        home = self._homes_for(X) if X.shape[0] > 1 and self._inference_needs_homes(X.dtype) else None
        stats, out = self._pass(X, moments=False, home=home, **outputs)
        return _check_finite(stats, X), out

    def _inference_needs_homes(self, dtype):
        """Whether passes without moments need home labels: only tied covariances' (diag and
        spherical ones sum directly where the expansion would need them; full ones expand
        nothing)."""
        return self.covariance_type == "tied" and self._needs_homes(dtype)

    def _sums_directly(self, dtype, moments=False):
        """Whether a diag or spherical pass sums each log-joint directly in float64 (exact, each
        row's result independent of its batch, no homes) rather than by the GEMM expansion.

        Without moments: where the expansion would need homes and refinement to stay accurate
        (clusters far apart for their widths), and in float32, whose expansion reaches that limit
        1,000 times sooner. Elsewhere one expanded pass is accurate to its bound and faster (1.1-1.5x
        on 100k rows and more).

        With moments (a fit's E-steps), the moments are then summed directly too, per pair of a row
        and a component with q > 0: only in float32 where the expansion needs homes, where the
        expanded pass would evaluate rows near a tenth of the means or more again in float64 (a
        far component reaches them) and rows reach at most three quarters of the components
        (:func:`posterior_reach`). Measured on 2 cores of an Intel Xeon
        (``bench/direct_moments.py``), the direct E-step was 1.2-1.7x faster on well-separated
        clusters and on photo patches, where the expanded pass refines most rows, and 2.5x on
        digits (a third of the rows). Elsewhere the expanded products were faster: 2.0-2.2x where
        rows reach nearly all of 256 components, 1.2-1.4x where groups of 4-32 overlapping
        components lie far apart (no row refined); in float64 by 1.0-1.7x.
        """
        if self.covariance_type not in ("diag", "spherical"):
            return False
        if not moments:
            return np.dtype(dtype) == np.float32 or self._needs_homes(dtype)
        if np.dtype(dtype) != np.float32 or not self._needs_homes(dtype):
            return False
        reach = posterior_reach(
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self.covariance_type,
            float(np.log(np.finfo(np.float32).tiny)),
            _MAX_EXPANSION_CONDITION[np.float32],
        )
        return reach.refined >= 0.1 and reach.components <= 0.75 * self.n_components

    def _homes_for(self, X):
        """Home labels for rows that have none yet: every row's most probable component, from a
        pass of its own; None where :meth:`_needs_homes` says passes need none. The labels only
        group rows (a wrong one costs time, not accuracy), so a tied pass skips the refinement here
        (diag and spherical ones sum directly and need none)."""
        if not self._needs_homes(X.dtype):
            return None
        return self._pass(X, moments=False, labels=True, refine=False, homes_only=True)[1]["homes"]

    def _e_step(self, X, moments=True, sample_weight=None):
        if moments and self.n_active is not None:
            search = self._truncated_search(X, sample_weight)
            parameters, n_threads = self._truncated_parameters(), resolve_n_threads(self.n_jobs)
            stats = _check_finite(search.e_step(X, sample_weight, parameters, n_threads), X)
            if moments_lose_precision(stats, self.covariance_type, self.reg_covar):
                # As below for exact EM: the same posteriors' moments about the new means.
                stats = search.moments_about(X, sample_weight, parameters, n_threads, new_means(stats))
                stats = _check_finite(stats, X)
            return stats
        if not moments:
            return self._inference_pass(X, sample_weight=sample_weight)[0]
        # Direct sums need no homes; an expanded pass keeps the rows' homes for the next E-step.
        direct = self._sums_directly(np.result_type(X.dtype, self.means_.dtype), moments=True)
        home = None
        if not direct and self._needs_homes(X.dtype):
            # During fit, rows keep the components the previous E-step assigned them to.
            home = getattr(self, "_em_home", None)
            if home is None or len(home) != len(_spans(X)):
                home = self._homes_for(X)
        stats, out = self._pass(
            X,
            moments=True,
            labels=not direct,
            sample_weight=sample_weight,
            home=home,
            homes_only=True,
            direct=direct,
        )
        self._em_home = out.get("homes")
        stats = _check_finite(stats, X)
        if moments_lose_precision(stats, self.covariance_type, self.reg_covar) and not uses_cuda(self, False):
            # A mean moved far from its reference point (the current mean) for its spread: the
            # scatter would cancel to round-off. The same responsibilities' moments, about the new
            # means (one more pass, only then).
            stats, _ = self._pass(
                X,
                moments=True,
                sample_weight=sample_weight,
                home=home,
                reference=new_means(stats),
                direct=direct,
            )
            stats = _check_finite(stats, X)
        return stats

    def _needs_homes(self, dtype):
        """Whether passes need home labels (see :meth:`_pass`).

        The diag, spherical and tied kernels expand ``||x - mu_c||^2`` about a point shared by a run
        of rows, losing about log10(kappa) digits, kappa the largest squared Mahalanobis distance of
        a component mean from the mixture's mean. Where that exceeds what the dtype can spare (2 of
        float32's 7 digits, 5 of float64's 16), every row's most probable component is found first,
        and rows are expanded in runs that share one. Otherwise (and for full covariances, which
        expand nothing) one pass suffices, and its result does not depend on earlier passes.

        The homes are for speed; accuracy does not rest on them. Within a run, a component whose mean
        lies further than that bound from the run's centroid (in its own metric) is "far", and its
        expanded log-joints may be off by ``eps * (m_c + ||x - centroid||^2_{P_c})``. Every row for
        which a far component may matter (its log-joint plus that error bound is within the
        posterior's underflow cut-off of the row's best) gets all its log-joints summed directly in
        float64 and rounded to the working dtype, and its moments summed in float64 about the
        reference points: float32 then gives the float64 answer to float32 precision, for components
        of any relative width and at any offset float32 can represent.
        """
        if self.covariance_type == "full":
            return False
        return self._expansion_condition() > _MAX_EXPANSION_CONDITION[np.dtype(dtype).type]

    def _expansion_condition(self):
        """max_c ||mu_c - sum_k pi_k mu_k||^2 in component c's precision metric."""
        means = self.means_.astype(np.float64)
        offsets = means - self.weights_.astype(np.float64) @ means
        factor = self.precisions_cholesky_.astype(np.float64)
        if self.covariance_type == "tied":
            distances = np.sum((offsets @ factor) ** 2, axis=1)
        elif self.covariance_type == "diag":
            distances = np.sum((offsets * factor) ** 2, axis=1)
        else:
            distances = np.sum(offsets**2, axis=1) * factor**2
        return float(np.max(distances))

    def _truncated_parameters(self):
        return (self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type)

    def _truncated_search(self, X, sample_weight):
        """The run's truncated state (rows' sets K_n per block of X, neighbour lists), started on
        first use."""
        search = getattr(self, "_em_truncated", None)
        if search is None or search.n_samples != X.shape[0] or len(search.spans) != len(_spans(X)):
            C, G = check_truncation(self.n_active, self.n_neighbors, self.n_components)
            seed = getattr(self, "_em_truncated_seed", None)
            if seed is None:  # a warm start: no initialisation drew one
                seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            search = TruncatedSearch(X.shape[0], C, G, seed)
            search.start(
                X,
                sample_weight,
                self._truncated_parameters(),
                resolve_n_threads(self.n_jobs),
                exact_labels=lambda: self._pass(X, moments=False, labels=True, homes_only=True)[1]["homes"],
            )
            self._em_truncated = search
        return search

    def _search_settled(self):
        # Truncated EM: a step below tol converges only once the search has settled (see
        # TruncatedSearch.settled).
        search = getattr(self, "_em_truncated", None)
        return search is None or search.settled()

    def _run_state(self):
        # The rows' sets K_n and neighbour lists of a truncated run, and the home labels of an exact
        # one: the final pass of the best run continues from them; and what rounding its last
        # M-step's covariances to float32 cost, which the fit's warning reports.
        return (
            getattr(self, "_em_home", None),
            getattr(self, "_em_truncated", None),
            getattr(self, "_float32_rounding_cost", 0.0),
            getattr(self, "_float32_cause", None),
        )

    def _restore_run_state(self, state):
        (
            self._em_home,
            self._em_truncated,
            self._float32_rounding_cost,
            self._float32_cause,
        ) = state

    def _final_pass(self, X, sample_weight=None):
        if self.n_active is not None:
            search = self._truncated_search(X, sample_weight)
            stats = search.e_step(
                X, sample_weight, self._truncated_parameters(), resolve_n_threads(self.n_jobs), moments=False
            )
            return _check_finite(stats, X), search.labels()
        home = getattr(self, "_em_home", None) if self._inference_needs_homes(X.dtype) else None
        stats, out = self._pass(X, moments=False, labels=True, sample_weight=sample_weight, home=home)
        return _check_finite(stats, X), out["labels"]

    def _m_step(self, stats):
        weights, means, exact = gaussian_m_step(stats, self.covariance_type, self.reg_covar)
        dtype = self.means_.dtype
        stored_means, stored = about_stored_means(weights, means, exact, self.covariance_type, dtype)
        if dtype != np.float32:
            covariances, precisions_cholesky = self._covariances_in(stored, dtype)
        else:
            covariances, precisions_cholesky, cost = self._rounded_to_float32(stored, weights)
            self._float32_rounding_cost = cost
            if covariances is None or self._parameters_lost_to_rounding():
                # Not positive definite once rounded to float32, or even in float64 from float32
                # statistics; or rounding them costs more than the fit can afford. The step is
                # not taken, and the run redoes it in float64 from its current parameters (a
                # float64 fit that cannot hold them either raises there): this M-step's float64
                # covariances are no better than their rounding, as they carry the float32
                # statistics' (a duplicated column's variance fell 30% below reg_covar).
                raise BeyondDtype
        self._assign(weights, stored_means, covariances, precisions_cholesky)

    def _rounded_to_float32(self, covariances, weights):
        """``(covariances, precisions_cholesky, cost)``: float64 ``covariances`` rounded to float32
        and what the rounding changes the M-step's objective by (``rounding_cost``); ``(None, None,
        inf)`` where the rounded matrices are not positive definite. ValueError naming X where they
        exceed float32's range. Variances float32 cannot hold (see SMALLEST_FIT_VARIANCE) give ``(None,
        None, inf)`` too, and say so in ``_float32_cause``."""
        cause = self._variances_too_small(covariances, np.float32, "the fitted variances")
        if cause is not None:
            self._float32_cause = cause
            return None, None, np.inf
        try:
            rounded, precisions_cholesky = self._covariances_in(covariances, np.float32)
        except ValueError as error:
            if str(error) != ILL_DEFINED_COVARIANCE:
                raise
            return None, None, np.inf
        if self.covariance_type in ("full", "tied") and _numerically_singular(rounded, precisions_cholesky):
            return None, None, np.inf
        cost = rounding_cost(
            covariances, rounded, self.covariance_type, weights, self.reg_covar, self.means_.shape[1]
        )
        return rounded, precisions_cholesky, cost

    def _float64_parameters(self):
        if self.means_.dtype == np.float64:
            return self._get_parameters()
        # The model the passes read is the precision factor (positive definite once rounded,
        # where the rounded covariances may not be): widened, it gives the covariances.
        weights, means = self.weights_.astype(np.float64), self.means_.astype(np.float64)
        precisions_cholesky = self.precisions_cholesky_.astype(np.float64)
        covariances = covariances_from_precisions_cholesky(precisions_cholesky, self.covariance_type)
        return (weights, means, covariances, precisions_cholesky)

    def _parameters_lost_to_rounding(self):
        # The last M-step's covariances, rounded to float32, describe another model than the fit
        # found once the rounding moves its objective by more than the convergence tolerance;
        # iterating on in float32 then wanders by rounding (the ELBO jumps by ~that cost).
        return getattr(self, "_float32_rounding_cost", 0.0) > max(self.tol, 1e-4)

    def _float64_continuation(self, X, sample_weight):
        cause = getattr(self, "_float32_cause", None)
        if cause is not None:
            message = (
                f"FastGMM: float32 cannot hold this fit: {cause}. The fit runs in float64 from there "
                "(X is read in float64), and the parameters are float64. Pass float64 data to fit in "
                "float64 without this warning, or rescale X (and reg_covar by the square of the factor) "
                "to fit in float32."
            )
        else:
            cost = getattr(self, "_float32_rounding_cost", 0.0)
            effect = (
                f"moves the mean log-likelihood by about {cost:.2g} (more than tol={self.tol:g})"
                if np.isfinite(cost)
                else "leaves a covariance that is not positive definite"
            )
            message = (
                f"FastGMM: float32 cannot hold the fitted covariances to the precision this fit needs: "
                f"rounding them to float32 {effect}. Some variances sit near reg_covar={self.reg_covar:g} "
                "beside much larger ones (a duplicated or collinear column, say); float32 rounds them by a "
                "large fraction. The fit continues in float64, redoing that iteration from the parameters "
                "it started from (X is read in float64), and the parameters are float64. Fit float64 data "
                "to skip the float32 phase, or raise reg_covar to stay in float32."
            )
        warnings.warn(
            message,
            Float32RangeWarning,
            # user -> BLAS-limit wrapper -> fit -> state-restoring wrapper -> _fit -> _fit_em -> here
            stacklevel=7,
        )
        weights = None if sample_weight is None else sample_weight.astype(np.float64)
        return widened_to_float64(X), weights

    def _covariances_in(self, covariances, dtype):
        """``(covariances, precisions_cholesky)`` in ``dtype`` (see ``covariances_in_dtype``);
        ValueError naming X where the covariances exceed the dtype's range."""
        dtype = np.dtype(dtype)
        if dtype == np.float64:
            cause = self._variances_too_small(covariances, dtype, "the fitted variances")
            if cause is not None:
                raise ValueError(
                    f"FastGMM: {cause}. Rescale X (and reg_covar by the square of the factor), or "
                    f"raise reg_covar (now {self.reg_covar:g})."
                )
        if not np.all(np.abs(covariances) <= np.finfo(dtype).max):
            raise ValueError(
                f"FastGMM: the fitted covariances (largest {np.max(np.abs(covariances)):.3g}) do not fit in "
                f"{dtype.name}, X's dtype. Rescale X (and reg_covar by the square of the factor)"
                + (", or pass float64 data." if dtype == np.float32 else ".")
            )
        return covariances_in_dtype(covariances, self.covariance_type, dtype)

    def _decompose(self, stats):
        n_features = self.means_.shape[1]
        half_log_det = half_log_det_covariances(
            self.precisions_cholesky_, self.covariance_type, self.n_components, n_features
        )
        observable = float(stats.mean_responsibilities @ gaussian_entropy(half_log_det, n_features))
        return EntropyDecomposition(
            elbo=stats.elbo,
            variational_entropy=stats.variational_entropy,
            prior_entropy=categorical_entropy(self.weights_),
            observable_entropy=observable,
            data_term=0.0,
            n_samples=stats.n_samples,
            model=f"FastGMM(n_components={self.n_components}, covariance_type={self.covariance_type!r})",
        )

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        self._em_home = None  # a new run: its first E-step finds the homes it needs itself
        self._em_truncated = None  # likewise its truncated state (rows' sets K_n)
        self._float32_cause = None
        init_params = self.init_params
        if self.n_active is not None:
            if init_params == "kmeans":
                init_params = "afkmc2"  # not O(N·K·D) Lloyd iterations (see n_active)
        weights = means = covariances = None
        if self.weights_init is None or self.means_init is None or self.precisions_init is None:
            X, sample_weight = initialisation_rows(
                X,
                sample_weight,
                random_state,
                "give initial parameters (weights_init, means_init, precisions_init)",
            )
            column_mean, column_variance = column_mean_and_variance(X, sample_weight)
            X = self._initialisation_rows_in_range(X, column_variance)
            rows, resp, row_weights = initial_responsibilities(
                X,
                self.n_components,
                init_params,
                random_state,
                resolve_n_threads(self.n_jobs),
                column_variance,
                sample_weight,
                afkmc2_chain_length=self.afkmc2_chain_length,
            )
            stats = initial_statistics(
                rows, resp, column_mean, self.covariance_type, self.reg_covar, row_weights
            )
            _check_finite(stats, X)
            weights, means, covariances = gaussian_m_step(stats, self.covariance_type, self.reg_covar)
        if self.weights_init is not None:
            weights = as_float_array(self.weights_init, "weights_init")
        if self.means_init is not None:
            means = as_float_array(self.means_init, "means_init")
        dtype = X.dtype
        if self.precisions_init is None:
            dtype = self._initial_dtype(covariances, dtype)
            try:
                covariances, precisions_cholesky = self._covariances_in(covariances, dtype)
            except ValueError as error:
                if str(error) != ILL_DEFINED_COVARIANCE:  # the dtype's range: that names X itself
                    raise
                _check_squares_fit(X.dtype, column_variance, error)
                if X.dtype != np.float32:
                    raise
                # Positive definite in float64 but not once rounded to float32: the run goes on in
                # float64 from the start (see _parameters_lost_to_rounding).
                covariances, precisions_cholesky = self._covariances_in(covariances, np.float64)
                self._float32_rounding_cost = np.inf
                dtype = np.float64
        else:
            precisions_cholesky = precisions_cholesky_from_precisions(
                as_float_array(self.precisions_init, "precisions_init"), self.covariance_type
            )
            covariances = covariances_from_precisions_cholesky(precisions_cholesky, self.covariance_type)
            dtype = self._initial_dtype(covariances, dtype)
        self._assign(weights, means, covariances, precisions_cholesky, dtype=dtype)
        if self.n_active is not None:
            # Drawn after the initialisation, which then draws what it draws in exact EM.
            self._em_truncated_seed = random_state.randint(np.iinfo(np.int32).max)

    def _initial_dtype(self, covariances, dtype):
        """``dtype``, or float64 where it is float32 and the initial (float64) ``covariances`` hold
        variances float32 cannot (see SMALLEST_FIT_VARIANCE): the run then starts in float64, and the
        warning says why. (Given in full, an initialisation reads no rows whose variances could
        tell it earlier.)"""
        if dtype != np.float32:
            return dtype
        cause = self._variances_too_small(covariances, np.float32, "the initial variances")
        if cause is None:
            return dtype
        self._start_in_float64(cause)
        return np.dtype(np.float64)

    def _variances_too_small(self, covariances, dtype, what):
        """Why ``dtype`` cannot hold ``covariances`` (variances below SMALLEST_FIT_VARIANCE; the
        diagonals of full and tied), or None if it can."""
        covariances = np.asarray(covariances)
        if self.covariance_type in ("full", "tied"):
            covariances = np.diagonal(covariances, axis1=-2, axis2=-1)
        return _too_small_for(dtype, what, float(np.min(covariances)))

    def _start_in_float64(self, cause):
        """Have a float32 run start in float64 (see _float64_continuation), saying why."""
        self._float32_cause, self._float32_rounding_cost = cause, np.inf

    def _initialisation_rows_in_range(self, X, column_variance):
        """The initialisation's rows ``X``, in float64 where X's dtype cannot hold the squares of
        their deviations (columns whose variance is below SMALLEST_FIT_VARIANCE): float32 rows then
        start the fit in float64 (it goes on so, see _float64_continuation); ValueError naming X
        for float64."""
        varying = column_variance[column_variance > 0]
        smallest = float(varying.min()) if varying.size else np.inf
        cause = _too_small_for(X.dtype, "the variances of X's columns", smallest)
        if cause is None:
            return X
        if X.dtype != np.float32:
            raise ValueError(
                f"FastGMM: X is too small for {X.dtype.name}: {cause}. Rescale X (and reg_covar by "
                "the square of the factor)."
            )
        self._start_in_float64(cause)
        return np.asarray(X, dtype=np.float64)

    def _assign(self, weights, means, covariances, precisions_cholesky, dtype=None):
        dtype = self.means_.dtype if dtype is None else dtype
        self.weights_ = np.asarray(weights, dtype=dtype)
        self.means_ = np.asarray(means, dtype=dtype)
        self.covariances_ = np.asarray(covariances, dtype=dtype)
        self.precisions_cholesky_ = np.asarray(precisions_cholesky, dtype=dtype)

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _cannot_hold_in(self, dtype):
        # float64 parameters (a fit that float32 could not hold, continued in float64) warm-started
        # on float32 data: rounding them would only lose what the continuation found.
        if np.dtype(dtype) != np.float32 or self.means_.dtype != np.float64:
            return False
        try:
            _, _, cost = self._rounded_to_float32(self.covariances_.astype(np.float64), self.weights_)
        except ValueError:  # beyond float32's range once rounded
            cost = np.inf
        self._float32_rounding_cost = cost  # read by _parameters_lost_to_rounding in _fit_em
        return self._parameters_lost_to_rounding()

    def _parameters_in(self, dtype):
        if np.dtype(dtype) == self.means_.dtype:
            return self._get_parameters()  # a warm start in the same dtype continues bit for bit
        # The covariances are the parameters; the precision factors follow from them once rounded
        # (see covariances_in_dtype), not from a separate rounding of the float64 factors.
        covariances, precisions_cholesky = self._covariances_in(self.covariances_.astype(np.float64), dtype)
        return (self.weights_.astype(dtype), self.means_.astype(dtype), covariances, precisions_cholesky)

    def _set_parameters(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        self.precisions_ = precisions_from_cholesky(
            self.precisions_cholesky_.astype(np.float64), self.covariance_type
        ).astype(self.means_.dtype)

    # -- validation --------------------------------------------------------------------------

    def _check_hyperparameters(self):
        check_integer(self, "n_components", 1)
        self._check_em_hyperparameters()
        check_integer(self, "afkmc2_chain_length", 1)
        check_nonnegative_real(self, "reg_covar")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}"
            )
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}")
        check_truncation(self.n_active, self.n_neighbors, self.n_components)
        resolve_device(self.device, self.n_active)

    def _check_initial_parameters(self, n_features):
        # The messages are scikit-learn's (sklearn.mixture._gaussian_mixture._check_weights, ...),
        # word for word: its tests, and its users, match on them.
        K = int(self.n_components)
        if self.weights_init is not None:
            weights = as_float_array(self.weights_init, "weights_init")
            _check_shape(weights, (K,), "weights")
            if np.any(weights < 0.0) or np.any(weights > 1.0):
                # (sic) scikit-learn prints the minimum as "max value" and the maximum as "min value".
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got "
                    f"max value {weights.min():.5f}, min value {weights.max():.5f}"
                )
            atol = normalisation_tolerance(self.weights_init, "weights_init")
            if not np.allclose(abs(1.0 - weights.sum()), 0.0, atol=atol):
                raise ValueError(
                    "The parameter 'weights' should be normalized, "
                    f"but got sum(weights) = {weights.sum():.5f}"
                )
        if self.means_init is not None:
            means = as_float_array(self.means_init, "means_init")
            _check_shape(means, (K, n_features), "means")
        if self.precisions_init is not None:
            precisions = as_float_array(self.precisions_init, "precisions_init")
            check_precisions_init(precisions, self.covariance_type, K, n_features)


def _check_finite(stats, X):
    """Return ``stats``, or raise ValueError naming the cause if a pass over X gave a non-finite
    ELBO sum or statistic (finite X whose squares, or whose log-densities, overflow X's dtype)."""
    values = [stats.sum_log_norm, stats.sum_entropy, stats.nk]
    values += [v for v in (stats.sx, stats.sxx) if v is not None]
    if all(np.all(np.isfinite(v)) for v in values):
        return stats
    dtype = np.dtype(X.dtype)
    largest = X.max_abs() if isinstance(X, RowSource) else float(np.max(np.abs(X))) if X.size else 0.0
    raise ValueError(
        f"FastGMM: the log-likelihood or the sufficient statistics of X overflowed {dtype.name} (the "
        f"largest |X| is {largest:.3g}; squared distances, their sums over a block of rows and the "
        f"model's precisions times them must stay below {np.finfo(dtype).max:.3g}). Rescale X (and "
        "reg_covar by the square of the factor)" + (", or pass float64 data." if dtype == np.float32 else ".")
    )


def _check_block_finite(stats, outputs, rows):
    """:func:`_check_finite` for a block pass over ``rows`` (the outputs need no check of their own)."""
    _check_finite(stats, rows)


def _check_squares_fit(dtype, column_variance, error):
    """Raise ValueError naming X when an initialisation failed on data whose squared distances
    approach the largest number of X's dtype (|X| ~ 1e19 in float32): the seeding's distances
    overflowed, so the start it returned (reported as ``error``) says nothing about the data."""
    dtype = np.dtype(dtype)
    scale = 2.0 * float(np.sum(column_variance))  # a typical squared distance between rows
    if not scale <= np.finfo(dtype).max * 2.0**-10:
        raise ValueError(
            f"FastGMM: the squared distances between the rows of X approach the largest {dtype.name} "
            f"({np.finfo(dtype).max:.3g}; the column variances of X sum to {scale / 2:.3g}), so the "
            "initialisation could not separate them. Rescale X (and reg_covar by the square of the "
            "factor)" + (", or pass float64 data." if dtype == np.float32 else ".")
        ) from error


def _spans(X):
    """The blocks of X (one for an in-memory array)."""
    return X.spans() if isinstance(X, RowSource) else [(0, X.shape[0])]


def _in_memory_rows(X, what):
    """X as one in-memory array for the code paths that need random access to its rows; a
    ValueError naming ``what`` for a streamed source."""
    if not isinstance(X, RowSource):
        return X
    if X.streamed:
        raise ValueError(
            f"{what} needs X in memory; {describe(X.data)} is read in blocks: load X into a NumPy array"
        )
    return X.array


def _check_shape(array, expected, name):
    """scikit-learn's shape check of an initial parameter (sklearn.mixture._base._check_shape)."""
    if array.shape != expected:
        raise ValueError(f"The parameter '{name}' should have the shape of {expected}, but got {array.shape}")
