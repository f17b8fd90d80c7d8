"""NumPy twin of :mod:`fastnn._kernels.plan`: the same training step, layer
by layer, with the reference kernels. It is the readable definition of the
step and the oracle of the compiled plan; see there for the arguments."""

import math

import numpy as np

from fastnn._kernels._plan_args import plan_args, run_args
from fastnn.reference import activations, batchnorm, dense, gather, losses, optim
from fastnn.reference.random import dropout_mask_philox, gaussian_noise_philox

__all__ = ["TrainPlan"]

_LOSSES = {"softmax_cross_entropy": losses.softmax_cross_entropy_forward_backward,
           "hinge": losses.hinge_forward_backward,
           "mse": losses.mse_forward_backward,
           "mae": losses.mae_forward_backward,
           "binary_cross_entropy": losses.binary_cross_entropy_forward_backward}


class TrainPlan:
    """See :class:`fastnn._kernels.plan.TrainPlan`; same arguments and results."""

    def __init__(self, X, target, perm, layers, loss, optimizer, params, grads,
                 runs, batch, seed, sample_weight=None, penalty="sum"):
        self.spec = plan_args(X, target, perm, layers, loss, optimizer, params,
                              grads, runs, batch, seed, sample_weight, penalty)

    # -- forward and backward of one layer ------------------------------------
    def _forward(self, i, op, X, k, epoch, step):
        a, v = op.arrays, op.values
        op.X = X
        Y = a["Y"][:k]
        if op.kind == "dense":
            Z = None if a["Z"] is None else a["Z"][:k]
            dense.dense_forward(X, a["weight"], a["bias"], v["activation"],
                                v["alpha"], Y, Z)
        elif op.kind == "activation":
            activations.activation_forward(X, v["activation"], v["alpha"], Y)
        elif op.kind == "softmax":
            activations.softmax_forward(X, v["temperature"], Y)
        elif op.kind == "dropout":
            if v["p"] == 0:
                return X
            mask = a["mask"][:k]
            dropout_mask_philox(self.spec.seed, epoch, step, i, v["p"], mask)
            np.multiply(X, mask, out=Y)
        elif op.kind == "noise":
            if v["std"] == 0:
                return X
            gaussian_noise_philox(self.spec.seed, epoch, step, i, v["std"], X, Y)
        elif op.kind == "batchnorm":
            if v["trainable"]:
                batchnorm.batchnorm_forward_train(
                    X, a["weight"], a["bias"], v["eps"], v["momentum"], Y,
                    a["mean"], a["invstd"], a["running_mean"], a["running_var"])
            else:
                batchnorm.batchnorm_forward_infer(
                    X, a["weight"], a["bias"], a["running_mean"],
                    a["running_var"], v["eps"], Y)
        elif op.kind == "prelu":
            activations.prelu_forward(X, a["weight"], Y)
        else:  # maxout
            Z = a["Z"][:k]
            dense.dense_forward(X, a["weight"], a["bias"], "identity", 0.0, Z)
            activations.maxout_forward(Z, v["pieces"], Y, a["argmax"][:k])
        return Y

    def _backward(self, op, d, k, need_dX, weight_sum):
        """The gradient into ``op``'s parameters; returns its input's (or None)
        and adds the penalty of its weights (``penalty="sample"``) to
        ``self.penalty``."""
        a, v = op.arrays, op.values
        dX = a["dX"][:k] if need_dX else None
        if op.kind == "dense":
            t = v["trainable"]
            Z = None if a["Z"] is None else a["Z"][:k]
            dense.dense_backward(op.X, a["weight"], Z, a["Y"][:k], d,
                                 v["activation"], v["alpha"], dX,
                                 a["grad_weight"] if t else None,
                                 a["grad_bias"] if t else None)
            if t and (v["l1"] or v["l2"]):
                self._penalty_gradient(a["weight"], a["grad_weight"], v, weight_sum)
        elif op.kind == "activation":
            activations.activation_backward(op.X, a["Y"][:k], d, v["activation"],
                                            v["alpha"], dX)
        elif op.kind == "softmax":
            activations.softmax_backward(a["Y"][:k], d, v["temperature"], dX)
        elif op.kind == "dropout":
            if v["p"] == 0:
                return d
            np.multiply(d, a["mask"][:k], out=dX)
        elif op.kind == "noise":
            return d
        elif op.kind == "batchnorm":
            if v["trainable"]:
                out = dX if dX is not None else a["dX"][:k]
                batchnorm.batchnorm_backward(op.X, d, a["weight"], a["mean"],
                                             a["invstd"], out, a["grad_weight"],
                                             a["grad_bias"])
            elif need_dX:
                # Frozen: y = x * scale + shift with constant scale.
                scale = a["weight"] / np.sqrt(a["running_var"]
                                              + a["running_var"].dtype.type(v["eps"]))
                np.multiply(d, scale, out=dX)
        elif op.kind == "prelu":
            out = dX if dX is not None else a["dX"][:k]
            activations.prelu_backward(op.X, a["weight"], d, out, a["grad_weight"])
        else:  # maxout
            t = v["trainable"]
            dZ = a["dZ"][:k]
            activations.maxout_backward(d, a["argmax"][:k], v["pieces"], dZ)
            dense.dense_backward(op.X, a["weight"], None, None, dZ, "identity", 0.0,
                                 dX, a["grad_weight"] if t else None,
                                 a["grad_bias"] if t else None)
        return dX

    def _penalty_gradient(self, W, dW, v, weight_sum):
        """dW += l2 W + l1 sign(W), in the weights' dtype, in that order; with
        ``penalty="sample"``, l1 and l2 over the step's weight sum."""
        dt = W.dtype.type
        l1, l2 = v["l1"], v["l2"]
        if self.spec.per_sample:
            w = W.astype(np.float64).ravel()
            self.penalty += 0.5 * l2 * float(np.dot(w, w)) + l1 * float(
                np.abs(w).sum())
            l1, l2 = ((l1 / weight_sum, l2 / weight_sum) if weight_sum > 0
                      else (0.0, 0.0))
        if l2:
            dW += W * dt(l2)
        if l1:
            dW += np.sign(W) * dt(l1)

    # -- loss and update -----------------------------------------------------
    def _loss(self, out, tb, dOut):
        s = self.spec
        if s.loss == "huber":
            return losses.huber_forward_backward(out, tb, s.delta, dOut)
        return _LOSSES[s.loss](out, tb, dOut)

    def _weighted_loss(self, out, tb, dOut, w):
        """The weighted mean of the rows' losses (row by row with the loss
        kernels) and its weight sum; each row's gradient scaled by its
        weight over the sum."""
        S = float(np.sum(w.astype(np.float64)))
        if S == 0:
            dOut[...] = 0
            return 0.0, 0.0
        total = 0.0
        for i in range(out.shape[0]):
            row = self._loss(out[i:i + 1], tb[i:i + 1], dOut[i:i + 1])
            total += float(w[i]) * row
            c = float(w[i]) / S
            dOut[i] = (dOut[i].astype(np.float64) * c).astype(dOut.dtype)
        return total / S, S

    def _correct(self, out, tb):
        s = self.spec
        if s.n_classes:
            return int(np.count_nonzero(np.argmax(out, axis=1) == tb))
        if s.loss == "binary_cross_entropy":
            return int(np.count_nonzero((out > 0) == (tb > 0.5)))
        return 0

    def _clip(self):
        """Global-norm clipping over every trainable run, as torch's
        ``clip_grad_norm_``: the sum of squares in float64, run by run."""
        s = self.spec
        total = 0.0
        for start, stop in s.runs.tolist():
            g = s.grads[start:stop].astype(np.float64)
            total += float(np.dot(g, g))
        coef = s.clip_norm / (math.sqrt(total) + 1e-6)
        if not coef >= 1:  # a NaN norm makes every gradient NaN, as torch
            for start, stop in s.runs.tolist():
                g = s.grads[start:stop]
                g[...] = (g.astype(np.float64) * coef).astype(g.dtype)

    def _update(self, lr, t):
        s = self.spec
        h = s.hyper + (0.0,)
        mu = float(s.scalars[0]) if s.scalars is not None else 0.0
        mu_next = mu
        for start, stop in s.runs.tolist():
            g, p = s.grads[start:stop], s.params[start:stop]
            st = [None if x is None else x[start:stop] for x in s.state]
            if s.optimizer == "sgd":
                optim.sgd_update(g, lr, h[0], h[1], bool(h[2]), h[3], t, p, st[0],
                                 velocity=bool(h[4]))
            elif s.optimizer == "adagrad":
                optim.adagrad_update(g, lr, h[0], h[1], h[2], h[3], t, p, st[0])
            elif s.optimizer == "rmsprop":
                optim.rmsprop_update(g, lr, h[0], h[1], h[2], h[3], bool(h[4]), p,
                                     st[0], st[1], st[2])
            elif s.optimizer == "adadelta":
                optim.adadelta_update(g, lr, h[0], h[1], h[2], p, st[0], st[1])
            elif s.optimizer in ("adam", "adamw"):
                update = (optim.adamw_update if s.optimizer == "adamw"
                          else optim.adam_update)
                update(g, lr, h[0], h[1], h[2], h[3], bool(h[4]), t, p, st[0], st[1],
                       st[2] if h[4] else st[1], eps_uncorrected=bool(h[5]))
            else:  # nadam: every run starts from the same mu_product
                mu_next = optim.nadam_update(g, lr, h[0], h[1], h[2], h[3], h[4], t,
                                             mu, p, st[0], st[1])
        if s.scalars is not None:
            s.scalars[0] = mu_next

    # -- the step loop -----------------------------------------------------------
    def run(self, first_step, n_steps, lr, opt_step, epoch):
        """Train ``n_steps`` minibatches from ``first_step`` of epoch ``epoch``;
        returns (loss_sum, correct, steps_done, penalty_sum). See the compiled
        plan."""
        s = self.spec
        first_step, n_steps, lr, opt_step, epoch = run_args(
            s, first_step, n_steps, lr, opt_step, epoch)
        loss_sum, correct, done, penalty_sum = 0.0, 0, 0, 0.0
        n, batch = s.X.shape[0], s.batch
        for step in range(first_step, first_step + n_steps):
            start = step * batch
            k = min(batch, n - start)
            if k <= 0:
                break
            idx = s.perm[start:start + k]
            Xb, tb, dOut = s.Xb[:k], s.tb[:k], s.dOut[:k]
            gather.gather_rows(s.X, idx, Xb)
            if tb.ndim == 1:
                gather.gather_labels(s.target, idx, tb)
            else:
                gather.gather_rows(s.target, idx, tb)
            H = Xb
            for i, op in enumerate(s.ops):
                H = self._forward(i, op, H, k, epoch, step)
            if s.sample_weight is not None:
                loss, weight_sum = self._weighted_loss(H, tb, dOut,
                                                       s.sample_weight[idx])
            else:
                loss, weight_sum = self._loss(H, tb, dOut), k
            if s.loss_scale != 1:
                loss *= s.loss_scale
                dOut[...] = (dOut.astype(np.float64) * s.loss_scale).astype(
                    dOut.dtype)
            if not math.isfinite(loss):
                break
            loss_sum += loss * k
            correct += self._correct(H, tb)
            d = dOut
            self.penalty = 0.0
            for i in range(len(s.ops) - 1, s.first_backward - 1, -1):
                d = self._backward(s.ops[i], d, k, i > s.first_backward,
                                   weight_sum)
            if weight_sum > 0:
                penalty_sum += self.penalty / weight_sum * k
            opt_step += 1
            if s.runs.shape[0]:
                if s.clip_norm:
                    self._clip()
                self._update(lr, opt_step)
            done += 1
        return loss_sum, correct, done, penalty_sum
