"""The kernels' argument contracts: one check per array, shared by both backends.

``get_ops`` is public, so every exported kernel checks its arguments before its
``nogil`` worker runs: types and dtypes (``TypeError``: not an array, ``None``,
not float32/float64, dtypes that differ, integers where floats are needed or
the reverse), then shapes, sizes, layout and ranges (``ValueError``: shapes that
do not agree, a non-C-contiguous or read-only output, a label, index or argmax
out of range). The Cython wrappers call these as C functions (``_checks.pxd``),
the NumPy twins in :mod:`fastnn.reference` as Python functions, so both backends
refuse the same input with the same exception. Every message starts with the
argument's name.

The checks are O(1) per float array (flags, dtype and shape); only index and
label arrays are scanned, once, in C. They are the kernel tier's contract, not
the validation of user data (that is :mod:`fastnn._validation`, which the
kernels do not import).
"""
cimport numpy as cnp
from libc.math cimport isfinite
from libc.stdint cimport int64_t

import numbers

import numpy as np

cnp.import_array()

from fastnn._kernels.codes import LABEL_LOSSES


# --------------------------------------------------------------------------
# Primitives

cpdef bint is_float32(object a) noexcept:
    """True for a float32 array (the wrappers' choice of specialization)."""
    return cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray> a) == cnp.NPY_FLOAT


cdef int _array(str name, object a) except -1:
    if a is None:
        raise TypeError(f"{name}: must be a NumPy array, got None")
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name}: must be a NumPy array, got {type(a).__name__}")
    if not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a):
        raise TypeError(f"{name}: must be in native byte order, got {a.dtype}")
    return 0


cdef int _layout(str name, cnp.ndarray a, int mode) except -1:
    if mode == READ:
        return 0
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: must be C-contiguous "
                         f"({'written' if mode == WRITE else 'read'} in place)")
    if mode == WRITE and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: is read-only, but it is written in place")
    return 0


cpdef int floats(str name, object a, object like=None, int mode=READ) except -1:
    """A float32 or float64 ndarray; of ``like``'s dtype when ``like`` is given.

    ``mode``: READ (any layout), INPLACE (C-contiguous) or WRITE (C-contiguous
    and writable).
    """
    cdef int t
    _array(name, a)
    t = cnp.PyArray_TYPE(<cnp.ndarray> a)
    if like is None:
        if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE:
            raise TypeError(f"{name}: must be float32 or float64, got {a.dtype}")
    elif t != cnp.PyArray_TYPE(<cnp.ndarray> like):
        raise TypeError(f"{name}: must be {like.dtype} like the other arrays, got "
                        f"{a.dtype}")
    return _layout(name, <cnp.ndarray> a, mode)


cdef str _dims(Py_ssize_t n0, Py_ssize_t n1):
    a = "any" if n0 == ANY else str(n0)
    if n1 == NOAXIS:
        return f"({a},)"
    return f"({a}, {'any' if n1 == ANY else n1})"


cpdef int shape(str name, object a, Py_ssize_t n0, Py_ssize_t n1=NOAXIS) except -1:
    """``a.shape == (n0,)`` (n1 = NOAXIS) or ``(n0, n1)``; ANY matches any length."""
    cdef cnp.ndarray arr
    cdef int ndim = 1 if n1 == NOAXIS else 2
    cdef cnp.npy_intp* dims
    _array(name, a)
    arr = <cnp.ndarray> a
    dims = cnp.PyArray_DIMS(arr)
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name}: must be {ndim}-D of shape {_dims(n0, n1)}, got "
                         f"shape {a.shape}")
    if (n0 != ANY and dims[0] != n0) or (ndim == 2 and n1 != ANY and dims[1] != n1):
        raise ValueError(f"{name}: must have shape {_dims(n0, n1)}, got {a.shape}")
    return 0


cpdef int floats_shaped(str name, object a, object like, int mode, Py_ssize_t n0,
                        Py_ssize_t n1=NOAXIS) except -1:
    """``floats`` then ``shape``."""
    floats(name, a, like, mode)
    return shape(name, a, n0, n1)


cpdef object ints(str name, object a, Py_ssize_t n0, Py_ssize_t n1=NOAXIS,
                  long long high=-1, int mode=READ):
    """An integer ndarray of shape ``(n0,)``/``(n0, n1)``, returned as C-ordered
    int64 (converted when ``mode`` is READ; else it must already be int64),
    with every entry in ``[0, high)`` unless ``high`` < 0."""
    cdef cnp.ndarray arr
    cdef const int64_t* v
    cdef Py_ssize_t i, size, bad = -1
    _array(name, a)
    arr = <cnp.ndarray> a
    if mode != READ and cnp.PyArray_TYPE(arr) != cnp.NPY_INT64:
        raise TypeError(f"{name}: must be int64, got {a.dtype}")
    if not cnp.PyArray_ISINTEGER(arr):
        raise TypeError(f"{name}: must hold integers, got {a.dtype}")
    shape(name, a, n0, n1)
    _layout(name, arr, mode)
    if mode == READ and (cnp.PyArray_TYPE(arr) != cnp.NPY_INT64
                         or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
        # unsafe cast: an unsigned value past 2**63 wraps negative, then fails
        arr = np.ascontiguousarray(a, dtype=np.int64)
    if high >= 0:
        v = <const int64_t*> cnp.PyArray_DATA(arr)
        size = cnp.PyArray_SIZE(arr)
        with nogil:
            for i in range(size):
                if v[i] < 0 or v[i] >= high:
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"{name}: {v[bad]} at position {bad} is out of range "
                             f"[0, {high})")
    return arr


cpdef object choice(str name, object value, object options):
    """``options[value]`` for a str ``value`` among the mapping's keys."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: must be a str, got {type(value).__name__}")
    try:
        return options[value]
    except KeyError:
        raise ValueError(f"{name}: unknown {value!r}; valid: "
                         f"{', '.join(sorted(options))}") from None


cpdef double number(str name, object value, double low, double high,
                    bint low_open=False, bint high_open=False) except? -1:
    """A finite real number in the range (bounds open or closed), as float."""
    cdef double x
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float,
                                                                     np.number)):
        raise TypeError(f"{name}: must be a number, got {value!r}")
    x = float(value)
    if not isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x}")
    if x < low or (low_open and x == low):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {x}")
    if x > high or (high_open and x == high):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, "
                         f"got {x}")
    return x


def integer(name, value, low, high):
    """An integer (not a bool) in ``[low, high]``, as a Python int of any size
    (seeds and stream positions: up to 2**128)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: must be an integer, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")
    if value > high:
        raise ValueError(f"{name}: must be <= {high}, got {value}")
    return value


cpdef Py_ssize_t count(str name, object value, Py_ssize_t low) except -1:
    """An integer >= low."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")
    return value


# --------------------------------------------------------------------------
# One contract per kernel (the kernel's name, then ``_args``)

def _needed(kernel, activation, needs, Z, Y):
    if needs and (Z if needs == "Z" else Y) is None:
        raise ValueError(f"{kernel}: activation {activation!r} needs {needs}")


def dense_forward_args(X, W, b, Y, Z):
    """X (n, n_in), W (n_out, n_in), b (n_out,), Y and Z (n, n_out)."""
    floats("W", W, None, INPLACE)
    shape("W", W, ANY, ANY)
    n_out, n_in = W.shape
    floats_shaped("X", X, W, READ, ANY, n_in)
    n = X.shape[0]
    floats_shaped("b", b, W, INPLACE, n_out)
    floats_shaped("Y", Y, W, WRITE, n, n_out)
    if Z is not None:
        floats_shaped("Z", Z, W, WRITE, n, n_out)


def dense_backward_args(X, W, Z, Y, dY, activation, needs, dX, dW, db):
    """dY (n, n_out) is written (it becomes dZ); X (n, n_in); W (n_out, n_in);
    Z and Y (n, n_out) when given, the one ``needs`` names required."""
    floats("W", W, None, INPLACE)
    shape("W", W, ANY, ANY)
    n_out, n_in = W.shape
    floats_shaped("dY", dY, W, WRITE, ANY, n_out)
    n = dY.shape[0]
    floats_shaped("X", X, W, READ, n, n_in)
    _needed("dense_backward", activation, needs, Z, Y)
    if Z is not None:
        floats_shaped("Z", Z, W, INPLACE, n, n_out)
    if Y is not None:
        floats_shaped("Y", Y, W, INPLACE, n, n_out)
    if dX is not None:
        floats_shaped("dX", dX, W, WRITE, n, n_in)
    if dW is not None:
        floats_shaped("dW", dW, W, WRITE, n_out, n_in)
    if db is not None:
        floats_shaped("db", db, W, WRITE, n_out)


def elementwise_args(names, inputs, out_name, out):
    """Inputs and the output of one 2-D shape and dtype; the shape is the first
    input's."""
    first = None
    for name, a in zip(names, inputs):
        if first is None:
            floats(name, a)
            shape(name, a, ANY, ANY)
            first = a
        else:
            floats_shaped(name, a, first, READ, first.shape[0], first.shape[1])
    floats_shaped(out_name, out, first, WRITE, first.shape[0], first.shape[1])


def activation_backward_args(Z, Y, dY, activation, needs, dZ):
    """dY, Z and Y (when given; the one ``needs`` names required) and dZ of
    one shape."""
    floats("dY", dY)
    shape("dY", dY, ANY, ANY)
    _needed("activation_backward", activation, needs, Z, Y)
    given = [(name, a) for name, a in (("dY", dY), ("Z", Z), ("Y", Y))
             if a is not None]
    elementwise_args([g[0] for g in given], [g[1] for g in given], "dZ", dZ)


def prelu_args(X, a, dY, dX, da, backward):
    """X (n, m), a (m,) or (1,), and dX (n, m); for the backward pass also dY
    (n, m) and da like a."""
    floats("X", X)
    shape("X", X, ANY, ANY)
    n, m = X.shape
    floats("a", a, X)
    shape("a", a, ANY)
    if a.shape[0] != m and a.shape[0] != 1:
        raise ValueError(f"a: must have shape ({m},) or (1,), got {a.shape}")
    if backward:
        floats_shaped("dY", dY, X, READ, n, m)
    floats_shaped("dX" if backward else "Y", dX, X, WRITE, n, m)
    if backward:
        floats_shaped("da", da, X, WRITE, a.shape[0])


def maxout_forward_args(X, pieces, Y, argmax):
    """Y (n, units); X (n, units * pieces); argmax int64 (n, units)."""
    pieces = count("pieces", pieces, 1)
    floats("Y", Y, None, WRITE)
    shape("Y", Y, ANY, ANY)
    n, units = Y.shape
    floats_shaped("X", X, Y, READ, n, units * pieces)
    ints("argmax", argmax, n, units, -1, WRITE)


def maxout_backward_args(dY, argmax, pieces, dX):
    """dY (n, units); argmax (n, units) in [0, pieces); dX (n, units * pieces).
    Returns argmax as C-ordered int64."""
    pieces = count("pieces", pieces, 1)
    floats("dY", dY)
    shape("dY", dY, ANY, ANY)
    n, units = dY.shape
    floats_shaped("dX", dX, dY, WRITE, n, units * pieces)
    return ints("argmax", argmax, n, units, pieces)


def labels_loss_args(Y, y, dY):
    """Y (n, k); y (n,) integer labels in [0, k); dY (n, k) or None. Returns y
    as C-ordered int64."""
    floats("Y", Y)
    shape("Y", Y, ANY, ANY)
    n, k = Y.shape
    if dY is not None:
        floats_shaped("dY", dY, Y, WRITE, n, k)
    return ints("y", y, n, NOAXIS, k)


def pointwise_loss_args(Y, T, dY):
    """Y and T (n, m), and dY (n, m) or None, of one dtype."""
    floats("Y", Y)
    shape("Y", Y, ANY, ANY)
    n, m = Y.shape
    floats_shaped("T", T, Y, READ, n, m)
    if dY is not None:
        floats_shaped("dY", dY, Y, WRITE, n, m)


def update_args(grad, param, states):
    """grad (read) and param and each ``(name, array, needed)`` of states
    (written), all 1-D of param's length and dtype. A state the update does not
    use (``needed`` false) may be None; given, it is checked all the same."""
    floats("param", param, None, WRITE)
    shape("param", param, ANY)
    n = param.shape[0]
    floats_shaped("grad", grad, param, READ, n)
    for name, a, needed in states:
        if needed or a is not None:
            floats_shaped(name, a, param, WRITE, n)


def dropout_args(X, U, p, Y, names=("X", "U", "Y")):
    """X, U and Y of one shape and dtype; p in [0, 1). Returns p as float."""
    p = number("p", p, 0.0, 1.0, False, True)
    elementwise_args(names[:2], (X, U), names[2], Y)
    return p


def batchnorm_args(X, dY, vectors, Y_name, Y, backward=False):
    """X (n, d) (and dY for the backward pass), each ``(name, array, written)``
    of vectors (d,), C-contiguous (they are not copied), and the output Y
    (n, d)."""
    floats("X", X)
    shape("X", X, ANY, ANY)
    n, d = X.shape
    if backward:
        floats_shaped("dY", dY, X, READ, n, d)
    for name, a, written in vectors:
        floats_shaped(name, a, X, WRITE if written else INPLACE, d)
    floats_shaped(Y_name, Y, X, WRITE, n, d)


def grad_args(grad, written):
    """A 1-D float array (C-contiguous and writable when ``written``)."""
    floats("grad", grad, None, WRITE if written else READ)
    shape("grad", grad, ANY)


def gather_rows_args(X, idx, out):
    """X (n, d) read in place; idx int64 (m,) in [0, n); out (m, d)."""
    floats("X", X, None, INPLACE)
    shape("X", X, ANY, ANY)
    n, d = X.shape
    floats("out", out, X, WRITE)
    shape("out", out, ANY, d)
    ints("idx", idx, out.shape[0], NOAXIS, n, INPLACE)


def gather_labels_args(y, idx, out):
    """y (n,) int64, float32 or float64, read in place; idx int64 (m,) in
    [0, n); out (m,) of y's dtype."""
    _array("y", y)
    if y.dtype not in (np.int64, np.float32, np.float64):
        raise TypeError(f"y: must be int64, float32 or float64, got {y.dtype}")
    _layout("y", y, INPLACE)
    shape("y", y, ANY)
    _array("out", out)
    if out.dtype != y.dtype:
        raise TypeError(f"out: must be {y.dtype} like y, got {out.dtype}")
    _layout("out", out, WRITE)
    shape("out", out, ANY)
    ints("idx", idx, out.shape[0], NOAXIS, y.shape[0], INPLACE)


# --------------------------------------------------------------------------
# The training plan and the inference stack

def stack_args(layers, activations):
    """``layers``: a non-empty list of ``(W, b, activation, alpha)`` whose
    shapes chain, W (n_out, n_in) and b (n_out,) C-contiguous of one dtype.
    Returns ``(n_in, n_out)`` of the stack."""
    layers = list(layers) if isinstance(layers, (list, tuple)) else layers
    if not isinstance(layers, list):
        raise TypeError(f"layers: must be a list, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers: must hold at least one layer, got none")
    first = prev = None
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) != 4:
            raise ValueError(f"layers[{i}]: must be (W, b, activation, alpha)")
        W, b, act, alpha = layer
        floats(f"layers[{i}] W", W, first, INPLACE)
        first = W if first is None else first
        shape(f"layers[{i}] W", W, ANY, ANY if prev is None else prev)
        floats_shaped(f"layers[{i}] b", b, W, INPLACE, W.shape[0])
        choice(f"layers[{i}] activation", act, activations)
        number(f"layers[{i}] alpha", alpha, -np.inf, np.inf)
        prev = W.shape[0]
    return first.shape[1], prev


def stack_out_args(X, out, n_out):
    """out (n_samples, n_out) of X's dtype, written."""
    floats_shaped("out", out, X, WRITE, X.shape[0], n_out)
