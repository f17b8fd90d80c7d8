"""Safe model files: safetensors tensors plus a JSON header; nothing pickled.

Tensor names follow a torch ``nn.Sequential`` state_dict: layer ``i`` of the
equivalent torch stack (a ``Dense`` with an activation counts as ``Linear``
then the activation) stores ``"{i}.weight"``, ``"{i}.bias"`` and, for
BatchNorm, ``"{i}.running_mean"``, ``"{i}.running_var"`` and
``"{i}.num_batches_tracked"``. The metadata key ``"fastnn"`` holds the
architecture, dtype, loss and versions as JSON, and a SHA-256 of the header and
the tensors (files without one still load).
"""

import hashlib
import json
import os

import numpy as np

#: Version of the file layout; files from a newer layout are refused.
FORMAT_VERSION = 1


def _tensor_names(model):
    """``[(tensor name, layer, array name, shape)]`` in weight order.

    Needs only the layers' widths (``layer.build``), not their arrays, so that
    ``load`` can check a file's tensors before allocating anything.
    """
    names = []
    index = 0
    for layer in model.layers:
        shapes = dict(layer.param_shapes())
        shapes.update(layer.state_shapes())
        for name in layer.weight_names():
            names.append((f"{index}.{name}", layer, name, tuple(shapes[name])))
        index += layer.torch_modules
    return names


def _counter_names(model):
    """``[(tensor name, layer)]`` of the BatchNorm ``num_batches_tracked``
    counters (torch's name; not part of ``get_weights``)."""
    from fastnn.layers import BatchNorm

    names = []
    index = 0
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            names.append((f"{index}.num_batches_tracked", layer))
        index += layer.torch_modules
    return names


def _checksum(header, tensors):
    """SHA-256 over the header (but its ``"sha256"``) and every tensor's name,
    dtype, shape and bytes.

    safetensors has no checksum of its own, so without it a damaged data
    region, or a damaged number in the header, would load as a different model.
    """
    digest = hashlib.sha256()
    rest = {k: v for k, v in header.items() if k != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    for name in sorted(tensors):
        arr = tensors[name]
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        digest.update(json.dumps([name, little.dtype.str, list(little.shape)])
                      .encode())
        digest.update(little.tobytes())
    return digest.hexdigest()


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: must be a str or os.PathLike, got {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path: must be a text path, got {path!r}")
    return path


def _write_atomic(path, data):
    """Write ``data`` to a new file next to ``path``, then ``os.replace`` it.

    The temporary file is created with ``os.open(..., 0o666)``, so the model
    file gets the permissions of any new file (the umask applies), not the
    owner-only ones of ``tempfile.mkstemp``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".fastnn-{os.urandom(8).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 64 random bits
        raise FileExistsError(f"path: no free temporary name in {directory}")
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


def save(model, path):
    """Write ``model`` to ``path`` atomically (temp file, then ``os.replace``)."""
    from safetensors.numpy import save as st_save

    import fastnn

    path = _check_path(path)
    model._require_built("save")
    tensors = {name: np.ascontiguousarray(layer.get_arrays()[key])
               for name, layer, key, _ in _tensor_names(model)}
    for name, layer in _counter_names(model):
        tensors[name] = np.array(layer.num_batches_tracked, np.int64)
    header = dict(model.get_config(), format="fastnn",
                  format_version=FORMAT_VERSION, fastnn_version=fastnn.__version__)
    header["sha256"] = _checksum(header, tensors)
    data = st_save(tensors, metadata={"fastnn": json.dumps(header)})
    _write_atomic(path, data)


def _meaning(header, input_dim, output_dim):
    """The header's ``classes``, ``feature_names`` and ``target_name``
    (absent from older files), checked against the model's widths."""
    from fastnn._validation import check_classes, check_feature_names

    classes = check_classes("classes", header.get("classes"))
    if classes is not None and output_dim not in (
        len(classes), 1 if len(classes) == 2 else -1
    ):
        raise ValueError(f"{len(classes)} classes for {output_dim} outputs")
    names = check_feature_names("feature_names", header.get("feature_names"),
                                input_dim)
    target = header.get("target_name")
    if target is not None and not isinstance(target, str):
        raise TypeError(f"target_name: must be a string, got {target!r}")
    return classes, names, target


def _bad(path, why):
    return ValueError(f"path: {path!s} is not a loadable fastnn model: {why}")


def load(path, backend="cython"):
    """Read a model written by :meth:`Sequential.save`.

    Everything is checked before any array is allocated: the header, the
    architecture, each tensor's name, dtype, shape and values, and the
    checksum of the tensor data.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is truncated, corrupted, not written by fastnn, from a newer
        fastnn, or its tensors do not fit its architecture.
    """
    from safetensors import safe_open

    from fastnn._validation import check_int
    from fastnn.layers import LAYERS
    from fastnn.model import Sequential

    path = _check_path(path)
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
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
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
        model = Sequential(layers, dtype=header["dtype"], backend=backend)
        input_dim = check_int("input_dim", header["input_dim"], 1)
        width = input_dim
        for layer in model.layers:  # widths only; the arrays come below
            width = layer.build(width, model.dtype)
        loss = header.get("loss")
        if loss is not None:
            from fastnn.losses import get_loss

            loss = get_loss(loss).name
        meaning = _meaning(header, input_dim, width)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its architecture is invalid ({exc!r})") from None

    expected = _tensor_names(model)
    counters = _counter_names(model)
    known = {name for name, _, _, _ in expected} | {name for name, _ in counters}
    missing = [name for name, _, _, _ in expected if name not in tensors]
    unknown = set(tensors) - known
    if missing or unknown:
        raise _bad(path, f"tensors missing {missing} or unexpected {sorted(unknown)}")
    dtype = np.dtype(model.dtype)
    for name, _, key, shape in expected:
        arr = tensors[name]
        if arr.dtype != dtype or arr.shape != shape:
            raise _bad(path, f"tensor {name} is {arr.dtype}{list(arr.shape)}, "
                       f"expected {dtype}{list(shape)}")
        if not np.isfinite(arr).all():
            raise _bad(path, f"tensor {name} contains NaN or infinity")
        if key == "running_var" and (arr < 0).any():
            raise _bad(path, f"tensor {name} (a variance) has negative values")
    for name, _ in counters:
        arr = tensors.get(name)
        if arr is not None and (arr.shape != () or arr.dtype.kind not in "iu"
                                or arr < 0):
            raise _bad(path, f"tensor {name} is {arr.dtype}{list(arr.shape)} "
                       f"{arr.ravel()[:3]}, expected a count (int64, shape [])")
    checksum = header.get("sha256")
    if checksum is not None and checksum != _checksum(header, tensors):
        raise _bad(path, "its contents do not match the checksum in its header "
                   "(the file is corrupted)")

    model.build(input_dim)
    model.loss = loss
    model.classes, model.feature_names, model.target_name = meaning
    for name, layer, key, _ in expected:
        layer.get_arrays()[key][...] = tensors[name]
    for name, layer in counters:
        value = tensors.get(name)
        layer.num_batches_tracked = int(value) if value is not None else 0
    return model
