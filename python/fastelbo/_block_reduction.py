"""The one reduction every statistics pass goes through: map a family's pure block pass over the
blocks of a row source and merge the blocks' statistics in a fixed tree order.

A block pass is a function ``(rows, weights, state) -> (statistics, outputs, new_state)``: it reads
only its arguments (the parameter snapshot is bound into it, e.g. with ``functools.partial``),
``statistics`` has an exact ``merge``, ``outputs`` maps names to per-row arrays of the block
(labels, log-densities, responsibilities) and ``state`` is the per-row state the family keeps
between passes for those rows (or None).

The merge tree depends only on the number of blocks (:func:`merge_tree`), so the statistics are
bitwise identical for any number of threads, and the Dask backend (:mod:`fastelbo._dask_backend`),
which merges with the same tree, gives bitwise the same statistics as this in-process loop for the
same chunking.
"""

from __future__ import annotations

import numpy as np


def split_point(n: int) -> int:
    """Where the merge tree splits ``n >= 2`` ordered items: the largest power of two below ``n``."""
    return 1 << ((n - 1).bit_length() - 1)


def merge_tree(items, merge):
    """Merge ordered items pairwise in the tree of :func:`split_point` (the left part first)."""
    items = list(items)
    if not items:
        raise ValueError("nothing to merge")
    if len(items) == 1:
        return items[0]
    mid = split_point(len(items))
    return merge(merge_tree(items[:mid], merge), merge_tree(items[mid:], merge))


class _StreamingMerge:
    """:func:`merge_tree` computed as the items arrive, holding O(log n) partial results."""

    def __init__(self, merge):
        self._merge = merge
        self._stack = []  # (size, partial), sizes strictly decreasing powers of two

    def push(self, item):
        size = 1
        while self._stack and self._stack[-1][0] == size:
            previous_size, previous = self._stack.pop()
            item = self._merge(previous, item)
            size += previous_size
        self._stack.append((size, item))

    def result(self):
        if not self._stack:
            raise ValueError("nothing to merge")
        # The remaining partials cover decreasing powers of two, left to right: merge_tree splits
        # off the largest first, so they merge from the right.
        result = self._stack[-1][1]
        for _, partial in reversed(self._stack[:-1]):
            result = self._merge(partial, result)
        return result


def reduce_blocks(source, block_pass, sample_weight=None, states=None, outputs=None):
    """Run ``block_pass`` over every block of ``source`` and merge.

    Parameters
    ----------
    source : RowSource
    block_pass : callable
        ``(rows, weights, state) -> (statistics, outputs, new_state)`` (module docstring).
    sample_weight : ndarray of shape (n_samples,) or None
    states : list or None
        One state per block (from the previous pass), or None for none.
    outputs : dict or None
        ``{name: (trailing_shape, dtype)}`` of the per-row outputs the block pass returns (read by
        backends that build lazy arrays of them, such as Dask's).

    Returns
    -------
    statistics
        Merged with ``statistics.merge`` in :func:`merge_tree` order.
    outputs : dict
        Every per-row output, the blocks' arrays concatenated in row order.
    states : list
        The new state of every block.
    """
    if hasattr(source, "reduce_blocks"):  # a backend that maps the pass itself (Dask)
        return source.reduce_blocks(block_pass, sample_weight, states, outputs)
    merged = _StreamingMerge(lambda a, b: a.merge(b))
    outputs, new_states = {}, []
    for index, (start, stop, rows) in enumerate(source.blocks()):
        weights = None if sample_weight is None else sample_weight[start:stop]
        state = None if states is None else states[index]
        statistics, block_outputs, new_state = block_pass(rows, weights, state)
        merged.push(statistics)
        for name, values in block_outputs.items():
            outputs.setdefault(name, []).append(values)
        new_states.append(new_state)
    joined = {name: parts[0] if len(parts) == 1 else np.concatenate(parts) for name, parts in outputs.items()}
    return merged.result(), joined, new_states
