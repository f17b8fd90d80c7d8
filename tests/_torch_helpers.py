"""Build a torch nn.Sequential with the same weights as a fastnn model."""

import numpy as np

TORCH_ACTIVATIONS = {
    "sigmoid": lambda nn: nn.Sigmoid(), "tanh": lambda nn: nn.Tanh(),
    "relu": lambda nn: nn.ReLU(), "leaky_relu": lambda nn: nn.LeakyReLU(0.01),
    "elu": lambda nn: nn.ELU(), "selu": lambda nn: nn.SELU(),
    "silu": lambda nn: nn.SiLU(), "gelu": lambda nn: nn.GELU(),
    "gelu_tanh": lambda nn: nn.GELU(approximate="tanh"),
    "softplus": lambda nn: nn.Softplus(),
}


def torch_twin(model):
    """A float64 torch nn.Sequential equal to ``model`` (Dense/BatchNorm/PReLU)."""
    import torch
    from torch import nn

    from fastnn.layers import Activation, BatchNorm, Dense, PReLU

    modules = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            lin = nn.Linear(layer.n_in, layer.units).double()
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.params["weight"].astype(np.float64)))
                lin.bias.copy_(torch.from_numpy(layer.params["bias"].astype(np.float64)))
            modules.append(lin)
            if layer.activation.name != "identity":
                modules.append(TORCH_ACTIVATIONS[layer.activation.name](nn))
        elif isinstance(layer, Activation):
            modules.append(TORCH_ACTIVATIONS[layer.activation.name](nn))
        elif isinstance(layer, BatchNorm):
            bn = nn.BatchNorm1d(layer.n_in, eps=layer.eps,
                                momentum=layer.momentum).double()
            with torch.no_grad():
                bn.weight.copy_(torch.from_numpy(layer.params["weight"]))
                bn.bias.copy_(torch.from_numpy(layer.params["bias"]))
            modules.append(bn)
        elif isinstance(layer, PReLU):
            pr = nn.PReLU(layer.params["weight"].size).double()
            with torch.no_grad():
                pr.weight.copy_(torch.from_numpy(layer.params["weight"]))
            modules.append(pr)
        else:
            raise TypeError(type(layer))
    return nn.Sequential(*modules)
