"""The DATA argument of ``fastelbo fit``: a ``.npy``, ``.npz`` or ``.csv`` file, or the name of a
built-in data set (:data:`fastelbo.datasets.DATASETS`), read into a finite 2-D float array.

A CSV file may have one header line: the first line is a header when one of its fields is not a
number. The delimiter is the first of ``,``, ``;`` and tab that the first line contains (otherwise
runs of whitespace separate the fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastelbo.cli._errors import CommandLineError
from fastelbo.datasets import DATASETS, load_dataset, subsample

FILE_SUFFIXES = (".npy", ".npz", ".csv")
_CSV_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class LoadedData:
    """The data a fit runs on and where they came from."""

    X: np.ndarray
    #: The DATA argument as given.
    source: str
    #: ``"builtin"``, ``"npy"``, ``"npz"`` or ``"csv"``.
    kind: str
    #: The array's name in a ``.npz`` file, the CSV header's fields, or None.
    key: str | None = None
    header: tuple | None = None
    #: Rows of the source before ``n_samples`` took a subset of them.
    n_source_rows: int = 0


def load_data(source: str, *, key=None, dtype="float64", n_samples=None, seed=0) -> LoadedData:
    """Read DATA (see the module's docstring) as a C-contiguous ``dtype`` array of shape
    (n_samples, n_features), all finite; ``n_samples`` takes a random subset of the rows (in their
    order), drawn with ``seed``.

    Raises
    ------
    CommandLineError
        If the file is missing or unreadable, holds no numeric 2-D table, contains NaN or infinite
        values, or ``key``/``n_samples`` do not fit it.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if key is not None and suffix != ".npz":
        raise CommandLineError("--key selects an array of a .npz file; DATA is not one")
    header = None
    if source in DATASETS:  # names without a suffix: never one of the files read here
        kind = "builtin"
        X = load_dataset(source)
    elif suffix not in FILE_SUFFIXES:
        if path.exists():
            raise CommandLineError(
                f"cannot read {source!r}: DATA must be a .npy, .npz or .csv file or a built-in data "
                f"set ({', '.join(DATASETS)})"
            )
        raise CommandLineError(
            f"DATA {source!r} is neither a file nor a built-in data set ({', '.join(DATASETS)})"
        )
    elif not path.is_file():
        raise CommandLineError(f"no such file: {source!r}")
    else:
        kind = suffix[1:]
        if kind == "npy":
            X = _read_npy(path)
        elif kind == "npz":
            X, key = _read_npz(path, key)
        else:
            X, header = _read_csv(path)
    X = _as_table(X, source)
    n_source_rows = X.shape[0]
    if n_samples is not None:
        X = _subset(X, n_samples, seed)
    try:
        X = np.ascontiguousarray(X, dtype=dtype)
    except (TypeError, ValueError) as error:  # complex numbers, or strings in a .npy file
        raise CommandLineError(f"DATA {source!r} is not numeric: {error}") from None
    _check_finite(X, source)
    return LoadedData(X, source, kind, key, header, n_source_rows)


def _read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CommandLineError(f"cannot read {str(path)!r} as .npy: {error}") from None


def _read_npz(path, key):
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key is None:
                if len(names) != 1:
                    listed = ", ".join(names) if names else "none"
                    raise CommandLineError(
                        f"{str(path)!r} holds {len(names)} arrays ({listed}); choose one with --key"
                    )
                key = names[0]
            elif key not in names:
                raise CommandLineError(
                    f"{str(path)!r} has no array {key!r} (it holds {', '.join(names) or 'none'})"
                )
            return archive[key], key
    except (OSError, ValueError) as error:
        raise CommandLineError(f"cannot read {str(path)!r} as .npz: {error}") from None


def _read_csv(path):
    try:
        with open(path, encoding="utf-8") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandLineError(f"cannot read CSV {str(path)!r}: {error}") from None
    if not first.strip():
        raise CommandLineError(f"cannot read CSV {str(path)!r}: its first line is empty")
    delimiter = next((d for d in _CSV_DELIMITERS if d in first), None)
    fields = [field.strip().strip("\"'") for field in first.split(delimiter)]
    header = None if all(_is_number(field) for field in fields) else tuple(fields)
    try:
        X = np.loadtxt(
            path, delimiter=delimiter, skiprows=0 if header is None else 1, ndmin=2, encoding="utf-8"
        )
    except (OSError, ValueError, UnicodeDecodeError) as error:
        # numpy's messages add advice about its own arguments after a ';'.
        reason = str(error).split(";")[0].strip()
        raise CommandLineError(f"cannot read CSV {str(path)!r}: {reason}") from None
    if header is not None and X.size and len(header) != X.shape[1]:
        raise CommandLineError(
            f"cannot read CSV {str(path)!r}: its header has {len(header)} fields, its rows {X.shape[1]}"
        )
    return X, header


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_table(X, source):
    if X.dtype.kind not in "biuf":
        raise CommandLineError(f"DATA {source!r} is not numeric (dtype {X.dtype})")
    if X.ndim != 2:
        raise CommandLineError(
            f"DATA {source!r} must be a 2-D array (samples x features), got shape {X.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise CommandLineError(f"DATA {source!r} is empty (shape {X.shape})")
    return X


def _subset(X, n_samples, seed):
    if n_samples < 1 or n_samples > X.shape[0]:
        raise CommandLineError(
            f"--n-samples must be between 1 and {X.shape[0]} (the rows of DATA), got {n_samples}"
        )
    return subsample(X, n_samples, seed=seed)


def _check_finite(X, source):
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise CommandLineError(
            f"DATA {source!r} contains {int(bad.sum())} NaN or infinite values (the first in data "
            f"row {row}, column {column}, counted from 0); remove or impute them first"
        )
