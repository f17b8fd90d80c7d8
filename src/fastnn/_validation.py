"""Every check of user input, in one place.

Public entry points call these once, before any kernel runs. Each check raises
``TypeError`` or ``ValueError`` naming the argument and what was wrong, and
returns the value converted to what the kernels need (C-contiguous arrays of
the model's dtype, int64 labels), so odd but valid input works: lists,
Fortran order, strided or read-only arrays, integers and float16.
"""

import math
import numbers

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype, name="dtype"):
    """Return the numpy type for ``"float32"``/``"float64"`` (or the types)."""
    try:
        key = np.dtype(dtype).name
    except TypeError:
        key = None
    if key not in DTYPES:
        raise ValueError(f"{name}: must be 'float32' or 'float64', got {dtype!r}")
    return DTYPES[key]


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``; the error lists them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{name}: unknown value {value!r}; valid: {', '.join(sorted(choices))}"
        )
    return value


def check_name(name, value):
    """A non-empty string, such as the name of a logged value to monitor."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: must be a string, got {value!r}")
    if not value:
        raise ValueError(f"{name}: must not be empty")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: must be True or False, got {value!r}")
    return bool(value)


def check_int(name, value, minimum=None, maximum=None):
    """An integer (not a bool) within the bounds, returned as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def check_float(name, value, minimum=None, maximum=None, *, low_open=False,
                high_open=False):
    """A finite real number within the bounds, returned as ``float``.

    ``low_open``/``high_open`` make the corresponding bound exclusive.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and (value <= minimum if low_open else value < minimum):
        raise ValueError(
            f"{name}: must be {'>' if low_open else '>='} {minimum}, got {value}"
        )
    if maximum is not None and (value >= maximum if high_open else value > maximum):
        raise ValueError(
            f"{name}: must be {'<' if high_open else '<='} {maximum}, got {value}"
        )
    return value


def _as_numeric_array(name, X):
    if isinstance(X, np.ndarray):
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: cannot be read as an array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: must hold real numbers, got an array of dtype {arr.dtype}"
        )
    return arr


def check_array(name, X, dtype, ndim=2, n_features=None, allow_empty=False):
    """A finite C-contiguous array of ``dtype`` with ``ndim`` dimensions.

    A 1-D input to a 2-D check is rejected rather than guessed at.
    """
    arr = _as_numeric_array(name, X)
    if arr.ndim != ndim:
        raise ValueError(
            f"{name}: must be {ndim}-D, got an array of shape {arr.shape}"
            + (" (reshape a single sample with X.reshape(1, -1))"
               if ndim == 2 and arr.ndim == 1 else "")
        )
    if not allow_empty and arr.size == 0 and (ndim == 1 or arr.shape[0] == 0):
        raise ValueError(f"{name}: is empty (shape {arr.shape})")
    if ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name}: has no features (shape {arr.shape})")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} features, got {arr.shape[1]}"
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return arr


def check_sample_weight(sample_weight, n_samples, dtype):
    """None, or ``n_samples`` finite weights >= 0 with a positive sum, as a
    C-contiguous array of ``dtype`` (a scalar weighs every sample alike)."""
    if sample_weight is None:
        return None
    w = _as_numeric_array("sample_weight", sample_weight)
    if w.ndim == 0:
        w = np.full(n_samples, w, dtype=dtype)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"sample_weight: must have shape ({n_samples},), one "
                         f"weight per sample, got {w.shape}")
    w = np.ascontiguousarray(w, dtype=dtype)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight: contains NaN or infinity")
    if (w < 0).any():
        raise ValueError("sample_weight: must be >= 0, got a negative weight")
    if not w.sum() > 0:
        raise ValueError("sample_weight: the weights sum to 0; nothing would be "
                         "learned")
    return w


def check_labels(name, y, n_samples, n_classes=None):
    """Integer class labels of length ``n_samples`` as int64 in ``[0, n_classes)``.

    Floats are accepted when every value is a whole number. Anything else
    (text, negative or too large labels) is refused with :data:`LABEL_HINT`.
    """
    try:
        arr = _as_numeric_array(name, y)
    except TypeError as exc:
        raise TypeError(f"{exc}; {LABEL_HINT}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be 1-D class labels, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name}: has {arr.shape[0]} labels but X has {n_samples} samples"
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinity")
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name}: class labels must be integers; "
                             f"{LABEL_HINT}")
    labels = np.ascontiguousarray(arr, dtype=np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: class labels must be >= 0, got {labels.min()}; "
                         f"{LABEL_HINT}")
    if n_classes is not None and labels.size and labels.max() >= n_classes:
        raise ValueError(
            f"{name}: label {labels.max()} is out of range for {n_classes} "
            f"outputs; {LABEL_HINT}"
        )
    return labels


def check_targets(name, y, n_samples, n_outputs, dtype):
    """Real-valued targets shaped ``(n_samples, n_outputs)``; 1-D is one output."""
    arr = _as_numeric_array(name, y)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name}: must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name}: has {arr.shape[0]} rows but X has {n_samples} samples"
        )
    if arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name}: has {arr.shape[1]} columns but the model has {n_outputs} outputs"
        )
    return check_array(name, arr, dtype)


#: How to turn arbitrary labels into the class indices that ``fit`` takes.
LABEL_HINT = ("map labels to 0..K-1 first: classes, y = np.unique(labels, "
              "return_inverse=True), then predict_classes(X) gives indices into "
              "classes (the command line and fastnn.sklearn do this for you)")


def check_classes(name, classes):
    """Distinct class values (numbers, text or booleans) as a 1-D array, or None."""
    if classes is None:
        return None
    arr = np.asarray(classes)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name}: must be a 1-D list of at least two class "
                         f"values, got shape {arr.shape}")
    if arr.dtype.kind not in "biufU":
        raise TypeError(f"{name}: class values must be numbers, text or "
                        f"booleans, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name}: class values must be distinct")
    return arr


def check_feature_names(name, names, n_features=None):
    """Distinct non-empty column names as a tuple of str, or None."""
    if names is None:
        return None
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise TypeError(f"{name}: must be a list of column names, got {names!r}")
    names = tuple(names)
    for n in names:
        if not isinstance(n, str) or not n:
            raise TypeError(f"{name}: column names must be non-empty strings, "
                            f"got {n!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: column names must be distinct")
    if n_features is not None and len(names) != n_features:
        raise ValueError(f"{name}: {len(names)} names for {n_features} features")
    return names


def frame_columns(X):
    """The column names of a DataFrame-like ``X`` when all are strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "to_numpy"):
        return None
    names = list(columns)
    return tuple(names) if all(isinstance(n, str) for n in names) else None


def feature_columns(name, columns, feature_names, ignore=()):
    """Positions of ``feature_names`` among ``columns``, matched by name.

    A missing feature is an error; so is any other column, except those in
    ``ignore`` (such as the label column), which are left out.
    """
    index = {c: i for i, c in enumerate(columns)}
    missing = [f for f in feature_names if f not in index]
    if missing:
        raise ValueError(f"{name}: lacks the column(s) {missing} that the model "
                         "was trained on")
    extra = [c for c in columns if c not in feature_names and c not in ignore]
    if extra:
        raise ValueError(f"{name}: has column(s) {extra} that the model was not "
                         f"trained on; its features are {list(feature_names)}")
    return [index[f] for f in feature_names]


def select_features(name, X, feature_names):
    """``X`` with a DataFrame's columns put in ``feature_names`` order."""
    columns = frame_columns(X)
    if feature_names is None or columns is None:
        return X
    return X[[columns[i] for i in feature_columns(name, columns, feature_names)]]


def check_seed(seed, name="seed"):
    """None, or an integer >= 0."""
    if seed is None:
        return None
    return check_int(name, seed, 0)
