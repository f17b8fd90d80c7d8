"""ONNX import: an MLP graph read into a :class:`fastnn.Sequential`.

The importer reads the file's bytes (at most ``max_bytes``), parses them with
protobuf and inspects the graph; it never executes the graph, never follows an
external-data reference, and checks every tensor's declared size against the
data it holds before converting it. From the chosen output it walks back to
the input along a chain of nodes with one data input each (weights,
biases and attributes are constants), so nodes that do not feed the output
(skl2onnx's label branch) are ignored, and a cycle or a branch is refused.

Each op on the chain is read by one entry of :data:`OP_IMPORTERS`:

- ``Gemm``, or ``MatMul`` then ``Add``: a ``Dense`` layer;
- ``Relu``, ``Sigmoid``, ``Tanh``, ``LeakyRelu``, ``Elu``, ``Selu``,
  ``Softplus``, ``Gelu`` (or torch's erf form of it below opset 20), and
  ``Mul(x, Sigmoid(x))`` (silu): the activation, fused into the ``Dense`` before it
  when that one has none yet, else an ``Activation`` layer;
- ``Softmax`` over the last axis (a scalar ``Mul``/``Div`` just before it is
  its temperature): ``Activation("softmax")``;
- ``Concat(1 - Sigmoid(z), Sigmoid(z))`` after a one-unit ``Gemm`` (skl2onnx's
  binary classifier): a two-unit ``Dense`` with a zero first row, then
  softmax (``softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]``);
- ``PRelu`` (one slope, or one per feature): ``PReLU``;
- ``BatchNormalization`` (inference): ``BatchNorm``;
- ``Reshape`` to ``(N, units, pieces)`` then ``ReduceMax`` over the pieces,
  after a ``Gemm``: ``Maxout``;
- a call of one of fastnn's own model-local functions (``fastnn.elu``, ...,
  written in float64 graphs), when the file's function is exactly the one
  fastnn writes: that layer or activation;
- ``Identity``, ``Dropout``, ``Flatten`` of the 2-D input, a ``Reshape`` to
  ``(N, width)`` and a ``Cast`` to the input's own type: nothing.

A trailing ``Softmax`` or ``Sigmoid`` stays in the model, so that ``predict``
returns what the graph's output holds.
"""

import math
import os

import numpy as np

from fastnn.interop.onnx_export import require_onnx

#: Largest file read, in bytes.
MAX_BYTES = 1 << 30
#: Largest tensor, in elements.
MAX_ELEMENTS = 1 << 28

_DEFAULT_DOMAINS = ("", "ai.onnx")



def _read_bytes(path, max_bytes):
    from fastnn.io import _check_path

    path = _check_path(path)
    size = os.stat(path).st_size
    if size > max_bytes:
        raise ValueError(f"path: {path} holds {size} bytes, more than max_bytes="
                         f"{max_bytes}")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"path: {path} grew past max_bytes={max_bytes}")
    return path, data


def _parse(onnx, path, data):
    from google.protobuf.message import DecodeError

    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"path: {path} is not an ONNX model ({exc})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ValueError(f"path: {path} is not an ONNX model (no graph)")
    return proto


class _Graph:
    """Lookups over one graph: constants, producers, attributes."""

    def __init__(self, onnx, graph, functions=()):
        self.onnx = onnx
        self.graph = graph
        self.functions = {(f.domain, f.name): f for f in functions}
        self._tensors = {}
        if len(graph.sparse_initializer):
            raise ValueError("model: sparse initializers are not supported")
        for t in graph.initializer:
            self._tensors[t.name] = t
        self.producer = {}
        for node in graph.node:
            for out in node.output:
                if not out:
                    continue
                if out in self.producer or out in self._tensors:
                    raise ValueError(f"model: value {out!r} is produced twice")
                self.producer[out] = node
        self._arrays = {}

    def constant(self, name, depth=0):
        """The array behind ``name`` if it is a constant, else None."""
        if name in self._arrays:
            return self._arrays[name]
        tensor = self._tensors.get(name)
        if tensor is None:
            node = self.producer.get(name)
            if node is None or depth > 64:
                return None
            if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS:
                tensor = self._constant_node(node)
            elif (node.op_type == "Identity" and node.domain in _DEFAULT_DOMAINS
                  and len(node.input) == 1):
                value = self.constant(node.input[0], depth + 1)
                if value is not None:
                    self._arrays[name] = value
                return value
            else:
                return None
        value = self._arrays[name] = _to_array(self.onnx, tensor, name)
        return value

    def _constant_node(self, node):
        for attr in node.attribute:
            if attr.name == "value" and attr.type == attr.TENSOR:
                return attr.t
        raise ValueError(f"model: Constant node {node.name!r} holds no dense tensor")

    def data_inputs(self, node):
        return [(i, name) for i, name in enumerate(node.input)
                if name and self.constant(name) is None]

    def attrs(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a)
                for a in node.attribute}


_ITEMSIZE = {1: 4, 11: 8, 7: 8, 6: 4}  # FLOAT, DOUBLE, INT64, INT32
_FIELDS = {1: "float_data", 11: "double_data", 7: "int64_data", 6: "int32_data"}


def _to_array(onnx, tensor, name):
    """The tensor as an array, after checking that it holds what it declares."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        raise ValueError(f"model: tensor {name!r} refers to external data; only "
                         "self-contained files are read (export with "
                         "torch.onnx.export(..., external_data=False), or save "
                         "with onnx.save(model, path, save_as_external_data=False))")
    if tensor.HasField("segment"):
        raise ValueError(f"model: tensor {name!r} is segmented")
    if tensor.data_type not in _ITEMSIZE:
        raise ValueError(f"model: tensor {name!r} has unsupported data type "
                         f"{onnx.TensorProto.DataType.Name(tensor.data_type)}")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"model: tensor {name!r} has a negative dimension {dims}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise ValueError(f"model: tensor {name!r} declares {count} elements, more "
                         f"than {MAX_ELEMENTS}")
    if tensor.raw_data:
        held = len(tensor.raw_data) / _ITEMSIZE[tensor.data_type]
    else:
        held = len(getattr(tensor, _FIELDS[tensor.data_type]))
    if held != count:
        raise ValueError(f"model: tensor {name!r} declares shape {dims} "
                         f"({count} elements) but holds {held:g}")
    return onnx.numpy_helper.to_array(tensor)


def _float_attr(value):
    """A float32 attribute or constant as the decimal it was written from
    (0.01, not 0.009999999776)."""
    return float(str(np.float32(value)))


class _Reader:
    """Turns the chain's ops into layer descriptions, in order."""

    def __init__(self, graph, width, dtype):
        self.g = graph
        self.width = width  # None until the first layer fixes it
        self.dtype = dtype
        self.specs = []  # [type, config, weights]
        self.scale = None  # a scalar Mul/Div waiting for its Softmax
        self.pieces = None  # a Reshape waiting for its ReduceMax

    # -- helpers -----------------------------------------------------------
    def fail(self, node, why):
        raise ValueError(f"model: node {node.name or node.op_type!r} "
                         f"({node.op_type}): {why}")

    def const(self, node, index, what):
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.g.constant(node.input[index])
        if value is None:
            self.fail(node, f"its {what} must be a constant")
        return value

    def vector(self, node, value, what):
        """A per-feature constant as shape (width,)."""
        value = np.asarray(value)
        if value.shape not in ((self.width,), (1, self.width)):
            self.fail(node, f"{what} has shape {value.shape}, expected "
                      f"({self.width},)")
        return value.reshape(self.width)

    def open_dense(self):
        """The last Dense if it has no activation yet, else None."""
        if self.specs and self.specs[-1][0] == "Dense" and \
                self.specs[-1][1]["activation"] == "identity":
            return self.specs[-1]
        return None

    def add_dense(self, node, W):
        if W.ndim != 2:
            self.fail(node, f"weight has shape {W.shape}, expected 2-D")
        if self.width is not None and W.shape[1] != self.width:
            self.fail(node, f"weight takes {W.shape[1]} inputs, the graph has "
                      f"{self.width}")
        self.width = W.shape[0]
        b = np.zeros(W.shape[0])
        self.specs.append(["Dense", {"units": W.shape[0], "activation": "identity"},
                           [W, b]])

    def activation(self, name, alpha=None):
        dense = self.open_dense()
        if dense is not None:
            dense[1]["activation"] = name
            if alpha is not None:
                dense[1]["alpha"] = alpha
        else:
            config = {"name": name}
            if alpha is not None:
                config["alpha"] = alpha
            self.specs.append(["Activation", config, []])

    def check_no_pending(self, node):
        if self.scale is not None and node.op_type != "Softmax":
            self.fail(node, "a scalar Mul or Div is read only before Softmax")
        if self.pieces is not None and node.op_type != "ReduceMax":
            self.fail(node, "a Reshape is read only before ReduceMax (Maxout)")

    # -- ops ----------------------------------------------------------------
    def Gemm(self, node, a):
        if a.get("transA", 0):
            self.fail(node, "transA=1 is not supported")
        B = self.const(node, 1, "B")
        W = B if a.get("transB", 0) else np.asarray(B).T
        self.add_dense(node, np.asarray(W) * a.get("alpha", 1.0))
        C = self.const(node, 2, "C")
        if C is not None:
            self._bias(node, np.asarray(C) * a.get("beta", 1.0))

    def MatMul(self, node, a):
        self.add_dense(node, np.asarray(self.const(node, 1, "B")).T)

    def _bias(self, node, c):
        if c.size == 1:
            c = np.full(self.width, c.reshape(()))
        self.specs[-1][2][1] = self.specs[-1][2][1] + self.vector(node, c, "bias")

    def Add(self, node, a):
        if self.open_dense() is None:
            self.fail(node, "an Add is read only as the bias after Gemm or MatMul")
        bias = next(self.g.constant(n) for n in node.input
                    if self.g.constant(n) is not None)
        self._bias(node, np.asarray(bias))

    def Relu(self, node, a):
        self.activation("relu")

    def Sigmoid(self, node, a):
        self.activation("sigmoid")

    def Tanh(self, node, a):
        self.activation("tanh")

    def Silu(self, node, a):
        self.activation("silu")

    def SigmoidPair(self, node, a):
        """[1 - sigmoid(z), sigmoid(z)] = softmax([0, z]): a zero row on top
        of the one-unit Dense before it, then Softmax."""
        dense = self.open_dense()
        if dense is None or self.width != 1:
            self.fail(node, "reads only the one output of a Gemm or MatMul")
        W, b = dense[2]
        dense[2] = [np.vstack([np.zeros_like(W), W]), np.concatenate([[0], b])]
        dense[1]["units"] = self.width = 2
        self.specs.append(["Activation", {"name": "softmax"}, []])

    def Softplus(self, node, a):
        # ONNX's Softplus, or torch's with its beta and threshold (a pattern)
        beta, threshold = a.get("beta", 1.0), a.get("threshold", 20.0)
        if beta != 1.0 or threshold != 20.0:
            self.fail(node, f"Softplus(beta={beta:g}, threshold={threshold:g}) is "
                      "not supported; fastnn's softplus is torch's default "
                      "(beta=1, threshold=20)")
        self.activation("softplus")

    def LeakyRelu(self, node, a):
        self.activation("leaky_relu", _float_attr(a.get("alpha", 0.01)))

    def Elu(self, node, a):
        self.activation("elu", _float_attr(a.get("alpha", 1.0)))

    def Selu(self, node, a):
        from fastnn.reference.activations import SELU_ALPHA, SELU_SCALE

        if not (math.isclose(a.get("alpha", SELU_ALPHA), SELU_ALPHA, rel_tol=1e-6)
                and math.isclose(a.get("gamma", SELU_SCALE), SELU_SCALE,
                                 rel_tol=1e-6)):
            self.fail(node, "only the standard alpha and gamma are supported")
        self.activation("selu")

    def Gelu(self, node, a):
        approximate = a.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) \
            else approximate
        names = {"none": "gelu", "tanh": "gelu_tanh"}
        if approximate not in names:
            self.fail(node, f"approximate={approximate!r} is not supported")
        self.activation(names[approximate])

    def _scalar(self, node):
        """The constant operand of x * c or x / c, a scalar."""
        values = [self.g.constant(n) for n in node.input]
        value = values[0] if node.op_type == "Mul" and values[1] is None \
            else values[1]
        if value is None or np.asarray(value).size != 1:
            self.fail(node, "only x times or over a scalar constant is supported")
        value = np.asarray(value).reshape(())
        return _float_attr(value) if value.dtype == np.float32 else float(value)

    def Mul(self, node, a):
        self.scale = self._scalar(node)

    def Div(self, node, a):
        value = self._scalar(node)
        if value == 0:
            self.fail(node, "division by zero")
        self.scale = 1.0 / value

    def Softmax(self, node, a):
        if a.get("axis", -1) not in (1, -1):
            self.fail(node, f"axis={a['axis']} is not the feature axis")
        scale, self.scale = self.scale, None
        if scale is not None and not (scale > 0 and math.isfinite(scale)):
            self.fail(node, f"the scale {scale} before Softmax must be positive "
                      "and finite")
        temperature = 1.0 if scale is None else 1.0 / scale
        if not (temperature > 0 and math.isfinite(temperature)):
            self.fail(node, f"temperature {temperature} must be positive")
        self.specs.append(["Activation", {"name": "softmax",
                                          "temperature": temperature}, []])

    def PRelu(self, node, a):
        self._prelu(node, np.asarray(self.const(node, 1, "slope")))

    def _prelu(self, node, slope):
        if slope.size == 1 and self.width != 1:
            self.specs.append(["PReLU", {"num_parameters": 1}, [slope.reshape(1)]])
        else:
            self.specs.append(["PReLU", {"num_parameters": "all"},
                               [self.vector(node, slope, "slope")]])

    def BatchNormalization(self, node, a):
        if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            self.fail(node, "training mode is not supported")
        arrays = [self.vector(node, self.const(node, i, what), what)
                  for i, what in enumerate(("", "scale", "bias", "mean", "var"))
                  if i]
        self.specs.append(["BatchNorm", {"eps": _float_attr(a.get("epsilon", 1e-5))},
                           arrays])

    # -- calls of fastnn's model-local functions (float64 graphs) ----------
    def _function_params(self, node):
        """The call's constant parameters, once its function is checked to be
        exactly the one fastnn writes for this dtype."""
        from fastnn.interop.onnx_export import FUNCTIONS, build_function

        found = self.g.functions.get((node.domain, node.op_type))
        expected = build_function(self.g.onnx, node.op_type, self.dtype)
        if found is None or found.SerializeToString(deterministic=True) != \
                expected.SerializeToString(deterministic=True):
            self.fail(node, f"the function {node.domain}.{node.op_type} is not "
                      "the one fastnn writes")
        names = FUNCTIONS[node.op_type][0]
        return [np.asarray(self.const(node, i + 1, name))
                for i, name in enumerate(names)]

    def _scalar_param(self, node, value):
        if value.size != 1:
            self.fail(node, f"parameter has shape {value.shape}, expected a scalar")
        return float(value.reshape(()))

    def fn_alpha_activation(self, node, a):
        (alpha,) = self._function_params(node)
        self.activation(node.op_type, self._scalar_param(node, alpha))

    def fn_activation(self, node, a):
        self._function_params(node)
        self.activation(node.op_type)

    def fn_prelu(self, node, a):
        (slope,) = self._function_params(node)
        self._prelu(node, slope)

    def fn_batchnorm(self, node, a):
        *arrays, eps = self._function_params(node)
        arrays = [self.vector(node, v, what) for v, what in
                  zip(arrays, ("weight", "bias", "running_mean", "running_var"))]
        self.specs.append(["BatchNorm", {"eps": self._scalar_param(node, eps)},
                           arrays])

    def Reshape(self, node, a):
        shape = [int(v) for v in np.asarray(self.const(node, 1, "shape")).ravel()]
        if len(shape) == 2 and shape[0] in (0, -1) and shape[1] in (-1, self.width):
            return  # (N, width) of a 2-D (N, width): nothing
        dense = self.open_dense()
        if dense is None or len(shape) != 3 or shape[0] not in (0, -1) or \
                min(shape[1:]) < 1 or shape[1] * shape[2] != self.width:
            self.fail(node, "a Reshape is read only as (N, units, pieces) after "
                      "Gemm (Maxout)")
        self.pieces = shape[1], shape[2]

    def ReduceMax(self, node, a):
        if self.pieces is None:
            self.fail(node, "a ReduceMax is read only after Reshape (Maxout)")
        axes = a.get("axes")
        if axes is None:
            axes = self.const(node, 1, "axes")
        axes = [int(v) for v in np.asarray(axes).ravel()] if axes is not None else []
        if axes not in ([2], [-1]) or a.get("keepdims", 1) != 0:
            self.fail(node, "only the max over the pieces (axes=[2], keepdims=0)")
        (units, pieces), self.pieces = self.pieces, None
        self.specs[-1][:2] = ["Maxout", {"units": units, "pieces": pieces}]
        self.width = units

    def Cast(self, node, a):
        try:
            to = self.g.onnx.helper.tensor_dtype_to_np_dtype(a.get("to", 0))
        except (KeyError, TypeError, ValueError):
            to = None
        if to != self.dtype:
            self.fail(node, "only a cast to the input's own type is supported")

    def Identity(self, node, a):
        pass

    def Flatten(self, node, a):
        if a.get("axis", 1) != 1:
            self.fail(node, "only Flatten(axis=1) of the 2-D input is supported")

    def Dropout(self, node, a):
        mode = self.const(node, 2, "training_mode")
        if mode is not None and bool(np.asarray(mode).any()):
            self.fail(node, "training mode is not supported")


#: How many inputs each op takes, (fewest, most); 1 for the rest.
ARITY = {"Gemm": (2, 3), "MatMul": (2, 2), "Add": (2, 2), "Mul": (2, 2),
         "Div": (2, 2), "PRelu": (2, 2), "BatchNormalization": (5, 5),
         "Reshape": (2, 2), "ReduceMax": (1, 2), "Dropout": (1, 3)}

#: ONNX op -> the :class:`_Reader` method that reads it.
OP_IMPORTERS = {name: getattr(_Reader, name) for name in (
    "Gemm", "MatMul", "Add", "Relu", "Sigmoid", "Tanh", "Softplus", "LeakyRelu",
    "Elu", "Selu", "Gelu", "Mul", "Div", "Softmax", "PRelu", "BatchNormalization",
    "Reshape", "ReduceMax", "Cast", "Identity", "Flatten", "Dropout",
    "Silu", "SigmoidPair")}
OP_IMPORTERS.update({
    "fastnn.leaky_relu": _Reader.fn_alpha_activation,
    "fastnn.elu": _Reader.fn_alpha_activation,
    "fastnn.selu": _Reader.fn_activation,
    "fastnn.gelu": _Reader.fn_activation,
    "fastnn.gelu_tanh": _Reader.fn_activation,
    "fastnn.softplus": _Reader.fn_activation,
    "fastnn.prelu": _Reader.fn_prelu,
    "fastnn.batchnorm": _Reader.fn_batchnorm,
})
ARITY.update({"fastnn.leaky_relu": (2, 2), "fastnn.elu": (2, 2),
              "fastnn.prelu": (2, 2), "fastnn.batchnorm": (6, 6)})
#: The ops above that only :data:`PATTERNS` make; a file's own node of that
#: name is not an ONNX op.
PATTERN_OPS = ("Silu", "SigmoidPair")


def _input(onnx, graph, g):
    inputs = [v for v in graph.input if g.constant(v.name) is None]
    if len(inputs) != 1:
        raise ValueError(f"model: expected one input, the graph has "
                         f"{[v.name for v in inputs]}")
    value = inputs[0]
    tensor = value.type.tensor_type
    dtypes = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}
    if not value.type.HasField("tensor_type") or tensor.elem_type not in dtypes:
        raise ValueError(f"model: input {value.name!r} must be a float or double "
                         "tensor")
    width = None
    if tensor.HasField("shape"):
        dims = tensor.shape.dim
        if len(dims) != 2:
            raise ValueError(f"model: input {value.name!r} must be 2-D, got "
                             f"{len(dims)} dimensions")
        if dims[1].HasField("dim_value"):
            width = int(dims[1].dim_value)
            if width < 1:
                raise ValueError(f"model: input {value.name!r} has {width} features")
    return value.name, np.dtype(dtypes[tensor.elem_type]), width


def _output(onnx, graph, output):
    names = [v.name for v in graph.output]
    if output is not None:
        if output not in names:
            raise ValueError(f"output: {output!r} is not an output of the graph; "
                             f"it has {names}")
        return output
    floats = [v.name for v in graph.output
              if v.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT,
                                                  onnx.TensorProto.DOUBLE)]
    if len(floats) != 1:
        raise ValueError(f"output: the graph has outputs {names}; name the one "
                         "to read")
    return floats[0]


def _op_key(node):
    """``op_type`` for the ONNX domain, ``domain.op_type`` for others."""
    if node.domain in _DEFAULT_DOMAINS:
        return node.op_type
    return f"{node.domain}.{node.op_type}"


def _producer(g, name, op_type):
    node = g.producer.get(name)
    if node is not None and node.op_type == op_type and \
            node.domain in _DEFAULT_DOMAINS:
        return node
    return None


def _silu(g, node):
    """``Mul(x, Sigmoid(x))`` as one ``Silu`` node reading x."""
    if node.op_type != "Mul" or len(node.input) != 2:
        return None
    for x, s in (tuple(node.input), tuple(node.input)[::-1]):
        sigmoid = _producer(g, s, "Sigmoid")
        if sigmoid is not None and list(sigmoid.input) == [x]:
            return "Silu", x, [sigmoid]
    return None


def _sigmoid_pair(g, node):
    """``Concat(1 - Sigmoid(z), Sigmoid(z))`` over the features (skl2onnx's
    binary classifier) as one ``SigmoidPair`` node reading z."""
    if node.op_type != "Concat" or len(node.input) != 2 or \
            g.attrs(node).get("axis") not in (1, -1):
        return None
    sub = _producer(g, node.input[0], "Sub")
    sigmoid = _producer(g, node.input[1], "Sigmoid")
    if sub is None or sigmoid is None or len(sigmoid.input) != 1 or \
            list(sub.input)[1:] != [node.input[1]]:
        return None
    one = g.constant(sub.input[0])
    one = None if one is None else np.asarray(one).ravel()
    if one is None or one.size != 1 or float(one[0]) != 1:
        return None
    return "SigmoidPair", sigmoid.input[0], [sub, sigmoid]


def _split_const(g, node, op_type):
    """(data input, constant value) of a two-input ``op_type`` node, or None."""
    if node is None or node.op_type != op_type or len(node.input) != 2:
        return None
    for x, c in (tuple(node.input), tuple(node.input)[::-1]):
        value = g.constant(c)
        if value is not None and g.constant(x) is None and np.asarray(value).size == 1:
            if op_type == "Div" and x != node.input[0]:
                return None
            return x, float(np.asarray(value).ravel()[0])
    return None


def _product(g, name, depth=3):
    """A product of ``Mul`` nodes ending at ``name``, flattened: (its data
    factors, the product of its scalar constant factors, the Mul nodes), or
    None when ``name`` is computed by no Mul. Nested Muls are followed
    ``depth`` levels down."""
    node = _producer(g, name, "Mul")
    if node is None or len(node.input) != 2:
        return None
    data, const, nodes = [], 1.0, [node]
    for x in node.input:
        value = g.constant(x)
        if value is not None:
            value = np.asarray(value)
            if value.size != 1:
                return None
            const *= float(value.ravel()[0])
            continue
        inner = _product(g, x, depth - 1) if depth > 1 else None
        if inner is None:
            data.append(x)
        else:
            data += inner[0]
            const *= inner[1]
            nodes += inner[2]
    return data, const, nodes


def _plus_one(g, name, op_type):
    """``Add(op_type(u), 1)`` in either order: (that node, the Add), or None."""
    add = _split_const(g, _producer(g, name, "Add"), "Add")
    if add is None or add[1] != 1:
        return None
    inner = _producer(g, add[0], op_type)
    if inner is None or len(inner.input) != 1:
        return None
    return inner, g.producer[name]


def _scaled(g, name, x, scale):
    """The Mul or Div nodes computing ``x * scale`` at ``name``, or None."""
    over = _split_const(g, _producer(g, name, "Div"), "Div")
    if over is not None and over[0] == x and math.isclose(1 / over[1], scale,
                                                         rel_tol=1e-6):
        return [g.producer[name]]
    prod = _product(g, name)
    if prod is not None and prod[0] == [x] and math.isclose(prod[1], scale,
                                                            rel_tol=1e-6):
        return prod[2]
    return None


def _cube(g, name, x):
    """The nodes computing ``x ** 3`` at ``name`` (Pow, or x * x * x)."""
    power = _split_const(g, _producer(g, name, "Pow"), "Pow")
    if power is not None and power == (x, 3.0):
        return [g.producer[name]]
    prod = _product(g, name)
    if prod is not None and prod[0] == [x, x, x] and prod[1] == 1:
        return prod[2]
    return None


def _gelu_inner(g, name, x):
    """``Add(Erf(x / sqrt 2), 1)`` or ``Add(Tanh(sqrt(2/pi) (x + 0.044715
    x^3)), 1)`` at ``name``: (approximate, nodes), or None."""
    erf = _plus_one(g, name, "Erf")
    if erf is not None:
        div = _scaled(g, erf[0].input[0], x, 1 / math.sqrt(2))
        if div is not None:
            return "none", [*erf, *div]
    tanh = _plus_one(g, name, "Tanh")
    if tanh is None:
        return None
    prod = _product(g, tanh[0].input[0])
    if prod is None or len(prod[0]) != 1 or not math.isclose(
            prod[1], math.sqrt(2 / math.pi), rel_tol=1e-6):
        return None
    add = _producer(g, prod[0][0], "Add")
    if add is None or len(add.input) != 2 or x not in add.input:
        return None
    other = add.input[1] if add.input[0] == x else add.input[0]
    term = _product(g, other)
    if term is None or not math.isclose(term[1], 0.044715, rel_tol=1e-6):
        return None
    cube = _cube(g, term[0][0], x) if len(term[0]) == 1 else (
        [] if term[0] == [x, x, x] else None)
    if cube is None:
        return None
    return "tanh", [*tanh, *prod[2], add, *term[2], *cube]


def _gelu(g, node):
    """GELU spelled out below opset 20, as torch's exporters write it (the
    erf form and the tanh form, the constants in any order): the product
    ``0.5 * x * (1 + erf(x / sqrt 2))`` or ``0.5 * x * (1 + tanh(...))``, as
    one ``Gelu`` node reading x."""
    prod = _product(g, node.output[0]) if node.op_type == "Mul" else None
    if prod is None or len(prod[0]) != 2 or not math.isclose(prod[1], 0.5):
        return None
    for x, inner in (prod[0], prod[0][::-1]):
        found = _gelu_inner(g, inner, x)
        if found is not None:
            approximate, nodes = found
            covered = [n for n in prod[2] + nodes if n is not node]
            return "Gelu", x, covered, {"approximate": approximate}
    return None


def _softplus_where(g, node):
    """torch's Softplus(beta, threshold), ``Where(Greater(beta x, threshold),
    x, Softplus(beta x) / beta)``, as one ``Softplus`` node reading x, with
    beta and threshold as attributes (the reader takes beta 1, threshold 20)."""
    if node.op_type != "Where" or len(node.input) != 3:
        return None
    cond, x, smooth = node.input
    greater = _split_const(g, _producer(g, cond, "Greater"), "Greater")
    if greater is None or g.producer[cond].input[0] != greater[0]:
        return None  # not (z > threshold)
    z, threshold = greater
    softplus = _producer(g, smooth, "Softplus")
    beta, nodes = 1.0, []
    if softplus is None:  # beta != 1: Div(Softplus(Mul(x, beta)), beta)
        over = _split_const(g, _producer(g, smooth, "Div"), "Div")
        softplus = over and _producer(g, over[0], "Softplus")
        if not softplus:
            return None
        beta, nodes = over[1], [g.producer[smooth]]
    if len(softplus.input) != 1 or softplus.input[0] != z:
        return None
    if z != x:
        scaled = _scaled(g, z, x, beta)
        if scaled is None:
            return None
        nodes += scaled
    return ("Softplus", x, [g.producer[cond], softplus, *nodes],
            {"beta": beta, "threshold": threshold})


#: Small subgraphs read as one op: each returns (op, data input, nodes it
#: covers besides the one it starts from[, attributes]) or None.
PATTERNS = (_silu, _sigmoid_pair, _gelu, _softplus_where)


def _fused(g, node):
    for pattern in PATTERNS:
        found = pattern(g, node)
        if found is not None:
            op, x, covered, *attrs = found
            return g.onnx.helper.make_node(op, [x], list(node.output),
                                           name=node.name,
                                           **(attrs[0] if attrs else {})), covered
    return node, []


def _chain(g, start, stop):
    """The nodes from ``stop`` (the input) to ``start`` (the output), in order."""
    chain, seen, name = [], set(), start
    while name != stop:
        node = g.producer.get(name)
        if node is None:
            raise ValueError(f"model: value {name!r} is computed by no node and "
                             "is not the input")
        if id(node) in seen:
            raise ValueError(f"model: the graph has a cycle through {name!r}")
        seen.add(id(node))
        original = node
        node, covered = _fused(g, node)
        seen.update(id(n) for n in covered)
        chain.append(node)
        op = _op_key(node)
        if op not in OP_IMPORTERS or (node is original and op in PATTERN_OPS):
            known = [k for k in OP_IMPORTERS if k not in PATTERN_OPS]
            raise ValueError(f"model: unsupported op {op} (node {node.name!r}); "
                             f"fastnn reads {', '.join(known)}")
        data = g.data_inputs(node)
        if len(data) != 1:
            raise ValueError(f"model: node {node.name or node.op_type!r} "
                             f"({node.op_type}) has {len(data)} data inputs; only "
                             "a chain of layers is read")
        index, name = data[0]
        if index != 0 and node.op_type not in ("Add", "Mul"):
            raise ValueError(f"model: node {node.name or node.op_type!r} "
                             f"({node.op_type}) takes the data as input {index}; "
                             "only input 0 is read")
    return chain[::-1]


def from_onnx(path, output=None, max_bytes=MAX_BYTES):
    """Read an MLP from an ONNX file into a new :class:`fastnn.Sequential`.

    Parameters
    ----------
    path : str or os.PathLike
    output : str or None
        The graph output to read; None takes the only float output.
    max_bytes : int
        Refuse files larger than this.

    Returns
    -------
    Sequential
        Built, in the input's dtype, with ``predict`` computing the chosen
        output.

    Raises
    ------
    ValueError
        If the file is not an ONNX model, holds an op the importer does not
        read (the message names it), refers to external data, declares more
        data than it holds, or is not a chain from one input to the output.
    """
    import fastnn
    from fastnn._validation import check_int
    from fastnn.layers import LAYERS

    onnx = require_onnx("ONNX import")
    max_bytes = check_int("max_bytes", max_bytes, 1)
    if output is not None and not isinstance(output, str):
        raise TypeError(f"output: must be a str or None, got {output!r}")
    path, data = _read_bytes(path, max_bytes)
    proto = _parse(onnx, path, data)
    graph = proto.graph
    g = _Graph(onnx, graph, proto.functions)
    name, dtype, width = _input(onnx, graph, g)
    chain = _chain(g, _output(onnx, graph, output), name)
    reader = _Reader(g, width, dtype)
    for node in chain:
        low, high = ARITY.get(_op_key(node), (1, 1))
        if not low <= len(node.input) <= high:
            reader.fail(node, f"takes {low} to {high} inputs, has {len(node.input)}")
        reader.check_no_pending(node)
        OP_IMPORTERS[_op_key(node)](reader, node, g.attrs(node))
    if reader.scale is not None or reader.pieces is not None:
        raise ValueError("model: the graph ends inside a Softmax or Maxout pattern")
    if not reader.specs:
        raise ValueError("model: the graph holds no layer")
    input_dim = width
    first = reader.specs[0]
    if input_dim is None:
        if first[0] not in ("Dense", "Maxout"):
            raise ValueError("model: the input width is not declared and no "
                             "Gemm or MatMul comes first")
        input_dim = first[2][0].shape[1]
    layers = [LAYERS[kind](**config) for kind, config, _ in reader.specs]
    model = fastnn.Sequential(layers, input_dim=input_dim, dtype=dtype.name)
    model.set_weights([w for _, _, weights in reader.specs for w in weights])
    return model
