"""Pure-NumPy twins of the Cython kernels (the reference tier).

Every module here mirrors a module of :mod:`fastnn._kernels` with the same
function names, arguments and semantics: inputs, then parameters, then
preallocated outputs that are written in place. They are the readable
definition, the test oracle and the benchmark baseline.
"""
