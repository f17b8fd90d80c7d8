"""Reading data files for the command line: ``.npz``, ``.npy`` pairs, ``.csv``."""

import os
import warnings

import numpy as np


def _read_csv(path, label_column):
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    if not first.strip():
        raise ValueError(f"data: {path} is empty")
    delimiter = "," if "," in first else None
    cells = [c.strip() for c in first.strip().split(delimiter)]

    def numeric(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = None if all(numeric(c) for c in cells) else cells
    try:
        with warnings.catch_warnings():
            # a header without rows: said below, in one line
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")
            table = np.loadtxt(path, delimiter=delimiter,
                               skiprows=1 if header else 0, ndmin=2,
                               dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"data: {path} has non-numeric cells ({exc})") from None
    if table.shape[0] == 0:
        raise ValueError(f"data: {path} has a header but no data rows")
    if label_column is None:
        return table, None, header
    if header is not None and label_column in header:
        col = header.index(label_column)
    else:
        try:
            col = int(label_column)
        except ValueError:
            raise ValueError(
                f"label column: {label_column!r} is not a column of {path}"
                + (f" (columns: {', '.join(header)})" if header else "")
            ) from None
        if not -table.shape[1] <= col < table.shape[1]:
            raise ValueError(f"label column: {col} is out of range for "
                             f"{table.shape[1]} columns")
        col %= table.shape[1]
    if table.shape[1] < 2:
        raise ValueError(f"data: {path} needs feature columns besides the label")
    y = table[:, col]
    X = np.delete(table, col, axis=1)
    return X, y, header


def load_data(spec, label_column="-1", need_labels=True):
    """Load ``(X, y)`` from a data spec.

    ``spec`` is ``"digits"`` (the shipped data), a ``.npz`` with arrays ``X``
    and ``y``, ``X.npy,y.npy`` (a pair; ``y`` optional when labels are not
    needed), or a ``.csv`` whose ``label_column`` (name or index, default the
    last) holds the labels; with ``label_column=None`` every CSV column is a
    feature and ``y`` is None.
    """
    if spec == "digits":
        from fastnn.datasets import load_digits

        return load_digits()
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
                X = z["X"]
                y = z["y"] if "y" in z else None
        elif ext == ".npy":
            X = np.load(path, allow_pickle=False)
            y = np.load(parts[1], allow_pickle=False) if len(parts) == 2 else None
        elif ext == ".csv":
            X, y, _ = _read_csv(path, label_column)
        else:
            raise ValueError(f"data: unsupported file type {ext!r} "
                             "(use .npz, .npy or .csv)")
    except (OSError, EOFError) as exc:
        raise ValueError(f"data: cannot read {path} ({exc})") from None
    except ValueError as exc:
        if str(exc).startswith(("data:", "label column:")):
            raise
        raise ValueError(f"data: cannot read {path} ({exc})") from None
    if need_labels and y is None:
        raise ValueError(f"data: {spec} has no labels (y)")
    return X, y


def save_predictions(path, values):
    """Write predictions as ``.npy`` or ``.csv`` (by extension)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        np.save(path, values)
    elif ext == ".csv":
        fmt = "%d" if values.dtype.kind in "iu" else "%.8g"
        np.savetxt(path, values.reshape(len(values), -1), delimiter=",", fmt=fmt)
    else:
        raise ValueError(f"out: unsupported extension {ext!r} (use .csv or .npy)")
