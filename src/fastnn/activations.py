"""The activation registry: each activation's name, aliases, parameter and
default initializer, registered once and looked up everywhere else.

The functions themselves are kernels (:mod:`fastnn._kernels.activations`) with
NumPy twins (:mod:`fastnn.reference.activations`).
"""

import math
from dataclasses import dataclass

from fastnn._validation import check_choice, check_float


@dataclass(frozen=True)
class ActivationSpec:
    """One activation: its formula, parameter and the init ``"auto"`` picks."""

    name: str
    formula: str
    init: str
    gain: float = 1.0
    alpha: float = 0.0


_SPECS = (
    ActivationSpec("identity", "f(x) = x", "glorot_uniform"),
    ActivationSpec("sigmoid", "f(x) = 1 / (1 + exp(-x))", "glorot_uniform", 4.0),
    ActivationSpec("tanh", "f(x) = tanh(x)", "glorot_uniform"),
    ActivationSpec("relu", "f(x) = max(0, x)", "he_uniform", math.sqrt(2)),
    ActivationSpec("leaky_relu", "f(x) = x if x > 0 else alpha * x", "he_uniform",
                   math.sqrt(2), 0.01),
    ActivationSpec("elu", "f(x) = x if x > 0 else alpha * (exp(x) - 1)",
                   "he_uniform", math.sqrt(2), 1.0),
    ActivationSpec("selu", "f(x) = scale * elu(x, 1.6732632423543772)",
                   "lecun_normal"),
    ActivationSpec("silu", "f(x) = x * sigmoid(x)", "he_uniform", math.sqrt(2)),
    ActivationSpec("gelu", "f(x) = x * Phi(x), Phi the normal CDF (erf)",
                   "he_uniform", math.sqrt(2)),
    ActivationSpec("gelu_tanh",
                   "f(x) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))",
                   "he_uniform", math.sqrt(2)),
    ActivationSpec("softplus", "f(x) = log(1 + exp(x)) (x for x > 20)",
                   "he_uniform", math.sqrt(2)),
)

ACTIVATIONS = {spec.name: spec for spec in _SPECS}
ALIASES = {"linear": "identity", "logistic": "sigmoid", "swish": "silu"}
#: Every accepted name, canonical or alias.
NAMES = tuple(sorted(set(ACTIVATIONS) | set(ALIASES)))
#: Lower bound of alpha (and whether it is exclusive) for the activations that
#: take one. The backward kernels read the branch from the sign of the output,
#: which needs a slope >= 0 (leaky_relu) and alpha > 0 (elu).
ALPHA_BOUNDS = {"leaky_relu": (0.0, False), "elu": (0.0, True)}
#: The init ``"auto"`` uses for the layers ``PReLU`` and ``Maxout`` feed.
PRELU_INIT = ("he_uniform", math.sqrt(2))


def get_activation(name):
    """Return the :class:`ActivationSpec` for a name or alias (None is identity).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid ones.
    """
    if name is None:
        name = "identity"
    check_choice("activation", name, NAMES)
    return ACTIVATIONS[ALIASES.get(name, name)]


def check_alpha(spec, alpha):
    """The activation's parameter: its default for None, else validated."""
    if alpha is None:
        return spec.alpha
    if spec.name not in ALPHA_BOUNDS:
        if alpha == spec.alpha:  # as saved model configs write it
            return spec.alpha
        raise ValueError(f"alpha: {spec.name} takes no parameter "
                         f"(only {', '.join(ALPHA_BOUNDS)} do)")
    low, low_open = ALPHA_BOUNDS[spec.name]
    return check_float("alpha", alpha, low, low_open=low_open)
