"""Weight initializers: torch.nn.init's formulas, each with a ``gain``.

The oracles are the formulas written out by hand below (for a weight ``W``
shaped ``(fan_out, fan_in)`` as in ``torch.nn.Linear``), the sample statistics
of large draws, and torch.nn.init itself: torch draws ``bound * (2U - 1)`` or
``std * Z`` from its generator, so dividing its weights by the unscaled
variates of the same seed recovers its bound or std exactly.
"""

import math

import numpy as np
import pytest
from scipy import stats

import fastnn
from fastnn.initializers import INITIALIZERS, distribution, fans, initialize

FAN_OUT, FAN_IN = 400, 300  # non-square, so swapping the fans shows
SHAPE = (FAN_OUT, FAN_IN)
SQRT2 = math.sqrt(2.0)

#: name -> (kind, scale as a function of (gain, fan_in, fan_out)), by hand from
#: torch.nn.init's documentation: xavier_uniform_ a = gain*sqrt(6/(in+out)),
#: xavier_normal_ std = gain*sqrt(2/(in+out)), kaiming_uniform_ bound =
#: gain*sqrt(3/fan_in), kaiming_normal_ std = gain/sqrt(fan_in).
FORMULAS = {
    "glorot_uniform": ("uniform", lambda g, i, o: g * math.sqrt(6.0 / (i + o))),
    "glorot_normal": ("normal", lambda g, i, o: g * math.sqrt(2.0 / (i + o))),
    "he_uniform": ("uniform", lambda g, i, o: g * math.sqrt(3.0 / i)),
    "he_normal": ("normal", lambda g, i, o: g / math.sqrt(i)),
    "lecun_uniform": ("uniform", lambda g, i, o: g * math.sqrt(3.0 / i)),
    "lecun_normal": ("normal", lambda g, i, o: g / math.sqrt(i)),
    "torch_default": ("uniform", lambda g, i, o: g / math.sqrt(i)),
    "normal": ("normal", lambda g, i, o: g * 0.01),
    "uniform": ("uniform", lambda g, i, o: g * 0.05),
}
DEFAULT_GAIN = {"he_uniform": SQRT2, "he_normal": SQRT2}
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
           "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


def _assert_draw(W, kind, scale):
    """``W`` looks like ``N`` draws of U(-scale, scale) or N(0, scale^2)."""
    W = np.asarray(W, dtype=np.float64).ravel()
    n = W.size
    if kind == "uniform":
        std, excess_kurtosis = scale / math.sqrt(3.0), -1.2
        assert np.abs(W).max() <= scale
        # P(max|w| < (1 - 1e-3) * scale) = (1 - 1e-3)^n: never, for n >= 1e5
        assert np.abs(W).max() >= scale * (1 - 1e-3)
    else:
        std, excess_kurtosis = scale, 0.0
        assert stats.kstest(W / scale, "norm").pvalue > 1e-3
    assert abs(W.mean()) < 5 * std / math.sqrt(n)
    # sample std: relative sd 1/sqrt(2n) (normal), 0.45/sqrt(n) (uniform)
    assert W.std() == pytest.approx(std, rel=1e-2)
    assert stats.kurtosis(W) == pytest.approx(excess_kurtosis, abs=0.1)


# -- names and fans -------------------------------------------------------------

def test_every_design_name_and_alias_is_accepted():
    design = {"zeros", "constant", "normal", "uniform", "glorot_uniform",
              "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
              "lecun_normal", "torch_default"}
    assert set(INITIALIZERS) == design | set(ALIASES)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (5, 3), (400, 300)])
def test_fans_of_an_out_by_in_weight_match_torch(shape):
    torch = pytest.importorskip("torch")
    fan_in, fan_out = fans(shape)
    assert (fan_in, fan_out) == (shape[1], shape[0])
    assert (fan_in, fan_out) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape))


# -- the formulas -----------------------------------------------------------------

@pytest.mark.parametrize("gain", [None, 0.5, 1.0, 5.0 / 3.0, 4.0])
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_distribution_is_the_formula(name, gain):
    kind, formula = FORMULAS[name]
    g = DEFAULT_GAIN.get(name, 1.0) if gain is None else gain
    got_kind, scale = distribution(name, SHAPE, gain)
    assert got_kind == kind
    assert scale == pytest.approx(formula(g, FAN_IN, FAN_OUT), rel=1e-15)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_aliases_are_the_same_initializer(alias):
    for gain in (None, 0.7):
        assert distribution(alias, SHAPE, gain) == distribution(ALIASES[alias],
                                                                SHAPE, gain)
    a = initialize(alias, SHAPE, rng=np.random.default_rng(3), dtype=np.float64)
    b = initialize(ALIASES[alias], SHAPE, rng=np.random.default_rng(3),
                   dtype=np.float64)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("gain", [None, 2.5])
@pytest.mark.parametrize("name", sorted(FORMULAS) + sorted(ALIASES))
def test_large_draw_has_the_formula_std_and_bounds(name, gain):
    kind, formula = FORMULAS[ALIASES.get(name, name)]
    g = DEFAULT_GAIN.get(ALIASES.get(name, name), 1.0) if gain is None else gain
    W = initialize(name, SHAPE, rng=np.random.default_rng(2024), dtype=np.float64,
                   gain=gain)
    assert W.shape == SHAPE and W.dtype == np.float64
    _assert_draw(W, kind, formula(g, FAN_IN, FAN_OUT))


def test_normal_and_uniform_take_std_and_limit():
    rng = np.random.default_rng(1)
    W = initialize("normal", SHAPE, rng=rng, dtype=np.float64, std=0.2, gain=3.0)
    _assert_draw(W, "normal", 0.6)
    W = initialize("uniform", SHAPE, rng=rng, dtype=np.float64, limit=0.3, gain=2.0)
    _assert_draw(W, "uniform", 0.6)


def test_zeros_and_constant_are_exact(dtype):
    rng = np.random.default_rng(0)
    W = initialize("zeros", (7, 3), rng=rng, dtype=dtype)
    assert W.dtype == dtype and W.shape == (7, 3) and not W.any()
    W = initialize("constant", (7, 3), rng=rng, dtype=dtype, value=-1.25)
    assert W.dtype == dtype
    np.testing.assert_array_equal(W, np.full((7, 3), -1.25))
    W = initialize("constant", (4,), rng=rng, dtype=dtype)  # value defaults to 0
    np.testing.assert_array_equal(W, np.zeros(4))


# -- against torch.nn.init -------------------------------------------------------

def _torch_scale(fill, kind, shape=SHAPE):
    """The bound (uniform) or std (normal) torch used in ``fill(W, generator)``."""
    torch = pytest.importorskip("torch")
    W = torch.empty(shape, dtype=torch.float64)
    fill(W, torch.Generator().manual_seed(0))
    base = torch.empty(shape, dtype=torch.float64)
    if kind == "uniform":
        base = 2 * base.uniform_(0, 1, generator=torch.Generator().manual_seed(0)) - 1
    else:
        base.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    W, base = W.numpy(), base.numpy()
    keep = np.abs(base) > 0.1
    ratios = W[keep] / base[keep]
    # torch drew a scaled copy of the same variates: the ratio is one number
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)
    return float(ratios[0])


def _torch_cases():
    """(fastnn name, fastnn gain, torch fill, kind); gains from calculate_gain."""
    init = pytest.importorskip("torch").nn.init
    gain = init.calculate_gain
    cases = []
    for nl in ("linear", "sigmoid", "tanh", "relu", "selu"):
        cases += [
            ("glorot_uniform", gain(nl),
             lambda W, g, nl=nl: init.xavier_uniform_(W, gain(nl), generator=g),
             "uniform"),
            ("glorot_normal", gain(nl),
             lambda W, g, nl=nl: init.xavier_normal_(W, gain(nl), generator=g),
             "normal"),
            ("he_uniform", gain(nl),
             lambda W, g, nl=nl: init.kaiming_uniform_(W, nonlinearity=nl,
                                                       generator=g), "uniform"),
            ("he_normal", gain(nl),
             lambda W, g, nl=nl: init.kaiming_normal_(W, nonlinearity=nl,
                                                      generator=g), "normal"),
        ]
    for a in (0.01, 0.2, math.sqrt(5)):
        cases.append(("he_uniform", gain("leaky_relu", a),
                      lambda W, g, a=a: init.kaiming_uniform_(W, a=a, generator=g),
                      "uniform"))
    cases += [
        # He's defaults are ReLU's: kaiming_*(nonlinearity="relu")
        ("he_uniform", None, lambda W, g: init.kaiming_uniform_(
            W, nonlinearity="relu", generator=g), "uniform"),
        ("he_normal", None, lambda W, g: init.kaiming_normal_(
            W, nonlinearity="relu", generator=g), "normal"),
        # LeCun is Kaiming with the linear gain (torch's advice for SELU)
        ("lecun_uniform", None, lambda W, g: init.kaiming_uniform_(
            W, nonlinearity="linear", generator=g), "uniform"),
        ("lecun_normal", None, lambda W, g: init.kaiming_normal_(
            W, nonlinearity="linear", generator=g), "normal"),
        ("glorot_uniform", None, lambda W, g: init.xavier_uniform_(W, generator=g),
         "uniform"),
        ("glorot_normal", None, lambda W, g: init.xavier_normal_(W, generator=g),
         "normal"),
        ("normal", 3.0, lambda W, g: init.normal_(W, 0.0, 0.03, generator=g),
         "normal"),
        ("uniform", 2.0, lambda W, g: init.uniform_(W, -0.1, 0.1, generator=g),
         "uniform"),
    ]
    return cases


def test_scales_match_torch_nn_init():
    pytest.importorskip("torch")
    cases = _torch_cases()
    assert len(cases) == 31
    for name, gain, fill, kind in cases:
        got_kind, scale = distribution(name, SHAPE, gain)
        assert got_kind == kind, name
        assert scale == pytest.approx(_torch_scale(fill, kind), rel=1e-12), (name,
                                                                              gain)


def test_torch_default_is_nn_linear_default():
    torch = pytest.importorskip("torch")
    torch.manual_seed(11)
    W = torch.nn.Linear(FAN_IN, FAN_OUT, dtype=torch.float64).weight.detach()
    torch.manual_seed(11)
    base = 2 * torch.empty(SHAPE, dtype=torch.float64).uniform_(0, 1) - 1
    W, base = W.numpy(), base.numpy()
    keep = np.abs(base) > 0.1
    ratios = W[keep] / base[keep]
    np.testing.assert_allclose(ratios, 1 / math.sqrt(FAN_IN), rtol=1e-12)
    assert distribution("torch_default", SHAPE) == ("uniform",
                                                    pytest.approx(ratios[0],
                                                                  rel=1e-12))


def test_draws_match_torch_draw_statistics():
    """fastnn's and torch's large draws have the same spread."""
    torch = pytest.importorskip("torch")
    init = torch.nn.init
    torch.manual_seed(0)
    pairs = [("glorot_uniform", init.xavier_uniform_),
             ("glorot_normal", init.xavier_normal_),
             ("he_uniform", lambda W: init.kaiming_uniform_(W, nonlinearity="relu")),
             ("he_normal", lambda W: init.kaiming_normal_(W, nonlinearity="relu"))]
    for name, fill in pairs:
        W_torch = fill(torch.empty(SHAPE, dtype=torch.float64)).numpy()
        W = initialize(name, SHAPE, rng=np.random.default_rng(0), dtype=np.float64)
        assert W.std() == pytest.approx(W_torch.std(), rel=1e-2), name
        if name.endswith("uniform"):
            assert np.abs(W).max() == pytest.approx(np.abs(W_torch).max(), rel=1e-3)


# -- reproducibility and dtype -------------------------------------------------

@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_same_seed_same_draw_and_dtypes_agree(name):
    a = initialize(name, (33, 17), rng=np.random.default_rng(9), dtype=np.float64)
    b = initialize(name, (33, 17), rng=np.random.default_rng(9), dtype=np.float64)
    c = initialize(name, (33, 17), rng=np.random.default_rng(10), dtype=np.float64)
    f = initialize(name, (33, 17), rng=np.random.default_rng(9), dtype=np.float32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert f.dtype == np.float32 and a.dtype == np.float64
    np.testing.assert_array_equal(f, a.astype(np.float32))


def test_default_dtype_is_float32():
    W = initialize("glorot_uniform", (5, 4), rng=np.random.default_rng(0))
    assert W.dtype == np.float32 and W.shape == (5, 4)


def test_model_seed_makes_weights_reproducible():
    def weights(seed):
        model = fastnn.Sequential([fastnn.Dense(20, "relu"), fastnn.Dense(5, "tanh")],
                                  input_dim=8, seed=seed)
        return model.get_weights()

    for a, b in zip(weights(4), weights(4)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(4)[0], weights(5)[0])


# -- bad input --------------------------------------------------------------------

def test_unknown_name_raises_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"^init: unknown value 'glorot'") as err:
        initialize("glorot", (3, 2), rng=np.random.default_rng(0))
    for name in INITIALIZERS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match=r"^init:"):
        distribution(None, (3, 2))


@pytest.mark.parametrize("gain", [0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("name", ["zeros", "glorot_uniform", "he_normal", "normal"])
def test_bad_gain_raises_value_error(name, gain):
    with pytest.raises(ValueError, match=r"^gain:"):
        initialize(name, (3, 2), rng=np.random.default_rng(0), gain=gain)


@pytest.mark.parametrize("gain", ["2", True, [1.0]])
def test_non_number_gain_raises_type_error(gain):
    with pytest.raises(TypeError, match=r"^gain:"):
        initialize("he_uniform", (3, 2), rng=np.random.default_rng(0), gain=gain)


@pytest.mark.parametrize("name, kwargs, arg", [
    ("normal", {"std": -0.1}, "std"),
    ("normal", {"std": math.nan}, "std"),
    ("uniform", {"limit": -1.0}, "limit"),
    ("uniform", {"limit": math.inf}, "limit"),
    ("constant", {"value": math.nan}, "value"),
    ("constant", {"value": -math.inf}, "value"),
])
def test_bad_distribution_arguments_raise_value_error(name, kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        initialize(name, (3, 2), rng=np.random.default_rng(0), **kwargs)


def test_rng_must_be_a_generator():
    for rng in (None, 0, np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"^rng:"):
            initialize("zeros", (3, 2), rng=rng)


def test_misspelled_keyword_is_not_silently_ignored():
    # ``val`` for ``value``: torch.nn.init.constant_ would raise a TypeError; a
    # silently ignored keyword gives a zero weight instead of 0.5.
    with pytest.raises((TypeError, ValueError), match="val"):
        initialize("constant", (3, 2), rng=np.random.default_rng(0), val=0.5)


def test_zero_size_weight_is_empty_or_a_clear_error():
    # torch.nn.init treats zero-element tensors as a no-op; zeros and glorot_*
    # here return an empty array, so every initializer should.
    for name in sorted(FORMULAS) + ["zeros"]:
        for shape in ((3, 0), (0, 3)):
            try:
                W = initialize(name, shape, rng=np.random.default_rng(0))
            except ValueError as exc:
                assert "shape" in str(exc), (name, shape)
            else:
                assert W.shape == shape, (name, shape)


# -- init="auto" in Dense -----------------------------------------------------------

#: The design's table: activation -> (initializer, gain).
AUTO = {
    "sigmoid": ("glorot_uniform", 4.0), "logistic": ("glorot_uniform", 4.0),
    "tanh": ("glorot_uniform", 1.0), "identity": ("glorot_uniform", 1.0),
    "linear": ("glorot_uniform", 1.0), None: ("glorot_uniform", 1.0),
    "relu": ("he_uniform", SQRT2), "leaky_relu": ("he_uniform", SQRT2),
    "elu": ("he_uniform", SQRT2), "silu": ("he_uniform", SQRT2),
    "swish": ("he_uniform", SQRT2), "gelu": ("he_uniform", SQRT2),
    "gelu_tanh": ("he_uniform", SQRT2),
    "selu": ("lecun_normal", 1.0),
}


def _first_weight(layers):
    model = fastnn.Sequential(layers, input_dim=FAN_IN, seed=0, dtype="float64")
    W, b = model.get_weights()[:2]
    assert W.shape == SHAPE and not b.any()
    return W


@pytest.mark.parametrize("activation", list(AUTO), ids=str)
def test_auto_init_follows_the_design_table(activation):
    name, gain = AUTO[activation]
    kind, formula = FORMULAS[name]
    W = _first_weight([fastnn.Dense(FAN_OUT, activation)])
    _assert_draw(W, kind, formula(gain, FAN_IN, FAN_OUT))


def test_auto_relu_gain_is_torch_relu_gain():
    torch = pytest.importorskip("torch")
    assert AUTO["relu"][1] == pytest.approx(torch.nn.init.calculate_gain("relu"),
                                            rel=1e-15)
    # Glorot's sigmoid gain 4 and gain 1 for tanh are the design's (after Glorot
    # & Bengio), not torch's calculate_gain (1 and 5/3).
    scale = distribution("he_uniform", SHAPE)[1]
    assert scale == pytest.approx(_torch_scale(
        lambda W, g: torch.nn.init.kaiming_uniform_(W, nonlinearity="relu",
                                                    generator=g), "uniform"),
        rel=1e-12)


def test_dense_feeding_prelu_gets_he_uniform():
    # design: "relu, leaky_relu, prelu, ...: He uniform (gain sqrt(2))"
    W = _first_weight([fastnn.Dense(FAN_OUT), fastnn.PReLU()])
    _assert_draw(W, "uniform", SQRT2 * math.sqrt(3.0 / FAN_IN))


def test_dense_feeding_an_activation_layer_gets_its_init():
    # Dense(u) + Activation(f) is Dense(u, f) split in two: "auto" is the same.
    W = _first_weight([fastnn.Dense(FAN_OUT), fastnn.Activation("relu")])
    _assert_draw(W, "uniform", SQRT2 * math.sqrt(3.0 / FAN_IN))
    W = _first_weight([fastnn.Dense(FAN_OUT), fastnn.Activation("tanh")])
    _assert_draw(W, "uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT)))
    W = _first_weight([fastnn.Dense(FAN_OUT), fastnn.Activation("softmax")])
    _assert_draw(W, "uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT)))


def test_gain_overrides_the_auto_gain():
    W = _first_weight([fastnn.Dense(FAN_OUT, "relu", gain=0.5)])
    _assert_draw(W, "uniform", 0.5 * math.sqrt(3.0 / FAN_IN))
    W = _first_weight([fastnn.Dense(FAN_OUT, "sigmoid", gain=1.0)])
    _assert_draw(W, "uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT)))


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_explicit_init_ignores_the_activation(name):
    kind, formula = FORMULAS[name]
    W = _first_weight([fastnn.Dense(FAN_OUT, "sigmoid", init=name)])
    _assert_draw(W, kind, formula(DEFAULT_GAIN.get(name, 1.0), FAN_IN, FAN_OUT))


def test_layers_draw_in_order_from_the_model_seed():
    model = fastnn.Sequential([fastnn.Dense(30, "relu"), fastnn.Dense(20, "tanh")],
                              input_dim=10, seed=3, dtype="float64")
    W1, _, W2, _ = model.get_weights()
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(
        W1, initialize("he_uniform", (30, 10), rng=rng, dtype=np.float64))
    np.testing.assert_array_equal(
        W2, initialize("glorot_uniform", (20, 30), rng=rng, dtype=np.float64))


def test_dense_rejects_bad_init_and_gain():
    with pytest.raises(ValueError, match=r"^init: unknown initializer 'glorot'") as e:
        fastnn.Dense(3, init="glorot")
    assert "auto" in str(e.value) and "he_uniform" in str(e.value)
    for gain in (0.0, -2.0, math.nan):
        with pytest.raises(ValueError, match=r"^gain:"):
            fastnn.Dense(3, gain=gain)
    with pytest.raises(ValueError, match=r"^init:"):
        fastnn.Maxout(3, init="glorot")
