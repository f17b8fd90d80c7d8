"""The standard training-speed benchmark (``fastnn bench``).

float32, softmax cross-entropy, Adam(lr=1e-3), ReLU hidden layers, synthetic
Gaussian data with 10 classes, reshuffled every epoch. Each implementation
runs in a fresh subprocess; each reports the median seconds per epoch of at
least 3 epochs after 1 warm-up epoch. The GEMM roofline is the time of only
the matrix products an epoch needs, through ``np.matmul(out=...)``: forward
``X @ W.T`` and ``dW = dY.T @ X`` per layer, ``dX = dY @ W`` per layer but the
first, over every minibatch including the last short one.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

#: name -> (n_samples, layer sizes incl. input and output, batch size)
CONFIGS = {
    "tiny": (1797, (64, 32, 10), 32),
    "small": (60000, (784, 128, 10), 128),
    "medium": (60000, (784, 512, 256, 10), 256),
    "wide": (20000, (1024, 2048, 2048, 10), 512),
}
IMPLEMENTATIONS = ("fastnn", "fastnn-numpy", "roofline", "torch", "torch-fused",
                   "sklearn")


def make_data(config, seed=0):
    n, sizes, _ = CONFIGS[config]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, sizes[-1], n)
    centers = rng.standard_normal((sizes[-1], sizes[0])).astype(np.float32)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32) + centers[y]
    return X, y


def _time_epochs(run_epoch, epochs):
    run_epoch()  # warm-up
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - start)
    return times


def _fastnn_model(config, backend):
    import fastnn

    sizes = CONFIGS[config][1]
    layers = [fastnn.Dense(u, "relu") for u in sizes[1:-1]]
    layers.append(fastnn.Dense(sizes[-1]))
    return fastnn.Sequential(layers, input_dim=sizes[0], seed=0, backend=backend)


def _fastnn_worker(config, epochs, backend):
    import fastnn

    batch = CONFIGS[config][2]
    X, y = make_data(config)
    model = _fastnn_model(config, backend)
    opt = fastnn.Adam(lr=1e-3)
    # One fit call, timing each epoch from the history (warm-up epoch dropped).
    history = model.fit(X, y, optimizer=opt, epochs=epochs + 1, batch_size=batch,
                        verbose=0, seed=0)
    times = history.history["time"][1:]
    return times


def roofline_epoch(config):
    """A function running one epoch of only the GEMMs (the roofline)."""
    n, sizes, batch = CONFIGS[config]
    X, _ = make_data(config)
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((o, i), dtype=np.float32) * 0.01
          for i, o in zip(sizes[:-1], sizes[1:])]
    acts = [np.empty((batch, s), np.float32) for s in sizes]
    grads = [np.empty((batch, s), np.float32) for s in sizes]
    dWs = [np.empty_like(W) for W in Ws]
    for g in grads:
        g[...] = 0.001
    batches = [(s, min(s + batch, n)) for s in range(0, n, batch)]

    def epoch():
        for s, e in batches:
            k = e - s
            A = [a[:k] for a in acts]
            G = [g[:k] for g in grads]
            A[0][...] = X[s:e]  # not a GEMM; the loop must touch the batch somehow
            for i, W in enumerate(Ws):
                np.matmul(A[i], W.T, out=A[i + 1])
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(G[i + 1].T, A[i], out=dWs[i])
                if i > 0:
                    np.matmul(G[i + 1], Ws[i], out=G[i])

    return epoch


def _roofline_worker(config, epochs):
    return _time_epochs(roofline_epoch(config), epochs)


def _torch_worker(config, epochs, fused):
    import torch

    n, sizes, batch = CONFIGS[config]
    X, y = make_data(config)
    torch.manual_seed(0)
    mods = []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        mods += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused or None)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    return _time_epochs(epoch, epochs)


def _sklearn_worker(config, epochs):
    import warnings

    from sklearn.neural_network import MLPClassifier

    n, sizes, batch = CONFIGS[config]
    X, y = make_data(config)
    clf = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="relu",
                        solver="adam", learning_rate_init=1e-3, batch_size=batch,
                        shuffle=True, random_state=0)
    classes = np.arange(sizes[-1])

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=classes)

    return _time_epochs(epoch, epochs)


#: rows of the batch-inference benchmark (at most the config's samples)
PREDICT_ROWS = 10000


def _median_time(fn, repeats, loops=1):
    """Median seconds per call of ``fn`` over ``repeats`` runs of ``loops`` calls,
    after one warm-up run."""
    for _ in range(loops):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - start) / loops)
    return float(np.median(times))


PREDICT_IMPLEMENTATIONS = ("fastnn", "fastnn-numpy", "gemms", "numpy-textbook",
                           "torch")


def _predict_worker(config, impl, repeats):
    """Inference seconds per call of one implementation: on a batch of up to
    ``PREDICT_ROWS`` rows and on one sample. ``gemms`` is the batch's forward
    matrix products alone; ``numpy-textbook`` a plain NumPy forward; ``torch``
    the same network under ``inference_mode``."""
    X = make_data(config)[0][:PREDICT_ROWS]
    x1 = np.ascontiguousarray(X[:1])
    model = _fastnn_model(config, "numpy" if impl == "fastnn-numpy" else "cython")
    params = model.get_weights()
    Ws, bs = params[0::2], params[1::2]
    if impl in ("fastnn", "fastnn-numpy"):
        run = model.predict
    elif impl == "gemms":
        outs = [np.empty((len(X), W.shape[0]), np.float32) for W in Ws]

        def run(A):
            for W, out in zip(Ws, outs):
                np.matmul(A, W.T, out=out)
                A = out
    elif impl == "numpy-textbook":
        def run(h):
            for i, (W, b) in enumerate(zip(Ws, bs)):
                h = h @ W.T + b
                if i < len(Ws) - 1:
                    h = np.maximum(h, 0)
            return h
    elif impl == "torch":
        import torch

        mods = []
        for i, (W, b) in enumerate(zip(Ws, bs)):
            lin = torch.nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W))
                lin.bias.copy_(torch.from_numpy(b))
            mods += [lin, torch.nn.ReLU()] if i < len(Ws) - 1 else [lin]
        net = torch.nn.Sequential(*mods).eval()

        def run(a):
            with torch.inference_mode():
                return net(torch.from_numpy(a)).numpy()
    else:
        raise ValueError(f"impl: unknown inference implementation {impl!r}")
    repeats = max(repeats, 5)
    one = None
    if impl != "gemms":
        loops = 500 if impl in ("fastnn-numpy", "torch") else 2000
        one = _median_time(lambda: run(x1), repeats, loops)
    return {"rows": len(X), "batch": _median_time(lambda: run(X), repeats),
            "one_sample": one}


def worker(impl, config, epochs):
    """Run one implementation on one config; return seconds per epoch."""
    if impl == "fastnn":
        return _fastnn_worker(config, epochs, "cython")
    if impl == "fastnn-numpy":
        return _fastnn_worker(config, epochs, "numpy")
    if impl == "roofline":
        return _roofline_worker(config, epochs)
    if impl in ("torch", "torch-fused"):
        return _torch_worker(config, epochs, impl == "torch-fused")
    if impl == "sklearn":
        return _sklearn_worker(config, epochs)
    if impl.startswith("predict:"):
        return _predict_worker(config, impl.split(":", 1)[1], epochs)
    raise ValueError(f"impl: unknown implementation {impl!r}")


def _available(impl):
    module = {"torch": "torch", "torch-fused": "torch", "sklearn": "sklearn"}.get(impl)
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run_subprocess(impl, config, epochs):
    cmd = [sys.executable, "-m", "fastnn.bench", "--worker", impl, config,
           str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return None, tail[0]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def run(configs, epochs, compare=True, out=None, rounds=1):
    """Measure every implementation on every config; print (to ``out``, by
    default stdout) and return the results.

    With ``rounds > 1`` the implementations' subprocesses run that many times,
    in turn, and each implementation's figure is the median of all its timed
    epochs: on a shared machine a slow spell then hits every implementation
    alike instead of whichever was running.
    """
    out = sys.stdout if out is None else out
    results = {}
    for config in configs:
        n, sizes, batch = CONFIGS[config]
        steps = -(-n // batch)
        row = {}
        for impl in IMPLEMENTATIONS:
            if impl in ("torch", "torch-fused", "sklearn") and not compare:
                row[impl] = {"skipped": "comparisons off (--no-compare)"}
            elif not _available(impl):
                row[impl] = {"skipped": "not installed"}
            else:
                row[impl] = {"epochs": []}
        for _ in range(rounds):
            for impl, r in row.items():
                if "epochs" not in r:
                    continue
                times, err = _run_subprocess(impl, config, epochs)
                if times is None:
                    row[impl] = {"skipped": f"failed: {err}"}
                else:
                    r["epochs"] += times
        for impl, r in row.items():
            if "epochs" in r:
                median = float(np.median(r["epochs"]))
                r.update(seconds_per_epoch=median, us_per_step=median / steps * 1e6)
        roof = row["roofline"].get("seconds_per_epoch")
        for impl, r in row.items():
            if "seconds_per_epoch" in r and roof:
                r["ratio_to_roofline"] = r["seconds_per_epoch"] / roof
        pred = {}
        for impl in PREDICT_IMPLEMENTATIONS:
            if impl == "torch" and not compare:
                pred[impl] = {"skipped": "comparisons off (--no-compare)"}
            elif not _available(impl):
                pred[impl] = {"skipped": "not installed"}
            else:
                r, err = _run_subprocess(f"predict:{impl}", config, epochs)
                pred[impl] = r if r is not None else {"skipped": f"failed: {err}"}
        gemms = pred["gemms"].get("batch")
        for r in pred.values():
            if "batch" in r and gemms:
                r["batch_ratio_to_gemms"] = r["batch"] / gemms
        results[config] = {"n_samples": n, "layers": list(sizes), "batch": batch,
                           "steps": steps, "results": row, "predict": pred}
        _print_config(config, results[config], out)
    return results


def _print_config(config, res, out):
    print(f"\n{config}: {res['n_samples']} x {res['layers'][0]}, layers "
          f"{'-'.join(map(str, res['layers']))}, batch {res['batch']}, "
          f"{res['steps']} steps/epoch", file=out)
    print(f"  {'implementation':<14}{'s/epoch':>10}{'us/step':>10}{'x roofline':>12}",
          file=out)
    for impl, r in res["results"].items():
        if "skipped" in r:
            print(f"  {impl:<14}  skipped: {r['skipped']}", file=out)
            continue
        print(f"  {impl:<14}{r['seconds_per_epoch']:>10.4f}{r['us_per_step']:>10.1f}"
              f"{r.get('ratio_to_roofline', float('nan')):>12.2f}", file=out)
    pred = res["predict"]
    rows = next((r["rows"] for r in pred.values() if "rows" in r), 0)
    print(f"  {'predict':<14}{f'{rows} rows':>12}{'x GEMMs':>10}{'1 sample':>12}",
          file=out)
    for impl, r in pred.items():
        if "skipped" in r:
            print(f"  {impl:<14}  skipped: {r['skipped']}", file=out)
            continue
        one = "" if r["one_sample"] is None else f"{r['one_sample'] * 1e6:>9.2f} us"
        print(f"  {impl:<14}{r['batch'] * 1e3:>9.3f} ms"
              f"{r.get('batch_ratio_to_gemms', float('nan')):>10.2f}{one:>12}", file=out)
    out.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "CONFIG", "EPOCHS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help="tiny and small, 3 epochs (under a minute)")
    parser.add_argument("--configs", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the implementations in turn this many times "
                             "(a steadier figure on a busy machine)")
    args = parser.parse_args(argv)
    if args.worker:
        impl, config, epochs = args.worker
        print(json.dumps(worker(impl, config, int(epochs))))
        return 0
    if args.configs:
        configs = [c.strip() for c in args.configs.split(",") if c.strip()]
        unknown = [c for c in configs if c not in CONFIGS]
        if unknown:
            raise ValueError(f"configs: unknown {unknown}; valid: {', '.join(CONFIGS)}")
    else:
        configs = ["tiny", "small"] if args.quick else list(CONFIGS)
    epochs = args.epochs or 3
    if epochs < 3:
        raise ValueError("epochs: the median needs at least 3 epochs")
    if args.rounds < 1:
        raise ValueError(f"rounds: must be >= 1, got {args.rounds}")
    from fastnn._kernels import BUILD, LEVEL
    from fastnn.ops import blas_report

    print(f"fastnn kernels built for: {BUILD}; level in use: {LEVEL}")
    for line in blas_report():
        print(line)
    print(f"cpus: {os.cpu_count()}; {epochs} timed epochs after 1 warm-up, "
          f"x {args.rounds} round(s) in turn, median")
    results = run(configs, epochs, compare=not args.no_compare, rounds=args.rounds)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
