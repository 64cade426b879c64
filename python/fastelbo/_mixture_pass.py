"""What the block passes of every mixture family share: the request for per-row outputs, and the
mixing weights in the form the kernels take them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The per-row outputs a mixture pass can return, in a fixed order.
PER_ROW_OUTPUTS = ("log_norm", "responsibilities", "labels")


@dataclass(frozen=True)
class MixturePassRequest:
    """Which per-row outputs a mixture pass returns: ``log p(x_n)`` (or the family's free energy
    of row n), the posterior over components, the most probable component."""

    log_norm: bool = False
    responsibilities: bool = False
    labels: bool = False

    @property
    def names(self):
        """The names of the requested per-row outputs, in a fixed order."""
        return tuple(name for name in PER_ROW_OUTPUTS if getattr(self, name))

    def outputs(self, n_components, dtype):
        """``{name: (trailing_shape, dtype)}`` of the requested per-row outputs (what a backend
        needs to build lazy arrays of them)."""
        described = {
            "log_norm": ((), np.dtype(dtype)),
            "responsibilities": ((n_components,), np.dtype(dtype)),
            "labels": ((), np.dtype(np.int64)),
        }
        return {name: described[name] for name in self.names}

    def pick(self, out):
        """The requested per-row outputs of a kernel's result dictionary."""
        return {name: out[name] for name in self.names}


def log_mixing_weights(weights, dtype):
    """``log(weights)`` computed in float64 and rounded to ``dtype`` (an empty component: -inf)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64)).astype(dtype)


def block_inputs(rows, weights, dtype):
    """A block's rows and weights as the kernels take them: C-contiguous in the pass's ``dtype``
    (a float32 block of a model kept in float64 is widened here, one block at a time)."""
    rows = np.ascontiguousarray(rows, dtype=dtype)
    return rows, None if weights is None else np.ascontiguousarray(weights, dtype=dtype)


@dataclass(frozen=True)
class RowOutputs:
    """One per-row output of an inference pass over a block of new rows, as a pure function of
    the block: what a Dask task computes for a chunk (:func:`fastelbo._dask_backend.map_rows`).
    It holds the block pass with its parameter snapshot bound, not the estimator.

    ``home_pass`` (or None) is a labelling block pass whose new per-row state starts the pass (the
    Gaussian family's home labels), as the estimator's in-memory inference does for one block;
    ``check(statistics, outputs, rows)`` raises the estimator's error for a pass whose results are
    not finite.
    """

    block_pass: object
    name: str
    check: object
    home_pass: object = None

    def __call__(self, rows):
        home = None if self.home_pass is None else self.home_pass(rows, None, None)[2]
        statistics, outputs, _ = self.block_pass(rows, None, home)
        self.check(statistics, outputs, rows)
        return outputs[self.name]
