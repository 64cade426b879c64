"""Mixture models fitted by EM: Gaussian mixtures (all covariance types), and Bernoulli and Poisson
mixtures for binary and count data (sparse or dense)."""

from fastelbo.mixture._bernoulli import FastBernoulliMixture
from fastelbo.mixture._gaussian import FastGMM
from fastelbo.mixture._poisson import FastPoissonMixture

__all__ = ["FastBernoulliMixture", "FastGMM", "FastPoissonMixture"]
