"""Text tables for ``fastelbo fit``: CSV, TSV, semicolon- or blank-separated files, read by content.

- Encoding: UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"); UTF-16 with a byte-order
  mark (Excel's "Unicode text"); anything else that is not valid UTF-8 is a single-byte code page:
  Windows-1252 (Excel's "CSV" on Windows in Western Europe and the Americas: € as 0x80, curly
  quotes as 0x93 and 0x94) when it holds bytes 0x80-0x9F, which Latin-1 reads as invisible control
  characters but Windows-1252 as text, and they all decode; else Latin-1 (which the two share for
  every other byte).
- Lines that are empty or start with ``#`` are skipped.
- The separator is found from the first lines: the first of tab, ``;``, ``,`` and ``|`` that splits
  every one of them into the same number (more than one) of fields, else runs of blanks. With a
  separator other than ``,``, a comma inside a number is a decimal comma (``1,5`` is 1.5).
- Header (``--header``): ``yes`` takes the first line as the column names, ``no`` as data; ``auto``
  takes it as a header only when one of its (selected) fields is neither a number nor a missing
  value. A header of numbers (years, wavelengths) therefore needs ``--header yes``, unless
  ``--columns`` selects by names that line 1 holds.
- Missing values (an empty field, ``NA``, ``N/A``, ``#N/A``, ``NaN``, ``null``, ``?``) and infinite
  ones are errors that name their lines and columns: the models fit complete rows only.

Columns (``--columns``, :func:`resolve_columns`) are numbered from 1, as in spreadsheets and
``cut``; the numbers of rows in messages are the lines of the file, from 1, as editors show them.
Names repeated in the header are kept (messages name a column by its number and its name), but
``--columns`` refuses to select by a repeated name.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

import numpy as np

from fastelbo.cli._errors import CommandLineError

#: Field values read as a missing value (compared in lower case, after stripping blanks and quotes).
MISSING = frozenset({"", "na", "n/a", "#n/a", "nan", "-nan", "+nan", "null", "?"})
#: Separators tried in this order; blanks (``None``) when none fits.
SEPARATORS = {"\t": "tab", ";": "semicolon", ",": "comma", "|": "vertical bar"}
#: How many of the first lines decide the separator.
_SNIFF_LINES = 50
#: How many problems of one kind an error message lists.
_LISTED = 3
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+(?:[eE][+-]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$")
_RANGE = re.compile(r"^(\d+)(?:-(\d*))?$")


@dataclass(frozen=True)
class TextTable:
    """A text table read by :func:`read_text_table`."""

    #: The selected columns of the data rows, float64.
    X: np.ndarray
    #: The header's fields (every column of the file), or None without a header.
    header: tuple | None
    #: The selected columns, 0-based positions in the file.
    columns: tuple
    #: Columns of the file.
    n_columns: int
    #: ``"comma"``, ``"semicolon"``, ``"tab"``, ``"vertical bar"``, ``"blanks"`` or ``"one column"``.
    separator: str
    #: ``"UTF-8"``, ``"UTF-8 with byte-order mark"``, ``"UTF-16"``, ``"Windows-1252"`` or
    #: ``"Latin-1"``.
    encoding: str
    #: Whether numbers were written with decimal commas.
    decimal_comma: bool
    #: How the header was decided: ``"yes"``/``"no"`` (as told) or ``"auto"``.
    header_mode: str
    #: The file's line number (from 1) of every data row.
    lines: tuple = ()


def decode(raw: bytes, display: str) -> tuple:
    """``(text, encoding)`` of a file's bytes (see the module's docstring)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as error:
            raise CommandLineError(f"cannot read {display!r} as UTF-16 text: {error.reason}") from None
    if b"\x00" in raw[:65536]:
        raise CommandLineError(
            f"cannot read {display!r}: it is a binary file, not text (DATA is a text table, a .npy or a "
            ".npz file; save a spreadsheet as CSV)"
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return raw[3:].decode("utf-8"), "UTF-8 with byte-order mark"
        except UnicodeDecodeError:
            return _decode_single_byte(raw[3:])
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return _decode_single_byte(raw)


#: Bytes that Latin-1 reads as C1 control characters (never in a text table) and Windows-1252 as
#: printable characters (€, curly quotes, dashes, ...), five of them excepted.
_C1_BYTES = re.compile(b"[\x80-\x9f]")


def _decode_single_byte(raw):
    """``(text, encoding)`` of bytes that are not UTF-8: Windows-1252 where they hold a byte
    0x80-0x9F and every one of them is defined there, else Latin-1 (see the module's docstring)."""
    if _C1_BYTES.search(raw):
        try:
            return raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90 or 0x9D: not Windows-1252
            pass
    return raw.decode("latin-1"), "Latin-1"


def _content_lines(text):
    """``[(line number from 1, line)]`` of the lines that are neither empty nor comments."""
    kept = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            kept.append((number, line))
    return kept


def _splitter(separator):
    """A function splitting lines into lists of fields (quotes removed), one list at a time."""
    if separator is None:
        return lambda lines: ([field.strip("\"'") for field in line.split()] for line in lines)
    return lambda lines: ([field.strip() for field in row] for row in csv.reader(lines, delimiter=separator))


def _refuse_mixed_decimal_marks(lines, split, display):
    """A file whose numbers use decimal commas must not also hold numbers with a decimal point:
    ``1,234`` among ``3.5`` is a thousands separator or a typo, and either reading is a guess."""
    for number, line in lines:
        if "." not in line:
            continue
        for column, field in enumerate(next(split([line])), start=1):
            if _DECIMAL_POINT.match(field):
                raise CommandLineError(
                    f"{display}: numbers are written with both decimal commas and decimal points (line "
                    f"{number}, column {column}: {field!r}); write every number one way (is a comma a "
                    "thousands separator?)"
                )


def _sniff_separator(lines):
    """The separator of the first lines (see the module's docstring), None for blanks."""
    sample = lines[:_SNIFF_LINES]
    for separator in SEPARATORS:
        widths = {len(row) for row in _splitter(separator)(sample)}
        if len(widths) == 1 and widths.pop() > 1:
            return separator
    # Lines of differing widths: report them with the separator the first line has.
    return next((separator for separator in SEPARATORS if separator in sample[0]), None)


def _is_number(field, decimal_comma):
    if not field.isascii() or "_" in field:
        return False  # Python's float() reads '1_000' and non-Latin digits; NumPy's parser does not
    if decimal_comma and _DECIMAL_COMMA.match(field):
        field = field.replace(",", ".")
    try:
        float(field)
    except ValueError:
        return False
    return True


def _is_missing(field):
    return field.strip("\"'").lower() in MISSING


def _column_label(position, header):
    """``column 3 ('petal width')``: a column, numbered from 1, with its header name."""
    name = header[position] if header is not None and position < len(header) else ""
    return f"column {position + 1} ({name!r})" if name else f"column {position + 1}"


def _listed(places, total):
    shown = "; ".join(places[:_LISTED])
    return shown + (f" and {total - _LISTED} more" if total > _LISTED else "")


def column_ranges(positions):
    """``[0, 1, 2, 4]`` as ``"1-3,5"`` (positions from 0 written from 1)."""
    parts, start = [], None
    for index, position in enumerate(positions):
        if start is None:
            start = position
        if index + 1 == len(positions) or positions[index + 1] != position + 1:
            parts.append(f"{start + 1}" if start == position else f"{start + 1}-{position + 1}")
            start = None
    return ",".join(parts)


def parse_column_spec(text: str) -> list:
    """The items of ``--columns``: comma-separated names, numbers and ranges."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise CommandLineError(
            f"--columns {text!r}: give column names, numbers or ranges, separated by commas"
        )
    return items


def resolve_columns(items, header, n_columns) -> tuple:
    """The 0-based positions of the ``--columns`` items (:func:`parse_column_spec`) in a table of
    ``n_columns`` columns whose names are ``header`` (or None).

    An item is a header name, a column number from 1, or a range ``A-B`` (``A-`` runs to the last
    column) of them. A name that is also a number of another column is ambiguous and refused, and
    so is a name the header gives to more than one column (select those by number).
    """
    names = {}
    if header is not None:
        for position, name in enumerate(header):
            names.setdefault(name, []).append(position)
    positions = []
    for item in items:
        named = names.get(item)
        if named is not None and len(named) > 1:
            raise CommandLineError(
                f"--columns: {item!r} is ambiguous: the header gives that name to columns "
                f"{', '.join(str(p + 1) for p in named[:-1])} and {named[-1] + 1}; select by number"
            )
        by_name = named[0] if named is not None else None
        match = _RANGE.match(item)
        if match is None:
            if by_name is None:
                known = ", ".join(repr(name) for name in header) if header is not None else None
                raise CommandLineError(
                    f"--columns: no column named {item!r} "
                    + (
                        f"(the header names {known})"
                        if known
                        else "(DATA has no header line to name columns)"
                    )
                )
            positions.append(by_name)
            continue
        first = int(match.group(1))
        last = first if match.group(2) is None else (int(match.group(2)) if match.group(2) else n_columns)
        if first < 1 or last > n_columns or first > last:
            if by_name is not None:
                positions.append(by_name)
                continue
            if 1 <= last < first <= n_columns:
                raise CommandLineError(f"--columns: {item!r} runs backwards; write {last}-{first}")
            raise CommandLineError(
                f"--columns: {item!r} is outside columns 1-{n_columns} (columns are numbered from 1)"
            )
        numbered = list(range(first - 1, last))
        if by_name is not None and numbered != [by_name]:
            raise CommandLineError(
                f"--columns: {item!r} is ambiguous: the name of column {by_name + 1} and the number of "
                f"{'column' if len(numbered) == 1 else 'columns'} {item}"
            )
        positions.extend(numbered)
    repeated = sorted({position for position in positions if positions.count(position) > 1})
    if repeated:
        raise CommandLineError(
            f"--columns selects {', '.join(_column_label(p, header) for p in repeated)} more than once"
        )
    return tuple(positions)


def read_text_table(raw: bytes, display: str, *, header="auto", columns=None) -> TextTable:
    """The table a text file's bytes hold (see the module's docstring).

    Parameters
    ----------
    raw : bytes
        The file's content.
    display : str
        The file's name as messages show it.
    header : {"auto", "yes", "no"}
        Whether the first line names the columns.
    columns : list of str or None
        ``--columns`` items (:func:`parse_column_spec`); None selects every column.

    Raises
    ------
    CommandLineError
        If the file holds no table, its lines differ in width, a selected field is not a number,
        or selected fields are missing or infinite (with the lines and columns).
    """
    text, encoding = decode(raw, display)
    lines = _content_lines(text)
    if not lines:
        raise CommandLineError(f"{display}: no data (every line is empty or a # comment)")
    separator = _sniff_separator([line for _, line in lines])
    split = _splitter(separator)

    # A separator after the last field of every line (some exports write one) ends no column.
    if separator is not None and all(line.rstrip().endswith(separator) for _, line in lines):
        lines = [(number, line.rstrip()[: -len(separator)]) for number, line in lines]
    first = next(split([lines[0][1]]))
    n_columns = len(first)
    sample = list(split([line for _, line in lines[: _SNIFF_LINES + 1]]))
    decimal_comma = separator != "," and any(_DECIMAL_COMMA.match(field) for row in sample for field in row)
    if decimal_comma:
        _refuse_mixed_decimal_marks(lines, split, display)
    names = tuple(field.strip("\"'") for field in first)

    named = columns is not None and any(_RANGE.match(item) is None for item in columns)
    if header == "auto":
        # Numbers select by position: line 1 has no names yet (it may be data).
        numbered = resolve_columns(columns, None, n_columns) if columns is not None and not named else None
        selected = numbered if numbered is not None else range(n_columns)
        has_header = any(
            not _is_number(names[p], decimal_comma) and not _is_missing(names[p]) for p in selected
        )
        if named and not has_header:
            # Names select columns only from a header line: line 1 is one if it holds the names
            # asked for (a header of numbers, 400.5, say), else it is data and names nothing.
            asked = [item for item in columns if _RANGE.match(item) is None]
            if not all(item in names for item in asked):
                raise CommandLineError(
                    f"--columns names {', '.join(repr(item) for item in asked)}, but DATA has no "
                    f"header line: line {lines[0][0]} holds numbers, not names (select columns by "
                    "number, or --header yes if line 1 is a header)"
                )
            has_header = True
    elif header == "no" and named:
        raise CommandLineError("--columns names columns, but --header no says DATA has no header line")
    else:
        has_header = header == "yes"
    table_header = names if has_header else None
    selected = (
        resolve_columns(columns, table_header, n_columns) if columns is not None else tuple(range(n_columns))
    )
    data = lines[1:] if has_header else lines
    if not data:
        raise CommandLineError(f"{display}: no data rows (only the header line {lines[0][0]})")

    # Every line must have the first line's width.
    for (number, _), width in zip(data, _widths(data, separator), strict=True):
        if width != n_columns:
            raise CommandLineError(
                f"{display}: line {number} has {width} field{'s' if width != 1 else ''}, line "
                f"{lines[0][0]} has {n_columns} (separator: {SEPARATORS.get(separator, 'blanks')})"
            )
    X = _parse(data, separator, selected, decimal_comma, display, table_header, n_columns)
    return TextTable(
        X=X,
        header=table_header,
        columns=selected,
        n_columns=n_columns,
        separator=SEPARATORS.get(separator, "blanks" if n_columns > 1 else "one column"),
        encoding=encoding,
        decimal_comma=decimal_comma,
        header_mode=header,
        lines=tuple(number for number, _ in data),
    )


def _widths(data, separator):
    """The number of fields of every line (counted in C where no quotes can hide a separator)."""
    texts = (line for _, line in data)
    if separator is None:
        return [len(line.split()) for line in texts]
    if not any('"' in line for _, line in data):
        return [line.count(separator) + 1 for line in texts]
    return [len(row) for row in csv.reader(texts, delimiter=separator)]


def _parse(data, separator, selected, decimal_comma, display, header, n_columns):
    """The selected columns of the data lines as float64, or the error naming the first bad fields."""
    texts = [line.replace(",", ".") if decimal_comma else line for _, line in data]
    try:
        X = np.loadtxt(
            texts,
            delimiter=separator,
            comments=None,
            quotechar='"',
            usecols=selected,
            ndmin=2,
            dtype=np.float64,
        )
    except ValueError:
        X = None
    if X is None or X.shape != (len(data), len(selected)):
        _raise_field_errors(data, separator, selected, decimal_comma, display, header, n_columns)
        raise CommandLineError(f"{display}: cannot read the table (no field is at fault: please report)")
    bad = ~np.isfinite(X)
    if bad.any():
        rows, cols = np.nonzero(bad)
        nan = np.isnan(X[rows, cols])
        places = [
            f"line {data[r][0]}, {_column_label(selected[c], header)}"
            for r, c in zip(rows[nan][:_LISTED], cols[nan][:_LISTED], strict=True)
        ]
        if nan.any():
            on_first_line = header is None and rows[nan][0] == 0
            _raise_missing(display, places, int(nan.sum()), data[0][0] if on_first_line else None)
        r, c = rows[0], cols[0]
        raise CommandLineError(
            f"{display}: line {data[r][0]}, {_column_label(selected[c], header)}: {X[r, c]:g} is not a "
            f"finite number ({int(bad.sum())} infinite value{'s' if bad.sum() > 1 else ''} in all)"
        )
    return X


def _raise_missing(display, places, total, first_line=None):
    """The error of ``total`` missing values, the first at ``places``; ``first_line`` (the first
    line's number, when it was read as data and holds one) adds the header hint."""
    header_hint = f" (is line {first_line} a header? --header yes)" if first_line is not None else ""
    raise CommandLineError(
        f"{display}: {total} missing value{'s' if total > 1 else ''} (empty, NA, N/A, #N/A, NaN, null "
        f"or ?) at "
        f"{_listed(places, total)}{header_hint}; the models fit complete rows only: remove or impute "
        f"{'them' if total > 1 else 'it'}, or leave the column out with --columns"
    )


def _raise_field_errors(data, separator, selected, decimal_comma, display, header, n_columns):
    """Raise the error of the first field that is not a number, else of the missing fields."""
    missing, total_missing, first_line = [], 0, None
    split = _splitter(separator)
    for (number, _), row in zip(data, split(line for _, line in data), strict=True):
        for position in selected:
            field = row[position].strip("\"'")
            if _is_missing(field):
                total_missing += 1
                if header is None and number == data[0][0]:
                    first_line = number
                if len(missing) < _LISTED:
                    missing.append(f"line {number}, {_column_label(position, header)}")
            elif not _is_number(field, decimal_comma):
                others = [p for p in selected if p != position]
                hint = f"; leave the column out with --columns {column_ranges(others)}" if others else ""
                first_line = "" if header is not None or number != data[0][0] else " (a header? --header yes)"
                raise CommandLineError(
                    f"{display}: line {number}, {_column_label(position, header)}: {field!r} is not a "
                    f"number{first_line}{hint}"
                )
    if total_missing:
        _raise_missing(display, missing, total_missing, first_line)
