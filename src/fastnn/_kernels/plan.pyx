"""The training engine: a whole training step of any ``Sequential`` model in
one nogil call.

``TrainPlan.run`` does, for each minibatch: gather the rows of ``X`` and the
targets; run every layer forward in training mode; the fused loss and its
gradient; every layer backward, down to the first layer with trainable
parameters (l1/l2 terms added to the weight gradients); global-norm clipping;
and the optimizer's update over each contiguous run of trainable parameters
in the flat buffer. Python is entered once per call, not once per kernel.

Layers are steps of eight kinds (:data:`fastnn._kernels.codes.LAYER_KINDS`):
Dense (GEMM with bias and activation fused), an activation, softmax with a
temperature, dropout, Gaussian noise, batch normalization (in training mode
when trainable, else with its running statistics), PReLU and Maxout. A layer,
the loss and the optimizer are described by name and the tables of
:mod:`fastnn._kernels.codes` give their codes.

Randomness. Dropout masks and Gaussian noise come from the counter-based
stream of :mod:`fastnn._kernels.random`, drawn inside the loop: layer ``i``
at step ``s`` of epoch ``e`` draws the stream ``(seed, e, s, i)``, element
``j`` of its ``(k, width)`` batch being stream position ``j`` (flat C order).
So the numbers depend on the seed, epoch, step and layer only, not on the
machine or thread count, and the twin (:mod:`fastnn.reference.plan`) draws
the same ones: a dropout layer's output is ``X * mask`` with
``mask = dropout_mask_philox(seed, e, s, i, p)``, and a noise layer's is
``gaussian_noise_philox(seed, e, s, i, std, X)``.
"""
from cython cimport floating
from libc.math cimport isfinite, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastnn._kernels._checks cimport data_ptr
from fastnn._kernels._plan_args import plan_args, run_args
from fastnn._kernels.activations cimport (
    act_backward, act_forward, maxout_backward_c, maxout_forward_c,
    prelu_backward_c, prelu_forward_c, softmax_backward_c, softmax_forward_c,
)
from fastnn._kernels.batchnorm cimport bn_backward_c, bn_infer_c, bn_train_c
from fastnn._kernels.codes import ACTIVATION_CODES, LAYER_CODES, OPTIMIZERS
from fastnn._kernels.dense cimport dense_backward_c, dense_forward_c
from fastnn._kernels.losses cimport (
    LOSS_BCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, hinge_c, pointwise_c,
    softmax_cross_entropy_c,
)
from fastnn._kernels.optim cimport (
    adadelta_c, adagrad_c, adam_c, nadam_c, rmsprop_c, sgd_c, sumsq_c,
)
from fastnn._kernels.philox cimport (
    fnn_stream, make_stream, stream_dropout_mask, stream_gaussian_noise,
)
from fastnn._kernels.vecmath cimport vsqrt

import numpy as np

__all__ = ["TrainPlan"]

# Layer kinds and optimizers, as fastnn._kernels.codes numbers them (checked
# at import below).
cdef enum:
    K_DENSE = 0
    K_ACTIVATION = 1
    K_SOFTMAX = 2
    K_DROPOUT = 3
    K_NOISE = 4
    K_BATCHNORM = 5
    K_PRELU = 6
    K_MAXOUT = 7

cdef enum:
    O_SGD = 0
    O_ADAGRAD = 1
    O_RMSPROP = 2
    O_ADADELTA = 3
    O_ADAM = 4
    O_ADAMW = 5
    O_NADAM = 6

if [LAYER_CODES[k] for k in ("dense", "activation", "softmax", "dropout", "noise",
                             "batchnorm", "prelu", "maxout")] != list(range(8)) \
        or [OPTIMIZERS[k].code for k in ("sgd", "adagrad", "rmsprop", "adadelta",
                                         "adam", "adamw", "nadam")] != list(range(7)):
    raise ImportError("fastnn._kernels.plan: its enums disagree with "
                      "fastnn._kernels.codes")

# Pointwise loss codes of losses.pxd, by plan loss code (mse, mae, huber, bce).
cdef int[6] POINTWISE = [-1, -1, LOSS_MSE, LOSS_MAE, LOSS_HUBER, LOSS_BCE]


cdef struct Op:
    int kind
    int act
    bint trainable      # its parameters get gradients
    bint active         # dropout with p > 0, noise with std > 0
    bint shared         # PReLU with one slope
    Py_ssize_t n_in, n_out, pieces
    double alpha, l1, l2, p, std, eps, momentum, temperature
    void* W
    void* b
    void* dW
    void* db
    void* rm
    void* rv
    void* mean
    void* invstd
    void* Y
    void* Z
    void* dZ
    void* dX
    void* mask
    void* argmax
    const void* X       # this step's input, set by the forward pass


cdef class TrainPlan:
    """One fit's arrays, and the step loop over them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), C-contiguous, the model dtype
    target : ndarray
        int64 labels of shape (n_samples,) for a label loss, else the targets,
        (n_samples, n_outputs) in X's dtype.
    perm : ndarray of shape (n_samples,) int64
        The epoch's sample order (reshuffled in place by the caller).
    layers : list of (kind, arrays, values)
        One per layer, as :data:`fastnn._kernels.codes.LAYER_KINDS` lists
        them: ``arrays`` holds the layer's parameters, their gradients (None
        for a frozen layer) and BatchNorm's running statistics, all in X's
        dtype, parameters inside ``params`` and gradients inside ``grads``;
        ``values`` its hyperparameters. The plan allocates the per-batch
        buffers itself.
    loss : (name, delta) or (name, delta, scale)
        A name of ``LOSS_CODES``; ``delta`` is Huber's; the loss and its
        gradient are multiplied by ``scale`` (default 1).
    optimizer : dict
        ``name``; ``hyper``, the hyperparameters by name; ``state``, the state
        arrays by name (shaped like ``params``; None where unused);
        ``scalars``, a float64 array of the optimizer's scalar state (NAdam's
        ``mu_product``) or None; ``clip_norm``, None or > 0.
    params, grads : ndarray of shape (n_params,)
        The model's flat parameter and gradient buffers.
    runs : ndarray of shape (n_runs, 2), int64
        The contiguous trainable ranges ``[start, stop)`` of the flat buffers,
        in order; the optimizer updates only these.
    batch : int
        Rows per step (the last step of an epoch may have fewer).
    seed : int
        The key of the random stream, in [0, 2**128).
    sample_weight : ndarray of shape (n_samples,) or None
        Weights of the rows (X's dtype, finite, >= 0): a step's loss is then
        the weighted mean ``sum w_i l_i / sum w_i`` of its rows' losses (each
        row's the mean over its outputs), and its gradient that of the
        weighted mean. A step whose weights sum to 0 has loss 0 and zero
        gradients.
    penalty : {"sum", "sample"}
        ``"sum"``: a Dense layer's ``l1``/``l2`` terms add ``l2 W + l1
        sign(W)`` to its weight gradient at every step (the penalty
        ``l1 |W|_1 + l2/2 |W|^2`` is added to the loss once, by the caller).
        ``"sample"``: the penalty is divided by the step's weight sum (its
        number of rows, unweighted), as scikit-learn's ``alpha`` is, and
        ``run`` returns its sum over the steps, each weighted by its rows.

    Every array must stay alive and unmoved while the plan is used; the plan
    keeps references to them. The arguments are checked as a whole
    (:func:`fastnn._kernels._plan_args.plan_args`, shared with the twin): a
    ``TypeError`` or ``ValueError`` names the first that is wrong.
    """

    cdef object spec
    cdef Op* ops
    cdef int n_ops, first_backward
    cdef bint is_float
    cdef void* X
    cdef void* target
    cdef long long* perm
    cdef Py_ssize_t n, d, batch, n_out, t_width, n_classes
    cdef void* Xb
    cdef void* tb
    cdef void* dOut
    cdef int loss, pointwise, optimizer
    cdef double delta, clip_norm, loss_scale
    cdef bint per_sample
    cdef void* weights
    cdef void* wb
    cdef double h[6]
    cdef void* params
    cdef void* grads
    cdef void* s0
    cdef void* s1
    cdef void* s2
    cdef double* scalars
    cdef int64_t* runs
    cdef Py_ssize_t n_runs
    cdef uint64_t key0, key1
    cdef bint oom

    def __cinit__(self):
        self.ops = NULL

    def __init__(self, X, target, perm, layers, loss, optimizer, params, grads, runs,
                 batch, seed, sample_weight=None, penalty="sum"):
        cdef int i
        cdef Op* o
        spec = plan_args(X, target, perm, layers, loss, optimizer, params, grads,
                         runs, batch, seed, sample_weight, penalty)
        self.spec = spec
        self.is_float = X.dtype == np.float32
        self.X, self.target = data_ptr(X), data_ptr(target)
        self.perm = <long long*> data_ptr(perm)
        self.n, self.d = X.shape[0], X.shape[1]
        self.batch = spec.batch
        self.t_width = 1 if target.ndim == 1 else target.shape[1]
        self.Xb, self.tb, self.dOut = (data_ptr(spec.Xb), data_ptr(spec.tb),
                                       data_ptr(spec.dOut))
        self.loss = spec.loss_code
        self.pointwise = POINTWISE[self.loss]
        self.delta = spec.delta
        self.n_classes = spec.n_classes
        self.optimizer = spec.opt_code
        for i in range(6):
            self.h[i] = spec.hyper[i] if i < len(spec.hyper) else 0.0
        self.loss_scale = spec.loss_scale
        self.per_sample = spec.per_sample
        self.weights = data_ptr(spec.sample_weight)
        self.wb = data_ptr(spec.wb)
        self.clip_norm = spec.clip_norm
        self.params, self.grads = data_ptr(params), data_ptr(grads)
        state = list(spec.state) + [None] * (3 - len(spec.state))
        self.s0, self.s1, self.s2 = (data_ptr(state[0]), data_ptr(state[1]),
                                     data_ptr(state[2]))
        self.scalars = <double*> data_ptr(spec.scalars)
        self.runs = <int64_t*> data_ptr(spec.runs)
        self.n_runs = spec.runs.shape[0]
        self.key0 = spec.seed & 0xFFFFFFFFFFFFFFFF
        self.key1 = spec.seed >> 64
        self.first_backward = spec.first_backward
        self.n_ops = len(spec.ops)
        self.ops = <Op*> malloc(self.n_ops * sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        memset(self.ops, 0, self.n_ops * sizeof(Op))
        for i, op in enumerate(spec.ops):
            o = &self.ops[i]
            a, v = op.arrays, op.values
            o.kind = op.code
            o.n_in, o.n_out = op.n_in, op.n_out
            o.trainable = v.get("trainable", False)
            o.act = ACTIVATION_CODES[v.get("activation", "identity")]
            o.alpha = v.get("alpha", 0.0)
            o.l1, o.l2 = v.get("l1", 0.0), v.get("l2", 0.0)
            o.p, o.std = v.get("p", 0.0), v.get("std", 0.0)
            o.eps, o.momentum = v.get("eps", 0.0), v.get("momentum", 0.0)
            o.temperature = v.get("temperature", 1.0)
            o.pieces = v.get("pieces", 1)
            o.active = (o.kind == K_DROPOUT and o.p > 0) or (o.kind == K_NOISE
                                                            and o.std > 0)
            o.W, o.b = data_ptr(a.get("weight")), data_ptr(a.get("bias"))
            o.dW, o.db = data_ptr(a.get("grad_weight")), data_ptr(a.get("grad_bias"))
            o.rm, o.rv = data_ptr(a.get("running_mean")), data_ptr(a.get("running_var"))
            o.mean, o.invstd = data_ptr(a.get("mean")), data_ptr(a.get("invstd"))
            o.Y, o.dX = data_ptr(a["Y"]), data_ptr(a["dX"])
            o.Z, o.dZ = data_ptr(a.get("Z")), data_ptr(a.get("dZ"))
            o.mask, o.argmax = data_ptr(a.get("mask")), data_ptr(a.get("argmax"))
            if o.kind == K_DENSE and o.Z == NULL:
                o.Z = o.Y
            o.shared = o.kind == K_PRELU and a["weight"].shape[0] == 1
        self.n_out = self.ops[self.n_ops - 1].n_out

    def __dealloc__(self):
        if self.ops != NULL:
            free(self.ops)

    def run(self, first_step, n_steps, lr, opt_step, epoch):
        """Train ``n_steps`` minibatches from ``first_step`` of epoch ``epoch``.

        ``opt_step`` is the optimizer's step count before the first of them.

        Returns
        -------
        (loss_sum, correct, steps_done, penalty_sum) : (float, int, int, float)
            ``loss_sum`` is the sum of batch-mean losses times batch sizes;
            ``correct`` counts the right argmax labels (label losses) or the
            right signs (binary cross-entropy); ``steps_done < n_steps``
            means that the epoch ended or that a non-finite loss stopped the
            run before that step's backward pass; ``penalty_sum`` is the sum
            of the steps' penalties times batch sizes with ``penalty="sample"``
            (else 0).

        Raises
        ------
        ValueError
            If a step lies before the epoch, ``perm`` (which the caller
            reshuffles) or the labels it picks are out of range, or a
            training BatchNorm would see a batch of one row; nothing has run
            then.
        MemoryError
            If a step's scratch memory cannot be had (the steps before it
            are done; that step has changed no parameter).
        """
        cdef double loss_sum = 0.0, penalty_sum = 0.0
        cdef long long correct = 0
        cdef long done = 0
        cdef long first, steps, t
        cdef uint64_t e
        cdef double rate
        first, steps, rate, t, e = run_args(self.spec, first_step, n_steps, lr,
                                            opt_step, epoch)
        self.oom = False
        with nogil:
            if self.is_float:
                done = self._run(<float*> NULL, first, steps, rate, t, e,
                                 &loss_sum, &correct, &penalty_sum)
            else:
                done = self._run(<double*> NULL, first, steps, rate, t, e,
                                 &loss_sum, &correct, &penalty_sum)
        if self.oom:
            raise MemoryError(f"TrainPlan.run: out of memory after {done} steps")
        return loss_sum, correct, done, penalty_sum

    cdef long _run(self, floating* dtype_tag, long first_step, long n_steps,
                   double lr, long opt_step, uint64_t epoch, double* loss_sum,
                   long long* correct, double* penalty_sum) noexcept nogil:
        """The step loop; ``dtype_tag`` (NULL) only selects float or double."""
        cdef long s, done = 0
        cdef Py_ssize_t start, k, i, j, w = self.t_width
        cdef int l
        cdef const floating* X = <const floating*> self.X
        cdef floating* Xb = <floating*> self.Xb
        cdef const floating* h
        cdef floating* d
        cdef double loss, weight_sum, penalty
        cdef floating* dOut = <floating*> self.dOut
        for s in range(first_step, first_step + n_steps):
            start = s * self.batch
            k = self.batch if start + self.batch <= self.n else self.n - start
            if k <= 0:
                break
            for i in range(k):
                j = self.perm[start + i]
                memcpy(Xb + i * self.d, X + j * self.d, self.d * sizeof(floating))
                if self.n_classes:
                    (<long long*> self.tb)[i] = (<long long*> self.target)[j]
                else:
                    memcpy((<floating*> self.tb) + i * w,
                           (<floating*> self.target) + j * w, w * sizeof(floating))
                if self.weights != NULL:
                    (<floating*> self.wb)[i] = (<floating*> self.weights)[j]
            h = Xb
            for l in range(self.n_ops):
                h = self._forward(&self.ops[l], h, k, epoch, s, l)
                if self.oom:
                    return done
            weight_sum = k
            if self.weights != NULL:
                loss = self._weighted_loss(<floating*> h, k, dOut, &weight_sum)
            else:
                loss = self._loss(<floating*> h, k, dOut)
            if self.loss_scale != 1.0:
                loss *= self.loss_scale
                for i in range(k * self.n_out):
                    dOut[i] = <floating> (dOut[i] * self.loss_scale)
            if not isfinite(loss):
                break
            loss_sum[0] += loss * k
            correct[0] += self._correct(<floating*> h, k)
            d = dOut
            penalty = 0.0
            for l in range(self.n_ops - 1, self.first_backward - 1, -1):
                d = self._backward(&self.ops[l], d, k, l > self.first_backward,
                                   weight_sum, &penalty)
                if self.oom:
                    return done
            if weight_sum > 0:
                penalty_sum[0] += penalty / weight_sum * k
            opt_step += 1
            if self.n_runs:
                if self.clip_norm > 0:
                    self._clip(<floating*> self.grads)
                self._update(<floating*> self.grads, lr, opt_step)
            done += 1
        return done

    cdef const floating* _forward(self, Op* o, const floating* X, Py_ssize_t k,
                                  uint64_t epoch, long step,
                                  int layer) noexcept nogil:
        """Layer ``o`` forward on the k rows of X; its output (X itself for a
        step that changes nothing). Sets ``oom`` if out of memory."""
        cdef floating* Y = <floating*> o.Y
        cdef Py_ssize_t i, n = k * o.n_in
        cdef floating* mask
        cdef fnn_stream st
        o.X = X
        if o.kind == K_DENSE:
            dense_forward_c(X, <floating*> o.W, <floating*> o.b, k, o.n_in,
                            o.n_out, o.act, o.alpha, Y, <floating*> o.Z)
        elif o.kind == K_ACTIVATION:
            act_forward(X, n, o.act, o.alpha, Y)
        elif o.kind == K_SOFTMAX:
            softmax_forward_c(X, k, o.n_in, o.temperature, Y)
        elif o.kind == K_DROPOUT:
            if not o.active:
                return X
            mask = <floating*> o.mask
            st = make_stream(self.key0, self.key1, epoch, step, layer)
            stream_dropout_mask(&st, 0, n, o.p, mask)
            for i in range(n):
                Y[i] = X[i] * mask[i]
        elif o.kind == K_NOISE:
            if not o.active:
                return X
            st = make_stream(self.key0, self.key1, epoch, step, layer)
            stream_gaussian_noise(&st, 0, n, o.std, X, Y)
        elif o.kind == K_BATCHNORM:
            if o.trainable:
                if bn_train_c(X, k, o.n_in, <floating*> o.W, <floating*> o.b,
                              o.eps, o.momentum, Y, <floating*> o.mean,
                              <floating*> o.invstd, <floating*> o.rm,
                              <floating*> o.rv) < 0:
                    self.oom = True
            elif bn_infer_c(X, k, o.n_in, <floating*> o.W, <floating*> o.b,
                            <floating*> o.rm, <floating*> o.rv, o.eps, Y) < 0:
                self.oom = True
        elif o.kind == K_PRELU:
            prelu_forward_c(X, <floating*> o.W, k, o.n_in, o.shared, Y)
        else:  # maxout
            dense_forward_c(X, <floating*> o.W, <floating*> o.b, k, o.n_in,
                            o.n_out * o.pieces, 0, 0.0, <floating*> o.Z,
                            <floating*> o.Z)
            maxout_forward_c(<floating*> o.Z, k, o.n_out, o.pieces, Y,
                             <int64_t*> o.argmax)
        return Y

    cdef floating* _backward(self, Op* o, floating* d, Py_ssize_t k,
                             bint need_dx, double weight_sum,
                             double* penalty) noexcept nogil:
        """Layer ``o`` backward from the gradient ``d`` of its output (which it
        may overwrite): its parameters' gradients, and the gradient of its
        input (``d`` itself for a step that changes nothing), or NULL when
        not needed. Sets ``oom`` if out of memory. With ``penalty="sample"``
        the l1/l2 terms are divided by ``weight_sum`` and the penalty of the
        weights is added to ``penalty``."""
        cdef floating* dX = <floating*> o.dX if need_dx else NULL
        cdef floating* mask
        cdef floating* W
        cdef floating* dW
        cdef floating* rv
        cdef floating* g
        cdef floating scale, l1, l2
        cdef double c1 = o.l1, c2 = o.l2, sq = 0.0, ab = 0.0
        cdef Py_ssize_t i, j, n = k * o.n_in, m
        if o.kind == K_DENSE:
            if dense_backward_c(<const floating*> o.X, <floating*> o.W,
                                <floating*> o.Z, <floating*> o.Y, d, k, o.n_in,
                                o.n_out, o.act, o.alpha, dX,
                                <floating*> o.dW if o.trainable else NULL,
                                <floating*> o.db if o.trainable else NULL) < 0:
                self.oom = True
                return NULL
            if o.trainable and (o.l1 != 0 or o.l2 != 0):
                # dW += l2 W + l1 sign(W), in the dtype, in that order
                W, dW = <floating*> o.W, <floating*> o.dW
                m = o.n_in * o.n_out
                if self.per_sample:
                    for i in range(m):
                        sq += <double> W[i] * W[i]
                        ab += W[i] if W[i] >= 0 else -W[i]
                    penalty[0] += 0.5 * c2 * sq + c1 * ab
                    if weight_sum > 0:
                        c1, c2 = c1 / weight_sum, c2 / weight_sum
                    else:
                        c1, c2 = 0.0, 0.0
                l1, l2 = <floating> c1, <floating> c2
                if c2 != 0:
                    for i in range(m):
                        dW[i] = dW[i] + W[i] * l2
                if c1 != 0:
                    for i in range(m):
                        dW[i] = dW[i] + ((W[i] > 0) - (W[i] < 0)) * l1
        elif o.kind == K_ACTIVATION:
            act_backward(<const floating*> o.X, <floating*> o.Y, d, n, o.act,
                         o.alpha, dX)
        elif o.kind == K_SOFTMAX:
            softmax_backward_c(<floating*> o.Y, d, k, o.n_in, o.temperature, dX)
        elif o.kind == K_DROPOUT:
            if not o.active:
                return d
            mask = <floating*> o.mask
            for i in range(n):
                dX[i] = d[i] * mask[i]
        elif o.kind == K_NOISE:
            return d
        elif o.kind == K_BATCHNORM:
            if o.trainable:
                if bn_backward_c(<const floating*> o.X, d, k, o.n_in,
                                 <floating*> o.W, <floating*> o.mean,
                                 <floating*> o.invstd, <floating*> o.dX,
                                 <floating*> o.dW, <floating*> o.db) < 0:
                    self.oom = True
                    return NULL
            elif need_dx:
                # Frozen: y = x * scale + shift, scale = gamma / sqrt(var + eps)
                W, rv = <floating*> o.W, <floating*> o.rv
                for j in range(o.n_in):
                    scale = W[j] / vsqrt(rv[j] + <floating> o.eps)
                    for i in range(k):
                        dX[i * o.n_in + j] = d[i * o.n_in + j] * scale
        elif o.kind == K_PRELU:
            prelu_backward_c(<const floating*> o.X, <floating*> o.W, d, k, o.n_in,
                             o.shared, <floating*> o.dX, <floating*> o.dW)
        else:  # maxout
            m = o.n_out * o.pieces
            maxout_backward_c(d, <int64_t*> o.argmax, k, o.n_out, o.pieces,
                              <floating*> o.dZ)
            if dense_backward_c(<const floating*> o.X, <floating*> o.W, NULL, NULL,
                                <floating*> o.dZ, k, o.n_in, m, 0, 0.0, dX,
                                <floating*> o.dW if o.trainable else NULL,
                                <floating*> o.db if o.trainable else NULL) < 0:
                self.oom = True
                return NULL
        return dX

    cdef double _loss(self, floating* out, Py_ssize_t k,
                      floating* dOut) noexcept nogil:
        if self.loss == 0:
            return softmax_cross_entropy_c(out, <int64_t*> self.tb, k, self.n_out,
                                           dOut)
        if self.loss == 1:
            return hinge_c(out, <int64_t*> self.tb, k, self.n_out, dOut)
        return pointwise_c(out, <floating*> self.tb, k * self.n_out, self.pointwise,
                           self.delta, dOut)

    cdef double _weighted_loss(self, floating* out, Py_ssize_t k, floating* dOut,
                               double* weight_sum) noexcept nogil:
        """The weighted mean of the rows' losses, row by row with the loss
        kernels; each row's gradient scaled by its weight over the sum."""
        cdef Py_ssize_t i, j, m = self.n_out
        cdef const floating* w = <const floating*> self.wb
        cdef double total = 0.0, row, S = 0.0, c
        for i in range(k):
            S += w[i]
        weight_sum[0] = S
        if S == 0:
            memset(dOut, 0, k * m * sizeof(floating))
            return 0.0
        for i in range(k):
            if self.loss == 0:
                row = softmax_cross_entropy_c(out + i * m, (<int64_t*> self.tb) + i,
                                              1, m, dOut + i * m)
            elif self.loss == 1:
                row = hinge_c(out + i * m, (<int64_t*> self.tb) + i, 1, m,
                              dOut + i * m)
            else:
                row = pointwise_c(out + i * m, (<floating*> self.tb) + i * m, m,
                                  self.pointwise, self.delta, dOut + i * m)
            total += w[i] * row
            c = w[i] / S
            for j in range(m):
                dOut[i * m + j] = <floating> (dOut[i * m + j] * c)
        return total / S

    cdef long long _correct(self, floating* out, Py_ssize_t k) noexcept nogil:
        cdef Py_ssize_t i, j, best
        cdef long long hits = 0
        cdef long long* labels = <long long*> self.tb
        cdef floating* values = <floating*> self.tb
        cdef floating* row
        if self.n_classes:
            for i in range(k):
                row = out + i * self.n_out
                best = 0
                for j in range(1, self.n_out):
                    if row[j] > row[best]:
                        best = j
                hits += best == labels[i]
        elif self.pointwise == LOSS_BCE:
            for i in range(k * self.n_out):
                hits += (out[i] > 0) == (values[i] > 0.5)
        return hits

    cdef void _clip(self, floating* g) noexcept nogil:
        """Global-norm clipping over every run (torch's clip_grad_norm_)."""
        cdef Py_ssize_t r, i
        cdef double total = 0.0, coef
        for r in range(self.n_runs):
            total += sumsq_c(g + self.runs[2 * r],
                             self.runs[2 * r + 1] - self.runs[2 * r])
        coef = self.clip_norm / (sqrt(total) + 1e-6)
        if not coef >= 1.0:  # a NaN norm makes every gradient NaN, as torch
            for r in range(self.n_runs):
                for i in range(self.runs[2 * r], self.runs[2 * r + 1]):
                    g[i] = <floating> (g[i] * coef)

    cdef void _update(self, floating* g, double lr, long t) noexcept nogil:
        cdef Py_ssize_t r, a, n
        cdef floating* p = <floating*> self.params
        cdef floating* s0 = <floating*> self.s0
        cdef floating* s1 = <floating*> self.s1
        cdef floating* s2 = <floating*> self.s2
        cdef double mu = self.scalars[0] if self.scalars != NULL else 0.0
        cdef double mu_next = mu
        for r in range(self.n_runs):
            a = self.runs[2 * r]
            n = self.runs[2 * r + 1] - a
            if self.optimizer == O_SGD:
                sgd_c(g + a, n, lr, self.h[0], self.h[1], self.h[2] != 0, self.h[3],
                      t, p + a, s0 + a if s0 != NULL else NULL, self.h[4] != 0)
            elif self.optimizer == O_ADAGRAD:
                adagrad_c(g + a, n, lr, self.h[0], self.h[1], self.h[2], self.h[3],
                          t, p + a, s0 + a)
            elif self.optimizer == O_RMSPROP:
                rmsprop_c(g + a, n, lr, self.h[0], self.h[1], self.h[2], self.h[3],
                          self.h[4] != 0, p + a, s0 + a,
                          s1 + a if s1 != NULL else NULL,
                          s2 + a if s2 != NULL else NULL)
            elif self.optimizer == O_ADADELTA:
                adadelta_c(g + a, n, lr, self.h[0], self.h[1], self.h[2], p + a,
                           s0 + a, s1 + a)
            elif self.optimizer == O_ADAM or self.optimizer == O_ADAMW:
                adam_c(g + a, n, lr, self.h[0], self.h[1], self.h[2], self.h[3],
                       self.optimizer == O_ADAMW, self.h[4] != 0, t, p + a, s0 + a,
                       s1 + a, s2 + a if s2 != NULL else NULL, self.h[5] != 0)
            else:  # nadam: every run starts from the same mu_product
                mu_next = nadam_c(g + a, n, lr, self.h[0], self.h[1], self.h[2],
                                  self.h[3], self.h[4], t, mu, p + a, s0 + a, s1 + a)
        if self.scalars != NULL:
            self.scalars[0] = mu_next
