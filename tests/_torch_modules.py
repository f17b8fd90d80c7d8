"""torch modules for the fastnn layers that torch.nn lacks, or that must
draw fit's own random numbers; :func:`_torch_helpers.torch_twin` uses them.

Importing this module imports torch: import it only where torch is there.
"""

import torch
from torch import nn

from fastnn.reference.random import dropout_mask_philox, gaussian_noise_philox


class PhiloxClock:
    """Where a ``fit``'s random stream stands: the fit's ``seed`` and the
    epoch and step (both 0-based) being trained.
    :func:`_torch_helpers.train_torch` advances it before every step."""

    def __init__(self, seed):
        self.seed = seed
        self.epoch = 0
        self.step = 0


class PhiloxDropout(nn.Module):
    """fastnn's ``Dropout(p)`` at index ``index`` of ``model.layers``: in
    training ``x * mask``, ``mask`` the one the plan draws at the clock's
    epoch and step (:func:`fastnn.reference.random.dropout_mask_philox`);
    in eval mode the identity."""

    def __init__(self, clock, index, p):
        super().__init__()
        self.clock, self.index, self.p = clock, index, p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        c = self.clock
        mask = torch.empty_like(x)
        dropout_mask_philox(c.seed, c.epoch, c.step, self.index, self.p,
                            mask.numpy())
        return x * mask


class PhiloxNoise(nn.Module):
    """fastnn's ``GaussianNoise(std)`` at index ``index`` of ``model.layers``:
    in training ``x + std * Z``, ``Z`` the plan's normals at the clock's epoch
    and step (:func:`fastnn.reference.random.gaussian_noise_philox` of zeros
    gives ``std * Z``); in eval mode the identity."""

    def __init__(self, clock, index, std):
        super().__init__()
        self.clock, self.index, self.std = clock, index, std

    def forward(self, x):
        if not self.training or self.std == 0:
            return x
        c = self.clock
        noise = torch.empty_like(x)
        zeros = torch.zeros_like(x).numpy()
        gaussian_noise_philox(c.seed, c.epoch, c.step, self.index, self.std, zeros,
                              noise.numpy())
        return x + noise


class Softmax(nn.Module):
    """``softmax(x / temperature)`` over the features: fastnn's
    ``Activation("softmax", temperature=...)``."""

    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature

    def forward(self, x):
        return torch.softmax(x / self.temperature, dim=1)


class Maxout(nn.Module):
    """fastnn's ``Maxout(units, pieces)``: unit ``j`` is the max of outputs
    ``j * pieces ... j * pieces + pieces - 1`` of one ``Linear``."""

    def __init__(self, n_in, units, pieces, dtype):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(n_in, units * pieces, dtype=dtype)

    def forward(self, x):
        z = self.linear(x).view(x.shape[0], self.units, self.pieces)
        return z.max(dim=2).values


class FrozenBatchNorm1d(nn.BatchNorm1d):
    """A ``BatchNorm1d`` that stays in eval mode (its running statistics,
    never updated) whatever ``train()`` says: fastnn's frozen BatchNorm."""

    def train(self, mode=True):
        return super().train(False)
