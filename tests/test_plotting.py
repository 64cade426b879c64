"""fastelbo.plotting: the plotted data is the model's histories and decomposition terms, matplotlib
stays optional, and bad arguments raise clear errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture

import fastelbo
from fastelbo import EntropyDecomposition, FastFactorAnalysis, FastGMM, FastMFA, FastPPCA
from fastelbo.datasets import wine


@pytest.fixture
def plt():
    """matplotlib.pyplot on the Agg backend (tests of the missing-matplotlib path do without it)."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _blobs():
    X, _ = make_blobs(n_samples=400, centers=4, n_features=5, random_state=0)
    return X


def _fit_quietly(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


FITTED_MODELS = {
    "gmm-full": lambda X: FastGMM(n_components=4, random_state=0),
    "gmm-truncated": lambda X: FastGMM(
        n_components=8, covariance_type="diag", n_active=2, n_neighbors=3, random_state=0
    ),
    "ppca-em": lambda X: FastPPCA(n_components=2, solver="em", max_iter=20, random_state=0),
    "ppca-eigh": lambda X: FastPPCA(n_components=2),
    "factor-analysis": lambda X: FastFactorAnalysis(n_components=2),
    "mfa": lambda X: FastMFA(n_components=2, n_factors=1, max_iter=15, random_state=0),
}


@pytest.fixture(scope="module", params=sorted(FITTED_MODELS))
def fitted(request):
    X = _blobs()
    return _fit_quietly(FITTED_MODELS[request.param](X), X)


def _line(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def test_plot_convergence_draws_the_histories_and_their_gap(fitted, plt):
    ax_values, ax_gap = fastelbo.plot_convergence(fitted)
    n = fitted.elbo_history_.size
    iterations = np.arange(1, n + 1)

    elbo = _line(ax_values, "ELBO  F")
    entropy_sum = _line(ax_values, "entropy sum  S")
    np.testing.assert_array_equal(elbo.get_xdata(), iterations)
    np.testing.assert_array_equal(elbo.get_ydata(), fitted.elbo_history_)
    np.testing.assert_array_equal(entropy_sum.get_xdata(), iterations)
    np.testing.assert_array_equal(entropy_sum.get_ydata(), fitted.entropy_sum_history_)

    gap = _line(ax_gap, "|F - S|")
    expected = np.abs(np.asarray(fitted.elbo_history_) - np.asarray(fitted.entropy_sum_history_))
    drawn = np.asarray(gap.get_ydata(), dtype=np.float64)
    np.testing.assert_array_equal(gap.get_xdata(), iterations)
    # Exact zeros cannot sit on a log axis: they are left out (NaN), every other value is drawn.
    np.testing.assert_array_equal(np.isnan(drawn), expected == 0)
    np.testing.assert_array_equal(drawn[expected > 0], expected[expected > 0])
    assert ax_gap.get_yscale() == "log"
    assert ax_values is not ax_gap and ax_values.figure is ax_gap.figure


def test_plot_convergence_draws_a_single_step_fit_as_a_point(plt):
    ppca = FastPPCA(n_components=2).fit(_blobs())
    assert ppca.elbo_history_.size == 1
    ax_values, _ = fastelbo.plot_convergence(ppca)
    assert _line(ax_values, "ELBO  F").get_marker() == "o"


def test_plot_convergence_puts_the_gap_on_a_twin_of_a_given_axes(plt):
    gmm = FastGMM(n_components=3, random_state=0).fit(_blobs())
    fig, ax = plt.subplots()
    ax_values, ax_gap = fastelbo.plot_convergence(gmm, ax=ax)
    assert ax_values is ax
    assert ax_gap in fig.axes and len(fig.axes) == 2
    assert ax_gap.get_shared_x_axes().joined(ax, ax_gap)  # twinx: the same iterations
    assert ax_gap.get_yscale() == "log" and ax.get_yscale() == "linear"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["ELBO  F", "entropy sum  S", "|F - S|"]


def test_plot_convergence_uses_a_given_pair_of_axes(plt):
    gmm = FastGMM(n_components=3, random_state=0).fit(_blobs())
    fig, axes = plt.subplots(1, 2)
    left, right = axes
    assert fastelbo.plot_convergence(gmm, ax=(left, right)) == (left, right)
    assert fastelbo.plot_convergence(gmm, ax=axes) == (left, right)  # the array plt.subplots returns
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(left.get_lines()[0].get_ydata(), gmm.elbo_history_)
    assert [line.get_label() for line in right.get_lines()] == ["|F - S|", "|F - S|"]


def test_plot_decomposition_draws_the_terms_their_sum_and_the_elbo(fitted, plt):
    d = fitted.entropy_decomposition()
    ax = fastelbo.plot_decomposition(fitted)
    heights = [patch.get_height() for patch in ax.patches]
    # A, B = -H[p(z)], C = -E H[p(x|z)] (the signs of docs/theory.rst), then S and F (Gaussians: no
    # data term).
    expected = [d.variational_entropy, -d.prior_entropy, -d.observable_entropy, d.entropy_sum, d.elbo]
    np.testing.assert_array_equal(heights, expected)
    np.testing.assert_allclose(sum(heights[:3]), heights[3], rtol=1e-12, atol=1e-12)  # bars add up to S
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert [label.split("\n")[0] for label in labels] == ["A", "B", "C", "S", "F"]


def test_plot_decomposition_accepts_a_decomposition_and_shows_a_data_term(plt):
    d = EntropyDecomposition(
        elbo=-3.0,
        variational_entropy=0.5,
        prior_entropy=1.0,
        observable_entropy=2.0,
        data_term=-0.25,
        n_samples=10,
        model="Poisson mixture",
    )
    fig, ax = plt.subplots()
    assert fastelbo.plot_decomposition(d, ax=ax) is ax
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [0.5, -1.0, -2.0, -0.25, d.entropy_sum, -3.0]
    assert d.entropy_sum == pytest.approx(-2.75)
    assert "Poisson mixture" in ax.get_title() and f"{d.gap:+.2e}" in ax.get_title()


def test_plots_of_an_unfitted_model_raise_not_fitted():
    with pytest.raises(NotFittedError):
        fastelbo.plot_convergence(FastGMM(n_components=2))
    with pytest.raises(NotFittedError):
        fastelbo.plot_decomposition(FastMFA(n_components=2))


def test_plot_convergence_of_a_model_without_histories_names_them():
    gm = GaussianMixture(n_components=2, random_state=0).fit(_blobs())
    with pytest.raises(TypeError, match="elbo_history_ or entropy_sum_history_"):
        fastelbo.plot_convergence(gm)
    with pytest.raises(TypeError, match="elbo_history_"):
        fastelbo.plot_convergence(np.zeros(3))


def test_plot_convergence_of_empty_histories_says_no_iteration_ran():
    gmm = FastGMM(n_components=3, random_state=0).fit(_blobs())
    gmm.elbo_history_ = gmm.entropy_sum_history_ = np.array([])
    with pytest.raises(ValueError, match="no EM iteration"):
        fastelbo.plot_convergence(gmm)


def test_plots_refuse_what_is_not_an_axes(plt):
    gmm = FastGMM(n_components=3, random_state=0).fit(_blobs())
    with pytest.raises(TypeError, match="ax must be"):
        fastelbo.plot_convergence(gmm, ax="left")
    with pytest.raises(TypeError, match="ax must be"):
        fastelbo.plot_decomposition(gmm, ax=plt.subplots(1, 2)[1])
    with pytest.raises(TypeError, match="model_or_decomposition"):
        fastelbo.plot_decomposition({"elbo": 1.0})


def test_without_matplotlib_the_plots_say_what_to_install(monkeypatch):
    gmm = FastGMM(n_components=3, random_state=0).fit(_blobs())
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    for plot in (fastelbo.plot_convergence, fastelbo.plot_decomposition):
        with pytest.raises(ImportError, match="pip install matplotlib"):
            plot(gmm)


def test_import_fastelbo_does_not_import_matplotlib():
    code = (
        "import sys, fastelbo\n"
        "assert 'matplotlib' not in sys.modules, 'import fastelbo imported matplotlib'\n"
        "assert 'plot_convergence' in dir(fastelbo) and 'plot_decomposition' in fastelbo.__all__\n"
        "fastelbo.plot_convergence\n"
        "assert 'matplotlib' not in sys.modules, 'looking up plot_convergence imported matplotlib'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fastelbo_has_no_other_lazy_attributes():
    with pytest.raises(AttributeError, match="no_such_name"):
        fastelbo.no_such_name  # noqa: B018


def test_plot_convergence_of_digits_mfa_matches_its_histories(plt):
    # A real fit on real data, as docs/render_figures.py draws it.
    X = load_digits().data[:600]
    mfa = _fit_quietly(
        FastMFA(n_components=3, n_factors=2, noise="spherical", max_iter=30, random_state=0), X
    )
    ax_values, _ = fastelbo.plot_convergence(mfa)
    np.testing.assert_array_equal(_line(ax_values, "entropy sum  S").get_ydata(), mfa.entropy_sum_history_)


# ----------------------------------------------------------------------------- readable plots


def _visible_tick_labels(axis):
    """The texts of the ticks an axis draws (inside its limits), after a draw."""
    low, high = sorted(axis.get_view_interval())
    texts = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if tick.label1.get_visible() and tick.label1.get_text() and low <= tick.get_loc() <= high:
            texts.append(tick.label1.get_text())
    return texts


def _with_histories(elbo, entropy_sum):
    """A fitted FastGMM whose histories are replaced (the plots read nothing else of it)."""
    gmm = FastGMM(n_components=2, random_state=0).fit(_blobs())
    gmm.elbo_history_ = np.asarray(elbo, dtype=np.float64)
    gmm.entropy_sum_history_ = np.asarray(entropy_sum, dtype=np.float64)
    return gmm


def _notes(ax):
    return " ".join(text.get_text() for text in ax.texts)


def test_a_two_iteration_fit_reads_without_an_offset_and_with_whole_iterations(plt):
    # One component on the (standardised) wine data: EM stops after 2 flat iterations, F and S 2e-5
    # apart at -14.6, which matplotlib would write as offsets from -14.6134.
    gmm = FastGMM(random_state=0).fit(wine())
    assert gmm.n_iter_ == 2
    ax_values, ax_gap = fastelbo.plot_convergence(gmm)
    ax_values.figure.canvas.draw()
    for ax in (ax_values, ax_gap):
        np.testing.assert_array_equal(ax.get_xticks(), [1, 2])
        assert ax.get_xlim() == (0.5, 2.5)
    assert _line(ax_values, "ELBO  F").get_marker() == "o"
    # The values' ticks read as values: no offset label above the axis, and all distinct.
    assert ax_values.yaxis.get_major_formatter().get_offset() == ""
    labels = _visible_tick_labels(ax_values.yaxis)
    assert len(labels) >= 2 and len(set(labels)) == len(labels)
    low, high = ax_values.get_ylim()
    for tick in ax_values.yaxis.get_major_ticks():  # each label is its tick's value, not an offset
        if low <= tick.get_loc() <= high:
            value = float(tick.label1.get_text().replace("\u2212", "-"))
            assert value == pytest.approx(tick.get_loc(), abs=1e-12)
    assert low <= gmm.entropy_sum_history_.min() and high >= gmm.elbo_history_.max()


def test_the_gap_axis_spans_whole_decades_and_labels_them_distinctly(plt):
    # A gap that hardly changes (reg_covar's share, at the end of a fit) got a narrow log axis
    # whose labels repeated: 4.13862, 4.13862, 4.13863, 4.13863, ...
    elbo = np.array([-3.0, -2.0, -1.5])
    gmm = _with_histories(elbo, elbo - np.array([4.13862, 4.13864, 4.13866]))
    _, ax_gap = fastelbo.plot_convergence(gmm)
    ax_gap.figure.canvas.draw()
    low, high = ax_gap.get_ylim()
    assert low <= 4.13862 and high >= 4.13866 and high / low >= 100
    assert np.log10(low) % 0.5 == pytest.approx(0) and np.log10(high) % 0.5 == pytest.approx(0)
    labels = _visible_tick_labels(ax_gap.yaxis)
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels


def test_an_exactly_zero_gap_is_said_on_the_plot(plt):
    ppca = FastPPCA(n_components=2).fit(_blobs())
    ppca.entropy_sum_history_ = ppca.elbo_history_.copy()  # the closed form's F = S, exactly
    ax_values, ax_gap = fastelbo.plot_convergence(ppca)
    assert np.isnan(_line(ax_gap, "|F - S|").get_ydata()).all()
    assert "F = S exactly at every iteration" in _notes(ax_gap)
    assert "one iteration" in _notes(ax_values) and f"{ppca.elbo_history_[0]:.10g}" in _notes(ax_values)
    ax_values.figure.canvas.draw()  # and it draws without a log-scale complaint


def test_iterations_with_an_exactly_zero_gap_are_marked_on_the_bottom_edge(plt):
    elbo = np.array([-3.0, -2.0, -1.5, -1.4, -1.35])
    entropy_sum = elbo - np.array([1e-2, 0.0, 1e-3, 0.0, 1e-4])
    _, ax_gap = fastelbo.plot_convergence(_with_histories(elbo, entropy_sum))
    zeros = _line(ax_gap, "|F - S| = 0 exactly")
    np.testing.assert_array_equal(zeros.get_xdata(), [2, 4])
    np.testing.assert_array_equal(zeros.get_ydata(), [0.0, 0.0])  # in axes coordinates: the bottom edge
    assert "F = S exactly (gap 0)" in _notes(ax_gap)
    gap = _line(ax_gap, "|F - S|").get_ydata()
    np.testing.assert_array_equal(np.isnan(gap), [False, True, False, True, False])


def test_a_huge_first_iteration_of_truncated_em_is_left_off_the_values_axis(plt):
    # 12 iterations (the stopping rule of truncated EM runs this fit to 67): an axis of 12 points.
    kwargs = dict(n_components=8, covariance_type="diag", n_active=2, n_neighbors=3, random_state=0)
    gmm = FastGMM(**kwargs, max_iter=12)
    with pytest.warns(ConvergenceWarning):
        gmm.fit(_blobs())
    elbo, entropy_sum = gmm.elbo_history_, gmm.entropy_sum_history_
    rest = np.concatenate([elbo[1:], entropy_sum[1:]])
    # The case at hand: the first F lies far below everything after it.
    assert elbo[0] < rest.min() - 1000 * np.ptp(rest)
    ax_values, _ = fastelbo.plot_convergence(gmm)
    low, high = ax_values.get_ylim()
    assert low <= rest.min() and high >= rest.max()  # every later value is on the axis ...
    assert elbo[0] < low and high - low < 2 * np.ptp(rest)  # ... the first is not, and the rest fill it
    assert f"iteration 1 (F = {elbo[0]:.4g}) lies below the axis" in _notes(ax_values)
    assert f"zoomed to iterations 2-{elbo.size}" in _notes(ax_values)
    np.testing.assert_array_equal(_line(ax_values, "ELBO  F").get_ydata(), elbo)  # the curve holds it
    assert elbo.size > 10 and 0 < ax_values.get_xlim()[0] < 1  # iterations count from 1: no tick at 0


def test_an_ordinary_climb_is_not_zoomed(plt):
    # EM's usual steep start: the first iterations take much of the axis, but not all of it.
    elbo = -10.0 - 5.0 * 0.5 ** np.arange(30)
    gmm = _with_histories(elbo, elbo + 0.01)
    values = np.stack([elbo, elbo + 0.01])
    # Without its first 3 iterations (a tenth) the climb still fills more than 1/50 of the axis.
    assert np.ptp(values[:, 3:]) * 50 > np.ptp(values)
    ax_values, _ = fastelbo.plot_convergence(gmm)
    low, high = ax_values.get_ylim()
    assert low <= values.min() and high >= values.max()
    assert len(ax_values.texts) == 0
