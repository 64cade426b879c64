"""The built-in data sets are scikit-learn's, as documented: raw digits and iris, standardised wine
and breast cancer, and the loader refuses names it does not know."""

import numpy as np
import pytest
from sklearn import datasets as sklearn_datasets

from fastelbo import datasets


@pytest.mark.parametrize(
    "name, loader, standardised",
    [
        ("digits", sklearn_datasets.load_digits, False),
        ("iris", sklearn_datasets.load_iris, False),
        ("wine", sklearn_datasets.load_wine, True),
        ("breast_cancer", sklearn_datasets.load_breast_cancer, True),
    ],
)
def test_builtin_data_sets_are_scikit_learns(name, loader, standardised):
    raw = loader().data
    expected = (raw - raw.mean(axis=0)) / raw.std(axis=0) if standardised else raw
    X = datasets.load_dataset(name)
    assert X.dtype == np.float64
    np.testing.assert_allclose(X, expected, rtol=1e-12, atol=1e-12)
    assert datasets.load_dataset(name, dtype="float32").dtype == np.float32


def test_every_listed_data_set_loads_and_unknown_names_are_refused():
    assert set(datasets.DATASETS) == {"digits", "wine", "breast_cancer", "iris", "patches"}
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load_dataset("mnist")


def test_patches_without_pillow_name_it_in_python_and_on_the_command_line(monkeypatch, capsys):
    # scikit-learn reads its sample photos with Pillow, which neither it nor fastelbo requires: the
    # command line printed a traceback (status 1) where it promises one line and status 2.
    from cli_runner import run_cli

    monkeypatch.setitem(__import__("sys").modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(ImportError, match=r"needs Pillow.*pip install pillow"):
        datasets.image_patches()
    status, out, err = run_cli(capsys, "fit", "patches", "--n-samples", "100", "--quiet")
    assert status == 2 and out == ""
    assert err.startswith("fastelbo: error: patches: image_patches needs Pillow") and err.count("\n") == 1
