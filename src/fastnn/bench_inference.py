"""Inference speed: fastnn ``predict`` beside onnxruntime, torch and NumPy
(``fastnn bench --inference``, ``benchmarks/run_inference.py``).

The same ReLU MLP with the same weights runs four ways on the same float32
input:

- fastnn ``model.predict`` (the one-call Dense stack), ``--threads`` threads;
- onnxruntime on ``model.to_onnx``'s file, ``--threads`` intra-op threads;
- torch ``nn.Sequential`` under ``torch.inference_mode``, ``--threads`` threads;
- the NumPy textbook ``H = max(H @ W.T + b, 0)`` layer by layer.

Each implementation's loop count is calibrated so one repeat takes at least
``--min-time``; then the repeats of the four run interleaved (a busy spell of
the machine hits them alike) and the best repeat is kept. Before each repeat
the benchmark pauses ``--settle`` seconds: onnxruntime's, torch's and
NumPy's BLAS worker threads spin for a while after their work (OpenBLAS's for
about 0.1 s), and without the pause they would take the cores from whichever
implementation runs next. Outputs are checked
to agree before anything is timed. onnxruntime and torch are skipped when not
installed.

    fastnn bench --inference            # best of 7
    fastnn bench --inference --quick    # best of 3, shorter repeats
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import fastnn

CONFIGS = [((64, 32, 10), 1), ((64, 32, 10), 10000), ((784, 128, 10), 1),
           ((784, 128, 10), 10000), ((784, 512, 256, 10), 10000)]


def build(sizes, seed=0):
    layers = [fastnn.Dense(n, "relu") for n in sizes[1:-1]] + [fastnn.Dense(sizes[-1])]
    return fastnn.Sequential(layers, input_dim=sizes[0], seed=seed)


def implementations(model, threads, tmpdir):
    """``{name: predict(X)}`` for every implementation that is installed."""
    weights = model.get_weights()
    pairs = list(zip(weights[::2], weights[1::2]))
    impls = {"fastnn predict": model.predict}
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped", file=sys.stderr)
    else:
        path = model.to_onnx(os.path.join(tmpdir, "m.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options,
                                       providers=["CPUExecutionProvider"])
        impls[f"onnxruntime {ort.__version__}, {threads} threads"] = \
            lambda X: session.run(None, {"X": X})[0]
    try:
        import torch
    except ImportError:
        print("torch not installed: skipped", file=sys.stderr)
    else:
        torch.set_num_threads(threads)
        modules = []
        for W, b in pairs:
            linear = torch.nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W))
                linear.bias.copy_(torch.from_numpy(b))
            modules += [linear, torch.nn.ReLU()]
        net = torch.nn.Sequential(*modules[:-1]).eval()

        def torch_predict(X):
            with torch.inference_mode():
                return net(torch.from_numpy(X)).numpy()

        impls["torch inference_mode"] = torch_predict

    def numpy_predict(X):
        H = X
        for i, (W, b) in enumerate(pairs):
            H = H @ W.T + b
            if i < len(pairs) - 1:
                np.maximum(H, 0, out=H)
        return H

    impls["NumPy textbook"] = numpy_predict
    return impls


def calibrate(fn, X, min_time):
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn(X)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return loops
        loops = max(2 * loops, int(1.2 * loops * min_time / max(elapsed, 1e-9)))


def best_of(impls, X, repeats, min_time, settle=0.0):
    loops = {name: calibrate(fn, X, min_time) for name, fn in impls.items()}
    best = dict.fromkeys(impls, float("inf"))
    for _ in range(repeats):
        for name, fn in impls.items():  # interleaved
            if settle:
                time.sleep(settle)  # the previous one's spinning threads go idle
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn(X)
            best[name] = min(best[name], (time.perf_counter() - start) / loops[name])
    return best


def fmt(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2,
                        help="fastnn, onnxruntime intra-op and torch threads")
    parser.add_argument("--min-time", type=float, default=0.02,
                        help="seconds per repeat, at least")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="seconds of pause before each repeat")
    parser.add_argument("--rows", type=int, default=None,
                        help="at most N rows per batch (a quick look)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.min_time = 3, 0.005
        args.settle = min(args.settle, 0.02)
    if args.repeats < 1 or args.min_time <= 0 or args.threads < 1 or (
            args.rows is not None and args.rows < 1) or args.settle < 0:
        parser.error("--repeats, --min-time, --threads and --rows must be "
                     "positive, --settle >= 0")
    rng = np.random.default_rng(0)
    threads_before = fastnn.get_num_threads()
    fastnn.set_num_threads(args.threads)
    try:
        rows, names = _measure(args, rng)
    finally:
        fastnn.set_num_threads(threads_before)
    _report(args, rows, names)
    return 0


def _measure(args, rng):
    rows, names = [], None
    with tempfile.TemporaryDirectory() as tmpdir:
        for sizes, n in CONFIGS:
            n = n if args.rows is None else min(n, args.rows)
            model = build(sizes)
            X = rng.standard_normal((n, sizes[0])).astype(np.float32)
            impls = implementations(model, args.threads, tmpdir)
            expected = model.predict(X)
            for name, fn in impls.items():
                np.testing.assert_allclose(fn(X), expected, rtol=1e-4, atol=1e-4,
                                           err_msg=name)
            best = best_of(impls, X, args.repeats, args.min_time, args.settle)
            names = list(impls)
            rows.append(("-".join(map(str, sizes)), n, best))
    return rows, names


def _report(args, rows, names):
    from fastnn._kernels import BUILD, LEVEL
    from fastnn.bench_variants import cpu_name

    print(f"best of {args.repeats}, float32, fastnn {fastnn.__version__} ({BUILD}, "
          f"level {LEVEL}), {os.cpu_count()} CPUs ({cpu_name()}), {args.threads} "
          f"threads, {args.settle:g} s pause before each repeat\n")
    ort_name = next((k for k in names if k.startswith("onnxruntime")), None)
    header = ["config", "rows"] + names + (["fastnn / onnxruntime"] if ort_name
                                           else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for config, n, best in rows:
        fastest = min(best.values())
        cells = [f"**{fmt(t)}**" if t == fastest else fmt(t) for t in best.values()]
        if ort_name:
            cells.append(f"{best['fastnn predict'] / best[ort_name]:.2f}")
        print(f"| {config} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
