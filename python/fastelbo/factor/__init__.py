"""Factor models fitted by EM: mixtures of factor analysers (FastMFA)."""

from fastelbo.factor._mfa import DegenerateComponentWarning, FastMFA

__all__ = ["DegenerateComponentWarning", "FastMFA"]
