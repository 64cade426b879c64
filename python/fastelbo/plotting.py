"""Plots of a fit's convergence and of its entropy decomposition (matplotlib, an optional extra).

``docs/theory.rst``: at every stationary point of learning the ELBO ``F`` equals the entropy sum
``S = A + B + C``. :func:`plot_convergence` draws both per EM iteration (their meeting is the picture
of that theorem) and the gap between them on a log axis; :func:`plot_decomposition` draws the terms
of one decomposition as bars.

matplotlib is imported when a function is called, not when this module (or ``fastelbo``) is, so
fastelbo works without it; install it with ``pip install matplotlib``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastelbo.entropy import EntropyDecomposition

__all__ = ["plot_convergence", "plot_decomposition"]

_INSTALL_HINT = "fastelbo's plots need matplotlib: pip install matplotlib"

#: Colours of the ELBO and the entropy sum, shared by both plots so that they read together.
_ELBO_COLOUR = "tab:blue"
_ENTROPY_SUM_COLOUR = "tab:orange"
_GAP_COLOUR = "tab:red"
_TERM_COLOUR = "tab:gray"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return plt


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error


def _histories(model):
    """``(elbo_history_, entropy_sum_history_)`` of a fitted model, or a clear error."""
    # An unfitted fastelbo estimator: scikit-learn's NotFittedError (a ValueError), as its methods raise.
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model)
    missing = [name for name in ("elbo_history_", "entropy_sum_history_") if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"model must be a fitted fastelbo estimator with per-iteration histories; "
            f"{type(model).__name__} has no {' or '.join(missing)}"
        )
    elbo = np.asarray(model.elbo_history_, dtype=np.float64)
    entropy_sum = np.asarray(model.entropy_sum_history_, dtype=np.float64)
    if elbo.ndim != 1 or elbo.shape != entropy_sum.shape:
        raise ValueError(
            f"model's elbo_history_ {elbo.shape} and entropy_sum_history_ {entropy_sum.shape} must be "
            "1-D arrays of equal length"
        )
    if elbo.size == 0:
        raise ValueError(f"model's histories are empty: no EM iteration of this {type(model).__name__} ran")
    return elbo, entropy_sum


def _convergence_axes(ax):
    """The (values, gap) axes, new side-by-side panels, a twin of ``ax`` or the pair given, and
    whether the gap shares the values' panel (a twin)."""
    if ax is None:
        plt = _pyplot()
        _, (ax_values, ax_gap) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        return ax_values, ax_gap, False
    _require_matplotlib()
    from matplotlib.axes import Axes

    if isinstance(ax, Axes):
        return ax, ax.twinx(), True
    # A pair: a tuple or list, or the array that ``plt.subplots(1, 2)`` returns.
    pair = list(np.ravel(np.asarray(ax, dtype=object))) if isinstance(ax, Sequence | np.ndarray) else []
    if len(pair) == 2 and all(isinstance(a, Axes) for a in pair):
        return pair[0], pair[1], False
    raise TypeError(
        f"ax must be None, a matplotlib Axes or a pair of Axes (values, gap); got {type(ax).__name__}"
    )


def plot_convergence(model, ax=None):
    """Plot the ELBO and the entropy sum per EM iteration, and the gap between them.

    The first panel draws ``elbo_history_`` (``F``) and ``entropy_sum_history_`` (``S``) against
    the iteration: they meet at a stationary point of learning (``docs/theory.rst``). The second
    draws ``|F - S|`` per iteration, ``|elbo_history_[t] - entropy_sum_history_[t]|``, on a log
    axis that spans whole decades; iterations where it is exactly 0 (which a log axis cannot show)
    are marked on the panel's bottom edge, and a gap that is 0 at every iteration (a closed-form
    fit) is said in words.

    Fits of up to 30 iterations get a marker on every point (1 to 3 iterations: larger ones, and
    whole-number iteration ticks). When the first iterations lie so far from the rest that the
    later ones would fill less than 1/50 of the values axis (truncated EM's first F, say), that
    axis shows the later iterations only and a note on it says which iterations lie outside; the
    curves themselves hold every iteration.

    Parameters
    ----------
    model : estimator
        A fitted estimator with ``elbo_history_`` and ``entropy_sum_history_``: :class:`FastGMM`
        (exact or truncated), :class:`FastPPCA`, :class:`FastFactorAnalysis` or :class:`FastMFA`.
        A closed-form fit (``FastPPCA(solver='eigh')``) has one entry and is drawn as one point.
    ax : matplotlib Axes or pair of Axes, default=None
        ``None`` draws on a new figure with two panels side by side. One ``Axes`` takes ``F`` and
        ``S``, and the gap goes on a twin of it (``ax.twinx()``, same iterations, log scale on the
        right). A pair ``(ax_values, ax_gap)``, or the array of two Axes that
        ``plt.subplots(1, 2)`` returns, puts the gap on the second.

    Returns
    -------
    tuple of matplotlib Axes
        ``(ax_values, ax_gap)``: the Axes holding ``F`` and ``S``, and the one holding the gap.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    sklearn.exceptions.NotFittedError
        If ``model`` is an estimator that has not been fitted.
    TypeError
        If ``model`` has no histories, or ``ax`` is not an Axes or a pair of them.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastelbo import FastGMM, plot_convergence
    >>> gmm = FastGMM(n_components=10, random_state=0).fit(load_digits().data)
    >>> ax_values, ax_gap = plot_convergence(gmm)  # doctest: +SKIP
    """
    elbo, entropy_sum = _histories(model)
    ax_values, ax_gap, twin = _convergence_axes(ax)
    n = elbo.size
    iterations = np.arange(1, n + 1)
    # Short fits: a marker on every iteration, so that 1-3 points read as points.
    marker = "o" if n <= _MARKED_ITERATIONS else None
    size = 6 if n <= 3 else 3
    (elbo_line,) = ax_values.plot(
        iterations, elbo, color=_ELBO_COLOUR, marker=marker, markersize=size, label="ELBO  F"
    )
    (entropy_sum_line,) = ax_values.plot(
        iterations,
        entropy_sum,
        color=_ENTROPY_SUM_COLOUR,
        marker=marker,
        markersize=size,
        linestyle="--",
        label="entropy sum  S",
    )
    ax_values.set_xlabel("EM iteration")
    ax_values.set_ylabel("per data point")
    ax_values.set_title(f"{type(model).__name__}: ELBO and entropy sum, {n} iteration{'s' if n != 1 else ''}")
    # Iterations are whole numbers; values are shown as they are, not as an offset from one of them.
    _iteration_ticks(ax_values, iterations)
    ax_values.ticklabel_format(axis="y", useOffset=False, style="plain")
    _zoom_past_first_iterations(ax_values, elbo, entropy_sum)

    gap = np.abs(elbo - entropy_sum)
    drawn_gap = np.where(gap > 0, gap, np.nan)
    # On a twin the gap is dotted, so that it does not pass for a third value curve.
    (gap_line,) = ax_gap.plot(
        iterations,
        drawn_gap,
        color=_GAP_COLOUR,
        marker=marker,
        markersize=size,
        linestyle=":" if twin else "-",
        label="|F - S|",
    )
    ax_gap.set_yscale("log")
    ax_gap.set_ylabel("|F - S|  (log scale)")
    _gap_axis_limits(ax_gap, gap, iterations)
    # One legend for the panel of F and S; it names the gap too when the gap shares that panel.
    handles = [elbo_line, entropy_sum_line] + ([gap_line] if twin else [])
    ax_values.legend(handles=handles, loc="lower right" if n == 1 else "best")
    if n == 1:
        ax_values.text(
            0.02,
            0.98,
            f"one iteration (a closed-form fit has one):\nF = {elbo[0]:.10g}\nS = {entropy_sum[0]:.10g}",
            transform=ax_values.transAxes,
            ha="left",
            va="top",
            **_NOTE_STYLE,
        )
    if not twin:
        ax_gap.set_xlabel("EM iteration")
        ax_gap.set_title("gap |F - S| (0 at a stationary point)")
        _iteration_ticks(ax_gap, iterations)
    return ax_values, ax_gap


#: Fits of at most this many iterations get a marker on every point.
_MARKED_ITERATIONS = 30
#: The first iterations are left off the values axis when the later ones would fill less than
#: 1/_ZOOM_RATIO of it ...
_ZOOM_RATIO = 50
#: ... and they are at most this fraction of the iterations (at least one).
_ZOOM_FRACTION = 0.1
_NOTE_STYLE = {"fontsize": "small", "bbox": {"boxstyle": "round", "facecolor": "white", "alpha": 0.85}}


def _iteration_ticks(ax, iterations):
    """Whole-number iteration ticks; a short fit gets one per iteration and room on both sides."""
    from matplotlib.ticker import MaxNLocator

    n = iterations.size
    if n <= 10:
        ax.set_xticks(iterations)
        if n <= 3:
            ax.set_xlim(0.5, n + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(1 - 0.03 * (n - 1), n + 0.03 * (n - 1))  # iterations count from 1: no tick at 0


def _zoom_past_first_iterations(ax, elbo, entropy_sum):
    """Zoom the values axis to the later iterations when the first ones (truncated EM's first F,
    say, far below the rest) would squash them into a flat line, and say so on the plot."""
    n = elbo.size
    values = np.stack([elbo, entropy_sum])
    full = np.ptp(values)
    if n < 2 or not np.isfinite(full) or full == 0:
        return
    for skipped in range(1, max(1, int(_ZOOM_FRACTION * n)) + 1):
        rest = values[:, skipped:]
        if np.ptp(rest) * _ZOOM_RATIO < full:
            break
    else:
        return
    low, high = rest.min(), rest.max()
    margin = 0.08 * (high - low) or 0.05 * max(abs(high), 1.0)
    ax.set_ylim(low - margin, high + margin)
    outside = values[:, :skipped]
    below = bool((outside < low).any())
    where = "below" if below and not (outside > high).any() else ("above" if not below else "outside")
    first = (
        f"iteration 1 (F = {elbo[0]:.4g})"
        if skipped == 1
        else f"iterations 1-{skipped} (F from {elbo[0]:.4g})"
    )
    verb = "lies" if skipped == 1 else "lie"
    ax.text(  # EM climbs: the lower right corner is where the curves are not
        0.98,
        0.03,
        f"{first} {verb} {where} the axis,\nzoomed to iterations {skipped + 1}-{n}",
        transform=ax.transAxes,
        ha="right",
        multialignment="left",
        va="bottom",
        **_NOTE_STYLE,
    )


def _gap_axis_limits(ax, gap, iterations):
    """A log axis that spans whole decades (at least two), so that its ticks are labelled and
    distinct; an exact 0 gap, which a log axis cannot show, is marked and said."""
    positive = gap[gap > 0]
    zero = gap == 0
    if positive.size:
        low = 10.0 ** np.floor(np.log10(positive.min()))
        high = 10.0 ** np.ceil(np.log10(positive.max()))
        while high / low < 100.0:
            low, high = low / np.sqrt(10.0), high * np.sqrt(10.0)
        ax.set_ylim(low, high)
    if not zero.any():
        return
    if not positive.size:
        ax.set_ylim(1e-16, 1.0)
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "F = S exactly at every iteration:\nthe gap is 0, which a log axis cannot show",
            transform=ax.transAxes,
            ha="center",
            va="center",
            **_NOTE_STYLE,
        )
        return
    from matplotlib.transforms import blended_transform_factory

    # Markers on the bottom edge at the iterations where the gap is exactly 0.
    ax.plot(
        iterations[zero],
        np.full(int(zero.sum()), 0.0),
        linestyle="none",
        marker="v",
        color=_GAP_COLOUR,
        clip_on=False,
        transform=blended_transform_factory(ax.transData, ax.transAxes),
        label="|F - S| = 0 exactly",
    )
    ax.text(
        0.98,
        0.04,
        "\u25bc F = S exactly (gap 0)",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        **_NOTE_STYLE,
    )


def _decomposition_terms(decomposition):
    """(labels, values, colours) of the bars: A, B, C (and the data term when present), S and F."""
    d = decomposition
    labels = ["A\n<H[q_n]>", "B\n-H[p(z)]", "C\n-E H[p(x|z)]"]
    values = [d.variational_entropy, -d.prior_entropy, -d.observable_entropy]
    if d.data_term != 0.0:
        labels.append("data term")
        values.append(d.data_term)
    colours = [_TERM_COLOUR] * len(values) + [_ENTROPY_SUM_COLOUR, _ELBO_COLOUR]
    labels += ["S\n= sum", "F\nELBO"]
    values += [d.entropy_sum, d.elbo]
    return labels, values, colours


def plot_decomposition(model_or_decomposition, ax=None):
    """Plot the entropy terms of a decomposition, their sum and the ELBO as bars.

    Bars, left to right: ``A = <H[q_n]>``, ``B = -H[p(z)]``, ``C = -E_qbar[H[p(x|z)]]`` (signed as
    in ``docs/theory.rst``, so that they add up), the data term when it is not 0 (non-constant
    base measures only), their sum ``S``, and the ELBO ``F`` beside it. Each bar is labelled with
    its value; the title gives the gap ``F - S``.

    Parameters
    ----------
    model_or_decomposition : estimator or EntropyDecomposition
        A fitted fastelbo estimator (its training decomposition, ``entropy_decomposition()``, is
        drawn) or an :class:`EntropyDecomposition`.
    ax : matplotlib Axes, default=None
        Axes to draw on; ``None`` draws on a new figure.

    Returns
    -------
    matplotlib Axes
        The Axes holding the bars.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    sklearn.exceptions.NotFittedError
        If an estimator is given that has not been fitted.
    TypeError
        If ``model_or_decomposition`` is neither, or ``ax`` is not an Axes.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastelbo import FastGMM, plot_decomposition
    >>> gmm = FastGMM(n_components=10, random_state=0).fit(load_digits().data)
    >>> ax = plot_decomposition(gmm)  # doctest: +SKIP
    """
    if isinstance(model_or_decomposition, EntropyDecomposition):
        decomposition = model_or_decomposition
        title = decomposition.model or "entropy decomposition"
    elif callable(getattr(model_or_decomposition, "entropy_decomposition", None)):
        decomposition = model_or_decomposition.entropy_decomposition()
        title = type(model_or_decomposition).__name__
    else:
        raise TypeError(
            "model_or_decomposition must be a fitted fastelbo estimator or an EntropyDecomposition; "
            f"got {type(model_or_decomposition).__name__}"
        )
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(7, 4), layout="constrained")
    else:
        _require_matplotlib()
        from matplotlib.axes import Axes

        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be None or a matplotlib Axes; got {type(ax).__name__}")
    labels, values, colours = _decomposition_terms(decomposition)
    bars = ax.bar(labels, values, color=colours)
    ax.bar_label(bars, labels=[f"{value:+.4g}" for value in values], padding=2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.margins(y=0.1)  # room for the value labels beyond the longest bar and beyond 0
    ax.set_ylabel("per data point")
    ax.set_title(f"{title}: gap F - S = {decomposition.gap:+.2e}")
    return ax
