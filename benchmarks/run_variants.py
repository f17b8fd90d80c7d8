"""Seconds per epoch of model variants against plain Dense+Adam, beside
PyTorch on the same variants; the same runner as ``fastnn bench --variants``.

    python benchmarks/run_variants.py --quick            # about a minute or two
    python benchmarks/run_variants.py --threads 1        # steadier on a busy machine
    PYTHONPATH=/other/checkout/src python benchmarks/run_variants.py

The runner, ``src/fastnn/bench_variants.py``, is loaded from this tree by its
path, so it measures whichever fastnn is imported (``PYTHONPATH``), including
a checkout older than the runner; see that module for what is measured and how.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, os.pardir, "src", "fastnn", "bench_variants.py")

if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location("_fastnn_variants", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    sys.exit(runner.main())
