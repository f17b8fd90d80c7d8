"""PyTorch import: a torch ``nn.Sequential``, or a state_dict loaded into a
fastnn architecture.

Each torch module maps to a fastnn layer through one entry of
:data:`MODULE_IMPORTERS`; an activation module right after a ``Linear`` is
fused into its ``Dense``, which is how fastnn's own tensor names count torch
modules (see :mod:`fastnn.io`). torch is imported only when a module or a
``.pt`` file needs it.
"""

import os
from collections.abc import Mapping

import numpy as np


def _array(value):
    """A tensor (torch or NumPy) as a NumPy array, without importing torch."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class _Builder:
    """Layer descriptions from torch modules, in order."""

    def __init__(self):
        self.specs = []  # [type, config, weights]

    def fail(self, i, module, why):
        raise ValueError(f"module: [{i}] {type(module).__name__}: {why}")

    def activation(self, name, alpha=None):
        last = self.specs[-1] if self.specs else None
        if last and last[0] == "Dense" and last[1]["activation"] == "identity":
            last[1]["activation"] = name
            if alpha is not None:
                last[1]["alpha"] = alpha
            return
        config = {"name": name}
        if alpha is not None:
            config["alpha"] = alpha
        self.specs.append(["Activation", config, []])

    # -- modules -------------------------------------------------------------
    def Linear(self, i, m):
        W = _array(m.weight)
        b = _array(m.bias) if m.bias is not None else np.zeros(W.shape[0], W.dtype)
        self.specs.append(["Dense", {"units": W.shape[0], "activation": "identity"},
                           [W, b]])

    def ReLU(self, i, m):
        self.activation("relu")

    def Sigmoid(self, i, m):
        self.activation("sigmoid")

    def Tanh(self, i, m):
        self.activation("tanh")

    def SELU(self, i, m):
        self.activation("selu")

    def SiLU(self, i, m):
        self.activation("silu")

    def LeakyReLU(self, i, m):
        self.activation("leaky_relu", float(m.negative_slope))

    def ELU(self, i, m):
        self.activation("elu", float(m.alpha))

    def GELU(self, i, m):
        names = {"none": "gelu", "tanh": "gelu_tanh"}
        if m.approximate not in names:
            self.fail(i, m, f"approximate={m.approximate!r} is not supported")
        self.activation(names[m.approximate])

    def Softplus(self, i, m):
        if m.beta != 1 or m.threshold != 20:
            self.fail(i, m, "only beta=1, threshold=20 (the defaults) are supported")
        self.activation("softplus")

    def Softmax(self, i, m):
        if m.dim not in (None, 1, -1):
            self.fail(i, m, f"dim={m.dim} is not the feature axis")
        self.specs.append(["Activation", {"name": "softmax"}, []])

    def Identity(self, i, m):
        pass

    def Flatten(self, i, m):
        if (m.start_dim, m.end_dim) != (1, -1):
            self.fail(i, m, "only Flatten(1, -1) of the 2-D input is supported")

    def Dropout(self, i, m):
        self.specs.append(["Dropout", {"p": float(m.p)}, []])

    def BatchNorm1d(self, i, m):
        if not (m.affine and m.track_running_stats) or m.momentum is None:
            self.fail(i, m, "needs affine=True, track_running_stats=True and a "
                      "momentum")
        self.specs.append(["BatchNorm", {"eps": float(m.eps),
                                         "momentum": float(m.momentum)},
                           [_array(m.weight), _array(m.bias),
                            _array(m.running_mean), _array(m.running_var)]])

    def PReLU(self, i, m):
        slope = _array(m.weight)
        n = 1 if m.num_parameters == 1 else "all"
        self.specs.append(["PReLU", {"num_parameters": n}, [slope.reshape(-1)]])


#: torch module class name -> the :class:`_Builder` method that reads it.
MODULE_IMPORTERS = {name: getattr(_Builder, name) for name in (
    "Linear", "ReLU", "Sigmoid", "Tanh", "SELU", "SiLU", "LeakyReLU", "ELU",
    "GELU", "Softplus", "Softmax", "Identity", "Flatten", "Dropout",
    "BatchNorm1d", "PReLU")}


def _from_module(module, torch):
    import fastnn
    from fastnn.layers import LAYERS

    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"module: expected a torch nn.Sequential, got "
                        f"{type(module).__name__}; pass a state_dict and an "
                        "architecture for other modules")
    builder = _Builder()
    for i, m in enumerate(module):
        reader = MODULE_IMPORTERS.get(type(m).__name__)
        if reader is None:
            raise ValueError(f"module: [{i}] {type(m).__name__} has no fastnn "
                             f"layer; supported: {', '.join(MODULE_IMPORTERS)}")
        reader(builder, i, m)
    params = [p for p in module.parameters()]
    dtype = params[0].dtype if params else torch.float32
    names = {torch.float32: "float32", torch.float64: "float64"}
    if dtype not in names:
        raise ValueError(f"module: parameters are {dtype}; float32 or float64 only")
    specs = builder.specs
    first = next((s for s in specs if s[2]), None)
    if first is None or first[0] not in ("Dense", "BatchNorm") and \
            first[1].get("num_parameters") != "all":
        raise ValueError("module: the input width is not fixed by its first "
                         "layer with parameters (Linear, BatchNorm1d, PReLU(n))")
    input_dim = first[2][0].shape[-1]
    layers = [LAYERS[kind](**config) for kind, config, _ in specs]
    model = fastnn.Sequential(layers, input_dim=input_dim, dtype=names[dtype])
    model.set_weights([w for _, _, weights in specs for w in weights])
    return model


def _load_state_dict(path):
    from fastnn.io import _check_path

    path = _check_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file: {path}")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return load_file(path)
        except (SafetensorError, ValueError, OSError) as exc:
            raise ValueError(f"path: {path} is not a safetensors file ({exc})") \
                from None
    import pickle

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"path: {path} is not a state_dict that loads with "
                         f"weights_only=True ({type(exc).__name__}: {first})") \
            from None
    if not isinstance(loaded, Mapping):
        raise ValueError(f"path: {path} holds a {type(loaded).__name__}, not a "
                         "state_dict")
    return loaded


def _input_dim(model, state):
    """The input width from the first layer whose tensors fix it."""
    index = 0
    for layer in model.layers:
        kind = type(layer).__name__
        fixed = kind in ("Dense", "Maxout", "BatchNorm") or (
            kind == "PReLU" and layer.num_parameters == "all")
        if fixed:
            key = f"{index}.weight"
            if key not in state:
                raise ValueError(f"state_dict: no tensor {key!r}")
            return int(_array(state[key]).shape[-1])
        if kind == "PReLU":
            break
        index += layer.torch_modules
    raise ValueError("architecture: its first layers do not fix the input width; "
                     "build it (input_dim=...) first")


def _into(model, state):
    from fastnn.io import _counter_names, _tensor_names
    from fastnn.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"architecture: expected a fastnn Sequential, got "
                        f"{type(model).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"state_dict: expected a mapping of tensors, got "
                        f"{type(state).__name__}")
    built_here = not model.built
    if built_here:
        model.build(_input_dim(model, state))
    try:
        names = _tensor_names(model)
        counters = _counter_names(model)
        expected = {name for name, _, _, _ in names} | {n for n, _ in counters}
        missing = [name for name, _, _, _ in names if name not in state]
        unexpected = sorted(set(state) - expected, key=str)
        if missing or unexpected:
            raise ValueError(f"state_dict: missing {missing}, unexpected "
                             f"{unexpected[:20]}")
        arrays = []
        for name, layer, key, shape in names:
            value = _array(state[name])
            if value.shape != shape:
                raise ValueError(f"state_dict: {name!r} has shape {value.shape}, "
                                 f"{type(layer).__name__} {key} needs {shape}")
            arrays.append(value)
        model.set_weights(arrays)
    except BaseException:
        if built_here:
            model._unbuild()
        raise
    for name, layer in counters:
        if name in state:
            layer.num_batches_tracked = int(_array(state[name]).reshape(()))
    return model


def from_torch(source, architecture=None):
    """A :class:`fastnn.Sequential` from PyTorch.

    Parameters
    ----------
    source : torch.nn.Sequential, mapping, str or os.PathLike
        - an ``nn.Sequential`` of ``Linear``, the activation modules fastnn
          has, ``BatchNorm1d``, ``PReLU``, ``Dropout``, ``Softmax``,
          ``Identity`` and ``Flatten``: built into a new model (no
          ``architecture``);
        - a state_dict (a mapping of names to tensors or arrays), a
          ``.safetensors`` file, or a ``.pt`` file (read with
          ``torch.load(weights_only=True)``, so it runs no code): loaded into
          ``architecture``;
        - a torch module with ``architecture``: its ``state_dict()``.
    architecture : Sequential or None
        The model to load a state_dict into, built or not (an unbuilt one is
        built for the width its first layer's tensor gives). Tensor names are
        those of the equivalent torch ``nn.Sequential`` (``"0.weight"``, ...),
        as in fastnn's own files.

    Returns
    -------
    Sequential
        The new model, or ``architecture`` with the weights loaded.

    Raises
    ------
    ValueError
        If a module has no fastnn layer (the message names it), or the
        state_dict has missing, unexpected or misshapen tensors; a refused
        call leaves ``architecture`` as it was.
    TypeError
        If ``source`` or ``architecture`` is of the wrong kind.
    """
    if isinstance(source, (str, os.PathLike)):
        if architecture is None:
            raise ValueError("architecture: a state_dict file needs the fastnn "
                             "model to load into")
        return _into(architecture, _load_state_dict(source))
    if isinstance(source, Mapping):
        if architecture is None:
            raise ValueError("architecture: a state_dict needs the fastnn model "
                             "to load into")
        return _into(architecture, source)
    import torch

    if not isinstance(source, torch.nn.Module):
        raise TypeError(f"source: expected a torch module, a state_dict or a "
                        f"path, got {type(source).__name__}")
    if architecture is not None:
        return _into(architecture, source.state_dict())
    return _from_module(source, torch)
