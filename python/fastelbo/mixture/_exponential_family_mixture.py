"""The estimator shared by FastBernoulliMixture and FastPoissonMixture: exact EM for mixtures of
products of one-dimensional exponential-family distributions with ``T(x) = x``, on sparse or dense
rows, through the EM driver of :class:`~fastelbo._mixture_estimator.MixtureEstimator`.

The family (``_family``) supplies the maths (:mod:`fastelbo.mixture._exponential_family`); this
class owns the hyperparameters, the validation, the initialisation, the M-step and the
decomposition. The public classes only name their family and document it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from fastelbo._base import check_integer
from fastelbo._block_reduction import reduce_blocks
from fastelbo._dask_backend import DaskRowSource, is_dask_array
from fastelbo._mixture_estimator import MixtureEstimator
from fastelbo._mixture_pass import MixturePassRequest, RowOutputs
from fastelbo._row_source import RowSource, initialisation_rows, is_streamed
from fastelbo._sparse_row_source import SparseRowSource, is_streamed_csr
from fastelbo._threads import resolve_n_threads
from fastelbo._validation import as_float_array, check_sample_weight, normalisation_tolerance
from fastelbo.entropy import EntropyDecomposition, categorical_entropy
from fastelbo.mixture._csr_from_dense import csr_from_dense
from fastelbo.mixture._discrete_rows import DiscreteBlockReader, canonical_csr, validate_discrete_rows
from fastelbo.mixture._exponential_family import (
    FAMILIES,
    ExponentialFamilyPassParameters,
    InMemoryRows,
    dense_m_step,
    exponential_family_block_pass,
    negligible_responsibility,
)
from fastelbo.mixture._exponential_family_truncated import (
    ExponentialFamilyTruncatedSearch,
    exact_pass_affordable,
)
from fastelbo.mixture._sparse_initialization import INIT_PARAMS, initial_parameters
from fastelbo.mixture._truncated import check_truncation


class ExponentialFamilyMixture(MixtureEstimator):
    """Base of the Bernoulli and Poisson mixtures (not public); ``_family`` names the family."""

    _family = ""
    _warm_start_parameters = ("n_components",)

    def __init__(
        self,
        n_components=1,
        *,
        tol=1e-3,
        mean_floor=1e-10,
        max_iter=100,
        n_init=1,
        init_params="k-means++",
        weights_init=None,
        means_init=None,
        random_state=None,
        warm_start=False,
        n_jobs=None,
        verbose=0,
        verbose_interval=10,
        n_active=None,
        n_neighbors=None,
    ):
        self.n_components = n_components
        self.tol = tol
        self.mean_floor = mean_floor
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_active = n_active
        self.n_neighbors = n_neighbors

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        return tags

    @property
    def _model(self):
        return FAMILIES[self._family]

    # -- validation --------------------------------------------------------------------------

    def _check_hyperparameters(self):
        check_integer(self, "n_components", 1)
        self._check_em_hyperparameters()
        floor = self.mean_floor
        # A Bernoulli mean is also kept at most 1 - mean_floor, which must differ from 1 in float64
        # (log(1 - mu) would be -inf): mean_floor >= 2**-53. A Poisson floor must be a normal
        # float64: the kernels flush subnormal numbers to zero, so a subnormal floor would not hold.
        lower, upper = (2.0**-53, 0.5) if self._family == "bernoulli" else (np.finfo(np.float64).tiny, np.inf)
        if (
            not isinstance(floor, numbers.Real)
            or isinstance(floor, bool)
            or not np.isfinite(floor)
            or not lower <= floor < upper
        ):
            bound = (
                "2**-53 <= mean_floor < 0.5 (below 2**-53, 1 - mean_floor rounds to 1 in float64)"
                if upper < np.inf
                else "a finite mean_floor >= 2.2250738585072014e-308 (the smallest normal float64; "
                "subnormal numbers are flushed to zero)"
            )
            raise ValueError(f"mean_floor must be a real number with {bound}, got {floor!r}")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(f"init_params must be one of {INIT_PARAMS}, got {self.init_params!r}")
        check_truncation(self.n_active, self.n_neighbors, self.n_components)

    def _validate_rows(self, X, reset, min_samples):
        """X as the passes read it: an in-memory canonical CSR matrix or dense array whose values
        are checked now, or a row source whose blocks are checked as they are read (and read as
        CSR): a :class:`~fastelbo._sparse_row_source.SparseRowSource` for a CSR matrix with
        memory-mapped buffers, a :class:`~fastelbo._dask_backend.DaskRowSource` for a dask array
        (sparse or dense chunks), a :class:`~fastelbo._row_source.RowSource` for a dense
        ``numpy.memmap``, ``h5py.Dataset`` or ``zarr.Array`` (or a RowSource given, with its
        ``block_rows``). A RowSource of an in-memory array without ``block_rows`` is that array."""
        reader = DiscreteBlockReader(type(self).__name__, self._family)
        if isinstance(X, RowSource) and not isinstance(X, (SparseRowSource, DaskRowSource)):
            if not X.streamed:
                X = X.data  # an in-memory array in one block: validated as any array
            elif sp.issparse(X.data):  # in memory, in blocks: as CSR (duplicates summed in int64)
                X = SparseRowSource(canonical_csr(X.data), block_rows=X.block_rows)
        if is_dask_array(X):
            source = DaskRowSource(X, reader=reader)
        elif isinstance(X, DaskRowSource):
            source = DaskRowSource(X.data, reader=reader)
        elif isinstance(X, SparseRowSource) or is_streamed_csr(X):
            data = X.data if isinstance(X, SparseRowSource) else X
            block_rows = X.block_rows if isinstance(X, SparseRowSource) else None
            source = SparseRowSource(data, reader, block_rows=block_rows)
        elif isinstance(X, RowSource) or is_streamed(X):
            data = X.data if isinstance(X, RowSource) else X
            block_rows = X.block_rows if isinstance(X, RowSource) else None
            source = RowSource(data, block_rows=block_rows, reader=reader)
        else:
            return validate_discrete_rows(self, X, self._model, reset, min_samples)
        validate_data(self, source.data, skip_check_array=True, reset=reset)
        if source.n_samples < min_samples:
            raise ValueError(
                f"Found array with {source.n_samples} sample(s) (shape={source.shape}) while a "
                f"minimum of {min_samples} is required."
            )
        if source.n_features < 1:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={source.shape}) while a minimum of 1 is required."
            )
        return source

    def _validate_fit_input(self, X, sample_weight):
        self._check_hyperparameters()
        X = self._validate_rows(X, reset=True, min_samples=2)
        if not sp.issparse(X) and not isinstance(X, RowSource):
            # The passes read CSR: a dense X is converted once, for the whole fit. Its start and
            # every pass read the same non-zeros in the same order as from its CSR form, so the
            # fit is bitwise the fit of X's CSR form (where every pass converted X, or each
            # initialisation sum a chunk of it, SciPy's conversions took more than a third of a
            # 10-iteration fit of 20,000 x 500 binary rows).
            X = csr_from_dense(X, np.float64)
        # Weights are float64 whatever X's dtype (bool, integers): only X's row count is read.
        return X, check_sample_weight(
            sample_weight, np.empty((X.shape[0], 0)), scale_to_unit=self._outputs_use_weight_ratios_only
        )

    def _check_initial_parameters(self, n_features):
        K = int(self.n_components)
        if self.weights_init is not None:
            weights = as_float_array(self.weights_init, "weights_init")
            if weights.shape != (K,):
                raise ValueError(f"weights_init must have shape {(K,)}, got {weights.shape}")
            if (
                np.any(weights < 0)
                or np.any(weights > 1)
                or not np.isclose(
                    weights.sum(),
                    1.0,
                    rtol=0,
                    atol=normalisation_tolerance(self.weights_init, "weights_init"),
                )
            ):
                raise ValueError(
                    "weights_init must be probabilities in [0, 1] that sum to 1, got sum "
                    f"{float(weights.sum())!r}, minimum {weights.min():.6g}, maximum {weights.max():.6g}"
                )
        if self.means_init is not None:
            means = as_float_array(self.means_init, "means_init")
            if means.shape != (K, n_features):
                raise ValueError(f"means_init must have shape {(K, n_features)}, got {means.shape}")
            upper = 1.0 if self._family == "bernoulli" else np.inf
            bad = (means < 0) | (means > upper)
            if bad.any():
                c, d = np.unravel_index(int(np.argmax(bad)), bad.shape)
                kind = "probabilities in [0, 1]" if upper == 1.0 else "rates >= 0"
                raise ValueError(
                    f"means_init must hold {kind}; got {means[c, d].item()!r} at component {c}, column {d}"
                )

    # -- parameters --------------------------------------------------------------------------

    def _get_parameters(self):
        return (self.weights_, self.means_)

    def _set_parameters(self, parameters):
        self.weights_, self.means_ = parameters

    def _parameters_in(self, dtype):
        # float64 whatever X's dtype: the kernels read every block as float64 (bool and integer X
        # included, whose dtype cannot hold a mean).
        return self._get_parameters()

    def _assign(self, weights, means):
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.ascontiguousarray(
            self._model.floored(np.asarray(means, dtype=np.float64), self.mean_floor)
        )

    def _n_parameters(self):
        K, D = self.means_.shape
        return K * D + K - 1

    def _sample_components(self, rng, counts):
        return np.vstack(
            [
                self._model.sample(rng, mean, int(count))
                for mean, count in zip(self.means_, counts, strict=True)
            ]
        )

    # -- EM hooks (see fastelbo._base) -------------------------------------------------------

    def _initialize_parameters(self, X, random_state, sample_weight=None):
        self._em_truncated = None  # a new run: its first E-step starts the sets K_n
        self._em_nnz_estimate = None
        weights = means = None
        if self.weights_init is None or self.means_init is None:
            rows, sample_weight = initialisation_rows(
                X, sample_weight, random_state, "give initial parameters (weights_init, means_init)"
            )
            if rows is not X:  # a sample of a streamed source: its non-zeros scaled to all rows
                sampled = rows.nnz if sp.issparse(rows) else np.count_nonzero(rows)
                self._em_nnz_estimate = float(sampled) * X.shape[0] / max(rows.shape[0], 1)
            weights, means = initial_parameters(
                rows, self.n_components, self.init_params, random_state, sample_weight
            )
        if self.weights_init is not None:
            weights = as_float_array(self.weights_init, "weights_init")
        if self.means_init is not None:
            means = as_float_array(self.means_init, "means_init")
        self._assign(weights, means)
        if self.n_active is not None:
            # Drawn after the initialisation, which then draws what it draws in exact EM.
            self._em_truncated_seed = random_state.randint(np.iinfo(np.int32).max)
            self._em_exact_first = True  # the run's first E-step is exact where affordable

    def _rows(self, X):
        """X as the pass reads it: a row source as it is (read block by block), new dense data
        converted to CSR once per call (a fit's X is CSR already: :meth:`_validate_fit_input`)."""
        if sp.issparse(X) or isinstance(X, RowSource):
            return X
        return csr_from_dense(X, np.float64)

    def _pass(self, X, moments, log_norm=False, responsibilities=False, labels=False, sample_weight=None):
        """One kernel pass with the current parameters; returns (statistics, per-row outputs).
        With ``labels``, the outputs also hold ``"block_labels"``, the labels of every block of X
        (what the truncated search starts its sets from)."""
        parameters = self._pass_parameters(moments)
        request = MixturePassRequest(log_norm, responsibilities, labels)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        rows = self._rows(X)
        if moments:
            # The M-step's sums leave out the terms that move no mean by a rounding unit.
            negligible = negligible_responsibility(self.mean_floor, sample_weight, rows.shape[0])
            parameters = dataclasses.replace(parameters, negligible_responsibility=negligible)
        stats, out, states = reduce_blocks(
            rows if isinstance(rows, RowSource) else InMemoryRows(rows),
            functools.partial(exponential_family_block_pass, parameters, request),
            sample_weight,
            None,
            request.outputs(self.n_components, np.float64),
        )
        if labels:
            # Also one array per block of X (on Dask, the chunks' results, kept on the workers).
            out["block_labels"] = states
        return self._check_finite(stats), out

    def _pass_parameters(self, moments):
        """The parameter snapshot of a pass (what a Dask task holds, not the estimator)."""
        return ExponentialFamilyPassParameters.of(
            self._family,
            self.weights_,
            self.means_,
            moments,
            resolve_n_threads(self.n_jobs),
            self._natural(),
            self._log_partition(),
        )

    def _row_outputs(self, dtype, output):
        request = MixturePassRequest(**{output: True})
        return RowOutputs(
            functools.partial(exponential_family_block_pass, self._pass_parameters(False), request),
            output,
            functools.partial(_check_block_finite, type(self).__name__),
        )

    def _check_finite(self, stats):
        _check_block_finite(type(self).__name__, stats)
        return stats

    def _e_step(self, X, moments=True, sample_weight=None):
        if moments and self.n_active is not None:
            # Decided once per run, at its first E-step; the search's start follows the decision.
            if vars(self).pop("_em_exact_first", False):
                self._em_exact_start = self._exact_step_affordable(X)
                if self._em_exact_start:
                    # The first M-step from the exact posteriors at the initial parameters, which
                    # are spread over many components: restricted to C' components, the first
                    # M-step sets the run on a fixed point of nearly hard assignments that it does
                    # not leave (Poisson, K = 1,000: 2.4 % below exact EM's log-likelihood, 0.07 %
                    # with this step). The search starts at the next E-step, from the new parameters.
                    return self._pass(X, True, sample_weight=sample_weight)[0]
            search = self._truncated_search(X, sample_weight)
            stats = search.e_step(self._rows(X), sample_weight, self._truncated_parameters(), self._threads())
            return self._check_finite(stats)
        return self._pass(X, moments, sample_weight=sample_weight)[0]

    def _final_pass(self, X, sample_weight=None):
        if self.n_active is not None:
            search = self._truncated_search(X, sample_weight)
            stats = search.e_step(
                self._rows(X), sample_weight, self._truncated_parameters(), self._threads(), moments=False
            )
            return self._check_finite(stats), search.labels()
        stats, out = self._pass(X, moments=False, labels=True, sample_weight=sample_weight)
        return stats, out["labels"]

    def _exact_step_affordable(self, X):
        """Whether the run's first E-step is exact, and its sets start from the exact labelling
        pass (:func:`exact_pass_affordable` with :meth:`_nnz`: at N = 100,000 the Poisson
        log-likelihood gap to exact EM at K = 1,000 was 0.59 % without the exact first step, 0.02 %
        with it)."""
        C, G = check_truncation(self.n_active, self.n_neighbors, self.n_components)
        return exact_pass_affordable(self._nnz(X), X.shape[0], self.n_components, self.max_iter, C, G)

    def _nnz(self, X):
        """X's number of non-zeros, as the cost of an exact pass ``(nnz + N) K`` needs it (float).

        Exact where X knows it: an in-memory X (a dense one's CSR form), a CSR read in blocks
        (``indptr[-1]``, one value read; it counts explicit zeros and duplicates, which the blocks
        drop). A dense streamed source or a dask array does not store it, and counting would read
        all of X once more: the run uses the non-zeros of the initialisation's sample scaled to N
        rows (exact when the sample is every row, as it is up to ``INIT_SAMPLE_ROWS`` = 262,144
        rows, so such a fit starts as the in-memory fit; an estimate from runs of rows beyond), and
        ``N D``, an upper bound, where the run read no sample (``weights_init`` and ``means_init``
        given, or a warm start): an exact pass is then taken only where it is affordable for sure.
        """
        rows = self._rows(X)
        if not isinstance(rows, RowSource):
            return float(rows.nnz)
        if isinstance(rows, SparseRowSource):
            return float(rows.data.indptr[-1]) if rows.n_samples else 0.0
        estimate = getattr(self, "_em_nnz_estimate", None)
        return float(rows.n_samples) * rows.n_features if estimate is None else estimate

    def _threads(self):
        return resolve_n_threads(self.n_jobs)

    def _truncated_parameters(self):
        return (self.weights_, self.means_, self._natural(), self._log_partition())

    def _natural(self):
        """``eta`` of ``means_``: the M-step's (kept during fit for the next pass's snapshot and the
        decomposition, which both need it: its K x D logarithms are, with truncated EM, a large
        part of an iteration), else computed."""
        step = self._m_step_results()
        return self._model.natural(self.means_) if step is None else step.natural

    def _log_partition(self):
        """``b_c = -sum_d A(eta_cd)`` of ``means_``: the M-step's, else None (computed where used)."""
        step = self._m_step_results()
        return None if step is None else step.log_partition

    def _m_step_results(self):
        """The last M-step's :class:`DenseMStep` if ``means_`` are still its means, else None."""
        cached = getattr(self, "_em_natural", None)
        if cached is not None and cached[0] is self.means_:
            return cached[1]
        return None

    def _truncated_search(self, X, sample_weight):
        """The run's truncated state (every row's set K_n, the neighbour lists), started on first
        use (:mod:`fastelbo.mixture._exponential_family_truncated`)."""
        search = getattr(self, "_em_truncated", None)
        rows = self._rows(X)
        spans = rows.spans() if isinstance(rows, RowSource) else [(0, X.shape[0])]
        if search is None or search.spans != spans:
            C, G = check_truncation(self.n_active, self.n_neighbors, self.n_components)
            seed = getattr(self, "_em_truncated_seed", None)
            if seed is None:  # a warm start: no initialisation drew one
                seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            exact_start = vars(self).pop("_em_exact_start", None)
            if exact_start is None:  # a warm start, or new rows: no first E-step decided it
                exact_start = self._exact_step_affordable(X)
            search = ExponentialFamilyTruncatedSearch(X.shape[0], C, G, seed, self._family, exact_start)
            search.start(
                rows,
                sample_weight,
                self._truncated_parameters(),
                self._threads(),
                exact_labels=lambda: self._pass(X, moments=False, labels=True)[1]["block_labels"],
            )
            self._em_truncated = search
        return search

    def _search_settled(self):
        # Truncated EM: a step below tol converges only once the search has settled (see
        # TruncatedSearch.settled).
        search = getattr(self, "_em_truncated", None)
        return search is None or search.settled()

    def _run_state(self):
        # The rows' sets K_n and the neighbour lists: the final pass of the best run continues
        # from them.
        return getattr(self, "_em_truncated", None)

    def _restore_run_state(self, state):
        self._em_truncated = state

    def _discard_run_state(self):
        vars(self).pop("_em_truncated", None)
        vars(self).pop("_em_truncated_seed", None)
        vars(self).pop("_em_natural", None)
        vars(self).pop("_em_exact_first", None)
        vars(self).pop("_em_nnz_estimate", None)
        vars(self).pop("_em_exact_start", None)

    def _m_step(self, stats):
        # nk_floor (relative to the mean sample weight) keeps an empty component's means finite.
        nk = stats.nk + stats.nk_floor
        # The O(K D) maths (means, eta, b, sum_d eta mu) in one multi-threaded kernel pass; eta is
        # written over the previous M-step's: at large K, fresh arrays (their page faults) cost as
        # much as the arithmetic of a truncated iteration.
        previous = getattr(self, "_em_natural", None)
        buffer = None
        if previous is not None and previous[1].natural.shape == stats.sx.shape:
            buffer = previous[1].natural
        step = dense_m_step(self._family, stats.sx, nk, self.mean_floor, self._threads(), natural_out=buffer)
        self.weights_ = nk / nk.sum()
        self.means_ = step.means
        self._em_natural = (self.means_, step)

    def _decompose(self, stats):
        step = self._m_step_results()
        sums = (
            self._model.pseudo_entropy_sums(self.means_, self._natural())
            if step is None
            else step.pseudo_entropy_sums
        )
        observable = float(stats.mean_responsibilities @ sums)
        return EntropyDecomposition(
            elbo=stats.elbo,
            variational_entropy=stats.variational_entropy,
            prior_entropy=categorical_entropy(self.weights_),
            observable_entropy=observable,
            data_term=stats.data_term,
            n_samples=stats.n_samples,
            model=f"{type(self).__name__}(n_components={self.n_components})",
        )


def _check_block_finite(owner, statistics, outputs=None, rows=None):
    """Raise the estimator ``owner``'s error for a pass whose log-likelihood overflowed."""
    if not (np.isfinite(statistics.sum_log_norm) and np.isfinite(statistics.sum_entropy)):
        raise ValueError(
            f"{owner}: the log-likelihood of X overflowed float64 (values of X too large for the "
            "model's logarithms)"
        )


#: The docstring of both public estimators; each fills in its family (see ``family_docstring``).
_DOCSTRING = """{summary}

    {model}

    Exact EM in C++ with a scikit-learn interface, like :class:`~fastelbo.FastGMM`, and the ELBO's
    entropy decomposition. X may be a ``scipy.sparse`` matrix or array (CSR is read as it is; CSC
    and other formats are converted to CSR once; duplicate entries are summed, in int64 for
    smaller integer dtypes so that the sum cannot wrap around) and is never densified; each row
    costs its non-zeros times ``n_components``, so an E-step is ``O(nnz K + N K)``. Dense X works
    too (bool and integer dtypes included) and gives bitwise the same fit as its CSR form: the
    kernel reads every input as CSR (a dense training X is converted once per fit, a temporary of
    about 12 bytes per non-zero). Values must be {values}; anything else (NaN and infinity
    included) raises a ValueError naming the value and its row and column.{accuracy} All
    computation and parameters are float64.
    Results are bitwise identical for any ``n_jobs``.

    **Streamed rows.** A CSR matrix or array whose ``data``, ``indices`` or ``indptr`` is a memory
    map (``np.load(..., mmap_mode='r')``) is read in blocks of rows (a fixed number per block, about
    32 MiB of non-zeros at its mean row length), each block's values checked as it is read, never
    copied whole into memory; the initialisation reads a sample of about 262,144 rows in runs of
    consecutive rows (every row when there are at most 262,144). A ``dask.array`` of CSR (or dense)
    chunks is fitted on the active Dask scheduler: the E-step runs on the workers, one chunk per
    task, the statistics are merged in chunk order and the M-step runs on the client; per-row
    results of dask input are lazy dask arrays. Chunks that split the columns are joined into whole
    rows. Such fits equal the in-memory fit from the same start to round-off. A dense
    ``numpy.memmap``, ``h5py.Dataset`` or ``zarr.Array``, or a :class:`~fastelbo.RowSource` of any
    data (with its ``block_rows``), is read in blocks of rows as :class:`~fastelbo.FastGMM` reads it
    (about 32 MiB of rows in float64), each block's values checked as it is read (a bad value named
    with its row and column in the whole X) and converted to CSR, never copied whole into memory;
    the initialisation reads a sample of runs of rows, and the fit equals the in-memory fit to
    round-off. Truncated EM (``n_active``) runs on every such source too, one set ``K_n`` per row
    kept with its block (on the workers for Dask), and equals the in-memory truncated fit from the
    same start to round-off.

    ``fit(X, sample_weight=w)`` fits the weighted model: the ELBO, ``lower_bound_`` and the entropy
    decomposition are weighted averages, and an integer weight acts like repeating the row (with
    ``n_active`` in the model only: each row, and each copy of a repeated row, searches its own set
    of components, so truncated fits of weighted and of repeated rows differ).

    **The entropy decomposition** (docs/theory.rst). After every M-step, with posteriors ``q`` and
    the new parameters, ``F = <H[q_n]> - H[pi] - sum_c qbar_c sum_d H~(mu_cd) + data_term``, where
    ``H~`` is the *pseudo-entropy* ``A(eta) - eta A'(eta)`` of the one-dimensional family:
    {pseudo_entropy} The pseudo-entropy, not the entropy, is what the M-step's closed form
    ``mu_c = sum_n w_n q_nc x_n / sum_n w_n q_nc`` turns the expected log-likelihood into, so it is
    what makes the identity exact; ``entropy_decomposition()`` reports it as
    ``observable_entropy``.

    **The floor.** Means are kept {floor_range} so that every logarithm is finite (a column that is
    zero throughout a component would otherwise get a mean of exactly 0). An M-step whose
    closed-form mean ``mu_hat`` lies beyond the floor stores the floor ``mu`` instead, and the
    identity is then off by exactly ``F - S = sum_c qbar_c sum_d eta_cd (mu_hat_cd - mu_cd)``,
    ``eta_cd`` {natural} of the stored mean. As ``|mu_hat - mu| <= mean_floor`` there, that is at
    most ``mean_floor * |{bound}|`` (about ``2.3e-9`` for the default) per floored entry, weighted
    by ``qbar_c``, so at most ``n_features`` times that in all.

    **Negligible terms.** The M-step's sums ``sum_n w_n q_nc x_nd`` leave out the terms whose ``w_n
    q_nc max_d x_nd`` is below ``2**-60 * mean_floor * nk_floor / n_samples`` (``nk_floor``: ten
    machine epsilons times the mean sample weight, which the M-step adds to every ``sum_n w_n
    q_nc``): in exact arithmetic no mean moves by more than ``2**-60`` of itself, a 128th of
    float64's unit roundoff (the computed sums may round differently, by an ulp).
    With many components most responsibilities are such terms, and the sums then cost a few
    multiply-adds per non-zero instead of ``n_components``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood (the ELBO).
    mean_floor : float, default=1e-10
        The floor of the means (see above); {floor_condition}.
    max_iter : int, default=100
        Number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best by final lower bound is kept.
    init_params : {{'k-means++', 'random_from_data', 'random'}}, default='k-means++'
        The start. 'k-means++': K seed rows drawn by k-means++ (the first ``∝ w_n``, each further
        one ``∝ w_n D_n^2``, ``D_n`` the squared Euclidean distance of row n to its nearest seed,
        computed sparsely as ``||x||^2 - 2 x.s + ||s||^2``): ``O(K (nnz + N))`` time, ``O(N + K
        D)`` memory. 'random_from_data': K distinct rows drawn ``∝ w_n``. Each seed row ``s`` becomes
        the mean ``(s + xbar) / 2``, ``xbar`` the weighted column means, so that a seed's zeros do
        not start its means at the floor (only a constant column does); the mixing weights start
        uniform. 'random': uniform random responsibilities for every row, then the M-step. k-means
        on dense rows is not offered: its centroids are dense, and its Euclidean geometry is not
        the model's. Deterministic for a given ``random_state``; the draws follow the row order.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixing weights.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means ({means_kind}), floored as above.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation (and of :meth:`sample`).
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then ignored).
    n_jobs : int, default=None
        Threads of the C++ kernel. ``None``: the OpenMP default; ``-1``: all CPUs. Results are
        bitwise identical for any value.
    {{progress_parameters}}
    n_active : int, default=None
        None: exact EM. An integer C' turns on truncated variational EM for many components
        (Forster & Lücke, AISTATS 2018): every row keeps a set ``K_n`` of C' components, its posterior
        is the exact posterior restricted to ``K_n`` and renormalised, and every E-step evaluates the
        components of the neighbour lists ``G_c`` of ``K_n``'s members plus one random component,
        keeps the C' best and refreshes the lists from the log-joints it computed. An E-step then
        costs ``O(nnz C' G + N C' G)`` instead of ``O(nnz K + N K)`` (the M-step stays ``O(K D)``:
        the means are dense). Where exact passes are affordable (``(nnz + N) K <= 2e10``; or
        ``K <= max_iter n_active n_neighbors``: one then costs at most the run's truncated E-steps;
        or two cost at most the start from hubs below, which evaluates about ``4 sqrt(K)
        n_neighbors`` components per row once and ``n_active n_neighbors`` in each of up to 30
        steps, through a kernel about 4 times dearer per component) the run's first E-step is exact
        EM's, and the search starts at the second from one exact labelling pass (every set: the
        row's most probable component and its list): restricted to C' components, the first M-step
        from the initial parameters' spread-out posteriors leads to a worse fixed point (for a dense
        streamed X or a dask array, which do not store nnz, nnz is that of the initialisation's
        sample scaled to N rows, exact up to 262,144 rows, or the bound ``N D`` where no sample was
        read: ``weights_init`` and ``means_init`` given, or a warm start). Beyond
        that (K of several thousands at large N), the sets start from the best of random hub
        components and their lists, and the first E-step is truncated. Up to 30 E-steps at the
        parameters then let the sets walk the lists before the first M-step of the search. The ELBO,
        ``lower_bound_`` and the training decomposition then report the truncated free energy
        ``<log sum_{{c in K_n}} pi_c p(x_n | c)>``, at most the mean log-likelihood, and never
        decreasing from the second iteration on (the first entry of ``lower_bounds_``, from an
        exact first E-step, is the exact mean log-likelihood of the initial parameters, which the
        truncated free energy of the next parameters can fall below); the identity ``F = S`` after
        every M-step holds as for exact EM. With ``n_active = n_components`` the fit is exact EM's
        (up to rounding).
        ``score_samples``, ``predict`` and ``predict_proba`` stay exact. A run converges once the
        change falls below ``tol`` after 10 consecutive E-steps that changed no row's most probable
        component (a search step that finds nothing changes the free energy by exactly 0, yet later
        steps may still find better sets), so it runs at least 11 iterations: with
        ``max_iter <= 10`` it ends unconverged.
    n_neighbors : int, default=None
        G, the length of every component's neighbour list in truncated EM (None: ``min(5, K)``).
        Needs ``n_active``.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing weights.
    means_ : ndarray of shape (n_components, n_features)
        {means_attribute}, float64, floored.
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
        ``F(q^t, Theta^t)`` per iteration.
    entropy_sum_history_ : ndarray
        ``S(q^t, Theta^{{t+1}})`` per iteration: equals ``F(q^t, Theta^{{t+1}})`` after every M-step
        (up to the floor's amount above).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string feature names.

    Examples
    --------
{example}
    """


def family_docstring(**fields):
    """The public estimator's docstring with its family's ``fields`` filled in."""
    return _DOCSTRING.format(**fields)
