"""Batch predict's two engines side by side, by batch size: the packed
engine (fastnn's own kernel, weights packed per call, row blocks over
fastnn's threads) and the BLAS engine (a GEMM per layer, then bias and
activation), on the inference table's networks. It shows where the packed
engine starts to pay, which sets the rule that chooses between them
(``PACKED_MIN_ROWS`` and ``PACK_ROWS`` in ``stack.pyx``).

    python benchmarks/run_engines.py              # best of 7
    python benchmarks/run_engines.py --threads 1

Needs a build with the packed engine (x86-64 with FMA).
"""

import argparse
import sys

import numpy as np

import fastnn
from fastnn._kernels import BUILD, LEVEL, stack
from fastnn.bench_inference import CONFIGS, best_of, build, fmt
from fastnn.bench_variants import cpu_name

ROWS = (1, 8, 16, 24, 32, 48, 64, 128, 256, 512, 2048, 10000)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=None,
                        help="fastnn's threads (default: as configured)")
    args = parser.parse_args(argv)
    if not stack.PACKED:
        print("this build has no packed engine (x86-64 with FMA only)")
        return 1
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    print(f"best of {args.repeats}, float32, {BUILD}, level {LEVEL}, {cpu_name()}, "
          f"{fastnn.get_num_threads()} threads; PACKED_MIN_ROWS = "
          f"{stack.PACKED_MIN_ROWS}\n")
    print("| network | rows | packed | BLAS | packed / BLAS | predict takes |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    before = stack._set_engine("auto")  # restored after
    try:
        for sizes in sorted({s for s, _ in CONFIGS}, key=sum):
            model = build(sizes)
            for n in ROWS:
                X = rng.standard_normal((n, sizes[0])).astype(np.float32)
                times = {}
                for engine in ("packed", "blas"):
                    stack._set_engine(engine)
                    times[engine] = best_of({engine: model.predict}, X, args.repeats,
                                            args.min_time)[engine]
                stack._set_engine("auto")
                chosen = model._dense_stack().engine(n)
                print(f"| {'-'.join(map(str, sizes))} | {n} | {fmt(times['packed'])} "
                      f"| {fmt(times['blas'])} | "
                      f"{times['packed'] / times['blas']:.2f} | {chosen} |")
    finally:
        stack._set_engine(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
