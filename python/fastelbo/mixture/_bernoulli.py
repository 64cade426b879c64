"""FastBernoulliMixture: a mixture of products of Bernoulli distributions for binary data."""

from __future__ import annotations

from sklearn.base import BaseEstimator, DensityMixin

from fastelbo._progress import document_progress_parameters
from fastelbo.mixture._exponential_family_mixture import ExponentialFamilyMixture, family_docstring


@document_progress_parameters()
class FastBernoulliMixture(ExponentialFamilyMixture, DensityMixin, BaseEstimator):
    __doc__ = family_docstring(
        summary="Mixture of multivariate Bernoulli distributions (binary data) fitted by EM in C++.",
        model="``p(x | c) = prod_d mu_cd^x_d (1 - mu_cd)^(1 - x_d)``: every column of component ``c`` "
        "is 1 with probability ``mu_cd``.",
        values="0 or 1 (bool, integer or float)",
        accuracy="",
        pseudo_entropy="for the Bernoulli it is the binary entropy ``-mu log mu - (1 - mu) log(1 - mu)``, "
        "and the base measure is 1, so ``data_term`` is 0.",
        floor_range="in ``[mean_floor, 1 - mean_floor]``",
        natural="``= logit(mu_cd)``",
        bound="log(mean_floor / (1 - mean_floor))",
        floor_condition="``2**-53 <= mean_floor < 0.5`` (below ``2**-53``, ``1 - mean_floor`` rounds to 1)",
        means_kind="probabilities in [0, 1]",
        means_attribute="Probability of a 1 in every column of every component",
        example="""    >>> import numpy as np
    >>> from fastelbo import FastBernoulliMixture
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.rand(200, 8) < 0.1, rng.rand(200, 8) < 0.9]
    >>> model = FastBernoulliMixture(n_components=2, tol=1e-8, random_state=0).fit(X)
    >>> d = model.entropy_decomposition()
    >>> abs(d.gap) < 1e-6 * abs(d.elbo)  # F = S at convergence
    True""",
    )
    _family = "bernoulli"
