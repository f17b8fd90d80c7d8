"""Diagnostics show the textbook phenomena with real numbers."""

import numpy as np
import pytest

import fastnn
from fastnn import diagnostics


@pytest.fixture(scope="module")
def experiment():
    return diagnostics.depth_experiment(depth=10, width=500, n_samples=200)


def _hidden(rows):
    return [r for r in rows if r["activation"] not in (None, "identity")]


def test_small_init_collapses_activations(experiment):
    rows = _hidden(experiment["tanh N(0, 0.01)"]["rows"])
    assert rows[-1]["std"] < 1e-3 * rows[0]["std"]
    assert experiment["tanh N(0, 0.01)"]["verdict"] == "vanishing"


def test_input_and_weights_are_independent(experiment):
    # N(0, 0.01) weights on N(0, 1) input with fan-in 500 give pre-activations
    # of std 0.01 * sqrt(500) = 0.22: |tanh| > 0.99 needs |z| > 2.65, twelve
    # standard deviations out, so no first-layer unit may saturate. Weights
    # drawn from the input's own stream put ||x||^2 / 100 ~ 5 on a diagonal.
    first = experiment["tanh N(0, 0.01)"]["rows"][0]
    z, w = np.polynomial.hermite_e.hermegauss(40)  # E[tanh(0.22 Z)^2], Z ~ N(0, 1)
    expected_std = np.sqrt(w @ np.tanh(0.01 * np.sqrt(500) * z) ** 2 / w.sum())
    assert first["std"] == pytest.approx(expected_std, rel=0.02)
    assert first["saturated"] == 0.0


def test_unit_normal_init_saturates(experiment):
    rows = _hidden(experiment["tanh N(0, 1)"]["rows"])
    for r in rows[len(rows) // 2:]:
        assert r["saturated"] > 0.5
    # saturated units pass gradients down amplified: N(0, 1) weights with
    # fan-in 500 multiply them by ~sqrt(500) * tanh' per layer
    assert experiment["tanh N(0, 1)"]["verdict"] == "exploding"
    assert experiment["tanh N(0, 1)"]["saturation"] > 0.5


def test_glorot_stays_healthy(experiment):
    rows = _hidden(experiment["tanh Glorot"]["rows"])
    stds = [r["std"] for r in rows]
    assert max(stds) / min(stds) < 3
    assert experiment["tanh Glorot"]["verdict"] == "healthy"


def test_relu_he_keeps_scale_better_than_glorot(experiment):
    glorot = _hidden(experiment["relu Glorot"]["rows"])
    he = _hidden(experiment["relu He"]["rows"])
    assert he[-1]["std"] / he[0]["std"] > 3 * glorot[-1]["std"] / glorot[0]["std"]
    assert 0.3 < he[-1]["std"] / he[0]["std"] < 3
    # He et al. (2015): Glorot's scale halves the signal per ReLU layer both
    # ways, He's keeps it
    assert experiment["relu Glorot"]["verdict"] == "vanishing"
    assert experiment["relu He"]["verdict"] == "healthy"


def test_small_init_vanishes_backward_not_in_weight_gradients(experiment):
    # Glorot & Bengio (2010), section 4.2.1: in the linear regime the weight
    # gradients keep their scale across layers while the back-propagated
    # gradients shrink toward the input.
    res = experiment["tanh N(0, 0.01)"]
    assert res["ratio"] < 1e-4
    assert 0.5 < res["weight_ratio"] < 2


def test_layer_stats_leaves_model_unchanged():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6))
    y = rng.integers(0, 3, 50)
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.BatchNorm(),
                               fastnn.Dropout(0.2), fastnn.Dense(3)], input_dim=6,
                              seed=0)
    before = model.get_weights()
    rows = diagnostics.layer_stats(model, X, y, "cross_entropy")
    assert len(rows) == 4
    assert rows[0]["dead"] is not None and rows[0]["grad_norm"] > 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


ACTS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "silu",
        "gelu", "gelu_tanh", "softplus"]


@pytest.mark.parametrize("activation", ACTS)
def test_gradient_check_every_activation(activation):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 5))
    y = rng.integers(0, 3, 12)
    model = fastnn.Sequential([fastnn.Dense(6, activation), fastnn.Dense(3)],
                              input_dim=5, seed=0, dtype="float64")
    assert diagnostics.gradient_check(model, X, y, "cross_entropy") < 1e-6


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "hinge", "mse", "mae",
                                  "huber", "binary_cross_entropy"])
def test_gradient_check_every_loss(loss):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((12, 5))
    if loss in ("softmax_cross_entropy", "hinge"):
        y = rng.integers(0, 3, 12)
    elif loss == "binary_cross_entropy":
        y = (rng.random((12, 3)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((12, 3))
    model = fastnn.Sequential([fastnn.Dense(6, "tanh", l2=0.1), fastnn.Dense(3)],
                              input_dim=5, seed=0, dtype="float64")
    assert diagnostics.gradient_check(model, X, y, loss) < 1e-6


def test_gradient_check_layers():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 5))
    y = rng.integers(0, 3, 16)
    model = fastnn.Sequential([fastnn.Dense(6), fastnn.BatchNorm(),
                               fastnn.PReLU("all"), fastnn.Maxout(4, 3),
                               fastnn.Activation("softmax", temperature=2.0),
                               fastnn.Dense(3)], input_dim=5, seed=0)
    assert diagnostics.gradient_check(model, X, y, "cross_entropy") < 1e-6


def test_gradient_check_detects_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 5))
    y = rng.integers(0, 3, 12)
    model = fastnn.Sequential([fastnn.Dense(6, "tanh"), fastnn.Dense(3)], input_dim=5,
                              seed=0, dtype="float64")
    original = fastnn.layers.Dense.backward

    def wrong(self, ops, dY, ws, k, need_dX):
        dX = original(self, ops, dY, ws, k, need_dX)
        self.grads["weight"] *= 1.01
        return dX

    monkeypatch.setattr(fastnn.layers.Dense, "backward", wrong)
    assert diagnostics.gradient_check(model, X, y, "cross_entropy") > 1e-3


# ---- the report: layer names, a ratio labelled as one, never nan ----------------

def _diagnose_cli(model, tmp_path):
    """``fastnn diagnose --model M --data digits`` in a subprocess."""
    import subprocess
    import sys

    from _child import child_env

    path = tmp_path / "model.safetensors"
    model.save(path)
    env = child_env()
    return subprocess.run([sys.executable, "-m", "fastnn.cli", "diagnose", "--model",
                           str(path), "--data", "digits"], capture_output=True,
                          text=True, timeout=300, env=env)


def _trained(layers, dtype="float32"):
    from fastnn.datasets import load_digits

    X, y = load_digits()
    model = fastnn.Sequential(layers, seed=0, dtype=dtype)
    model.fit(X / 16.0, y, epochs=1, verbose=0, seed=0)
    return model


def _no_nan(text):
    import re

    return re.search(r"\bnan\b", text, re.IGNORECASE) is None


def test_cli_diagnose_one_hidden_layer_says_why_there_is_no_ratio(tmp_path):
    model = _trained([fastnn.Dense(16, "relu"), fastnn.Dense(10)])
    proc = _diagnose_cli(model, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert _no_nan(out), out
    assert ": undetermined\n   one hidden layer (Dense(16, relu)): no first/last " \
           "ratio to judge" in out
    rows = [ln.split() for ln in out.splitlines() if ln[:5].strip().isdigit()]
    assert len(rows) == 2
    assert rows[0][:3] == ["1", "Dense(16,", "relu)"]
    assert rows[1][:2] == ["2", "Dense(10)"]


def test_cli_diagnose_labels_its_ratio_and_matches_torch(tmp_path):
    # Oracle: PyTorch's autograd on the same weights, the gradients of the
    # mean cross-entropy w.r.t. each hidden layer's pre-activations.
    torch = pytest.importorskip("torch")
    from fastnn.datasets import load_digits
    from _torch_helpers import torch_twin

    model = _trained([fastnn.Dense(32, "tanh"), fastnn.Dense(16, "tanh"),
                      fastnn.Dense(10)], dtype="float64")
    proc = _diagnose_cli(model, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert _no_nan(out), out
    for name in ("Dense(32, tanh)", "Dense(16, tanh)", "Dense(10)"):
        assert name in out
    line = next(ln for ln in out.splitlines()
                if "gradient-norm ratio first/last hidden layer: " in ln)
    printed = float(line.split(": ")[1].split()[0])

    X, y = load_digits()
    net = torch_twin(model)
    z = []
    net[0].register_forward_hook(lambda m, i, o: z.append(o) or o.retain_grad())
    net[2].register_forward_hook(lambda m, i, o: z.append(o) or o.retain_grad())
    loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(X.astype(np.float64))), torch.from_numpy(y).long())
    loss.backward()
    expected = float(z[0].grad.norm() / z[1].grad.norm())
    assert printed == pytest.approx(expected, rel=5e-3)  # printed to 3 digits


def test_no_ratio_without_two_hidden_layers_and_no_nan_in_the_report():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    for layers, count in (([fastnn.Dense(3)], "no hidden layer"),
                          ([fastnn.Dense(8, "sigmoid"), fastnn.Dense(3)],
                           "one hidden layer (Dense(8, sigmoid))")):
        model = fastnn.Sequential(layers, input_dim=5, seed=0)
        res = diagnostics.summarize(diagnostics.layer_stats(model, X, y,
                                                            "cross_entropy"))
        assert res["ratio"] is None and res["weight_ratio"] is None
        assert res["verdict"] == "undetermined"
        assert res["reason"].startswith(count + ": no first/last ratio to judge")
        text = diagnostics.format_report({"m": res})
        assert _no_nan(text) and res["reason"] in text
        assert "gradient-norm ratio first/last hidden layer:" not in text


def test_a_dead_last_hidden_layer_is_vanishing_not_nan():
    # A bias of -100 keeps every ReLU unit of the second layer at zero: no
    # gradient flows below the output layer, so the ratio is 0/0.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    model = fastnn.Sequential([fastnn.Dense(8, "relu"), fastnn.Dense(8, "relu"),
                               fastnn.Dense(3)], input_dim=5, seed=0)
    weights = model.get_weights()
    weights[3][:] = -100.0
    model.set_weights(weights)
    rows = diagnostics.layer_stats(model, X, y, "cross_entropy")
    assert rows[1]["dead"] == 1.0 and rows[1]["backprop_norm"] == 0.0
    res = diagnostics.summarize(rows)
    assert res["ratio"] is None and res["verdict"] == "vanishing"
    assert "no gradient reaches the hidden layers" in res["reason"]
    assert _no_nan(diagnostics.format_report({"m": res}))


def test_report_rows_carry_layer_names(experiment):
    text = diagnostics.format_report({"tanh Glorot": experiment["tanh Glorot"]})
    rows = [ln for ln in text.splitlines() if ln[:5].strip().isdigit()]
    assert len(rows) == 11
    assert all(ln.split()[1:3] == ["Dense(500,", "tanh)"] for ln in rows[:10])
    assert rows[10].split()[1] == "Dense(10)"
    ratio = experiment["tanh Glorot"]["ratio"]
    assert f"gradient-norm ratio first/last hidden layer: {ratio:.3g}" in text
    assert "below 0.1 vanishing, above 10 exploding" in text


def test_gradient_check_validates_before_building():
    from fastnn.diagnostics import gradient_check

    model = fastnn.Sequential([fastnn.Dense(4, "tanh"), fastnn.Dense(2)], seed=0)
    X = np.random.default_rng(0).standard_normal((6, 3))
    y = np.array([0, 1, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="X: "):
        gradient_check(model, X[0], y)  # 1-D
    with pytest.raises(ValueError, match="eps: must be > 0"):
        gradient_check(model, X, y, eps=0.0)
    with pytest.raises(ValueError, match="max_params: must be >= 1"):
        gradient_check(model, X, y, max_params=0)
    with pytest.raises(TypeError, match="seed: must be an integer"):
        gradient_check(model, X, y, seed=1.5)
    assert not model.built  # nothing was built by the refused calls
    assert gradient_check(model, X, y) < 1e-6
