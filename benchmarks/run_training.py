"""The standard training benchmark; the same runner as ``fastnn bench``.

    python benchmarks/run_training.py --quick          # tiny and small
    python benchmarks/run_training.py --json out.json  # all four configs

It lives in the package (``fastnn.bench``) so that an installed wheel can run
it with no source tree; see that module for what is measured and how.
"""

import sys

from fastnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
