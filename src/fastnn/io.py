"""Safe model files: safetensors tensors plus a JSON header; nothing pickled.

Tensor names follow a torch ``nn.Sequential`` state_dict: layer ``i`` of the
equivalent torch stack (a ``Dense`` with an activation counts as ``Linear``
then the activation) stores ``"{i}.weight"``, ``"{i}.bias"`` and, for
BatchNorm, ``"{i}.running_mean"``, ``"{i}.running_var"`` and
``"{i}.num_batches_tracked"``. The metadata key ``"fastnn"`` holds the
architecture, dtype, loss and versions as JSON.
"""

import json
import os
import tempfile

import numpy as np

#: Version of the file layout; files from a newer layout are refused.
FORMAT_VERSION = 1


def _tensor_names(model):
    """``[(tensor name, layer, array name)]`` in weight order."""
    names = []
    index = 0
    for layer in model.layers:
        for name in layer.weight_names():
            names.append((f"{index}.{name}", layer, name))
        index += layer.torch_modules
    return names


def save(model, path):
    """Write ``model`` to ``path`` atomically (temp file, then ``os.replace``)."""
    from safetensors.numpy import save as st_save

    import fastnn

    model._require_built("save")
    tensors = {name: np.ascontiguousarray(layer.get_arrays()[key])
               for name, layer, key in _tensor_names(model)}
    index = 0
    for layer in model.layers:
        if hasattr(layer, "num_batches_tracked"):
            tensors[f"{index}.num_batches_tracked"] = np.array(
                layer.num_batches_tracked, np.int64)
        index += layer.torch_modules
    header = dict(model.get_config(), format="fastnn",
                  format_version=FORMAT_VERSION, fastnn_version=fastnn.__version__)
    data = st_save(tensors, metadata={"fastnn": json.dumps(header)})
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path, why):
    return ValueError(f"path: {path!s} is not a loadable fastnn model: {why}")


def load(path, backend="cython"):
    """Read a model written by :meth:`Sequential.save`.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is truncated, corrupted, not written by fastnn, from a newer
        fastnn, or its tensors do not fit its architecture.
    """
    from safetensors import safe_open

    from fastnn.layers import LAYERS
    from fastnn.model import Sequential

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file: {path}")
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise _bad(path, f"not a valid safetensors file ({exc})") from None
    if "fastnn" not in metadata:
        raise _bad(path, "it has no fastnn header (a safetensors file from "
                   "another program?)")
    try:
        header = json.loads(metadata["fastnn"])
    except ValueError as exc:
        raise _bad(path, f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != "fastnn":
        raise _bad(path, "its header is not a fastnn header")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _bad(path, f"unknown format version {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(path, f"it was written by a newer fastnn "
                   f"({header.get('fastnn_version')}, format {version}); this is "
                   f"format {FORMAT_VERSION}: upgrade fastnn")
    try:
        layers = []
        for spec in header["layers"]:
            cls = LAYERS[spec["type"]]
            layers.append(cls.from_config(dict(spec["config"])))
        model = Sequential(layers, input_dim=header["input_dim"],
                           dtype=header["dtype"], backend=backend)
        loss = header.get("loss")
        if loss is not None:
            from fastnn.losses import get_loss

            loss = get_loss(loss).name
        model.loss = loss
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its architecture is invalid ({exc!r})") from None

    expected = _tensor_names(model)
    extra = {name for name in tensors if name.endswith(".num_batches_tracked")}
    missing = [name for name, _, _ in expected if name not in tensors]
    unknown = set(tensors) - {name for name, _, _ in expected} - extra
    if missing or unknown:
        raise _bad(path, f"tensors missing {missing} or unexpected {sorted(unknown)}")
    for name, layer, key in expected:
        arr = tensors[name]
        target = layer.get_arrays()[key]
        if arr.dtype != target.dtype or arr.shape != target.shape:
            raise _bad(path, f"tensor {name} is {arr.dtype}{list(arr.shape)}, "
                       f"expected {target.dtype}{list(target.shape)}")
        if not np.isfinite(arr).all():
            raise _bad(path, f"tensor {name} contains NaN or infinity")
    for name, layer, key in expected:
        layer.get_arrays()[key][...] = tensors[name]
    index = 0
    for layer in model.layers:
        if hasattr(layer, "num_batches_tracked"):
            value = tensors.get(f"{index}.num_batches_tracked")
            layer.num_batches_tracked = int(value) if value is not None else 0
        index += layer.torch_modules
    return model
