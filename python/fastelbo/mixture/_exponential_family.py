"""Mixtures of products of one-dimensional exponential-family distributions with sufficient statistic
``T(x) = x``: the Bernoulli and Poisson families, the pass's parameter snapshot, its block pass over
CSR rows and its statistics.

For component ``c`` and column ``d`` with mean ``mu_cd`` (a probability or a rate)::

    p(x_d | c) = h(x_d) exp(eta_cd x_d - A(eta_cd))
    Bernoulli: eta = logit(mu), A(eta) = -log(1 - mu),  h = 1
    Poisson:   eta = log(mu),   A(eta) = mu,            h(x) = 1 / x!

The kernel (``_core.exponential_family_mixture_pass``) evaluates ``log pi_c + b_c + sum_{d in
nnz(n)} x_nd eta_cd`` with ``b_c = -sum_d A(eta_cd)``, so a row costs its non-zeros times K.

**The pseudo-entropy.** With the M-step's closed form ``mu_cd = sx_cd / nk_c`` (``sx_cd = sum_n w_n
q_nc x_nd``), the expected complete-data log-likelihood of the posteriors that gave the statistics is
``sum_c qbar_c sum_d (eta_cd mu_cd - A(eta_cd)) + <log h(x_n)>``, i.e. ``-sum_c qbar_c sum_d
H~(eta_cd)`` plus a term of the data alone, with ``H~(eta) = A(eta) - eta A'(eta)``, the
*pseudo-entropy*. Hence after every M-step ``F = <H[q_n]> - H[pi] - sum_c qbar_c sum_d H~_cd +
<log h(x_n)>`` exactly (docs/theory.rst). For the Bernoulli ``h = 1`` and ``H~`` is the binary
entropy; for the Poisson ``H~(lambda) = lambda - lambda log(lambda)``, which is *not* the entropy of
a Poisson distribution (that one also holds ``E[log x!]``, a function of the parameter where the data
term is a function of the data): only the pseudo-entropy makes the identity hold.

**Floors.** Means are kept in ``[mean_floor, 1 - mean_floor]`` (Bernoulli) or ``>= mean_floor``
(Poisson) so that ``eta`` and ``A`` stay finite. Where the floor replaces the closed-form ``mu_hat``
by ``mu``, the identity is off by exactly ``F - S = sum_c qbar_c sum_d eta_cd (mu_hat_cd - mu_cd)``
(:func:`floor_gap`), at most ``mean_floor |log(mean_floor / (1 - mean_floor))|`` per floored entry
weighted by ``qbar_c``, since ``|mu_hat - mu| <= mean_floor`` and ``|eta| = |logit(mean_floor)|``
(Bernoulli) or ``|log(mean_floor)|`` (Poisson) there.

**Negligible terms of the M-step's sums.** ``sx`` leaves out the terms ``w_n q_nc x_nd`` whose ``w_n
q_nc max_d x_nd`` is below :func:`negligible_responsibility` (``2**-60 mean_floor nk_floor / N``):
together they move no mean by more than ``2**-60`` of itself, 1/128 of float64's unit roundoff,
in exact arithmetic (see the function; the computed sums may round differently by an ulp, as with
any other order of summation). With many components most responsibilities are such terms (about
98 % of them at K = 1,000 on text-like counts), and the sums then cost a few multiply-adds per
non-zero instead of K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from fastelbo import _core
from fastelbo._mixture_pass import log_mixing_weights
from fastelbo.mixture._csr_from_dense import csr_from_dense
from fastelbo.mixture._statistics import NK_FLOOR, MixturePassSums

# What share of a mean the terms left out of its M-step sum may move it by at most (2**-60 is 1/128
# of float64's unit roundoff): see negligible_responsibility.
NEGLIGIBLE_SHARE = 2.0**-60


class ExponentialFamily:
    """One observable family (Bernoulli or Poisson): its natural parameters, log-partition,
    pseudo-entropy, base measure, floors and sampler. Means are float64 arrays."""

    name = ""
    #: What the data must hold, for error messages.
    values = ""

    def floored(self, means, mean_floor, out=None):
        """``means`` kept where their logarithms are finite (see the module docstring); into
        ``out`` if given (which may be ``means``)."""
        raise NotImplementedError

    def natural(self, means, out=None):
        """``eta`` of (floored) means; into ``out`` if given (of the means' shape, not ``means``)."""
        raise NotImplementedError

    def log_partition(self, means):
        """``A(eta)`` of (floored) means."""
        raise NotImplementedError

    def pseudo_entropy(self, means, natural=None):
        """``H~ = A(eta) - eta mu`` of (floored) means (``natural``: their ``eta``, if known)."""
        natural = self.natural(means) if natural is None else natural
        return self.log_partition(means) - natural * means

    def pseudo_entropy_sums(self, means, natural):
        """(K,) ``sum_d H~_cd`` of (floored) ``means`` and their ``natural`` parameters, as
        ``sum_d A_cd - sum_d eta_cd mu_cd``: row sums, without (K, D) temporaries beyond ``A``'s
        (none for the Poisson), which at large K cost more than the sums."""
        return np.sum(self.log_partition(means), axis=1) - np.einsum("kd,kd->k", natural, means)

    def log_base(self, X):
        """``sum_d log h(x_nd)`` of every row of a dense array (the reference and tests)."""
        raise NotImplementedError

    def invalid(self, values):
        """A boolean mask of the values (an array of any real dtype but bool) the family cannot
        hold."""
        raise NotImplementedError

    def sample(self, rng, means, count):
        """``count`` rows drawn from the component with ``means`` (D,)."""
        raise NotImplementedError

    def floor_bound(self, mean_floor):
        """The largest ``|eta (mu_hat - mu)|`` a floored entry can add to ``F - S``."""
        return mean_floor * abs(float(self.natural(np.array(mean_floor))))


class BernoulliFeatures(ExponentialFamily):
    name = "bernoulli"
    values = "0 or 1"

    def floored(self, means, mean_floor, out=None):
        return np.clip(means, mean_floor, 1.0 - mean_floor, out=out)

    def natural(self, means, out=None):
        out = np.log(means, out=out)
        out -= np.log1p(-means)
        return out

    def log_partition(self, means):
        return -np.log1p(-means)

    def log_base(self, X):
        return np.zeros(X.shape[0])

    def invalid(self, values):
        return (values != 0) & (values != 1)

    def sample(self, rng, means, count):
        return (rng.uniform(size=(count, means.shape[0])) < means).astype(np.float64)


#: The largest count a Poisson mixture takes: beyond 2**53 float64 cannot tell consecutive integers
#: apart, so a value there is no count it can hold (and x log(lambda) - log(x!) would be all
#: round-off).
MAX_COUNT = 2**53


class PoissonFeatures(ExponentialFamily):
    name = "poisson"
    values = "a non-negative integer up to 2**53"

    def floored(self, means, mean_floor, out=None):
        return np.maximum(means, mean_floor, out=out)

    def natural(self, means, out=None):
        return np.log(means, out=out)

    def log_partition(self, means):
        return np.asarray(means, dtype=np.float64)

    def log_base(self, X):
        return -np.sum(gammaln(np.asarray(X, dtype=np.float64) + 1.0), axis=1)

    def invalid(self, values):
        values = np.asarray(values)
        if values.dtype.kind in "iu":  # compared as integers: 2**53 + 1 has no float64 of its own
            if np.iinfo(values.dtype).max > MAX_COUNT:
                return (values < 0) | (values > MAX_COUNT)
            return values < 0
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(values) & (values >= 0) & (values == np.floor(values))
            if float(np.finfo(values.dtype).max) > MAX_COUNT:  # float16 holds no value beyond it
                counts &= values <= float(MAX_COUNT)
            return ~counts

    def sample(self, rng, means, count):
        return rng.poisson(means, size=(count, means.shape[0])).astype(np.float64)


FAMILIES = {"bernoulli": BernoulliFeatures(), "poisson": PoissonFeatures()}


def floor_gap(family, statistics, means):
    """``F - S`` that flooring the M-step's means costs: ``sum_c qbar_c sum_d eta_cd (mu_hat_cd -
    mu_cd)`` with ``mu_hat = sx / nk`` the closed form and ``mu`` the stored (floored) means."""
    nk = statistics.nk
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(nk[:, None] > 0, statistics.sx / nk[:, None], means)
    return float(statistics.mean_responsibilities @ np.sum(family.natural(means) * (exact - means), axis=1))


@dataclass
class ExponentialFamilyStatistics(MixturePassSums):
    """Statistics of one pass (all float64): the ELBO sums, ``nk``, ``sum_log_base`` (``sum_n w_n
    log h(x_n)``) and, with moments, ``sx`` (K, D) ``= sum_n w_n q_nc x_nd``."""

    sum_log_base: float = 0.0
    sx: np.ndarray | None = None

    @classmethod
    def from_kernel(cls, out: dict, n_samples: int) -> ExponentialFamilyStatistics:
        """Wrap the dictionary returned by ``_core.exponential_family_mixture_pass``."""
        return cls(
            **cls.kernel_sums(out, n_samples),
            sum_log_base=float(out["sum_log_base"]),
            sx=out.get("sx"),
        )

    @property
    def variational_entropy(self) -> float:
        """Mean posterior entropy ``<H[q_n]>``."""
        return self.component_entropy

    @property
    def data_term(self) -> float:
        """``<log h(x_n)>``, the decomposition's term of the data alone."""
        return self.sum_log_base / self.sum_weight

    def merge(self, other: ExponentialFamilyStatistics) -> ExponentialFamilyStatistics:
        """Statistics of the union of two disjoint row sets (same parameters)."""
        return ExponentialFamilyStatistics(
            self.n_samples + other.n_samples,
            self.sum_weight + other.sum_weight,
            self.sum_log_norm + other.sum_log_norm,
            self.sum_entropy + other.sum_entropy,
            self.nk + other.nk,
            self.sum_log_base + other.sum_log_base,
            None if self.sx is None or other.sx is None else self.sx + other.sx,
        )


@dataclass(frozen=True)
class ExponentialFamilyPassParameters:
    """What a pass needs from the model, in float64: ``log pi``, ``eta^T`` (D, K) and ``b_c =
    -sum_d A(eta_cd)``, computed once per pass from the (floored) means."""

    family: str
    log_weights: np.ndarray
    natural_transposed: np.ndarray
    log_partition: np.ndarray
    moments: bool
    n_threads: int
    # sx leaves out terms w_n q_nc x_nd with w_n q_nc max_d x_nd below this (negligible_responsibility).
    negligible_responsibility: float = 0.0

    @classmethod
    def of(cls, family, weights, means, moments, n_threads, natural=None, log_partition=None):
        """The snapshot of (floored) parameters ``weights`` (K,) and ``means`` (K, D) (``natural``:
        their ``eta``, ``log_partition``: their ``b``, if known)."""
        log_weights, natural, log_partition = component_constants(
            family, weights, means, natural, log_partition
        )
        return cls(
            family, log_weights, np.ascontiguousarray(natural.T), log_partition, bool(moments), int(n_threads)
        )


def negligible_responsibility(mean_floor, sample_weight, n_samples):
    """The weighted responsibility below which, times the largest value of its row, a term ``w_n
    q_nc x_nd`` is left out of the M-step's sums ``sx_cd``.

    It is ``2**-60 mean_floor nk_floor / N`` (``nk_floor``: :data:`NK_FLOOR` times the mean sample
    weight, as the M-step adds it). A term left out is at most this value times ``x_nd / max_d
    x_nd <= 1``, so the ``N`` rows leave at most ``2**-60 mean_floor nk_floor`` out of any ``sx_cd``,
    and the mean ``sx_cd / (nk_c + nk_floor)`` moves by at most ``2**-60 mean_floor``: at most
    ``2**-60`` of itself, as a stored mean is at least ``mean_floor`` (a floored one moves no more
    than the closed form). That is exact arithmetic's bound: rows whose terms are then added by
    another loop of the kernel may round a sum differently, by an ulp. ``nk`` and the E-step's
    terms (the ELBO, its decomposition) keep every term; scaling the weights scales this value
    with them.
    """
    if n_samples < 1:
        return 0.0
    with np.errstate(over="ignore"):
        mean_weight = 1.0 if sample_weight is None else float(np.mean(sample_weight))
    value = NEGLIGIBLE_SHARE * float(mean_floor) * NK_FLOOR * mean_weight / n_samples
    # Weights whose sum overflows: nothing is left out but exact zeros.
    return value if np.isfinite(value) else 0.0


def component_constants(family, weights, means, natural=None, log_partition=None):
    """``(log pi, eta, b)`` of (floored) ``weights`` (K,) and ``means`` (K, D), float64: the mixing
    weights' logarithms, the natural parameters (``natural`` if known) and ``b_c = -sum_d A(eta_cd)``
    (``log_partition`` if known), what every pass adds to a row's log-joints."""
    model = FAMILIES[family]
    means = np.asarray(means, dtype=np.float64)
    natural = model.natural(means) if natural is None else natural
    if log_partition is None:
        log_partition = -np.sum(model.log_partition(means), axis=1)
    return (
        np.ascontiguousarray(log_mixing_weights(weights, np.float64)),
        np.ascontiguousarray(natural, dtype=np.float64),
        np.ascontiguousarray(log_partition, dtype=np.float64),
    )


@dataclass(frozen=True)
class DenseMStep:
    """What :func:`dense_m_step` computes from the statistics, float64: the floored ``means`` (K,
    D), their ``natural`` parameters (K, D), ``log_partition`` ``b_c = -sum_d A(eta_cd)`` (K,) and
    ``natural_mean_sums`` ``sum_d eta_cd mu_cd`` (K,)."""

    means: np.ndarray
    natural: np.ndarray
    log_partition: np.ndarray
    natural_mean_sums: np.ndarray

    @property
    def pseudo_entropy_sums(self):
        """(K,) ``sum_d H~_cd = sum_d A_cd - sum_d eta_cd mu_cd``."""
        return -self.log_partition - self.natural_mean_sums


def dense_m_step(family, sx, nk, mean_floor, n_threads, natural_out=None):
    """The M-step's ``O(K D)`` maths in one multi-threaded kernel pass
    (``_core.exponential_family_m_step``): ``mu = sx / nk`` kept within ``mean_floor``, ``eta``,
    ``b`` and ``sum_d eta mu``. ``sx`` is (K, D) (C- or Fortran-ordered: the exact pass's is the
    transpose of a (D, K) array, read as it is); ``nk`` (K,) the floored counts; ``natural_out`` a
    (K, D) buffer to write ``eta`` into, or None. The means, ``eta`` and ``b`` are bitwise what
    :meth:`ExponentialFamily.floored`, :meth:`ExponentialFamily.natural` and
    :func:`component_constants` compute in NumPy; bitwise the same for any ``n_threads``."""
    transposed = not sx.flags.c_contiguous and sx.flags.f_contiguous
    out = _core.exponential_family_m_step(
        family,
        np.ascontiguousarray(sx.T if transposed else sx, dtype=np.float64),
        transposed,
        np.ascontiguousarray(nk, dtype=np.float64),
        float(mean_floor),
        natural_out=natural_out,
        n_threads=int(n_threads),
    )
    return DenseMStep(out["means"], out["natural"], out["log_partition"], out["natural_mean_sums"])


class InMemoryRows:
    """An in-memory X (dense or CSR) as the one block :func:`reduce_blocks` reads."""

    dtype = np.dtype(np.float64)

    def __init__(self, rows):
        self.rows = rows

    def blocks(self):
        yield 0, self.rows.shape[0], self.rows

    def spans(self):
        return [(0, self.rows.shape[0])]


def csr_rows(rows):
    """A block of rows as CSR (a dense block converted, zeros dropped), with int64 ``indptr`` and
    float64 ``data``; the kernel reads nothing else, so dense and sparse rows give bitwise the same
    pass."""
    if not sp.issparse(rows):
        rows = csr_from_dense(rows, np.float64)
    elif rows.format != "csr":
        rows = sp.csr_array(rows)
    indptr = np.ascontiguousarray(rows.indptr, dtype=np.int64)
    indices = rows.indices
    if indices.dtype not in (np.int32, np.int64):
        indices = indices.astype(np.int64)
    data = np.ascontiguousarray(rows.data, dtype=np.float64)
    return indptr, np.ascontiguousarray(indices), data, rows.shape


def exponential_family_block_pass(parameters, request, rows, weights, state):
    """One kernel pass over a block of rows (dense or CSR): ``(statistics, outputs, new_state)`` as
    :func:`fastelbo._block_reduction.reduce_blocks` expects. The pass keeps no per-row state of its
    own: ``new_state`` is the rows' most probable components where labels were requested (what the
    truncated search starts a block's sets from), else ``state`` unchanged."""
    indptr, indices, data, shape = csr_rows(rows)
    weights = None if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    out = _core.exponential_family_mixture_pass(
        indptr,
        indices,
        data,
        shape[1],
        weights,
        parameters.log_weights,
        parameters.natural_transposed,
        parameters.log_partition,
        parameters.family,
        compute_moments=parameters.moments,
        return_log_norm=request.log_norm,
        return_responsibilities=request.responsibilities,
        return_labels=request.labels,
        n_threads=parameters.n_threads,
        negligible_responsibility=parameters.negligible_responsibility,
    )
    new_state = out["labels"] if request.labels else state
    return ExponentialFamilyStatistics.from_kernel(out, shape[0]), request.pick(out), new_state
