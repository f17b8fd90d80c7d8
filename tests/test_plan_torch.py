"""The training plan against PyTorch, over a matrix of layers, optimizers,
losses and regularizers: after two epochs of five minibatches, every weight
and running statistic equals torch's to 1e-7 in float64.

The matrix is a covering design: every pair of levels of any two factors
(layer kind, optimizer, loss, regularizer) occurs in at least one case, so
that each layer kind meets every optimizer and every loss, and each
regularizer every optimizer. torch's Dropout and GaussianNoise are replaced
by modules that draw the plan's own numbers (see
:mod:`fastnn._kernels.plan` for how the stream is keyed).
"""

import collections
import itertools

import numpy as np
import pytest

import fastnn
from _torch_helpers import (
    OPTIMIZERS, torch_default_dtype, torch_optimizer, torch_twin, torch_weights,
    train_torch,
)
from fastnn import (
    Activation, BatchNorm, Dense, Dropout, GaussianNoise, Maxout, PReLU,
)

torch = pytest.importorskip("torch")
from _torch_modules import PhiloxClock  # after importorskip: it imports torch

#: Outputs, and epochs of each fit.
K, EPOCHS = 3, 2
#: Rows, features, hidden width and batch size of a case.
Shape = collections.namedtuple("Shape", "n d h batch")
#: Steps of 5, 5, 5, 5 and 2 rows.
SMALL = Shape(22, 6, 8, 5)
#: Wide enough for the kernels' blocked and threaded paths; steps of 64 rows
#: and a last one of 24.
WIDE = Shape(600, 40, 96, 64)
#: The fit's seed, the key of its dropout and noise stream.
SEED = 11

#: Layer kind -> the model's layers, given the Dense layers' regularizer
#: keywords and the hidden width.
LAYERS = {
    "dense": lambda r, h: [Dense(h, "tanh", **r), Dense(h, "gelu", **r),
                           Dense(K, **r)],
    "activation": lambda r, h: [Dense(h, **r), Activation("leaky_relu", alpha=0.2),
                                Dense(h, "elu", alpha=0.5, **r),
                                Activation("softplus"), Dense(K, **r)],
    "softmax": lambda r, h: [Dense(h, **r), Activation("softmax", temperature=2.0),
                             Dense(K, **r)],
    "dropout": lambda r, h: [Dropout(0.2), Dense(h, "relu", **r), Dropout(0.5),
                             Dense(K, **r)],
    "noise": lambda r, h: [GaussianNoise(0.3), Dense(h, "sigmoid", **r),
                           GaussianNoise(0.1), Dense(K, **r)],
    # Not Dense then BatchNorm: the batch mean cancels that Dense's bias,
    # whose gradient is then rounding noise, which an adaptive optimizer
    # (Adam, RMSProp, AdaGrad) scales up to full steps, differently in
    # fastnn and torch.
    "batchnorm": lambda r, h: [Dense(h, "tanh", **r), BatchNorm(momentum=0.2),
                               Activation("relu"), Dense(K, **r)],
    "prelu": lambda r, h: [Dense(h, **r), PReLU(), Dense(h, **r),
                           PReLU("all", init=0.1), Dense(K, **r)],
    "maxout": lambda r, h: [Maxout(h, pieces=3), Dense(K, **r)],
}
#: Regularizer -> (the Dense layers' keyword arguments, the optimizer's).
REGULARIZERS = {
    "none": ({}, {}),
    "l1": ({"l1": 1e-2}, {}),
    "l2": ({"l2": 5e-2}, {}),
    "clip_norm": ({}, {"clip_norm": 0.1}),
}
OPTIMIZER_CASES = {case[0]: case[1:] for case in OPTIMIZERS}
LOSSES = ["softmax_cross_entropy", "hinge", "binary_cross_entropy", "mse", "mae",
          "huber"]
FACTORS = {"layers": list(LAYERS), "optimizer": list(OPTIMIZER_CASES),
           "loss": LOSSES, "regularizer": list(REGULARIZERS)}


def _pairs(row):
    """The pairs of (factor, level) in ``row``."""
    return {frozenset({(f, row[f]), (g, row[g])})
            for f, g in itertools.combinations(row, 2)}


def pairwise_design(factors):
    """Rows (dicts factor -> level) covering every pair of levels of any two
    factors: the product of the two largest factors, each row completed
    with the levels of the others that cover the most pairs not yet covered
    (the first such, so the design is the same at every run)."""
    first, second, *rest = sorted(factors, key=lambda f: -len(factors[f]))
    covered, rows = set(), []
    for a, b in itertools.product(factors[first], factors[second]):
        candidates = [{first: a, second: b, **dict(zip(rest, levels))}
                      for levels in itertools.product(*(factors[f] for f in rest))]
        row = max(candidates, key=lambda r: len(_pairs(r) - covered))
        covered |= _pairs(row)
        rows.append({f: row[f] for f in factors})
    return rows


DESIGN = pairwise_design(FACTORS)


def _row_id(row):
    return "-".join(row.values())


def _data(loss, dtype, shape):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((shape.n, shape.d)).astype(dtype)
    if loss in ("softmax_cross_entropy", "hinge"):
        y = rng.integers(0, K, shape.n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((shape.n, K)) > 0.5).astype(dtype)
    else:
        y = (2 * rng.standard_normal((shape.n, K))).astype(dtype)
    return X, y


def _fit_both(layers, optimizer, loss, regularizer, dtype=np.float64,
              shape=SMALL, prepare=None):
    """fastnn's fit and torch's training of the same model (``layers``, a
    kind of :data:`LAYERS` or a list of layers); returns the model, the torch
    net, the weights before fit and torch's gradient norms.
    ``prepare(model)`` may set weights before both start."""
    cls, kwargs = OPTIMIZER_CASES[optimizer]
    dense_kwargs, opt_kwargs = REGULARIZERS[regularizer]
    X, y = _data(loss, dtype, shape)
    if isinstance(layers, str):
        layers = LAYERS[layers](dense_kwargs, shape.h)
    model = fastnn.Sequential(layers, input_dim=shape.d, dtype=dtype, seed=3)
    if prepare is not None:
        prepare(model)
    before = model.get_weights()
    clock = PhiloxClock(SEED)
    # torch keeps scalar state (NAdam's mu_product, step) in the default dtype.
    with torch_default_dtype(dtype):
        net = torch_twin(model, clock)
        trainable = [p for p in net.parameters() if p.requires_grad]
        norms = train_torch(net, X, y, loss, torch_optimizer(cls, kwargs, trainable),
                            EPOCHS, shape.batch, clock, opt_kwargs.get("clip_norm"))
    model.fit(X, y, loss=loss, optimizer=getattr(fastnn, cls)(**kwargs, **opt_kwargs),
              epochs=EPOCHS, batch_size=shape.batch, shuffle=False, verbose=0,
              seed=SEED)
    return model, net, before, norms


def _assert_matches(model, net, before, norms, regularizer, tol):
    ours, theirs = model.get_weights(), torch_weights(net)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol,
                                   err_msg=f"weight array {i}")
    assert [layer.num_batches_tracked for layer in model.layers
            if isinstance(layer, BatchNorm)] == [
        int(m.num_batches_tracked) for m in net.modules()
        if isinstance(m, torch.nn.BatchNorm1d)]
    # Not vacuous: training moved the weights well past the tolerance, and
    # the clipping case clipped.
    assert max(np.max(np.abs(a - b)) for a, b in zip(ours, before)) > 100 * tol
    if regularizer == "clip_norm":
        assert max(norms) > REGULARIZERS["clip_norm"][1]["clip_norm"]


def test_design_covers_every_pair():
    covered = set().union(*map(_pairs, DESIGN))
    wanted = {frozenset({(f, a), (g, b)})
              for f, g in itertools.combinations(FACTORS, 2)
              for a in FACTORS[f] for b in FACTORS[g]}
    assert covered == wanted
    assert len(DESIGN) == len(LAYERS) * len(OPTIMIZER_CASES)


@pytest.mark.parametrize("row", DESIGN, ids=map(_row_id, DESIGN))
def test_plan_matches_torch(row):
    model, net, before, norms = _fit_both(**row)
    _assert_matches(model, net, before, norms, row["regularizer"], 1e-7)


#: A few rows of the design: each layer kind once, each with another of the
#: optimizers, from the last (the adaptive ones) back.
SAMPLE = [next(row for row in DESIGN if (row["layers"], row["optimizer"]) == pair)
          for pair in zip(LAYERS, reversed(OPTIMIZER_CASES))]


@pytest.mark.parametrize("row", SAMPLE, ids=map(_row_id, SAMPLE))
def test_float32_plan_matches_torch(row):
    model, net, before, norms = _fit_both(**row, dtype=np.float32)
    _assert_matches(model, net, before, norms, row["regularizer"], 3e-5)


@pytest.mark.slow
@pytest.mark.parametrize("row", SAMPLE, ids=map(_row_id, SAMPLE))
def test_wide_plan_matches_torch(row):
    model, net, before, norms = _fit_both(**row, shape=WIDE)
    _assert_matches(model, net, before, norms, row["regularizer"], 1e-7)


def _frozen_layers():
    h = SMALL.h
    return [Dense(h, "tanh", l2=0.1, trainable=False), BatchNorm(trainable=False),
            Dense(h), PReLU("all", trainable=False),
            Maxout(h, pieces=2, trainable=False), BatchNorm(), Dense(K, l1=1e-2)]


def _randomize_frozen(model):
    """Frozen layers with weights and statistics that are not the initial
    ones (a frozen BatchNorm at weight 1, bias 0, mean 0, var 1 hides much)."""
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if not layer.trainable:
            for array in layer.get_arrays().values():
                array[...] = rng.uniform(0.5, 1.5, array.shape)


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_CASES))
def test_frozen_layers_stay_bit_identical(optimizer):
    frozen = {}

    def prepare(model):
        _randomize_frozen(model)
        frozen.update({(i, name): array.copy()
                       for i, layer in enumerate(model.layers) if not layer.trainable
                       for name, array in layer.get_arrays().items()})

    model, net, before, norms = _fit_both(_frozen_layers(), optimizer,
                                          "softmax_cross_entropy", "clip_norm",
                                          prepare=prepare)
    for (i, name), array in frozen.items():
        assert np.array_equal(model.layers[i].get_arrays()[name], array), (i, name)
    _assert_matches(model, net, before, norms, "clip_norm", 1e-7)
