"""Progress of an EM fit, as the estimators' ``verbose`` asks for it.

Every fastelbo estimator fitted by EM (FastGMM, FastMFA, FastPPCA with ``solver='em'``,
FastFactorAnalysis) reports through :class:`FitProgress`; the EM driver (:mod:`fastelbo._base`)
calls it at the start and end of every initialisation and after every iteration. The numbers are the
ones the fit records: after iteration ``t``, ``elbo`` is ``elbo_history_[t]`` (``F(q^t, Theta^t)``),
``entropy sum`` is ``entropy_sum_history_[t]`` (``S(q^t, Theta^{t+1})``), ``gap`` is their
difference ``F - S`` (0 at a stationary point) and ``ll change`` is the change of the ELBO that the
convergence test reads.

``verbose=0`` prints nothing. Otherwise the lines on stdout are scikit-learn's
``GaussianMixture``'s (as of scikit-learn 1.9), each followed by fastelbo's numbers: every
initialisation starts with ``Initialization <i>`` and ends with ``Initialization converged.`` or
``Initialization did not converge.`` (``verbose >= 2`` adds the initialisation's ``time lapse``
and its final ``lower bound``), and in between:

``verbose=1``
    on a terminal (stderr is a tty), a progress bar over the ``max_iter`` iterations on stderr
    showing the current ELBO and gap: tqdm's when tqdm is installed (it is optional), otherwise
    one plain line rewritten in place with ``'\\r'``. Elsewhere (a pipe, a log file, captured
    output), scikit-learn's ``  Iteration <t>`` line every ``verbose_interval`` iterations on
    stdout, followed by ``\\t elbo <F>\\t gap <F - S>``.
``verbose>=2``
    scikit-learn's ``  Iteration <t>\\t time lapse <s>s\\t ll change <change>`` every
    ``verbose_interval`` iterations (``verbose_interval=1``: every iteration), the time lapse
    being the time since the previous line (for the first line, since the initialisation began),
    followed by the time ``per iteration`` (the initialisation excluded), the ``elbo``, the
    ``entropy sum`` and the ``gap``.
"""

from __future__ import annotations

import sys
import textwrap
from time import perf_counter

#: Seconds between two redraws of the plain in-place line (a fast fit would otherwise spend its time
#: writing to the terminal).
_REDRAW_INTERVAL = 0.1


#: The ``verbose`` and ``verbose_interval`` entries of every EM estimator's Parameters section: one
#: behaviour, this module's, so one text; ``{subject}`` says what is reported (FastPPCA: only EM's).
_PROGRESS_PARAMETERS = """\
verbose : int or bool, default=0
    {subject}
    in scikit-learn's lines (``Initialization <i>`` ... ``Initialization converged.``), with
    the ELBO and the gap ``F - S`` added. 1 (or True): on a terminal a
    progress bar on stderr (tqdm's when installed, a plain line otherwise), elsewhere a line
    ``Iteration <t>, elbo, gap`` every ``verbose_interval`` iterations; 2: a line every
    ``verbose_interval`` iterations with the time lapse and time per iteration, the change of
    the ELBO, the ELBO, the entropy sum and the gap.
verbose_interval : int, default=10
    Iterations between progress lines (1: every iteration).
"""
_PROGRESS_PARAMETERS_LINE = "{progress_parameters}"


def document_progress_parameters(subject="Progress on stdout"):
    """Class decorator: writes the ``verbose`` and ``verbose_interval`` entries into the class
    docstring where it has the line ``{progress_parameters}``, at that line's indentation."""

    def decorate(cls):
        if cls.__doc__ is None:  # python -OO strips docstrings
            return cls
        lines = cls.__doc__.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.strip() == _PROGRESS_PARAMETERS_LINE:
                indent = line[: len(line) - len(line.lstrip())]
                lines[i] = textwrap.indent(_PROGRESS_PARAMETERS.format(subject=subject), indent)
                cls.__doc__ = "".join(lines)
                return cls
        raise ValueError(f"{cls.__name__}'s docstring has no {_PROGRESS_PARAMETERS_LINE} line")

    return decorate


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _load_tqdm():
    """tqdm's progress-bar class, or None when tqdm is not installed (it is optional)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class FitProgress:
    """Reports the EM runs of one ``fit`` as ``verbose`` asks (see the module's docstring).

    Parameters
    ----------
    verbose : int or bool
        0: nothing; 1: a progress bar on a terminal, periodic lines otherwise; 2 and more: a line
        with timings every ``verbose_interval`` iterations.
    verbose_interval : int
        Iterations between two printed lines.
    max_iter : int
        The length of a progress bar.
    """

    def __init__(self, verbose, verbose_interval, max_iter):
        self.verbose = int(verbose)
        self.verbose_interval = int(verbose_interval)
        self.max_iter = int(max_iter)
        self._bar = None  # the open progress bar of the current run (bar mode)
        self._line_width = 0  # width of the plain in-place line drawn last (0: none open)
        self._undrawn = None  # the in-place line's latest state when a redraw was skipped

    # -- the driver's calls ---------------------------------------------------------------------

    def init_begin(self, init):
        """Initialisation ``init`` (0-based) starts."""
        if self.verbose < 1:
            return
        print(f"Initialization {init}", flush=True)
        self._init = init
        # scikit-learn's first time lapse includes the initialisation; the time per iteration
        # counts from iterations_begin.
        self._init_start = self._lap_start = self._iterations_start = perf_counter()
        self._lap_iterations = 0
        self._last_redraw = -float("inf")
        self._bar_mode = self.verbose == 1 and _is_terminal(sys.stderr)

    def iterations_begin(self):
        """The initial parameters are set; the EM iterations start."""
        if self.verbose < 1:
            return
        self._iterations_start = perf_counter()
        if self._bar_mode:
            tqdm = _load_tqdm()
            if tqdm is not None:  # its rate counts from here
                self._bar = tqdm(total=self.max_iter, desc=f"init {self._init}", unit="it", file=sys.stderr)

    def iteration(self, n_iter, elbo, entropy_sum, change):
        """Iteration ``n_iter`` (1-based) ended with ELBO ``elbo``, entropy sum ``entropy_sum``,
        and the ELBO changed by ``change`` from the previous iteration."""
        if self.verbose < 1:
            return
        self._lap_iterations += 1
        gap = elbo - entropy_sum
        if self._bar_mode:
            self._draw_bar(n_iter, elbo, gap)
            return
        if n_iter % self.verbose_interval != 0:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}\t elbo {elbo:.8f}\t gap {gap:+.3e}", flush=True)
            return
        now = perf_counter()
        per_iteration = (now - max(self._lap_start, self._iterations_start)) / self._lap_iterations
        print(
            f"  Iteration {n_iter}\t time lapse {now - self._lap_start:.5f}s\t ll change {change:.5f}\t "
            f"per iteration {per_iteration:.5f}s\t elbo {elbo:.8f}\t "
            f"entropy sum {entropy_sum:.8f}\t gap {gap:+.3e}",
            flush=True,
        )
        self._lap_start = now
        self._lap_iterations = 0

    def init_end(self, converged, lower_bound):
        """The initialisation ended (``converged`` or not) with ELBO ``lower_bound``."""
        if self.verbose < 1:
            return
        if self._undrawn is not None:
            self._draw_line(*self._undrawn)
        self.close()
        outcome = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {outcome}.", flush=True)
        else:
            print(
                f"Initialization {outcome}. time lapse {perf_counter() - self._init_start:.5f}s\t "
                f"lower bound {lower_bound:.5f}.",
                flush=True,
            )

    def close(self):
        """End the bar or in-place line of the current run, if one is open; the driver calls it
        also when a fit fails or is interrupted, so the terminal is left on a fresh line."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()
        if self._line_width:
            self._line_width = 0
            sys.stderr.write("\n")
            sys.stderr.flush()

    # -- bar mode --------------------------------------------------------------------------------

    def _draw_bar(self, n_iter, elbo, gap):
        if self._bar is not None:
            self._bar.set_postfix_str(f"elbo {elbo:.6f}, gap {gap:+.2e}", refresh=False)
            self._bar.update(1)
            return
        if perf_counter() - self._last_redraw < _REDRAW_INTERVAL:
            self._undrawn = (n_iter, elbo, gap)
            return
        self._draw_line(n_iter, elbo, gap)

    def _draw_line(self, n_iter, elbo, gap):
        now = self._last_redraw = perf_counter()
        self._undrawn = None
        text = (
            f"init {self._init}: iteration {n_iter}/{self.max_iter}  elbo {elbo:.6f}  gap {gap:+.2e}  "
            f"{(now - self._iterations_start) / n_iter:.3g}s/it"
        )
        # Pad with blanks over what a longer previous line left behind.
        sys.stderr.write("\r" + text.ljust(self._line_width))
        sys.stderr.flush()
        self._line_width = max(self._line_width, len(text))
