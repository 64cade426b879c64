"""FastPoissonMixture: a mixture of products of Poisson distributions for count data."""

from __future__ import annotations

from sklearn.base import BaseEstimator, DensityMixin

from fastelbo._progress import document_progress_parameters
from fastelbo.mixture._exponential_family_mixture import ExponentialFamilyMixture, family_docstring


@document_progress_parameters()
class FastPoissonMixture(ExponentialFamilyMixture, DensityMixin, BaseEstimator):
    __doc__ = family_docstring(
        summary="Mixture of products of Poisson distributions (count data) fitted by EM in C++.",
        model="``p(x | c) = prod_d lambda_cd^x_d exp(-lambda_cd) / x_d!``: every column of component "
        "``c`` is a count with rate ``lambda_cd``.",
        values="non-negative integers up to ``2**53`` (3.0 is a count, 2.5 is not; beyond ``2**53``"
        " float64 cannot tell consecutive integers apart)",
        accuracy=" A row's log-likelihood sums terms as large as ``x log x``, so its rounding error"
        " grows with the counts: about ``eps x log x`` for a count ``x``, negligible up to about ``1e6``."
        " Beyond it the decomposition says less: its terms are as large as ``x log x`` and cancel, and"
        " the gap is first order in how far the rates are from their closed form, ``log(lambda)`` per"
        " count; with counts near ``1e9``, converged fits show gaps of tens of nats.",
        pseudo_entropy="for the Poisson it is ``lambda - lambda log(lambda)``, and the base measure "
        "``1 / x!`` gives ``data_term = -<sum_d log(x_nd!)>``, a number of the data alone. The true "
        "entropy of a Poisson distribution holds ``E[log x!]`` instead, a function of the rate: with it "
        "the identity fails.",
        floor_range="``>= mean_floor``",
        natural="``= log(lambda_cd)``",
        bound="log(mean_floor)",
        floor_condition="a finite ``mean_floor >= np.finfo(float).tiny`` (about ``2.2e-308``, the"
        " smallest normal float64: the kernels flush subnormal numbers to zero)",
        means_kind="rates >= 0",
        means_attribute="Rate of every column of every component",
        example="""    >>> import numpy as np
    >>> from fastelbo import FastPoissonMixture
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.poisson(0.5, (200, 6)), rng.poisson(5.0, (200, 6))]
    >>> model = FastPoissonMixture(n_components=2, tol=1e-8, random_state=0).fit(X)
    >>> d = model.entropy_decomposition()
    >>> abs(d.gap) < 1e-6 * abs(d.elbo)  # F = S at convergence
    True""",
    )
    _family = "poisson"
