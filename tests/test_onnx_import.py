"""ONNX import: torch's and skl2onnx's MLP graphs, round trips, hostile files."""

import warnings

import numpy as np
import pytest

from fastnn import (
    Activation, BatchNorm, Dense, Dropout, Maxout, PReLU, Sequential,
)
from fastnn.activations import ACTIVATIONS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper

from fastnn.interop import from_onnx

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def assert_close(got, expected, dtype):
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def perturbed(model, rng):
    from test_onnx_export import perturbed as perturb

    return perturb(model, rng)


# -- from torch.onnx.export ----------------------------------------------------

def torch_export(module, n_in, path, opset=None, dynamo=False):
    """``torch.onnx.export``: the TorchScript exporter, or with ``dynamo`` the
    default one of current torch (it needs onnxscript)."""
    torch = pytest.importorskip("torch")
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(module, (torch.zeros(2, n_in),), str(path),
                              dynamo=True, opset_version=opset, external_data=False,
                              input_names=["x"], output_names=["y"],
                              dynamic_shapes=({0: torch.export.Dim("n")},))
        else:
            torch.onnx.export(module, (torch.zeros(2, n_in),), str(path),
                              dynamo=False, input_names=["x"], output_names=["y"],
                              opset_version=opset,
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_sequential_exported_by_torch(rng, tmp_path, dynamo):
    torch = pytest.importorskip("torch")
    from torch import nn

    if dynamo:  # torch's default exporter
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(6, 10), nn.ReLU(), nn.BatchNorm1d(10), nn.Tanh(),
        nn.Linear(10, 9), nn.LeakyReLU(0.2), nn.Linear(9, 9), nn.ELU(0.7),
        nn.Linear(9, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(approximate="tanh"),
        nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 7), nn.Sigmoid(), nn.PReLU(),
        nn.Linear(7, 7), nn.PReLU(7), nn.Linear(7, 6), nn.Softplus(),
        nn.Linear(6, 6), nn.SiLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(6, 4),
        nn.Softmax(dim=1))
    with torch.no_grad():
        bn = module[2]
        bn.running_mean.copy_(torch.randn(10) * 0.3)
        bn.running_var.copy_(torch.rand(10) + 0.5)
        bn.weight.copy_(torch.rand(10) + 0.5)
        bn.bias.copy_(torch.randn(10) * 0.2)
    torch_export(module, 6, tmp_path / "t.onnx", dynamo=dynamo)
    model = from_onnx(tmp_path / "t.onnx")
    assert [type(la).__name__ for la in model.layers] == [
        "Dense", "BatchNorm", "Activation", "Dense", "Dense", "Dense", "Dense",
        "Dense", "Dense", "PReLU", "Dense", "PReLU", "Dense", "Dense", "Dense",
        "Activation"]
    X = rng.standard_normal((200, 6)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    assert_close(model.predict(X), expected, np.float32)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_gelu_and_softplus_spelled_out_below_opset_20(rng, tmp_path, dynamo):
    # Below opset 20 torch writes GELU (both forms) with Erf or Tanh and
    # arithmetic, and Softplus (any opset) as Where(x > 20, x, Softplus(x)).
    torch = pytest.importorskip("torch")
    from torch import nn

    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 5),
                           nn.GELU(approximate="tanh"), nn.Linear(5, 5), nn.Softplus(),
                           nn.Linear(5, 2))
    torch_export(module, 4, tmp_path / "t.onnx", opset=17 if not dynamo else 18,
                 dynamo=dynamo)
    model = from_onnx(tmp_path / "t.onnx")
    assert [la.describe() for la in model.layers] == [
        "Dense(6, gelu)", "Dense(5, gelu_tanh)", "Dense(5, softplus)", "Dense(2)"]
    X = rng.standard_normal((100, 4)).astype(np.float32) * 4
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    assert_close(model.predict(X), expected, np.float32)


def test_torch_softplus_with_other_beta_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    pytest.importorskip("onnxscript")
    module = nn.Sequential(nn.Linear(4, 3), nn.Softplus(beta=2.0, threshold=10.0))
    torch_export(module, 4, tmp_path / "t.onnx", opset=18, dynamo=True)
    with pytest.raises(ValueError, match=r"Softplus\(beta=2, threshold=10\) is not "
                                         "supported"):
        from_onnx(tmp_path / "t.onnx")


# -- round trips -------------------------------------------------------------

@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_round_trip_every_activation(activation, dtype_name, rng, tmp_path):
    alpha = {"leaky_relu": 0.2, "elu": 0.7}.get(activation)
    model = perturbed(Sequential([Dense(8, activation, alpha=alpha), Dense(5),
                                  Activation(activation, alpha=alpha), Dense(3)],
                                 input_dim=4, dtype=dtype_name, seed=0), rng)
    back = from_onnx(model.to_onnx(tmp_path / "m.onnx"))
    assert back.count_params() == model.count_params()
    assert back.layers[0].activation.name == model.layers[0].activation.name
    assert back.layers[0].alpha == model.layers[0].alpha
    X = rng.standard_normal((50, 4)).astype(dtype_name)
    assert_close(back.predict(X), model.predict(X), dtype_name)


def test_a_sigmoid_feeding_another_branch_is_not_silu():
    proto = _graph([helper.make_node("Sigmoid", ["x"], ["s"]),
                    helper.make_node("Tanh", ["x"], ["t"]),
                    helper.make_node("Mul", ["t", "s"], ["y"])])
    with pytest.raises(ValueError, match=r"\(Mul\) has 2 data inputs"):
        from_onnx(_write(proto))


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_round_trip_layers(dtype_name, rng, tmp_path):
    model = perturbed(Sequential([
        Dense(8, "relu"), Maxout(5, pieces=3), Dropout(0.5), Dense(6, "tanh"),
        Dense(4, "sigmoid"), Dense(3), Activation("softmax", temperature=0.6),
    ], input_dim=5, dtype=dtype_name, seed=3), rng)
    back = from_onnx(model.to_onnx(tmp_path / "m.onnx"))
    assert back.dtype == model.dtype
    assert [type(la).__name__ for la in back.layers] == [
        "Dense", "Maxout", "Dense", "Dense", "Dense", "Activation"]
    assert back.layers[-1].temperature == pytest.approx(0.6, rel=1e-15)
    X = rng.standard_normal((40, 5)).astype(dtype_name)
    assert_close(back.predict(X), model.predict(X), dtype_name)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_round_trip_batchnorm_prelu_and_link(dtype_name, rng, tmp_path):
    model = Sequential([Dense(6), BatchNorm(eps=1e-3), PReLU(), Dense(5),
                        PReLU("all"), Dense(3)], input_dim=4, dtype=dtype_name,
                       seed=0)
    X = rng.standard_normal((60, 4)).astype(dtype_name)
    model.fit(X, rng.integers(0, 3, 60), epochs=2, verbose=0)
    back = from_onnx(model.to_onnx(tmp_path / "m.onnx", link=True))
    assert back.layers[1].eps == 1e-3
    assert [la.describe() for la in back.layers] == [
        la.describe() for la in model.layers] + ["Activation(softmax)"]
    for got, want in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert_close(back.predict(X), model.predict_proba(X), dtype_name)


def test_a_function_that_is_not_fastnns_is_refused(tmp_path):
    model = Sequential([Dense(3, "elu")], input_dim=2, dtype="float64")
    proto = onnx.load(model.to_onnx(tmp_path / "m.onnx"))
    (function,) = proto.functions
    function.node[-1].op_type = "Relu"  # same name, another computation
    with pytest.raises(ValueError, match="fastnn.elu is not the one fastnn writes"):
        from_onnx(_write(proto))
    del proto.functions[:]
    with pytest.raises(ValueError, match="fastnn.elu is not the one fastnn writes"):
        from_onnx(_write(proto))


# -- scikit-learn through skl2onnx ---------------------------------------------

def test_sklearn_mlp_exported_by_skl2onnx(rng):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X = rng.standard_normal((120, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(7, 6), activation="tanh",
                            max_iter=30, random_state=0).fit(X, y)
        reg = MLPRegressor(hidden_layer_sizes=(6,), activation="logistic",
                           max_iter=30, random_state=0).fit(X, X[:, 0])
        binary = MLPClassifier(hidden_layer_sizes=(5,), max_iter=30,
                               random_state=0).fit(X, y > 0)
    for estimator, expected in ((clf, clf.predict_proba(X)),
                                (binary, binary.predict_proba(X)),
                                (reg, reg.predict(X)[:, None])):
        options = None if estimator is reg else {id(estimator): {"zipmap": False}}
        proto = skl2onnx.to_onnx(estimator, X[:1], options=options)
        path = _write(proto, "sk.onnx")
        model = from_onnx(path)
        assert_close(model.predict(X), expected, np.float32)
    with pytest.raises(ValueError, match="output: 'nope' is not an output"):
        from_onnx(_write(skl2onnx.to_onnx(clf, X[:1], options={
            id(clf): {"zipmap": False}}), "sk.onnx"), output="nope")


# -- hostile and foreign files ---------------------------------------------------

_TMP = {}


@pytest.fixture(autouse=True)
def _tmp(tmp_path):
    _TMP["dir"] = tmp_path


def _write(proto_or_bytes, name="h.onnx"):
    path = _TMP["dir"] / name
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) \
        else proto_or_bytes.SerializeToString()
    path.write_bytes(data)
    return path


def _graph(nodes, initializers=(), output="y", inputs=("x",), opset=20):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 3])
         for name in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", 3])],
        initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _weight(name="W", shape=(3, 3)):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def test_unknown_op_is_named():
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1),
                    helper.make_node("Sin", ["h"], ["y"], name="trig")], [_weight()])
    with pytest.raises(ValueError, match=r"unsupported op Sin \(node 'trig'\)"):
        from_onnx(_write(proto))


def test_a_node_named_like_a_pattern_is_not_an_op():
    for op in ("Silu", "SigmoidPair"):
        with pytest.raises(ValueError, match=f"unsupported op {op}"):
            from_onnx(_write(_graph([helper.make_node(op, ["x"], ["y"])])))


def test_a_broken_sigmoid_pair_is_refused():
    inits = [_weight("W", (1, 3)), numpy_helper.from_array(np.float32(2), "two")]
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["z"], transB=1),
                    helper.make_node("Sigmoid", ["z"], ["s"]),
                    helper.make_node("Sub", ["two", "s"], ["t"]),
                    helper.make_node("Concat", ["t", "s"], ["y"], axis=1)], inits)
    with pytest.raises(ValueError, match="unsupported op Concat"):
        from_onnx(_write(proto))


@pytest.mark.parametrize("op, value", [("Mul", 0.0), ("Div", np.inf),
                                       ("Mul", -2.0), ("Mul", np.nan)])
def test_softmax_scale_must_give_a_positive_finite_temperature(op, value):
    inits = [_weight(), numpy_helper.from_array(np.float32(value), "c")]
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["z"], transB=1),
                    helper.make_node(op, ["z", "c"], ["s"]),
                    helper.make_node("Softmax", ["s"], ["y"], axis=1)], inits)
    with pytest.raises(ValueError, match="Softmax"):
        from_onnx(_write(proto))


def test_op_from_another_domain_is_named():
    proto = _graph([helper.make_node("Relu", ["x"], ["y"], domain="evil.ops")])
    with pytest.raises(ValueError, match="unsupported op evil.ops.Relu"):
        from_onnx(_write(proto))


def test_external_data_is_never_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(9, np.float32).tobytes())
    W = _weight()
    W.ClearField("raw_data")
    W.data_location = TensorProto.EXTERNAL
    entry = W.external_data.add()
    entry.key, entry.value = "location", "secret.bin"
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [W])
    with pytest.raises(ValueError, match="external data.*external_data=False"):
        from_onnx(_write(proto))


@pytest.mark.parametrize("data, match", [
    (b"", "not an ONNX model"),
    (b"\x00" * 64, "not an ONNX model"),
    (b"\xff\xfe garbage \x08\x96\x01" * 50, "not an ONNX model"),
])
def test_garbage_is_refused(data, match):
    with pytest.raises(ValueError, match=match):
        from_onnx(_write(data))


def test_truncated_file_is_refused(rng, tmp_path):
    model = Sequential([Dense(40, "relu"), Dense(3)], input_dim=30)
    data = model.to_onnx(tmp_path / "m.onnx") and (tmp_path / "m.onnx").read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        with pytest.raises(ValueError):
            from_onnx(_write(data[:cut]))


def test_declared_sizes_beyond_the_data_are_refused():
    huge = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [huge])
    with pytest.raises(ValueError, match="declares 1099511627776 elements"):
        from_onnx(_write(proto))
    short = _weight()
    short.dims[:] = [3, 300]
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], [short])
    with pytest.raises(ValueError, match=r"declares shape \[3, 300\].*holds 9"):
        from_onnx(_write(proto))
    negative = _weight()
    negative.dims[:] = [-3, -3]
    proto = _graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)],
                   [negative])
    with pytest.raises(ValueError, match="negative dimension"):
        from_onnx(_write(proto))


def test_file_larger_than_max_bytes_is_not_read(tmp_path):
    path = _write(b"\x00" * 5000)
    with pytest.raises(ValueError, match="more than max_bytes=4096"):
        from_onnx(path, max_bytes=4096)


def test_cycles_and_branches_are_refused():
    cycle = _graph([helper.make_node("Relu", ["b"], ["y"], name="A"),
                    helper.make_node("Tanh", ["y"], ["b"], name="B")])
    with pytest.raises(ValueError, match="cycle"):
        from_onnx(_write(cycle))
    self_loop = _graph([helper.make_node("Relu", ["y"], ["y"])])
    with pytest.raises(ValueError, match="cycle"):
        from_onnx(_write(self_loop))
    residual = _graph([helper.make_node("Relu", ["x"], ["h"]),
                       helper.make_node("Add", ["h", "x"], ["y"])])
    with pytest.raises(ValueError, match=r"\(Add\) has 2 data inputs"):
        from_onnx(_write(residual))
    twice = _graph([helper.make_node("Relu", ["x"], ["y"]),
                    helper.make_node("Tanh", ["x"], ["y"])])
    with pytest.raises(ValueError, match="produced twice"):
        from_onnx(_write(twice))
    dangling = _graph([helper.make_node("Relu", ["nowhere"], ["y"])])
    with pytest.raises(ValueError, match="'nowhere' is computed by no node"):
        from_onnx(_write(dangling))


def test_unsupported_forms_of_supported_ops():
    cases = [
        ([helper.make_node("Gemm", ["x", "W"], ["y"], transA=1)], "transA=1"),
        ([helper.make_node("Gemm", ["x", "x"], ["y"])], "2 data inputs"),
        ([helper.make_node("Add", ["x", "W"], ["y"])], "bias after Gemm"),
        ([helper.make_node("Softmax", ["x"], ["y"], axis=0)], "axis=0"),
        ([helper.make_node("BatchNormalization", ["x", "v", "v", "v", "v"], ["y"],
                           training_mode=1)], "training mode"),
        ([helper.make_node("Mul", ["x", "v"], ["y"])], "scalar"),
        ([helper.make_node("Cast", ["x"], ["y"], to=999)], "own type"),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)], "own type"),
        ([helper.make_node("Add", ["x"], ["y"])], "takes 2 to 2 inputs, has 1"),
        ([helper.make_node("Relu", ["x", "v"], ["y"])], "takes 1 to 1 inputs"),
    ]
    for nodes, match in cases:
        inits = [_weight(), numpy_helper.from_array(np.ones(3, np.float32), "v")]
        with pytest.raises(ValueError, match=match):
            from_onnx(_write(_graph(nodes, inits)))


def test_inputs_and_outputs_are_checked():
    two = _graph([helper.make_node("Add", ["x", "z"], ["y"])], inputs=("x", "z"))
    with pytest.raises(ValueError, match="expected one input"):
        from_onnx(_write(two))
    ints = _graph([helper.make_node("Relu", ["x"], ["y"])])
    ints.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(ValueError, match="float or double"):
        from_onnx(_write(ints))
    with pytest.raises(TypeError, match="output"):
        from_onnx(_write(_graph([helper.make_node("Relu", ["x"], ["y"])])),
                  output=3)
    with pytest.raises(ValueError, match="holds no layer"):
        from_onnx(_write(_graph([helper.make_node("Identity", ["x"], ["y"])])))
    with pytest.raises(FileNotFoundError):
        from_onnx(_TMP["dir"] / "missing.onnx")


def _fuzz_seed_file(dtype="float32"):
    model = Sequential([Dense(4, "relu"), BatchNorm(), PReLU(), Maxout(3, pieces=2),
                        Dense(3, "elu"), Activation("softmax", temperature=2.0)],
                       input_dim=3, seed=0, dtype=dtype)
    return onnx_bytes(model)


def onnx_bytes(model):
    from fastnn.interop import model_to_onnx

    return model_to_onnx(model).SerializeToString()


@pytest.mark.slow
def test_damaged_files_give_a_model_or_a_clear_error(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    data = _fuzz_seed_file()
    path = tmp_path / "f.onnx"

    @hypothesis.settings(max_examples=300, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.lists(st.tuples(st.integers(0, len(data) - 1),
                                         st.integers(0, 255)), min_size=1,
                               max_size=8),
                      st.integers(0, len(data)))
    def check(edits, cut):
        damaged = bytearray(data[:max(cut, 1)])
        for pos, value in edits:
            if pos < len(damaged):
                damaged[pos] = value
        path.write_bytes(bytes(damaged))
        try:
            model = from_onnx(path)
        except (ValueError, TypeError):
            return
        out = model.predict(np.ones((2, model.input_dim), model.dtype))
        assert out.shape == (2, model.output_dim)

    check()


@pytest.mark.slow
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_damaged_graphs_give_a_model_or_a_clear_error(dtype_name, tmp_path):
    """Structural damage: attribute values, tensor dims, op types and inputs
    (float64: calls of fastnn's functions too)."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    base = onnx.ModelProto.FromString(_fuzz_seed_file(dtype_name))
    ops = ["Gemm", "MatMul", "Add", "Relu", "Softmax", "PRelu", "Reshape",
           "ReduceMax", "BatchNormalization", "Cast", "Mul", "Div", "Identity",
           "Gelu", "Selu", "Flatten", "Dropout", "Sin", "elu", "prelu",
           "batchnorm"]
    path = tmp_path / "g.onnx"
    numbers = st.one_of(st.integers(-3, 3), st.integers(-2**62, 2**62),
                        st.floats(allow_nan=True, allow_infinity=True))

    @hypothesis.settings(max_examples=400, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.data())
    def check(data):
        proto = onnx.ModelProto()
        proto.CopyFrom(base)
        graph = proto.graph
        for _ in range(data.draw(st.integers(1, 4))):
            kind = data.draw(st.sampled_from(["op", "attr", "dims", "input",
                                              "value", "function"]))
            node = graph.node[data.draw(st.integers(0, len(graph.node) - 1))]
            if kind == "op":
                node.op_type = data.draw(st.sampled_from(ops))
                node.domain = data.draw(st.sampled_from(["", "fastnn"]))
            elif kind == "attr" and len(node.attribute):
                attr = node.attribute[data.draw(
                    st.integers(0, len(node.attribute) - 1))]
                value = data.draw(numbers)
                if attr.type == attr.INT and isinstance(value, int):
                    attr.i = value
                elif attr.type == attr.FLOAT and isinstance(value, float):
                    attr.f = value
            elif kind == "function" and len(proto.functions):
                function = proto.functions[data.draw(
                    st.integers(0, len(proto.functions) - 1))]
                inner = function.node[data.draw(
                    st.integers(0, len(function.node) - 1))]
                inner.op_type = data.draw(st.sampled_from(ops))
            elif kind == "dims":
                tensor = graph.initializer[data.draw(
                    st.integers(0, len(graph.initializer) - 1))]
                tensor.dims[:] = data.draw(st.lists(st.integers(-2, 2**40),
                                                    max_size=3))
            elif kind == "input" and len(node.input):
                names = [n.output[0] for n in graph.node] + ["X", "", "nope"]
                node.input[data.draw(st.integers(0, len(node.input) - 1))] = \
                    data.draw(st.sampled_from(names))
            elif kind == "value":
                tensor = graph.initializer[data.draw(
                    st.integers(0, len(graph.initializer) - 1))]
                try:
                    arr = numpy_helper.to_array(tensor).copy()
                except ValueError:  # dims damaged by an earlier edit
                    continue
                if arr.size and arr.dtype.kind == "f":
                    arr.flat[0] = data.draw(st.floats(allow_nan=True,
                                                      allow_infinity=True,
                                                      width=32))
                    tensor.CopyFrom(numpy_helper.from_array(arr, tensor.name))
        path.write_bytes(proto.SerializeToString())
        try:
            model = from_onnx(path)
        except (ValueError, TypeError):
            return
        out = model.predict(np.ones((2, model.input_dim), model.dtype))
        assert out.shape == (2, model.output_dim)

    check()
