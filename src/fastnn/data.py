"""Reading data files for the command line: ``.npz``, ``.npy`` pairs, ``.csv``.

CSV rules, in one place:

- The file is UTF-8; a leading byte-order mark is dropped. The delimiter is a
  comma if the first line has one, else a tab, else a semicolon, else runs of
  white space.
- **Header.** The first row is a header when none of its cells is a number;
  ``header=True``/``False`` (``--header``/``--no-header``) overrides that. A
  first row with some numbers and some text is data, so a typo in it is
  reported as a bad cell, not mistaken for column names.
- Header names must be unique and non-empty. An unnamed first column is the
  index that pandas' ``DataFrame.to_csv`` writes by default: it is refused
  with a hint rather than taken as a feature.
- Feature cells must be numbers. Label cells may be anything: a label column
  whose cells are all numbers is read as numbers, any other as text.
"""

import csv
import io
import os
from dataclasses import dataclass

import numpy as np

#: CSV files larger than this are refused (the table is held in memory as text).
MAX_CSV_BYTES = 2 << 30


@dataclass
class Dataset:
    """What a data spec holds.

    ``X`` are the features as read; ``y`` the labels or targets (None when the
    spec has none); ``feature_names`` the names of X's columns (a CSV header)
    or None; ``label_name`` the label column's name or None.
    """

    X: np.ndarray
    y: object = None
    feature_names: tuple = None
    label_name: str = None


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _delimiter(first_line):
    for d in (",", "\t", ";"):
        if d in first_line:
            return d
    return None


class CSVTable:
    """A CSV file as a header (or None) and a 2-D array of its cells as text."""

    def __init__(self, path, header=None):
        self.path = path
        if os.path.getsize(path) > MAX_CSV_BYTES:
            raise ValueError(f"data: {path} is larger than "
                             f"{MAX_CSV_BYTES >> 30} GiB; convert it to .npy")
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                text = fh.read()
        except UnicodeDecodeError as exc:
            raise ValueError(f"data: {path} is not UTF-8 text ({exc})") from None
        lines = text.splitlines()
        first = next((ln for ln in lines if ln.strip()), None)
        if first is None:
            raise ValueError(f"data: {path} is empty")
        delimiter = _delimiter(first)
        if delimiter is None:
            rows = [(i, ln.split()) for i, ln in enumerate(lines, 1) if ln.strip()]
        else:
            reader = csv.reader(io.StringIO(text), delimiter=delimiter)
            try:
                rows = [(reader.line_num, row) for row in reader
                        if any(cell.strip() for cell in row)]
            except csv.Error as exc:
                raise ValueError(f"data: {path} line {reader.line_num + 1}: "
                                 f"{exc}") from None
        if not rows:
            raise ValueError(f"data: {path} has no rows")
        self.line_numbers = [n for n, _ in rows]
        cells = [[c.strip() for c in row] for _, row in rows]
        width = len(cells[0])
        for n, row in zip(self.line_numbers, cells):
            if len(row) != width:
                raise ValueError(f"data: {path} line {n} has {len(row)} cells, "
                                 f"the first row has {width}")
        self.header_guessed = header is None
        if header is None:
            header = not any(_is_number(c) for c in cells[0])
        self.header = None
        if header:
            self.header = cells.pop(0)
            self.line_numbers.pop(0)
            self._check_header()
        if not cells:
            raise ValueError(f"data: {path} has a header but no data rows")
        self.cells = np.array(cells, dtype=str)

    def _check_header(self):
        names = self.header
        if names[0] in ("", "Unnamed: 0") and len(names) > 1:
            raise ValueError(
                f"data: {self.path}: its first column has no name, like the index "
                "column that pandas' DataFrame.to_csv writes; write the file with "
                "to_csv(..., index=False) or drop that column")
        for j, name in enumerate(names):
            if not name:
                raise ValueError(f"data: {self.path}: column {j} has no name in the "
                                 "header")
        seen = set()
        for name in names:
            if name in seen:
                raise ValueError(f"data: {self.path}: column name {name!r} appears "
                                 "twice in the header")
            seen.add(name)

    @property
    def n_columns(self):
        return self.cells.shape[1]

    def column_index(self, column):
        """The index of ``column``: a header name, or an integer (negative from
        the end) given as int or text."""
        if self.header is not None and column in self.header:
            return self.header.index(column)
        try:
            j = int(column)
        except (TypeError, ValueError):
            raise ValueError(
                f"label column: {column!r} is not a column of {self.path}"
                + (f" (columns: {', '.join(map(self.name, range(self.n_columns)))})"
                   if self.header else
                   " (it has no header; give a column index)")) from None
        if not -self.n_columns <= j < self.n_columns:
            raise ValueError(f"label column: {j} is out of range for "
                             f"{self.n_columns} columns")
        return j % self.n_columns

    def name(self, j):
        """Column ``j`` as error messages show it: its name, or its index."""
        if self.header is None:
            return f"column {j}"
        name = self.header[j]
        return name if name.isprintable() else repr(name)

    def numbers(self, columns):
        """The cells of ``columns`` as float64, shape (n_rows, len(columns))."""
        block = self.cells[:, columns]
        try:
            return block.astype(np.float64)
        except ValueError:
            pass
        for r, row in enumerate(block):
            for c, cell in enumerate(row):
                if not _is_number(cell):
                    what = ("is empty" if not cell
                            else f"{str(cell)!r} is not a number")
                    hint = ""
                    if r == 0 and self.header_guessed:
                        hint = ("; if the first row is a header, pass --header "
                                "(header=True)")
                    raise ValueError(
                        f"data: {self.path} line {self.line_numbers[r]}, "
                        f"{self.name(columns[c])}: {what}{hint}")
        raise AssertionError("unreachable")  # pragma: no cover

    def labels(self, j):
        """Column ``j`` as labels: float64 if every cell is a number, else text."""
        column = self.cells[:, j]
        empty = np.flatnonzero(column == "")
        if empty.size:
            raise ValueError(f"data: {self.path} line "
                             f"{self.line_numbers[empty[0]]}: the label "
                             f"({self.name(j)}) is empty")
        try:
            return column.astype(np.float64)
        except ValueError:
            return column


def read_csv(path, label_column="-1", header=None):
    """Read a CSV file into a :class:`Dataset` (see the module docstring)."""
    table = CSVTable(path, header)
    if label_column is None:
        columns = list(range(table.n_columns))
        y = label_name = None
    else:
        j = table.column_index(label_column)
        if table.n_columns < 2:
            raise ValueError(f"data: {path} needs feature columns besides the "
                             "label")
        columns = [c for c in range(table.n_columns) if c != j]
        y = table.labels(j)
        label_name = table.header[j] if table.header is not None else None
    names = (tuple(table.header[c] for c in columns)
             if table.header is not None else None)
    return Dataset(table.numbers(columns), y, names, label_name)


def load_data(spec, label_column="-1", need_labels=True, header=None):
    """Load a :class:`Dataset` from a data spec.

    ``spec`` is ``"digits"`` (the shipped data), a ``.npz`` with arrays ``X``
    and ``y``, ``X.npy,y.npy`` (a pair; ``y`` optional when labels are not
    needed), or a ``.csv`` whose ``label_column`` (name or index, default the
    last) holds the labels; with ``label_column=None`` every CSV column is a
    feature and ``y`` is None. ``header`` (None, True or False) applies to CSV
    files: None decides by the rule in the module docstring.
    """
    if spec == "digits":
        from fastnn.datasets import load_digits

        return Dataset(*load_digits())
    parts = spec.split(",")
    for p in parts:
        if not os.path.isfile(p):
            raise ValueError(f"data: no such file: {p}")
    if len(parts) > 2:
        raise ValueError("data: give one file, or an X.npy,y.npy pair")
    path = parts[0]
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "X" not in z:
                    raise ValueError(f"data: {path} has no array named X "
                                     f"(has {', '.join(z.files)})")
                data = Dataset(z["X"], z["y"] if "y" in z else None)
        elif ext == ".npy":
            data = Dataset(np.load(path, allow_pickle=False),
                           np.load(parts[1], allow_pickle=False)
                           if len(parts) == 2 else None)
        elif ext == ".csv":
            data = read_csv(path, label_column, header)
        else:
            raise ValueError(f"data: unsupported file type {ext!r} "
                             "(use .npz, .npy or .csv)")
    except (OSError, EOFError) as exc:
        raise ValueError(f"data: cannot read {path} ({exc})") from None
    except ValueError as exc:
        if str(exc).startswith(("data:", "label column:")):
            raise
        raise ValueError(f"data: cannot read {path} ({exc})") from None
    if need_labels and data.y is None:
        raise ValueError(f"data: {spec} has no labels (y)")
    return data


def load_features(spec, feature_names=None, ignore=(), label_column=None,
                  header=None):
    """The features of a data spec, for prediction.

    From a CSV with a header, for a model with ``feature_names``, columns are
    matched by name: they may come in any order; a missing one is an error,
    and so is any other column except those named in ``ignore`` (the model's
    own target column) or ``label_column``, which are left out. Otherwise every
    column but ``label_column`` (and a header column named in ``ignore``) is a
    feature, in file order.
    """
    from fastnn._validation import feature_columns

    path = spec.split(",")[0]
    if spec == "digits" or os.path.splitext(path)[1].lower() != ".csv":
        return load_data(spec, None, need_labels=False).X
    if not os.path.isfile(path):
        raise ValueError(f"data: no such file: {path}")
    table = CSVTable(path, header)
    drop = set()
    if label_column is not None:
        drop.add(table.column_index(label_column))
    if table.header is not None:
        drop |= {j for j, name in enumerate(table.header) if name in ignore}
        if feature_names is not None:
            names = [table.header[j] for j in range(table.n_columns)
                     if j not in drop]
            picked = feature_columns(f"data: {path}", names, feature_names)
            keep = [j for j in range(table.n_columns) if j not in drop]
            return table.numbers([keep[i] for i in picked])
    return table.numbers([j for j in range(table.n_columns) if j not in drop])


def table_extension(path, name="out"):
    """``".csv"`` or ``".npy"``, the format ``write_table`` writes to ``path``.

    Raises ValueError (naming the argument ``name``) for any other extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".npy"):
        raise ValueError(f"{name}: unsupported extension {ext!r} (use .csv or .npy)")
    return ext


def write_table(path_or_file, values, columns):
    """Write ``values`` (1-D or 2-D; numbers or text) as CSV with a header row
    ``columns``, or as ``.npy`` (no header) when ``path_or_file`` ends so.

    A path is checked by :func:`fastnn.io.check_save_path` and written
    atomically (a temporary file, then ``os.replace``)."""
    from fastnn.io import _write_atomic, check_save_path

    values = np.asarray(values)
    if not isinstance(path_or_file, str):
        _write_csv(path_or_file, values, columns)
        return
    check_save_path(path_or_file, "out")
    ext = table_extension(path_or_file)
    if ext == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, values)
        data = buffer.getvalue()
    else:
        text = io.StringIO(newline="")
        _write_csv(text, values, columns)
        data = text.getvalue().encode("utf-8")
    _write_atomic(path_or_file, data, "out")


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return f"{value:.8g}"
    return str(value)


def _write_csv(fh, values, columns):
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(columns)
    rows = values.reshape(len(values), -1)
    if rows.dtype.kind == "f":
        for row in rows:
            writer.writerow([f"{v:.8g}" for v in row.tolist()])
    else:
        for row in rows:
            writer.writerow([_cell(v) for v in row.tolist()])
