"""Training steps of fastnn models equal torch's, in float64."""

import numpy as np
import pytest

import fastnn
from _torch_helpers import (
    OPTIMIZERS, torch_default_dtype, torch_optimizer, torch_twin, torch_weights,
    train_torch,
)

torch = pytest.importorskip("torch")

N, D, H, K = 24, 5, 7, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, K, N)
    return X, y


def _run_both(layers, loss, optimizer, torch_opt, X, y, steps=5, backend="cython"):
    model = fastnn.Sequential(layers, input_dim=X.shape[1], dtype="float64", seed=3,
                              backend=backend)
    net = torch_twin(model)
    train_torch(net, X, y, loss, torch_opt(net.parameters()), epochs=steps,
                batch=len(X))
    model.fit(X, y, loss=loss, optimizer=optimizer, epochs=steps, batch_size=len(X),
              shuffle=False, verbose=0)
    return model, net


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("case", OPTIMIZERS, ids=[c[0] for c in OPTIMIZERS])
def test_optimizer_steps_match_torch(case, backend):
    _, cls, kwargs = case
    X, y = _data()
    optimizer = getattr(fastnn, cls)(**kwargs)
    # torch keeps scalar state (NAdam's mu_product, step) in the default dtype.
    with torch_default_dtype(np.float64):
        model, net = _run_both(
            [fastnn.Dense(H, "tanh"), fastnn.Dense(K)], "softmax_cross_entropy",
            optimizer, lambda p: torch_optimizer(cls, kwargs, p), X, y,
            backend=backend)
    for ours, ref in zip(model.get_weights(), torch_weights(net), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


LOSSES = ["softmax_cross_entropy", "hinge", "binary_cross_entropy", "mse", "mae",
          "huber"]


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_training_step_matches_torch(loss):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, D))
    if loss in ("softmax_cross_entropy", "hinge"):
        y = rng.integers(0, K, N)
    elif loss == "binary_cross_entropy":
        y = (rng.random((N, K)) > 0.5).astype(np.float64)
    else:
        y = 2 * rng.standard_normal((N, K))
    model, net = _run_both(
        [fastnn.Dense(H, "relu"), fastnn.Dense(K)], loss, fastnn.SGD(lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05), X, y, steps=3)
    for ours, p in zip(model.get_weights(), net.parameters()):
        np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-10, atol=1e-12)


ACTS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu",
        "gelu", "gelu_tanh", "softplus"]


@pytest.mark.parametrize("activation", ACTS)
def test_activation_training_step_matches_torch(activation):
    X, y = _data(2)
    model, net = _run_both(
        [fastnn.Dense(H, activation), fastnn.Dense(H, activation), fastnn.Dense(K)],
        "softmax_cross_entropy", fastnn.SGD(lr=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1), X, y, steps=3)
    for ours, p in zip(model.get_weights(), net.parameters()):
        np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_and_prelu_training_match_torch():
    X, y = _data(4)
    layers = [fastnn.Dense(H), fastnn.BatchNorm(), fastnn.PReLU(), fastnn.Dense(K)]
    model, net = _run_both(layers, "softmax_cross_entropy", fastnn.SGD(lr=0.1),
                           lambda p: torch.optim.SGD(p, lr=0.1), X, y, steps=3)
    for a, b in zip(model.get_weights(), torch_weights(net), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    net.eval()
    np.testing.assert_allclose(model.predict(X), net(torch.from_numpy(X)).detach()
                               .numpy(), rtol=1e-9, atol=1e-12)


def test_l2_penalty_gradient_matches_torch():
    X, y = _data(5)
    l2 = 0.3
    model = fastnn.Sequential([fastnn.Dense(H, "tanh", l2=l2), fastnn.Dense(K)],
                              input_dim=D, dtype="float64", seed=0)
    net = torch_twin(model)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)),
                                                 torch.from_numpy(y))
        loss = loss + 0.5 * l2 * (net[0].weight ** 2).sum()
        loss.backward()
        opt.step()
    model.fit(X, y, optimizer=fastnn.SGD(lr=0.1), epochs=3, batch_size=N,
              shuffle=False, verbose=0)
    for ours, p in zip(model.get_weights(), net.parameters()):
        np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-10, atol=1e-12)
