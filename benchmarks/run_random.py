"""Dropout masks and Gaussian noise from the counter-based stream against
NumPy's Generator (PCG64) drawing the same amount, as the layers draw today.

    python benchmarks/run_random.py [--rows 256] [--cols 784] [--rounds 300]

Rounds are interleaved and the best time of each is kept; the ratios are
``stream time / Generator time`` (below 1: the stream is faster), and the
NumPy twin of the stream is shown for scale.
"""

import argparse
import time

import numpy as np

from fastnn.ops import get_ops


def cases(rows, cols, dtype):
    cy, ref = get_ops("cython"), get_ops("numpy")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, cols), dtype=dtype)
    out = np.empty_like(X)
    return {
        "Generator.random": lambda: rng.random(out=out, dtype=dtype),
        "mask (kernel)": lambda: cy.dropout_mask_philox(1, 0, 0, 0, 0.2, out),
        "mask (twin)": lambda: ref.dropout_mask_philox(1, 0, 0, 0, 0.2, out),
        "Generator.standard_normal": lambda: rng.standard_normal(out=out,
                                                                 dtype=dtype),
        "noise (kernel)": lambda: cy.gaussian_noise_philox(1, 0, 0, 0, 0.1, X, out),
        "noise (twin)": lambda: ref.gaussian_noise_philox(1, 0, 0, 0, 0.1, X, out),
    }


def best_times(fns, rounds):
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cols", type=int, default=784)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    print(f"| dtype | draw | ms ({args.rows}x{args.cols}) | / Generator |")
    print("|---|---|---|---|")
    for dtype in (np.float32, np.float64):
        best = best_times(cases(args.rows, args.cols, dtype), args.rounds)
        for name, t in best.items():
            base = best["Generator.random" if "mask" in name
                        else "Generator.standard_normal"]
            ratio = "" if name.startswith("Generator") else f"{t / base:.2f}"
            print(f"| {np.dtype(dtype).name} | {name} | {t * 1e3:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
