"""The instruction-set levels of a portable build (baseline, x86-64-v3,
x86-64-v4): every level this machine supports computes the same bits, and
FASTNN_CPU_LEVEL chooses a lower one."""

import json
import os
import platform
import subprocess
import sys

import fastnn._kernels as kernels
from _child import child_env

#: Runs every kernel module at the chosen level, and prints the level and a
#: digest of all the outputs.
DIGEST = """
import hashlib, json, numpy as np, warnings
import fastnn, fastnn._kernels as k
from fastnn.activations import NAMES
from fastnn.ops import get_ops

ops = get_ops("cython")
digest, packed = hashlib.sha256(), hashlib.sha256()
acts = sorted({fastnn.activations.get_activation(n).name for n in NAMES})
for dtype in (np.float32, np.float64):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((37, 29)) * 3).astype(dtype)
    for act in acts:
        Y, dZ = np.empty_like(X), np.empty_like(X)
        ops.activation_forward(X, act, 0.1 if act in ("leaky_relu", "elu") else 0.0, Y)
        ops.activation_backward(X, Y, X, act,
                                0.1 if act in ("leaky_relu", "elu") else 0.0, dZ)
        digest.update(Y.tobytes() + dZ.tobytes())
    y = rng.integers(0, 4, 37)
    layers = [fastnn.GaussianNoise(0.1), fastnn.Dense(24, "gelu", l1=1e-3),
              fastnn.BatchNorm(), fastnn.PReLU("all"), fastnn.Dropout(0.2),
              fastnn.Maxout(12, 2), fastnn.Dense(16, "silu", l2=1e-3),
              fastnn.Dense(8, "softplus"), fastnn.Dense(4),
              fastnn.Activation("softmax", temperature=1.5)]
    for loss, opt in (("softmax_cross_entropy", fastnn.Adam(clip_norm=0.5)),
                      ("hinge", fastnn.NAdam()), ("mse", fastnn.RMSProp()),
                      ("huber", fastnn.AdaGrad()), ("binary_cross_entropy",
                                                   fastnn.SGD(momentum=0.9))):
        model = fastnn.Sequential([type(la).from_config(la.get_config())
                                   for la in layers], input_dim=29, dtype=dtype,
                                  seed=1)
        target = y if loss in ("softmax_cross_entropy", "hinge") else (
            np.eye(4)[y].astype(dtype))
        model.fit(X, target, loss=loss, optimizer=opt, epochs=2, batch_size=8,
                  verbose=0, seed=3)
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
    stack = fastnn.Sequential([fastnn.Dense(16, "tanh"), fastnn.Dense(3)],
                              input_dim=29, dtype=dtype, seed=2)
    digest.update(stack.predict(X).tobytes())
    # a batch: the packed engine where the level has it, else the BLAS one
    batch = np.random.default_rng(5).standard_normal((700, 29)).astype(dtype)
    packed.update(stack.predict(batch).tobytes())
print(json.dumps([k.LEVEL, k.plan.__name__, digest.hexdigest(),
                  k.stack.PACKED, packed.hexdigest()]))
"""


def _run(level):
    env = child_env(FASTNN_CPU_LEVEL=level)
    out = subprocess.run([sys.executable, "-c", DIGEST], capture_output=True,
                         text=True, env=env, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _usable():
    cpu = kernels._blas.cpu_level()
    return [lv for lv in kernels.BUILT_LEVELS
            if lv == "native" or kernels.LEVELS.index(lv) <= kernels.LEVELS.index(cpu)]


def test_every_level_computes_the_same_bits():
    results = {level: _run(level) for level in _usable()}
    for level, (chosen, module, _, packed, _) in results.items():
        assert chosen == level
        assert module == ("fastnn._kernels.plan" if level in ("baseline", "native")
                          else f"fastnn._kernels._{level}.plan")
        # the packed inference kernel needs FMA: x86-64-v3 and up
        assert packed == (level in ("v3", "v4") or (
            level == "native" and kernels._blas.cpu_level() in ("v3", "v4")))
    assert len({digest for _, _, digest, _, _ in results.values()}) == 1, results
    # batch predict: the same bits on every level with the packed kernel
    assert len({batch for _, _, _, packed, batch in results.values()
                if packed}) <= 1, results


def test_the_best_level_is_chosen_and_a_portable_build_has_all():
    assert kernels.LEVEL == _usable()[-1]
    if (os.environ.get("FASTNN_EXPECT_BUILD") == "portable"
            and sys.platform.startswith("linux")
            and platform.machine().lower() in ("x86_64", "amd64")):
        assert kernels.BUILT_LEVELS == ("baseline", "v3", "v4")


def test_an_unknown_level_is_refused_with_a_warning():
    code = "import warnings\nwarnings.simplefilter('error')\nimport fastnn"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env=child_env(FASTNN_CPU_LEVEL="v9"))
    assert proc.returncode != 0
    assert "FASTNN_CPU_LEVEL: unknown level 'v9'" in proc.stderr
