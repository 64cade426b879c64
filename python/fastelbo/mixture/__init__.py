"""Mixture models fitted by EM: Gaussian mixtures (all covariance types)."""

from fastelbo.mixture._gaussian import FastGMM

__all__ = ["FastGMM"]
