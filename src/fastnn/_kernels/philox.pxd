# The counter-based random stream for nogil kernels: `cimport` these to draw
# uniforms, normals, dropout masks and Gaussian noise inside a nogil loop.
# The stream is defined in the docstring of fastnn._kernels.random (which also
# holds the checked def wrappers); philox.h holds the C primitives.
#
# Element e of a stream (flat C order of an output, from `start`) draws from
# block e // 4: a uniform or a mask entry from word e, a normal from the pair of
# words (2 (e // 2), 2 (e // 2) + 1). So any split of an output into pieces
# (rows, threads) draws the same numbers as one call over the whole.
from cython cimport floating
from libc.stdint cimport int64_t, uint64_t

cdef extern from "philox.h" nogil:
    ctypedef struct fnn_stream:
        uint64_t key[2]
        uint64_t layer
        uint64_t step
        uint64_t epoch
    void fnn_philox4x64_10(const uint64_t* ctr, const uint64_t* key,
                           uint64_t* out)
    void fnn_philox4x64_10_limbs(const uint64_t* ctr, const uint64_t* key,
                                 uint64_t* out)
    void fnn_stream_words(const fnn_stream* s, uint64_t first, int64_t n_blocks,
                          uint64_t* words)
    double fnn_uniform53(uint64_t w)
    float fnn_uniform24(uint64_t w)
    void fnn_normal_pairs(const uint64_t* words, int64_t n_pairs, double* z)

# Blocks drawn at a time: the buffers live on the stack (2 x 2 KiB).
cdef enum:
    CHUNK_BLOCKS = 64


cdef inline fnn_stream make_stream(uint64_t key0, uint64_t key1, uint64_t epoch,
                                   uint64_t step, uint64_t layer) noexcept nogil:
    """The stream of (key, epoch, step, layer)."""
    cdef fnn_stream s
    s.key[0] = key0
    s.key[1] = key1
    s.epoch = epoch
    s.step = step
    s.layer = layer
    return s


cdef inline Py_ssize_t stream_chunk(const fnn_stream* s, uint64_t e, Py_ssize_t n,
                                    uint64_t* words) noexcept nogil:
    """Draw the blocks from e // 4 on, at most CHUNK_BLOCKS of them, into words;
    return how many of the n elements from e they cover. Element e + i is then
    word (e % 4) + i of the buffer."""
    cdef Py_ssize_t off = <Py_ssize_t> (e & 3)
    cdef Py_ssize_t m = CHUNK_BLOCKS * 4 - off
    if n < m:
        m = n
    fnn_stream_words(s, e >> 2, (off + m + 3) >> 2, words)
    return m


cdef inline void stream_uniform(const fnn_stream* s, uint64_t start, Py_ssize_t n,
                                floating* out) noexcept nogil:
    """out[i] = uniform in [0, 1) of element start + i: the top 53 bits of its
    word times 2^-53 (double) or the top 24 times 2^-24 (float)."""
    cdef uint64_t words[CHUNK_BLOCKS * 4]
    cdef Py_ssize_t i = 0, j, m, off
    while i < n:
        off = <Py_ssize_t> ((start + i) & 3)
        m = stream_chunk(s, start + i, n - i, words)
        for j in range(m):
            if floating is float:
                out[i + j] = fnn_uniform24(words[off + j])
            else:
                out[i + j] = fnn_uniform53(words[off + j])
        i += m


cdef inline void stream_normal(const fnn_stream* s, uint64_t start, Py_ssize_t n,
                               floating* out) noexcept nogil:
    """out[i] = standard normal of element start + i (Box-Muller in double,
    rounded to the output type)."""
    cdef uint64_t words[CHUNK_BLOCKS * 4]
    cdef double z[CHUNK_BLOCKS * 4]
    cdef Py_ssize_t i = 0, j, m, off
    while i < n:
        off = <Py_ssize_t> ((start + i) & 3)
        m = stream_chunk(s, start + i, n - i, words)
        fnn_normal_pairs(words, (off + m + 1) >> 1, z)
        for j in range(m):
            out[i + j] = <floating> z[off + j]
        i += m


cdef inline void stream_dropout_mask(const fnn_stream* s, uint64_t start,
                                     Py_ssize_t n, double p,
                                     floating* mask) noexcept nogil:
    """mask[i] = 1 / (1 - p) if U >= p else 0, U the uniform of element
    start + i; p and 1 / (1 - p) are rounded to the output type, as in the
    dropout kernels (so X * mask is their Y for this U)."""
    cdef uint64_t words[CHUNK_BLOCKS * 4]
    cdef Py_ssize_t i = 0, j, m, off
    cdef floating scale = <floating> (1.0 / (1.0 - p))
    cdef floating fp = <floating> p
    cdef floating u
    while i < n:
        off = <Py_ssize_t> ((start + i) & 3)
        m = stream_chunk(s, start + i, n - i, words)
        for j in range(m):
            if floating is float:
                u = fnn_uniform24(words[off + j])
            else:
                u = fnn_uniform53(words[off + j])
            mask[i + j] = scale if u >= fp else 0
        i += m


cdef inline void stream_gaussian_noise(const fnn_stream* s, uint64_t start,
                                       Py_ssize_t n, double std, const floating* X,
                                       floating* out) noexcept nogil:
    """out[i] = X[i] + std * z, z the normal of element start + i; z and std are
    rounded to the output type and the product and sum computed in it. out may
    be X itself."""
    cdef uint64_t words[CHUNK_BLOCKS * 4]
    cdef double z[CHUNK_BLOCKS * 4]
    cdef Py_ssize_t i = 0, j, m, off
    cdef floating fstd = <floating> std
    cdef floating zf
    while i < n:
        off = <Py_ssize_t> ((start + i) & 3)
        m = stream_chunk(s, start + i, n - i, words)
        fnn_normal_pairs(words, (off + m + 1) >> 1, z)
        for j in range(m):
            zf = <floating> z[off + j]
            out[i + j] = X[i + j] + fstd * zf
        i += m
