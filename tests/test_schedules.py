"""Learning-rate schedules against torch.optim.lr_scheduler.

A fastnn schedule is called as ``schedule(epoch, base_lr, logs)`` at the start
of each 0-based epoch, with the previous epoch's logs. The torch twin is read
the same way: the optimizer's lr during epoch ``e`` is its lr after ``e`` calls
of ``scheduler.step()`` (``step(metric)`` for ReduceLROnPlateau, fed the
previous epoch's metric).
"""

import math
import warnings

import numpy as np
import pytest

import fastnn
from fastnn.schedules import (
    CosineAnnealing, ExponentialDecay, ReduceOnPlateau, Schedule, StepDecay, Warmup,
    get_schedule,
)

BASE_LR = 0.1
#: float64 closed forms vs torch's chained products: rtol 1e-12, and atol of the
#: same relative size for rates that reach zero.
TOL = {"rtol": 1e-12, "atol": 1e-12 * BASE_LR}


def _torch_lrs(make, epochs, metrics=None, base_lr=BASE_LR):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter
        sched = make(opt, torch.optim.lr_scheduler)
        for epoch in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if metrics is None:
                sched.step()
            else:
                sched.step(metrics[epoch])
    return np.array(lrs)


def _fastnn_lrs(schedule, epochs, metrics=None, base_lr=BASE_LR, key="loss"):
    lrs, logs = [], None
    for epoch in range(epochs):
        lrs.append(schedule(epoch, base_lr, logs))
        if metrics is not None and epoch < len(metrics):
            logs = {key: metrics[epoch]}
    return np.array(lrs)


# -- closed-form schedules ----------------------------------------------------------

@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (7, 0.9),
                                              (10, 1.5), (150, 0.1)])
def test_step_decay_matches_step_lr(step_size, gamma):
    got = _fastnn_lrs(StepDecay(step_size, gamma), 120)
    want = _torch_lrs(lambda o, L: L.StepLR(o, step_size, gamma), 120)
    np.testing.assert_allclose(got, want, **TOL)


def test_step_decay_by_hand():
    got = _fastnn_lrs(StepDecay(3, 0.1), 10, base_lr=2.0)
    np.testing.assert_allclose(got, [2, 2, 2, .2, .2, .2, .02, .02, .02, .002],
                               rtol=1e-15)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.95, 1.0, 1.01])
def test_exponential_decay_matches_exponential_lr(gamma):
    got = _fastnn_lrs(ExponentialDecay(gamma), 200)
    want = _torch_lrs(lambda o, L: L.ExponentialLR(o, gamma), 200)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("T_max, eta_min", [(1, 0.0), (10, 0.0), (50, 1e-3),
                                            (7, 0.05), (200, 1e-4)])
def test_cosine_annealing_matches_cosine_annealing_lr(T_max, eta_min):
    got = _fastnn_lrs(CosineAnnealing(T_max, eta_min), T_max + 1)
    want = _torch_lrs(lambda o, L: L.CosineAnnealingLR(o, T_max, eta_min), T_max + 1)
    np.testing.assert_allclose(got, want, **TOL)
    assert got[0] == BASE_LR
    assert got[-1] == pytest.approx(eta_min, abs=1e-15)


def test_cosine_annealing_by_hand_and_holds_eta_min_after_t_max():
    s = CosineAnnealing(4, eta_min=0.01)
    # eta_min + (eta_max - eta_min) (1 + cos(pi e / 4)) / 2
    hand = [0.1, 0.01 + 0.09 * (1 + math.sqrt(0.5)) / 2, 0.055,
            0.01 + 0.09 * (1 - math.sqrt(0.5)) / 2, 0.01]
    np.testing.assert_allclose(_fastnn_lrs(s, 5), hand, rtol=1e-14)
    # torch's closed form is periodic past T_max; fastnn's documented e =
    # min(epoch, T_max) stays at eta_min.
    assert [s(e, 0.1) for e in (4, 5, 8, 100)] == [pytest.approx(0.01, abs=1e-16)] * 4


# -- warmup -------------------------------------------------------------------

@pytest.mark.parametrize("epochs, start_factor", [(1, 0.5), (5, 0.1), (10, 1 / 3),
                                                  (4, 1.0)])
def test_warmup_alone_matches_linear_lr(epochs, start_factor):
    got = _fastnn_lrs(Warmup(epochs, start_factor=start_factor), 30)
    want = _torch_lrs(lambda o, L: L.LinearLR(o, start_factor, 1.0,
                                              total_iters=epochs), 30)
    np.testing.assert_allclose(got, want, **TOL)
    assert got[epochs:].tolist() == [BASE_LR] * (30 - epochs)


def test_warmup_defaults_are_linear_lrs():
    got = _fastnn_lrs(Warmup(5), 8)
    want = _torch_lrs(lambda o, L: L.LinearLR(o), 8)  # start 1/3, over 5 epochs
    np.testing.assert_allclose(got, want, **TOL)
    assert got[0] == pytest.approx(BASE_LR / 3)


def test_warmup_from_zero():
    got = _fastnn_lrs(Warmup(4, start_factor=0.0), 8)
    want = _torch_lrs(lambda o, L: L.LambdaLR(o, lambda e: min(1.0, e / 4)), 8)
    np.testing.assert_allclose(got, want, **TOL)
    assert got[0] == 0.0


@pytest.mark.parametrize("inner, torch_inner", [
    (lambda: StepDecay(3, 0.5), lambda o, L: L.StepLR(o, 3, 0.5)),
    (lambda: ExponentialDecay(0.9), lambda o, L: L.ExponentialLR(o, 0.9)),
    (lambda: CosineAnnealing(20, 1e-3), lambda o, L: L.CosineAnnealingLR(o, 20, 1e-3)),
], ids=["step", "exponential", "cosine"])
@pytest.mark.parametrize("epochs, start_factor", [(5, 0.25), (3, 0.01)])
def test_warmup_then_schedule_matches_sequential_lr(inner, torch_inner, epochs,
                                                    start_factor):
    got = _fastnn_lrs(Warmup(epochs, inner(), start_factor=start_factor), 21 + epochs)
    want = _torch_lrs(lambda o, L: L.SequentialLR(
        o, [L.LinearLR(o, start_factor, 1.0, total_iters=epochs), torch_inner(o, L)],
        milestones=[epochs]), 21 + epochs)
    np.testing.assert_allclose(got, want, **TOL)


def test_warmup_from_zero_then_cosine_matches_lambda_then_cosine():
    got = _fastnn_lrs(Warmup(4, CosineAnnealing(12), start_factor=0.0), 17)
    want = _torch_lrs(lambda o, L: L.SequentialLR(
        o, [L.LambdaLR(o, lambda e: e / 4), L.CosineAnnealingLR(o, 12)],
        milestones=[4]), 17)
    np.testing.assert_allclose(got, want, **TOL)


def test_warmup_then_plateau_matches_plateau_started_after_warmup():
    rng = np.random.default_rng(7)
    losses = np.repeat(rng.uniform(0.5, 1.0, 20), 3)  # plateaus of 3 epochs
    W = 5
    got = _fastnn_lrs(Warmup(W, ReduceOnPlateau(patience=1, factor=0.5), start_factor=0.0),
                      60, losses)
    # the inner schedule's first call (epoch W) sees the logs of epoch W - 1:
    # torch after one step(losses[W - 1])
    want = _torch_lrs(lambda o, L: L.ReduceLROnPlateau(o, patience=1, factor=0.5),
                      61 - W, losses[W - 1:])
    _assert_same_until_eps_matters(got[W:], want[1:], 0.5)
    np.testing.assert_allclose(got[:W], BASE_LR * np.arange(W) / W, **TOL)


# -- ReduceOnPlateau -------------------------------------------------------------

def _assert_same_until_eps_matters(got, want, factor=0.1):
    """Compare while torch's eps (a decay below 1e-8 is ignored) cannot have
    acted: that rule has its own test, so the trajectories check the rest."""
    live = want * (1 - factor) > 1e-7
    n = len(want) if live.all() else int(np.argmin(live))
    assert len(set(want[:n])) >= 3  # the comparison saw reductions
    np.testing.assert_allclose(got[:n], want[:n], **TOL)


def _noisy_losses(n, seed):
    """A decaying loss that flattens out, with noise: plenty of plateaus."""
    rng = np.random.default_rng(seed)
    e = np.arange(n)
    return 1.0 / (1.0 + e / 8.0) + 0.02 * rng.standard_normal(n)


PLATEAU_CONFIGS = [
    {},
    {"patience": 3},
    {"patience": 0, "factor": 0.5},
    {"patience": 2, "cooldown": 3, "factor": 0.3},
    {"patience": 1, "threshold": 0.05, "threshold_mode": "rel"},
    {"patience": 1, "threshold": 0.01, "threshold_mode": "abs", "cooldown": 1},
    {"patience": 2, "factor": 0.5, "min_lr": 0.004},
    {"patience": 0, "threshold": 0.0},
]


@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_on_plateau_min_mode_matches_torch(config, seed):
    losses = _noisy_losses(150, seed)
    got = _fastnn_lrs(ReduceOnPlateau(**config), 150, losses)
    want = _torch_lrs(lambda o, L: L.ReduceLROnPlateau(o, mode="min", **config), 150,
                      losses)
    _assert_same_until_eps_matters(got, want, config.get("factor", 0.1))


@pytest.mark.parametrize("config", PLATEAU_CONFIGS, ids=str)
def test_reduce_on_plateau_max_mode_matches_torch(config):
    # an accuracy that rises and saturates; shifted negative too, so the
    # relative threshold is checked on both signs
    for shift in (0.0, -1.5):
        acc = 1.0 - _noisy_losses(150, 3) / 2 + shift
        got = _fastnn_lrs(ReduceOnPlateau("val_accuracy", "max", **config), 150, acc,
                          key="val_accuracy")
        want = _torch_lrs(lambda o, L: L.ReduceLROnPlateau(o, mode="max", **config),
                          150, acc)
        _assert_same_until_eps_matters(got, want, config.get("factor", 0.1))


def test_reduce_on_plateau_by_hand():
    s = ReduceOnPlateau(patience=2, factor=0.5)
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85]
    # bad epochs after 0.9: 1, 2, 3 > patience -> halve; then counter restarts
    got = _fastnn_lrs(s, 11, losses)
    np.testing.assert_allclose(
        got, [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025],
        rtol=1e-15)


def test_reduce_on_plateau_ignores_decay_smaller_than_eps():
    # torch.optim.lr_scheduler.ReduceLROnPlateau(eps=1e-8): "If the difference
    # between new and old lr is smaller than eps, the update is ignored", so
    # a loss that never improves leaves the lr at 1e-8, not 1e-80.
    losses = np.ones(90)
    got = _fastnn_lrs(ReduceOnPlateau(patience=0), 90, losses)
    want = _torch_lrs(lambda o, L: L.ReduceLROnPlateau(o, patience=0), 90, losses)
    np.testing.assert_allclose(got, want, **TOL)


def test_reduce_on_plateau_monitor_and_fallback():
    val = [1.0, 1.0, 1.0, 1.0]
    loss = [4.0, 3.0, 2.0, 1.0]  # improving: must not be what is watched
    s = ReduceOnPlateau(patience=0)
    lrs = [s(0, 1.0, None)] + [s(e + 1, 1.0, {"loss": loss[e], "val_loss": val[e]})
                               for e in range(4)]
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.001], rel=1e-15)
    s = ReduceOnPlateau(patience=0)  # no val_loss logged: watches loss
    lrs = [s(e, 1.0, {"loss": v}) for e, v in enumerate([1.0, 1.0, 0.5, 0.5])]
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.01], rel=1e-15)
    # epoch numbers do not matter, and logs=None leaves the state alone
    assert s(100, 1.0, None) == pytest.approx(0.01)
    # val_accuracy in max mode falls back to accuracy, not to loss: a rising
    # accuracy with a falling loss keeps the lr
    s = ReduceOnPlateau(monitor="val_accuracy", mode="max", patience=0)
    lrs = [s(e, 1.0, {"loss": 1.0 / (e + 1), "accuracy": 0.5 + 0.1 * e})
           for e in range(4)]
    assert lrs == [1.0, 1.0, 1.0, 1.0]


def test_reduce_on_plateau_reset_forgets_everything():
    s = ReduceOnPlateau(patience=1, cooldown=2)
    losses = _noisy_losses(80, 5)
    first = _fastnn_lrs(s, 80, losses)
    s.reset()
    np.testing.assert_array_equal(_fastnn_lrs(s, 80, losses), first)
    w = Warmup(3, ReduceOnPlateau(patience=1, cooldown=2))
    first = _fastnn_lrs(w, 80, losses)
    w.reset()
    np.testing.assert_array_equal(_fastnn_lrs(w, 80, losses), first)


# -- in fit ------------------------------------------------------------------------

def _fit(lr_schedule, epochs=6, **kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = fastnn.Sequential([fastnn.Dense(2)], seed=0)
    opt = fastnn.SGD(lr=0.2)
    history = model.fit(X, y, optimizer=opt, epochs=epochs, batch_size=40,
                        lr_schedule=lr_schedule, verbose=0, seed=0, **kw)
    return history.history, opt


def test_fit_records_the_schedule_and_restores_the_optimizer_lr():
    hist, opt = _fit(StepDecay(2, 0.5))
    np.testing.assert_allclose(hist["lr"], 0.2 * 0.5 ** (np.arange(6) // 2),
                               rtol=1e-15)
    assert opt.lr == 0.2
    hist, _ = _fit(Warmup(2, CosineAnnealing(4), start_factor=0.0))
    r = math.sqrt(0.5)  # cos(pi / 4)
    np.testing.assert_allclose(hist["lr"], [0.0, 0.1, 0.2, 0.2 * (1 + r) / 2, 0.1,
                                            0.2 * (1 - r) / 2],
                               rtol=1e-14, atol=1e-16)


def test_fit_plateau_is_reset_between_fits():
    sched = ReduceOnPlateau(patience=0, threshold=1.0)  # nothing counts as better
    first, _ = _fit(sched, epochs=4)
    again, _ = _fit(sched, epochs=4)
    assert first["lr"] == again["lr"] == pytest.approx([0.2, 0.2, 0.02, 0.002])


def test_get_schedule_by_name():
    assert get_schedule(None, 10) is None
    s = StepDecay(2)
    assert get_schedule(s, 10) is s
    step = get_schedule("step", 10)
    assert isinstance(step, StepDecay) and (step.step_size, step.gamma) == (3, 0.1)
    assert get_schedule("step", 2).step_size == 1
    cos = get_schedule("cosine", 12)
    assert isinstance(cos, CosineAnnealing) and cos.T_max == 12
    assert isinstance(get_schedule("plateau", 5), ReduceOnPlateau)
    assert isinstance(get_schedule("exponential", 5), ExponentialDecay)
    assert "StepDecay(step_size=3, gamma=0.1)" == repr(step)


def test_get_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match=r"^lr_schedule: unknown value 'linear'; "
                                         r"valid: cosine, exponential, plateau, step"):
        get_schedule("linear", 10)
    with pytest.raises(TypeError, match=r"^lr_schedule:"):
        get_schedule(lambda e, lr, logs: lr, 10)
    with pytest.raises(ValueError, match=r"^lr_schedule:"):
        _fit("nope")


# -- bad arguments ----------------------------------------------------------------

@pytest.mark.parametrize("make, arg", [
    (lambda: StepDecay(0), "step_size"),
    (lambda: StepDecay(-3), "step_size"),
    (lambda: StepDecay(2, 0.0), "gamma"),
    (lambda: StepDecay(2, -0.5), "gamma"),
    (lambda: StepDecay(2, math.nan), "gamma"),
    (lambda: ExponentialDecay(0.0), "gamma"),
    (lambda: ExponentialDecay(-1.0), "gamma"),
    (lambda: ExponentialDecay(math.inf), "gamma"),
    (lambda: CosineAnnealing(0), "T_max"),
    (lambda: CosineAnnealing(10, -0.1), "eta_min"),
    (lambda: CosineAnnealing(10, math.nan), "eta_min"),
    (lambda: Warmup(0), "epochs"),
    (lambda: Warmup(3, start_factor=-0.1), "start_factor"),
    (lambda: Warmup(3, start_factor=1.5), "start_factor"),
    (lambda: ReduceOnPlateau(mode="minimum"), "mode"),
    (lambda: ReduceOnPlateau(factor=1.0), "factor"),
    (lambda: ReduceOnPlateau(factor=0.0), "factor"),
    (lambda: ReduceOnPlateau(factor=2.0), "factor"),
    (lambda: ReduceOnPlateau(patience=-1), "patience"),
    (lambda: ReduceOnPlateau(threshold=-1e-4), "threshold"),
    (lambda: ReduceOnPlateau(threshold_mode="relative"), "threshold_mode"),
    (lambda: ReduceOnPlateau(cooldown=-1), "cooldown"),
    (lambda: ReduceOnPlateau(min_lr=-1e-3), "min_lr"),
])
def test_bad_arguments_raise_value_error_naming_them(make, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        make()


@pytest.mark.parametrize("make, arg", [
    (lambda: StepDecay(2.5), "step_size"),
    (lambda: StepDecay(True), "step_size"),
    (lambda: CosineAnnealing(10.0), "T_max"),
    (lambda: ExponentialDecay("0.9"), "gamma"),
    (lambda: Warmup(3, schedule="cosine"), "schedule"),
    (lambda: ReduceOnPlateau(patience=2.0), "patience"),
])
def test_wrong_types_raise_type_error_naming_them(make, arg):
    with pytest.raises(TypeError, match=rf"^{arg}:"):
        make()


def test_every_schedule_is_a_schedule():
    for s in (StepDecay(1), ExponentialDecay(0.5), CosineAnnealing(3), Warmup(2),
              ReduceOnPlateau()):
        assert isinstance(s, Schedule)
