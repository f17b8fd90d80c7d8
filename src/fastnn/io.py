"""Safe model files: safetensors tensors plus a JSON header; nothing pickled.

Tensor names follow a torch ``nn.Sequential`` state_dict: layer ``i`` of the
equivalent torch stack (a ``Dense`` with an activation counts as ``Linear``
then the activation) stores ``"{i}.weight"``, ``"{i}.bias"`` and, for
BatchNorm, ``"{i}.running_mean"``, ``"{i}.running_var"`` and
``"{i}.num_batches_tracked"``. The metadata key ``"fastnn"`` holds the
architecture, dtype, loss and versions as JSON, and a SHA-256 of that header and
of the tensors; a file without it is refused.

:func:`load` parses the safetensors layout itself (an 8-byte little-endian
header length, then a JSON header giving each tensor's ``dtype``, ``shape`` and
``data_offsets``) and checks all of it, within the bounds below, against the
file's size and the architecture before it reads any tensor data. It then reads
only the tensors the architecture expects, straight into the new model's arrays.
:func:`save` runs the same checks on what it is about to write, so whatever it
writes loads.
"""

import hashlib
import itertools
import json
import math
import os
import re
import stat
import sys

import numpy as np

#: Version of the file layout; files from a newer layout are refused.
FORMAT_VERSION = 1
#: Largest safetensors header (the JSON text before the tensor data) accepted.
MAX_HEADER_BYTES = 16 << 20
#: Deepest nesting of lists and objects accepted in a header's JSON.
MAX_JSON_DEPTH = 32
#: Most lists and objects accepted in a header's JSON (bounds parsing memory).
MAX_JSON_CONTAINERS = 100_000
#: Most tensors accepted in a file.
MAX_TENSORS = 10_000
#: safetensors dtype codes of the tensors fastnn writes, as little-endian dtypes.
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
#: Pseudo file systems: nothing is saved under them.
_PSEUDO_FS = ("/proc", "/sys")


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


def _layout(model):
    """``{tensor name: (layer, array name or None, dtype code, shape)}`` of every
    tensor a file of ``model`` holds; the array name is None for a BatchNorm
    counter (an int64 scalar, optional in a file)."""
    code = {dt: c for c, dt in _DTYPES.items()}[np.dtype(model.dtype).newbyteorder("<")]
    layout = {name: (layer, key, code, shape)
              for name, layer, key, shape in _tensor_names(model)}
    for name, layer in _counter_names(model):
        layout[name] = (layer, None, "I64", ())
    return layout


# -- the checksum ----------------------------------------------------------------


def _header_digest(header):
    """SHA-256 state after the header (but its ``"sha256"``)."""
    digest = hashlib.sha256()
    rest = {k: v for k, v in header.items() if k != "sha256"}
    digest.update(json.dumps(rest, sort_keys=True).encode())
    return digest


def _digest_tensor(digest, name, dtype, shape, data):
    """Add one tensor: its name, little-endian dtype, shape and bytes.

    A scalar's shape counts as ``[1]``, as ``np.ascontiguousarray`` (which makes
    arrays at least 1-d) gave it when the format was made.
    """
    digest.update(json.dumps([name, dtype.str, list(shape) or [1]]).encode())
    digest.update(data)


def _checksum(header, tensors):
    """SHA-256 over the header (but its ``"sha256"``) and every tensor's name,
    dtype, shape and little-endian bytes, in name order.

    safetensors has no checksum of its own, so without it a damaged data
    region, or a damaged number in the header, would load as a different model.
    """
    digest = _header_digest(header)
    for name in sorted(tensors):
        arr = tensors[name]
        little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        _digest_tensor(digest, name, little.dtype, little.shape, little.tobytes())
    return digest.hexdigest()


# -- parsing and checking --------------------------------------------------------

#: A JSON string, or an unterminated one running to the end: never fails once
#: started at a quote, so the scan stays linear on any text.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def _refuse_constant(name):
    raise ValueError(f"it holds {name}, which is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"it holds the number {text[:40]}, too large for a float")
    return value


def _unique_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"it has the key {dup[:80]!r} twice")
    return obj


def _loads(text):
    """``json.loads`` within bounds: at most :data:`MAX_JSON_CONTAINERS` lists
    and objects, nested at most :data:`MAX_JSON_DEPTH` deep, finite numbers and
    unique keys. Raises ValueError."""
    skeleton = _JSON_STRING.sub("", text)  # brackets inside strings do not nest
    opens = skeleton.count("[") + skeleton.count("{")
    if opens > MAX_JSON_CONTAINERS:
        raise ValueError(f"it has {opens} lists and objects, more than the "
                         f"{MAX_JSON_CONTAINERS} allowed")
    brackets = re.sub(r"[^\[\]{}]", "", skeleton)
    if len(brackets) > 2 * opens:
        raise ValueError("its brackets do not balance")
    depth = max(itertools.accumulate(1 if c in "[{" else -1 for c in brackets),
                default=0)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"it nests {depth} lists or objects deep, more than "
                         f"the {MAX_JSON_DEPTH} allowed")
    return json.loads(text, parse_constant=_refuse_constant,
                      parse_float=_finite_float, object_pairs_hook=_unique_keys)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _header_length(prefix, size):
    """The header length given by the first 8 bytes ``prefix`` of a file of
    ``size`` bytes, checked against :data:`MAX_HEADER_BYTES` and ``size``."""
    if len(prefix) < 8:
        raise ValueError(f"it holds {len(prefix)} bytes, too few for a "
                         f"safetensors file")
    n = int.from_bytes(prefix, "little")
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"its header claims {n} bytes, more than the "
                         f"{MAX_HEADER_BYTES} allowed")
    if n > size - 8:
        raise ValueError(f"its header claims {n} bytes, the file holds "
                         f"{size - 8} after the length (truncated?)")
    return n


def _parse_header(raw, data_size):
    """Parse a safetensors header (the JSON bytes ``raw``; ``data_size`` bytes of
    tensor data follow it).

    Returns ``(fastnn header, table)``, ``table`` mapping each tensor name to
    ``(dtype code, shape, begin, end)``. Raises ValueError saying what is wrong.
    """
    try:
        outer = _loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"its safetensors header is not valid: {exc}") from None
    if not isinstance(outer, dict):  # a file's contents: ValueError, not TypeError
        raise ValueError("its safetensors header is not a JSON object")  # noqa: TRY004
    metadata = outer.pop("__metadata__", None)
    if len(outer) > MAX_TENSORS:
        raise ValueError(f"it has {len(outer)} tensors, more than the "
                         f"{MAX_TENSORS} allowed")
    table = {}
    for name, entry in outer.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape",
                                                         "data_offsets"}:
            raise ValueError(f"the entry of tensor {name[:80]!r} is not a "
                             f"safetensors tensor entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or not all(map(_is_count, shape))
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(map(_is_count, offsets)) or offsets[0] > offsets[1]):
            raise ValueError(f"tensor {name[:80]!r} has an invalid shape {shape!r:.80} "
                             f"or data_offsets {offsets!r:.80}")
        table[name] = (dtype, tuple(shape), *offsets)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("fastnn"), str):
        raise ValueError("it has no fastnn header (a safetensors file from "  # noqa: TRY004
                         "another program?)")
    try:
        header = _loads(metadata["fastnn"])
    except ValueError as exc:
        raise ValueError(f"its fastnn header is not valid: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != "fastnn":
        raise ValueError("its header is not a fastnn header")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"unknown format version {version!r:.80}")
    if version > FORMAT_VERSION:
        raise ValueError(f"it was written by a newer fastnn "
                         f"({header.get('fastnn_version')!s:.40}, format {version}); "
                         f"this is format {FORMAT_VERSION}: upgrade fastnn")
    checksum = header.get("sha256")
    if not isinstance(checksum, str) or not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise ValueError("its header carries no valid checksum (sha256)")
    return header, table


def _architecture(header, backend):
    """``(unbuilt model, input_dim, loss, meaning)`` described by a fastnn
    header; each layer knows its widths (``layer.build``) but has no arrays
    yet. ``meaning`` is ``(classes, feature_names, target_name)``."""
    from fastnn._validation import check_int
    from fastnn.layers import LAYERS
    from fastnn.model import Sequential

    try:
        layers = []
        for spec in header["layers"]:
            cls = LAYERS[spec["type"]]
            layers.append(cls.from_config(dict(spec["config"])))
        model = Sequential(layers, dtype=header["dtype"], backend=backend)
        input_dim = check_int("input_dim", header["input_dim"], 1)
        width = input_dim
        for layer in model.layers:  # widths only; the arrays come later
            width = layer.build(width, model.dtype)
        loss = header.get("loss")
        if loss is not None:
            from fastnn.losses import get_loss

            loss = get_loss(loss).name
        meaning = _meaning(header, input_dim, width)
    except (LookupError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise ValueError(f"its architecture is invalid ({exc!r:.300})") from None
    return model, input_dim, loss, meaning


def _check_table(table, layout, data_size):
    """Check each tensor's name, dtype, shape and byte range against the
    architecture's ``layout`` and the ``data_size`` bytes of data."""
    missing = [name for name, (_, key, _, _) in layout.items()
               if key is not None and name not in table]
    unknown = sorted(set(table) - set(layout))
    if missing or unknown:
        raise ValueError(f"tensors missing {missing} or unexpected "
                         f"{[name[:80] for name in unknown[:10]]}")
    for name, (_, _, code, expected) in layout.items():  # in weight order
        if name not in table:
            continue
        dtype, shape, begin, end = table[name]
        if dtype != code or shape != expected:
            raise ValueError(f"tensor {name} is {dtype!s:.20}{list(shape)!s:.80}, "
                             f"expected {code}{list(expected)}")
        nbytes = _DTYPES[code].itemsize * math.prod(shape)
        if end - begin != nbytes:
            raise ValueError(f"tensor {name} spans {end - begin} bytes, its shape "
                             f"needs {nbytes}")
    at = 0
    for name, (_, _, begin, end) in sorted(table.items(), key=lambda t: t[1][2:]):
        if begin != at or end > data_size:
            break
        at = end
    else:
        if at == data_size:
            return
    raise ValueError(f"its tensors do not tile its {data_size} bytes of tensor "
                     f"data (truncated, or bytes added or moved)")


def _value_problem(name, key, arr):
    """Why the values of tensor ``name`` (array ``key``; None for a counter)
    cannot be in a model file, or None."""
    if key is None:
        if arr.shape != () or arr.dtype.kind not in "iu" or arr < 0:
            return f"tensor {name} is {arr.ravel()[:3]}, expected a count (>= 0)"
    elif not np.isfinite(arr).all():
        return f"tensor {name} contains NaN or infinity"
    elif key == "running_var" and (arr < 0).any():
        return f"tensor {name} (a variance) has negative values"
    return None


# -- paths -----------------------------------------------------------------------


def _check_path(path, name="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: must be a str or os.PathLike, got {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"{name}: must be a text path, got {path!r}")
    if "\0" in path:
        raise ValueError(f"{name}: must not contain a NUL character: {path!r}")
    return path


def _check_target(path, name):
    """Refuse anything but a regular file (or nothing) at ``path`` itself."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise ValueError(f"{name}: {path} is a symbolic link; a model file is "
                         f"not written through a link: give the file it names")
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ValueError(f"{name}: {path} is {kind} (only a regular file is "
                         f"replaced)")


def check_save_path(path, name="path"):
    """Check that a file can be written at ``path``, before any work is done.

    The rule for what already exists there: nothing, or a regular file, which
    is replaced atomically. Everything else is refused and left alone:
    directories, device nodes (``/dev/null``), FIFOs, sockets, and symbolic
    links, even a link to a regular file (replacing the file would replace the
    link, not write where it points; give the link's target instead).
    Symbolic links among the directories above ``path`` are followed as usual.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        The argument's name in error messages (``"--save"``, ``"path"``).

    Returns
    -------
    str
        ``path`` as a str.

    Raises
    ------
    TypeError
        If ``path`` is not a text path.
    ValueError
        If ``path`` is empty or names a directory; if its directory does not
        exist, cannot be written, or is under ``/proc`` or ``/sys`` (pseudo
        file systems); or if something other than a regular file is there.
    """
    path = _check_path(path, name)
    if not path:
        raise ValueError(f"{name}: must not be empty")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise ValueError(f"{name}: {path} names a directory, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: no such directory: {folder}")
    if os.name == "posix":
        real = os.path.realpath(folder)
        for root in _PSEUDO_FS:
            if real == root or real.startswith(root + "/"):
                raise ValueError(f"{name}: {path} is in {root}, a pseudo file "
                                 f"system that holds no files")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write to {folder}")
    _check_target(path, name)
    return path


def _write_atomic(path, data, name="path"):
    """Write ``data`` to a new file next to ``path``, then ``os.replace`` it,
    checking again just before that ``path`` is no link, device or directory.

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
        _check_target(path, name)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- save and load ---------------------------------------------------------------


def save(model, path):
    """Write ``model`` to ``path`` atomically (temp file, then ``os.replace``).

    ``path`` follows the rules of :func:`check_save_path`. The file is checked
    as :func:`load` checks it before anything is written, so a model that could
    not be loaded back (infinite weights, say) is refused and any existing
    file is left untouched.

    Raises
    ------
    TypeError, ValueError
        For a bad ``path`` (see :func:`check_save_path`), an unbuilt model, or
        a model whose file :func:`load` would refuse.
    """
    from safetensors.numpy import save as st_save

    import fastnn

    path = check_save_path(path)
    model._require_built("save")
    layout = _layout(model)
    tensors = {}
    for name, (layer, key, _, _) in layout.items():
        if key is not None:
            tensors[name] = np.ascontiguousarray(layer.get_arrays()[key])
            continue
        count = layer.num_batches_tracked
        if not isinstance(count, (int, np.integer)) or not 0 <= count < 2**63:
            raise ValueError(f"model: cannot be saved: {name} is {count!r:.40}, "
                             f"not a count")
        tensors[name] = np.array(count, np.int64)
    header = dict(model.get_config(), format="fastnn",
                  format_version=FORMAT_VERSION, fastnn_version=fastnn.__version__)
    header["sha256"] = _checksum(header, tensors)
    try:
        data = st_save(tensors, metadata={"fastnn": json.dumps(header)})
        n = _header_length(data[:8], len(data))
        _, table = _parse_header(data[8:8 + n], len(data) - 8 - n)
        unbuilt, _, _, _ = _architecture(header, model.backend)
        _check_table(table, _layout(unbuilt), len(data) - 8 - n)
        for name, (_, key, _, _) in layout.items():
            problem = _value_problem(name, key, tensors[name])
            if problem:
                raise ValueError(problem)
    except ValueError as exc:
        raise ValueError(f"model: cannot be saved, fastnn.load would refuse "
                         f"the file: {exc}") from None
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
    why = " ".join(str(why).split())  # one line, whatever the file holds
    if len(why) > 500:
        why = why[:500] + " ..."
    return ValueError(f"path: {path!s} is not a loadable fastnn model: {why}")


def _open_regular(path):
    """Open ``path`` for reading, refusing anything but a regular file (a FIFO
    would block, a device would never end)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"path: no such file: {path}") from None
    except IsADirectoryError:
        raise _bad(path, "it is a directory") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _bad(path, "it is a directory" if stat.S_ISDIR(mode)
                   else "it is not a regular file")
    return open(fd, "rb", buffering=0)  # the caller closes it


def _read_into(fh, view):
    """Fill the writable bytes ``view`` from ``fh``; False at an early end."""
    while len(view):
        got = fh.readinto(view)
        if not got:
            return False
        view = view[got:]
    return True


def _read_tensors(fh, start, table, layout, arrays, header):
    """Read each tensor of ``table`` into ``arrays[name]`` (checked sizes), then
    check the checksum and the values."""
    digest = _header_digest(header)
    for name in sorted(table):
        dtype, shape, begin, _ = table[name]
        arr = arrays[name]
        fh.seek(start + begin)
        if not _read_into(fh, memoryview(arr).cast("B")):
            raise ValueError(f"it ended inside tensor {name} (truncated while read?)")
        _digest_tensor(digest, name, _DTYPES[dtype], shape, memoryview(arr).cast("B"))
        if sys.byteorder == "big":  # pragma: no cover - no big-endian CI
            arr.byteswap(inplace=True)
    if digest.hexdigest() != header["sha256"]:
        raise ValueError("its contents do not match the checksum in its header "
                         "(the file is corrupted)")
    for name in table:
        problem = _value_problem(name, layout[name][1], arrays[name])
        if problem:
            raise ValueError(problem)


def load(path, backend="cython"):
    """Read a model written by :meth:`Sequential.save`.

    Before any tensor data is read, the safetensors header is parsed within
    :data:`MAX_HEADER_BYTES`, :data:`MAX_JSON_DEPTH`,
    :data:`MAX_JSON_CONTAINERS` and :data:`MAX_TENSORS`, the architecture is
    built (widths only), and each tensor's name, dtype, shape and byte range
    is checked against it and against the file's size. Only then are the
    tensors read, straight into the new model's arrays, and the checksum and
    the values (finite, variances >= 0, counts >= 0) checked.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a regular file, is truncated, corrupted, not
        written by fastnn, carries no checksum, is from a newer fastnn, or its
        tensors do not fit its architecture.
    """
    path = _check_path(path)
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            n = _header_length(fh.read(8), size)
            raw = bytearray(n)
            if not _read_into(fh, memoryview(raw)):
                raise ValueError("it ended inside its header (truncated while read?)")
            header, table = _parse_header(bytes(raw), size - 8 - n)
            model, input_dim, loss, meaning = _architecture(header, backend)
            layout = _layout(model)
            _check_table(table, layout, size - 8 - n)
        except ValueError as exc:
            raise _bad(path, exc) from None

        model.build(input_dim)
        model.loss = loss
        model.classes, model.feature_names, model.target_name = meaning
        arrays = {name: layer.get_arrays()[key] if key else np.zeros((), np.int64)
                  for name, (layer, key, _, _) in layout.items() if name in table}
        try:
            _read_tensors(fh, 8 + n, table, layout, arrays, header)
        except ValueError as exc:
            raise _bad(path, exc) from None
    for name, (layer, key, _, _) in layout.items():
        if key is None:
            layer.num_batches_tracked = int(arrays.get(name, 0))
    return model
