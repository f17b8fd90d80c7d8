"""Why training works or fails: per-layer activation and gradient statistics.

``layer_stats`` reports, for one batch, each layer's activation mean and std,
its saturated fraction (tanh: ``|y| > 0.99``; sigmoid: ``y`` outside
``[0.01, 0.99]``), its dead-unit fraction (ReLU family: units that are zero on
every sample), the norm of its weight gradient and the std of the gradient
back-propagated to its pre-activation. ``depth_experiment`` reproduces Glorot
& Bengio's (2010) study of deep tanh networks under three initializations.
"""

import math

import numpy as np

from fastnn.layers import Activation, Dense, Maxout
from fastnn.losses import get_loss, loss_value

SATURATING = {"tanh": lambda y: np.abs(y) > 0.99,
              "sigmoid": lambda y: (y < 0.01) | (y > 0.99)}
RELU_LIKE = ("relu",)


def _activation_name(layer):
    if isinstance(layer, Dense):
        return layer.activation.name
    if isinstance(layer, Activation):
        return layer.name
    return None


class _Pass:
    """One training-mode forward/backward that leaves the model unchanged."""

    def __init__(self, model, X, target, spec, seed=0):
        self.model, self.X, self.target, self.spec = model, X, target, spec
        self.seed = seed

    def __enter__(self):
        model = self.model
        self.saved_state = [({k: v.copy() for k, v in layer.state.items()},
                             getattr(layer, "num_batches_tracked", None))
                            for layer in model.layers]
        self.saved_grads = model._grads.copy()
        return self

    def __exit__(self, *exc):
        for layer, (state, nbt) in zip(self.model.layers, self.saved_state):
            for k, v in state.items():
                layer.state[k][...] = v
            if nbt is not None:
                layer.num_batches_tracked = nbt
        self.model._grads[...] = self.saved_grads

    def forward(self):
        model = self.model
        n = self.X.shape[0]
        rng = np.random.default_rng(self.seed)
        self.workspaces = [layer.workspace(n) for layer in model.layers]
        outputs = []
        H = self.X
        for layer, ws in zip(model.layers, self.workspaces):
            H = layer.forward(model.ops, H, ws, n, True, rng)
            outputs.append(H)
        return outputs

    def loss(self, with_grad):
        outputs = self.forward()
        out = outputs[-1]
        d = np.empty_like(out) if with_grad else None
        value = loss_value(self.model.ops, self.spec, out, self.target, d)
        return value + self.model.penalty(), outputs, d

    def backward(self, d):
        """Gradients into model._grads; return the gradient seen by each layer
        after its backward (the pre-activation gradient for Dense)."""
        model = self.model
        n = self.X.shape[0]
        seen = [None] * len(model.layers)
        for i in range(len(model.layers) - 1, -1, -1):
            layer = model.layers[i]
            d_in = d
            d = layer.backward(model.ops, d, self.workspaces[i], n, i > 0)
            seen[i] = d_in
        return seen


def _prepare(model, X, y, loss):
    from fastnn._validation import check_array

    spec = get_loss(loss if loss is not None else (model.loss or "cross_entropy"))
    X = check_array("X", X, model.dtype,
                    n_features=model.input_dim if model.built else None)
    # An unbuilt model is built for the targets' check, and left unbuilt if
    # they are refused.
    with model._building(X.shape[1]):
        target = model._check_targets(y, X.shape[0], spec)
    return X, target, spec


def layer_stats(model, X, y, loss=None, keep_values=False):
    """Per-layer statistics of one batch, as a list of dicts.

    Keys: ``layer``, ``activation``, ``mean``, ``std``, ``saturated``
    (fraction, or None for non-saturating activations), ``dead`` (fraction of
    units zero on every sample, ReLU only, else None), ``grad_norm`` (Frobenius
    norm of the weight gradient, None without weights), ``backprop_norm`` and
    ``backprop_std`` (of the gradient w.r.t. the layer's pre-activation).
    The model's weights, statistics and gradients are left unchanged. With
    ``keep_values``, each row also holds up to 20000 sampled values of the
    activations and gradients (``"_activations"``, ``"_gradients"``) for plots.
    """
    X, target, spec = _prepare(model, X, y, loss)
    rows = []
    with _Pass(model, X, target, spec) as p:
        _, outputs, d = p.loss(True)
        seen = p.backward(d)
        for i, (layer, Y) in enumerate(zip(model.layers, outputs)):
            act = _activation_name(layer)
            Y64 = np.asarray(Y, np.float64)
            g = np.asarray(seen[i], np.float64)
            grad_norm = None
            if "weight" in layer.grads and isinstance(layer, (Dense, Maxout)):
                grad_norm = float(np.linalg.norm(layer.grads["weight"]))
            rows.append({
                "layer": i,
                "name": layer.describe(),
                "activation": act,
                "mean": float(Y64.mean()),
                "std": float(Y64.std()),
                "saturated": (float(SATURATING[act](Y64).mean())
                              if act in SATURATING else None),
                "dead": (float((Y64 <= 0).all(axis=0).mean())
                         if act in RELU_LIKE else None),
                "grad_norm": grad_norm,
                "backprop_norm": float(np.linalg.norm(g)),
                "backprop_std": float(g.std()),
            })
            if keep_values:
                pick = np.random.default_rng(i).permutation(Y64.size)[:20000]
                rows[-1]["_activations"] = Y64.ravel()[pick]
                rows[-1]["_gradients"] = g.ravel()[pick]
    return rows


def _hidden(rows):
    """The rows of the hidden layers: those with a nonlinear activation."""
    return [r for r in rows if r["activation"] not in (None, "identity")]


def _first_last_hidden(rows, key):
    """First over last hidden layer's ``key``, or None where no ratio is
    defined (fewer than two hidden layers, a zero or non-finite last value)."""
    values = [r[key] for r in _hidden(rows) if r[key] is not None]
    if len(values) < 2 or not (math.isfinite(values[0])
                               and math.isfinite(values[-1])) or values[-1] == 0:
        return None
    return values[0] / values[-1]


def gradient_ratio(rows):
    """First over last hidden layer's back-propagated gradient norm (w.r.t.
    the pre-activations): below 1, the gradient shrinks on its way down. None
    where it is not defined; :func:`assess` says why."""
    return _first_last_hidden(rows, "backprop_norm")


def weight_gradient_ratio(rows):
    """First over last hidden layer's weight-gradient norm, or None. Glorot &
    Bengio (2010) show it can stay near 1 while activations and
    back-propagated gradients vanish in opposite directions, so the verdict
    does not use it."""
    return _first_last_hidden(rows, "grad_norm")


def assess(rows):
    """``(verdict, reason)``: the verdict of :func:`verdict`, and when no
    gradient-norm ratio is defined, the sentence that says why (else None)."""
    hidden = _hidden(rows)
    if len(hidden) < 2:
        count = "no hidden layer" if not hidden else (
            f"one hidden layer ({hidden[0]['name']})")
        return "undetermined", (
            f"{count}: no first/last ratio to judge; gradients vanish or explode "
            "across two or more hidden layers")
    norms = [r["backprop_norm"] for r in hidden]
    if not all(math.isfinite(v) for v in norms):
        return "exploding", ("the back-propagated gradient overflows (is not "
                             "finite) in the hidden layers")
    if norms[-1] == 0:
        return "vanishing", ("no gradient reaches the hidden layers: the last "
                             "one's back-propagated gradient norm is 0")
    ratio = norms[0] / norms[-1]
    if ratio < 0.1:
        return "vanishing", None
    if ratio > 10:
        return "exploding", None
    return "healthy", None


def verdict(rows):
    """``"vanishing"``, ``"exploding"`` or ``"healthy"``, from
    :func:`gradient_ratio`: below 0.1, above 10, or in between (Glorot &
    Bengio, 2010). ``"undetermined"`` with fewer than two hidden layers to
    compare; a gradient that is zero or not finite at the last hidden layer
    is vanishing or exploding."""
    return assess(rows)[0]


def deep_saturation(rows):
    """The smallest saturated fraction over the deeper half of the hidden
    layers (None for activations that do not saturate)."""
    hidden = _hidden(rows)
    sat = [r["saturated"] for r in hidden[len(hidden) // 2:]
           if r["saturated"] is not None]
    return min(sat) if sat else None


def gradient_check(model, X, y, loss=None, eps=1e-6, max_params=500, seed=0):
    """Compare analytic and central finite-difference gradients.

    Runs in float64 on a copy of the model (same layers and weights), over at
    most ``max_params`` parameters chosen at random. Returns the norm-wise
    relative error ``||g_a - g_n|| / max(||g_a|| + ||g_n||, 1e-300)``.
    """
    from fastnn._validation import check_array, check_float, check_int, check_seed
    from fastnn.layers import LAYERS
    from fastnn.model import Sequential

    eps = check_float("eps", eps, 0.0, low_open=True)
    max_params = check_int("max_params", max_params, 1)
    check_seed(seed)
    if not model.built:  # X's own check names the problem: not 2-D, no rows, ...
        model.build(check_array("X", X, model.dtype).shape[1])
    clone = Sequential([LAYERS[type(la).__name__].from_config(la.get_config())
                        for la in model.layers], input_dim=model.input_dim,
                       dtype="float64", backend=model.backend)
    clone.set_weights([w.astype(np.float64) for w in model.get_weights()])
    clone.loss = model.loss
    X, target, spec = _prepare(clone, X, y, loss)
    with _Pass(clone, X, target, spec, seed) as p:
        _, _, d = p.loss(True)
        p.backward(d)
        analytic = clone._grads.copy()
        saved = [({k: v.copy() for k, v in la.state.items()}) for la in clone.layers]
        rng = np.random.default_rng(seed)
        runs = clone._trainable_runs()
        candidates = np.concatenate([np.arange(s, e) for s, e in runs]) \
            if runs else np.array([], int)
        if candidates.size > max_params:
            candidates = rng.choice(candidates, max_params, replace=False)
        numeric = np.empty(candidates.size)

        def value():
            v = p.loss(False)[0]
            for la, st in zip(clone.layers, saved):
                for k, arr in st.items():
                    la.state[k][...] = arr
            return v

        for j, idx in enumerate(candidates):
            old = clone._params[idx]
            clone._params[idx] = old + eps
            plus = value()
            clone._params[idx] = old - eps
            minus = value()
            clone._params[idx] = old
            numeric[j] = (plus - minus) / (2 * eps)
    a = analytic[candidates]
    return float(np.linalg.norm(a - numeric)
                 / max(np.linalg.norm(a) + np.linalg.norm(numeric), 1e-300))


#: The setups of ``depth_experiment``: name -> (activation, init, gain).
SETUPS = {
    "tanh N(0, 0.01)": ("tanh", "normal", 1.0),
    "tanh N(0, 1)": ("tanh", "normal", 100.0),
    "tanh Glorot": ("tanh", "glorot_uniform", 1.0),
    "relu Glorot": ("relu", "glorot_uniform", 1.0),
    "relu He": ("relu", "he_uniform", math.sqrt(2)),
}


def depth_experiment(depth=10, width=500, n_samples=500, n_classes=10,
                     setups=None, seed=0, backend="cython", keep_values=False):
    """Per-layer statistics of deep stacks under several initializations.

    Gaussian input ``(n_samples, width)``, ``depth`` hidden layers of
    ``width`` units, a linear output of ``n_classes`` with softmax
    cross-entropy on random labels, in float64. Returns
    ``{setup: {"rows": layer_stats, "ratio": ..., "verdict": ...}}``.
    """
    from fastnn.model import Sequential

    # Independent streams for the data and the weights: one seed for both
    # would make the first layer's N(0, s) weights a multiple of the input rows.
    data_seq, weight_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(data_seq)
    X = rng.standard_normal((n_samples, width))
    y = rng.integers(0, n_classes, n_samples)
    weight_seed = int(weight_seq.generate_state(1)[0])
    results = {}
    for name in (setups or SETUPS):
        act, init, gain = SETUPS[name]
        layers = [Dense(width, act, init=init, gain=gain) for _ in range(depth)]
        layers.append(Dense(n_classes, init="glorot_uniform"))
        model = Sequential(layers, input_dim=width, dtype="float64",
                           seed=weight_seed, backend=backend)
        rows = layer_stats(model, X, y, "softmax_cross_entropy", keep_values)
        results[name] = summarize(rows)
    return results


def summarize(rows):
    """``{"rows", "ratio", "weight_ratio", "saturation", "verdict", "reason"}``
    of one set of :func:`layer_stats` rows (see :func:`assess`)."""
    judged, reason = assess(rows)
    return {"rows": rows, "ratio": gradient_ratio(rows),
            "weight_ratio": weight_gradient_ratio(rows),
            "saturation": deep_saturation(rows), "verdict": judged,
            "reason": reason}


#: How ``format_report`` states the verdict's rule, once.
RULE = ("Verdict (Glorot & Bengio, 2010) from the gradient-norm ratio first/last "
        "hidden layer,\nof the back-propagated gradients: below 0.1 vanishing, "
        "above 10 exploding, else healthy.")


def format_report(results):
    """The text ``fastnn diagnose`` prints: the rule of the verdict, then per
    setup (or model) its verdict, its gradient-norm ratios and a row per layer,
    named as the layer describes itself."""
    lines = [RULE, ""]
    for name, res in results.items():
        sat = res.get("saturation")
        lines.append(f"== {name}: {res['verdict']}"
                     + (f", deep layers {sat:.0%} saturated"
                        if sat and sat > 0.5 else ""))
        if res.get("reason"):
            lines.append(f"   {res['reason']}")
        if res["ratio"] is not None:
            weights = ("" if res["weight_ratio"] is None else
                       f" (weight gradients: {res['weight_ratio']:.3g})")
            lines.append(f"   gradient-norm ratio first/last hidden layer: "
                         f"{res['ratio']:.3g}{weights}")
        width = max([4] + [len(r["name"]) for r in res["rows"]])
        lines.append(f"{'layer':>5} {'name':<{width}} {'act mean':>10} "
                     f"{'act std':>10} {'saturated':>9} {'dead':>6} "
                     f"{'W grad norm':>11} {'bprop norm':>10} {'bprop std':>10}")
        for r in res["rows"]:
            sat = "-" if r["saturated"] is None else f"{r['saturated']:.1%}"
            dead = "-" if r["dead"] is None else f"{r['dead']:.1%}"
            gn = "-" if r["grad_norm"] is None else f"{r['grad_norm']:.3e}"
            lines.append(f"{r['layer'] + 1:>5} {r['name']:<{width}} "
                         f"{r['mean']:>10.3e} {r['std']:>10.3e} {sat:>9} {dead:>6} "
                         f"{gn:>11} {r['backprop_norm']:>10.3e} "
                         f"{r['backprop_std']:>10.3e}")
        lines.append("")
    return "\n".join(lines)


def plot_histograms(results, path):
    """Per-layer activation and back-propagated gradient histograms, one row per
    setup (after Glorot & Bengio's figures), written as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastnn-core[plot]'")
    names = list(results)
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 3 * len(names)),
                             squeeze=False)
    for row, name in enumerate(names):
        for r in results[name]["rows"][:-1]:
            label = f"{r['layer'] + 1} {r['name']}"
            axes[row, 0].hist(r["_activations"], bins=60, histtype="step",
                              label=label)
            axes[row, 1].hist(r["_gradients"], bins=60, histtype="step", label=label)
        axes[row, 0].set_title(f"{name}: activations")
        axes[row, 1].set_title(f"{name}: back-propagated gradients")
        axes[row, 1].set_yscale("log")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)
