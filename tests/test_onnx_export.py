"""ONNX export, judged by onnxruntime against ``predict``/``predict_proba``."""

import os

import numpy as np
import pytest

from fastnn import (
    Activation, BatchNorm, Dense, Dropout, GaussianNoise, Maxout, PReLU, Sequential,
)
from fastnn.activations import ACTIVATIONS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn.cli import main
from fastnn.interop import OPSET

#: float32 1e-5 and float64 1e-12, relative, with an absolute floor of the same
#: size for entries near zero (the outputs are of order one).
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0]


def perturbed(model, rng, scale=0.3):
    """Give every parameter and running statistic non-default values."""
    weights = []
    for (layer, name), w in zip(model._weight_slots(), model.get_weights()):
        if name == "running_var":
            w = rng.uniform(0.5, 2.0, w.shape)
        elif name == "weight" and w.ndim == 1:  # BatchNorm scale, PReLU slope
            w = rng.uniform(0.1, 1.5, w.shape)
        else:
            w = w + scale * rng.standard_normal(w.shape)
        weights.append(w)
    model.set_weights(weights)
    return model


def check_same(model, path, rng, n=64, link=False):
    X = (2 * rng.standard_normal((n, model.input_dim))).astype(model.dtype)
    # a regression model's link is the identity (it has no predict_proba)
    expected = (model.predict_proba(X) if link and model.task == "classification"
                else model.predict(X))
    got = run_onnx(path, X)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    tol = TOL[np.dtype(model.dtype).type]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_in_dense_and_activation_layers(activation, dtype, rng,
                                                         tmp_path):
    alpha = {"leaky_relu": 0.2, "elu": 0.7}.get(activation)
    model = Sequential([Dense(9, activation, alpha=alpha), Dense(6),
                        Activation(activation, alpha=alpha), Dense(3)],
                       input_dim=5, dtype=dtype, seed=0)
    perturbed(model, rng)
    path = model.to_onnx(tmp_path / "m.onnx")
    check_same(model, path, rng)


def test_activation_inputs_cover_every_branch(dtype, rng, tmp_path):
    """Large, tiny and zero inputs through every activation (thresholds, erf
    clip, the expm1 form near 0)."""
    X = np.concatenate([np.linspace(-30, 30, 121), [0.0, 1e-9, -1e-9, 5.99, 6.01,
                                                    -8.7, 19.99, 20.01]])
    X = X.reshape(-1, 1).astype(dtype)
    for name in sorted(ACTIVATIONS):
        model = Sequential([Activation(name)], input_dim=1, dtype=dtype)
        path = model.to_onnx(tmp_path / f"{name}.onnx")
        tol = TOL[np.dtype(dtype).type]
        np.testing.assert_allclose(run_onnx(path, X), model.predict(X), rtol=tol,
                                   atol=tol, err_msg=name)


@pytest.mark.parametrize("num_parameters", [1, "all"])
def test_every_layer_in_inference_mode(num_parameters, dtype, rng, tmp_path):
    model = Sequential([
        Dense(8, "tanh"), BatchNorm(eps=1e-3), PReLU(num_parameters),
        Dropout(0.4), GaussianNoise(0.5), Maxout(6, pieces=3), Dense(7),
        BatchNorm(), Activation("relu"), Dense(4),
        Activation("softmax", temperature=0.6),
    ], input_dim=5, dtype=dtype, seed=1)
    perturbed(model, rng)
    path = model.to_onnx(tmp_path / "m.onnx")
    check_same(model, path, rng)


@pytest.mark.parametrize("loss, outputs", [
    ("softmax_cross_entropy", 4), ("binary_cross_entropy", 3), ("mse", 2)])
def test_link_gives_predict_proba(loss, outputs, dtype, rng, tmp_path):
    model = Sequential([Dense(6, "relu"), Dense(outputs)], input_dim=3, dtype=dtype,
                       seed=2)
    X = rng.standard_normal((40, 3)).astype(dtype)
    y = (rng.integers(0, outputs, 40) if loss == "softmax_cross_entropy"
         else rng.uniform(0, 1, (40, outputs)))
    model.fit(X, y, loss=loss, epochs=1, verbose=0, seed=0)
    path = model.to_onnx(tmp_path / "m.onnx", link=True)
    check_same(model, path, rng, link=True)
    if loss != "mse":  # the link changes the numbers
        plain = model.to_onnx(tmp_path / "plain.onnx")
        Xt = rng.standard_normal((5, 3)).astype(dtype)
        assert not np.allclose(run_onnx(plain, Xt), run_onnx(path, Xt))


def test_file_is_checked_at_the_stated_opset_with_a_dynamic_batch(dtype, tmp_path,
                                                                  rng):
    model = Sequential([Dense(4, "gelu"), Dense(2)], input_dim=3, dtype=dtype)
    path = model.to_onnx(tmp_path / "m.onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    # float64 gelu is a call of the model-local function fastnn.gelu
    opsets = [("", OPSET)] + ([("fastnn", 1)] if dtype == np.float64 else [])
    assert [(o.domain, o.version) for o in proto.opset_import] == opsets
    assert [f.name for f in proto.functions] == (
        ["gelu"] if dtype == np.float64 else [])
    (inp,), (out,) = proto.graph.input, proto.graph.output
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    for value, width in ((inp, 3), (out, 2)):
        assert value.type.tensor_type.elem_type == elem
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "N" and dims[1].dim_value == width
    for n in (1, 7, 1000):
        X = rng.standard_normal((n, 3)).astype(dtype)
        assert run_onnx(path, X).shape == (n, 2)


def test_model_of_identity_layers_only(tmp_path, rng):
    model = Sequential([Dropout(0.5)], input_dim=3)
    check_same(model, model.to_onnx(tmp_path / "m.onnx"), rng)


def test_refusals_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match="to_onnx: the model is not built"):
        Sequential([Dense(2)]).to_onnx(tmp_path / "m.onnx")
    model = Sequential([Dense(2)], input_dim=2)
    with pytest.raises(TypeError, match="link"):
        model.to_onnx(tmp_path / "m.onnx", link="yes")
    with pytest.raises(TypeError, match="path"):
        model.to_onnx(3)
    with pytest.raises(ValueError, match="directory"):
        model.to_onnx(tmp_path)
    assert os.listdir(tmp_path) == []


def test_cli_export_onnx(tmp_path, rng, capsys):
    model = Sequential([Dense(5, "relu"), Dense(3)], input_dim=4, seed=0)
    X = rng.standard_normal((30, 4)).astype(np.float32)
    model.fit(X, rng.integers(0, 3, 30), epochs=1, verbose=0)
    model.save(tmp_path / "m.safetensors")
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(tmp_path / "m.safetensors"), str(out)]) == 0
    check_same(model, out, rng)
    assert main(["export-onnx", str(tmp_path / "m.safetensors"), str(out),
                 "--link"]) == 0
    check_same(model, out, rng, link=True)
    assert str(out) in capsys.readouterr().err
    assert main(["export-onnx", str(tmp_path / "missing"), str(out)]) == 2
    assert "export-onnx: error" in capsys.readouterr().err
