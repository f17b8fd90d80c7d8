# The kernels' argument contracts, shared by the Cython wrappers (through this
# file, as C calls) and the NumPy twins (as Python functions).

cdef enum:
    ANY = -1  # any length along this axis
    NOAXIS = -2  # no such axis: the array is 1-D

cdef enum:
    READ = 0  # read only; converted to C order by the wrapper if need be
    INPLACE = 1  # read where it lies: C-contiguous (not copied)
    WRITE = 2  # written in place: C-contiguous and writable

cpdef bint is_float32(object a) noexcept
cpdef int floats(str name, object a, object like=*, int mode=*) except -1
cpdef int shape(str name, object a, Py_ssize_t n0, Py_ssize_t n1=*) except -1
cpdef int floats_shaped(str name, object a, object like, int mode, Py_ssize_t n0,
                        Py_ssize_t n1=*) except -1
cpdef object ints(str name, object a, Py_ssize_t n0, Py_ssize_t n1=*,
                  long long high=*, int mode=*)
cpdef object choice(str name, object value, object options)
cpdef double number(str name, object value, double low, double high,
                    bint low_open=*, bint high_open=*) except? -1
cpdef Py_ssize_t count(str name, object value, Py_ssize_t low) except -1


cdef inline void* data_ptr(a):
    """The data pointer of a C-contiguous array (None gives NULL)."""
    if a is None:
        return NULL
    return <void*> <size_t> a.ctypes.data
