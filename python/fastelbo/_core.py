"""fastelbo's compiled kernels (private; use the estimators).

This module is the kernel build :mod:`fastelbo._cpu_dispatch` chose for this CPU: it holds that
extension module's functions and ``BUILD_INFO`` (whose ``cpu_target`` names the choice).
"""

from fastelbo._cpu_dispatch import load_kernels as _load_kernels

_kernels = _load_kernels()
globals().update({name: value for name, value in vars(_kernels).items() if not name.startswith("__")})
del _load_kernels
