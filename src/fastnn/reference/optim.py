"""NumPy twin of :mod:`fastnn._kernels.optim`: torch.optim's single-tensor
algorithms, written out with whole-array operations."""

import numpy as np

from fastnn._kernels._checks import grad_args, update_args

__all__ = [
    "adadelta_update", "adagrad_update", "adam_update", "adamw_update",
    "clip_grad_norm", "global_norm", "nadam_update", "rmsprop_update", "sgd_update",
]


def sgd_update(grad, lr, momentum, dampening, nesterov, weight_decay, step, param,
               momentum_buf, velocity=False):
    """g = grad + wd p; buf = g (step 1) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (nesterov) or buf; p -= lr g. ``velocity``:
    v = momentum v - lr g; p += momentum v - lr g (nesterov) or v."""
    update_args(grad, param, [("momentum_buf", momentum_buf, momentum != 0)])
    g = grad + weight_decay * param
    if momentum != 0 and velocity:
        momentum_buf[...] = momentum * momentum_buf - lr * g
        param += momentum * momentum_buf - lr * g if nesterov else momentum_buf
        return
    if momentum != 0:
        if step == 1:
            momentum_buf[...] = g
        else:
            momentum_buf[...] = momentum * momentum_buf + (1 - dampening) * g
        g = g + momentum * momentum_buf if nesterov else momentum_buf
    param -= lr * g


def adagrad_update(grad, lr, lr_decay, weight_decay, eps, decay, step, param,
                   state_sum):
    """clr = lr / (1 + (step - 1) lr_decay); sum = decay sum + g^2;
    p -= clr g / (sqrt(sum) + eps)."""
    update_args(grad, param, [("state_sum", state_sum, True)])
    clr = lr / (1 + (step - 1) * lr_decay)
    g = grad + weight_decay * param
    state_sum[...] = decay * state_sum + g * g
    param -= clr * g / (np.sqrt(state_sum) + eps)


def rmsprop_update(grad, lr, alpha, eps, weight_decay, momentum, centered, param,
                   square_avg, momentum_buf, grad_avg):
    """v = alpha v + (1 - alpha) g^2; avg = sqrt(v [- ga^2]) + eps; step on g/avg."""
    update_args(grad, param, [("square_avg", square_avg, True),
                              ("momentum_buf", momentum_buf, momentum > 0),
                              ("grad_avg", grad_avg, centered)])
    g = grad + weight_decay * param
    square_avg[...] = alpha * square_avg + (1 - alpha) * g * g
    if centered:
        grad_avg[...] = grad_avg + (1 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buf[...] = momentum * momentum_buf + g / avg
        param -= lr * momentum_buf
    else:
        param -= lr * g / avg


def adadelta_update(grad, lr, rho, eps, weight_decay, param, square_avg, acc_delta):
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1 - rho) d^2; p -= lr d."""
    update_args(grad, param, [("square_avg", square_avg, True),
                              ("acc_delta", acc_delta, True)])
    g = grad + weight_decay * param
    square_avg[...] = rho * square_avg + (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta[...] = rho * acc_delta + (1 - rho) * delta * delta
    param -= lr * delta


def _adam(grad, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step,
          param, exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected=False):
    update_args(grad, param, [("exp_avg", exp_avg, True),
                              ("exp_avg_sq", exp_avg_sq, True),
                              ("max_exp_avg_sq", max_exp_avg_sq, amsgrad)])
    if decoupled:
        param *= 1 - lr * weight_decay
        g = grad
    else:
        g = grad + weight_decay * param
    exp_avg[...] = exp_avg + (1 - beta1) * (g - exp_avg)
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g * g
    v = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    bc1 = 1 - beta1 ** step
    bc2_sqrt = np.sqrt(1 - beta2 ** step)
    if eps_uncorrected:  # scikit-learn's form
        param -= lr * bc2_sqrt / bc1 * exp_avg / (np.sqrt(v) + eps)
    else:
        param -= lr / bc1 * exp_avg / (np.sqrt(v) / bc2_sqrt + eps)


def adam_update(grad, lr, beta1, beta2, eps, weight_decay, amsgrad, step, param,
                exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected=False):
    """torch Adam: m, v moments; p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)
    (``eps_uncorrected``: p -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps))."""
    _adam(grad, lr, beta1, beta2, eps, weight_decay, False, amsgrad, step, param,
          exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected)


def adamw_update(grad, lr, beta1, beta2, eps, weight_decay, amsgrad, step, param,
                 exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected=False):
    """torch AdamW: p *= 1 - lr wd, then the Adam step."""
    _adam(grad, lr, beta1, beta2, eps, weight_decay, True, amsgrad, step, param,
          exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected)


def nadam_update(grad, lr, beta1, beta2, eps, weight_decay, momentum_decay, step,
                 mu_product, param, exp_avg, exp_avg_sq):
    """torch NAdam; returns the new mu_product."""
    update_args(grad, param, [("exp_avg", exp_avg, True),
                              ("exp_avg_sq", exp_avg_sq, True)])
    mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    g = grad + weight_decay * param
    exp_avg[...] = exp_avg + (1 - beta1) * (g - exp_avg)
    exp_avg_sq[...] = beta2 * exp_avg_sq + (1 - beta2) * g * g
    denom = np.sqrt(exp_avg_sq / (1 - beta2 ** step)) + eps
    param -= lr * (1 - mu) / (1 - mu_product) * g / denom
    param -= lr * mu_next / (1 - mu_product * mu_next) * exp_avg / denom
    return mu_product


def global_norm(grad):
    """sqrt(sum grad^2) in double."""
    grad_args(grad, False)
    g = grad.astype(np.float64)
    return float(np.sqrt(np.dot(g, g)))


def clip_grad_norm(grad, max_norm):
    """grad *= max_norm / (||grad|| + 1e-6) when that is < 1; returns ||grad||."""
    grad_args(grad, True)
    total = global_norm(grad)
    coef = max_norm / (total + 1e-6)
    if not coef >= 1:  # NaN norm: NaN everywhere, as torch
        grad *= coef
    return total
