"""Bad-input cases for every function that ``get_ops`` exports.

Each kernel has one valid call (``KERNELS``: a factory of its arguments in
call order, and the role of each array argument). The table is that call with
one argument made wrong; every case names the exception both backends must
raise (TypeError: not an array, None, wrong dtype; ValueError: shapes, sizes,
layout, read-only outputs, ranges). ``run_cases`` runs a batch of cases in this
process and prints one line per case, so that a parent process can run it in a
subprocess and see a crash as a crash.

Run as a script (``python _boundary_cases.py BACKEND ID...``) it does that.
"""

import sys

import numpy as np

N, D, K, PIECES = 3, 4, 5, 2  # rows, inputs, outputs (classes), maxout pieces

# Roles of array arguments: "in" (read, converted to C order if need be),
# "opt" (read, may be None), "out" (written: C-contiguous, writable),
# "optout" (written, may be None), "labels", "index" (int64, C-contiguous).


def _a(dtype, *shape, value=0.5):
    rng = np.random.default_rng(sum(shape) + len(shape))
    return (rng.standard_normal(shape) * value).astype(dtype)


def _labels(n=N, k=K):
    return np.arange(n, dtype=np.int64) % k


def _dense_forward(t):
    return dict(X=_a(t, N, D), W=_a(t, K, D), b=_a(t, K), activation="relu",
                alpha=0.0, Y=_a(t, N, K), Z=_a(t, N, K))


def _dense_backward(t):
    return dict(X=_a(t, N, D), W=_a(t, K, D), Z=_a(t, N, K), Y=_a(t, N, K),
                dY=_a(t, N, K), activation="gelu", alpha=0.0, dX=_a(t, N, D),
                dW=_a(t, K, D), db=_a(t, K))


def _activation_forward(t):
    return dict(Z=_a(t, N, K), activation="tanh", alpha=0.0, Y=_a(t, N, K))


def _activation_backward(t):
    return dict(Z=_a(t, N, K), Y=_a(t, N, K), dY=_a(t, N, K), activation="silu",
                alpha=0.0, dZ=_a(t, N, K))


def _softmax_forward(t):
    return dict(X=_a(t, N, K), temperature=1.0, Y=_a(t, N, K))


def _softmax_backward(t):
    return dict(Y=_a(t, N, K), dY=_a(t, N, K), temperature=1.0, dX=_a(t, N, K))


def _prelu_forward(t):
    return dict(X=_a(t, N, K), a=_a(t, K), Y=_a(t, N, K))


def _prelu_backward(t):
    return dict(X=_a(t, N, K), a=_a(t, K), dY=_a(t, N, K), dX=_a(t, N, K),
                da=_a(t, K))


def _maxout_forward(t):
    return dict(X=_a(t, N, K * PIECES), pieces=PIECES, Y=_a(t, N, K),
                argmax=np.zeros((N, K), np.int64))


def _maxout_backward(t):
    return dict(dY=_a(t, N, K), argmax=np.ones((N, K), np.int64), pieces=PIECES,
                dX=_a(t, N, K * PIECES))


def _labels_loss(t):
    return dict(Y=_a(t, N, K), y=_labels(), dY=_a(t, N, K))


def _pointwise_loss(t):
    return dict(Y=_a(t, N, K), T=np.abs(_a(t, N, K)) % 1, dY=_a(t, N, K))


def _huber(t):
    return dict(Y=_a(t, N, K), T=_a(t, N, K), delta=1.0, dY=_a(t, N, K))


P = 7  # parameters of the optimizer cases


def _sgd(t):
    return dict(grad=_a(t, P), lr=0.1, momentum=0.9, dampening=0.0, nesterov=False,
                weight_decay=0.0, step=2, param=_a(t, P), momentum_buf=_a(t, P))


def _adagrad(t):
    return dict(grad=_a(t, P), lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                decay=1.0, step=1, param=_a(t, P), state_sum=np.abs(_a(t, P)))


def _rmsprop(t):
    return dict(grad=_a(t, P), lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0,
                momentum=0.9, centered=True, param=_a(t, P),
                square_avg=np.abs(_a(t, P)) + 1, momentum_buf=_a(t, P),
                grad_avg=_a(t, P))


def _adadelta(t):
    return dict(grad=_a(t, P), lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                param=_a(t, P), square_avg=np.abs(_a(t, P)),
                acc_delta=np.abs(_a(t, P)))


def _adam(t):
    return dict(grad=_a(t, P), lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, amsgrad=True, step=1, param=_a(t, P),
                exp_avg=_a(t, P), exp_avg_sq=np.abs(_a(t, P)),
                max_exp_avg_sq=np.abs(_a(t, P)))


def _nadam(t):
    return dict(grad=_a(t, P), lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, momentum_decay=4e-3, step=1, mu_product=1.0,
                param=_a(t, P), exp_avg=_a(t, P), exp_avg_sq=np.abs(_a(t, P)))


def _global_norm(t):
    return dict(grad=_a(t, P))


def _clip(t):
    return dict(grad=_a(t, P), max_norm=0.1)


def _dropout(t):
    return dict(X=_a(t, N, K), U=np.abs(_a(t, N, K)) % 1, p=0.5, Y=_a(t, N, K))


def _bn_train(t):
    return dict(X=_a(t, N, D), gamma=_a(t, D), beta=_a(t, D), eps=1e-5,
                momentum=0.1, Y=_a(t, N, D), mean=_a(t, D), invstd=_a(t, D),
                running_mean=_a(t, D), running_var=np.abs(_a(t, D)))


def _bn_infer(t):
    return dict(X=_a(t, N, D), gamma=_a(t, D), beta=_a(t, D),
                running_mean=_a(t, D), running_var=np.abs(_a(t, D)), eps=1e-5,
                Y=_a(t, N, D))


def _bn_backward(t):
    return dict(X=_a(t, N, D), dY=_a(t, N, D), gamma=_a(t, D), mean=_a(t, D),
                invstd=np.abs(_a(t, D)), dX=_a(t, N, D), dgamma=_a(t, D),
                dbeta=_a(t, D))


def _gather_rows(t):
    return dict(X=_a(t, N, D), idx=np.array([N - 1, 0, 1, 1], np.int64),
                out=_a(t, 4, D))


def _gather_labels(t):
    return dict(y=_a(t, N), idx=np.array([N - 1, 0, 1, 1], np.int64),
                out=_a(t, 4))


OPT = ("opt",)
#: kernel -> (factory, {array argument: role}, mutations not to apply)
KERNELS = {
    "dense_forward": (_dense_forward, dict(X="in", W="in", b="in", Y="out",
                                           Z="optout"), ()),
    "dense_backward": (_dense_backward, dict(X="in", W="in", Z="opt", Y="opt",
                                             dY="out", dX="optout", dW="optout",
                                             db="optout"), ()),
    "activation_forward": (_activation_forward, dict(Z="in", Y="out"), ()),
    "activation_backward": (_activation_backward, dict(Z="opt", Y="opt", dY="in",
                                                       dZ="out"), ()),
    "softmax_forward": (_softmax_forward, dict(X="in", Y="out"), ()),
    "softmax_backward": (_softmax_backward, dict(Y="in", dY="in", dX="out"), ()),
    "prelu_forward": (_prelu_forward, dict(X="in", a="in", Y="out"), ()),
    "prelu_backward": (_prelu_backward, dict(X="in", a="in", dY="in", dX="out",
                                             da="out"), ()),
    "maxout_forward": (_maxout_forward, dict(X="in", Y="out", argmax="index"), ()),
    "maxout_backward": (_maxout_backward, dict(dY="in", argmax="labels",
                                               dX="out"), ()),
    "softmax_cross_entropy_forward_backward": (_labels_loss, dict(
        Y="in", y="labels", dY="optout"), ()),
    "hinge_forward_backward": (_labels_loss, dict(Y="in", y="labels", dY="optout"),
                               ()),
    "binary_cross_entropy_forward_backward": (_pointwise_loss, dict(
        Y="in", T="in", dY="optout"), ()),
    "mse_forward_backward": (_pointwise_loss, dict(Y="in", T="in", dY="optout"), ()),
    "mae_forward_backward": (_pointwise_loss, dict(Y="in", T="in", dY="optout"), ()),
    "huber_forward_backward": (_huber, dict(Y="in", T="in", dY="optout"), ()),
    "sgd_update": (_sgd, dict(grad="in", param="out", momentum_buf="out"), ()),
    "adagrad_update": (_adagrad, dict(grad="in", param="out", state_sum="out"), ()),
    "rmsprop_update": (_rmsprop, dict(grad="in", param="out", square_avg="out",
                                      momentum_buf="out", grad_avg="out"), ()),
    "adadelta_update": (_adadelta, dict(grad="in", param="out", square_avg="out",
                                        acc_delta="out"), ()),
    "adam_update": (_adam, dict(grad="in", param="out", exp_avg="out",
                                exp_avg_sq="out", max_exp_avg_sq="out"), ()),
    "adamw_update": (_adam, dict(grad="in", param="out", exp_avg="out",
                                 exp_avg_sq="out", max_exp_avg_sq="out"), ()),
    "nadam_update": (_nadam, dict(grad="in", param="out", exp_avg="out",
                                  exp_avg_sq="out"), ()),
    # one array: any length, either float dtype
    "global_norm": (_global_norm, dict(grad="in"), ("short", "long", "other")),
    "clip_grad_norm": (_clip, dict(grad="out"), ("short", "long", "other")),
    "dropout_forward": (_dropout, dict(X="in", U="in", Y="out"), ()),
    "dropout_backward": (_dropout, dict(X="in", U="in", Y="out"), ()),
    "batchnorm_forward_train": (_bn_train, dict(
        X="in", gamma="in", beta="in", Y="out", mean="out", invstd="out",
        running_mean="out", running_var="out"), ()),
    "batchnorm_forward_infer": (_bn_infer, dict(
        X="in", gamma="in", beta="in", running_mean="in", running_var="in",
        Y="out"), ()),
    "batchnorm_backward": (_bn_backward, dict(
        X="in", dY="in", gamma="in", mean="in", invstd="in", dX="out",
        dgamma="out", dbeta="out"), ()),
    # gather reads X and y in place: they are "out"-like (no copy is made).
    "gather_rows": (_gather_rows, dict(X="out", idx="index", out="out"),
                    ("X:long", "X:readonly", "idx:readonly")),
    "gather_labels": (_gather_labels, dict(y="out", idx="index", out="out"),
                      ("y:long", "y:readonly", "idx:readonly")),
}


# The counter-based random streams (where this build has them): their outputs
# may have any 1-D or 2-D shape, X must match out.
STREAM = dict(seed=7, epoch=1, step=2, layer=3)


def _uniform(t):
    return dict(**STREAM, out=_a(t, N, K))


def _mask(t):
    return dict(**STREAM, p=0.5, mask_out=_a(t, N, K))


def _noise(t):
    return dict(**STREAM, std=0.1, X=_a(t, N, K), out=_a(t, N, K))


def _stream_kernels():
    import fastnn

    if not hasattr(fastnn.get_ops("numpy"), "philox_uniform"):
        return {}
    any_shape = ("short", "long", "short1", "ndim", "other")
    return {
        "philox_uniform": (_uniform, dict(out="stream"), any_shape),
        "philox_normal": (_uniform, dict(out="stream"), any_shape),
        "dropout_mask_philox": (_mask, dict(mask_out="stream"), any_shape),
        # X may be a list when out is float64: not a case
        "gaussian_noise_philox": (_noise, dict(X="in", out="stream"),
                                  any_shape + ("X:list",)),
    }


KERNELS.update(_stream_kernels())


def _other(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


def _strided(a):
    wide = np.repeat(a, 2, axis=-1)
    return wide[..., ::2]


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _array_mutations(a, role):
    """(id, value, expected exception) for one array argument."""
    other = _other(a.dtype) if a.dtype.kind == "f" else np.float64
    integer = a.dtype.kind in "iu"
    cases = []
    if role not in ("opt", "optout"):
        cases.append(("none", None, TypeError))
    cases += [("list", a.tolist(), TypeError),
              ("dtype", a.astype(other) if integer else a.astype(np.int64),
               TypeError)]
    if not integer:
        cases.append(("other", a.astype(other), TypeError))
    else:
        cases.append(("int32", a.astype(np.int32), TypeError))
    if role == "stream":
        cases.append(("3d", a[None], ValueError))
    cases += [("ndim", a.reshape(-1) if a.ndim == 2 else a[None, :], ValueError),
              ("short", a[:-1].copy(), ValueError),
              ("long", np.concatenate([a, a[:1]]), ValueError)]
    if a.ndim == 2:
        cases.append(("short1", a[:, :-1].copy(), ValueError))
    if role in ("out", "optout", "index", "stream"):
        cases += [("strided", _strided(a), ValueError),
                  ("readonly", _readonly(a), ValueError)]
    if role == "labels" and integer:
        cases = [c for c in cases if c[0] not in ("int32",)]
    return cases


def _special(kernel, dtype):
    """Kernel-specific cases: (id, {arg: value}, expected exception)."""
    k, cases = KERNELS[kernel], []
    args = k[0](dtype)
    if "activation" in args:
        cases += [("activation:unknown", {"activation": "swish"}, ValueError),
                  ("activation:none", {"activation": None}, TypeError)]
    if kernel == "dense_backward":
        cases += [("relu:needs-Y", {"activation": "relu", "Y": None}, ValueError),
                  ("gelu:needs-Z", {"Z": None}, ValueError)]
    if kernel == "activation_backward":
        cases += [("relu:needs-Y", {"activation": "relu", "Y": None}, ValueError),
                  ("silu:needs-Z", {"Z": None}, ValueError)]
    if "y" in args and args["y"].dtype.kind == "i":  # label losses
        y = args["y"]
        cases += [("y:k", {"y": np.full_like(y, K)}, ValueError),
                  ("y:-1", {"y": np.full_like(y, -1)}, ValueError),
                  ("y:1e12", {"y": np.full_like(y, 10**12)}, ValueError),
                  ("y:few", {"y": y[:1].copy()}, ValueError),
                  ("y:float", {"y": y.astype(dtype) + 0.5}, TypeError),
                  ("y:bool", {"y": y > 0}, TypeError)]
    if kernel == "maxout_backward":
        A = args["argmax"]
        cases += [("argmax:pieces", {"argmax": np.full_like(A, PIECES)}, ValueError),
                  ("argmax:-1", {"argmax": np.full_like(A, -1)}, ValueError),
                  ("argmax:1e12", {"argmax": np.full_like(A, 10**12)}, ValueError),
                  ("pieces:0", {"pieces": 0}, ValueError),
                  ("pieces:3", {"pieces": 3}, ValueError)]
    if kernel == "maxout_forward":
        cases += [("pieces:0", {"pieces": 0}, ValueError),
                  ("pieces:-1", {"pieces": -1}, ValueError),
                  ("pieces:3", {"pieces": 3}, ValueError)]
    if kernel in ("gather_rows", "gather_labels"):
        idx = args["idx"]
        cases += [("idx:n", {"idx": np.full_like(idx, N)}, ValueError),
                  ("idx:-1", {"idx": np.full_like(idx, -1)}, ValueError),
                  ("idx:1e12", {"idx": np.full_like(idx, 10**12)}, ValueError)]
    if kernel == "prelu_backward":
        cases.append(("da:shared", {"da": args["da"][:1].copy()}, ValueError))
    if kernel in ("softmax_forward", "softmax_backward"):
        cases.append(("temperature:0", {"temperature": 0.0}, ValueError))
    if kernel in ("dropout_forward", "dropout_backward"):
        cases += [("p:1", {"p": 1.0}, ValueError), ("p:-0.1", {"p": -0.1}, ValueError),
                  ("p:none", {"p": None}, TypeError)]
    if "seed" in args:
        cases += [("seed:-1", {"seed": -1}, ValueError),
                  ("seed:2**128", {"seed": 2**128}, ValueError),
                  ("seed:float", {"seed": 1.5}, TypeError),
                  ("epoch:none", {"epoch": None}, TypeError),
                  ("layer:2**64", {"layer": 2**64}, ValueError)]
    if kernel == "dropout_mask_philox":
        cases += [("p:1", {"p": 1.0}, ValueError), ("p:none", {"p": None}, TypeError)]
    if kernel == "gaussian_noise_philox":
        buf = _a(dtype, N * K + 1)
        cases += [("std:-1", {"std": -1.0}, ValueError),
                  ("X:overlaps-out", {"X": buf[1:].reshape(N, K),
                                      "out": buf[:-1].reshape(N, K)}, ValueError)]
    if kernel == "adam_update":
        cases.append(("amsgrad:no-max", {"max_exp_avg_sq": None}, TypeError))
    return cases


def cases():
    """Every case as (id, kernel, expected exception name)."""
    out = []
    for kernel, (factory, roles, skip) in KERNELS.items():
        args = factory(np.float32)
        for arg, role in roles.items():
            for mid, _, exc in _array_mutations(args[arg], role):
                cid = f"{arg}:{mid}"
                if mid in skip or cid in skip:
                    continue
                out.append((f"{kernel}/{cid}", kernel, exc.__name__))
        for cid, _, exc in _special(kernel, np.float32):
            out.append((f"{kernel}/{cid}", kernel, exc.__name__))
    out += [(f"{kind}/{cid}", kind, exc.__name__)
            for kind, table in (("TrainPlan", _plan_cases),
                                ("DenseStack", _stack_cases))
            for cid, _, exc in table(np.float32)]
    return out


# --------------------------------------------------------------------------
# The training plan and the inference stack


H = 6  # hidden width of the plan and stack cases


def _plan_args(t, loss="softmax_cross_entropy", optimizer="adam",
               acts=("relu", "gelu")):
    """A valid ``TrainPlan`` call: Dense, BatchNorm, Dropout, Dense."""
    n, batch = 8, 4
    X = _a(t, n, D)
    labels = loss in ("softmax_cross_entropy", "hinge")
    target = _labels(n, K) if labels else _a(t, n, K)
    perm = np.arange(n, dtype=np.int64)[::-1].copy()
    n_params = H * D + H + 2 * H + K * H + K
    params, grads = _a(t, n_params), np.zeros(n_params, t)
    offset = 0

    def take(*shape):
        nonlocal offset
        size = int(np.prod(shape))
        views = (params[offset:offset + size].reshape(shape),
                 grads[offset:offset + size].reshape(shape))
        offset += size
        return views

    def dense(o, j, act):
        (W, dW), (b, db) = take(o, j), take(o)
        return ["dense", {"weight": W, "bias": b, "grad_weight": dW, "grad_bias": db},
                {"activation": act, "alpha": 0.0, "l1": 0.0, "l2": 1e-3,
                 "trainable": True}]

    first = dense(H, D, acts[0])
    (g, dg), (beta, dbeta) = take(H), take(H)
    bn = ["batchnorm", {"weight": g, "bias": beta, "grad_weight": dg,
                        "grad_bias": dbeta, "running_mean": np.zeros(H, t),
                        "running_var": np.ones(H, t)},
          {"eps": 1e-5, "momentum": 0.1, "trainable": True}]
    drop = ["dropout", {}, {"p": 0.25}]
    last = dense(K, H, acts[1])
    if optimizer == "sgd":
        opt = {"name": "sgd", "hyper": {"momentum": 0.9, "dampening": 0.0,
                                        "nesterov": 0.0, "weight_decay": 0.0,
                                        "velocity": 0.0},
               "state": {"momentum_buffer": np.zeros(n_params, t)}}
    else:
        opt = {"name": "adam", "hyper": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                         "weight_decay": 0.0, "amsgrad": 1.0,
                                         "eps_uncorrected": 0.0},
               "state": {k: np.zeros(n_params, t)
                         for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}}
    opt.update(scalars=None, clip_norm=1.0)
    return dict(X=X, target=target, perm=perm, layers=[first, bn, drop, last],
                loss=(loss, 1.0), optimizer=opt, params=params, grads=grads,
                runs=np.array([[0, n_params]], np.int64), batch=batch, seed=7)


def _layer(args, i, key, value):
    """The layers with layer i's array (or value) ``key`` replaced."""
    layers = [[la[0], dict(la[1]), dict(la[2])] for la in args["layers"]]
    layers[i][1 if key in layers[i][1] else 2][key] = value
    return {"layers": layers}


def _opt(args, **change):
    opt = dict(args["optimizer"])
    for k, v in change.items():
        if k in opt["state"]:
            opt["state"] = dict(opt["state"], **{k: v})
        else:
            opt[k] = v
    return {"optimizer": opt}


def _plan_cases(t, a=None):
    """(id, change, exception): each change replaces arguments of ``a`` (the
    valid call), made anew when not given."""
    a = _plan_args(t) if a is None else a
    L0 = a["layers"][0]
    n = a["X"].shape[0]
    other = _other(t)
    state = a["optimizer"]["state"]
    return [
        ("perm:n", {"perm": np.full(n, n, np.int64)}, ValueError),
        ("perm:-1", {"perm": np.full(n, -1, np.int64)}, ValueError),
        ("perm:1e12", {"perm": np.full(n, 10**12, np.int64)}, ValueError),
        ("perm:short", {"perm": a["perm"][:2].copy()}, ValueError),
        ("perm:int32", {"perm": a["perm"].astype(np.int32)}, TypeError),
        ("perm:none", {"perm": None}, TypeError),
        ("target:k", {"target": np.full(n, K, np.int64)}, ValueError),
        ("target:-1", {"target": np.full(n, -1, np.int64)}, ValueError),
        ("target:few", {"target": a["target"][:2].copy()}, ValueError),
        ("target:float", {"target": a["target"].astype(t)}, TypeError),
        ("target:none", {"target": None}, TypeError),
        ("layers:empty", {"layers": []}, ValueError),
        ("layers:not-chained", _layer(a, 3, "weight", np.zeros((K, H + 1), t)),
         ValueError),
        ("layers:first-n_in", {"X": _a(t, n, D + 1)}, ValueError),
        ("layers:b-short", _layer(a, 0, "bias", L0[1]["bias"][:-1]), ValueError),
        ("layers:dW-shape", _layer(a, 0, "grad_weight", np.zeros((H, D - 1), t)),
         ValueError),
        ("layers:dW-outside-grads", _layer(a, 0, "grad_weight", np.zeros((H, D), t)),
         ValueError),
        ("layers:W-outside-params", _layer(a, 0, "weight", _a(t, H, D)), ValueError),
        ("layers:db-none", _layer(a, 3, "grad_bias", None), TypeError),
        ("layers:W-dtype", _layer(a, 0, "weight", L0[1]["weight"].astype(other)),
         TypeError),
        ("layers:W-strided", _layer(a, 0, "weight", _strided(L0[1]["weight"])),
         ValueError),
        ("layers:running-var-readonly",
         _layer(a, 1, "running_var", _readonly(np.ones(H, t))), ValueError),
        ("layers:p-one", _layer(a, 2, "p", 1.0), ValueError),
        ("layers:eps-zero", _layer(a, 1, "eps", 0.0), ValueError),
        ("layers:l2-nan", _layer(a, 0, "l2", float("nan")), ValueError),
        ("layers:trainable-int", _layer(a, 0, "trainable", 1), TypeError),
        ("layers:activation", _layer(a, 0, "activation", "swish"), ValueError),
        ("layers:kind", {"layers": [["conv"] + a["layers"][0][1:]]}, ValueError),
        ("layers:tuple-size", {"layers": [L0[:2]]}, ValueError),
        ("loss:unknown", {"loss": ("cosine", 1.0)}, ValueError),
        ("loss:delta", {"loss": ("huber", 0.0)}, ValueError),
        ("optimizer:unknown", _opt(a, name="lbfgs"), ValueError),
        ("optimizer:hyper", _opt(a, hyper={"beta1": 0.9}), ValueError),
        ("optimizer:clip", _opt(a, clip_norm=-1.0), ValueError),
        ("state:amsgrad-none", _opt(a, max_exp_avg_sq=None), TypeError),
        ("state:short", _opt(a, exp_avg=state["exp_avg"][:-1]), ValueError),
        ("state:dtype", _opt(a, exp_avg_sq=state["exp_avg_sq"].astype(other)),
         TypeError),
        ("grads:short", {"grads": a["grads"][:-1]}, ValueError),
        ("params:dtype", {"params": a["params"].astype(other)}, TypeError),
        ("runs:past-end", {"runs": np.array([[0, a["params"].size + 1]], np.int64)},
         ValueError),
        ("runs:overlap", {"runs": np.array([[0, 5], [3, 9]], np.int64)}, ValueError),
        ("batch:zero", {"batch": 0}, ValueError),
        ("batch:more-than-rows", {"batch": n + 1}, ValueError),
        ("sample_weight:negative", {"sample_weight": np.full(n, -1.0, t)},
         ValueError),
        ("sample_weight:nan", {"sample_weight": np.full(n, np.nan, t)}, ValueError),
        ("sample_weight:short", {"sample_weight": np.ones(n - 1, t)}, ValueError),
        ("sample_weight:dtype", {"sample_weight": np.ones(n, other)}, TypeError),
        ("penalty:unknown", {"penalty": "mean"}, ValueError),
        ("loss:scale-zero", {"loss": ("softmax_cross_entropy", 1.0, 0.0)},
         ValueError),
        ("seed:negative", {"seed": -1}, ValueError),
        ("seed:2^128", {"seed": 2**128}, ValueError),
        ("run:first_step", "run:-1", ValueError),
        ("run:perm-mutated", "run:perm", ValueError),
        ("run:epoch", "run:epoch", ValueError),
        ("run:lr", "run:lr", ValueError),
    ]


def _run(plan, change=None):
    if change == "run:-1":
        return plan.run(-1, 2, 0.01, 0, 0)
    if change == "run:epoch":
        return plan.run(0, 2, 0.01, 0, -1)
    if change == "run:lr":
        return plan.run(0, 2, float("nan"), 0, 0)
    return plan.run(0, 2, 0.01, 0, 0)


def _call_plan(ops, t, cid):
    a = _plan_args(t)
    change = {c: v for c, v, _ in _plan_cases(t, a)}[cid]
    if isinstance(change, str):
        plan = ops.TrainPlan(**a)
        if change == "run:perm":
            a["perm"][1] = 10**12  # the caller shuffles perm in place between epochs
        return _run(plan, change)
    a.update(change)
    return _run(ops.TrainPlan(**a))


def _stack_layers(t):
    return [(_a(t, H, D), _a(t, H), "relu", 0.0), (_a(t, K, H), _a(t, K), "identity",
                                                   0.0)]


def _stack_cases(t):
    L = _stack_layers(t)
    other = _other(t)
    return [
        ("layers:empty", {"layers": []}, ValueError),
        ("layers:not-chained", {"layers": [L[0], (_a(t, K, H + 1),) + L[1][1:]]},
         ValueError),
        ("layers:b-short", {"layers": [(L[0][0], L[0][1][:-1]) + L[0][2:], L[1]]},
         ValueError),
        ("layers:W-dtype", {"layers": [(L[0][0].astype(other),) + L[0][1:], L[1]]},
         TypeError),
        ("layers:b-dtype", {"layers": [(L[0][0], L[0][1].astype(other)) + L[0][2:],
                                       L[1]]}, TypeError),
        ("layers:W-strided", {"layers": [(_strided(L[0][0]),) + L[0][1:], L[1]]},
         ValueError),
        ("layers:W-1d", {"layers": [(L[0][0].ravel(),) + L[0][1:], L[1]]},
         ValueError),
        ("layers:W-none", {"layers": [(None,) + L[0][1:], L[1]]}, TypeError),
        ("layers:activation", {"layers": [L[0][:2] + ("swish", 0.0), L[1]]},
         ValueError),
        ("layers:tuple-size", {"layers": [L[0][:3], L[1]]}, ValueError),
        ("out:none", "forward:none", TypeError),
        ("out:short", "forward:short", ValueError),
        ("out:dtype", "forward:dtype", TypeError),
        ("out:readonly", "forward:readonly", ValueError),
        ("out:strided", "forward:strided", ValueError),
    ]


def _call_stack(ops, t, change):
    if isinstance(change, dict):
        return ops.DenseStack(change["layers"])
    stack = ops.DenseStack(_stack_layers(t))
    X = _a(t, N, D)
    out = {"forward:none": None, "forward:short": np.zeros((N - 1, K), t),
           "forward:dtype": np.zeros((N, K), _other(t)),
           "forward:readonly": _readonly(np.zeros((N, K), t)),
           "forward:strided": _strided(np.zeros((N, K), t))}[change]
    return stack.forward(X, out)


def build(case_id, dtype):
    """The call of one case: ``call(ops)``."""
    kernel, cid = case_id.split("/", 1)
    if kernel == "TrainPlan":
        return lambda ops: _call_plan(ops, dtype, cid)
    if kernel == "DenseStack":
        change = dict((c, v) for c, v, _ in _stack_cases(dtype))[cid]
        return lambda ops: _call_stack(ops, dtype, change)
    factory, roles, _ = KERNELS[kernel]
    args = factory(dtype)
    specials = {c: v for c, v, _ in _special(kernel, dtype)}
    if cid in specials:
        args.update(specials[cid])
    else:
        arg, mid = cid.split(":", 1)
        value = {m: v for m, v, _ in _array_mutations(args[arg], roles[arg])}[mid]
        args[arg] = value
    return lambda ops: getattr(ops, kernel)(*args.values())


def valid_call(kernel, dtype):
    """The unchanged call of a kernel (or of the plan or the stack)."""
    if kernel == "TrainPlan":
        return lambda ops: _run(ops.TrainPlan(**_plan_args(dtype)))
    if kernel == "DenseStack":
        return lambda ops: ops.DenseStack(_stack_layers(dtype)).forward(
            _a(dtype, N, D), np.zeros((N, K), dtype))
    args = KERNELS[kernel][0](dtype)
    return lambda ops: getattr(ops, kernel)(*args.values())


def run_cases(backend, ids, dtypes=("float32", "float64")):
    """Run cases in this process; print ``START id`` before and ``DONE id
    outcome`` after each (outcome: the exception's type name, or ``ok``)."""
    import fastnn

    ops = fastnn.get_ops(backend)
    for case_id in ids:
        for dtype in dtypes:
            key = f"{case_id}@{dtype}"
            print("START", key, flush=True)
            try:
                build(case_id, np.dtype(dtype).type)(ops)
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - the type is the result
                outcome = type(exc).__name__
            print("DONE", key, outcome, flush=True)


if __name__ == "__main__":
    run_cases(sys.argv[1], sys.argv[2:])
