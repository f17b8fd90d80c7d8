"""Cython kernels against their NumPy twins, without pytest.

Usage::

    python benchmarks/run_kernels.py            # best of 15 repeats
    python benchmarks/run_kernels.py --quick    # best of 5, shorter repeats
    python benchmarks/run_kernels.py --threads 2 -k dense

Every case is timed timeit-style: a warm-up call, a loop count calibrated so
that one repeat lasts at least ``--min-time``, then ``--repeats`` repeats,
interleaved across the variants of the case (cython, numpy and, for dense,
GEMM-only) so that a slow spell of the machine hits them alike. The best
repeat counts. BLAS is pinned to the same thread count for both sides with
threadpoolctl, after the kernels' BLAS (scipy's) and NumPy's are both loaded.
The cases are defined once, in ``kernel_cases.py``.
"""

import argparse
import math
import sys
import timeit

from kernel_cases import (
    CASES,
    blas_description,
    check_agreement,
    machine_description,
    ratio_table,
)


def best_times(fns, repeats, min_time):
    """Best seconds per call of each callable in ``fns`` (a dict).

    The repeats are interleaved across the callables.
    """
    timers, numbers = {}, {}
    for key, fn in fns.items():
        timer = timeit.Timer(fn)  # gc is off while timing, as in timeit
        fn()  # warm-up: first-touch page faults, lazy imports, caches
        number = 1
        while True:
            elapsed = timer.timeit(number)
            if elapsed >= min_time:
                break
            number = max(number * 2, math.ceil(number * 1.2 * min_time
                                               / max(elapsed, 1e-9)))
        timers[key], numbers[key] = timer, number
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for key, timer in timers.items():
            best[key] = min(best[key], timer.timeit(numbers[key]) / numbers[key])
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="best of 5 repeats of >= 5 ms (default: 15 of >= 20 ms)")
    parser.add_argument("--repeats", type=int, help="repeats per variant")
    parser.add_argument("--min-time", type=float,
                        help="seconds one repeat lasts at least")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for both backends (default 1)")
    parser.add_argument("-k", dest="select", default="",
                        help="only cases whose id contains this string")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the check that both backends compute the same")
    parser.add_argument("--json", default=None,
                        help="also write {case: {variant: seconds}} to this file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    min_time = args.min_time or (0.005 if args.quick else 0.02)
    if repeats < 1 or min_time <= 0 or args.threads < 1:
        parser.error("--repeats, --min-time and --threads must be positive")
    cases = [c for c in CASES if args.select in c.id]
    if not cases:
        parser.error(f"-k {args.select!r} matches no case; ids: "
                     + ", ".join(c.id for c in CASES))

    from threadpoolctl import threadpool_limits

    from fastnn.ops import get_ops

    # Load both backends (and so scipy's BLAS) before pinning the threads.
    get_ops("cython"), get_ops("numpy")
    times = {}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        print("# fastnn kernels: Cython vs NumPy twin (float32)\n")
        import fastnn._kernels

        print(f"- kernels built for: {getattr(fastnn._kernels, 'BUILD', 'unknown')}; "
              f"level {getattr(fastnn._kernels, 'LEVEL', 'baseline')}")
        print(f"- BLAS threads: {args.threads} for both backends; {blas_description()}")
        print(f"- {machine_description()}")
        print(f"- best of {repeats} repeats of >= {min_time * 1e3:g} ms each, "
              "interleaved across variants; speedup = numpy / cython; "
              "x GEMM-only = cython dense / (X@W.T, dY@W, dY.T@X via np.matmul)\n")
        for case in cases:
            if not args.no_check:
                problems = check_agreement(case)
                if problems:
                    sys.exit(f"{case.id}: the backends disagree, so the timing would "
                             f"compare different work: {'; '.join(problems)}")
            fns = {v: case.build(v)[0] for v in case.variants}
            for variant, seconds in best_times(fns, repeats, min_time).items():
                times[case.id, variant] = {"min": seconds}
            print(f"  {case.id}", file=sys.stderr, flush=True)
        print("\n".join(ratio_table(times)))
    if args.json:
        import json

        table = {}
        for (case_id, variant), t in times.items():
            table.setdefault(case_id, {})[variant] = t["min"]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(table, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
