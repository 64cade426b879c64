"""The ``fastelbo`` command line through its entry point, :func:`fastelbo.cli.main` (what the console
script and ``python -m fastelbo`` call), in process: every error is one line ``fastelbo: error: ...``
and status 2, found before any work where it can be; text tables are read as a user saved them; the
report and ``--json`` hold what a user asks for. Each fit here is tiny; the reference of every
number is an in-process estimator fitted on data prepared independently (NumPy slicing,
scikit-learn's StandardScaler).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

import fastelbo
from cli_runner import run_cli
from fastelbo import FastGMM, FastPPCA
from fastelbo.datasets import subsample

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(folder, capsys, monkeypatch):
    """Run ``fastelbo ARGS`` in the data folder; argparse's exits (usage errors, ``--version``)
    become the status they exit with."""
    monkeypatch.chdir(folder)

    def run(*args):
        return Result(*run_cli(capsys, *args))

    return run


def assert_error(result, *fragments):
    """Status 2, nothing on stdout, and one line on stderr: ``fastelbo: error: ...`` with every
    fragment."""
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastelbo: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def fitted(result, folder, name):
    """The ``--json`` summary ``name`` of a run that succeeded."""
    assert result.code == 0, result.err
    return json.loads((folder / name).read_text())


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    centres = np.repeat([[0.0, 0.0, 0.0], [6.0, 6.0, 0.0], [0.0, 6.0, 6.0]], 20, axis=0)
    return np.round(centres + rng.randn(60, 3), 6)  # six decimals: the text files hold them exactly


def _table(X, separator=",", header=None, first_columns=()):
    """A text table of X: an optional header line, then a line per row with ``first_columns[i]``
    (a list of strings per row) before X's values."""
    lines = [separator.join(header)] if header is not None else []
    for i, row in enumerate(X):
        extra = [str(column[i]) for column in first_columns]
        lines.append(separator.join(extra + [repr(float(v)) for v in row]))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(X, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-main")
    names = ["a", "b", "c"]
    np.save(folder / "X.npy", X)
    (folder / "X.csv").write_text(_table(X, header=names))
    # Excel's "CSV UTF-8": a byte-order mark before the header, CRLF line ends.
    (folder / "excel.csv").write_bytes(
        b"\xef\xbb\xbf" + _table(X, header=names).replace("\n", "\r\n").encode()
    )
    (folder / "excel-no-header.csv").write_bytes(b"\xef\xbb\xbf" + _table(X).encode())
    (folder / "years.csv").write_text(_table(X, header=["1999", "2000", "2001"]))
    first_row_missing = _table(X).splitlines()
    first_row_missing[0] = ",".join(first_row_missing[0].split(",")[:2] + [""])
    (folder / "first-row-missing.csv").write_text("\n".join(first_row_missing) + "\n")
    missing = _table(X, header=names).splitlines()
    missing[3] = "NA," + missing[3].split(",", 1)[1]  # line 4, column 1
    missing[7] = missing[7].rsplit(",", 1)[0] + ","  # line 8, column 3: empty
    missing[9] = missing[9].rsplit(",", 1)[0] + ",NaN"  # line 10, column 3
    (folder / "missing.csv").write_text("\n".join(missing) + "\n")
    # European Excel: semicolons between fields, decimal commas.
    (folder / "european.csv").write_text(_table(X, ";", names).replace(".", ","))
    latin = _table(X, ";", ["température", "durée", "pâte"]).replace(".", ",")
    (folder / "latin1.txt").write_bytes(latin.encode("latin-1"))
    (folder / "unicode.txt").write_bytes(_table(X, "\t", names).encode("utf-16"))  # Excel's "Unicode text"
    # Excel's "CSV" on Windows (Western Europe): Windows-1252, a euro sign and curly quotes.
    windows = _table(X, ";", ["\u201cprice \u20ac\u201d", "durée", "\u2013c"]).replace(".", ",")
    (folder / "windows.csv").write_bytes(windows.encode("cp1252"))
    # 0x81 is not Windows-1252: the file is Latin-1 (a control character in the name).
    c1 = _table(X, ";", ["a\x81", "b", "c"]).replace(".", ",")
    (folder / "latin1-c1.txt").write_bytes(c1.encode("latin-1"))
    (folder / "blanks.dat").write_text("# x y z\n\n" + _table(X, "   "))
    (folder / "trailing.csv").write_text(
        "".join(line + ",\n" for line in _table(X, header=names).splitlines())
    )
    with open(folder / "npy-named.csv", "wb") as file:  # content, not name, makes a .npy
        np.save(file, X)
    ids = [list(range(1, 61))]
    (folder / "with-id.csv").write_text(_table(X, header=["id", *names], first_columns=ids))
    (folder / "numbered.csv").write_text(_table(X, first_columns=[list(range(60))]))
    species = [["setosa", "versicolor", "virginica"][i // 20] for i in range(60)]
    iris_like = [
        f"{','.join(repr(float(v)) for v in row)},{name}" for row, name in zip(X, species, strict=True)
    ]
    (folder / "species.csv").write_text("\n".join(["a,b,c,species", *iris_like]) + "\n")
    (folder / "iris-like.csv").write_text("\n".join(iris_like) + "\n")  # no header line
    (folder / "numeric-names.csv").write_text(_table(X, header=["0", "1", "2"]))
    (folder / "repeated-names.csv").write_text(_table(X, header=["a", "b", "a"]))
    constant = np.column_stack([X, np.full(len(X), 3.0)])
    np.save(folder / "constant.npy", constant)
    # Error cases.
    (folder / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    # Numbers to Python's float() but not to NumPy's parser: they ended in 'please report'.
    (folder / "underscore.csv").write_text("a,b\n1_000,2\n3,4\n5,6\n")
    (folder / "arabic.csv").write_text("a,b\n\u0661,2\n3,4\n5,6\n", encoding="utf-8")
    (folder / "ragged.csv").write_text("1,2,3\n4,5\n")
    (folder / "wide_header.csv").write_text("a,b,c\n1,2\n")
    (folder / "comments.csv").write_text("# nothing but a comment\n\n   \n")
    (folder / "header-only.csv").write_text("a,b,c\n")
    (folder / "binary.dat").write_bytes(b"\x00\x01\x02 not text")
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04 an office document, not a .npz")
    with_nan = X.copy()
    with_nan[5, 2] = np.nan
    np.save(folder / "nan.npy", with_nan)
    (folder / "inf.csv").write_text("x,y\n1,2\n3,inf\n-inf,4\n")
    np.save(folder / "vector.npy", X[:, 0])
    np.savez(folder / "two.npz", a=X, b=X)
    np.save(folder / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    (folder / "sub").mkdir()
    (folder / "a-file").write_text("not a folder")
    return folder


def _gmm(**params):
    return FastGMM(**{"n_components": 3, "covariance_type": "diag", "random_state": 0, **params})


GMM = ["--components", "3", "--covariance-type", "diag"]


def assert_fit_of(summary, expected_X, **params):
    """The summary is the fit of an in-process FastGMM (``_gmm(**params)``) on ``expected_X``."""
    model = _gmm(**params).fit(expected_X)
    assert (summary["data"]["n_samples"], summary["data"]["n_features"]) == expected_X.shape
    assert summary["decomposition"] == model.entropy_decomposition().to_dict()
    assert summary["mixture"]["means"] == model.means_.tolist()
    return model


# ----------------------------------------------------------------------------- errors: one line, status 2

ERRORS = {
    "missing-file": (["fit", "absent.npy"], ["no such file: 'absent.npy'"]),
    "unknown-name": (["fit", "mnist"], ["'mnist' is neither a file nor a built-in data set", "digits"]),
    "missing-with-suffix": (["fit", "absent.tsv"], ["no such file: 'absent.tsv'"]),
    "folder": (["fit", "sub"], ["DATA 'sub' is a folder"]),
    "csv-text-field": (["fit", "text.csv"], ["text.csv: line 3, column 2 ('b'): 'oops' is not a number"]),
    "csv-underscore": (["fit", "underscore.csv"], ["line 2, column 1 ('a'): '1_000' is not a number"]),
    "csv-other-digits": (["fit", "arabic.csv"], ["line 2, column 1 ('a'): '\u0661' is not a number"]),
    "csv-ragged": (
        ["fit", "ragged.csv"],
        ["ragged.csv: line 2 has 2 fields, line 1 has 3 (separator: comma)"],
    ),
    "csv-header-width": (["fit", "wide_header.csv"], ["wide_header.csv: line 2 has 2 fields, line 1 has 3"]),
    "csv-no-data": (["fit", "comments.csv"], ["comments.csv: no data (every line is empty or a # comment)"]),
    "csv-header-only": (
        ["fit", "header-only.csv"],
        ["header-only.csv: no data rows (only the header line 1)"],
    ),
    "binary": (["fit", "binary.dat"], ["'binary.dat': it is a binary file, not text"]),
    "zip-not-npz": (
        ["fit", "sheet.xlsx"],
        ["'sheet.xlsx': a zip archive, but not a .npz", "save a spreadsheet as CSV"],
    ),
    "nan": (["fit", "nan.npy"], ["contains 1 NaN or infinite values", "X[5, 2], row 6, column 3", "impute"]),
    "inf": (
        ["fit", "inf.csv"],
        ["inf.csv: line 3, column 2 ('y'): inf is not a finite number (2 infinite values in all)"],
    ),
    "one-dimensional": (["fit", "vector.npy"], ["must be a 2-D array", "(60,)", "shape (n, 1)"]),
    "npz-needs-key": (["fit", "two.npz"], ["holds 2 arrays (a, b)", "--key"]),
    "npz-wrong-key": (["fit", "two.npz", "--key", "c"], ["has no array 'c' (it holds a, b)"]),
    "key-without-npz": (["fit", "X.npy", "--key", "a"], ["--key selects an array of a .npz file"]),
    "header-without-text": (["fit", "X.npy", "--header", "yes"], ["--header applies to text tables"]),
    "not-numeric": (["fit", "words.npy"], ["is not numeric"]),
    "option-of-another-model": (
        ["fit", "X.npy", "--model", "fa", "--covariance-type", "diag"],
        ["--covariance-type does not apply to --model fa (it applies to: gmm)"],
    ),
    "factors-of-ppca": (["fit", "X.npy", "--model", "ppca", "--factors", "2"], ["--factors", "mfa"]),
    "labels-of-ppca": (
        ["fit", "X.npy", "--model", "ppca", "--labels", "l.txt"],
        ["--labels applies to mixtures (gmm, mfa, bernoulli, poisson), not to --model ppca"],
    ),
    "zero-components": (["fit", "X.npy", "--components", "0"], ["invalid setting", "n_components"]),
    "zero-factors": (["fit", "X.npy", "--model", "mfa", "--factors", "0"], ["invalid setting", "n_factors"]),
    "negative-tol": (["fit", "X.npy", "--tol", "-1"], ["invalid setting", "tol"]),
    # Settings are checked before DATA is read: the setting, not the file's 'oops' or ragged line.
    "setting-before-data": (["fit", "text.csv", "--tol", "-1"], ["invalid setting: tol must be"]),
    "components-before-data": (
        ["fit", "ragged.csv", "--model", "ppca", "--components", "-1"],
        ["invalid setting: n_components must be"],
    ),
    "factors-before-data": (
        ["fit", "text.csv", "--model", "mfa", "--factors", "0"],
        ["invalid setting: n_factors must be"],
    ),
    "more-components-than-rows": (["fit", "X.npy", "--components", "500"], ["n_samples >= n_components"]),
    "too-many-samples": (["fit", "X.npy", "--n-samples", "1000"], ["--n-samples must be between 1 and 60"]),
    "output-folder-missing": (
        ["fit", "X.npy", "--json", "no/fit.json"],
        ["--json: cannot write 'no/fit.json': folder 'no' does not exist"],
    ),
    "output-folder-is-a-file": (
        ["fit", "X.npy", "--labels", "a-file/labels.txt"],
        ["--labels: cannot write 'a-file/labels.txt': folder 'a-file' is not a folder"],
    ),
    "output-is-a-folder": (["fit", "X.npy", "--save", "sub"], ["--save: cannot write 'sub': it is a folder"]),
    "output-twice": (
        ["fit", "X.npy", "--json", "out", "--save", "out"],
        ["--json and --save both name 'out'; give each its own file"],
    ),
    "output-is-data": (["fit", "X.csv", "--labels", "X.csv"], ["--labels 'X.csv' is DATA itself"]),
    "plot-format": (
        ["fit", "X.npy", "--plot", "fit.xyz"],
        ["--plot cannot write a .xyz file", ".png, .pdf or .svg"],
    ),
    "plot-no-iterations": (
        ["fit", "X.npy", "--max-iter", "0", "--plot", "fit.png"],
        ["--plot draws the iterations, and --max-iter 0 runs none"],
    ),
    "plot-no-suffix": (["fit", "X.npy", "--plot", "fit"], ["--plot cannot write 'fit' (no suffix)"]),
    "columns-unknown-name": (
        ["fit", "X.csv", "--columns", "a,q"],
        ["--columns: no column named 'q'", "'a', 'b', 'c'"],
    ),
    "columns-out-of-range": (
        ["fit", "X.csv", "--columns", "2-4"],
        ["'2-4' is outside columns 1-3", "from 1"],
    ),
    "columns-zero": (["fit", "X.npy", "--columns", "0,1"], ["'0' is outside columns 1-3"]),
    "columns-backwards": (
        ["fit", "X.npy", "--columns", "3-2"],
        ["--columns: '3-2' runs backwards; write 2-3"],
    ),
    "columns-twice": (["fit", "X.csv", "--columns", "a,1"], ["selects column 1 ('a') more than once"]),
    "columns-repeated-name": (
        ["fit", "repeated-names.csv", "--columns", "a"],
        ["--columns: 'a' is ambiguous: the header gives that name to columns 1 and 3; select by number"],
    ),
    "columns-empty-item": (["fit", "X.csv", "--columns", "1,,2"], ["--columns '1,,2'"]),
    "columns-ambiguous": (
        ["fit", "numeric-names.csv", "--header", "yes", "--columns", "1"],
        ["'1' is ambiguous: the name of column 2 and the number of column 1"],
    ),
    "columns-names-without-header": (
        ["fit", "X.npy", "--columns", "a"],
        ["no column named 'a'", "no header line"],
    ),
    "columns-names-without-header-line": (
        ["fit", "first-row-missing.csv", "--columns", "a"],
        ["--columns names 'a', but DATA has no header line: line 1 holds numbers, not names"],
    ),
    "columns-names-with-header-no": (
        ["fit", "X.csv", "--header", "no", "--columns", "a"],
        ["--columns names columns, but --header no"],
    ),
    "header-no-on-a-header": (
        ["fit", "X.csv", "--header", "no"],
        ["X.csv: line 1, column 1: 'a' is not a number (a header? --header yes)"],
    ),
    "text-column": (
        ["fit", "species.csv"],
        ["species.csv: line 2, column 4 ('species'): 'setosa' is not a number", "--columns 1-3"],
    ),
    "demo-zero-components": (
        ["demo", "--n-components", "0", "--repeats", "1"],
        ["invalid setting", "n_components"],
    ),
    "demo-seed": (
        ["demo", "--random-state", "-1"],
        ["--random-state -1: Seed must be between 0 and 2**32 - 1"],
    ),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_print_one_line_and_exit_2(cli, name):
    assert_error(cli(*ERRORS[name][0]), *ERRORS[name][1])


# argparse's own errors: the one error line (argparse's words and the command's --help), status 2.
USAGE_ERRORS = {
    "unknown-model": (["fit", "X.npy", "--model", "hmm"], "argument --model: invalid choice: 'hmm'"),
    "malformed-int": (["fit", "X.npy", "--components", "three"], "argument --components: invalid int value"),
    "unknown-option": (["fit", "X.npy", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    "quiet-and-verbose": (["fit", "X.npy", "--quiet", "--verbose", "2"], "not allowed with argument"),
    "unknown-command": (["train", "X.npy"], "invalid choice: 'train'"),
    "header-choice": (["fit", "X.csv", "--header", "maybe"], "argument --header: invalid choice: 'maybe'"),
    "demo-no-repeats": (["demo", "--repeats", "0"], "argument --repeats: must be at least 1, got 0"),
    "no-data": (["fit"], "the following arguments are required: DATA"),
    "no-command": ([], "the following arguments are required: COMMAND"),
}


@pytest.mark.parametrize("name", sorted(USAGE_ERRORS))
def test_argparse_rejects_malformed_command_lines_with_one_line_and_status_2(cli, name):
    args, fragment = USAGE_ERRORS[name]
    command = f"fastelbo {args[0]}" if args and args[0] in ("fit", "demo", "info") else "fastelbo"
    assert_error(cli(*args), fragment, f"(see {command} --help)")


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_an_out_of_range_seed_gets_scikit_learns_message(cli, seed):
    with pytest.raises(ValueError) as expected:
        check_random_state(seed)
    assert_error(cli("fit", "X.npy", "--seed", seed), f"--seed {seed}: {expected.value}")


def test_the_largest_seed_is_accepted(cli, folder, X):
    summary = fitted(
        cli("fit", "X.npy", *GMM, "--seed", 2**32 - 1, "--json", "seed.json"), folder, "seed.json"
    )
    assert_fit_of(summary, X, random_state=2**32 - 1)


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "no/fit.json"],
        ["--plot", "fit.xyz"],
        ["--save", "out", "--json", "out"],
        ["--labels", "a-file/x"],
        ["--seed", "-1"],
        ["--model", "ppca", "--labels", "l.txt"],
        ["--model", "fa", "--noise", "diag"],
        ["--max-iter", "0", "--plot", "fit.png"],
    ],
)
def test_errors_that_need_no_data_are_found_before_it_is_read(cli, monkeypatch, args):
    def load_data(*args, **kwargs):
        raise AssertionError("DATA was read before the error was found")

    monkeypatch.setattr("fastelbo.cli._fit.load_data", load_data)
    assert_error(cli("fit", "X.npy", *args))


def test_an_output_path_is_probed_and_left_as_it_was(cli, folder):
    result = cli("fit", "X.npy", "--json", "probe.json", "--plot", "no/plot.png")
    assert_error(result, "--plot: cannot write 'no/plot.png'")
    assert not (folder / "probe.json").exists()  # the probe of --json created nothing


def test_running_out_of_memory_is_one_line(cli, monkeypatch):
    def load_data(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("fastelbo.cli._fit.load_data", load_data)
    assert_error(cli("fit", "X.npy"), "out of memory")


def test_version_prints_the_package_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out == f"fastelbo {fastelbo.__version__}\n"


# ----------------------------------------------------------------------------- text tables


def test_a_csv_with_a_byte_order_mark_keeps_every_row_and_its_header(cli, folder, X):
    for name in ("excel.csv", "excel-no-header.csv"):
        summary = fitted(cli("fit", name, *GMM, "--json", "bom.json"), folder, "bom.json")
        assert_fit_of(summary, X)
        assert summary["data"]["header"] == (["a", "b", "c"] if name == "excel.csv" else None)
        assert summary["data"]["text"]["encoding"] == "UTF-8 with byte-order mark"


def test_a_first_row_with_a_missing_value_is_reported_not_dropped(cli):
    assert_error(
        cli("fit", "first-row-missing.csv"),
        "first-row-missing.csv: 1 missing value (empty, NA, N/A, #N/A, NaN, null or ?) at line 1, column 3",
        "(is line 1 a header? --header yes)",
    )


def test_missing_values_are_reported_by_line_and_column(cli):
    assert_error(
        cli("fit", "missing.csv"),
        "missing.csv: 3 missing values (empty, NA, N/A, #N/A, NaN, null or ?) at line 4, column 1 ('a'); "
        "line 8, column 3 ('c'); "
        "line 10, column 3 ('c');",
        "remove or impute them",
    )


def test_a_header_of_numbers_is_data_unless_header_yes_says_otherwise(cli, folder, X):
    result = cli("fit", "years.csv", *GMM, "--json", "years.json")
    summary = fitted(result, folder, "years.json")
    assert summary["data"]["n_samples"] == 61 and summary["data"]["header"] is None
    assert "no header line (if line 1 names the columns: --header yes)" in result.out.splitlines()[0]
    summary = fitted(
        cli("fit", "years.csv", *GMM, "--header", "yes", "--json", "years.json"), folder, "years.json"
    )
    assert summary["data"]["header"] == ["1999", "2000", "2001"]
    assert_fit_of(summary, X)


@pytest.mark.parametrize(
    ("name", "separator", "encoding", "decimal_comma"),
    [
        ("european.csv", "semicolon", "UTF-8", True),
        ("latin1.txt", "semicolon", "Latin-1", True),
        ("unicode.txt", "tab", "UTF-16", False),
        ("blanks.dat", "blanks", "UTF-8", False),
        ("trailing.csv", "comma", "UTF-8", False),
    ],
)
def test_text_tables_are_read_by_content(cli, folder, X, name, separator, encoding, decimal_comma):
    result = cli("fit", name, *GMM, "--json", "text.json")
    summary = fitted(result, folder, "text.json")
    text = summary["data"]["text"]
    assert (text["separator"], text["encoding"], text["decimal_comma"]) == (
        separator,
        encoding,
        decimal_comma,
    )
    assert_fit_of(summary, X)
    if name == "latin1.txt":
        assert summary["data"]["header"] == ["température", "durée", "pâte"]
    if decimal_comma:
        assert "decimal commas" in result.out.splitlines()[0]


def test_windows_1252_is_read_where_its_bytes_0x80_to_0x9f_show_it(cli, folder, X):
    result = cli("fit", "windows.csv", *GMM, "--json", "windows.json")
    summary = fitted(result, folder, "windows.json")
    raw_header = (folder / "windows.csv").read_bytes().split(b"\n")[0]
    assert summary["data"]["header"] == raw_header.decode("cp1252").split(";")
    assert summary["data"]["header"][0] == "\u201cprice \u20ac\u201d"
    assert summary["data"]["text"]["encoding"] == "Windows-1252" and "Windows-1252" in result.out
    assert_fit_of(summary, X)
    # Names select columns as the file spells them.
    result = cli("fit", "windows.csv", *GMM, "--columns", "\u2013c,durée", "--json", "windows.json")
    assert fitted(result, folder, "windows.json")["data"]["columns"] == [3, 2]
    # A byte that Windows-1252 leaves undefined (0x81): Latin-1, as before.
    summary = fitted(cli("fit", "latin1-c1.txt", *GMM, "--json", "c1.json"), folder, "c1.json")
    assert summary["data"]["text"]["encoding"] == "Latin-1"
    assert summary["data"]["header"] == ["a\x81", "b", "c"]


def test_a_npy_is_known_by_its_content_whatever_its_name(cli, folder, X):
    summary = fitted(cli("fit", "npy-named.csv", *GMM, "--json", "npy.json"), folder, "npy.json")
    assert summary["data"]["kind"] == "npy"
    assert_fit_of(summary, X)


# ----------------------------------------------------------------------------- columns and scaling


@pytest.mark.parametrize("columns", ["b,c", "2-3", "2-", "c,b", "b-c"])
def test_columns_select_by_name_number_and_range(cli, folder, X, columns):
    if columns == "b-c":  # a range is of numbers, not names
        assert_error(cli("fit", "X.csv", "--columns", columns), "no column named 'b-c'")
        return
    summary = fitted(
        cli("fit", "X.csv", *GMM, "--columns", columns, "--json", "cols.json"), folder, "cols.json"
    )
    order = [2, 1] if columns == "c,b" else [1, 2]
    assert summary["data"]["columns"] == [p + 1 for p in order]
    assert summary["data"]["header"] == [["a", "b", "c"][p] for p in order]
    assert_fit_of(summary, X[:, order])


def test_an_id_column_is_warned_about_and_left_out_with_columns(cli, folder, X):
    result = cli("fit", "with-id.csv", *GMM, "--json", "id.json")
    assert result.code == 0
    assert "fastelbo: warning: column 1 ('id') holds row numbers: a label, not a measurement" in result.err
    assert "--columns 2-4" in result.err
    assert fitted(result, folder, "id.json")["data"]["n_features"] == 4
    result = cli("fit", "with-id.csv", *GMM, "--columns", "2-4", "--json", "id.json")
    assert "warning" not in result.err
    assert_fit_of(fitted(result, folder, "id.json"), X)
    # Unnamed row numbers, and a column named id that is no count, are warned about too.
    assert "column 1 holds row numbers" in cli("fit", "numbered.csv", *GMM).err


def test_repeated_header_names_select_by_number_and_keep_their_names(cli, folder, X):
    summary = fitted(
        cli("fit", "repeated-names.csv", *GMM, "--columns", "2-3", "--json", "repeated.json"),
        folder,
        "repeated.json",
    )
    assert summary["data"]["header"] == ["b", "a"] and summary["data"]["columns"] == [2, 3]
    assert_fit_of(summary, X[:, 1:])


def test_a_text_column_can_be_left_out_and_is_then_not_read(cli, folder, X):
    # Line 1, with a word in it, reads as a header; its values then name the columns.
    assert_error(
        cli("fit", "iris-like.csv"), "line 2, column 4 ('setosa'): 'setosa' is not a number", "--columns 1-3"
    )
    summary = fitted(
        cli("fit", "iris-like.csv", *GMM, "--columns", "1-3", "--json", "iris.json"), folder, "iris.json"
    )
    assert summary["data"]["header"] is None  # line 1's selected fields are numbers: data, not a header
    assert_fit_of(summary, X)


def test_a_headerless_file_is_never_said_to_have_a_header(cli):
    # --header auto with --columns by name used to take a line of numbers as the header.
    result = cli("fit", "numbered.csv", "--columns", "a")
    assert_error(result, "DATA has no header line: line 1 holds numbers", "select columns by number")
    assert "the header names" not in result.err


def test_a_header_of_numbers_selected_by_its_names_is_a_header(cli, folder, X):
    (folder / "wavelengths.csv").write_text(_table(X, header=["400.5", "500.5", "600.5"]))
    result = cli("fit", "wavelengths.csv", *GMM, "--columns", "600.5,400.5", "--json", "wl.json")
    summary = fitted(result, folder, "wl.json")
    assert summary["data"]["header"] == ["600.5", "400.5"] and summary["data"]["columns"] == [3, 1]
    assert_fit_of(summary, X[:, [2, 0]])


def test_column_numbers_are_not_taken_for_names_of_a_first_line_of_data(cli, folder, X):
    # Line 1 reads "3,2,1": data, so --columns 1 is column 1, not the column whose first value is 1.
    data = np.vstack([[3.0, 2.0, 1.0], X])
    (folder / "first-line-numbers.csv").write_text("3,2,1\n" + _table(X))
    result = cli("fit", "first-line-numbers.csv", *GMM, "--columns", "1,3", "--json", "numbers.json")
    summary = fitted(result, folder, "numbers.json")
    assert summary["data"]["header"] is None
    assert_fit_of(summary, data[:, [0, 2]])


def test_columns_select_from_arrays_too(cli, folder, X):
    summary = fitted(
        cli("fit", "X.npy", *GMM, "--columns", "3,1", "--json", "npy-cols.json"), folder, "npy-cols.json"
    )
    assert_fit_of(summary, X[:, [2, 0]])


def test_standardize_scales_like_standard_scaler(cli, folder, X):
    summary = fitted(cli("fit", "X.csv", *GMM, "--standardize", "--json", "std.json"), folder, "std.json")
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(summary["data"]["standardize"]["mean"], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(summary["data"]["standardize"]["scale"], scaler.scale_, rtol=1e-12)
    model = _gmm().fit(scaler.transform(X))
    np.testing.assert_allclose(summary["mixture"]["means"], model.means_, atol=1e-10)
    assert summary["elbo"] == pytest.approx(model.entropy_decomposition().elbo, rel=1e-10)


def test_standardize_centres_a_constant_column_and_says_so(cli, folder, X):
    result = cli("fit", "constant.npy", *GMM, "--standardize", "--json", "const.json")
    summary = fitted(result, folder, "const.json")
    assert "--standardize: column 4 is constant in the rows fitted: centred, not scaled" in result.err
    assert summary["data"]["standardize"]["scale"][3] == 1.0
    np.testing.assert_allclose(summary["data"]["standardize"]["scale"][:3], StandardScaler().fit(X).scale_)


# ----------------------------------------------------------------------------- what the report holds


def test_the_report_shows_weights_sizes_means_and_criteria(cli, folder, X):
    result = cli("fit", "X.npy", *GMM, "--json", "report.json")
    summary = fitted(result, folder, "report.json")
    model = assert_fit_of(summary, X)
    labels = model.predict(X)
    lines = result.out.splitlines()
    assert lines[4] == "3 components:"
    rows = {int(line.split()[0]): line.split(maxsplit=3)[1:] for line in lines[6:9]}
    for c in range(3):
        weight, size, mean = rows[c]
        assert float(weight) == pytest.approx(model.weights_[c], abs=5e-5)
        assert int(size) == np.sum(labels == c)
        np.testing.assert_allclose(json.loads(mean), model.means_[c], rtol=5e-4)
    assert [int(line.split()[0]) for line in lines[6:9]] == list(np.argsort(-model.weights_, kind="stable"))
    assert (
        lines[9] == f"BIC {model.bic(X):.6g}, AIC {model.aic(X):.6g} (on the 60 rows fitted; lower is better)"
    )
    assert summary["mixture"]["sizes"] == np.bincount(labels, minlength=3).tolist()
    assert summary["labels"] == labels.tolist()
    assert summary["elbo"] == model.entropy_decomposition().elbo and "lower_bound" not in summary
    assert "hint" not in result.out


def test_a_mixture_without_components_gets_a_hint(cli):
    result = cli("fit", "X.npy")
    assert result.code == 0
    assert result.out.splitlines()[3] == (
        "hint: --components not given: FastGMM fitted its default of 1 component; --components K fits K"
    )
    mfa = cli("fit", "X.npy", "--model", "mfa")
    assert "hint: --components not given: FastMFA fitted its default of 1 component" in mfa.out
    assert "hint" not in cli("fit", "X.npy", "--model", "ppca").out  # not a mixture


def test_many_components_and_features_are_abbreviated(cli, folder):
    rng = np.random.RandomState(1)
    wide = rng.randn(300, 9) + np.repeat(rng.randn(12, 9) * 6, 25, axis=0)
    np.save(folder / "wide.npy", wide)
    result = cli(
        "fit", "wide.npy", "--components", "12", "--covariance-type", "spherical", "--json", "wide.json"
    )
    summary = fitted(result, folder, "wide.json")
    lines = result.out.splitlines()
    assert lines[4] == "12 components, the 10 largest (all in --json):"
    shown = lines[6:16]
    weights = np.asarray(summary["mixture"]["weights"])
    assert [int(line.split()[0]) for line in shown] == list(np.argsort(-weights, kind="stable")[:10])
    for line in shown:
        c = int(line.split()[0])
        mean = np.asarray(summary["mixture"]["means"][c])
        expected = (
            ", ".join(f"{v:.4g}" for v in mean[:3]) + ", ..., " + ", ".join(f"{v:.4g}" for v in mean[-3:])
        )
        assert line.endswith(f"[{expected}]")
    assert lines[16].startswith("BIC ")
    assert len(summary["mixture"]["means"]) == 12 and len(summary["mixture"]["means"][0]) == 9


def _reference_regularisation_gap(model, X):
    """(reg_covar/2) sum_c qbar_c tr(Sigma_c^-1) from the covariances (not the precisions) and
    responsibilities averaged over X."""
    qbar = model.predict_proba(X).mean(axis=0)
    covariances = np.asarray(model.covariances_, dtype=np.float64)
    n_features = X.shape[1]
    if model.covariance_type == "full":
        traces = np.array([np.trace(np.linalg.inv(c)) for c in covariances])
    elif model.covariance_type == "tied":
        traces = np.full(model.n_components, np.trace(np.linalg.inv(covariances)))
    elif model.covariance_type == "diag":
        traces = (1.0 / covariances).sum(axis=1)
    else:
        traces = n_features / covariances
    return 0.5 * model.reg_covar * float(qbar @ traces)


@pytest.mark.parametrize(
    "options",
    [
        ["--covariance-type", "full", "--reg-covar", "0.01"],
        ["--covariance-type", "spherical", "--reg-covar", "0.1"],
        ["--covariance-type", "diag", "--reg-covar", "0.05", "--components", "6", "--n-active", "2"],
    ],
)
def test_fit_splits_the_gap_into_the_reg_covar_share_and_the_rest(cli, folder, X, options):
    args = ["--components", "3", *options] if "--components" not in options else options
    result = cli("fit", "X.npy", *args, "--json", "gap.json")
    summary = fitted(result, folder, "gap.json")
    params = summary["params"]
    model = FastGMM(
        n_components=params["n_components"],
        covariance_type=params["covariance_type"],
        reg_covar=params["reg_covar"],
        n_active=params["n_active"],
        random_state=0,
    ).fit(X)
    gap = model.entropy_decomposition().gap
    share = _reference_regularisation_gap(model, X)
    assert summary["gap"]["total"] == gap
    assert summary["gap"]["reg_covar"] == pytest.approx(share, rel=1e-9)
    assert summary["gap"]["beyond_reg_covar"] == pytest.approx(gap - share, rel=1e-6, abs=1e-12)
    assert share > 0.5 * gap > 0  # these fits stop near a stationary point: the share is most of it
    lines = result.out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("gap F - S = ")]
    assert lines[at].startswith(
        f"gap F - S = {gap:+.6g}: reg_covar={model.reg_covar:g} accounts for about {share:+.6g}"
    )
    # The line prints the CLI's own split (checked against the reference above): gap - share is a
    # difference of nearly equal numbers, whose third digit the reference's round-off can change.
    rest = summary["gap"]["beyond_reg_covar"]
    assert lines[at + 1] == f"the rest, {rest:+.2e}, is the distance from a stationary point (0 there)."


def test_labels_are_written_for_every_row_of_data(cli, folder, X):
    result = cli("fit", "X.npy", *GMM, "--labels", "labels.txt", "--json", "labels.json")
    summary = fitted(result, folder, "labels.json")
    expected = _gmm().fit(X).predict(X)
    written = np.loadtxt(folder / "labels.txt", dtype=np.int64)
    np.testing.assert_array_equal(written, expected)
    assert summary["labels"] == expected.tolist()
    assert "wrote labels.txt: the component (from 0) of each of the 60 rows of DATA" in result.out


def test_labels_of_a_subset_fit_cover_every_row_of_data(cli, folder, X):
    result = cli("fit", "X.npy", *GMM, "--n-samples", "45", "--labels", "subset.txt", "--json", "subset.json")
    summary = fitted(result, folder, "subset.json")
    subset = subsample(X, 45, seed=0)  # the rows --n-samples 45 --seed 0 fits
    model = _gmm().fit(subset)
    assert summary["decomposition"] == model.entropy_decomposition().to_dict()
    labels = np.loadtxt(folder / "subset.txt", dtype=np.int64)
    assert labels.shape == (60,)
    np.testing.assert_array_equal(labels, model.predict(X))
    assert summary["labels"] == labels.tolist()
    assert summary["mixture"]["sizes"] == np.bincount(model.predict(subset), minlength=3).tolist()


def test_factor_models_report_mean_and_noise(cli, folder, X):
    result = cli("fit", "X.npy", "--model", "ppca", "--components", "1", "--json", "ppca.json")
    summary = fitted(result, folder, "ppca.json")
    model = FastPPCA(n_components=1, random_state=0).fit(X)
    lines = result.out.splitlines()
    assert lines[4] == (
        f"1 factor (loadings in --json and --save); noise variance {float(model.noise_variance_):.6g}"
    )
    assert lines[5] == "mean: [" + ", ".join(f"{v:.4g}" for v in model.mean_) + "]"
    assert summary["factors"]["components"] == model.components_.tolist()
    assert "gap" not in summary  # reg_covar's share is FastGMM's


def test_a_closed_form_fit_plots_and_says_its_gap(cli, folder):
    pytest.importorskip("matplotlib")
    result = cli("fit", "X.npy", "--model", "ppca", "--components", "1", "--plot", "ppca.png")
    assert result.code == 0, result.err
    assert (folder / "ppca.png").read_bytes().startswith(b"\x89PNG")
    assert result.out.endswith("plotted ppca.png: ELBO and entropy sum per iteration, and the gap F - S\n")


@pytest.mark.parametrize(
    "text",
    [
        "a;b\n1,5;2,5\n3.5;1,0\n2,0;4,0\n",  # decimal commas with one decimal point
        "a;b\n3.5;2.5\n1,234;1.0\n2.0;4.0\n",  # decimal points with one comma (a thousands mark?)
    ],
)
def test_mixed_decimal_marks_are_refused(cli, folder, text):
    (folder / "mixed.csv").write_text(text)
    result = cli("fit", "mixed.csv", "--components", "1")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "both decimal commas and decimal points" in result.err
    assert "column 1" in result.err


def test_a_heywood_case_names_the_files_columns(cli, folder, X):
    import warnings

    from fastelbo import FastFactorAnalysis
    from fastelbo.exceptions import HeywoodCaseWarning

    # Column 4 repeats column 1: both unique variances run to their floor.
    data = np.column_stack([X, X[:, 0]])
    (folder / "heywood.csv").write_text(_table(data, header=["height", "weight", "age", "height again"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FastFactorAnalysis(1).fit(data)
    (expected,) = [w.message for w in caught if issubclass(w.category, HeywoodCaseWarning)]
    floored = [int(label[1:]) for label in re.findall(r"\bx\d+\b", str(expected))]  # x0, x3
    assert floored == [0, 3]
    result = cli("fit", "heywood.csv", "--model", "fa", "--components", "1")
    assert result.code == 0, result.err
    (line,) = [line for line in result.err.splitlines() if "HeywoodCaseWarning" in line]
    assert "column 1 ('height') (" in line and "column 4 ('height again') (" in line
    assert not re.search(r"\bx\d+\b", line)
    # With --columns, the numbers are DATA's.
    result = cli("fit", "heywood.csv", "--model", "fa", "--components", "1", "--columns", "4,2,1")
    (line,) = [line for line in result.err.splitlines() if "HeywoodCaseWarning" in line]
    assert "column 4 ('height again') (" in line and "column 1 ('height') (" in line


def test_a_closed_stdout_loses_no_output_file(tmp_path):
    # `fastelbo fit ... | true`: the reader is gone before the report; the files are written first.
    import subprocess
    import sys

    data = tmp_path / "X.csv"
    data.write_text("a,b\n" + "".join(f"{i % 3},{(i * 7) % 5}\n" for i in range(30)))
    args = ["fit", str(data), "--components", "2", "--json", "out.json", "--labels", "l.txt"]
    code = f"import sys; from fastelbo.cli import main; sys.exit(main({args!r}))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # before the fit ends: its report meets a broken pipe
    stderr = process.stderr.read()
    assert process.wait() == 1
    assert "Traceback" not in stderr, stderr
    assert (tmp_path / "out.json").exists() and (tmp_path / "l.txt").exists()
