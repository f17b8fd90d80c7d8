"""The inference forward pass of a stack of Dense layers, in one nogil call.

``model.predict`` on an all-Dense model runs here: every layer's GEMM with its
bias and activation fused, block by block of rows, with the input's
finiteness checked per block; the twin is :mod:`fastnn.reference.stack`.
"""
from cython cimport floating
from cpython.pythread cimport (
    NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock, PyThread_type_lock)
from libc.stdlib cimport free, malloc, realloc

from fastnn._kernels.activations import ACTIVATION_CODES
from fastnn._kernels._checks cimport data_ptr, floats_shaped, WRITE
from fastnn._kernels._checks import stack_args
from fastnn._kernels.dense cimport dense_forward_c
from fastnn._kernels.vecmath cimport all_finite

import numpy as np

__all__ = ["DenseStack"]


cdef enum:
    # Rows per block of DenseStack.forward: at least STACK_ROWS, for efficient
    # GEMMs, and more while the two scratch blocks fit in STACK_SCRATCH bytes:
    # every block costs a BLAS call per layer, which on narrow layers costs
    # more than the GEMM (the threaded ones wake and join their threads).
    STACK_ROWS = 512
    STACK_SCRATCH = 4 << 20


cdef struct StackLayer:
    void* W
    void* b
    Py_ssize_t n_in
    Py_ssize_t n_out
    int act
    double alpha


cdef class DenseStack:
    """The inference forward pass of a stack of Dense layers, in one nogil call.

    Parameters
    ----------
    layers : list of tuples ``(W, b, activation, alpha)``
        ``W`` (out, in) and ``b`` (out,) C-contiguous, all of one dtype. They
        are read at every call (so later in-place weight updates are seen) and
        must stay alive and unmoved; the stack keeps references to them.

    ``forward`` is thread-safe: it only reads the weights, and its scratch
    memory is its own for the call. That is the stack's cached block when no
    other call holds it (up to ``STACK_SCRATCH`` bytes, kept between calls,
    since a fresh block of that size costs more in page faults than a small
    network's GEMMs), else a block of its own.
    """

    cdef StackLayer* layers
    cdef int n_layers
    cdef list keep
    cdef object dtype
    cdef Py_ssize_t n_in, n_out, width
    cdef PyThread_type_lock cache_lock
    cdef void* cache
    cdef size_t cache_bytes

    def __cinit__(self):
        self.layers = NULL
        self.cache = NULL
        self.cache_bytes = 0
        self.cache_lock = PyThread_allocate_lock()
        if self.cache_lock == NULL:
            raise MemoryError()

    def __init__(self, layers):
        cdef int i
        stack_args(layers, ACTIVATION_CODES)
        self.keep = list(layers)
        self.n_layers = len(layers)
        self.layers = <StackLayer*> malloc(max(self.n_layers, 1) * sizeof(StackLayer))
        if self.layers == NULL:
            raise MemoryError()
        self.width = 1
        for i, (W, b, act, alpha) in enumerate(layers):
            self.layers[i].W = data_ptr(W)
            self.layers[i].b = data_ptr(b)
            self.layers[i].n_in = W.shape[1]
            self.layers[i].n_out = W.shape[0]
            self.layers[i].act = ACTIVATION_CODES[act]
            self.layers[i].alpha = alpha
            self.width = max(self.width, W.shape[0])
        self.dtype = layers[0][0].dtype
        self.n_in = self.layers[0].n_in
        self.n_out = self.layers[self.n_layers - 1].n_out

    def __dealloc__(self):
        if self.layers != NULL:
            free(self.layers)
        free(self.cache)
        if self.cache_lock != NULL:
            PyThread_free_lock(self.cache_lock)

    cdef void* _take_scratch(self, size_t nbytes, bint* cached) noexcept nogil:
        """A block of nbytes: the cached one if it is free (``cached`` set;
        give it back with ``PyThread_release_lock``), else a new one to free;
        NULL if out of memory."""
        cdef void* grown
        cached[0] = False
        if nbytes <= STACK_SCRATCH and PyThread_acquire_lock(self.cache_lock,
                                                             NOWAIT_LOCK):
            if self.cache_bytes < nbytes:
                grown = realloc(self.cache, nbytes)
                if grown == NULL:
                    PyThread_release_lock(self.cache_lock)
                    return NULL
                self.cache = grown
                self.cache_bytes = nbytes
            cached[0] = True
            return self.cache
        return malloc(nbytes)

    def forward(self, X, out):
        """out = the stack applied to X, when X is a C-contiguous finite 2-D
        array of the stack's dtype with ``n_in`` columns and at least one row.

        Returns
        -------
        bool
            False when X is anything else (the caller then validates X the
            slow way, which converts it or says what is wrong); ``out`` may
            then be partly written, and is to be discarded.

        Raises
        ------
        TypeError, ValueError
            If ``out`` is not a writable C-contiguous (n_samples, n_out) array
            of the stack's dtype.
        """
        cdef int status
        if (type(X) is not np.ndarray or X.dtype != self.dtype or X.ndim != 2
                or X.shape[0] == 0 or X.shape[1] != self.n_in
                or not X.flags.c_contiguous):
            return False
        floats_shaped("out", out, X, WRITE, X.shape[0], self.n_out)
        if self.dtype == np.float32:
            status = self._forward_typed[float](X, out)
        else:
            status = self._forward_typed[double](X, out)
        if status < 0:
            raise MemoryError()
        return status == 1

    cdef int _forward_typed(self, const floating[:, ::1] X,
                            floating[:, ::1] out) except? -2:
        cdef int status
        with nogil:
            status = self._run(&X[0, 0], X.shape[0], &out[0, 0])
        return status

    cdef int _run(self, const floating* X, Py_ssize_t n,
                  floating* out) noexcept nogil:
        """1: done; 0: X has a non-finite value (``out`` partly written, to be
        discarded); -1: no memory."""
        cdef Py_ssize_t i, r0, k, l
        cdef Py_ssize_t rows = STACK_SCRATCH // (2 * self.width * sizeof(floating))
        cdef floating* scratch
        cdef floating* bufs[2]
        cdef const floating* inp
        cdef floating* dst
        cdef StackLayer* L
        cdef bint cached
        cdef int status = 1
        if rows < STACK_ROWS:
            rows = STACK_ROWS
        if rows > n:
            rows = n
        scratch = <floating*> self._take_scratch(
            2 * rows * self.width * sizeof(floating), &cached)
        if scratch == NULL:
            return -1
        bufs[0] = scratch
        bufs[1] = scratch + rows * self.width
        r0 = 0
        while r0 < n:
            k = rows if r0 + rows <= n else n - r0
            inp = X + r0 * self.n_in
            # Checked chunk by chunk, so that the GEMM reads it from cache.
            if not all_finite(inp, k * self.n_in):
                status = 0
                break
            for l in range(self.n_layers):
                L = &self.layers[l]
                dst = (out + r0 * self.n_out if l == self.n_layers - 1
                       else bufs[l % 2])
                dense_forward_c(inp, <floating*> L.W, <floating*> L.b, k, L.n_in,
                                L.n_out, L.act, L.alpha, dst, dst)
                inp = dst
            r0 += k
        if cached:
            PyThread_release_lock(self.cache_lock)
        else:
            free(scratch)
        return status
