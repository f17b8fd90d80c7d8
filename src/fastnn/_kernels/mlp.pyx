"""A whole training step of a Dense-only MLP in one nogil call (the inference
pass of a Dense stack is :mod:`fastnn._kernels.stack`).

For a stack of Dense layers trained with a single flat parameter buffer,
``MLPPlan.run`` does, for each minibatch: gather the rows of ``X`` and the
targets, forward every layer (GEMM, then bias and activation fused), the fused
loss and its gradient, backward every layer (activation derivative fused,
then the dW, db and dX GEMMs), and one optimizer update over the whole flat
buffer. Python is entered once per call, not once per kernel, which is what
small networks need.
"""
from cython cimport floating
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from fastnn._kernels.activations import ACTIVATION_CODES, NEEDS_INPUT
from fastnn._kernels._checks cimport data_ptr, floats_shaped, WRITE
from fastnn._kernels._checks import plan_args, plan_run_args
from fastnn._kernels.dense cimport dense_backward_c, dense_forward_c
from fastnn._kernels.losses cimport (
    LOSS_BCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, hinge_c, pointwise_c,
    softmax_cross_entropy_c,
)
from libc.stdint cimport int64_t
from fastnn._kernels.optim cimport adam_c, sgd_c
from fastnn._kernels.vecmath cimport all_finite

import numpy as np

__all__ = ["MLPPlan"]

#: loss name -> code; the label losses come first.
LOSS_CODES = {"softmax_cross_entropy": 0, "hinge": 1, "mse": 2, "mae": 3,
              "huber": 4, "binary_cross_entropy": 5}
#: optimizer name -> code.
OPTIMIZER_CODES = {"sgd": 0, "adam": 1, "adamw": 2}


cdef struct LayerPlan:
    void* W
    void* b
    void* dW
    void* db
    void* Y
    void* Z
    void* dX
    Py_ssize_t n_in
    Py_ssize_t n_out
    int act
    double alpha


cdef class MLPPlan:
    """Pointers to one fit's arrays, and the step loop over them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_in), C-contiguous, model dtype
    target : ndarray of shape (n_samples,) int64 labels, or (n_samples, n_out)
    perm : ndarray of shape (n_samples,) int64
        The epoch's sample order (shuffled in place by the caller).
    layers : list of tuples ``(W, b, dW, db, activation, alpha, Y, Z, dX)``
        ``Y``/``Z``/``dX`` are (batch, .) buffers; ``Z`` is None when the
        activation does not need it; ``dX`` is None for the first layer.
    Xb, tb, dOut : batch buffers for the inputs, targets and output gradient
    loss : str
    delta : float
        Huber's delta.
    optimizer : {"sgd", "adam", "adamw"}
    hyper : tuple of float
        sgd: (momentum, dampening, nesterov, weight_decay);
        adam/adamw: (beta1, beta2, eps, weight_decay, amsgrad).
    params, grads : ndarray of shape (n_params,)
    state : tuple of ndarray of shape (n_params,)
        sgd: (momentum_buffer,); adam: (exp_avg, exp_avg_sq[, max_exp_avg_sq]).

    Every array must stay alive and unmoved while the plan is used; the plan
    keeps references to them. The arguments are checked as a whole
    (``_checks.plan_args``): a ``TypeError`` or ``ValueError`` names the first
    that is wrong.
    """

    cdef LayerPlan* layers
    cdef int n_layers
    cdef list keep
    cdef bint is_float
    cdef void* X
    cdef void* target
    cdef long long* perm
    cdef Py_ssize_t n, d, batch, n_out, t_width
    cdef void* Xb
    cdef void* tb
    cdef void* dOut
    cdef int loss, optimizer, pointwise
    cdef double delta
    cdef double h0, h1, h2, h3, h4
    cdef void* params
    cdef void* grads
    cdef void* s0
    cdef void* s1
    cdef void* s2
    cdef Py_ssize_t n_params
    cdef Py_ssize_t n_classes
    cdef bint oom

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, X, target, perm, layers, Xb, tb, dOut, loss, delta,
                 optimizer, hyper, params, grads, state):
        cdef int i
        plan_args(X, target, perm, layers, Xb, tb, dOut, loss, delta, optimizer,
                  hyper, params, grads, state, ACTIVATION_CODES, NEEDS_INPUT,
                  LOSS_CODES, OPTIMIZER_CODES)
        self.keep = [X, target, perm, layers, Xb, tb, dOut, params, grads, state]
        self.is_float = X.dtype == np.float32
        self.X = data_ptr(X)
        self.target = data_ptr(target)
        self.perm = <long long*> data_ptr(perm)
        self.n, self.d = X.shape[0], X.shape[1]
        self.batch = Xb.shape[0]
        self.t_width = 1 if target.ndim == 1 else target.shape[1]
        self.Xb, self.tb, self.dOut = data_ptr(Xb), data_ptr(tb), data_ptr(dOut)
        self.loss = LOSS_CODES[loss]
        self.pointwise = {2: LOSS_MSE, 3: LOSS_MAE, 4: LOSS_HUBER,
                          5: LOSS_BCE}.get(self.loss, -1)
        self.delta = delta
        self.optimizer = OPTIMIZER_CODES[optimizer]
        hyper = tuple(hyper) + (0.0,) * (5 - len(hyper))
        self.h0, self.h1, self.h2, self.h3, self.h4 = [float(h) for h in hyper]
        self.params, self.grads = data_ptr(params), data_ptr(grads)
        self.n_params = params.shape[0]
        state = tuple(state) + (None,) * (3 - len(state))
        self.s0, self.s1, self.s2 = data_ptr(state[0]), data_ptr(state[1]), data_ptr(state[2])
        self.n_layers = len(layers)
        self.layers = <LayerPlan*> malloc(self.n_layers * sizeof(LayerPlan))
        if self.layers == NULL:
            raise MemoryError()
        for i, (W, b, dW, db, act, alpha, Y, Z, dX) in enumerate(layers):
            self.layers[i].W = data_ptr(W)
            self.layers[i].b = data_ptr(b)
            self.layers[i].dW = data_ptr(dW)
            self.layers[i].db = data_ptr(db)
            self.layers[i].Y = data_ptr(Y)
            self.layers[i].Z = data_ptr(Z) if Z is not None else data_ptr(Y)
            self.layers[i].dX = data_ptr(dX)
            self.layers[i].n_in = W.shape[1]
            self.layers[i].n_out = W.shape[0]
            self.layers[i].act = ACTIVATION_CODES[act]
            self.layers[i].alpha = alpha
        self.n_out = self.layers[self.n_layers - 1].n_out
        self.n_classes = self.n_out if self.loss <= 1 else 0

    def __dealloc__(self):
        if self.layers != NULL:
            free(self.layers)

    def run(self, first_step, n_steps, double lr, long opt_step):
        """Train ``n_steps`` minibatches from ``first_step`` of the epoch.

        Returns
        -------
        (loss_sum, correct, steps_done) : (float, int, int)
            ``loss_sum`` is the sum of batch-mean losses times batch sizes;
            ``steps_done < n_steps`` means a non-finite loss stopped the run
            before that step's update.

        Raises
        ------
        ValueError
            If a step lies before the epoch, or ``perm`` (which the caller
            reshuffles) or the labels it picks are out of range; nothing has
            run then.
        MemoryError
            If a step's scratch memory cannot be had (the steps before it are
            done).
        """
        cdef double loss_sum = 0.0
        cdef long long correct = 0
        cdef long done = 0
        cdef long first, steps
        plan_run_args(first_step, n_steps, self.batch, self.keep[2], self.keep[1],
                      self.n_classes)
        first, steps = first_step, n_steps
        self.oom = False
        with nogil:
            if self.is_float:
                done = self._run(<float*> NULL, first, steps, lr,
                                 opt_step, &loss_sum, &correct)
            else:
                done = self._run(<double*> NULL, first, steps, lr,
                                 opt_step, &loss_sum, &correct)
        if self.oom:
            raise MemoryError(f"MLPPlan.run: out of memory after {done} steps")
        return loss_sum, correct, done

    cdef long _run(self, floating* dtype_tag, long first_step, long n_steps,
                   double lr, long opt_step, double* loss_sum,
                   long long* correct) noexcept nogil:
        """The step loop; ``dtype_tag`` (NULL) only selects float or double."""
        cdef long s, done = 0
        cdef Py_ssize_t start, k, i, j, l
        cdef const floating* X = <const floating*> self.X
        cdef floating* Xb = <floating*> self.Xb
        cdef floating* dOut = <floating*> self.dOut
        cdef floating* out
        cdef const floating* inp
        cdef floating* d
        cdef LayerPlan* L
        cdef double loss
        cdef long long* labels_b = <long long*> self.tb
        cdef floating* values_b = <floating*> self.tb
        cdef Py_ssize_t w = self.t_width
        for s in range(first_step, first_step + n_steps):
            start = s * self.batch
            k = self.batch if start + self.batch <= self.n else self.n - start
            if k <= 0:
                break
            # gather the batch
            for i in range(k):
                j = self.perm[start + i]
                memcpy(Xb + i * self.d, X + j * self.d, self.d * sizeof(floating))
                if self.loss <= 1:
                    labels_b[i] = (<long long*> self.target)[j]
                else:
                    memcpy(values_b + i * w, (<floating*> self.target) + j * w,
                           w * sizeof(floating))
            # forward
            inp = Xb
            for l in range(self.n_layers):
                L = &self.layers[l]
                dense_forward_c(inp, <floating*> L.W, <floating*> L.b, k, L.n_in,
                                L.n_out, L.act, L.alpha, <floating*> L.Y,
                                <floating*> L.Z)
                inp = <floating*> L.Y
            out = <floating*> self.layers[self.n_layers - 1].Y
            loss = self._loss(out, k, dOut)
            if not isfinite(loss):
                break
            loss_sum[0] += loss * k
            correct[0] += self._correct(out, k)
            # backward
            d = dOut
            for l in range(self.n_layers - 1, -1, -1):
                L = &self.layers[l]
                inp = Xb if l == 0 else <floating*> self.layers[l - 1].Y
                if dense_backward_c(inp, <floating*> L.W, <floating*> L.Z,
                                    <floating*> L.Y, d, k, L.n_in, L.n_out, L.act,
                                    L.alpha, <floating*> L.dX, <floating*> L.dW,
                                    <floating*> L.db) < 0:
                    self.oom = True
                    return done
                d = <floating*> L.dX
            # update
            opt_step += 1
            if self.optimizer == 0:
                sgd_c(<floating*> self.grads, self.n_params, lr, self.h0, self.h1,
                      self.h2 != 0, self.h3, opt_step, <floating*> self.params,
                      <floating*> self.s0)
            else:
                adam_c(<floating*> self.grads, self.n_params, lr, self.h0, self.h1,
                       self.h2, self.h3, self.optimizer == 2, self.h4 != 0,
                       opt_step, <floating*> self.params, <floating*> self.s0,
                       <floating*> self.s1, <floating*> self.s2)
            done += 1
        return done

    cdef double _loss(self, floating* out, Py_ssize_t k,
                      floating* dOut) noexcept nogil:
        cdef Py_ssize_t N = k * self.n_out
        if self.loss == 0:
            return softmax_cross_entropy_c(out, <int64_t*> self.tb, k, self.n_out,
                                           dOut)
        if self.loss == 1:
            return hinge_c(out, <int64_t*> self.tb, k, self.n_out, dOut)
        return pointwise_c(out, <floating*> self.tb, N, self.pointwise, self.delta,
                           dOut)

    cdef long long _correct(self, floating* out, Py_ssize_t k) noexcept nogil:
        cdef Py_ssize_t i, j, best
        cdef long long hits = 0
        cdef long long* labels = <long long*> self.tb
        cdef floating* values = <floating*> self.tb
        cdef floating* row
        if self.loss <= 1:
            for i in range(k):
                row = out + i * self.n_out
                best = 0
                for j in range(1, self.n_out):
                    if row[j] > row[best]:
                        best = j
                hits += best == labels[i]
        elif self.loss == 5:
            for i in range(k * self.n_out):
                hits += (out[i] > 0) == (values[i] > 0.5)
        return hits
