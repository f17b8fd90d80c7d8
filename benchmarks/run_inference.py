"""Inference speed: fastnn ``predict`` beside onnxruntime, torch and NumPy;
the same table as ``fastnn bench --inference`` (see
:mod:`fastnn.bench_inference`).

    python benchmarks/run_inference.py            # best of 7
    python benchmarks/run_inference.py --quick    # best of 3, shorter repeats
"""

import sys

from fastnn.bench_inference import main

if __name__ == "__main__":
    sys.exit(main())
