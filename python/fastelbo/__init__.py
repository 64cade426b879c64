"""fastelbo: fast EM for mixture and factor models, with the ELBO and its entropy decomposition.

>>> from fastelbo import FastGMM
>>> gmm = FastGMM(n_components=10).fit(X)           # doctest: +SKIP
>>> gmm.entropy_decomposition()                      # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastelbo import _core
from fastelbo._row_source import RowSource
from fastelbo.entropy import EntropyDecomposition
from fastelbo.exceptions import HeywoodCaseWarning
from fastelbo.factor import FastFactorAnalysis, FastMFA, FastPPCA
from fastelbo.mixture import FastBernoulliMixture, FastGMM, FastPoissonMixture
from fastelbo.plotting import plot_convergence, plot_decomposition  # matplotlib only when called

try:
    __version__ = version("fastelbo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = _core.BUILD_INFO["version"]

__all__ = [
    "EntropyDecomposition",
    "FastBernoulliMixture",
    "FastFactorAnalysis",
    "FastGMM",
    "FastMFA",
    "FastPPCA",
    "FastPoissonMixture",
    "HeywoodCaseWarning",
    "RowSource",
    "build_info",
    "cuda_available",
    "plot_convergence",
    "plot_decomposition",
    "__version__",
]


def cuda_available() -> bool:
    """True if the CUDA kernels were compiled in (``FASTELBO_CUDA=ON``) and a GPU is usable, so
    that ``FastGMM(device='cuda')`` can run."""
    from fastelbo.mixture._cuda_backend import cuda_status

    return cuda_status()[0]


def build_info() -> dict:
    """Versions and build options of the installed package.

    Returns
    -------
    dict
        ``version``, ``eigen_version``, ``compiler``, ``cpu_target`` (the kernel build loaded:
        ``"v2"``, ``"v3"`` or ``"v4"`` for the x86-64 levels, ``"portable"`` elsewhere, ``"native"``
        for a ``FASTELBO_NATIVE=ON`` source build), ``cpu_targets_built`` and
        ``cpu_targets_supported`` (best first), ``native_isa`` (``cpu_target == "native"``),
        ``simd`` (instruction sets Eigen vectorises with), ``openmp`` (enabled), ``openmp_version``,
        ``openmp_max_threads`` (current default pool), ``cuda`` (the CUDA module compiled in),
        ``cuda_available`` (and a GPU usable); with the CUDA module also ``cuda_runtime_version``,
        ``cuda_driver_version``, ``cuda_architectures``, ``cuda_compiler`` and ``cuda_device``
        (the GPU's name, or why there is none); plus the ``numpy`` and ``scikit_learn`` versions.
    """
    import numpy
    import sklearn

    from fastelbo import _cpu_dispatch
    from fastelbo.mixture._cuda_backend import cuda_build_info

    info = dict(_core.BUILD_INFO)
    info.update(
        openmp=bool(_core.openmp_enabled()),
        openmp_max_threads=int(_core.omp_max_threads()),
        **cuda_build_info(),
        cpu_targets_built=_cpu_dispatch.built_targets(),
        cpu_targets_supported=_cpu_dispatch.supported_targets(),
        numpy=numpy.__version__,
        scikit_learn=sklearn.__version__,
    )
    return info
