"""The training plan (TrainPlan) against its NumPy twin over a generated
matrix of every layer x optimizer x loss x regularizer, and against a
layer-by-layer run of the same compiled kernels (bit-identical)."""

import itertools

import numpy as np
import pytest

import fastnn
from fastnn.losses import get_loss
from fastnn.ops import get_ops
from fastnn.reference.random import dropout_mask_philox

K = 3  # outputs

#: Each layer kind, in a small model that feeds it and trains through it.
LAYERS = {
    "dense": lambda: [fastnn.Dense(6, "tanh"), fastnn.Dense(K)],
    "activation": lambda: [fastnn.Dense(6), fastnn.Activation("gelu"),
                           fastnn.Dense(K)],
    "softmax": lambda: [fastnn.Dense(6), fastnn.Activation("softmax",
                                                           temperature=1.7),
                        fastnn.Dense(K)],
    "dropout": lambda: [fastnn.Dense(6, "relu"), fastnn.Dropout(0.3),
                        fastnn.Dense(K)],
    "noise": lambda: [fastnn.GaussianNoise(0.2), fastnn.Dense(6, "silu"),
                      fastnn.Dense(K)],
    # After an activation: a Dense bias straight before BatchNorm has a zero
    # gradient, whose rounding noise adaptive optimizers would scale up.
    "batchnorm": lambda: [fastnn.Dense(6, "relu"), fastnn.BatchNorm(),
                          fastnn.Dense(K)],
    "prelu": lambda: [fastnn.Dense(6), fastnn.PReLU("all"), fastnn.Dense(K)],
    "maxout": lambda: [fastnn.Maxout(4, 3), fastnn.Dense(K)],
    "frozen": lambda: [fastnn.Dense(6, "elu", trainable=False),
                       fastnn.BatchNorm(trainable=False),
                       fastnn.PReLU(trainable=False), fastnn.Dense(5, "sigmoid"),
                       fastnn.Dense(K)],
}

OPTIMIZERS = {
    "sgd": lambda c: fastnn.SGD(lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=1e-3, clip_norm=c),
    "adagrad": lambda c: fastnn.AdaGrad(lr=0.05, lr_decay=0.01, clip_norm=c),
    "rmsprop": lambda c: fastnn.RMSProp(lr=0.01, momentum=0.5, centered=True,
                                        clip_norm=c),
    "adadelta": lambda c: fastnn.AdaDelta(lr=1.0, weight_decay=1e-3, clip_norm=c),
    "adam": lambda c: fastnn.Adam(lr=0.01, amsgrad=True, weight_decay=1e-3,
                                  clip_norm=c),
    "adamw": lambda c: fastnn.AdamW(lr=0.01, clip_norm=c),
    "nadam": lambda c: fastnn.NAdam(lr=0.01, clip_norm=c),
}

LOSSES = ("softmax_cross_entropy", "hinge", "mse", "mae", "huber",
          "binary_cross_entropy")
REGULARIZERS = ("none", "l1", "l2", "clip")

MATRIX = list(itertools.product(LAYERS, OPTIMIZERS, LOSSES, REGULARIZERS))


def _data(loss, dtype, n=37, d=5):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, d)).astype(dtype)
    if get_loss(loss).targets == "labels":
        return X, rng.integers(0, K, n)
    if loss == "binary_cross_entropy":
        return X, (rng.random((n, K)) > 0.5).astype(dtype)
    return X, rng.standard_normal((n, K)).astype(dtype)


def _model(layers, reg, dtype, backend):
    model = fastnn.Sequential(LAYERS[layers](), input_dim=5, seed=1, dtype=dtype,
                              backend=backend)
    if reg in ("l1", "l2"):
        for layer in model.layers:
            if isinstance(layer, fastnn.Dense) and layer.trainable:
                setattr(layer, reg, 1e-2)
    return model


def _fit(layers, opt, loss, reg, dtype, backend, epochs=2):
    X, y = _data(loss, dtype)
    model = _model(layers, reg, dtype, backend)
    optimizer = OPTIMIZERS[opt](0.05 if reg == "clip" else None)
    history = model.fit(X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                        batch_size=8, verbose=0, seed=11)
    return model, history.history


def _all_arrays(model):
    return [a for layer in model.layers for a in layer.get_arrays().values()]


@pytest.mark.parametrize("layers, opt, loss, reg", MATRIX,
                         ids=["-".join(c) for c in MATRIX])
def test_plan_matches_its_twin(layers, opt, loss, reg):
    # Two epochs of 5 steps in float64. The two sides differ only in their
    # BLAS (SciPy's and NumPy's) and in the order of a few sums, so they agree
    # to float64 rounding, amplified a little by the steps.
    cy, hist_cy = _fit(layers, opt, loss, reg, np.float64, "cython")
    ref, hist_ref = _fit(layers, opt, loss, reg, np.float64, "numpy")
    for a, b in zip(_all_arrays(cy), _all_arrays(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hist_cy["loss"], hist_ref["loss"], rtol=1e-10)
    assert hist_cy.get("accuracy") == hist_ref.get("accuracy")


@pytest.mark.parametrize("layers", list(LAYERS))
def test_plan_matches_its_twin_in_float32(layers):
    cy, _ = _fit(layers, "adam", "softmax_cross_entropy", "l2", np.float32,
                 "cython")
    ref, _ = _fit(layers, "adam", "softmax_cross_entropy", "l2", np.float32,
                  "numpy")
    for a, b in zip(_all_arrays(cy), _all_arrays(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def _plan_fit(loss, opt, dtype, backend, weights, penalty, scale):
    """Two epochs of the plan itself, with sample weights, the per-sample
    penalty and a loss scale; the arrays it trained and its run results."""
    X, y = _data(loss, dtype)
    model = _model("batchnorm", "l2", dtype, backend)
    model.layers[0].l1 = 1e-3
    optimizer = OPTIMIZERS[opt](None)
    optimizer.bind(model, model._params)
    target = y if get_loss(loss).targets == "labels" else y.astype(dtype)
    perm = np.random.default_rng(0).permutation(X.shape[0])
    runs = np.array(model._trainable_runs(), np.int64).reshape(-1, 2)
    plan = model.ops.TrainPlan(
        X, target, perm, [la.plan_op() for la in model.layers],
        (loss, 1.0, scale), optimizer.plan_spec(), model._params, model._grads,
        runs, 8, 3, sample_weight=weights, penalty=penalty)
    results = [plan.run(0, 5, 0.01, 5 * e, e) for e in range(2)]
    return _all_arrays(model), results


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt", ["sgd", "adam", "nadam"])
@pytest.mark.parametrize("penalty", ["sum", "sample"])
def test_weighted_steps_match_the_twin(loss, opt, penalty):
    w = np.random.default_rng(4).random(37) * 3
    w[:4] = 0  # some samples weigh nothing
    args = (loss, opt, np.float64)
    got, runs = _plan_fit(*args, "cython", w, penalty, 1.5)
    want, runs_ref = _plan_fit(*args, "numpy", w, penalty, 1.5)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for r, q in zip(runs, runs_ref):
        np.testing.assert_allclose(r[0], q[0], rtol=1e-10)
        assert r[1:3] == q[1:3]
        np.testing.assert_allclose(r[3], q[3], rtol=1e-10)
        assert (r[3] > 0) == (penalty == "sample")


@pytest.mark.parametrize("loss", LOSSES)
def test_integer_weights_are_repeated_samples(loss):
    # Full-batch steps: a sample of weight 3 is that sample three times.
    X, y = _data(loss, np.float64, n=12)
    w = np.array([0, 1, 2, 3] * 3)
    rows = np.repeat(np.arange(12), w)
    fits = []
    for Xf, yf, wf in ((X, y, w), (X[rows], y[rows], None)):
        model = _model("prelu", "l2", np.float64, "cython")
        model.fit(Xf, yf, loss=loss, optimizer=fastnn.SGD(lr=0.1, momentum=0.5),
                  epochs=3, batch_size=Xf.shape[0], verbose=0, sample_weight=wf)
        fits.append(_all_arrays(model))
    for a, b in zip(*fits):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_frozen_layers_stay_bit_identical():
    X, y = _data("softmax_cross_entropy", np.float64)
    model = _model("frozen", "none", np.float64, "cython")
    frozen = [layer for layer in model.layers if not layer.trainable]
    before = [{k: v.copy() for k, v in layer.get_arrays().items()}
              for layer in frozen]
    trained = model.layers[-1].params["weight"].copy()
    model.fit(X, y, optimizer="adam", epochs=3, batch_size=8, verbose=0, seed=0)
    for layer, saved in zip(frozen, before):
        for k, v in layer.get_arrays().items():
            np.testing.assert_array_equal(v, saved[k])
    assert not np.array_equal(model.layers[-1].params["weight"], trained)


def test_dropout_masks_come_from_the_documented_stream():
    # A model whose output is its dropout layer's input times its mask: the
    # mask of layer 1 at step s of epoch e is dropout_mask_philox(seed, e, s, 1).
    X = np.ones((8, 4))
    model = fastnn.Sequential([fastnn.Dense(4, trainable=False),
                               fastnn.Dropout(0.5),
                               fastnn.Dense(4, trainable=False)],
                              input_dim=4, seed=0, dtype=np.float64)
    eye = np.eye(4)
    model.set_weights([eye, np.zeros(4), eye, np.zeros(4)])
    t = np.zeros((8, 4))
    # mse's gradient is zero only where the output is: train with lr 0 and
    # read the loss, which is the mean of (X * mask)^2 = mean(mask^2).
    for seed in (0, 5):
        history = model.fit(X, t, loss="mse", optimizer=fastnn.SGD(lr=0.0),
                            epochs=2, batch_size=8, shuffle=False, verbose=0,
                            seed=seed)
        for epoch, loss in enumerate(history.history["loss"]):
            mask = np.empty((8, 4))
            dropout_mask_philox(seed, epoch, 0, 1, 0.5, mask)
            assert loss == pytest.approx(np.mean(mask ** 2), rel=1e-15)


def test_same_seed_same_fit_any_thread_count():
    from threadpoolctl import threadpool_limits

    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            model, _ = _fit("dropout", "adam", "softmax_cross_entropy", "none",
                            np.float32, "cython")
            runs.append(_all_arrays(model))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# -- the plan is the layer-by-layer run of the same kernels --------------------

def _layer_loop(model, X, y, loss, optimizer, epochs, batch):
    """Train with each layer's own forward and backward (the compiled
    kernels, called one by one) and the optimizer kernels over the trainable
    runs: the steps the plan fuses, in the same order."""
    ops = get_ops("cython")
    spec = get_loss(loss)
    runs = model._trainable_runs()
    workspaces = [layer.workspace(batch) for layer in model.layers]
    opt = optimizer
    opt.bind(model, model._params)
    hyper = opt.plan_hyper()
    trainable = [i for i, la in enumerate(model.layers)
                 if la.trainable and la.param_shapes()]
    first = trainable[0]
    for _ in range(epochs):
        for start in range(0, X.shape[0], batch):
            Xb, yb = X[start:start + batch], y[start:start + batch]
            k = Xb.shape[0]
            H = np.ascontiguousarray(Xb)
            for layer, ws in zip(model.layers, workspaces):
                H = layer.forward(ops, H, ws, k, True, None)
            d = np.empty_like(H)
            getattr(ops, spec.kernel)(H, yb, d)
            for i in range(len(model.layers) - 1, first - 1, -1):
                d = model.layers[i].backward(ops, d, workspaces[i], k, i > first)
            opt.step_count += 1
            for s, e in runs:
                ops.adam_update(model._grads[s:e], opt.lr, hyper["beta1"],
                                hyper["beta2"], hyper["eps"], hyper["weight_decay"],
                                False, opt.step_count, model._params[s:e],
                                opt.state["exp_avg"][s:e],
                                opt.state["exp_avg_sq"][s:e],
                                opt.state["exp_avg_sq"][s:e])


@pytest.mark.parametrize("layers", ["dense", "activation", "softmax", "batchnorm",
                                    "prelu", "maxout", "frozen"])
def test_plan_is_the_layer_loop_bit_for_bit(layers, dtype):
    X, y = _data("softmax_cross_entropy", dtype, n=32)
    fused = _model(layers, "l2", dtype, "cython")
    loop = _model(layers, "l2", dtype, "cython")
    for layer in fused.layers + loop.layers:  # l1 too: both terms, in order
        if isinstance(layer, fastnn.Dense) and layer.trainable:
            layer.l1 = 1e-3
    fused.fit(X, y, optimizer=fastnn.Adam(lr=0.01, weight_decay=1e-3), epochs=2,
              batch_size=8, shuffle=False, verbose=0)
    _layer_loop(loop, X, y, "softmax_cross_entropy",
                fastnn.Adam(lr=0.01, weight_decay=1e-3), 2, 8)
    for a, b in zip(_all_arrays(fused), _all_arrays(loop)):
        np.testing.assert_array_equal(a, b)
    for f, lo in zip(fused.layers, loop.layers):
        assert f._counters() == lo._counters()


def test_a_non_finite_loss_stops_before_the_update():
    X = np.full((40, 3), 1e30, np.float32)
    y = np.zeros(40, np.int64)
    model = fastnn.Sequential([fastnn.Dense(4), fastnn.Dense(2)], input_dim=3,
                              seed=0)
    before = model.get_weights()
    with pytest.raises(fastnn.TrainingDivergedError):
        model.fit(X, y, optimizer=fastnn.SGD(lr=1e30), epochs=2, batch_size=8,
                  verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
