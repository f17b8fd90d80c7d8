"""Weight initializers, with torch.nn.init's formulas; each takes a ``gain``.

For a weight of shape ``(fan_out, fan_in)``:

==================  ===========================================  ============
name                distribution                                 default gain
==================  ===========================================  ============
zeros               0
constant            ``value``
normal              N(0, (gain * std)^2), ``std`` 0.01            1
uniform             U(-gain * limit, gain * limit), ``limit`` 0.05  1
glorot_uniform      U(±gain * sqrt(6 / (fan_in + fan_out)))      1
glorot_normal       N(0, gain^2 * 2 / (fan_in + fan_out))        1
he_uniform          U(±gain * sqrt(3 / fan_in))                  sqrt(2)
he_normal           N(0, gain^2 / fan_in)                        sqrt(2)
lecun_uniform       U(±gain * sqrt(3 / fan_in))                  1
lecun_normal        N(0, gain^2 / fan_in)                        1
torch_default       U(±gain / sqrt(fan_in))                      1
==================  ===========================================  ============

``xavier_*`` are aliases of ``glorot_*`` and ``kaiming_*`` of ``he_*``.
Numbers are drawn in float64 from a ``numpy.random.Generator`` and then cast,
so a float32 and a float64 model from one seed agree up to rounding.
"""

import math

import numpy as np

from fastnn._validation import check_choice, check_float

_DEFAULT_GAIN = {"he_uniform": math.sqrt(2), "he_normal": math.sqrt(2)}
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
           "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}
_CANONICAL = ("zeros", "constant", "normal", "uniform", "glorot_uniform",
              "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
              "lecun_normal", "torch_default")
#: Every accepted name, aliases included.
INITIALIZERS = _CANONICAL + tuple(ALIASES)


def fans(shape):
    """``(fan_in, fan_out)`` of a weight shaped ``(fan_out, fan_in)``."""
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[1], shape[0]


def distribution(name, shape, gain=None, **kwargs):
    """``("uniform", bound)``, ``("normal", std)`` or ``("constant", value)``.

    The single place where each initializer's formula lives.
    """
    check_choice("init", name, INITIALIZERS)
    name = ALIASES.get(name, name)
    gain = _DEFAULT_GAIN.get(name, 1.0) if gain is None else check_float(
        "gain", gain, 0, low_open=True)
    allowed = {"constant": "value", "normal": "std", "uniform": "limit"}.get(name)
    unknown = sorted(set(kwargs) - {allowed})
    if unknown:
        raise TypeError(f"{unknown[0]}: not an argument of the {name} initializer"
                        + (f" (it takes {allowed})" if allowed else ""))
    fan_in, fan_out = fans(shape)
    if name == "zeros":
        return "constant", 0.0
    if name == "constant":
        return "constant", check_float("value", kwargs.get("value", 0.0))
    if name == "normal":
        return "normal", gain * check_float("std", kwargs.get("std", 0.01), 0)
    if name == "uniform":
        return "uniform", gain * check_float("limit", kwargs.get("limit", 0.05), 0)
    if name == "glorot_uniform":
        return "uniform", gain * math.sqrt(6.0 / (fan_in + fan_out))
    if name == "glorot_normal":
        return "normal", gain * math.sqrt(2.0 / (fan_in + fan_out))
    if name in ("he_uniform", "lecun_uniform"):
        return "uniform", gain * math.sqrt(3.0 / fan_in)
    if name in ("he_normal", "lecun_normal"):
        return "normal", gain / math.sqrt(fan_in)
    return "uniform", gain / math.sqrt(fan_in)  # torch_default


def initialize(name, shape, *, rng, dtype=np.float32, gain=None, **kwargs):
    """A new array of ``shape`` drawn from initializer ``name``.

    Parameters
    ----------
    name : str
        One of :data:`INITIALIZERS`.
    shape : tuple of int
        ``(fan_out, fan_in)`` for a weight.
    rng : numpy.random.Generator
    dtype : float32 or float64
    gain : float or None
        None uses the initializer's default gain.
    **kwargs
        ``value`` (constant), ``std`` (normal), ``limit`` (uniform).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), a bad gain,
        or a gain or value that makes a weight non-finite in ``dtype``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng: must be a numpy.random.Generator")
    shape = tuple(int(s) for s in shape)
    kind, scale = distribution(name, shape, gain, **kwargs) if all(shape) else (
        "constant", 0.0)  # empty: nothing to draw (torch: a no-op)
    limit = float(np.finfo(dtype).max)
    if not abs(scale) <= limit:  # also NaN; checked before drawing
        raise ValueError(
            f"gain: {name} with gain {gain} and {kwargs or 'its default scale'} "
            f"draws from a scale of {scale}, beyond {np.dtype(dtype).name}'s "
            "range; use a smaller gain or value")
    if kind == "constant":
        return np.full(shape, scale, dtype=dtype)
    if kind == "normal":
        out = rng.standard_normal(shape) * scale
    else:
        out = rng.uniform(-scale, scale, shape)
    with np.errstate(over="ignore"):
        out = out.astype(dtype)
    if not np.isfinite(out).all():  # a draw a few scales out
        raise ValueError(
            f"gain: {name} with gain {gain} drew weights beyond "
            f"{np.dtype(dtype).name}'s range; use a smaller gain")
    return out
