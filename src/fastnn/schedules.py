"""Per-epoch learning-rate schedules (torch.optim.lr_scheduler's rules).

A schedule is called as ``schedule(epoch, base_lr, logs)`` at the start of
each 0-based epoch and returns that epoch's learning rate; ``logs`` is the
previous epoch's record (``{"loss": ..., "val_loss": ...}``) or None.

Before training, ``fit`` calls ``schedule.check(base_lr, epochs, keys)``: a
schedule whose rates do not depend on the logs computes every epoch's rate
and refuses a NaN, infinite or negative one (and a decay that underflows to
0), and ``ReduceOnPlateau`` refuses a ``monitor`` that no epoch will log.
"""

import math

from fastnn._validation import check_choice, check_float, check_int, check_name
from fastnn.callbacks import _monitored


class Schedule:
    def __call__(self, epoch, base_lr, logs=None):
        raise NotImplementedError  # pragma: no cover - every schedule overrides

    #: True where the formula is positive for a positive ``base_lr``, so that
    #: a rate of 0 can only be an underflow.
    positive = False

    def positive_at(self, epoch):
        """Whether epoch ``epoch``'s rate is positive for a positive base."""
        return self.positive

    def reset(self):
        """Forget any state (called at the start of each fit)."""

    def check(self, base_lr, epochs, keys):
        """Refuse, before training, what would fail or go wrong in it.

        Computes the rate of each of the ``epochs`` epochs from ``base_lr``
        and raises ValueError, naming the first bad epoch, for a NaN,
        infinite or negative rate, or for a rate of 0 where the formula is
        positive. ``keys`` are the names every epoch will log.
        """
        for epoch in range(epochs):
            try:
                lr = self(epoch, base_lr, None)
            except (OverflowError, ZeroDivisionError) as exc:
                lr = f"not computable ({exc})"
            else:
                if math.isfinite(lr) and (lr > 0 or (
                        lr == 0 and not (base_lr > 0 and self.positive_at(epoch)))):
                    continue
            raise ValueError(
                f"lr_schedule: {self!r} gives epoch {epoch + 1} of {epochs} a "
                f"learning rate of {lr} from lr={base_lr}; it must be finite and "
                "positive")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class StepDecay(Schedule):
    """``lr = base_lr * gamma ** floor(epoch / step_size)`` (torch StepLR)."""

    positive = True

    def __init__(self, step_size, gamma=0.1):
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_float("gamma", gamma, 0, low_open=True)

    def __call__(self, epoch, base_lr, logs=None):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """``lr = base_lr * gamma ** epoch`` (torch ExponentialLR)."""

    positive = True

    def __init__(self, gamma):
        self.gamma = check_float("gamma", gamma, 0, low_open=True)

    def __call__(self, epoch, base_lr, logs=None):
        return base_lr * self.gamma ** epoch


class CosineAnnealing(Schedule):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2`` with
    ``e = min(epoch, T_max)`` (torch CosineAnnealingLR's closed form)."""

    def __init__(self, T_max, eta_min=0.0):
        self.T_max = check_int("T_max", T_max, 1)
        self.eta_min = check_float("eta_min", eta_min, 0)

    def __call__(self, epoch, base_lr, logs=None):
        e = min(epoch, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * e / self.T_max)) / 2


class Warmup(Schedule):
    """Linear warmup over ``epochs`` epochs, then ``schedule`` (or constant).

    ``lr = base_lr * (start_factor + (1 - start_factor) * epoch / epochs)`` for
    ``epoch < epochs`` (torch LinearLR, whose default ``start_factor`` of 1/3 it
    shares; 0 starts from a zero lr), then ``schedule(epoch - epochs, ...)``.
    """

    def __init__(self, epochs, schedule=None, start_factor=1 / 3):
        self.epochs = check_int("epochs", epochs, 1)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError("schedule: must be a fastnn schedule or None")
        self.schedule = schedule
        self.start_factor = check_float("start_factor", start_factor, 0, 1)

    def reset(self):
        if self.schedule is not None:
            self.schedule.reset()

    def positive_at(self, epoch):
        if epoch < self.epochs:
            return epoch > 0 or self.start_factor > 0
        return self.schedule is None or self.schedule.positive_at(epoch - self.epochs)

    def check(self, base_lr, epochs, keys):
        super().check(base_lr, epochs, keys)
        if self.schedule is not None:  # its own checks (a plateau's monitor)
            self.schedule.check(base_lr, max(epochs - self.epochs, 0), keys)

    def __call__(self, epoch, base_lr, logs=None):
        if epoch < self.epochs:
            return base_lr * (self.start_factor
                              + (1 - self.start_factor) * epoch / self.epochs)
        if self.schedule is None:
            return base_lr
        return self.schedule(epoch - self.epochs, base_lr, logs)


class ReduceOnPlateau(Schedule):
    """Multiply the lr by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs (torch ReduceLROnPlateau; like it, a decay smaller than
    ``eps`` is skipped). When ``monitor`` is not logged (no validation data),
    ``"val_<name>"`` falls back to the training ``"<name>"``; ``fit`` refuses
    a ``monitor`` that names neither, before training, as the callbacks do."""

    def __init__(self, monitor="val_loss", mode="min", factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0,
                 eps=1e-8):
        self.monitor = check_name("monitor", monitor)
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor = check_float("factor", factor, 0, 1, low_open=True,
                                  high_open=True)
        self.patience = check_int("patience", patience, 0)
        self.threshold = check_float("threshold", threshold, 0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode,
                                           ("rel", "abs"))
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = check_float("min_lr", min_lr, 0)
        self.eps = check_float("eps", eps, 0)
        self.reset()

    def reset(self):
        self._best = None
        self._bad = 0
        self._cooldown = 0
        self._lr = None

    def check(self, base_lr, epochs, keys):
        _monitored(keys, self.monitor)

    def _better(self, value):
        if self._best is None:
            return True
        if self.mode == "min":
            limit = (self._best * (1 - self.threshold) if self.threshold_mode == "rel"
                     else self._best - self.threshold)
            return value < limit
        limit = (self._best * (1 + self.threshold) if self.threshold_mode == "rel"
                 else self._best + self.threshold)
        return value > limit

    def __call__(self, epoch, base_lr, logs=None):
        if self._lr is None:
            self._lr = base_lr
        if logs:
            # without validation data, "val_x" falls back to the training "x"
            value = logs[_monitored(logs, self.monitor)]
            if self._better(value):
                self._best = value
                self._bad = 0
            else:
                self._bad += 1
            if self._cooldown > 0:
                self._cooldown -= 1
                self._bad = 0
            if self._bad > self.patience:
                new_lr = max(self._lr * self.factor, self.min_lr)
                if self._lr - new_lr > self.eps:  # torch ignores tinier decays
                    self._lr = new_lr
                self._cooldown = self.cooldown
                self._bad = 0
        return self._lr


SCHEDULES = ("step", "cosine", "plateau", "exponential")


def get_schedule(schedule, epochs):
    """A schedule from a name (``"step"``, ``"cosine"``, ``"plateau"``,
    ``"exponential"``), an instance, or None."""
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if not isinstance(schedule, str):
        raise TypeError("lr_schedule: must be a schedule, a name or None")
    check_choice("lr_schedule", schedule, SCHEDULES)
    if schedule == "step":
        return StepDecay(max(1, epochs // 3), 0.1)
    if schedule == "cosine":
        return CosineAnnealing(epochs)
    if schedule == "plateau":
        return ReduceOnPlateau(patience=3)
    return ExponentialDecay(0.95)
