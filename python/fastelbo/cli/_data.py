"""The DATA argument of ``fastelbo fit``: a file or the name of a built-in data set
(:data:`fastelbo.datasets.DATASETS`), read into a finite 2-D float array.

A file is recognised by its content, not its name: a NumPy ``.npy`` array, a ``.npz`` archive of
arrays (its one array, or the one ``--key`` names), or else a text table, read by
:mod:`fastelbo.cli._table` (CSV, TSV, semicolon- or blank-separated; ``--header``). ``--columns``
selects columns (numbered from 1; names with a header line), ``--n-samples`` a random subset of the
rows, and ``--standardize`` scales every selected column to mean 0 and variance 1 over the rows
fitted.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastelbo.cli._errors import CommandLineError
from fastelbo.cli._table import column_ranges, parse_column_spec, read_text_table, resolve_columns
from fastelbo.datasets import DATASETS, load_dataset, subsample_rows

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: Header names of a column of row numbers (compared in lower case).
_ID_NAMES = frozenset({"id", "index", "idx", "row", "rownames", "unnamed: 0", ""})


@dataclass(frozen=True)
class LoadedData:
    """The data a fit runs on and where they came from."""

    #: The rows fitted: C-contiguous, of the requested dtype, finite.
    X: np.ndarray
    #: The DATA argument as given.
    source: str
    #: ``"builtin"``, ``"npy"``, ``"npz"`` or ``"text"``.
    kind: str
    #: Every row of DATA, transformed as X is (X itself without ``--n-samples``).
    X_all: np.ndarray | None = None
    #: The array's name in a ``.npz`` file, or None.
    key: str | None = None
    #: The header's names of the selected columns, or None.
    header: tuple | None = None
    #: The selected columns (0-based), or None for all of them.
    columns: tuple | None = None
    #: Columns of DATA before ``--columns``.
    n_source_columns: int = 0
    #: Rows of DATA before ``--n-samples`` took a subset of them.
    n_source_rows: int = 0
    #: ``(mean, scale)`` of ``--standardize`` (X = (data - mean) / scale), or None.
    standardization: tuple | None = None
    #: How a text table was read: separator, encoding, decimal commas, header decision.
    text: dict = field(default_factory=dict)
    #: Warnings about the data (a column of row numbers, constant columns).
    warnings: tuple = ()
    #: A text table's line number (from 1) of every row of DATA; empty for other kinds.
    row_lines: tuple = ()
    #: The rows of DATA that X holds (from 0, increasing) after ``--n-samples``, or None for all.
    rows: np.ndarray | None = None

    @property
    def all_rows(self) -> np.ndarray:
        return self.X if self.X_all is None else self.X_all


def data_kind(source: str) -> str:
    """``"builtin"``, ``"npy"``, ``"npz"`` or ``"text"``: what DATA is, from its name and its first
    bytes (the file is not read further).

    Raises
    ------
    CommandLineError
        If DATA names neither a readable file nor a built-in data set.
    """
    if source in DATASETS:
        return "builtin"
    path = Path(source)
    if not path.exists():
        if path.suffix:
            raise CommandLineError(f"no such file: {source!r}")
        raise CommandLineError(
            f"DATA {source!r} is neither a file nor a built-in data set ({', '.join(DATASETS)})"
        )
    if path.is_dir():
        raise CommandLineError(f"DATA {source!r} is a folder, not a file")
    try:
        with open(path, "rb") as file:
            start = file.read(8)
    except OSError as error:
        raise CommandLineError(f"cannot read {source!r}: {error.strerror or error}") from None
    if start.startswith(_NPY_MAGIC):
        return "npy"
    if start.startswith(_ZIP_MAGIC):
        return "npz"
    return "text"


def load_data(
    source: str,
    *,
    key=None,
    dtype="float64",
    n_samples=None,
    seed=0,
    header=None,
    columns=None,
    standardize=False,
) -> LoadedData:
    """Read DATA (see the module's docstring) as a C-contiguous ``dtype`` array of shape
    (n_samples, n_features), all finite.

    Parameters
    ----------
    source : str
        A file name or a built-in data set's name.
    key : str or None
        The array of a ``.npz`` file.
    dtype : str
        ``"float64"`` or ``"float32"``.
    n_samples : int or None
        Fit a random subset of this many rows (in their order), drawn with ``seed``.
    header : {"auto", "yes", "no"} or None
        Whether a text table's first line names its columns (None: ``"auto"``).
    columns : str or None
        ``--columns``: names, numbers from 1 and ranges, separated by commas.
    standardize : bool
        Scale every column to mean 0 and variance 1 over the rows fitted (a constant column is
        only centred).

    Raises
    ------
    CommandLineError
        If the file is missing or unreadable, holds no numeric 2-D table, contains missing, NaN or
        infinite values, or an option does not fit it.
    """
    kind = data_kind(source)
    if key is not None and kind != "npz":
        raise CommandLineError("--key selects an array of a .npz file; DATA is not one")
    if header is not None and kind != "text":
        raise CommandLineError("--header applies to text tables (CSV and the like); DATA is not one")
    items = parse_column_spec(columns) if columns is not None else None
    names, selected, text, row_lines = None, None, {}, ()
    if kind == "builtin":
        try:
            X = load_dataset(source)
        except ImportError as error:  # a package the data set's reader needs (Pillow for patches)
            raise CommandLineError(f"{source}: {error}") from None
    elif kind == "npy":
        X = _read_npy(source)
    elif kind == "npz":
        X, key = _read_npz(source, key)
    else:
        table = read_text_table(_read_bytes(source), source, header=header or "auto", columns=items)
        X, names, row_lines = table.X, table.header, table.lines
        text = {
            "separator": table.separator,
            "encoding": table.encoding,
            "decimal_comma": table.decimal_comma,
            "header": table.header is not None,
            "header_mode": table.header_mode,
        }
        n_source_columns = table.n_columns
        if items is not None:
            selected = table.columns
    X = _as_table(X, source)
    if kind != "text":
        n_source_columns = X.shape[1]
        if items is not None:
            selected = resolve_columns(items, None, n_source_columns)
            X = X[:, selected]
        _check_finite(X, source)
    if names is not None:
        names = tuple(names[p] for p in (selected if selected is not None else range(len(names))))
    warnings = []
    if items is None:
        warnings += _row_number_columns(X, names)
    n_source_rows = X.shape[0]
    X_all = rows = None
    if n_samples is not None:
        X_all = X
        rows = _subset_rows(X, n_samples, seed)
        if rows is not None:
            X = X[rows]
    standardization = None
    if standardize:
        X, X_all, standardization, constant = _standardize(X, X_all)
        if constant:
            warnings.append(
                f"--standardize: {_columns_text(constant, names, selected)} "
                f"{'is' if len(constant) == 1 else 'are'} constant in the rows fitted: centred, not scaled"
            )
    X = _as_dtype(X, dtype, source)
    if X_all is not None:
        X_all = _as_dtype(X_all, dtype, source)
    return LoadedData(
        X=X,
        source=source,
        kind=kind,
        X_all=X_all,
        key=key,
        header=names,
        columns=selected,
        n_source_columns=n_source_columns,
        n_source_rows=n_source_rows,
        standardization=standardization,
        text=text,
        warnings=tuple(warnings),
        row_lines=row_lines,
        rows=rows,
    )


def _read_bytes(source):
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise CommandLineError(f"cannot read {source!r}: {error.strerror or error}") from None


def _read_npy(source):
    try:
        return np.load(source, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CommandLineError(f"cannot read {source!r} as .npy: {error}") from None


def _read_npz(source, key):
    try:
        with np.load(source, allow_pickle=False) as archive:
            members = archive.zip.namelist()
            others = [name for name in members if not name.endswith(".npy")]
            if others:  # a spreadsheet (.xlsx, .ods) or another zip archive
                raise CommandLineError(
                    f"cannot read {source!r}: a zip archive, but not a .npz of NumPy arrays (it holds "
                    f"{others[0]!r}); save a spreadsheet as CSV"
                )
            names = list(archive.files)
            if key is None:
                if len(names) != 1:
                    listed = ", ".join(names) if names else "none"
                    raise CommandLineError(
                        f"{source!r} holds {len(names)} arrays ({listed}); choose one with --key"
                    )
                key = names[0]
            elif key not in names:
                raise CommandLineError(
                    f"{source!r} has no array {key!r} (it holds {', '.join(names) or 'none'})"
                )
            return archive[key], key
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CommandLineError(
            f"cannot read {source!r}: a zip archive, but not a .npz of NumPy arrays ({error}); "
            "save a spreadsheet as CSV"
        ) from None


def _as_table(X, source):
    if X.dtype.kind not in "biuf":
        raise CommandLineError(f"DATA {source!r} is not numeric (dtype {X.dtype})")
    if X.ndim != 2:
        hint = " (one feature: save it with shape (n, 1))" if X.ndim == 1 else ""
        raise CommandLineError(
            f"DATA {source!r} must be a 2-D array (samples x features), got shape {X.shape}{hint}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CommandLineError(f"DATA {source!r} is empty (shape {X.shape})")
    return X


def _as_dtype(X, dtype, source):
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():  # finite float64 beyond float32's range
        raise CommandLineError(
            f"DATA {source!r} holds values beyond the range of {dtype}; use --dtype float64"
        )
    return X


def _subset_rows(X, n_samples, seed):
    """The rows of X that ``--n-samples`` fits (as :func:`~fastelbo.datasets.subsample` draws
    them), or None when that is every row."""
    if n_samples < 1 or n_samples > X.shape[0]:
        raise CommandLineError(
            f"--n-samples must be between 1 and {X.shape[0]} (the rows of DATA), got {n_samples}"
        )
    return None if n_samples == X.shape[0] else subsample_rows(X.shape[0], n_samples, seed)


def _check_finite(X, source):
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise CommandLineError(
            f"DATA {source!r} contains {int(bad.sum())} NaN or infinite values (the first at "
            f"X[{row}, {column}], row {row + 1}, column {column + 1}); remove or impute them first"
        )


def row_label(data: LoadedData, row: int) -> str:
    """Row ``row`` of ``data.X`` (from 0) as messages name it: a text table's ``line 12``, else
    ``row 12`` of DATA (from 1), before ``--n-samples`` took a subset."""
    row = int(data.rows[row]) if data.rows is not None else row
    return f"line {data.row_lines[row]}" if data.row_lines else f"row {row + 1}"


def column_label(data: LoadedData, position: int) -> str:
    """Column ``position`` of ``data.X`` (from 0) as messages name it: ``column 3 ('age')``, its
    number in DATA from 1 (before ``--columns``) and its header name, or ``column 3`` without one."""
    return _column_name(position, data.header, data.columns)


def _column_name(position, names, selected):
    """Column ``position`` of X as messages name it: its number in DATA from 1 and its name."""
    number = (selected[position] if selected is not None else position) + 1
    name = names[position] if names is not None else ""
    return f"column {number} ({name!r})" if name else f"column {number}"


def _columns_text(positions, names, selected):
    return ", ".join(_column_name(position, names, selected) for position in positions)


def _row_number_columns(X, names):
    """A warning for the first column that holds row numbers (0, 1, 2, ... or 1, 2, 3, ...) or is
    named like them (``id``, ``index``): a label, not a measurement."""
    n = X.shape[0]
    for position in range(X.shape[1]):
        column = X[:, position]
        name = names[position] if names is not None else None
        counts = n >= 3 and any(np.array_equal(column, np.arange(start, start + n)) for start in (0, 1))
        if counts or (name is not None and name.strip().lower() in _ID_NAMES):
            others = [p for p in range(X.shape[1]) if p != position]
            what = "holds row numbers" if counts else f"is named {name!r}"
            advice = (
                f"leave it out with --columns {column_ranges(others)}" if others else "is it a measurement?"
            )
            return [
                f"{_column_name(position, names, None)} {what}: a label, not a measurement, yet it is fitted "
                f"as one; {advice}"
            ]
    return []


def _standardize(X, X_all):
    """X and X_all scaled by X's column means and standard deviations (1 for a constant column)."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    constant = [int(p) for p in np.flatnonzero(scale == 0)]
    scale = np.where(scale == 0, 1.0, scale)
    X = (X - mean) / scale
    if X_all is not None:
        X_all = (np.asarray(X_all, dtype=np.float64) - mean) / scale
    return X, X_all, (mean, scale), constant
