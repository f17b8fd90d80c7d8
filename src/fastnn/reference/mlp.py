"""NumPy twin of :mod:`fastnn._kernels.mlp`: the same step loop, kernel by
kernel, with the reference implementations."""

import math

import numpy as np

from fastnn._kernels._checks import plan_args, plan_run_args
from fastnn.reference import dense, gather, losses, optim
from fastnn.reference.activations import _ACTIVATIONS, NEEDS_INPUT

__all__ = ["MLPPlan"]

_LOSSES = {"softmax_cross_entropy": losses.softmax_cross_entropy_forward_backward,
           "hinge": losses.hinge_forward_backward,
           "mse": losses.mse_forward_backward,
           "mae": losses.mae_forward_backward,
           "huber": losses.huber_forward_backward,
           "binary_cross_entropy": losses.binary_cross_entropy_forward_backward}
_OPTIMIZERS = {"sgd": optim.sgd_update, "adam": optim.adam_update,
               "adamw": optim.adamw_update}


class MLPPlan:
    """See :class:`fastnn._kernels.mlp.MLPPlan`; same arguments and results."""

    def __init__(self, X, target, perm, layers, Xb, tb, dOut, loss, delta,
                 optimizer, hyper, params, grads, state):
        plan_args(X, target, perm, layers, Xb, tb, dOut, loss, delta, optimizer,
                  hyper, params, grads, state, _ACTIVATIONS, NEEDS_INPUT, _LOSSES,
                  _OPTIMIZERS)
        self.X, self.target, self.perm = X, target, perm
        self.layers = layers
        self.Xb, self.tb, self.dOut = Xb, tb, dOut
        self.loss, self.delta = loss, delta
        self.optimizer, self.hyper = optimizer, tuple(hyper)
        self.params, self.grads, self.state = params, grads, tuple(state)

    def _loss(self, out, t, d):
        if self.loss == "huber":
            return losses.huber_forward_backward(out, t, self.delta, d)
        return _LOSSES[self.loss](out, t, d)

    def _correct(self, out, t):
        if self.loss in ("softmax_cross_entropy", "hinge"):
            return int(np.count_nonzero(np.argmax(out, axis=1) == t))
        if self.loss == "binary_cross_entropy":
            return int(np.count_nonzero((out > 0) == (t > 0.5)))
        return 0

    def _update(self, lr, step):
        if self.optimizer == "sgd":
            momentum, dampening, nesterov, wd = self.hyper[:4]
            optim.sgd_update(self.grads, lr, momentum, dampening, bool(nesterov), wd,
                             step, self.params, self.state[0])
            return
        beta1, beta2, eps, wd, amsgrad = self.hyper[:5]
        update = optim.adamw_update if self.optimizer == "adamw" else optim.adam_update
        m, v = self.state[0], self.state[1]
        vmax = self.state[2] if len(self.state) > 2 and self.state[2] is not None else v
        update(self.grads, lr, beta1, beta2, eps, wd, bool(amsgrad), step, self.params,
               m, v, vmax)

    def run(self, first_step, n_steps, lr, opt_step):
        """Train ``n_steps`` minibatches; returns (loss_sum, correct, steps_done)."""
        loss_sum, correct, done = 0.0, 0, 0
        batch, n = self.Xb.shape[0], self.X.shape[0]
        labels = self.loss in ("softmax_cross_entropy", "hinge")
        plan_run_args(first_step, n_steps, batch, self.perm, self.target,
                      self.layers[-1][0].shape[0] if labels else 0)
        for s in range(first_step, first_step + n_steps):
            start = s * batch
            k = min(batch, n - start)
            if k <= 0:
                break
            idx = self.perm[start:start + k]
            Xb, tb, dOut = self.Xb[:k], self.tb[:k], self.dOut[:k]
            gather.gather_rows(self.X, idx, Xb)
            if self.target.ndim == 1:
                gather.gather_labels(self.target, idx, tb)
            else:
                gather.gather_rows(self.target, idx, tb)
            H = Xb
            inputs = []
            for W, b, _, _, act, alpha, Y, Z, _ in self.layers:
                inputs.append(H)
                dense.dense_forward(H, W, b, act, alpha, Y[:k],
                                    None if Z is None else Z[:k])
                H = Y[:k]
            loss = self._loss(H, tb, dOut)
            if not math.isfinite(loss):
                break
            loss_sum += loss * k
            correct += self._correct(H, tb)
            d = dOut
            for layer, X_in in zip(reversed(self.layers), reversed(inputs)):
                W, _, dW, db, act, alpha, Y, Z, dX = layer
                dense.dense_backward(X_in, W, None if Z is None else Z[:k], Y[:k], d,
                                     act, alpha, None if dX is None else dX[:k], dW,
                                     db)
                d = None if dX is None else dX[:k]
            opt_step += 1
            self._update(lr, opt_step)
            done += 1
        return loss_sum, correct, done
