"""The ``fastelbo`` console script, run as a user runs it (a subprocess of the installed script, or of
``python -m fastelbo`` where the script is not installed): every
model and input format gives the fit an in-process estimator with the same settings gives, ``--json``
and ``--save`` hold that fit, and every error prints one line and exits with status 2.

Every invocation below starts a Python process (about a second of importing), so they are all
launched at once, concurrently, the first time a test asks for one (:func:`runs`).
"""

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

import fastelbo
from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA

SCRIPT = Path(sys.executable).parent / ("fastelbo.exe" if os.name == "nt" else "fastelbo")
# The installed console script; from a source tree without one, ``python -m fastelbo``, its twin.
COMMAND = (str(SCRIPT),) if SCRIPT.exists() else (sys.executable, "-m", "fastelbo")
pytestmark = [
    # The in-process reference fits are short on purpose, like the command line's.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]
HAS_PILLOW = importlib.util.find_spec("PIL") is not None  # scikit-learn reads its photos with Pillow

# Every model with its options on the command line and the estimator they must build.
MODELS = {
    "gmm": (
        ["--components", "3", "--covariance-type", "diag", "--max-iter", "15", "--seed", "0"],
        lambda: FastGMM(n_components=3, covariance_type="diag", max_iter=15, random_state=0),
    ),
    "mfa": (
        ["--components", "2", "--factors", "1", "--max-iter", "8", "--seed", "1", "--reg-covar", "1e-4"],
        lambda: FastMFA(n_components=2, n_factors=1, max_iter=8, random_state=1, reg_covar=1e-4),
    ),
    "ppca": (
        ["--components", "2", "--solver", "em", "--max-iter", "30", "--tol", "1e-9"],
        lambda: FastPPCA(n_components=2, solver="em", max_iter=30, tol=1e-9, random_state=0),
    ),
    "fa": (
        ["--components", "2", "--max-iter", "20"],
        lambda: FastFactorAnalysis(n_components=2, max_iter=20, random_state=0),
    ),
}
# Text tables are read by content: a .tsv, a .txt of blank-separated columns and a .dat are tables too.
FORMATS = (
    "npz", "npz-key-float32", "csv-header", "csv-no-header", "csv-semicolon-header", "csv-tab", "tsv-header",
    "txt-blanks", "dat-semicolon", "iris",
)  # fmt: skip
SEPARATORS = {
    "csv-semicolon-header": ";",
    "csv-tab": "\t",
    "tsv-header": "\t",
    "txt-blanks": " ",
    "dat-semicolon": ";",
}

# Errors as the installed script prints them (tests/test_cli_main.py runs every error case through
# main() in process): the command line (in the data folder) and fragments of the one error line.
ERRORS = {
    "missing-file": (["fit", "absent.npy"], ["no such file: 'absent.npy'"]),
    "csv-text-field": (["fit", "text.csv"], ["text.csv: line 3, column 2 ('b'): 'oops' is not a number"]),
    # Found by matplotlib after the fit, with a traceback, before the output checks came first.
    "plot-format": (["fit", "X.npy", "--plot", "fit.xyz"], ["--plot cannot write a .xyz file", ".png"]),
    "seed-negative": (["fit", "X.npy", "--seed", "-1"], ["--seed -1: Seed must be between 0 and 2**32 - 1"]),
    "zero-factors": (["fit", "X.npy", "--model", "mfa", "--factors", "0"], ["invalid setting", "n_factors"]),
}
# argparse's own errors: one line with argparse's words, status 2.
USAGE_ERRORS = {
    "unknown-model": (["fit", "X.npy", "--model", "hmm"], "argument --model: invalid choice: 'hmm'"),
    "unknown-command": (["train", "X.npy"], "invalid choice: 'train'"),
}


def invocations():
    """Every command line the tests run, by name, relative to the data folder."""
    runs = {}
    for name, (options, _) in MODELS.items():
        runs[f"model-{name}"] = [
            "fit", "X.npy", "--model", name, *options, "--json", f"{name}.json", "--save", f"{name}.joblib",
        ]  # fmt: skip
    gmm_options = MODELS["gmm"][0]
    for fmt in FORMATS:
        source = {"iris": "iris", "npz": "X.npz", "npz-key-float32": "keyed.npz"}.get(fmt, _file_name(fmt))
        extra = ["--key", "train", "--dtype", "float32"] if fmt == "npz-key-float32" else []
        runs[f"format-{fmt}"] = ["fit", source, *gmm_options, *extra, "--json", f"{fmt}.json"]
    runs["unconverged"] = ["fit", "X.npy", "--components", "3", "--max-iter", "1"]
    runs["ppca-all-components"] = ["fit", "X.npy", "--model", "ppca", "--json", "ppca_all.json"]
    runs["quiet"] = ["fit", "X.npy", "--quiet", "--max-iter", "3", "--tol", "0", "--json", "quiet.json"]
    runs["verbose-2"] = [
        "fit",
        "X.npy",
        "--verbose",
        "2",
        "--max-iter",
        "4",
        "--tol",
        "0",
        "--json",
        "v2.json",
    ]
    if HAS_PILLOW:
        runs["patches"] = [
            "fit", "patches", "--n-samples", "400", "--components", "2", "--covariance-type", "spherical",
            "--max-iter", "2", "--json", "patches.json",
        ]  # fmt: skip
    runs["plot"] = ["fit", "X.npy", "--components", "2", "--max-iter", "5", "--plot", "convergence.png"]
    runs["info"] = ["info"]
    runs["demo"] = ["demo", "--repeats", "1", "--max-iter", "3", "--n-components", "3"]
    for name, (args, _) in ERRORS.items():
        runs[f"error-{name}"] = args
    for name, (args, _) in USAGE_ERRORS.items():
        runs[f"usage-{name}"] = args
    return runs


def fastelbo_cli(args, cwd, executable=COMMAND):
    # A scikit-build-core editable install announces its rebuild check on stdout unless told not to.
    env = {**os.environ, "SKBUILD_EDITABLE_VERBOSE": "0"}
    return subprocess.run(
        [*executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    centres = np.repeat([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0], [0.0, 5.0, 5.0, -5.0]], 60, axis=0)
    return centres + rng.randn(180, 2) @ rng.randn(2, 4) + 0.5 * rng.randn(180, 4)


def _write_csv(path, X, header=None, delimiter=","):
    np.savetxt(path, X, fmt="%.17g", delimiter=delimiter, header=header or "", comments="")
    if header is None:  # savetxt writes an empty first line for an empty header
        path.write_text(path.read_text().lstrip("\n"))


CSV_HEADER = [f"feature {i}" for i in range(4)]


def _has_header(fmt):
    return fmt.endswith("-header") and fmt != "csv-no-header"


def _file_name(fmt):
    """The file of a text format: its name's first part is the suffix (csv-tab.csv, tsv-header.tsv)."""
    return f"{fmt}.{fmt.split('-')[0]}"


@pytest.fixture(scope="module")
def folder(X, tmp_path_factory):
    """The data folder: every input file the invocations read."""
    folder = tmp_path_factory.mktemp("cli")
    np.save(folder / "X.npy", X)
    np.savez(folder / "X.npz", X)
    np.savez(folder / "keyed.npz", other=X[:10], train=X)
    for fmt in FORMATS:
        if fmt not in ("npz", "npz-key-float32", "iris"):
            delimiter = SEPARATORS.get(fmt, ",")
            header = delimiter.join(f'"{name}"' for name in CSV_HEADER) if _has_header(fmt) else None
            _write_csv(folder / _file_name(fmt), X, header, delimiter)
    (folder / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    return folder


@pytest.fixture(scope="module")
def runs(folder):
    """The result of every invocation, all run concurrently (a process each)."""
    commands = invocations()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(fastelbo_cli, args, folder) for name, args in commands.items()}
        futures["python-m"] = pool.submit(
            fastelbo_cli, ["info", "--json"], folder, (sys.executable, "-m", "fastelbo")
        )
        return {name: future.result() for name, future in futures.items()}


def assert_error(result, *fragments):
    """Status 2, nothing on stdout, and one line on stderr: ``fastelbo: error: ...`` with every
    fragment."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastelbo: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_same_fit(summary, model):
    decomposition = model.entropy_decomposition().to_dict()
    for term, value in decomposition.items():
        assert summary["decomposition"][term] == value, term
    assert summary["elbo_history"] == model.elbo_history_.tolist()
    assert summary["entropy_sum_history"] == model.entropy_sum_history_.tolist()
    assert summary["n_iter"] == model.n_iter_
    assert summary["converged"] == model.converged_
    # One ELBO: the decomposition's F of the fitted parameters (lower_bound_ is not written).
    assert summary["elbo"] == decomposition["elbo"] and "lower_bound" not in summary


def assert_same_parameters(summary, model, X):
    """The parameters, labels and criteria of ``--json`` are the in-process ``model``'s on X."""
    if hasattr(model, "weights_"):
        mixture = summary["mixture"]
        assert mixture["weights"] == model.weights_.tolist()
        assert mixture["means"] == model.means_.tolist()
        labels = model.predict(X)
        assert summary["labels"] == labels.tolist()
        assert mixture["sizes"] == np.bincount(labels, minlength=model.n_components).tolist()
        assert mixture["bic"] == model.bic(X) and mixture["aic"] == model.aic(X)
        assert "factors" not in summary
    else:
        factors = summary["factors"]
        assert factors["mean"] == model.mean_.tolist()
        assert factors["components"] == model.components_.tolist()
        assert np.array_equal(factors["noise_variance"], model.noise_variance_)
        assert factors["n_factors"] == model.components_.shape[0]
        # The JSON holds the model: loadings^T loadings + noise is its covariance.
        loadings = np.asarray(factors["loadings"])
        covariance = loadings.T @ loadings + np.diag(np.broadcast_to(model.noise_variance_, X.shape[1]))
        np.testing.assert_allclose(covariance, model.get_covariance(), rtol=1e-12, atol=1e-14)
        assert "mixture" not in summary and "labels" not in summary


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_prints_and_writes_the_fit_an_in_process_estimator_makes(X, folder, runs, name):
    result = runs[f"model-{name}"]
    assert result.returncode == 0, result.stderr
    expected = MODELS[name][1]().fit(X)

    lines = result.stdout.splitlines()
    assert lines[0] == "data: X.npy (.npy file): 180 samples x 4 features, float64"
    assert lines[1] == f"model: {' '.join(repr(expected).split())}"
    iterations = f"{expected.n_iter_} iteration{'s' if expected.n_iter_ != 1 else ''}"
    assert lines[2].startswith("fit: ") and f" s, {iterations}, " in lines[2]
    assert ("did not converge" not in lines[2]) == expected.converged_
    table = repr(expected.entropy_decomposition()).splitlines()
    start = lines.index(table[0])
    assert lines[start : start + len(table)] == table

    summary = json.loads((folder / f"{name}.json").read_text())
    assert_same_fit(summary, expected)
    assert_same_parameters(summary, expected, X)
    assert summary["model"] == name and summary["estimator"] == type(expected).__name__
    assert summary["data"]["n_samples"] == 180 and summary["data"]["n_features"] == 4
    assert summary["fit_time_s"] > 0
    for parameter, value in expected.get_params().items():
        if parameter not in ("verbose", "verbose_interval"):
            assert summary["params"][parameter] == value, parameter

    saved = joblib.load(folder / f"{name}.joblib")
    assert type(saved) is type(expected)
    np.testing.assert_array_equal(saved.score_samples(X), expected.score_samples(X))
    assert saved.entropy_decomposition() == expected.entropy_decomposition()


def test_a_fit_without_decomposition_says_why(folder, runs):
    # FastPPCA's default n_components is min(n_samples, n_features) = n_features: no noise, and so
    # no entropy decomposition; the fit is reported, with the reason in place of the table.
    result = runs["ppca-all-components"]
    assert result.returncode == 0, result.stderr
    assert "no entropy decomposition: n_components equals n_features" in result.stdout
    summary = json.loads((folder / "ppca_all.json").read_text())
    assert summary["decomposition"] is None
    assert "noise_variance_ is 0" in summary["no_decomposition"]
    assert summary["elbo_history"] == FastPPCA().fit(np.load(folder / "X.npy")).elbo_history_.tolist()


def test_warnings_take_one_line_each_and_an_unconverged_fit_says_so(runs):
    result = runs["unconverged"]
    assert result.returncode == 0
    assert "did not converge (max_iter=1, tol=0.001)" in result.stdout.splitlines()[2]
    assert result.stderr.startswith("fastelbo: warning: ConvergenceWarning: ")
    assert len(result.stderr.splitlines()) == 1


def test_quiet_prints_only_warnings_and_still_writes_the_json(folder, runs):
    result = runs["quiet"]
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr.startswith("fastelbo: warning: ConvergenceWarning")
    assert json.loads((folder / "quiet.json").read_text())["n_iter"] == 3


def test_verbose_2_prints_a_line_per_iteration_before_the_report(folder, runs):
    result = runs["verbose-2"]
    assert result.returncode == 0, result.stderr
    history = json.loads((folder / "v2.json").read_text())["elbo_history"]
    lines = result.stdout.splitlines()
    iterations = [line for line in lines if line.startswith("  Iteration ")]
    assert [int(line.split("\t")[0].split()[1]) for line in iterations] == [1, 2, 3, 4]
    for line, elbo in zip(iterations, history, strict=True):
        assert f"elbo {elbo:.8f}\t" in line
    assert lines[0] == "Initialization 0" and lines[5].startswith("Initialization did not converge. ")
    assert lines[6].startswith("data: X.npy")


# ----------------------------------------------------------------------------- input formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_input_format_fits_the_same_data(X, folder, runs, fmt):
    result = runs[f"format-{fmt}"]
    assert result.returncode == 0, result.stderr
    summary = json.loads((folder / f"{fmt}.json").read_text())
    data, dtype = (load_iris().data, np.float64) if fmt == "iris" else (X, np.float64)
    if fmt == "npz-key-float32":
        dtype = np.float32
        assert summary["data"]["key"] == "train"
    assert summary["data"]["kind"] == {"iris": "builtin", "npz": "npz", "npz-key-float32": "npz"}.get(
        fmt, "text"
    )
    assert summary["data"]["dtype"] == np.dtype(dtype).name
    assert (summary["data"]["n_samples"], summary["data"]["n_features"]) == data.shape
    assert summary["data"]["header"] == (CSV_HEADER if _has_header(fmt) else None)
    assert_same_fit(summary, MODELS["gmm"][1]().fit(data.astype(dtype)))


@pytest.mark.skipif(not HAS_PILLOW, reason="scikit-learn reads its sample photos with Pillow")
def test_builtin_patches_are_64_wide_and_n_samples_takes_a_subset(folder, runs):
    result = runs["patches"]
    assert result.returncode == 0, result.stderr
    data = json.loads((folder / "patches.json").read_text())["data"]
    assert (data["n_samples"], data["n_features"], data["n_source_rows"]) == (400, 64, 531_720)
    assert "random subset of 531720 rows" in result.stdout.splitlines()[0]


# ----------------------------------------------------------------------------- other commands


def test_python_dash_m_fastelbo_runs_the_same_command_line(runs):
    result = runs["python-m"]
    assert result.returncode == 0, result.stderr
    info, expected = json.loads(result.stdout), fastelbo.build_info()
    for name in ("version", "cpu_target", "openmp", "numpy", "scikit_learn"):
        assert info[name] == expected[name]


def test_info_prints_every_build_info_entry(runs):
    result = runs["info"]
    assert result.returncode == 0, result.stderr
    printed = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert set(printed) == set(fastelbo.build_info())
    assert printed["version"].strip() == fastelbo.__version__


def test_demo_still_times_fastgmm_against_scikit_learn(runs):
    result = runs["demo"]
    assert result.returncode == 0, result.stderr
    assert "dataset: scikit-learn digits, 1797 samples x 64 features" in result.stdout
    assert "sklearn GaussianMixture" in result.stdout and "EntropyDecomposition(" in result.stdout


def test_plot_draws_plot_convergence_or_says_it_is_missing(folder, runs):
    result = runs["plot"]
    png = folder / "convergence.png"
    if importlib.util.find_spec("matplotlib"):
        assert result.returncode == 0, result.stderr
        assert png.read_bytes().startswith(b"\x89PNG")
    else:
        assert_error(result, "--plot needs")
        assert not png.exists()


def test_plot_saves_the_figure_of_the_axes_plot_convergence_returns(folder, tmp_path, monkeypatch, capsys):
    """In process, with a stand-in for ``fastelbo.plot_convergence(model, ax=None)``."""
    pytest.importorskip("matplotlib")
    from fastelbo.cli import main

    drawn = []

    def plot_convergence(model, ax=None):
        import matplotlib.pyplot as plt

        drawn.append(model)
        ax_values, ax_gap = plt.subplots(1, 2)[1] if ax is None else ax
        ax_values.plot(model.elbo_history_)
        ax_gap.plot(model.elbo_history_ - model.entropy_sum_history_)
        return ax_values, ax_gap

    monkeypatch.setattr(fastelbo, "plot_convergence", plot_convergence, raising=False)
    png = tmp_path / "convergence.png"
    args = ["fit", str(folder / "X.npy"), "--components", "2", "--max-iter", "5", "--plot", str(png), "-q"]
    assert main(args) == 0
    assert len(drawn) == 1 and isinstance(drawn[0], FastGMM) and drawn[0].n_iter_ <= 5
    assert png.read_bytes().startswith(b"\x89PNG")
    assert capsys.readouterr().out == ""
    args.remove("-q")
    assert main(args) == 0 and capsys.readouterr().out.endswith(
        f"plotted {png}: ELBO and entropy sum per iteration, and the gap F - S\n"
    )


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_print_one_line_and_exit_2(runs, name):
    assert_error(runs[f"error-{name}"], *ERRORS[name][1])


@pytest.mark.parametrize("name", sorted(USAGE_ERRORS))
def test_argparse_rejects_malformed_command_lines_with_one_line_and_status_2(runs, name):
    assert_error(runs[f"usage-{name}"], USAGE_ERRORS[name][1], "--help)")
