"""The loss registry: each loss's kernel, target kind and link function.

Every loss takes raw outputs (logits) and uses mean reduction; the kernels
(:mod:`fastnn._kernels.losses`, twins in :mod:`fastnn.reference.losses`)
compute the loss and its gradient in one pass.
"""

from dataclasses import dataclass

from fastnn._validation import check_choice


@dataclass(frozen=True)
class LossSpec:
    """One loss.

    ``targets`` is ``"labels"`` (integer classes, one output per class) or
    ``"values"`` (real targets shaped like the outputs). ``link`` maps raw
    outputs to what ``predict_proba`` returns.
    """

    name: str
    kernel: str
    targets: str
    link: str
    formula: str
    has_delta: bool = False
    #: Huber's threshold (the only loss with a parameter).
    delta: float = 1.0

    def plan_loss(self):
        """``(name, delta)``: this loss described to the training plan."""
        return self.name, self.delta


_SPECS = (
    LossSpec("mse", "mse_forward_backward", "values", "identity",
             "mean((y - t)^2)"),
    LossSpec("mae", "mae_forward_backward", "values", "identity", "mean(|y - t|)"),
    LossSpec("huber", "huber_forward_backward", "values", "identity",
             "mean(0.5 d^2 if |d| < delta else delta (|d| - delta/2)), delta 1",
             has_delta=True),
    LossSpec("binary_cross_entropy", "binary_cross_entropy_forward_backward",
             "values", "sigmoid",
             "mean(max(x, 0) - x t + log(1 + exp(-|x|))) on logits x"),
    LossSpec("softmax_cross_entropy", "softmax_cross_entropy_forward_backward",
             "labels", "softmax", "mean(logsumexp(x_i) - x_i[y_i])"),
    LossSpec("hinge", "hinge_forward_backward", "labels", "identity",
             "mean(sum_{k != y_i} max(0, x_ik - x_iy_i + 1))"),
)

LOSSES = {spec.name: spec for spec in _SPECS}
ALIASES = {"l1": "mae", "cross_entropy": "softmax_cross_entropy",
           "bce": "binary_cross_entropy"}
NAMES = tuple(sorted(set(LOSSES) | set(ALIASES)))


def get_loss(name):
    """Return the :class:`LossSpec` for a name or alias.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid ones.
    """
    check_choice("loss", name, NAMES)
    return LOSSES[ALIASES.get(name, name)]


def loss_value(ops, spec, Y, target, dY=None, delta=1.0):
    """Mean loss of outputs ``Y`` against ``target``; the gradient into ``dY``."""
    kernel = getattr(ops, spec.kernel)
    if spec.has_delta:
        return kernel(Y, target, delta, dY)
    return kernel(Y, target, dY)
