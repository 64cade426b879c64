"""``fastelbo fit --model bernoulli|poisson``: binary and count tables fitted from the command line
give the in-process estimator's fit, and values the model cannot take are one-line errors.

Each reference is FastBernoulliMixture or FastPoissonMixture fitted in process on the same array.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from cli_runner import run_cli
from fastelbo import FastBernoulliMixture, FastPoissonMixture

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

COUNTS = load_digits().data[:240].astype(np.int64)
BITS = (COUNTS > 7).astype(np.int64)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savetxt(tmp_path / "counts.csv", COUNTS, fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "bits.tsv", BITS, fmt="%d", delimiter="\t")
    np.savetxt(tmp_path / "thirds.csv", COUNTS / 3, fmt="%.4f", delimiter=",")
    return tmp_path


@pytest.mark.parametrize(
    ("model", "estimator", "data", "X"),
    [
        ("bernoulli", FastBernoulliMixture, "bits.tsv", BITS),
        ("poisson", FastPoissonMixture, "counts.csv", COUNTS),
    ],
)
def test_fit_gives_the_estimators_fit_in_the_report_and_the_json(folder, capsys, model, estimator, data, X):
    code, out, err = run_cli(capsys, "fit", data, "--model", model, "--components", 3, "--json", "fit.json")
    assert code == 0, err
    reference = estimator(n_components=3, random_state=0).fit(X)
    summary = json.loads((folder / "fit.json").read_text())
    np.testing.assert_allclose(summary["mixture"]["weights"], reference.weights_, rtol=1e-12)
    np.testing.assert_allclose(summary["mixture"]["means"], reference.means_, rtol=1e-12)
    decomposition = reference.entropy_decomposition()
    assert summary["decomposition"]["elbo"] == pytest.approx(decomposition.elbo, rel=1e-12)
    assert summary["decomposition"]["data_term"] == pytest.approx(decomposition.data_term, rel=1e-12)
    assert f"{decomposition.elbo:+.8f}" in out
    assert estimator.__name__ in out


def test_mean_floor_reaches_the_estimator(folder, capsys):
    code, _, err = run_cli(capsys, "fit", "counts.csv", "--model", "poisson", "--components", 2,
                       "--mean-floor", 1e-6, "--json", "fit.json")  # fmt: skip
    assert code == 0, err
    means = np.asarray(json.loads((folder / "fit.json").read_text())["mixture"]["means"])
    reference = FastPoissonMixture(n_components=2, mean_floor=1e-6, random_state=0).fit(COUNTS)
    np.testing.assert_allclose(means, reference.means_, rtol=1e-12)
    assert means.min() == pytest.approx(1e-6)  # the digits' always-blank pixels sit at the floor


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["thirds.csv", "--model", "poisson"],
            ["thirds.csv: line 1, column 3: 1.6667 is not a value of --model poisson", "non-negative"],
        ),
        (["counts.csv", "--model", "bernoulli"], ["counts.csv: line 1, column 3: 5.0 ", "0 or 1"]),
        (["counts.csv", "--model", "poisson", "--standardize"], ["--standardize", "--model poisson"]),
        (["counts.csv", "--model", "gmm", "--mean-floor", "1e-3"], ["--mean-floor", "bernoulli, poisson"]),
        (["counts.csv", "--model", "bernoulli", "--mean-floor", "0.7"], ["mean_floor"]),
        (["counts.csv", "--model", "poisson", "--init-params", "kmeans"], ["init_params", "k-means++"]),
    ],
)
def test_values_and_settings_the_model_cannot_take_are_one_line_errors(folder, capsys, args, fragments):
    code, out, err = run_cli(capsys, "fit", *args)
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastelbo: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_truncated_em_from_the_command_line(folder, capsys):
    code, _, err = run_cli(capsys, "fit", "counts.csv", "--model", "poisson", "--components", 6,
                       "--n-active", 2, "--n-neighbors", 3, "--json", "fit.json")  # fmt: skip
    assert code == 0, err
    summary = json.loads((folder / "fit.json").read_text())
    reference = FastPoissonMixture(n_components=6, n_active=2, n_neighbors=3, random_state=0).fit(COUNTS)
    np.testing.assert_allclose(summary["mixture"]["means"], reference.means_, rtol=1e-12)
    elbo = reference.entropy_decomposition().elbo
    assert summary["decomposition"]["elbo"] == pytest.approx(elbo, rel=1e-12)


def test_a_bad_value_is_named_by_its_line_and_column_in_data(folder, capsys):
    """Header lines, comments and --n-samples do not shift the position the error names: it is the
    file's line and column (from 1), with the column's header name."""
    table = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 3, 1], [1, 1, 1]])
    lines = ["# binary answers", "x,y,z"] + [",".join(map(str, row)) for row in table]
    (folder / "answers.csv").write_text("\n".join(lines) + "\n")
    for extra in ([], ["--n-samples", 4, "--seed", 3]):  # seed 3 leaves out line 5, before the bad one
        code, out, err = run_cli(
            capsys, "fit", "answers.csv", "--model", "bernoulli", "--components", 2, *extra
        )
        assert code == 2 and out == "", (code, out, err)
        assert err.strip() == (
            "fastelbo: error: answers.csv: line 6, column 2 ('y'): 3.0 is not a value of --model "
            "bernoulli, which needs every value to be 0 or 1"
        ), err
    np.save(folder / "answers.npy", table)
    code, _, err = run_cli(capsys, "fit", "answers.npy", "--model", "bernoulli", "--components", 2)
    assert code == 2 and "answers.npy: row 4, column 2: 3.0 is not a value of --model bernoulli" in err, err
