"""Where the time of a training step goes, phase by phase.

Runs one epoch of a standard config (see ``fastnn.bench``) through the cython
kernels one call at a time, the way ``Sequential.fit`` chains them, and
accumulates the seconds of each phase: the minibatch gather, each layer's
forward (GEMM, bias and activation), the loss, each layer's backward
(activation derivative, dW and dX GEMMs, bias sums) and the Adam update of
all parameters in one flat buffer. Beside it, the same epoch's GEMMs alone
through ``np.matmul`` (the roofline of ``fastnn bench``) and a ``fit`` epoch.

    python benchmarks/profile_step.py wide
    python benchmarks/profile_step.py small --epochs 3
"""

import argparse
import time
from collections import defaultdict

import numpy as np

import fastnn
from fastnn.bench import CONFIGS, _fastnn_model, _time_epochs, make_data, roofline_epoch
from fastnn.ops import get_ops


def profile_epoch(config, ops):
    n, sizes, batch = CONFIGS[config]
    X, y = make_data(config)
    model = _fastnn_model(config, "cython")
    Ws = model.get_weights()
    n_params = sum(w.size for w in Ws)
    flat = np.concatenate([w.ravel() for w in Ws])
    grad = np.zeros_like(flat)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    views, gviews, off = [], [], 0
    for w in Ws:
        views.append(flat[off:off + w.size].reshape(w.shape))
        gviews.append(grad[off:off + w.size].reshape(w.shape))
        off += w.size
    L = len(sizes) - 1
    acts = [np.empty((batch, s), np.float32) for s in sizes]
    grads = [np.empty((batch, s), np.float32) for s in sizes]
    labels = np.empty(batch, y.dtype)
    rng = np.random.default_rng(0)
    times = defaultdict(float)
    step = 0

    def epoch():
        nonlocal step
        perm = rng.permutation(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            k = len(idx)
            A = [a[:k] for a in acts]
            G = [g[:k] for g in grads]
            t0 = time.perf_counter()
            ops.gather_rows(X, idx, A[0])
            ops.gather_labels(y, idx, labels[:k])
            t1 = time.perf_counter()
            times["gather"] += t1 - t0
            for i in range(L):
                act = "relu" if i < L - 1 else "identity"
                ops.dense_forward(A[i], views[2 * i], views[2 * i + 1], act, 0.0,
                                  A[i + 1])
                t2 = time.perf_counter()
                times[f"forward {i + 1} ({sizes[i]}->{sizes[i + 1]})"] += t2 - t1
                t1 = t2
            ops.softmax_cross_entropy_forward_backward(A[L], labels[:k], G[L])
            t2 = time.perf_counter()
            times["loss"] += t2 - t1
            t1 = t2
            for i in range(L - 1, -1, -1):
                act = "relu" if i < L - 1 else "identity"
                ops.dense_backward(A[i], views[2 * i], A[i + 1], A[i + 1], G[i + 1],
                                   act, 0.0, G[i] if i > 0 else None,
                                   gviews[2 * i], gviews[2 * i + 1])
                t2 = time.perf_counter()
                times[f"backward {i + 1}"] += t2 - t1
                t1 = t2
            step += 1
            ops.adam_update(grad, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, step, flat, m, v,
                            None)
            times[f"adam ({n_params} params)"] += time.perf_counter() - t1

    return epoch, times, -(-n // batch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    ops = get_ops("cython")
    epoch, times, steps = profile_epoch(args.config, ops)
    epoch()  # warm-up
    times.clear()
    for _ in range(args.epochs):
        epoch()
    total = sum(times.values())
    roof = float(np.median(_time_epochs(roofline_epoch(args.config), args.epochs)))
    X, y = make_data(args.config)
    fit_model = _fastnn_model(args.config, "cython")
    hist = fit_model.fit(X, y, optimizer=fastnn.Adam(lr=1e-3), epochs=args.epochs + 1,
                         batch_size=CONFIGS[args.config][2], verbose=0, seed=0)
    fit_epoch = float(np.median(hist.history["time"][1:]))
    per = 1e6 / (args.epochs * steps)
    print(f"{args.config}: {steps} steps/epoch; us per step, kernel by kernel")
    for name, secs in times.items():
        print(f"  {name:<34}{secs * per:>10.1f}  {secs / total:>6.1%}")
    print(f"  {'sum of the phases':<34}{total * per:>10.1f}")
    print(f"  {'GEMMs alone (np.matmul roofline)':<34}{roof * 1e6 / steps:>10.1f}")
    print(f"  {'fit, one epoch / steps':<34}{fit_epoch * 1e6 / steps:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
