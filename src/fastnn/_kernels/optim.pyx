"""In-place optimizer updates, one pass over each flat parameter array.

Each kernel follows torch.optim's documented single-tensor algorithm, reading
and writing every element of the parameter and its state once. Element math
runs in the arrays' dtype, as torch's does, so that the float32 loops
vectorize at full width (SGD's, which is all multiply-adds, runs in double);
step constants are formed in double first. ``grad`` is never written
(except by ``clip_grad_norm``). ``step`` is the 1-based step count after
incrementing, as in torch. Precondition: all arrays share one length and dtype.
"""
from cython cimport floating
from libc.math cimport sqrt

from fastnn._kernels.vecmath cimport vsqrt

import numpy as np

from fastnn._kernels._checks import grad_args, update_args

__all__ = [
    "adadelta_update", "adagrad_update", "adam_update", "adamw_update",
    "clip_grad_norm", "global_norm", "nadam_update", "rmsprop_update", "sgd_update",
]


cdef inline const floating* _cp(const floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline floating* _p(floating[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL


cdef void sgd_c(const floating* g, Py_ssize_t n, double lr, double momentum,
                double dampening, bint nesterov, double weight_decay, long step,
                floating* p, floating* buf, bint velocity=False) noexcept nogil:
    """g = grad + wd p; buf = g (step 1) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (nesterov) or buf; p -= lr g.

    ``velocity``: the buffer is scikit-learn's velocity, which carries the
    learning rate: v = momentum v - lr g; p += momentum v - lr g (nesterov)
    or v (equal to the above for a constant lr; dampening is not used)."""
    cdef Py_ssize_t i
    cdef double gi, bi
    for i in range(n):
        gi = g[i] + weight_decay * p[i]
        if momentum != 0 and velocity:
            bi = momentum * buf[i] - lr * gi
            buf[i] = <floating> bi
            p[i] = <floating> (p[i] + (momentum * bi - lr * gi if nesterov else bi))
            continue
        if momentum != 0:
            if step == 1:
                bi = gi
            else:
                bi = momentum * buf[i] + (1.0 - dampening) * gi
            buf[i] = <floating> bi
            gi = gi + momentum * bi if nesterov else bi
        p[i] = <floating> (p[i] - lr * gi)


def _sgd_update(grad, double lr, double momentum, double dampening, bint nesterov,
               double weight_decay, long step, floating[::1] param,
               floating[::1] momentum_buf, bint velocity=False):
    """g = grad + wd p; buf = g (step 1) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (nesterov) or buf; p -= lr g."""
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    with nogil:
        sgd_c(_cp(G), param.shape[0], lr, momentum, dampening, nesterov,
              weight_decay, step, _p(param),
              _p(momentum_buf) if momentum != 0 else NULL, velocity)


cdef void adagrad_c(const floating* g, Py_ssize_t n, double lr, double lr_decay,
                    double weight_decay, double eps, double decay, long step,
                    floating* p, floating* s) noexcept nogil:
    """clr = lr / (1 + (step - 1) lr_decay); g = grad + wd p;
    sum = decay sum + g^2; p -= clr g / (sqrt(sum) + eps)."""
    cdef Py_ssize_t i
    cdef floating clr = <floating> (lr / (1.0 + (step - 1) * lr_decay))
    cdef floating wd = <floating> weight_decay, dec = <floating> decay
    cdef floating e = <floating> eps, gi, si
    for i in range(n):
        gi = g[i] + wd * p[i]
        si = dec * s[i] + gi * gi
        s[i] = si
        p[i] = p[i] - clr * gi / (vsqrt(si) + e)


def _adagrad_update(grad, double lr, double lr_decay, double weight_decay,
                   double eps, double decay, long step, floating[::1] param,
                   floating[::1] state_sum):
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    with nogil:
        adagrad_c(_cp(G), param.shape[0], lr, lr_decay, weight_decay, eps, decay,
                  step, _p(param), _p(state_sum))


cdef void rmsprop_plain(const floating* g, Py_ssize_t n, floating a, floating a1,
                        floating wd, floating e, floating rate, floating* p,
                        floating* v) noexcept nogil:
    """RMSProp without centering or momentum:
    v = a v + (1 - a) g^2; p -= lr g / (sqrt(v) + eps)."""
    cdef Py_ssize_t i
    cdef floating gi, vi
    for i in range(n):
        gi = g[i] + wd * p[i]
        vi = a * v[i] + a1 * gi * gi
        v[i] = vi
        p[i] = p[i] - rate * gi / (vsqrt(vi) + e)


cdef void rmsprop_c(const floating* g, Py_ssize_t n, double lr, double alpha,
                    double eps, double weight_decay, double momentum,
                    bint centered, floating* p, floating* v, floating* buf,
                    floating* ga) noexcept nogil:
    """v = alpha v + (1 - alpha) g^2; avg = sqrt(v - ga^2 if centered else v) + eps;
    buf = momentum buf + g / avg, p -= lr buf (momentum > 0) else p -= lr g / avg.
    ``buf`` is read only when momentum > 0, ``ga`` only when centered."""
    cdef Py_ssize_t i
    cdef floating a = <floating> alpha, a1 = <floating> (1.0 - alpha)
    cdef floating wd = <floating> weight_decay, e = <floating> eps
    cdef floating mom = <floating> momentum, rate = <floating> lr
    cdef floating gi, vi, gai, avg, bi
    if not centered and momentum <= 0:
        # The default: a loop over three arrays only, which vectorizes (with
        # all five, the compiler's overlap checks make it give up).
        rmsprop_plain(g, n, a, a1, wd, e, rate, p, v)
        return
    for i in range(n):
        gi = g[i] + wd * p[i]
        vi = a * v[i] + a1 * gi * gi
        v[i] = vi
        if centered:
            gai = ga[i] + a1 * (gi - ga[i])
            ga[i] = gai
            avg = vsqrt(vi - gai * gai) + e
        else:
            avg = vsqrt(vi) + e
        if momentum > 0:
            bi = mom * buf[i] + gi / avg
            buf[i] = bi
            p[i] = p[i] - rate * bi
        else:
            p[i] = p[i] - rate * gi / avg


def _rmsprop_update(grad, double lr, double alpha, double eps, double weight_decay,
                   double momentum, bint centered, floating[::1] param,
                   floating[::1] square_avg, floating[::1] momentum_buf,
                   floating[::1] grad_avg):
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    cdef floating* buf = NULL if momentum_buf is None else _p(momentum_buf)
    cdef floating* ga = NULL if grad_avg is None else _p(grad_avg)
    with nogil:
        rmsprop_c(_cp(G), param.shape[0], lr, alpha, eps, weight_decay, momentum,
                  centered, _p(param), _p(square_avg), buf, ga)


cdef void adadelta_c(const floating* g, Py_ssize_t n, double lr, double rho,
                     double eps, double weight_decay, floating* p, floating* v,
                     floating* u) noexcept nogil:
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1 - rho) d^2; p -= lr d."""
    cdef Py_ssize_t i
    cdef floating r = <floating> rho, r1 = <floating> (1.0 - rho)
    cdef floating wd = <floating> weight_decay, e = <floating> eps
    cdef floating rate = <floating> lr
    cdef floating gi, vi, di
    for i in range(n):
        gi = g[i] + wd * p[i]
        vi = r * v[i] + r1 * gi * gi
        v[i] = vi
        di = vsqrt(u[i] + e) / vsqrt(vi + e) * gi
        u[i] = r * u[i] + r1 * di * di
        p[i] = p[i] - rate * di


def _adadelta_update(grad, double lr, double rho, double eps, double weight_decay,
                    floating[::1] param, floating[::1] square_avg,
                    floating[::1] acc_delta):
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    with nogil:
        adadelta_c(_cp(G), param.shape[0], lr, rho, eps, weight_decay, _p(param),
                   _p(square_avg), _p(acc_delta))


cdef void adam_c(const floating* g, Py_ssize_t n, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bint decoupled,
                 bint amsgrad, long step, floating* p, floating* m, floating* v,
                 floating* vmax, bint eps_uncorrected=False) noexcept nogil:
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr / bc1 * m / (sqrt(v or max v) / sqrt(bc2) + eps).

    ``eps_uncorrected``: eps is added to the uncorrected sqrt(v), as in the
    efficient form of Kingma & Ba (section 2) and scikit-learn:
    p -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps).

    The element math runs in the arrays' dtype, as torch's does, so that the
    float32 loop vectorizes at full width; the step constants are formed in
    double first."""
    cdef Py_ssize_t i
    cdef floating step_size = <floating> (lr / (1.0 - beta1 ** step))
    cdef floating inv_bc2_sqrt = <floating> (1.0 / sqrt(1.0 - beta2 ** step))
    # decoupled (AdamW): p *= 1 - lr wd; coupled (Adam): g += wd p.
    cdef floating decay = <floating> (1.0 - lr * weight_decay) if decoupled else 1
    cdef floating wd = 0 if decoupled else <floating> weight_decay
    cdef floating b1c = <floating> (1.0 - beta1), b2 = <floating> beta2
    cdef floating b2c = <floating> (1.0 - beta2), e = <floating> eps
    cdef floating gi, mi, vi, pi
    if eps_uncorrected:
        step_size = <floating> (lr * sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step))
    for i in range(n):
        pi = p[i] * decay
        gi = g[i] + wd * pi
        mi = m[i] + b1c * (gi - m[i])
        vi = b2 * v[i] + b2c * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = vmax[i] if vmax[i] > vi else vi
            vmax[i] = vi
        if eps_uncorrected:
            p[i] = pi - step_size * mi / (vsqrt(vi) + e)
        else:
            p[i] = pi - step_size * mi / (vsqrt(vi) * inv_bc2_sqrt + e)


def _adam(grad, double lr, double beta1, double beta2, double eps,
          double weight_decay, bint decoupled, bint amsgrad, long step,
          floating[::1] param, floating[::1] exp_avg, floating[::1] exp_avg_sq,
          floating[::1] max_exp_avg_sq, bint eps_uncorrected=False):
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    with nogil:
        adam_c(_cp(G), param.shape[0], lr, beta1, beta2, eps, weight_decay,
               decoupled, amsgrad, step, _p(param), _p(exp_avg), _p(exp_avg_sq),
               _p(max_exp_avg_sq) if amsgrad else NULL, eps_uncorrected)


def _adam_checked(grad, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
                  step, param, exp_avg, exp_avg_sq, max_exp_avg_sq,
                  eps_uncorrected):
    update_args(grad, param, [("exp_avg", exp_avg, True),
                              ("exp_avg_sq", exp_avg_sq, True),
                              ("max_exp_avg_sq", max_exp_avg_sq, amsgrad)])
    _adam(grad, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step, param,
          exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else None,
          bool(eps_uncorrected))


def adam_update(grad, lr, beta1, beta2, eps, weight_decay, amsgrad, step, param,
                exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected=False):
    """torch Adam (coupled weight decay: g = grad + wd p):
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; vmax = max(vmax, v) (amsgrad);
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    Parameters
    ----------
    grad : ndarray of shape (n_params,)
    lr, beta1, beta2, eps, weight_decay : float
    amsgrad : bool
    step : int, 1-based
    param, exp_avg, exp_avg_sq, max_exp_avg_sq : ndarray of shape (n_params,)
        Updated in place (max_exp_avg_sq only with amsgrad).
    eps_uncorrected : bool
        Add eps to the uncorrected sqrt(v) (scikit-learn's form):
        p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
    """
    _adam_checked(grad, lr, beta1, beta2, eps, weight_decay, False, amsgrad, step,
                  param, exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected)


def adamw_update(grad, lr, beta1, beta2, eps, weight_decay, amsgrad, step, param,
                 exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected=False):
    """torch AdamW: p *= 1 - lr wd (decoupled), then the Adam step on grad."""
    _adam_checked(grad, lr, beta1, beta2, eps, weight_decay, True, amsgrad, step,
                  param, exp_avg, exp_avg_sq, max_exp_avg_sq, eps_uncorrected)


cdef double nadam_c(const floating* g, Py_ssize_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay,
                    double momentum_decay, long step, double mu_product,
                    floating* p, floating* m, floating* v) noexcept nogil:
    """torch NAdam: mu_t = b1 (1 - 0.5 * 0.96^(t psi)); mu_product *= mu_t;
    m, v as Adam; denom = sqrt(v / (1 - b2^t)) + eps;
    p -= lr (1 - mu_t) / (1 - mu_product) g / denom
         + lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / denom.
    Returns the new mu_product (pass 1.0 at step 1)."""
    cdef Py_ssize_t i
    cdef double bc2 = 1.0 - beta2 ** step
    cdef double mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    cdef double mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    cdef double mu_prod = mu_product * mu
    cdef floating c_grad = <floating> (lr * (1.0 - mu) / (1.0 - mu_prod))
    cdef floating c_avg = <floating> (lr * mu_next / (1.0 - mu_prod * mu_next))
    cdef floating wd = <floating> weight_decay, e = <floating> eps
    cdef floating b1c = <floating> (1.0 - beta1), b2 = <floating> beta2
    cdef floating b2c = <floating> (1.0 - beta2), bc2f = <floating> bc2
    cdef floating gi, mi, vi, denom, pi
    for i in range(n):
        pi = p[i]
        gi = g[i] + wd * pi
        mi = m[i] + b1c * (gi - m[i])
        vi = b2 * v[i] + b2c * gi * gi
        m[i] = mi
        v[i] = vi
        denom = vsqrt(vi / bc2f) + e
        pi = pi - c_grad * gi / denom
        p[i] = pi - c_avg * mi / denom
    return mu_prod


def _nadam_update(grad, double lr, double beta1, double beta2, double eps,
                 double weight_decay, double momentum_decay, long step,
                 double mu_product, floating[::1] param, floating[::1] exp_avg,
                 floating[::1] exp_avg_sq):
    cdef const floating[::1] G = np.ascontiguousarray(grad)
    cdef double mu_prod
    with nogil:
        mu_prod = nadam_c(_cp(G), param.shape[0], lr, beta1, beta2, eps,
                          weight_decay, momentum_decay, step, mu_product,
                          _p(param), _p(exp_avg), _p(exp_avg_sq))
    return mu_prod


cdef double sumsq_c(const floating* g, Py_ssize_t n) noexcept nogil:
    """sum g^2 in double, over 8 independent partial sums (element i goes to
    sum i % 8; they are added in a fixed order), so that the loop is not one
    serial chain of additions."""
    cdef Py_ssize_t i = 0, k
    cdef double s[8]
    cdef double x
    for k in range(8):
        s[k] = 0.0
    while i + 8 <= n:
        for k in range(8):
            x = g[i + k]
            s[k] += x * x
        i += 8
    k = 0
    while i < n:
        x = g[i]
        s[k] += x * x
        i += 1
        k += 1
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


def _global_norm(const floating[::1] grad):
    cdef double s
    with nogil:
        s = sumsq_c(_cp(grad), grad.shape[0])
    return sqrt(s)


def global_norm(grad):
    """sqrt(sum grad^2), accumulated in double, of a 1-D float array."""
    grad_args(grad, False)
    return _global_norm(np.ascontiguousarray(grad))


def _clip_grad_norm(floating[::1] grad, double max_norm):
    """total = ||grad||; grad *= max_norm / (total + 1e-6) if that is < 1.

    As torch's ``clip_grad_norm_``. Returns the norm before clipping.
    """
    cdef Py_ssize_t i, n = grad.shape[0]
    cdef floating* g = _p(grad)
    cdef double total, coef
    with nogil:
        total = sqrt(sumsq_c(g, n))
        coef = max_norm / (total + 1e-6)
        if not coef >= 1.0:  # NaN norm: NaN everywhere, as torch
            for i in range(n):
                g[i] = <floating> (g[i] * coef)
    return total


# --------------------------------------------------------------------------
# Public wrappers: the arrays' contract (``_checks.update_args``), then the
# update. State arrays that the hyperparameters leave unused may be None.

def sgd_update(grad, double lr, double momentum, double dampening, bint nesterov,
               double weight_decay, long step, param, momentum_buf,
               bint velocity=False):
    """g = grad + wd p; buf = g (step 1) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (nesterov) or buf; p -= lr g.

    Parameters
    ----------
    grad : ndarray of shape (n_params,)
    lr, momentum, dampening : float
    nesterov : bool
    weight_decay : float
    step : int, 1-based
    param, momentum_buf : ndarray of shape (n_params,)
        Updated in place (momentum_buf only when momentum != 0; else it may be
        None, and is checked all the same if given).
    velocity : bool
        scikit-learn's form: the buffer is a velocity that carries the
        learning rate, v = momentum v - lr g; p += momentum v - lr g
        (nesterov) or v.

    Raises
    ------
    TypeError
        If an array is None (and needed) or not float32/float64 of param's dtype.
    ValueError
        If the lengths differ or an updated array is not C-contiguous and
        writable.
    """
    update_args(grad, param, [("momentum_buf", momentum_buf, momentum != 0)])
    _sgd_update(grad, lr, momentum, dampening, nesterov, weight_decay, step, param,
                momentum_buf if momentum != 0 else None, velocity)


def adagrad_update(grad, double lr, double lr_decay, double weight_decay,
                   double eps, double decay, long step, param, state_sum):
    """clr = lr / (1 + (step - 1) lr_decay); g = grad + wd p;
    sum = decay sum + g^2; p -= clr g / (sqrt(sum) + eps).

    ``param`` and ``state_sum`` (n_params,) are updated in place; the arrays'
    contract is ``sgd_update``'s."""
    update_args(grad, param, [("state_sum", state_sum, True)])
    _adagrad_update(grad, lr, lr_decay, weight_decay, eps, decay, step, param,
                    state_sum)


def rmsprop_update(grad, double lr, double alpha, double eps, double weight_decay,
                   double momentum, bint centered, param, square_avg, momentum_buf,
                   grad_avg):
    """v = alpha v + (1 - alpha) g^2; avg = sqrt(v - ga^2 if centered else v) + eps;
    buf = momentum buf + g / avg, p -= lr buf (momentum > 0) else p -= lr g / avg.

    ``momentum_buf`` is read and written only when momentum > 0, ``grad_avg``
    only when centered (else either may be None); the arrays' contract is
    ``sgd_update``'s."""
    update_args(grad, param, [("square_avg", square_avg, True),
                              ("momentum_buf", momentum_buf, momentum > 0),
                              ("grad_avg", grad_avg, centered)])
    _rmsprop_update(grad, lr, alpha, eps, weight_decay, momentum, centered, param,
                    square_avg, momentum_buf if momentum > 0 else None,
                    grad_avg if centered else None)


def adadelta_update(grad, double lr, double rho, double eps, double weight_decay,
                    param, square_avg, acc_delta):
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) g;
    u = rho u + (1 - rho) d^2; p -= lr d.

    The arrays' contract is ``sgd_update``'s."""
    update_args(grad, param, [("square_avg", square_avg, True),
                              ("acc_delta", acc_delta, True)])
    _adadelta_update(grad, lr, rho, eps, weight_decay, param, square_avg, acc_delta)


def nadam_update(grad, double lr, double beta1, double beta2, double eps,
                 double weight_decay, double momentum_decay, long step,
                 double mu_product, param, exp_avg, exp_avg_sq):
    """torch NAdam: mu_t = b1 (1 - 0.5 * 0.96^(t psi)); mu_product *= mu_t;
    m, v as Adam; denom = sqrt(v / (1 - b2^t)) + eps;
    p -= lr (1 - mu_t) / (1 - mu_product) g / denom
         + lr mu_{t+1} / (1 - mu_product mu_{t+1}) m / denom.

    The arrays' contract is ``sgd_update``'s.

    Returns
    -------
    float
        The new ``mu_product`` (pass 1.0 at step 1).
    """
    update_args(grad, param, [("exp_avg", exp_avg, True),
                              ("exp_avg_sq", exp_avg_sq, True)])
    return _nadam_update(grad, lr, beta1, beta2, eps, weight_decay, momentum_decay,
                         step, mu_product, param, exp_avg, exp_avg_sq)


def clip_grad_norm(grad, double max_norm):
    """total = ||grad||; grad *= max_norm / (total + 1e-6) if that is < 1.

    As torch's ``clip_grad_norm_``. ``grad`` (1-D, C-contiguous, writable) is
    scaled in place. Returns the norm before clipping.
    """
    grad_args(grad, True)
    return _clip_grad_norm(grad, max_norm)
