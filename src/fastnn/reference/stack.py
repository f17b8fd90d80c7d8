"""NumPy twin of :mod:`fastnn._kernels.stack`: the inference pass of a Dense
stack, layer by layer with the reference kernels."""

import numpy as np

from fastnn._kernels._checks import stack_args, stack_out_args
from fastnn.reference import dense
from fastnn.reference.activations import _ACTIVATIONS

__all__ = ["DenseStack"]


class DenseStack:
    """See :class:`fastnn._kernels.stack.DenseStack`; same arguments and results."""

    def __init__(self, layers):
        self.n_in, self.n_out = stack_args(layers, _ACTIVATIONS)
        self.layers = list(layers)
        self.dtype = self.layers[0][0].dtype

    def forward(self, X, out):
        if (type(X) is not np.ndarray or X.dtype != self.dtype or X.ndim != 2
                or X.shape[0] == 0 or X.shape[1] != self.n_in
                or not X.flags.c_contiguous):
            return False
        stack_out_args(X, out, self.n_out)
        if not np.isfinite(X).all():
            return False
        H = X
        for W, b, act, alpha in self.layers:
            Y = np.empty((H.shape[0], W.shape[0]), self.dtype)
            dense.dense_forward(H, W, b, act, alpha, Y)
            H = Y
        out[...] = H
        return True
