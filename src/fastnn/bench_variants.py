"""Training speed of model variants against plain Dense+Adam (``fastnn bench
--variants``).

Each row changes one thing in the plain model (float32, ReLU hidden layers,
softmax cross-entropy, ``Adam(lr=1e-3)``): the optimizer, a penalty, gradient
clipping, a layer, or the loss. The figure is seconds per epoch of the
variant divided by those of plain Dense+Adam in fastnn on the same config;
PyTorch's column divides PyTorch on the same variant by the same fastnn
figure, so 2.0 there means PyTorch takes twice as long as plain fastnn.

How it is measured: per config and per round, one fresh subprocess trains
every fastnn variant and then another trains every PyTorch variant. Inside a
process the variants take turns (round-robin, ``inner`` times over), each
training ``epochs`` epochs per turn after a short warm-up, so that a busy
spell of a shared machine hits the variants alike; a variant's figure is
its best epoch over every turn and round (the one least disturbed by other
work on the machine; the JSON keeps every epoch, and their median).
fastnn's epoch times are ``fit``'s own (``history["time"]``); PyTorch's are
timed the same way around its minibatch loop.

On a machine whose cores are busy with other work, ``--threads 1`` gives
steadier figures: with 2 threads on 2 shared cores, a threaded GEMM waits for
a descheduled thread, and PyTorch's OpenMP threads spin at their barriers
(tiny then took minutes instead of seconds here).

This module uses only fastnn's public API (``Sequential``, the layers, the
optimizer classes, ``fit``) and ``fastnn.bench``'s configs, so that
``benchmarks/run_variants.py`` loads it from its own tree to benchmark
whichever fastnn ``PYTHONPATH`` points to, older checkouts included.
"""

import argparse
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from fastnn.bench import CONFIGS, _available

#: The configs of the table (from ``fastnn.bench.CONFIGS``) and the epochs
#: each variant trains per turn there.
VARIANT_EPOCHS = {"tiny": 20, "small": 1}
#: ``--quick`` trains on at most this many rows per config.
QUICK_ROWS = 20000


@dataclass(frozen=True)
class Variant:
    """One row: what differs from plain Dense+Adam, for fastnn and PyTorch.

    ``optimizer`` names a fastnn optimizer class, built with ``hyper`` and
    ``clip_norm``; PyTorch's is ``TORCH_OPTIMIZERS[optimizer]`` with the same
    ``hyper``, ``clip_grad_norm_`` for ``clip_norm``, and ``weight_decay=l2``
    on the weights for ``Dense(l2=...)`` (fastnn's penalty is
    ``l2/2 * sum W^2``). ``block`` is the hidden layer's shape (see
    :func:`_fastnn_block`); ``noise`` a ``GaussianNoise`` std on the input;
    ``aims`` the highest ratio to plain Dense+Adam aimed at, per config.
    """

    label: str
    optimizer: str = "Adam"
    hyper: dict = field(default_factory=lambda: {"lr": 1e-3})
    block: str = "relu"
    noise: float = 0.0
    l2: float = 0.0
    clip_norm: float = None
    loss: str = "softmax_cross_entropy"
    aims: dict = field(default_factory=lambda: {"tiny": 1.5, "small": 1.15})


VARIANTS = (
    Variant("plain Dense + Adam"),
    Variant("SGD nesterov (momentum 0.9)", "SGD",
            {"lr": 1e-2, "momentum": 0.9, "nesterov": True}),
    Variant("NAdam", "NAdam", {"lr": 2e-3}),
    Variant("RMSProp", "RMSProp", {"lr": 1e-3}),
    Variant("AdaGrad", "AdaGrad", {"lr": 1e-2}),
    Variant("AdaDelta", "AdaDelta", {"lr": 1.0}),
    Variant("Dense(l2=1e-4)", l2=1e-4),
    Variant("Adam(clip_norm=1)", clip_norm=1.0),
    Variant("Dropout(0.2) after each hidden layer", block="dropout",
            aims={"tiny": 1.5, "small": 1.1}),
    Variant('Dense, BatchNorm, Activation("relu")', block="batchnorm"),
    Variant("GaussianNoise(0.1) on the input", noise=0.1,
            aims={"tiny": 1.5, "small": 1.3}),
    Variant("PReLU (Dense linear, then PReLU)", block="prelu"),
    Variant("mse on one-hot targets", loss="mse"),
)

TORCH_OPTIMIZERS = {"Adam": "Adam", "SGD": "SGD", "NAdam": "NAdam",
                    "RMSProp": "RMSprop", "AdaGrad": "Adagrad",
                    "AdaDelta": "Adadelta"}


def _fastnn_block(fastnn, variant, units):
    """The hidden layer ``units`` wide, as fastnn layers."""
    dense = (lambda act=None: fastnn.Dense(units, act, l2=variant.l2))
    blocks = {
        "relu": lambda: [dense("relu")],
        "dropout": lambda: [dense("relu"), fastnn.Dropout(0.2)],
        "batchnorm": lambda: [dense(), fastnn.BatchNorm(), fastnn.Activation("relu")],
        "prelu": lambda: [dense(), fastnn.PReLU()],
    }
    return blocks[variant.block]()


def _torch_block(nn, variant, n_in, units):
    """The same hidden layer as torch modules."""
    blocks = {
        "relu": lambda: [nn.ReLU()],
        "dropout": lambda: [nn.ReLU(), nn.Dropout(0.2)],
        "batchnorm": lambda: [nn.BatchNorm1d(units), nn.ReLU()],
        "prelu": lambda: [nn.PReLU()],
    }
    return [nn.Linear(n_in, units)] + blocks[variant.block]()


def make_variant_data(spec, seed=0):
    """Gaussian ``X`` (float32), labels and their one-hot float32 targets for
    a config ``(n_samples, sizes, batch)``."""
    n, sizes, _ = spec
    rng = np.random.default_rng(seed)
    y = rng.integers(0, sizes[-1], n)
    X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    return X, y, np.eye(sizes[-1], dtype=np.float32)[y]


def _fastnn_runs(spec, threads):
    """``{label: run(rows, epochs) -> seconds of each epoch}`` for fastnn,
    its BLAS pinned to ``threads`` threads if given (else as it loads)."""
    import fastnn

    if threads:
        import scipy.linalg.cython_blas  # noqa: F401  (the kernels' BLAS)
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, user_api="blas")

    _, sizes, batch = spec
    X, y, onehot = make_variant_data(spec)

    def runner(variant):
        layers = [fastnn.GaussianNoise(variant.noise)] if variant.noise else []
        for units in sizes[1:-1]:
            layers += _fastnn_block(fastnn, variant, units)
        layers.append(fastnn.Dense(sizes[-1], l2=variant.l2))
        model = fastnn.Sequential(layers, input_dim=sizes[0], seed=0)
        opt = getattr(fastnn, variant.optimizer)(clip_norm=variant.clip_norm,
                                                 **variant.hyper)
        target = onehot if variant.loss == "mse" else y

        def run(rows, epochs):
            history = model.fit(X[:rows], target[:rows], loss=variant.loss,
                                optimizer=opt, epochs=epochs, batch_size=batch,
                                verbose=0, seed=0)
            return list(history.history["time"])

        return run

    return {v.label: runner(v) for v in VARIANTS}


def _torch_runs(spec, threads):
    """The same variants in PyTorch on ``threads`` threads (default: one per
    CPU)."""
    import torch

    torch.set_num_threads(threads or os.cpu_count())
    _, sizes, batch = spec
    X, y, onehot = make_variant_data(spec)
    Xt = torch.from_numpy(X)
    targets = {"softmax_cross_entropy": torch.from_numpy(y),
               "mse": torch.from_numpy(onehot)}
    losses = {"softmax_cross_entropy": torch.nn.CrossEntropyLoss(),
              "mse": torch.nn.MSELoss()}

    class GaussianNoise(torch.nn.Module):
        def __init__(self, std):
            super().__init__()
            self.std = std

        def forward(self, x):
            return x + self.std * torch.randn_like(x)

    def runner(variant):
        torch.manual_seed(0)
        mods = [GaussianNoise(variant.noise)] if variant.noise else []
        for n_in, units in itertools.pairwise(sizes[:-1]):
            mods += _torch_block(torch.nn, variant, n_in, units)
        mods.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        net = torch.nn.Sequential(*mods).train()
        weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
        others = [p for p in net.parameters() if all(p is not w for w in weights)]
        groups = ([{"params": weights, "weight_decay": variant.l2},
                   {"params": others}] if variant.l2 else net.parameters())
        opt = getattr(torch.optim, TORCH_OPTIMIZERS[variant.optimizer])(
            groups, **variant.hyper)
        loss_fn, target = losses[variant.loss], targets[variant.loss]
        gen = torch.Generator().manual_seed(0)

        def run(rows, epochs):
            times = []
            for _ in range(epochs):
                start = time.perf_counter()
                for idx in torch.randperm(rows, generator=gen).split(batch):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(net(Xt[idx]), target[idx]).backward()
                    if variant.clip_norm is not None:
                        torch.nn.utils.clip_grad_norm_(net.parameters(),
                                                       variant.clip_norm)
                    opt.step()
                times.append(time.perf_counter() - start)
            return times

        return run

    return {v.label: runner(v) for v in VARIANTS}


def interleave(runs, n_samples, batch, inner, epochs):
    """Warm each run up on a few minibatches, then give every run ``epochs``
    epochs per turn, ``inner`` turns round-robin; ``{label: epoch seconds}``."""
    for run in runs.values():
        run(min(n_samples, 4 * batch), 1)
    times = {label: [] for label in runs}
    for _ in range(inner):
        for label, run in runs.items():
            times[label] += run(n_samples, epochs)
    return times


def worker(impl, spec, inner, epochs, threads=None):
    """One process's measurement: every variant of ``impl`` (``fastnn`` or
    ``torch``) on the config ``spec``."""
    runs = {"fastnn": _fastnn_runs, "torch": _torch_runs}
    if impl not in runs:
        raise ValueError(f"impl: unknown implementation {impl!r}; "
                         f"valid: {', '.join(runs)}")
    return interleave(runs[impl](spec, threads), spec[0], spec[2], inner, epochs)


#: Runs this file as a worker in a fresh interpreter. Loaded by its path,
#: not imported as ``fastnn.bench_variants``, so that it also measures an
#: older fastnn on ``PYTHONPATH`` which does not have this module.
_LOADER = ("import importlib.util, sys; "
           "s = importlib.util.spec_from_file_location('_fastnn_variants', "
           "sys.argv[1]); m = importlib.util.module_from_spec(s); "
           "s.loader.exec_module(m); sys.exit(m.main(sys.argv[2:]))")


def _run_subprocess(**job):
    cmd = [sys.executable, "-c", _LOADER, os.path.abspath(__file__), "--worker",
           json.dumps(job)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return None, tail[0]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def run(configs, rounds=1, inner=3, epochs=None, compare=True, threads=None,
        out=None):
    """Measure every variant on every config; print the table (to ``out``,
    by default stdout) and return the results.

    Parameters
    ----------
    configs : dict
        ``{name: (n_samples, layer sizes, batch)}``.
    rounds : int
        Subprocess pairs (fastnn, then PyTorch) per config.
    inner : int
        Round-robin turns over the variants inside each subprocess.
    epochs : dict or None
        Epochs per turn by config name; :data:`VARIANT_EPOCHS`, else 1.
    compare : bool
        Also measure PyTorch, if installed.
    threads : int or None
        BLAS threads of fastnn and PyTorch's threads; None leaves fastnn's
        BLAS as it loads and gives PyTorch one thread per CPU.

    Each variant's figure is its best epoch (the least disturbed by the rest
    of the machine); the JSON keeps every epoch.
    """
    out = sys.stdout if out is None else out
    epochs = VARIANT_EPOCHS if epochs is None else epochs
    impls = ["fastnn"]
    skipped = None
    if not compare:
        skipped = "comparisons off (--no-compare)"
    elif not _available("torch"):
        skipped = "not installed"
    else:
        impls.append("torch")
    results = {}
    for name, spec in configs.items():
        spec = (int(spec[0]), [int(s) for s in spec[1]], int(spec[2]))
        times = {impl: {v.label: [] for v in VARIANTS} for impl in impls}
        failed = {}
        for _ in range(rounds):
            for impl in impls:
                if impl in failed:
                    continue
                got, err = _run_subprocess(impl=impl, spec=spec, inner=inner,
                                           epochs=epochs.get(name, 1),
                                           threads=threads)
                if got is None:
                    failed[impl] = f"failed: {err}"
                    continue
                for label, ts in got.items():
                    times[impl][label] += ts
        results[name] = _summarize(name, spec, times, failed, skipped)
    _print_table(results, out)
    return results


def _summarize(name, spec, times, failed, skipped):
    res = {"n_samples": spec[0], "layers": spec[1], "batch": spec[2],
           "skipped": {"torch": skipped} if skipped else dict(failed), "rows": {}}
    best = {impl: {label: min(ts) for label, ts in by.items() if ts}
            for impl, by in times.items() if impl not in failed}
    plain = best.get("fastnn", {}).get(VARIANTS[0].label)
    for v in VARIANTS:
        row = {"aim": v.aims.get(name)}
        for impl, by in best.items():
            if v.label in by:
                row[impl] = {"seconds_per_epoch": by[v.label],
                             "median": float(np.median(times[impl][v.label])),
                             "epochs": times[impl][v.label],
                             "ratio": by[v.label] / plain if plain else None}
        res["rows"][v.label] = row
    return res


def _cell(row, impl, aim=None):
    if impl not in row or row[impl]["ratio"] is None:
        return "-"
    ratio = row[impl]["ratio"]
    mark = " MISSED" if aim is not None and ratio > aim else ""
    return f"{ratio:.2f}{mark}"


def _print_table(results, out):
    names = list(results)
    head = ["variant"]
    for name in names:
        head += [name, f"PyTorch on {name}"]
    print("\n| " + " | ".join(head) + " |", file=out)
    print("|" + "---|" * len(head), file=out)
    for v in VARIANTS:
        cells = [v.label]
        for name in names:
            row = results[name]["rows"][v.label]
            cells += [_cell(row, "fastnn", row["aim"]), _cell(row, "torch")]
        print("| " + " | ".join(cells) + " |", file=out)
    print(file=out)
    for name in names:
        res = results[name]
        plain = res["rows"][VARIANTS[0].label]
        secs = ", ".join(f"{impl} {plain[impl]['seconds_per_epoch'] * 1e3:.1f} ms"
                         for impl in ("fastnn", "torch") if impl in plain)
        notes = "; ".join(f"{impl} {why}" for impl, why in res["skipped"].items())
        print(f"{name}: {res['n_samples']} x {res['layers'][0]}, layers "
              f"{'-'.join(map(str, res['layers']))}, batch {res['batch']}; "
              f"plain Dense + Adam per epoch: {secs}"
              + (f"; {notes}" if notes else ""), file=out)
    base = Variant("").aims
    special = "; ".join(f"{v.label.split(' ')[0].split('(')[0]} {aim} on {name}"
                        for v in VARIANTS for name, aim in v.aims.items()
                        if aim != base.get(name))
    print("MISSED: above the aim, "
          + ", ".join(f"{aim} on {name}" for name, aim in base.items())
          + (f" ({special})" if special else ""), file=out)
    out.flush()


def cpu_name():
    """The CPU's model name, family and model (the first processor of
    /proc/cpuinfo; else ``platform``'s name), with its widest vector
    extension where the flags are listed."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    extra = [f"family {fields['cpu family']}, model {fields['model']}"
             if "cpu family" in fields and "model" in fields else None,
             next((f.upper() for f in ("avx512f", "avx2", "avx", "asimd")
                   if f in flags), None)]
    extra = "; ".join(e for e in extra if e)
    return name + (f" ({extra})" if extra else "")


def build_description():
    """Which fastnn is measured: version, location and git commit if any."""
    import fastnn

    where = os.path.dirname(os.path.abspath(fastnn.__file__))
    try:
        commit = subprocess.run(["git", "-C", where, "log", "-1", "--format=%h %s"],
                                check=False, capture_output=True, text=True,
                                timeout=10)
        git = commit.stdout.strip() if commit.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        git = ""
    import fastnn._kernels

    build = getattr(fastnn._kernels, "BUILD", "unknown")  # older checkouts
    build += f", level {getattr(fastnn._kernels, 'LEVEL', 'baseline')}"
    return f"fastnn {fastnn.__version__} from {where}, {build} build" + (
        f" (git {git[:72]})" if git else "")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn bench --variants",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true",
                        help=f"one round, at most {QUICK_ROWS} rows (a few minutes)")
    parser.add_argument("--configs", default=None,
                        help=f"comma list of {', '.join(CONFIGS)} "
                             f"(default {','.join(VARIANT_EPOCHS)})")
    parser.add_argument("--rows", type=int, default=None,
                        help="at most this many training rows per config")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per turn (default: 10 on tiny, else 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="fastnn-then-PyTorch subprocess pairs per config "
                             "(default 2; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads of fastnn and PyTorch's threads (default: "
                             "fastnn's BLAS as it loads, PyTorch one per CPU)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-compare", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return 0
    names = ([c.strip() for c in args.configs.split(",") if c.strip()]
             if args.configs else list(VARIANT_EPOCHS))
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        raise ValueError(f"configs: unknown {unknown}; valid: {', '.join(CONFIGS)}")
    rounds = args.rounds if args.rounds is not None else 1 if args.quick else 2
    if args.threads is not None and importlib.util.find_spec("threadpoolctl") is None:
        raise ImportError("threads: pinning fastnn's BLAS needs threadpoolctl "
                          "(pip install threadpoolctl, or the bench extra)")
    rows = args.rows or (QUICK_ROWS if args.quick else None)
    for label, value in (("rounds", rounds), ("epochs", args.epochs),
                         ("rows", rows), ("threads", args.threads)):
        if value is not None and value < 1:
            raise ValueError(f"{label}: must be >= 1, got {value}")
    configs = {}
    for name in names:
        n, sizes, batch = CONFIGS[name]
        configs[name] = (min(n, rows or n), sizes, batch)
    epochs = ({name: args.epochs for name in names} if args.epochs
              else VARIANT_EPOCHS)
    from fastnn.ops import blas_report

    print(f"CPU: {cpu_name()}; {os.cpu_count()} CPUs")
    print(f"build: {build_description()}")
    for line in blas_report():
        print(line)
    threads = (f"{args.threads} thread(s)" if args.threads
               else "default threads")
    print(f"seconds per epoch / plain Dense + Adam in fastnn on the same config; "
          f"best epoch of {rounds} round(s) x 3 turns, variants round-robin; "
          f"{threads}; Gaussian data with random labels"
          + ("; fewer rows than the standard config, see below"
             if any(configs[c][0] < CONFIGS[c][0] for c in names) else ""))
    results = run(configs, rounds=rounds, inner=3, epochs=epochs,
                  compare=not args.no_compare, threads=args.threads)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
