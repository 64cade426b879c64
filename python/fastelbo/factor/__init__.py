"""Factor models fitted by EM: probabilistic PCA and factor analysis (on the data's mean and
covariance), and mixtures of factor analysers."""

from fastelbo.exceptions import DegenerateComponentWarning, Float32RangeWarning
from fastelbo.factor._factor_analysis import FastFactorAnalysis
from fastelbo.factor._mfa import FastMFA
from fastelbo.factor._ppca import FastPPCA

__all__ = ["DegenerateComponentWarning", "FastFactorAnalysis", "FastMFA", "FastPPCA", "Float32RangeWarning"]
