"""The epoch loop under pytest-benchmark: fastnn's training epoch (cython and
numpy backends) beside the GEMM roofline of the same epoch, per standard
config, in one run.

    python -m pytest benchmarks/test_epoch.py --benchmark-only \
        --benchmark-group-by=param:config

``fastnn bench`` (src/fastnn/bench.py) is the full runner: fresh subprocess
per implementation, PyTorch and scikit-learn beside, JSON out. This suite
reuses its data and its roofline so both measure the same thing.
"""

import numpy as np
import pytest

import fastnn
from fastnn import bench

#: The configs cheap enough to repeat here (medium and wide: ``fastnn bench``).
CONFIGS = ["tiny", "small"]


@pytest.fixture(scope="module", params=CONFIGS)
def config(request):
    return request.param


def _model(config, backend):
    n, sizes, batch = bench.CONFIGS[config]
    layers = [fastnn.Dense(u, "relu") for u in sizes[1:-1]]
    layers.append(fastnn.Dense(sizes[-1]))
    return fastnn.Sequential(layers, input_dim=sizes[0], seed=0, backend=backend)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_epoch(benchmark, config, backend):
    n, sizes, batch = bench.CONFIGS[config]
    X, y = bench.make_data(config)
    model = _model(config, backend)
    opt = fastnn.Adam(lr=1e-3)
    model.fit(X, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0, seed=0)
    benchmark.group = f"epoch {config}"
    benchmark.pedantic(model.fit, args=(X, y),
                       kwargs=dict(optimizer=opt, epochs=1, batch_size=batch,
                                   verbose=0, seed=0),
                       rounds=3, warmup_rounds=0)
    assert np.isfinite(model.history.history["loss"][-1])


def test_epoch_gemm_roofline(benchmark, config):
    benchmark.group = f"epoch {config}"
    epoch = bench.roofline_epoch(config)
    epoch()
    benchmark.pedantic(epoch, rounds=3, warmup_rounds=0)
