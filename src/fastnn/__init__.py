"""fastnn: a compact, fast neural-network core for the CPU.

Three tiers: Cython kernels (``fastnn._kernels``), their NumPy twins
(``fastnn.reference``), and the Python API re-exported here.
"""

__version__ = "0.1.0"

import fastnn._kernels  # noqa: F401,E402  (raises a clear ImportError if not built)
from fastnn.callbacks import (  # noqa: E402
    Callback, EarlyStopping, History, ModelCheckpoint, TerminateOnNaN,
)
from fastnn.io import load  # noqa: E402
from fastnn.layers import (  # noqa: E402
    Activation, BatchNorm, Dense, Dropout, GaussianNoise, Maxout, PReLU,
)
from fastnn.model import Sequential, get_num_threads, set_num_threads  # noqa: E402
from fastnn.training import TrainingDivergedError  # noqa: E402
from fastnn.ops import get_ops  # noqa: E402
from fastnn.optimizers import (  # noqa: E402
    SGD, AdaDelta, AdaGrad, Adam, AdamW, NAdam, RMSProp,
)
from fastnn.schedules import (  # noqa: E402
    CosineAnnealing, ExponentialDecay, ReduceOnPlateau, StepDecay, Warmup,
)

#: Loaded on first use, so that ``import fastnn`` imports neither onnx nor torch.
_INTEROP = ("from_onnx", "from_torch")


def __getattr__(name):
    if name in _INTEROP:
        import fastnn.interop

        return getattr(fastnn.interop, name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


__all__ = [
    "__version__", "get_ops", "load", "from_onnx", "from_torch", "Sequential",
    "set_num_threads", "get_num_threads",
    "TrainingDivergedError",
    "Dense", "Activation", "Dropout", "GaussianNoise", "BatchNorm", "PReLU", "Maxout",
    "SGD", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW", "NAdam",
    "StepDecay", "ExponentialDecay", "CosineAnnealing", "Warmup", "ReduceOnPlateau",
    "Callback", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN", "History",
]
