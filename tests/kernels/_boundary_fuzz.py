"""A hypothesis fuzzer over every function ``get_ops`` exports.

Each example takes a kernel's valid call (``_boundary_cases.KERNELS``) and
replaces some of its array arguments with random ones: None, a list, random
shapes (empty included), random dtypes, strided or read-only layouts, and
label or index arrays with random values (out of range, huge, negative).
Both backends run the call; the property is that neither crashes and both end
alike: both return, or both raise the same exception type, TypeError or
ValueError.

``main`` runs the fuzzer in this process and prints ``EXAMPLE ...`` before each
call, so that a parent process can run it in a subprocess and name the example
that crashed it. Run as a script: ``python _boundary_fuzz.py EXAMPLES SEED``.
"""

import sys
import traceback

import _boundary_cases as table
import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64, np.int64, np.int32, np.bool_)
KERNELS = sorted(table.KERNELS)


@st.composite
def arrays(draw, base, role):
    """A random replacement for the array argument ``base``."""
    kind = draw(st.sampled_from(["none", "list", "shape", "dtype", "strided",
                                 "readonly", "values"]))
    if kind == "none":
        return None
    if kind == "list":
        return base.tolist()
    if kind == "shape":
        ndim = draw(st.integers(1, 3))
        shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
        return np.full(shape, 0.25, base.dtype)
    if kind == "dtype":
        return base.astype(draw(st.sampled_from(DTYPES)))
    if kind == "strided":
        return table._strided(base)
    if kind == "readonly":
        return table._readonly(base)
    # random values: for integer arrays (labels, indices, argmax) anything
    # from far below to far above their range
    if base.dtype.kind in "iu":
        values = st.one_of(st.integers(-3, 8), st.sampled_from([10**12, -10**12,
                                                                2**62]))
        return np.array(draw(st.lists(values, min_size=base.size,
                                      max_size=base.size)),
                        np.int64).reshape(base.shape)
    return base * draw(st.sampled_from([0.0, -1.0, 1e30, np.nan]))


def _plan(ops, **args):
    # The steps done are not compared: the first backend's run changes the
    # parameters that the second one starts from.
    table._run(ops.TrainPlan(**args))


def _stack(ops, layers, X, out):
    return ops.DenseStack(layers).forward(X, out)


@st.composite
def structured(draw, kind, t):
    """(kind, dtype, args) for TrainPlan or DenseStack, some arrays replaced:
    top-level ones, a layer's, or an optimizer state's."""
    if kind == "TrainPlan":
        args = table._plan_args(t)
    else:
        args = {"layers": [list(la) for la in table._stack_layers(t)],
                "X": table._a(t, table.N, table.D),
                "out": np.zeros((table.N, table.K), t)}
    slots = [(args, k) for k, v in args.items() if isinstance(v, np.ndarray)]
    if kind == "TrainPlan":
        slots += [(la[1], k) for la in args["layers"] for k in la[1]]
        slots += [(args["optimizer"]["state"], k) for k in args["optimizer"]["state"]]
    else:
        slots += [(la, j) for la in args["layers"] for j, v in enumerate(la)
                  if isinstance(v, np.ndarray)]
    picked = draw(st.lists(st.sampled_from(range(len(slots))), max_size=3,
                           unique=True))
    for i in picked:
        holder, key = slots[i]
        holder[key] = draw(arrays(holder[key], "in"))
    return args


@st.composite
def calls(draw):
    """(kernel, dtype name, args): one kernel call with random arguments."""
    kernel = draw(st.sampled_from(KERNELS + ["TrainPlan", "DenseStack"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    if kernel in ("TrainPlan", "DenseStack"):
        return kernel, dtype, draw(structured(kernel, np.dtype(dtype).type))
    factory, roles, _ = table.KERNELS[kernel]
    args = factory(np.dtype(dtype).type)
    names = sorted(roles)
    changed = draw(st.lists(st.sampled_from(names), max_size=len(names),
                            unique=True))
    for name in changed:
        args[name] = draw(arrays(args[name], roles[name]))
    return kernel, dtype, args


def _describe(args):
    out = []
    for k, v in args.items():
        if k == "layers":
            v = [_describe(dict(enumerate(la))) for la in v]
        if isinstance(v, np.ndarray):
            flags = "" if v.flags.c_contiguous else " strided"
            flags += "" if v.flags.writeable else " readonly"
            out.append(f"{k}=ndarray{v.shape}{v.dtype}{flags}")
        else:
            out.append(f"{k}={type(v).__name__ if isinstance(v, list) else v!r}")
    return ", ".join(out)


def _outcome(fn, args):
    # Both backends get the same arrays: no check depends on float values, and
    # the kernels write only float outputs (and maxout's argmax, in range).
    try:
        result = fn(**args)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - any other type is a finding
        return f"{type(exc).__name__}: {exc}"
    # the stack's X accepted (True) or declined (False)
    return f"ok {result}" if isinstance(result, bool) else "ok"


def main(examples, seed_value):
    import fastnn

    cy, ref = fastnn.get_ops("cython"), fastnn.get_ops("numpy")

    @seed(seed_value)
    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(calls())
    def check(call):
        kernel, dtype, args = call
        print("EXAMPLE", kernel, dtype, _describe(args), flush=True)
        got = {}
        for backend, ops in (("cython", cy), ("numpy", ref)):
            fn = {"TrainPlan": lambda **a: _plan(ops, **a),
                  "DenseStack": lambda **a: _stack(ops, **a)}.get(
                      kernel, getattr(ops, kernel))
            got[backend] = _outcome(fn, args)
        assert got["cython"] == got["numpy"] and got["cython"].split()[0] in (
            "ok", "TypeError", "ValueError"), f"{kernel} {dtype}: {got}"

    try:
        check()
    except Exception:  # noqa: BLE001 - reported to the parent
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
