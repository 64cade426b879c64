"""Progress of a fit (``verbose``): scikit-learn's lines stay, every estimator shows the ELBO and the
gap ``F - S`` of its histories, ``verbose=2`` adds times, and a terminal gets a progress bar (tqdm's
when installed, a plain line rewritten with '\\r' otherwise)."""

import io
import re
import sys

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA, _progress

# Short fits on purpose: the lines are what is tested, not convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = {
    "gmm": lambda **kw: FastGMM(n_components=3, covariance_type="diag", random_state=0, tol=1e-8, **kw),
    "mfa": lambda **kw: FastMFA(n_components=2, n_factors=1, random_state=0, tol=1e-8, **kw),
    "ppca": lambda **kw: FastPPCA(n_components=2, solver="em", random_state=0, tol=1e-10, **kw),
    "fa": lambda **kw: FastFactorAnalysis(n_components=2, tol=1e-8, **kw),
}

NUMBER = r"([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf))"
VERBOSE_1_LINE = re.compile(rf"^  Iteration (\d+)\t elbo {NUMBER}\t gap {NUMBER}$")
VERBOSE_2_LINE = re.compile(
    rf"^  Iteration (\d+)\t time lapse {NUMBER}s\t ll change {NUMBER}\t per iteration {NUMBER}s\t "
    rf"elbo {NUMBER}\t entropy sum {NUMBER}\t gap {NUMBER}$"
)


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    mixing = rng.randn(3, 5)
    centres = np.repeat([[0.0] * 5, [4.0] * 5, [-4.0, 4.0, 0.0, 4.0, -4.0]], 100, axis=0)
    return centres + rng.randn(300, 3) @ mixing + 0.3 * rng.randn(300, 5)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def _end_line(model):
    return "Initialization converged." if model.converged_ else "Initialization did not converge."


def _gap_history(model):
    return model.elbo_history_ - model.entropy_sum_history_


def _kept_run(out, model, line_pattern, elbo_group):
    """The printed block (``Initialization i`` ... its end line) of the run the model kept.

    Estimators with several starts (``n_init`` > 1, or FastFactorAnalysis's two deterministic
    starts) print one block per start, numbered from 0; the kept run's block is the one whose
    printed ELBO values are the model's ``elbo_history_``, and exactly one block may match."""
    starts = [i for i, line in enumerate(out) if re.fullmatch(r"Initialization \d+", line)]
    assert starts and starts[0] == 0, out
    assert [out[i] for i in starts] == [f"Initialization {k}" for k in range(len(starts))], out
    blocks = [out[a:b] for a, b in zip(starts, [*starts[1:], len(out)], strict=True)]

    def is_kept(block):
        rows = [line_pattern.match(line) for line in block[1:-1]]
        return all(rows) and all(
            int(row[1]) <= len(model.elbo_history_)
            and float(row[elbo_group]) == pytest.approx(model.elbo_history_[int(row[1]) - 1], abs=1e-8)
            for row in rows
        )

    kept = [block for block in blocks if is_kept(block)]
    assert len(kept) == 1, out
    return kept[0]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("interval", [1, 3])
def test_verbose_1_off_a_terminal_prints_the_elbo_and_gap_of_the_history(X, name, interval, capsys):
    model = ESTIMATORS[name](max_iter=7, verbose=1, verbose_interval=interval).fit(X)
    out = _kept_run(capsys.readouterr().out.splitlines(), model, VERBOSE_1_LINE, 2)
    assert out[-1] == _end_line(model)
    rows = [VERBOSE_1_LINE.match(line) for line in out[1:-1]]
    assert all(rows), out
    iterations = [int(row[1]) for row in rows]
    assert iterations == list(range(interval, model.n_iter_ + 1, interval))
    for row, t in zip(rows, iterations, strict=True):
        assert float(row[2]) == pytest.approx(model.elbo_history_[t - 1], abs=1e-8)
        assert float(row[3]) == pytest.approx(_gap_history(model)[t - 1], rel=1e-3, abs=1e-300)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_verbose_2_prints_times_change_elbo_entropy_sum_and_gap(X, name, capsys):
    model = ESTIMATORS[name](max_iter=6, verbose=2, verbose_interval=2).fit(X)
    out = _kept_run(capsys.readouterr().out.splitlines(), model, VERBOSE_2_LINE, 5)
    end = re.fullmatch(rf"{_end_line(model)} time lapse {NUMBER}s\t lower bound {NUMBER}\.", out[-1])
    assert end, out[-1]
    # The run's last ELBO (FastGMM's lower_bound_; FastFactorAnalysis's lower_bound_ scores the
    # returned parameters instead, one update later).
    assert float(end[2]) == pytest.approx(model.elbo_history_[-1], abs=1e-5)
    rows = [VERBOSE_2_LINE.match(line) for line in out[1:-1]]
    assert all(rows), out
    assert [int(row[1]) for row in rows] == list(range(2, model.n_iter_ + 1, 2))
    elbo, entropy_sum = model.elbo_history_, model.entropy_sum_history_
    for row in rows:
        t = int(row[1])
        lapse, per_iteration = float(row[2]), float(row[4])
        if t == 2:  # scikit-learn's first time lapse includes the initialisation, per iteration not
            assert 0 <= 2 * per_iteration <= lapse + 1e-5
        else:
            assert per_iteration == pytest.approx(lapse / 2, abs=1e-5)
        assert float(row[3]) == pytest.approx(elbo[t - 1] - elbo[t - 2], abs=1e-5)
        assert float(row[5]) == pytest.approx(elbo[t - 1], abs=1e-8)
        assert float(row[6]) == pytest.approx(entropy_sum[t - 1], abs=1e-8)
        assert float(row[7]) == pytest.approx(elbo[t - 1] - entropy_sum[t - 1], rel=1e-3, abs=1e-300)


def test_verbose_2_reports_the_first_change_from_minus_infinity(X, capsys):
    FastGMM(n_components=2, max_iter=1, verbose=2, verbose_interval=1, random_state=0).fit(X)
    row = VERBOSE_2_LINE.match(capsys.readouterr().out.splitlines()[1])
    assert row[1] == "1" and row[3] == "inf"


def _shape(line):
    """A line with its numbers masked."""
    return re.sub(r"[-+]?(\d+\.?\d*(e[-+]?\d+)?|inf)", "#", line)


@pytest.mark.parametrize("verbose", [1, 2])
def test_every_line_starts_as_scikit_learns_gaussian_mixture_prints_it(X, verbose, capsys):
    settings = dict(n_components=2, max_iter=4, n_init=2, verbose=verbose, verbose_interval=2, random_state=0)
    GaussianMixture(**settings).fit(X)
    theirs = capsys.readouterr().out.splitlines()
    FastGMM(**settings).fit(X)
    ours = capsys.readouterr().out.splitlines()
    assert len(ours) == len(theirs) == 2 * (1 + 2 + 1)
    for their_line, our_line in zip(theirs, ours, strict=True):
        their_shape, our_shape = _shape(their_line), _shape(our_line)
        # An iteration line goes on with fastelbo's numbers; the others are the same.
        assert our_shape == their_shape or our_shape.startswith(their_shape + "\t "), (their_line, our_line)


def test_every_initialisation_is_reported_in_order(X, capsys):
    FastGMM(n_components=2, n_init=3, max_iter=4, verbose=1, verbose_interval=10, random_state=0).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and out[0::2] == ["Initialization 0", "Initialization 1", "Initialization 2"]
    assert set(out[1::2]) <= {"Initialization converged.", "Initialization did not converge."}


def test_closed_form_ppca_and_verbose_0_print_nothing(X, capsys):
    FastPPCA(n_components=2, verbose=2).fit(X)
    FastGMM(n_components=2, verbose=0, random_state=0).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_verbose_1_on_a_terminal_without_tqdm_rewrites_one_line(X, name, capsys, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(_progress, "_load_tqdm", lambda: None)
    model = ESTIMATORS[name](max_iter=9, verbose=1).fit(X)
    out = capsys.readouterr().out.splitlines()
    # One start per pair of lines (FastFactorAnalysis tries two deterministic starts).
    n_starts = len(out) // 2
    assert n_starts >= 1 and out[0::2] == [f"Initialization {k}" for k in range(n_starts)], out
    assert _end_line(model) in out[1::2], out
    text = terminal.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == n_starts
    lines = [
        [
            re.match(rf"init {k}: iteration (\d+)/9  elbo {NUMBER}  gap {NUMBER}  ", s)
            for s in line.split("\r")
        ]
        for k, line in enumerate(text[1:-1].split("\n\r"))
    ]
    assert all(all(drawn) for drawn in lines), text
    # Each start's first iteration is drawn at once and its last one before the line ends; the
    # kept run's last drawn values are the model's.
    assert all(int(drawn[0][1]) == 1 for drawn in lines), text
    kept = [d for d in lines if float(d[-1][2]) == pytest.approx(model.elbo_history_[-1], abs=1e-6)]
    assert len(kept) == 1, text
    drawn = kept[0]
    assert int(drawn[-1][1]) == model.n_iter_
    assert float(drawn[-1][3]) == pytest.approx(_gap_history(model)[-1], rel=1e-2, abs=1e-300)


def test_verbose_1_on_a_terminal_uses_tqdm_when_installed(X, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model = FastGMM(n_components=3, max_iter=9, tol=0.0, verbose=1, random_state=0).fit(X)
    assert capsys.readouterr().out.splitlines() == ["Initialization 0", "Initialization did not converge."]
    text = terminal.getvalue()
    assert "9/9" in text and f"elbo {model.elbo_history_[-1]:.6f}" in text
    assert text.endswith("\n")


def test_an_interrupted_fit_leaves_the_terminal_on_a_fresh_line(X, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(_progress, "_load_tqdm", lambda: None)
    model = FastGMM(n_components=2, max_iter=50, tol=0.0, verbose=1, random_state=0)
    calls = []
    m_step = model._m_step

    def interrupting_m_step(statistics):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        m_step(statistics)

    monkeypatch.setattr(model, "_m_step", interrupting_m_step)
    with pytest.warns(RuntimeWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        model.fit(X)
    text = terminal.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and "iteration 1/50" in text


@pytest.mark.parametrize("estimator", [FastGMM, FastMFA, FastPPCA, FastFactorAnalysis])
def test_every_em_estimator_documents_verbose_and_its_interval(estimator):
    doc = estimator.__doc__
    assert "{progress_parameters}" not in doc
    assert "\n    verbose : int or bool, default=0\n" in doc
    assert "\n    verbose_interval : int, default=10\n" in doc
    assert "``Iteration <t>, elbo, gap``" in doc


def test_the_verbose_entries_need_their_place_in_the_docstring():
    class Undocumented:
        """Parameters
        ----------
        tol : float
        """

    with pytest.raises(ValueError, match="Undocumented's docstring has no"):
        _progress.document_progress_parameters()(Undocumented)
