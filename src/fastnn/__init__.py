"""fastnn: a compact, fast neural-network core for the CPU."""

__version__ = "0.1.0"

import fastnn._kernels  # noqa: F401  (raises a clear ImportError if not built)
from fastnn.ops import get_ops

__all__ = ["__version__", "get_ops"]
