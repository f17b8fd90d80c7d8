"""The arguments of the training plan, checked and laid out once for both
backends: :class:`fastnn._kernels.plan.TrainPlan` and its twin
:class:`fastnn.reference.plan.TrainPlan` take the same description of a
model and refuse the same mistakes with the same errors.

:func:`plan_args` checks the description and allocates the per-batch
buffers each step writes (the layers give only their parameters, gradients
and state); the result, a :class:`PlanSpec`, is what both step loops read.
"""

from types import SimpleNamespace

import numpy as np

from fastnn._kernels._checks import (
    choice, count, floats, floats_shaped, integer, ints, number, shape,
)
from fastnn._kernels.codes import (
    ACTIVATION_CODES, LABEL_LOSSES, LAYER_CODES, LAYER_KINDS, LOSS_CODES,
    OPTIMIZERS,
)

# The access modes of _checks (READ, INPLACE, WRITE) and its "any length".
_INPLACE, _WRITE = 1, 2
_ANY = -1

#: Activations whose derivative needs the pre-activation (``Z``) kept.
NEEDS_INPUT = frozenset({"silu", "gelu", "gelu_tanh", "softplus"})

#: One past the largest key of the random stream (Philox4x64 has 128 bits).
SEED_LIMIT = 1 << 128

# The parameter arrays a layer gives, by kind (the rest are buffers).
_PARAMS = {
    "dense": ("weight", "bias", "grad_weight", "grad_bias"),
    "activation": (), "softmax": (), "dropout": (), "noise": (),
    "batchnorm": ("weight", "bias", "grad_weight", "grad_bias", "running_mean",
                  "running_var"),
    "prelu": ("weight", "grad_weight"),
    "maxout": ("weight", "bias", "grad_weight", "grad_bias"),
}


class PlanSpec(SimpleNamespace):
    """A checked plan: ``X``, ``target``, ``perm``, ``batch``, ``ops`` (one
    namespace per layer: ``kind``, ``code``, ``n_in``, ``n_out``, ``arrays``,
    ``values``), the loss (``loss``, ``loss_code``, ``delta``, ``loss_scale``,
    ``sample_weight`` and its batch buffer ``wb``, ``per_sample``), the optimizer
    (``optimizer``, ``opt_code``, ``hyper``, ``state``, ``scalars``,
    ``clip_norm``), ``params``, ``grads``, ``runs``, ``seed``, the batch
    buffers ``Xb``, ``tb``, ``dOut``, ``n_classes`` (0 for value losses) and
    ``first_backward`` (the first layer the backward pass reaches)."""


def _address_range(a):
    start = a.__array_interface__["data"][0]
    return start, start + a.nbytes


def _inside(name, a, buffer_name, buffer):
    """``a`` lies inside the flat buffer (the optimizer updates the buffer,
    the layer reads ``a``: they must be the same memory)."""
    lo, hi = _address_range(a)
    blo, bhi = _address_range(buffer)
    if a.size and not (blo <= lo and hi <= bhi):
        raise ValueError(f"{name}: must be a view into {buffer_name}")


def _op_values(i, kind, values):
    names = LAYER_KINDS[kind][2]
    if not isinstance(values, dict):
        raise TypeError(f"layers[{i}] values: must be a dict, got "
                        f"{type(values).__name__}")
    if set(values) != set(names):
        raise ValueError(f"layers[{i}] values: {kind} takes {', '.join(names)}, got "
                         f"{', '.join(sorted(values)) or 'none'}")
    out = {}
    for name in names:
        v = values[name]
        label = f"layers[{i}] {name}"
        if name == "activation":
            choice(label, v, ACTIVATION_CODES)
            out[name] = v
        elif name == "trainable":
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{label}: must be a bool, got {type(v).__name__}")
            out[name] = bool(v)
        elif name == "pieces":
            out[name] = count(label, v, 1)
        elif name in ("p",):
            out[name] = number(label, v, 0.0, 1.0, False, True)
        elif name in ("temperature", "eps"):
            out[name] = number(label, v, 0.0, np.inf, True)
        elif name == "momentum":
            out[name] = number(label, v, 0.0, 1.0)
        elif name in ("l1", "l2", "std"):
            out[name] = number(label, v, 0.0, np.inf)
        else:  # alpha
            out[name] = number(label, v, -np.inf, np.inf)
    return out


def _op(i, layer, X, batch, n_in, params, grads):
    """One layer's checked arrays and values, its buffers allocated."""
    if not isinstance(layer, (tuple, list)) or len(layer) != 3:
        raise ValueError(f"layers[{i}]: must be (kind, arrays, values)")
    kind, arrays, values = layer
    choice(f"layers[{i}] kind", kind, LAYER_CODES)
    values = _op_values(i, kind, values)
    if not isinstance(arrays, dict):
        raise TypeError(f"layers[{i}] arrays: must be a dict, got "
                        f"{type(arrays).__name__}")
    names = _PARAMS[kind]
    if set(arrays) != set(names):
        raise ValueError(f"layers[{i}] arrays: {kind} takes "
                         f"{', '.join(names) or 'none'}, got "
                         f"{', '.join(sorted(arrays)) or 'none'}")
    trainable = values.get("trainable", False)
    a = dict(arrays)
    dt = X.dtype
    label = f"layers[{i}] "
    if kind in ("dense", "maxout"):
        floats(label + "weight", a["weight"], X, _INPLACE)
        shape(label + "weight", a["weight"], _ANY, n_in)
        m = a["weight"].shape[0]
        if kind == "maxout" and m % values["pieces"]:
            raise ValueError(f"{label}weight: its {m} rows are not a multiple of "
                             f"pieces={values['pieces']}")
        floats_shaped(label + "bias", a["bias"], X, _INPLACE, m)
        n_out = m if kind == "dense" else m // values["pieces"]
    elif kind == "batchnorm":
        n_out = n_in
        for name in ("weight", "bias"):
            floats_shaped(label + name, a[name], X, _INPLACE, n_in)
        for name in ("running_mean", "running_var"):
            floats_shaped(label + name, a[name], X, _WRITE, n_in)
    elif kind == "prelu":
        n_out = n_in
        floats(label + "weight", a["weight"], X, _INPLACE)
        shape(label + "weight", a["weight"], _ANY)
        if a["weight"].shape[0] not in (1, n_in):
            raise ValueError(f"{label}weight: must hold 1 or {n_in} slopes, got "
                             f"{a['weight'].shape[0]}")
    else:
        n_out = n_in
    grad_names = [g for g in ("grad_weight", "grad_bias") if g in names]
    for g in grad_names:
        param = a[g[5:]]
        if trainable:
            floats_shaped(label + g, a[g], X, _WRITE, *param.shape)
            _inside(label + g[5:], param, "params", params)
            _inside(label + g, a[g], "grads", grads)
        elif a[g] is not None:
            raise ValueError(f"{label}{g}: a frozen layer (trainable=False) has "
                             "no gradient; pass None")
    if kind == "prelu" and not trainable:  # its kernel writes da all the same
        a["grad_weight"] = np.empty(a["weight"].shape, dt)

    def buf(*shape_):
        return np.empty(shape_, dt)

    m = a["weight"].shape[0] if kind in ("dense", "maxout") else n_out
    a["Y"] = buf(batch, n_out)
    a["dX"] = buf(batch, n_in)
    if kind == "dense":
        a["Z"] = buf(batch, m) if values["activation"] in NEEDS_INPUT else None
    elif kind == "dropout":
        a["mask"] = buf(batch, n_in)
    elif kind == "batchnorm":
        a["mean"], a["invstd"] = buf(n_in), buf(n_in)
    elif kind == "maxout":
        a["Z"], a["dZ"] = buf(batch, m), buf(batch, m)
        a["argmax"] = np.empty((batch, n_out), np.int64)
    return SimpleNamespace(kind=kind, code=LAYER_CODES[kind], n_in=n_in,
                           n_out=n_out, arrays=a, values=values,
                           trainable=trainable and bool(grad_names))


def _optimizer(opt, params):
    if not isinstance(opt, dict):
        raise TypeError(f"optimizer: must be a dict, got {type(opt).__name__}")
    want = {"name", "hyper", "state", "scalars", "clip_norm"}
    if set(opt) != want:
        raise ValueError(f"optimizer: takes the keys {', '.join(sorted(want))}, got "
                         f"{', '.join(sorted(opt))}")
    codes = choice("optimizer name", opt["name"], OPTIMIZERS)
    name = opt["name"]
    hyper = opt["hyper"]
    if not isinstance(hyper, dict) or set(hyper) != set(codes.hyper):
        raise ValueError(f"optimizer hyper: {opt['name']} takes "
                         f"{', '.join(codes.hyper)}")
    h = {k: number(f"optimizer {k}", hyper[k], -np.inf, np.inf)
         for k in codes.hyper}
    state = opt["state"]
    if not isinstance(state, dict) or not set(state) <= set(codes.state):
        raise ValueError(f"optimizer state: {opt['name']} keeps "
                         f"{', '.join(codes.state)}")
    needed = {"momentum_buffer": h.get("momentum", 0) != 0,
              "grad_avg": bool(h.get("centered", 0)),
              "max_exp_avg_sq": bool(h.get("amsgrad", 0))}
    states = []
    for k in codes.state:
        s = state.get(k)
        if s is None and not needed.get(k, True):
            states.append(None)
            continue
        floats_shaped(f"optimizer state {k}", s, params, _WRITE, params.shape[0])
        states.append(s)
    scalars = opt["scalars"]
    if codes.scalars:
        if not isinstance(scalars, np.ndarray) or scalars.dtype != np.float64 \
                or scalars.shape != (len(codes.scalars),) \
                or not scalars.flags.c_contiguous or not scalars.flags.writeable:
            raise ValueError(f"optimizer scalars: {opt['name']} keeps "
                             f"{', '.join(codes.scalars)} in a writable float64 "
                             f"array of shape ({len(codes.scalars)},)")
    elif scalars is not None:
        raise ValueError(f"optimizer scalars: {opt['name']} keeps none; pass None")
    clip = opt["clip_norm"]
    clip = 0.0 if clip is None else number("optimizer clip_norm", clip, 0.0, np.inf,
                                           True)
    return name, codes.code, tuple(h[k] for k in codes.hyper), states, scalars, clip


def plan_args(X, target, perm, layers, loss, optimizer, params, grads, runs,
              batch, seed, sample_weight=None, penalty="sum"):
    """Check a plan's description (see ``TrainPlan``) and lay it out.

    Raises ``TypeError`` or ``ValueError`` naming the first argument that is
    wrong; allocates nothing the caller sees and changes nothing."""
    floats("X", X, None, _INPLACE)
    shape("X", X, _ANY, _ANY)
    n, d = X.shape
    batch = count("batch", batch, 1)
    if n and batch > n:
        raise ValueError(f"batch: {batch} is more than the {n} rows of X")
    seed = integer("seed", seed, 0, SEED_LIMIT - 1)
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers: must be a list, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers: must hold at least one layer, got none")
    floats("params", params, X, _WRITE)
    shape("params", params, _ANY)
    floats_shaped("grads", grads, X, _WRITE, params.shape[0])
    ops = []
    width = d
    for i, layer in enumerate(layers):
        ops.append(_op(i, layer, X, batch, width, params, grads))
        width = ops[-1].n_out
    if not isinstance(loss, (tuple, list)) or len(loss) not in (2, 3):
        raise ValueError("loss: must be (name, delta) or (name, delta, scale)")
    loss_name, delta = loss[:2]
    choice("loss", loss_name, LOSS_CODES)
    delta = number("delta", delta, 0.0, np.inf, True)
    scale = number("loss scale", loss[2] if len(loss) == 3 else 1.0, 0.0, np.inf,
                   True)
    if sample_weight is not None:
        floats_shaped("sample_weight", sample_weight, X, _INPLACE, n)
        if not (np.isfinite(sample_weight).all() and (sample_weight >= 0).all()):
            raise ValueError("sample_weight: must be finite and >= 0")
    choice("penalty", penalty, {"sum": 0, "sample": 1})
    if loss_name in LABEL_LOSSES:
        ints("target", target, n, -2, width, _INPLACE)
        tb = np.empty(batch, np.int64)
    else:
        floats_shaped("target", target, X, _INPLACE, n, width)
        tb = np.empty((batch, width), X.dtype)
    ints("perm", perm, n, -2, n, _INPLACE)
    name, code, hyper, state, scalars, clip = _optimizer(optimizer, params)
    runs = ints("runs", runs, _ANY, 2, params.shape[0] + 1, _INPLACE)
    last = 0
    for r, (s, e) in enumerate(runs.tolist()):
        if not last <= s <= e:
            raise ValueError(f"runs[{r}]: ({s}, {e}) is not an increasing, "
                             "non-overlapping range")
        last = e
    trainable = [i for i, op in enumerate(ops) if op.trainable]
    first = trainable[0] if trainable else len(ops)
    return PlanSpec(
        X=X, target=target, perm=perm, batch=batch, ops=ops,
        loss=loss_name, loss_code=LOSS_CODES[loss_name], delta=delta,
        loss_scale=scale, sample_weight=sample_weight,
        wb=np.empty(batch if sample_weight is not None else 0, X.dtype),
        per_sample=penalty == "sample",
        optimizer=name, opt_code=code, hyper=hyper, state=state, scalars=scalars,
        clip_norm=clip, params=params, grads=grads, runs=runs, seed=seed,
        Xb=np.empty((batch, d), X.dtype), tb=tb,
        dOut=np.empty((batch, width), X.dtype),
        n_classes=width if loss_name in LABEL_LOSSES else 0,
        first_backward=first,
        batchnorm=any(op.kind == "batchnorm" and op.values["trainable"]
                      for op in ops))


def run_args(spec, first_step, n_steps, lr, opt_step, epoch):
    """The checked arguments of ``TrainPlan.run``: steps within the epoch,
    the rows they take (``perm``, which the caller reshuffles in place) and
    their labels in range, and no batch of one row through a training
    BatchNorm (it has no batch variance)."""
    first_step = count("first_step", first_step, 0)
    n_steps = count("n_steps", n_steps, 0)
    lr = number("lr", lr, 0.0, np.inf)
    opt_step = count("opt_step", opt_step, 0)
    epoch = integer("epoch", epoch, 0, (1 << 64) - 1)
    n, batch = spec.perm.shape[0], spec.batch
    start = min(first_step * batch, n)
    stop = min((first_step + n_steps) * batch, n)
    rows = ints("perm", spec.perm[start:stop], stop - start, -2, n, _INPLACE)
    if spec.n_classes:
        ints("target", spec.target[rows], stop - start, -2, spec.n_classes)
    if spec.batchnorm and stop > start and stop - (stop - 1) // batch * batch == 1:
        raise ValueError("n_steps: the last step would take one row, and a "
                         "training BatchNorm needs at least 2")
    return first_step, n_steps, lr, opt_step, epoch


def steps_per_call(batch, n_params):
    """Steps per ``run`` call for about 2e8 flops, so that Ctrl-C and the
    progress bar stay responsive."""
    return max(1, int(2e8 // (6 * batch * max(n_params, 1))))


__all__ = ["NEEDS_INPUT", "PlanSpec", "plan_args", "run_args", "steps_per_call"]
