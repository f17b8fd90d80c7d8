"""The ``fastnn`` command: train, predict, diagnose, info, bench."""

import argparse
import os
import sys
import time

import numpy as np


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class CLIError(Exception):
    pass


def _hidden(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128,64, got {text!r}")
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("layer sizes must be >= 1")
    return sizes


def _build_parser():
    from fastnn import __version__
    from fastnn.activations import NAMES as ACTIVATIONS
    from fastnn.initializers import INITIALIZERS
    from fastnn.optimizers import OPTIMIZERS

    parser = _Parser(prog="fastnn", description="Train, run and diagnose MLPs.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train an MLP (default: the shipped digits)")
    t.add_argument("--data", default="digits",
                   help="digits, a .npz with X and y, X.npy,y.npy, or a .csv")
    t.add_argument("--label-column", default="-1",
                   help="CSV label column, by name or index (default: last)")
    t.add_argument("--hidden", type=_hidden, default=[128, 64],
                   help="hidden layer sizes, e.g. 128,64")
    t.add_argument("--activation", default="relu", choices=ACTIVATIONS)
    t.add_argument("--init", default="auto", choices=("auto",) + INITIALIZERS)
    t.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--batchnorm", action="store_true")
    t.add_argument("--l2", type=float, default=0.0)
    t.add_argument("--schedule", choices=("none", "step", "cosine", "plateau"),
                   default="none")
    t.add_argument("--early-stopping", type=int, nargs="?", const=5, default=None,
                   metavar="PATIENCE")
    t.add_argument("--val-split", type=float, default=0.1)
    t.add_argument("--test-split", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--save", default="fastnn-model.safetensors", metavar="PATH")
    t.add_argument("--plot", default=None, metavar="PATH",
                   help="write loss/accuracy curves as PNG (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("predict", help="predict with a saved model")
    p.add_argument("model")
    p.add_argument("data", help=".npz (X), .npy or .csv (features only, or use "
                   "--label-column to drop a label column)")
    p.add_argument("--label-column", default=None)
    p.add_argument("--proba", action="store_true")
    p.add_argument("--out", default=None, help=".csv or .npy (default: CSV on stdout)")

    d = sub.add_parser("diagnose", help="vanishing/exploding gradient report")
    d.add_argument("--model", default=None)
    d.add_argument("--data", default=None)
    d.add_argument("--label-column", default="-1")
    d.add_argument("--depth", type=int, default=10)
    d.add_argument("--width", type=int, default=500)
    d.add_argument("--samples", type=int, default=500)
    d.add_argument("--plot", default=None, metavar="PATH")
    d.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("export-onnx", help="write a saved model as ONNX "
                       "(needs the onnx extra)")
    e.add_argument("model")
    e.add_argument("out", help="the .onnx file to write")
    e.add_argument("--link", action="store_true",
                   help="output probabilities (the training loss's link)")

    sub.add_parser("info", help="version, BLAS, kernels, dtypes")

    b = sub.add_parser("bench", help="training-speed benchmark vs the GEMM roofline")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--configs", default=None, help="comma list: tiny,small,medium,wide")
    b.add_argument("--epochs", type=int, default=None)
    b.add_argument("--json", default=None, metavar="PATH")
    b.add_argument("--no-compare", action="store_true",
                   help="skip PyTorch and scikit-learn")
    b.add_argument("--rounds", type=int, default=1,
                   help="run the implementations in turn N times (steadier)")
    return parser


def _check_plot_support(path):
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'fastnn-core[plot]'")


def _check_output_path(option, path):
    """Fail before training, not after it, when ``path`` cannot be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{option}: {path} is a directory")
    if not os.path.isdir(folder):
        raise CLIError(f"{option}: no such directory: {folder}")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option}: cannot write to {folder}")


def _split(X, y, args):
    from fastnn.model_selection import train_val_test_split

    return train_val_test_split(X, y, val_size=args.val_split,
                                test_size=args.test_split, stratify=True,
                                seed=args.seed)


def _fold_standardization(model, mean, std):
    """Fold ``(x - mean) / std`` into the first Dense layer so the saved model
    takes raw features: ``W' = W / std``, ``b' = b - W' @ mean``."""
    first = model.layers[0]
    W = first.params["weight"]
    W /= std.astype(W.dtype)
    first.params["bias"] -= (W.astype(np.float64) @ mean).astype(W.dtype)


def cmd_train(args):
    import fastnn
    from fastnn._validation import check_array, check_labels
    from fastnn.callbacks import EarlyStopping
    from fastnn.data import load_data
    from fastnn.metrics import hoeffding_interval, hoeffding_t

    _check_plot_support(args.plot)
    if not args.lr > 0:
        raise CLIError(f"--lr: the learning rate must be > 0, got {args.lr}")
    _check_output_path("--save", args.save)
    _check_output_path("--plot", args.plot)
    X, y = load_data(args.data, args.label_column)
    X = check_array("X", X, np.float64)
    y = check_labels("labels", y, X.shape[0])
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise CLIError("labels: need at least two classes")
    Xtr, Xval, Xte, ytr, yval, yte = _split(X, y, args)
    mean = Xtr.mean(axis=0)
    std = Xtr.std(axis=0)
    std[std == 0] = 1.0

    def scale(A):
        return (A - mean) / std

    layers = []
    for units in args.hidden:
        layers.append(fastnn.Dense(units, args.activation, init=args.init,
                                   l2=args.l2))
        if args.batchnorm:
            layers.append(fastnn.BatchNorm())
        if args.dropout:
            layers.append(fastnn.Dropout(args.dropout))
    layers.append(fastnn.Dense(n_classes, l2=args.l2))
    model = fastnn.Sequential(layers, input_dim=X.shape[1], dtype=args.dtype,
                              seed=args.seed)
    optimizer = fastnn.optimizers.get_optimizer(args.optimizer, lr=args.lr)
    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(patience=args.early_stopping))
    schedule = None if args.schedule == "none" else args.schedule
    print(f"data: {args.data}: {X.shape[0]} samples, {X.shape[1]} features, "
          f"{n_classes} classes; train {len(Xtr)}, val {len(Xval)}, test {len(Xte)}")
    model.summary()
    validation = (scale(Xval), yval) if len(Xval) else None
    start = time.perf_counter()
    history = model.fit(scale(Xtr), ytr, loss="softmax_cross_entropy",
                        optimizer=optimizer, epochs=args.epochs,
                        batch_size=args.batch_size, validation_data=validation,
                        callbacks=callbacks, lr_schedule=schedule,
                        verbose=0 if args.quiet else 1, seed=args.seed)
    elapsed = time.perf_counter() - start
    _fold_standardization(model, mean, std)
    train_acc = model.evaluate(Xtr, ytr)["accuracy"]
    val_acc = (f"{model.evaluate(Xval, yval)['accuracy']:.4f}" if len(Xval)
               else "- (no validation split)")
    rows = [("train accuracy", f"{train_acc:.4f}"),
            ("validation accuracy", val_acc)]
    if len(Xte):
        test_acc = model.evaluate(Xte, yte)["accuracy"]
        low, high = hoeffding_interval(test_acc, len(Xte), 0.05)
        rows += [("test accuracy", f"{test_acc:.4f}"),
                 ("test 95% Hoeffding interval",
                  f"[{low:.4f}, {high:.4f}] (n={len(Xte)}, "
                  f"t={hoeffding_t(len(Xte), 0.05):.4f})")]
    epochs_run = len(history.history.get("loss", []))
    per_epoch = np.median(history.history["time"]) if epochs_run else float("nan")
    rows += [("epochs", str(epochs_run)),
             ("time per epoch", f"{per_epoch * 1e3:.1f} ms"),
             ("samples/s", f"{len(Xtr) / per_epoch:,.0f}"),
             ("total fit time", f"{elapsed:.2f} s")]
    model.save(args.save)
    rows.append(("model saved to", args.save))
    if args.plot:
        _plot_history(history, args.plot)
        rows.append(("curves plotted to", args.plot))
    width = max(len(k) for k, _ in rows)
    print("\nsummary")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0


def _plot_history(history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = history.history
    epochs = np.arange(1, len(h["loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, h["loss"], label="train")
    if "val_loss" in h:
        a.plot(epochs, h["val_loss"], label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    if "accuracy" in h:
        b.plot(epochs, h["accuracy"], label="train")
    if "val_accuracy" in h:
        b.plot(epochs, h["val_accuracy"], label="validation")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)


def cmd_predict(args):
    import fastnn
    from fastnn.data import load_data, save_predictions

    model = fastnn.load(args.model)
    X, _ = load_data(args.data, args.label_column, need_labels=False)
    if args.proba:
        values = model.predict_proba(X)
    else:
        values = model.predict_classes(X)
    if args.out:
        save_predictions(args.out, values)
        print(f"wrote {len(values)} predictions to {args.out}", file=sys.stderr)
    else:
        fmt = "%d" if values.dtype.kind in "iu" else "%.8g"
        np.savetxt(sys.stdout, values.reshape(len(values), -1), delimiter=",",
                   fmt=fmt)
    return 0


def cmd_diagnose(args):
    from fastnn import diagnostics

    _check_plot_support(args.plot)
    if args.model or args.data:
        if not (args.model and args.data):
            raise CLIError("diagnose: --model and --data go together")
        import fastnn
        from fastnn.data import load_data

        model = fastnn.load(args.model)
        X, y = load_data(args.data, args.label_column)
        rows = diagnostics.layer_stats(model, X, y, keep_values=bool(args.plot))
        results = {args.model: diagnostics.summarize(rows)}
    else:
        if args.depth < 2 or args.width < 1 or args.samples < 2:
            raise CLIError("diagnose: need --depth >= 2, --width >= 1, --samples >= 2")
        print(f"Gaussian input, {args.depth} hidden layers of {args.width} units, "
              f"{args.samples} samples (Glorot & Bengio, 2010)\n")
        results = diagnostics.depth_experiment(args.depth, args.width, args.samples,
                                               seed=args.seed,
                                               keep_values=bool(args.plot))
    print(diagnostics.format_report(results))
    if args.plot:
        diagnostics.plot_histograms(results, args.plot)
        print(f"histograms written to {args.plot}")
    return 0


def cmd_export_onnx(args):
    import fastnn

    model = fastnn.load(args.model)
    model.to_onnx(args.out, link=args.link)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_info(args):
    import fastnn
    from fastnn._kernels import KERNEL_MODULES
    from fastnn.ops import blas_report

    print(f"fastnn {fastnn.__version__} (numpy {np.__version__})")
    for line in blas_report():
        print(line)
    import importlib

    print("compiled kernels:")
    for name in ("_blas",) + KERNEL_MODULES:
        module = importlib.import_module(f"fastnn._kernels.{name}")
        print(f"  {name:<12} {module.__file__}")
    print("dtypes: float32 (default), float64")
    return 0


def cmd_bench(args):
    from fastnn.bench import main as bench_main

    argv = []
    if args.quick:
        argv.append("--quick")
    if args.configs:
        argv += ["--configs", args.configs]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.json:
        argv += ["--json", args.json]
    if args.no_compare:
        argv.append("--no-compare")
    argv += ["--rounds", str(args.rounds)]
    return bench_main(argv)


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "diagnose": cmd_diagnose,
            "info": cmd_info, "bench": cmd_bench, "export-onnx": cmd_export_onnx}


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (``fastnn predict ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CLIError, ValueError, TypeError, OSError, ImportError,
            FloatingPointError) as exc:
        # FloatingPointError: fit's TrainingDivergedError, which says what to do
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"fastnn {args.command}: error: out of memory ({exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
