"""The inference forward pass of a stack of Dense layers, in one nogil call.

``model.predict`` on an all-Dense model runs here, block by block of rows,
with the input's finiteness checked per block; the twin is
:mod:`fastnn.reference.stack`. Two engines:

- batches of at least ``PACKED_MIN_ROWS`` rows, and at least the weights'
  size / ``PACK_ROWS`` (``DenseStack.engine``), where the build has the
  packed kernel (``PACKED``; x86-64 with FMA): the weights are packed once per
  call and the blocks are spread over fastnn's inference threads
  (``packed.h``, ``pool.h``), each block going through every layer while it
  is in cache;
- otherwise every layer's BLAS GEMM with its bias and activation fused after.

Each output row is computed by one thread, in an order that does not depend
on the thread count, so the result is the same bits with 1 thread or many.
"""
from cython cimport floating
from cpython.pythread cimport (
    NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_release_lock, PyThread_type_lock)
from libc.stdlib cimport free, malloc, realloc

from fastnn._kernels.activations import ACTIVATION_CODES
from fastnn._kernels.activations cimport ACT_IDENTITY, ACT_RELU, act_forward
from fastnn._kernels._checks cimport data_ptr, floats_shaped, WRITE
from fastnn._kernels._checks import stack_args
from fastnn._kernels.dense cimport dense_forward_c
from fastnn._kernels.vecmath cimport all_finite

import os
import warnings

import numpy as np

__all__ = ["DenseStack"]

cdef extern from "packed.h" nogil:
    int FNN_PACKED
    int FNN_MR_MAX
    size_t fnn_packed_size_f32(Py_ssize_t n_in, Py_ssize_t n_out)
    size_t fnn_packed_size_f64(Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fnn_panels_f32(Py_ssize_t n_out)
    Py_ssize_t fnn_panels_f64(Py_ssize_t n_out)
    void fnn_pack_panel_f32(const float* W, const float* b, Py_ssize_t n_in,
                            Py_ssize_t n_out, Py_ssize_t p, float* P)
    void fnn_pack_panel_f64(const double* W, const double* b, Py_ssize_t n_in,
                            Py_ssize_t n_out, Py_ssize_t p, double* P)
    void fnn_packed_dense_f32(const float* X, Py_ssize_t n, Py_ssize_t n_in,
                              const float* P, Py_ssize_t n_out, int relu,
                              float* Y, float* pad)
    void fnn_packed_dense_f64(const double* X, Py_ssize_t n, Py_ssize_t n_in,
                              const double* P, Py_ssize_t n_out, int relu,
                              double* Y, double* pad)

cdef extern from "pool.h" nogil:
    ctypedef void (*fnn_task)(void* ctx, Py_ssize_t part, int worker) noexcept nogil
    int fnn_pool_init()
    int fnn_parallel(fnn_task fn, void* ctx, Py_ssize_t parts, int max_threads)
    void fnn_pool_set_threads(int n)
    int fnn_pool_threads()
    int fnn_flag_get(const int* flag)
    void fnn_flag_clear(int* flag)

#: Whether this build has the packed inference kernel (x86-64 with FMA).
PACKED = bool(FNN_PACKED)


def set_threads(n):
    """Threads of a batch ``forward`` (the calling one included), >= 1."""
    fnn_pool_set_threads(int(n))


def get_threads():
    """Threads of a batch ``forward`` (the calling one included)."""
    return fnn_pool_threads()


def _default_threads():
    """FASTNN_NUM_THREADS if set (a whole number >= 1; anything else is
    warned about and ignored), else the CPUs this process may run on."""
    value = os.environ.get("FASTNN_NUM_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n >= 1:
            return n
        warnings.warn(f"FASTNN_NUM_THREADS={value!r} is not a whole number >= 1; "
                      "ignored", RuntimeWarning, stacklevel=2)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


fnn_pool_init()  # without memory for its lock, batches run in the caller
set_threads(_default_threads())


cdef enum:
    # Rows per block of DenseStack.forward: at least STACK_ROWS, for efficient
    # GEMMs, and more while the two scratch blocks fit in STACK_SCRATCH bytes:
    # every block costs a BLAS call per layer, which on narrow layers costs
    # more than the GEMM (the threaded ones wake and join their threads).
    STACK_ROWS = 512
    STACK_SCRATCH = 4 << 20
    # The packed engine: batches from PACKED_MIN_ROWS rows (below, packing the
    # weights costs more than it saves), in blocks of about PACKED_BLOCK bytes
    # of input (they stay in a core's L2 cache through all the layers), of
    # PACKED_ROW_STEP rows (whole tiles) and at least 4 per thread.
    PACKED_MIN_ROWS_ = 48
    PACKED_BLOCK = 512 << 10
    PACKED_ROW_STEP = 12
    PACKED_MAX_ROWS = 1200
    # Weights of fewer elements are packed by the calling thread alone, and
    # batches of fewer multiply-adds run in it alone (about 10 us of work):
    # waking a thread that sleeps can cost more than that on a busy machine.
    PACK_ALONE = 32768
    RUN_ALONE = 1 << 20
    # Packing costs about as much as PACK_ROWS rows of multiply-adds gain:
    # a batch takes the packed engine from max(PACKED_MIN_ROWS, weights /
    # PACK_ROWS) rows (e.g. 48 rows for 784-128-10, 130 for 784-512-256-10).
    PACK_ROWS = 4096
    ALIGN = 64

#: Rows from which a batch takes the packed engine (where PACKED).
PACKED_MIN_ROWS = PACKED_MIN_ROWS_

# Which engine batches take: 0 by the rule in _run, 1 always the packed one
# (where PACKED), 2 always the BLAS one.
cdef int engine = 0
ENGINES = ("auto", "packed", "blas")


def _set_engine(name):
    """For benchmarks and tests: "packed" or "blas" makes every batch take that
    engine (the packed one only where PACKED), "auto" restores the rule;
    returns the previous setting."""
    global engine
    before = ENGINES[engine]
    engine = ENGINES.index(name)
    return before


cdef struct StackLayer:
    void* W
    void* b
    Py_ssize_t n_in
    Py_ssize_t n_out
    int act
    double alpha
    size_t packed_at  # where its packed weights start, in elements
    Py_ssize_t panels  # of its packed weights
    Py_ssize_t first_panel  # its first panel's number among the stack's


cdef struct PackedJob:
    # One batch of the packed engine, shared by its threads (read-only but
    # for status).
    StackLayer* layers
    int n_layers
    const void* X
    void* out
    void* packed
    char* scratch      # per thread: two activation blocks, then the tile pad
    size_t scratch_per_thread
    Py_ssize_t n, rows, width
    int status         # 1, or 0 once a block has a non-finite input


cdef inline size_t packed_size(floating* tag, Py_ssize_t n_in,
                               Py_ssize_t n_out) noexcept nogil:
    if floating is float:
        return fnn_packed_size_f32(n_in, n_out)
    else:
        return fnn_packed_size_f64(n_in, n_out)


cdef inline Py_ssize_t panels_of(floating* tag, Py_ssize_t n_out) noexcept nogil:
    if floating is float:
        return fnn_panels_f32(n_out)
    else:
        return fnn_panels_f64(n_out)


cdef inline void pack_panel(PackedJob* job, Py_ssize_t part, int worker,
                            floating* tag) noexcept nogil:
    """Packs panel ``part`` of the stack (numbered across its layers)."""
    cdef int l = 0
    cdef StackLayer* L
    while part >= job.layers[l].first_panel + job.layers[l].panels:
        l += 1
    L = &job.layers[l]
    if floating is float:
        fnn_pack_panel_f32(<float*> L.W, <float*> L.b, L.n_in, L.n_out,
                           part - L.first_panel, <float*> job.packed + L.packed_at)
    else:
        fnn_pack_panel_f64(<double*> L.W, <double*> L.b, L.n_in, L.n_out,
                           part - L.first_panel, <double*> job.packed + L.packed_at)


cdef void pack_panel_f32(void* job, Py_ssize_t part, int worker) noexcept nogil:
    pack_panel(<PackedJob*> job, part, worker, <float*> NULL)


cdef void pack_panel_f64(void* job, Py_ssize_t part, int worker) noexcept nogil:
    pack_panel(<PackedJob*> job, part, worker, <double*> NULL)


cdef inline size_t aligned(size_t nbytes) noexcept nogil:
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


cdef inline void packed_block(PackedJob* job, Py_ssize_t part, int worker,
                              floating* tag) noexcept nogil:
    """Block ``part`` of the batch through every layer, on thread ``worker``."""
    cdef Py_ssize_t r0 = part * job.rows, k, l
    cdef StackLayer* L
    cdef const floating* inp
    cdef floating* dst
    cdef floating* bufs[2]
    cdef floating* pad
    cdef floating* P = <floating*> job.packed
    cdef char* mine = job.scratch + <size_t> worker * job.scratch_per_thread
    cdef bint relu
    if not fnn_flag_get(&job.status):
        return
    k = job.rows if r0 + job.rows <= job.n else job.n - r0
    inp = <const floating*> job.X + r0 * job.layers[0].n_in
    if not all_finite(inp, k * job.layers[0].n_in):
        fnn_flag_clear(&job.status)
        return
    bufs[0] = <floating*> mine
    bufs[1] = <floating*> (mine + aligned(job.rows * job.width * sizeof(floating)))
    pad = <floating*> (mine + 2 * aligned(job.rows * job.width * sizeof(floating)))
    for l in range(job.n_layers):
        L = &job.layers[l]
        dst = (<floating*> job.out + r0 * L.n_out if l == job.n_layers - 1
               else bufs[l % 2])
        relu = L.act == ACT_RELU
        if floating is float:
            fnn_packed_dense_f32(inp, k, L.n_in, P + L.packed_at, L.n_out, relu,
                                 dst, pad)
        else:
            fnn_packed_dense_f64(inp, k, L.n_in, P + L.packed_at, L.n_out, relu,
                                 dst, pad)
        if not relu and L.act != ACT_IDENTITY:
            act_forward(dst, k * L.n_out, L.act, L.alpha, dst)
        inp = dst


cdef void packed_block_f32(void* job, Py_ssize_t part, int worker) noexcept nogil:
    packed_block(<PackedJob*> job, part, worker, <float*> NULL)


cdef void packed_block_f64(void* job, Py_ssize_t part, int worker) noexcept nogil:
    packed_block(<PackedJob*> job, part, worker, <double*> NULL)


cdef class DenseStack:
    """The inference forward pass of a stack of Dense layers, in one nogil call.

    Parameters
    ----------
    layers : list of tuples ``(W, b, activation, alpha)``
        ``W`` (out, in) and ``b`` (out,) C-contiguous, all of one dtype. They
        are read (and, for the packed engine, packed) at every call, so later
        in-place weight updates are seen; they must stay alive and unmoved,
        and the stack keeps references to them.

    ``forward`` is thread-safe: it only reads the weights, and its scratch
    memory (the packed weights and every thread's activation blocks) is its
    own for the call. That is the stack's cached block when no
    other call holds it (up to ``STACK_SCRATCH`` bytes, kept between calls,
    since a fresh block of that size costs more in page faults than a small
    network's GEMMs), else a block of its own.
    """

    cdef StackLayer* layers
    cdef int n_layers
    cdef list keep
    cdef object dtype
    cdef Py_ssize_t n_in, n_out, width, max_in
    cdef size_t packed_elems
    cdef Py_ssize_t panels
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
        self.max_in = 1
        self.packed_elems = 0
        self.panels = 0
        for i in range(self.n_layers):
            self.layers[i].packed_at = self.packed_elems
            self.max_in = max(self.max_in, self.layers[i].n_in)
            self.layers[i].first_panel = self.panels
            if self.dtype == np.float32:
                self.layers[i].panels = panels_of(<float*> NULL, self.layers[i].n_out)
            else:
                self.layers[i].panels = panels_of(<double*> NULL, self.layers[i].n_out)
            self.panels += self.layers[i].panels
            if self.dtype == np.float32:
                self.packed_elems += aligned(packed_size(<float*> NULL,
                    self.layers[i].n_in, self.layers[i].n_out) * 4) // 4
            else:
                self.packed_elems += aligned(packed_size(<double*> NULL,
                    self.layers[i].n_in, self.layers[i].n_out) * 8) // 8
        self.n_in = self.layers[0].n_in
        self.n_out = self.layers[self.n_layers - 1].n_out

    def __dealloc__(self):
        if self.layers != NULL:
            free(self.layers)
        free(self.cache)
        if self.cache_lock != NULL:
            PyThread_free_lock(self.cache_lock)

    cdef bint _packed_for(self, Py_ssize_t n) noexcept nogil:
        return FNN_PACKED and (engine == 1 or (
            engine == 0 and n >= PACKED_MIN_ROWS_
            and <size_t> n * PACK_ROWS >= self.packed_elems))

    def engine(self, n):
        """The engine a batch of ``n`` rows takes: "packed" or "blas"."""
        return "packed" if self._packed_for(n) else "blas"

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
        if self._packed_for(n):
            return self._run_packed(X, n, out)
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

    cdef int _run_packed(self, const floating* X, Py_ssize_t n,
                         floating* out) noexcept nogil:
        """_run's packed engine (same results)."""
        cdef PackedJob job
        cdef int threads = fnn_pool_threads(), l
        cdef Py_ssize_t rows, per_thread, blocks
        cdef size_t packed_bytes
        cdef char* scratch
        cdef bint cached
        cdef floating* P
        if <double> n * self.packed_elems < RUN_ALONE:
            threads = 1
        # rows per block: whole tiles, about PACKED_BLOCK bytes of input, and
        # enough blocks for 4 per thread
        rows = PACKED_BLOCK // (max(self.max_in, self.width) * sizeof(floating))
        per_thread = (n + 4 * threads - 1) // (4 * threads)
        if rows > per_thread:
            rows = per_thread
        if rows > PACKED_MAX_ROWS:
            rows = PACKED_MAX_ROWS
        rows = max(PACKED_ROW_STEP,
                   (rows + PACKED_ROW_STEP - 1) // PACKED_ROW_STEP * PACKED_ROW_STEP)
        blocks = (n + rows - 1) // rows
        if threads > blocks:
            threads = <int> blocks
        job.layers = self.layers
        job.n_layers = self.n_layers
        job.X = X
        job.out = out
        job.n = n
        job.rows = rows
        job.width = self.width
        job.status = 1
        job.scratch_per_thread = (
            2 * aligned(rows * self.width * sizeof(floating))
            + aligned(FNN_MR_MAX * self.max_in * sizeof(floating)))
        packed_bytes = aligned(self.packed_elems * sizeof(floating))
        scratch = <char*> self._take_scratch(
            ALIGN + packed_bytes + <size_t> threads * job.scratch_per_thread,
            &cached)
        if scratch == NULL:
            return -1
        P = <floating*> (scratch + (ALIGN - <size_t> scratch % ALIGN) % ALIGN)
        job.packed = P
        job.scratch = <char*> P + packed_bytes
        # the weights, packed: by the threads when it is worth a wake-up; the
        # blocks then run on at most the threads the scratch is sized for
        if threads > 1 and self.packed_elems >= PACK_ALONE:
            if floating is float:
                fnn_parallel(pack_panel_f32, &job, self.panels, threads)
            else:
                fnn_parallel(pack_panel_f64, &job, self.panels, threads)
        else:
            for l in range(self.panels):
                pack_panel(&job, l, 0, <floating*> NULL)
        if floating is float:
            fnn_parallel(packed_block_f32, &job, blocks, threads)
        else:
            fnn_parallel(packed_block_f64, &job, blocks, threads)
        if cached:
            PyThread_release_lock(self.cache_lock)
        else:
            free(scratch)
        return job.status
