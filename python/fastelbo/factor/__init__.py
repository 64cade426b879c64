"""Linear-Gaussian factor models fitted by EM on the data's mean and covariance."""

from fastelbo.factor._factor_analysis import FastFactorAnalysis
from fastelbo.factor._ppca import FastPPCA

__all__ = ["FastFactorAnalysis", "FastPPCA"]
