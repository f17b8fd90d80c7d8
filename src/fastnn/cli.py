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
    from fastnn.losses import NAMES as LOSSES
    from fastnn.optimizers import OPTIMIZERS
    from fastnn.targets import TASKS

    parser = _Parser(prog="fastnn", description="Train, run and diagnose MLPs.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="train an MLP (default: the shipped digits)")
    t.add_argument("--data", default="digits",
                   help="digits, a .npz with X and y, X.npy,y.npy, or a .csv")
    t.add_argument("--label-column", default="-1",
                   help="CSV label column, by name or index (default: last)")
    t.add_argument("--header", action=argparse.BooleanOptionalAction,
                   default=None, help="the CSV's first row is (not) a header "
                   "(default: it is one when none of its cells is a number)")
    t.add_argument("--task", choices=TASKS, default="auto",
                   help="auto: regression for a numeric target with more than "
                   "20 distinct values, else classification")
    t.add_argument("--loss", choices=LOSSES, default=None,
                   help="default: cross_entropy (classification), mse (regression)")
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
    p.add_argument("--label-column", default=None,
                   help="a column to leave out (the model's own target column "
                   "is left out by name)")
    p.add_argument("--header", action=argparse.BooleanOptionalAction,
                   default=None, help="the CSV's first row is (not) a header")
    p.add_argument("--proba", action="store_true",
                   help="class probabilities, one column per class")
    p.add_argument("--out", default=None, help=".csv or .npy (default: CSV on stdout)")

    d = sub.add_parser("diagnose", help="vanishing/exploding gradient report")
    d.add_argument("--model", default=None)
    d.add_argument("--data", default=None)
    d.add_argument("--label-column", default="-1")
    d.add_argument("--header", action=argparse.BooleanOptionalAction,
                   default=None, help="the CSV's first row is (not) a header")
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
    b.add_argument("--rounds", type=int, default=None,
                   help="run the implementations in turn N times (steadier)")
    b.add_argument("--variants", action="store_true",
                   help="the variants table instead: each optimizer, penalty, "
                        "layer and loss against plain Dense+Adam")
    b.add_argument("--inference", action="store_true",
                   help="the inference table instead: predict beside "
                        "onnxruntime, torch and NumPy")
    b.add_argument("--threads", type=int, default=None,
                   help="with --variants: BLAS and PyTorch threads; with "
                        "--inference: onnxruntime's and torch's")
    b.add_argument("--rows", type=int, default=None,
                   help="with --variants or --inference: at most N rows per "
                        "config")
    return parser


def _check_plot_support(path):
    if path is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'fastnn-core[plot]'")


def _check_output_path(option, path):
    """Fail before training, not after it, when ``path`` cannot be written
    (the rules of :func:`fastnn.io.check_save_path`)."""
    from fastnn.io import check_save_path

    if path is not None:
        check_save_path(path, option)


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


def _fold_target_scaling(model, mean, std):
    """Fold ``t * std + mean`` into the last Dense layer (identity activation),
    so the model predicts targets in their own units: ``W' = std W``,
    ``b' = std b + mean``."""
    last = model.layers[-1]
    W, b = last.params["weight"], last.params["bias"]
    W *= std.astype(W.dtype)[:, None]
    b[...] = (b.astype(np.float64) * std + mean).astype(b.dtype)


def _prepare_targets(data, args):
    """Decide the task and loss, say so, and shape the targets.

    Returns ``(task, loss, classes, target, n_outputs, stratify_by)``.
    """
    from fastnn.targets import (
        DEFAULT_LOSS, check_task_loss, class_targets, encode_labels, infer_task,
        regression_targets,
    )

    task, reason = infer_task(data.y, args.task)
    loss = check_task_loss(task, args.loss or DEFAULT_LOSS[task])
    column = f" in {data.label_name!r}" if data.label_name else ""
    other = "regression" if task == "classification" else "classification"
    how = (f"auto: {reason}{column}; --task {other} to override"
           if args.task == "auto" else f"as --task {task} asks")
    print(f"task: {task} ({how}), loss: {loss}")
    if task == "classification":
        classes, indices = encode_labels(data.y)
        target, n_outputs = class_targets(indices, len(classes), loss)
        return task, loss, classes, target, n_outputs, indices
    target = regression_targets(data.y)
    return task, loss, None, target, target.shape[1], None


def _normal_interval(values):
    """95% normal-approximation interval of the mean of ``values``."""
    half = 1.959964 * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def _report_rows(model, task, X, truth, parts):
    """Summary rows: accuracy (with its Hoeffding interval on the test part)
    for classification; MSE, MAE and R² for regression. ``truth`` holds the
    labels or the targets, in their own units."""
    from fastnn.metrics import hoeffding_interval, hoeffding_t, regression_scores

    rows = []
    for name, idx in parts:
        if len(idx) == 0:
            rows.append((f"{name}", "- (no such split)"))
            continue
        if task == "classification":
            acc = float(np.mean(model.predict_classes(X[idx]) == truth[idx]))
            rows.append((f"{name} accuracy", f"{acc:.4f}"))
            if name == "test":
                low, high = hoeffding_interval(acc, len(idx), 0.05)
                rows.append(("test 95% Hoeffding interval",
                             f"[{low:.4f}, {high:.4f}] (n={len(idx)}, "
                             f"t={hoeffding_t(len(idx), 0.05):.4f})"))
        else:
            pred = model.predict(X[idx])
            scores = regression_scores(truth[idx], pred)
            rows.append((f"{name} MSE / MAE / R2",
                         f"{scores['mse']:.6g} / {scores['mae']:.6g} / "
                         f"{scores['r2']:.4f}"))
            if name == "test":
                if len(idx) > 1:
                    sq = np.square(pred.astype(np.float64) - truth[idx]).mean(1)
                    low, high = _normal_interval(sq)
                    rows.append(("test MSE 95% interval",
                                 f"[{low:.6g}, {high:.6g}] (normal approximation, "
                                 f"n={len(idx)})"))
                rows.append(("test Hoeffding interval",
                             "none: Hoeffding's bound needs a loss bounded in a "
                             "known range, and squared error is unbounded"))
    return rows


def cmd_train(args):
    import fastnn
    from fastnn._validation import check_array
    from fastnn.callbacks import EarlyStopping
    from fastnn.data import load_data
    from fastnn.model_selection import train_val_test_split

    _check_plot_support(args.plot)
    if not args.lr > 0:
        raise CLIError(f"--lr: the learning rate must be > 0, got {args.lr}")
    _check_output_path("--save", args.save)
    _check_output_path("--plot", args.plot)
    data = load_data(args.data, args.label_column, header=args.header)
    X = check_array("X", data.X, np.float64)
    if len(data.y) != len(X):
        raise CLIError(f"labels: {len(data.y)} labels for {len(X)} samples")
    task, loss, classes, target, n_outputs, strata = _prepare_targets(data, args)
    order = np.arange(len(X))
    tr, va, te, _, _, _ = train_val_test_split(
        order, strata if strata is not None else order, val_size=args.val_split,
        test_size=args.test_split, stratify=strata is not None, seed=args.seed)
    mean = X[tr].mean(axis=0)
    std = X[tr].std(axis=0)
    std[std == 0] = 1.0
    t_mean = t_std = None
    fit_target = target
    if task == "regression":
        t_mean = target[tr].mean(axis=0)
        t_std = target[tr].std(axis=0)
        t_std[t_std == 0] = 1.0
        fit_target = (target - t_mean) / t_std

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
    layers.append(fastnn.Dense(n_outputs, l2=args.l2))
    model = fastnn.Sequential(layers, input_dim=X.shape[1], dtype=args.dtype,
                              seed=args.seed)
    optimizer = fastnn.optimizers.get_optimizer(args.optimizer, lr=args.lr)
    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(patience=args.early_stopping))
    schedule = None if args.schedule == "none" else args.schedule
    what = (f"{len(classes)} classes" if task == "classification"
            else f"{n_outputs} target{'s' if n_outputs > 1 else ''}")
    print(f"data: {args.data}: {X.shape[0]} samples, {X.shape[1]} features, "
          f"{what}; train {len(tr)}, val {len(va)}, test {len(te)}")
    model.summary()
    validation = (scale(X[va]), fit_target[va]) if len(va) else None
    start = time.perf_counter()
    history = model.fit(scale(X[tr]), fit_target[tr], loss=loss,
                        optimizer=optimizer, epochs=args.epochs,
                        batch_size=args.batch_size, validation_data=validation,
                        callbacks=callbacks, lr_schedule=schedule,
                        verbose=0 if args.quiet else 1, seed=args.seed)
    elapsed = time.perf_counter() - start
    _fold_standardization(model, mean, std)
    if task == "regression":
        _fold_target_scaling(model, t_mean, t_std)
    model.classes = classes
    model.feature_names = data.feature_names
    model.target_name = data.label_name
    truth = classes[strata] if task == "classification" else target
    rows = _report_rows(model, task, X, truth, [("train", tr), ("validation", va), ("test", te)])
    epochs_run = len(history.history.get("loss", []))
    per_epoch = np.median(history.history["time"]) if epochs_run else float("nan")
    if history.stopped_epoch is not None:
        rows.append(("early stopping", f"stopped after epoch {history.stopped_epoch}"
                     + (f", restored epoch {history.restored_epoch}"
                        if history.restored_epoch is not None else "")))
    rows += [("epochs", str(epochs_run)),
             ("time per epoch", f"{per_epoch * 1e3:.1f} ms"),
             ("samples/s", f"{len(tr) / per_epoch:,.0f}"),
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


def _prediction_table(model, X, proba):
    """``(values, column names)`` of what ``fastnn predict`` writes."""
    name = model.target_name or "prediction"
    task = model.task
    if proba:
        if task != "classification":
            raise CLIError(f"--proba: the model is a {task or 'untrained'} model "
                           f"(loss {model.loss}); it gives values, not class "
                           "probabilities: drop --proba")
        values = model.predict_proba(X)
        if values.shape[1] == 1 and model.classes is not None:
            values = np.column_stack([1 - values[:, 0], values[:, 0]])
        classes = (model.classes if model.classes is not None
                   else range(values.shape[1]))
        return values, [str(c) for c in classes]
    if task == "classification":
        values = model.predict_classes(X)
    else:  # regression, or a model saved untrained: its raw outputs
        values = model.predict(X)
    if values.ndim == 2 and values.shape[1] > 1:
        return values, [f"{name}_{j}" for j in range(values.shape[1])]
    return values.reshape(len(values)), [name]


def cmd_predict(args):
    import fastnn
    from fastnn.data import load_features, table_extension, write_table

    if args.out:  # refused before any work, not after it
        _check_output_path("--out", args.out)
        table_extension(args.out, "--out")
    model = fastnn.load(args.model)
    X = load_features(args.data, model.feature_names,
                      ignore=(model.target_name,) if model.target_name else (),
                      label_column=args.label_column, header=args.header)
    if np.ndim(X) == 2 and X.shape[1] == model.input_dim + 1:
        raise CLIError(f"data: {X.shape[1]} columns for a model of "
                       f"{model.input_dim} features; if one of them is the label "
                       "column, leave it out with --label-column")
    values, columns = _prediction_table(model, X, args.proba)
    if args.out:
        write_table(args.out, values, columns)
        print(f"wrote {len(values)} predictions to {args.out}", file=sys.stderr)
    else:
        write_table(sys.stdout, values, columns)
    return 0


def cmd_diagnose(args):
    from fastnn import diagnostics

    _check_plot_support(args.plot)
    _check_output_path("--plot", args.plot)
    if args.model or args.data:
        if not (args.model and args.data):
            raise CLIError("diagnose: --model and --data go together")
        import fastnn
        from fastnn.data import load_data

        model = fastnn.load(args.model)
        data = load_data(args.data, args.label_column, header=args.header)
        X, y = data.X, data.y
        if model.feature_names and data.feature_names:
            from fastnn._validation import feature_columns

            X = X[:, feature_columns(f"data: {args.data}", data.feature_names,
                                     model.feature_names)]
        if model.classes is not None:
            from fastnn.targets import class_targets

            y, _ = class_targets(model.class_indices(y, "labels"),
                                 len(model.classes), model.loss)
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

    from fastnn._kernels import BUILD, BUILT_LEVELS, LEVEL, _blas

    print(f"fastnn {fastnn.__version__} (numpy {np.__version__})")
    print(f"kernels built for: {BUILD}")
    print(f"instruction-set level in use: {LEVEL} (built: {', '.join(BUILT_LEVELS)}; "
          f"this CPU: {_blas.cpu_level()}; FASTNN_CPU_LEVEL forces a lower one)")
    for line in blas_report():
        print(line)
    print(f"batch predict threads: {fastnn.get_num_threads()} (FASTNN_NUM_THREADS, "
          "fastnn.set_num_threads)")
    import importlib

    print("compiled kernels:")
    for name in ("_blas",) + KERNEL_MODULES:
        module = importlib.import_module(f"fastnn._kernels.{name}")
        print(f"  {name:<12} {module.__file__}")
    print("dtypes: float32 (default), float64")
    return 0


def cmd_bench(args):
    from fastnn.bench import main as bench_main
    from fastnn.bench_variants import main as variants_main

    if args.variants and args.inference:
        raise ValueError("inference: give --variants or --inference, not both")
    for name in ("threads", "rows"):
        if getattr(args, name) is not None and not (args.variants
                                                    or args.inference):
            raise ValueError(f"{name}: only with --variants or --inference")
    if args.inference:
        for name in ("configs", "epochs", "json", "rounds"):
            if getattr(args, name) is not None:
                raise ValueError(f"{name}: not with --inference")
        from fastnn.bench_inference import main as inference_main

        argv = ["--quick"] if args.quick else []
        for name in ("threads", "rows"):
            if getattr(args, name) is not None:
                argv += [f"--{name}", str(getattr(args, name))]
        return inference_main(argv)
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
    if args.rounds is not None:
        argv += ["--rounds", str(args.rounds)]
    for name in ("threads", "rows"):
        if getattr(args, name) is not None:
            argv += [f"--{name}", str(getattr(args, name))]
    return (variants_main if args.variants else bench_main)(argv)


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
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"fastnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"fastnn {args.command}: error: out of memory ({exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
