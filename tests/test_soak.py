"""Memory soak: 300 epochs on small data (one long fit, and 300 short fits of
one model with one optimizer) do not grow the process's RSS or the number of
blocks tracemalloc traces. The second half is compared with the first."""

import fnmatch
import gc
import os
import re
import tracemalloc

import numpy as np
import pytest

import fastnn

EPOCHS = 300
#: Blocks and bytes the second half (150 epochs or fits) may still move by:
#: measured 6 blocks / 260 bytes over a long fit and up to 34 blocks / 1.8 kB
#: over short fits (caches in the buffer machinery). Leaking one object per
#: epoch would be 150 blocks; one 8-float array per epoch, 25 kB.
MAX_BLOCKS, MAX_BYTES = 75, 16_000
#: RSS moves in pages and malloc arenas; one leaked 256 x 10 float64 X copy
#: per epoch would be 3 MB over the second half.
MAX_RSS = 1 << 20


def _rss():
    """Resident set size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


#: The measurement's own caches (tracemalloc's filters compile patterns).
_OWN = [tracemalloc.Filter(False, module.__file__)
        for module in (tracemalloc, fnmatch, re, re._compiler, re._parser)]


def _traced():
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(_OWN)
    stats = snapshot.statistics("filename")
    return sum(s.count for s in stats), sum(s.size for s in stats)


def _data(n=256, d=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def _model():
    return fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(3)], seed=0)


class _Probe(fastnn.Callback):
    """Samples memory at the quarter, half and end of the run; drops the
    History's per-epoch records, whose growth is by design."""

    def __init__(self, epochs):
        self.at = {epochs // 4 - 1, epochs // 2 - 1, epochs - 1}
        self.samples = []

    def on_epoch_end(self, model, epoch, logs):
        model.history.history.clear()
        model.history.epoch.clear()
        if epoch in self.at:
            self.samples.append((*_traced(), _rss()))


def _second_half(samples):
    """(blocks, bytes, rss) gained from the half-way sample to the last; the
    quarter sample, taken warm, is kept for the report."""
    _, (b2, s2, r2), (b3, s3, r3) = samples
    return b3 - b2, s3 - s2, None if r2 is None else r3 - r2


def _check(samples):
    blocks, size, rss = second_half = _second_half(samples)
    assert blocks <= MAX_BLOCKS and size <= MAX_BYTES, (samples, second_half)
    if rss is not None:
        assert rss <= MAX_RSS, (samples, second_half)
    return second_half


@pytest.mark.slow
def test_one_long_fit_does_not_grow():
    X, y = _data()
    model = _model()
    probe = _Probe(EPOCHS)
    tracemalloc.start()
    try:
        model.fit(X, y, epochs=EPOCHS, batch_size=32, verbose=0, seed=0,
                  validation_split=0.25, optimizer=fastnn.Adam(lr=1e-3),
                  lr_schedule=fastnn.ReduceOnPlateau(patience=1000),
                  callbacks=[probe, fastnn.TerminateOnNaN()])
    finally:
        tracemalloc.stop()
    print("long fit, second half (blocks, bytes, rss):", _check(probe.samples))


#: Fits before the measured ones: the first few hundred fill caches of
#: Cython's and NumPy's buffer machinery (about 250 blocks, then flat).
WARMUP_FITS = 300


@pytest.mark.slow
def test_many_short_fits_do_not_grow():
    X, y = _data()
    model = _model()
    optimizer = fastnn.Adam(lr=1e-3)
    samples = []
    marks = (EPOCHS // 4 - 1, EPOCHS // 2 - 1, EPOCHS - 1)
    tracemalloc.start()
    try:
        for epoch in range(-WARMUP_FITS, EPOCHS):
            model.fit(X, y, epochs=1, batch_size=32, verbose=0, seed=epoch % 7,
                      optimizer=optimizer, validation_split=0.25)
            model.predict(X)
            if epoch in marks:
                samples.append((*_traced(), _rss()))
    finally:
        tracemalloc.stop()
    print("short fits, second half (blocks, bytes, rss):", _check(samples))


def test_the_soak_probe_sees_a_leak():
    # The same measurement over a run that keeps one small array per epoch.
    X, y = _data()
    kept = []

    class Leak(_Probe):
        def on_epoch_end(self, model, epoch, logs):
            kept.append(np.zeros(8))
            super().on_epoch_end(model, epoch, logs)

    probe = Leak(40)
    tracemalloc.start()
    try:
        _model().fit(X, y, epochs=40, batch_size=64, verbose=0, callbacks=[probe])
    finally:
        tracemalloc.stop()
    blocks, size, _ = _second_half(probe.samples)
    assert blocks >= 20 and size >= 20 * 64
