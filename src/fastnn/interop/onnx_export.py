"""ONNX export: a built :class:`fastnn.Sequential` as an inference graph.

The graph computes ``model.predict`` (or, with ``link=True``,
``model.predict_proba``) for a float input ``X`` of shape ``(N, n_in)`` with a
dynamic batch dimension ``N``, in the model's dtype, at opset :data:`OPSET`.

Each layer writes its nodes through one exporter in :data:`LAYER_EXPORTERS`,
each activation through one entry of :data:`ACTIVATION_EXPORTERS`. Where
onnxruntime has a float32 kernel but no float64 one (Elu, Selu, Softplus, Erf,
Gelu, LeakyRelu and PRelu at this opset), and for BatchNorm in float64 (the
epsilon of BatchNormalization is a float32 attribute), the float64 graph calls
a model-local function (:data:`FUNCTIONS`, domain ``fastnn``) that spells the
computation out in ops onnxruntime has, to double precision:

- ``expm1(z) = 2 t / (1 - t)`` with ``t = tanh(z / 2)``, exact for ``z <= 0``
  (no ``exp(z) - 1`` cancellation);
- ``erf(z) = 2/sqrt(pi) z exp(-z^2) sum_n (2 z^2)^n / (1 3 5 ... (2n+1))``,
  a series of positive terms (no cancellation), 100 terms on ``|z| <= 6``
  (within 2 ulp there; ``erf`` is 1 to double precision beyond).
"""

import math
import os

import numpy as np

#: The ONNX opset the files declare (Gelu needs 20).
OPSET = 20
#: Terms of the erf series and the clip beyond which erf(z) = sign(z) in double.
ERF_TERMS = 100
ERF_CLIP = 6.0


def require_onnx(what):
    """The ``onnx`` module, or an ImportError saying that ``what`` needs it."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise ImportError(f"{what} needs the onnx package: "
                          "pip install 'fastnn-core[onnx]'") from None
    return onnx


class GraphBuilder:
    """Collects nodes and constants of one graph, with fresh value names."""

    def __init__(self, onnx, dtype, in_function=False):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.in_function = in_function
        self.nodes = []
        self.initializers = []
        self.functions = {}
        self._count = 0

    def fresh(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value, stem="c", dtype=None):
        """A constant initializer (in the model's dtype unless told)."""
        arr = np.asarray(value, dtype=dtype or self.dtype)
        name = self.fresh(stem)
        tensor = self.onnx.numpy_helper.from_array(arr, name)
        if self.in_function:  # a function holds no initializers
            self.nodes.append(self.helper.make_node("Constant", [], [name],
                                                    name=name, value=tensor))
        else:
            self.initializers.append(tensor)
        return name

    def call(self, name, x, *params):
        """A node calling the model-local function ``fastnn.<name>`` on x and
        the constant ``params``; the function is added once."""
        if name not in self.functions:
            self.functions[name] = build_function(self.onnx, name, self.dtype)
        out = self.fresh(name)
        inputs = [x] + [self.const(p, f"{name}_{arg}") for p, arg in
                        zip(params, FUNCTIONS[name][0])]
        self.nodes.append(self.helper.make_node(name, inputs, [out], name=out,
                                                domain=FUNCTION_DOMAIN))
        return out

    def op(self, op_type, *inputs, stem=None, **attrs):
        """Append one node; return its output name."""
        out = self.fresh(stem or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=out, **attrs))
        return out

    # Elementwise helpers for the decompositions.
    def mul(self, x, c):
        return self.op("Mul", x, c if isinstance(c, str) else self.const(c))

    def add(self, x, c):
        return self.op("Add", x, c if isinstance(c, str) else self.const(c))

    def where_positive(self, x, pos, neg):
        """``pos if x > 0 else neg``, elementwise."""
        return self.op("Where", self.op("Greater", x, self.const(0.0)), pos, neg)


# -- activations --------------------------------------------------------------


def _expm1_nonpositive(g, x):
    """expm1(min(x, 0)) = 2 t / (1 - t), t = tanh(min(x, 0) / 2)."""
    t = g.op("Tanh", g.mul(g.op("Min", x, g.const(0.0)), 0.5))
    return g.op("Div", g.mul(t, 2.0), g.op("Sub", g.const(1.0), t))


def _erf(g, z):
    """erf(z) from its positive series, ``z`` clipped to [-6, 6]."""
    z = g.op("Clip", z, g.const(-ERF_CLIP), g.const(ERF_CLIP))
    z2 = g.op("Mul", z, z)
    t = g.mul(z2, 2.0)
    series = g.const(1.0)
    for n in range(ERF_TERMS, 0, -1):  # S = 1 + t/(2n+1) * S, innermost first
        series = g.add(g.mul(g.op("Mul", t, series), 1.0 / (2 * n + 1)), 1.0)
    scale = g.mul(g.op("Mul", z, g.op("Exp", g.op("Neg", z2))),
                  2.0 / math.sqrt(math.pi))
    return g.op("Mul", scale, series)


def _native(op_type, **attrs):
    def emit(g, x, alpha):
        return g.op(op_type, x, **attrs)
    return emit


def _identity(g, x, alpha):
    return x


def _leaky_relu(g, x, alpha):
    if g.dtype == np.float32:
        return g.op("LeakyRelu", x, alpha=alpha)
    return g.call("leaky_relu", x, alpha)


def _elu(g, x, alpha):
    if g.dtype == np.float32:
        return g.op("Elu", x, alpha=alpha)
    return g.call("elu", x, alpha)


def _selu(g, x, alpha):
    if g.dtype == np.float32:
        return g.op("Selu", x)
    return g.call("selu", x)


def _silu(g, x, alpha):
    return g.op("Mul", x, g.op("Sigmoid", x))


def _gelu(g, x, alpha):
    if g.dtype == np.float32:
        return g.op("Gelu", x)
    return g.call("gelu", x)


def _gelu_tanh(g, x, alpha):
    if g.dtype == np.float32:
        return g.op("Gelu", x, approximate="tanh")
    return g.call("gelu_tanh", x)


def _softplus(g, x, alpha):
    if g.dtype == np.float32:
        # ONNX Softplus has no threshold; above 20 it equals z in float32.
        return g.op("Softplus", x)
    return g.call("softplus", x)


#: activation name -> emitter(graph, x, alpha) returning the output name.
ACTIVATION_EXPORTERS = {
    "identity": _identity,
    "sigmoid": _native("Sigmoid"),
    "tanh": _native("Tanh"),
    "relu": _native("Relu"),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "selu": _selu,
    "silu": _silu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "softplus": _softplus,
}


# -- model-local functions (float64 graphs) ------------------------------------


def _positive_part_or_slope(g, x, slope):
    """x if x > 0 else slope * x."""
    return g.where_positive(x, x, g.op("Mul", x, slope))


def _elu_body(g, x, alpha):
    return g.where_positive(x, x, g.op("Mul", _expm1_nonpositive(g, x), alpha))


def _selu_body(g, x):
    from fastnn.reference.activations import SELU_SCALE, SELU_SCALE_ALPHA

    return g.where_positive(x, g.mul(x, SELU_SCALE),
                            g.mul(_expm1_nonpositive(g, x), SELU_SCALE_ALPHA))


def _gelu_body(g, x):
    erf = _erf(g, g.mul(x, math.sqrt(0.5)))
    return g.op("Mul", g.mul(x, 0.5), g.add(erf, 1.0))


def _gelu_tanh_body(g, x):
    from fastnn.reference.activations import GELU_BETA, GELU_KAPPA

    # z sigmoid(2u), u = sqrt(2/pi) (z + 0.044715 z^3)
    cube = g.op("Mul", g.op("Mul", x, x), x)
    u = g.mul(g.add(g.mul(cube, GELU_KAPPA), x), 2.0 * GELU_BETA)
    return g.op("Mul", x, g.op("Sigmoid", u))


def _softplus_body(g, x):
    from fastnn.reference.activations import SOFTPLUS_THRESHOLD

    # max(z, 0) + log(1 + exp(-|z|)); z above the threshold
    smooth = g.op("Add", g.op("Max", x, g.const(0.0)),
                  g.op("Log", g.add(g.op("Exp", g.op("Neg", g.op("Abs", x))), 1.0)))
    above = g.op("Greater", x, g.const(SOFTPLUS_THRESHOLD))
    return g.op("Where", above, x, smooth)


def _batchnorm_body(g, x, gamma, beta, mean, var, eps):
    # Y = X * scale + shift, scale = gamma / sqrt(var + eps), as the kernel does
    scale = g.op("Div", gamma, g.op("Sqrt", g.op("Add", var, eps)))
    shift = g.op("Sub", beta, g.op("Mul", mean, scale))
    return g.op("Add", g.op("Mul", x, scale), shift)


#: Domain of the model-local functions.
FUNCTION_DOMAIN = "fastnn"
#: name -> (parameter inputs after X, body(graph, X, *parameters)). A float64
#: graph calls these where onnxruntime has no float64 kernel; onnxruntime
#: inlines them, and ``from_onnx`` reads a call as the fastnn layer after
#: checking that the function is exactly the one fastnn writes.
FUNCTIONS = {
    "leaky_relu": (("alpha",), _positive_part_or_slope),
    "prelu": (("slope",), _positive_part_or_slope),
    "elu": (("alpha",), _elu_body),
    "selu": ((), _selu_body),
    "gelu": ((), _gelu_body),
    "gelu_tanh": ((), _gelu_tanh_body),
    "softplus": ((), _softplus_body),
    "batchnorm": (("weight", "bias", "running_mean", "running_var", "eps"),
                  _batchnorm_body),
}


def build_function(onnx, name, dtype):
    """The ``FunctionProto`` of ``fastnn.<name>`` for ``dtype``."""
    params, body = FUNCTIONS[name]
    fg = GraphBuilder(onnx, dtype, in_function=True)
    y = body(fg, "X", *params)
    fg.nodes.append(onnx.helper.make_node("Identity", [y], ["Y"], name="output"))
    return onnx.helper.make_function(
        FUNCTION_DOMAIN, name, ["X", *params], ["Y"], fg.nodes,
        [onnx.helper.make_opsetid("", OPSET)])


def _softmax(g, x, temperature):
    """softmax(x / T) over the last axis."""
    if temperature != 1.0:
        x = g.op("Div", x, g.const(temperature))
    return g.op("Softmax", x, axis=-1)


# -- layers -------------------------------------------------------------------


def _gemm(g, x, W, b):
    """X @ W.T + b."""
    return g.op("Gemm", x, g.const(W, "weight"), g.const(b, "bias"), transB=1)


def _export_dense(g, layer, x):
    y = _gemm(g, x, layer.params["weight"], layer.params["bias"])
    return ACTIVATION_EXPORTERS[layer.activation.name](g, y, layer.alpha)


def _export_activation(g, layer, x):
    if layer.activation is None:
        return _softmax(g, x, layer.temperature)
    return ACTIVATION_EXPORTERS[layer.activation.name](g, x, layer.alpha)


def _export_identity(g, layer, x):
    return x  # Dropout and GaussianNoise: identity at inference


def _export_batchnorm(g, layer, x):
    arrays = layer.get_arrays()
    stats = [arrays[k] for k in ("weight", "bias", "running_mean", "running_var")]
    if g.dtype != np.float32:
        # BatchNormalization's epsilon is a float32 attribute.
        return g.call("batchnorm", x, *stats, layer.eps)
    return g.op("BatchNormalization", x,
                *[g.const(a, "bn") for a in stats], epsilon=layer.eps)


def _export_prelu(g, layer, x):
    # One shared slope as shape (1,), one per feature as (n,): both broadcast.
    if g.dtype == np.float32:
        return g.op("PRelu", x, g.const(layer.params["weight"], "slope"))
    return g.call("prelu", x, layer.params["weight"])


def _export_maxout(g, layer, x):
    z = _gemm(g, x, layer.params["weight"], layer.params["bias"])
    shape = g.const([0, layer.units, layer.pieces], "shape", dtype=np.int64)
    pieces = g.op("Reshape", z, shape)
    return g.op("ReduceMax", pieces, g.const([2], "axes", dtype=np.int64),
                keepdims=0)


#: layer class name -> exporter(graph, layer, x) returning the output name.
LAYER_EXPORTERS = {
    "Dense": _export_dense,
    "Activation": _export_activation,
    "Dropout": _export_identity,
    "GaussianNoise": _export_identity,
    "BatchNorm": _export_batchnorm,
    "PReLU": _export_prelu,
    "Maxout": _export_maxout,
}

#: The link ``predict_proba`` applies, as an emitter on the output.
LINK_EXPORTERS = {
    "identity": lambda g, x: x,
    "softmax": lambda g, x: _softmax(g, x, 1.0),
    "sigmoid": lambda g, x: g.op("Sigmoid", x),
}


def model_to_onnx(model, link=False):
    """The ONNX ``ModelProto`` of ``model``'s inference pass.

    Parameters
    ----------
    model : Sequential
        A built model.
    link : bool
        Append the training loss's link (softmax or sigmoid), so that the
        graph computes ``predict_proba`` rather than ``predict``.

    Returns
    -------
    onnx.ModelProto
        Input ``"X"`` and output ``"Y"``, shape ``(N, n)`` with ``N`` dynamic,
        in the model's dtype, checked by ``onnx.checker.check_model``.

    Raises
    ------
    ValueError
        If the model is not built, or holds a layer with no exporter.
    """
    import fastnn
    from fastnn._validation import check_bool

    onnx = require_onnx("ONNX export")
    link = check_bool("link", link)
    model._require_built("to_onnx")
    g = GraphBuilder(onnx, model.dtype)
    x = "X"
    for i, layer in enumerate(model.layers):
        exporter = LAYER_EXPORTERS.get(type(layer).__name__)
        if exporter is None:
            raise ValueError(f"model: layers[{i}] ({type(layer).__name__}) has "
                             "no ONNX exporter")
        x = exporter(g, layer, x)
    if link:
        x = LINK_EXPORTERS[model._link()](g, x)
    # The graph output gets its own name, even when no layer computed anything.
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["Y"], name="output"))
    elem = onnx.helper.np_dtype_to_tensor_dtype(g.dtype)
    graph = onnx.helper.make_graph(
        g.nodes, "fastnn",
        [onnx.helper.make_tensor_value_info("X", elem, ["N", model.input_dim])],
        [onnx.helper.make_tensor_value_info("Y", elem, ["N", model.output_dim])],
        initializer=g.initializers,
    )
    opsets = [onnx.helper.make_opsetid("", OPSET)]
    if g.functions:
        opsets.append(onnx.helper.make_opsetid(FUNCTION_DOMAIN, 1))
    proto = onnx.helper.make_model(
        graph, opset_imports=opsets, functions=list(g.functions.values()),
        producer_name="fastnn", producer_version=fastnn.__version__,
    )
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime >= 1.20
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path, link=False):
    """Write ``model``'s inference graph to ``path`` as an ONNX file.

    See :func:`model_to_onnx` for the graph. The file is written atomically
    (a temporary file, then ``os.replace``).

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
    link : bool

    Returns
    -------
    str
        The path written.
    """
    from fastnn.io import _check_path, _write_atomic

    path = _check_path(path)
    proto = model_to_onnx(model, link)
    if os.path.isdir(path):
        raise ValueError(f"path: {path} is a directory")
    _write_atomic(path, proto.SerializeToString())
    return path
