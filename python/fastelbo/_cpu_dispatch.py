"""Choose which build of the compiled kernels to import.

The kernels are compiled once per CPU target into separate extension modules ``fastelbo._core_<target>``:
on x86-64 one per micro-architecture level (``v2``: SSE4.2, NumPy's baseline; ``v3``: AVX2 + FMA;
``v4``: AVX-512), elsewhere one ``portable`` module, and a source build with ``FASTELBO_NATIVE=ON``
one ``native`` module for its host. At import the best target that both the CPU and the operating
system support is loaded (:mod:`fastelbo._cpu_features` reads CPUID and the OS's saved register
state); importing one the CPU lacks would die of an illegal instruction, so it is never tried.

``FASTELBO_CPU=v2|v3|v4`` (or ``native``/``portable``) forces a target, for testing; a forced target
that is not built or that the CPU lacks raises ImportError.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

#: Every target a build can hold, best first.
TARGETS = ("native", "v4", "v3", "v2", "portable")
#: The x86-64 levels, each needing the ones below it.
X86_64_LEVELS = ("v2", "v3", "v4")
ENVIRONMENT_VARIABLE = "FASTELBO_CPU"


def built_targets() -> list[str]:
    """The targets this installation holds a kernel module for, best first."""
    return [t for t in TARGETS if importlib.util.find_spec(f"fastelbo._core_{t}") is not None]


def supported_targets() -> list[str]:
    """The targets this CPU and OS can run, best first (``native`` and ``portable`` always)."""
    from fastelbo import _cpu_features

    levels = set(_cpu_features.supported_x86_64_levels())
    return [t for t in TARGETS if t in ("native", "portable") or t in levels]


def choose_target(built, supported, requested=None) -> str:
    """The target to load: ``requested`` if given (checked), else the best built and supported one.

    Raises
    ------
    ImportError
        If ``requested`` is unknown, not built, or not supported here, or if no built target is
        supported.
    """
    if requested:
        if requested not in TARGETS:
            raise ImportError(
                f"{ENVIRONMENT_VARIABLE}={requested!r} is not a CPU target; use one of {', '.join(TARGETS)}"
            )
        if requested not in built:
            raise ImportError(
                f"{ENVIRONMENT_VARIABLE}={requested!r}: this installation has no kernel build for it "
                f"(built: {', '.join(built) or 'none'})"
            )
        if requested not in supported:
            raise ImportError(
                f"{ENVIRONMENT_VARIABLE}={requested!r}: this CPU (or its operating system) lacks the "
                f"instructions of x86-64-{requested} (supported here: {', '.join(supported)})"
            )
        return requested
    for target in built:
        if target in supported:
            return target
    raise ImportError(
        f"fastelbo has kernel builds for {', '.join(built) or 'no target'}, none of which this CPU "
        f"supports (supported: {', '.join(supported) or 'none'}); build from source with "
        "FASTELBO_NATIVE=ON"
    )


def load_kernels():
    """Import and return the kernel module chosen by :func:`choose_target`."""
    target = choose_target(built_targets(), supported_targets(), os.environ.get(ENVIRONMENT_VARIABLE) or None)
    return importlib.import_module(f"fastelbo._core_{target}")
