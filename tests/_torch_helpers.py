"""A torch nn.Sequential with the same weights as a fastnn model, and its
training as fastnn's ``fit`` does it: the losses, the optimizers, the l1/l2
penalties, gradient clipping and fit's own dropout masks and noise."""

import contextlib

import numpy as np

TORCH_ACTIVATIONS = {
    "sigmoid": lambda nn, a: nn.Sigmoid(), "tanh": lambda nn, a: nn.Tanh(),
    "relu": lambda nn, a: nn.ReLU(), "leaky_relu": lambda nn, a: nn.LeakyReLU(a),
    "elu": lambda nn, a: nn.ELU(a), "selu": lambda nn, a: nn.SELU(),
    "silu": lambda nn, a: nn.SiLU(), "gelu": lambda nn, a: nn.GELU(),
    "gelu_tanh": lambda nn, a: nn.GELU(approximate="tanh"),
    "softplus": lambda nn, a: nn.Softplus(),
}

#: (id, fastnn class, keyword arguments taken by both fastnn and torch.optim),
#: defaults and other values of every hyperparameter that torch shares
#: (AdaGrad's ``decay``, which torch lacks, stays at its torch-equal 1).
OPTIMIZERS = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.1,
                                 weight_decay=1e-2)),
    ("sgd_nesterov", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adagrad", "AdaGrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-3,
                                initial_accumulator_value=0.1, eps=1e-6)),
    ("rmsprop", "RMSProp", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("rmsprop_centered", "RMSProp", dict(lr=0.01, momentum=0.5, centered=True,
                                         weight_decay=1e-2)),
    ("adadelta", "AdaDelta", dict(lr=1.0, rho=0.8, eps=1e-5, weight_decay=1e-2)),
    ("adam", "Adam", dict(lr=0.01, weight_decay=1e-2)),
    ("adam_amsgrad", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6,
                                  amsgrad=True)),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("nadam", "NAdam", dict(lr=0.01, weight_decay=1e-2, momentum_decay=1e-2)),
]
TORCH_NAMES = {"SGD": "SGD", "AdaGrad": "Adagrad", "RMSProp": "RMSprop",
               "AdaDelta": "Adadelta", "Adam": "Adam", "AdamW": "AdamW",
               "NAdam": "NAdam"}


def torch_optimizer(cls, kwargs, params):
    """The torch.optim optimizer equal to fastnn's ``cls(**kwargs)``."""
    import torch

    kwargs = dict(kwargs)
    if cls in ("Adam", "AdamW", "NAdam"):
        kwargs["foreach"] = False
    return getattr(torch.optim, TORCH_NAMES[cls])(params, **kwargs)


def torch_loss(name, out, y):
    """fastnn's loss ``name`` (mean over the batch) in torch."""
    import torch

    F = torch.nn.functional
    if name == "softmax_cross_entropy":
        return F.cross_entropy(out, y)
    if name == "hinge":
        return F.multi_margin_loss(out, y) * out.shape[1]
    if name == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(out, y)
    if name == "mse":
        return F.mse_loss(out, y)
    if name == "mae":
        return F.l1_loss(out, y)
    if name == "huber":
        return F.huber_loss(out, y, delta=1.0)
    raise KeyError(name)


@contextlib.contextmanager
def torch_default_dtype(dtype):
    """torch's default dtype set to ``dtype`` (a NumPy dtype) for the block:
    torch keeps scalar optimizer state (NAdam's mu_product) in it."""
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(_torch_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(default)


def _torch_dtype(dtype):
    import torch

    return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64


def _copy(param, array):
    import torch

    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def torch_twin(model, clock=None):
    """A torch nn.Sequential equal to ``model``, in the model's dtype.

    Frozen layers have ``requires_grad=False`` (a frozen BatchNorm stays in
    eval mode). A ``Linear`` from a ``Dense`` carries the layer's ``l1`` and
    ``l2`` (see :func:`torch_penalty`). Dropout and GaussianNoise draw the
    numbers of the fit whose stream ``clock`` (a
    :class:`_torch_modules.PhiloxClock`) follows; a model with either needs
    one.
    """
    from torch import nn

    import _torch_modules as tm
    from fastnn.layers import (
        Activation, BatchNorm, Dense, Dropout, GaussianNoise, Maxout, PReLU,
    )

    dtype = _torch_dtype(model.dtype)
    modules = []
    for index, layer in enumerate(model.layers):
        if isinstance(layer, (Dropout, GaussianNoise)) and clock is None:
            raise ValueError("torch_twin: a model with Dropout or GaussianNoise "
                             "needs the clock of its fit's random stream")
        if isinstance(layer, Dense):
            module = nn.Linear(layer.n_in, layer.units, dtype=dtype)
            module.l1, module.l2 = layer.l1, layer.l2
            modules.append(module)
            if layer.activation.name != "identity":
                modules.append(TORCH_ACTIVATIONS[layer.activation.name](
                    nn, layer.alpha))
        elif isinstance(layer, Activation):
            if layer.activation is None:
                module = tm.Softmax(layer.temperature)
            else:
                module = TORCH_ACTIVATIONS[layer.activation.name](nn, layer.alpha)
        elif isinstance(layer, Dropout):
            module = tm.PhiloxDropout(clock, index, layer.p)
        elif isinstance(layer, GaussianNoise):
            module = tm.PhiloxNoise(clock, index, layer.std)
        elif isinstance(layer, BatchNorm):
            bn = nn.BatchNorm1d if layer.trainable else tm.FrozenBatchNorm1d
            module = bn(layer.n_in, eps=layer.eps, momentum=layer.momentum,
                        dtype=dtype)
            _copy(module.running_mean, layer.state["running_mean"])
            _copy(module.running_var, layer.state["running_var"])
        elif isinstance(layer, PReLU):
            module = nn.PReLU(layer.params["weight"].size, dtype=dtype)
        elif isinstance(layer, Maxout):
            module = tm.Maxout(layer.n_in, layer.units, layer.pieces, dtype)
        else:
            raise TypeError(type(layer))
        for param, name in zip(module.parameters(), layer.params, strict=True):
            _copy(param, layer.params[name])
            param.requires_grad_(layer.trainable)
        if not isinstance(layer, Dense):
            modules.append(module)
    return nn.Sequential(*modules)


def torch_penalty(net):
    """The l1/l2 penalty of the Dense layers of a :func:`torch_twin` net,
    as fastnn adds it to the loss: ``l1 sum|W| + l2/2 sum W^2``."""
    total = 0.0
    for module in net.modules():
        if getattr(module, "l1", 0):
            total = total + module.l1 * module.weight.abs().sum()
        if getattr(module, "l2", 0):
            total = total + 0.5 * module.l2 * (module.weight ** 2).sum()
    return total


def torch_weights(net):
    """The arrays of a :func:`torch_twin` net in the order of fastnn's
    ``model.get_weights()`` (BatchNorm's running statistics included)."""
    return [v.detach().numpy() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def train_torch(net, X, y, loss, optimizer, epochs, batch, clock=None,
                clip_norm=None):
    """Train ``net`` as ``fit(X, y, loss, epochs, batch_size=batch,
    shuffle=False)`` trains its model: each minibatch's loss (mean) plus
    :func:`torch_penalty`, global-norm clipping of the trainable
    parameters' gradients to ``clip_norm``, then ``optimizer.step()``.

    Returns the gradient norms before clipping (empty without ``clip_norm``).
    """
    import torch

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    trainable = [p for p in net.parameters() if p.requires_grad]
    norms = []
    net.train()
    for epoch in range(epochs):
        for step, start in enumerate(range(0, len(X), batch)):
            if clock is not None:
                clock.epoch, clock.step = epoch, step
            optimizer.zero_grad()
            out = net(Xt[start:start + batch])
            value = torch_loss(loss, out, yt[start:start + batch]) + torch_penalty(net)
            value.backward()
            if clip_norm is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_(trainable,
                                                                  clip_norm)))
            optimizer.step()
    return norms
