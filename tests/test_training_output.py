"""What fit shows: the progress bar, the epoch lines and EarlyStopping's report."""

import os
import re
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import fastnn
from _child import child_env
from fastnn.datasets import load_digits


#: One fit on the shipped digits, in a child.
FIT = """
import fastnn
from fastnn.datasets import load_digits
X, y = load_digits()
model = fastnn.Sequential([fastnn.Dense(32, "relu"), fastnn.Dense(10)], seed=0)
model.fit(X / 16.0, y, epochs={epochs}, batch_size=32, seed=0,
          verbose={verbose})
"""

EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) - loss \d+\.\d{4} - accuracy "
                        r"\d\.\d{4} - lr 0\.001 - \d+\.\d\ds")


def _env():
    return child_env()


def _digits():
    X, y = load_digits()
    return X / 16.0, y


def _model():
    return fastnn.Sequential([fastnn.Dense(64, "relu"), fastnn.Dense(10)], seed=0)


@pytest.mark.parametrize("merged", [False, True], ids=["stderr-apart", "2>&1"])
def test_piped_output_is_one_clean_line_per_epoch(merged):
    # As under `2>&1 | tee log` or in a job's log: no bar, no blank line, no
    # carriage return.
    proc = subprocess.run(
        [sys.executable, "-c", FIT.format(epochs=3, verbose=1)], env=_env(),
        timeout=120, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "\r" not in out
    lines = out.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == 3, out
    for i, line in enumerate(lines, 1):
        match = EPOCH_LINE.fullmatch(line)
        assert match and match.groups() == (str(i), "3"), line
    if not merged:
        assert proc.stderr == b""


def _run_in_pty(code, columns=100, timeout=120, stdout_pipe=False):
    """Run ``code`` in a child whose stderr (and stdout, unless
    ``stdout_pipe``) is a pseudo-terminal of ``columns`` columns; return what
    it wrote to the terminal, and with ``stdout_pipe`` also to stdout."""
    pty = pytest.importorskip("pty")
    import fcntl
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    # A new pty is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE if stdout_pipe else slave,
                            stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        piped = proc.stdout.read().decode() if stdout_pipe else None
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, text
    return (text, piped) if stdout_pipe else text


def test_terminal_shows_the_bar_even_for_a_fast_epoch():
    # One epoch of digits takes milliseconds, less than the bar's refresh
    # interval: the bar is still drawn complete, with its loss, before the
    # epoch's line replaces it.
    out = _run_in_pty(FIT.format(epochs=1, verbose=1))
    n_steps = -(-1797 // 32)
    bar = re.search(rf"epoch 1/1: 100%\|[^\r\n]*\| {n_steps}/{n_steps} "
                    r"\[[^\]]*loss=\d\.\d{4}\]", out)
    assert bar, repr(out)
    assert out.count("\n") == 1  # one line in the terminal as well
    # what stays on screen: the epoch's line, written over the erased bar
    assert EPOCH_LINE.fullmatch(out.rstrip("\r\n").split("\r")[-1]), repr(out)


def test_tee_keeps_the_log_clean_and_the_bar_on_the_terminal():
    # `fit | tee log`: stdout is a pipe, stderr still the terminal.
    terminal, log = _run_in_pty(FIT.format(epochs=2, verbose=1), stdout_pipe=True)
    assert "epoch 2/2: 100%|" in terminal
    lines = log.split("\n")
    assert lines[-1] == "" and len(lines) == 3, repr(log)
    assert all(EPOCH_LINE.fullmatch(line) for line in lines[:2]), repr(log)


def test_verbose_2_and_0_draw_no_bar_on_a_terminal():
    for verbose, n_lines in ((2, 1), (0, 0)):
        out = _run_in_pty(FIT.format(epochs=1, verbose=verbose))
        assert "%|" not in out
        assert out.count("\n") == n_lines


@pytest.fixture(scope="module")
def stopped():
    """A fit that early stopping really stops, and its printed lines."""
    X, y = _digits()
    model = _model()
    stopper = fastnn.EarlyStopping(patience=2)
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        history = model.fit(X, y, optimizer=fastnn.Adam(lr=0.01), epochs=100,
                            validation_split=0.2, callbacks=[stopper], verbose=2,
                            seed=0)
    return model, history, buf.getvalue().splitlines()


def test_early_stopping_records_and_prints_where_it_stopped(stopped):
    _, history, lines = stopped
    val = history.history["val_loss"]
    n_run = len(val)
    assert n_run < 100  # it really stopped
    best = int(np.argmin(val)) + 1
    assert history.stopped_epoch == n_run
    assert history.restored_epoch == best
    assert history.stopped_epoch == best + 2  # patience epochs after the best
    assert [ln for ln in lines if ln.startswith("epoch ")] == lines[:n_run]
    assert lines[n_run:] == [
        f"EarlyStopping: stopped after epoch {n_run} of 100: val_loss has not "
        "improved for 2 epochs",
        f"EarlyStopping: restored the weights of epoch {best}, the best "
        f"(val_loss {val[best - 1]:.4f})",
    ]


def test_early_stopping_restores_the_best_epochs_weights(stopped):
    # Oracle: the same fit run for exactly the best epoch's number of epochs.
    model, history, _ = stopped
    X, y = _digits()
    rerun = _model()
    again = rerun.fit(X, y, optimizer=fastnn.Adam(lr=0.01),
                      epochs=history.restored_epoch, validation_split=0.2,
                      verbose=0, seed=0)
    assert again.history["val_loss"] == history.history["val_loss"][
        :history.restored_epoch]
    for a, b in zip(model.get_weights(), rerun.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_history_fields_when_early_stopping_does_not_stop():
    X, y = _digits()
    stopper = fastnn.EarlyStopping(patience=1000)
    history = _model().fit(X, y, optimizer=fastnn.Adam(lr=0.01), epochs=12,
                           validation_split=0.2, callbacks=[stopper], verbose=0,
                           seed=0)
    assert history.stopped_epoch is None
    best = int(np.argmin(history.history["val_loss"])) + 1
    # the best epoch's weights are put back, unless training ended on them
    assert history.restored_epoch == (best if best < 12 else None)
    assert best < 12  # this fit over-fits, so the case is the restoring one
    plain = _model().fit(X, y, epochs=1, verbose=0)
    assert plain.stopped_epoch is None and plain.restored_epoch is None
    assert plain.params == {"epochs": 1, "verbose": 0}


def test_early_stopping_without_validation_data_warns_when_quiet():
    X, y = _digits()
    with pytest.warns(UserWarning, match="no validation data, so monitor="
                      "'val_loss' watches 'loss' on the training data") as rec:
        _model().fit(X, y, epochs=1, verbose=0,
                     callbacks=[fastnn.EarlyStopping()])
    assert len(rec) == 1
    assert rec[0].filename == __file__  # it points at the fit call


def test_early_stopping_without_validation_data_says_so_first(capsys):
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(X, y, epochs=2, verbose=2,
                     callbacks=[fastnn.EarlyStopping(monitor="val_accuracy")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("EarlyStopping: no validation data, so monitor="
                        "'val_accuracy' watches 'accuracy' on the training data; "
                        "give validation_data or validation_split to stop on "
                        "held-out data")
    assert [ln.split(" - ")[0] for ln in lines[1:]] == ["epoch 1/2", "epoch 2/2"]


def test_early_stopping_with_validation_data_says_nothing_extra(capsys):
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = _model().fit(X, y, epochs=2, verbose=2, validation_split=0.2,
                               callbacks=[fastnn.EarlyStopping()])
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" - ")[0] for ln in lines] == ["epoch 1/2", "epoch 2/2"]
    assert history.stopped_epoch is None and history.restored_epoch is None


def test_cli_train_reports_early_stopping(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn.cli", "train", "--hidden", "32",
         "--lr", "0.01", "--epochs", "60", "--early-stopping", "2", "--save",
         str(tmp_path / "m.safetensors")], env=_env(), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert len(epochs) < 60
    val = [float(ln.split("val_loss ")[1].split()[0]) for ln in epochs]
    best = int(np.argmin(val)) + 1
    i = lines.index(epochs[-1])
    assert lines[i + 1:i + 3] == [
        f"EarlyStopping: stopped after epoch {len(epochs)} of 60: val_loss has not "
        "improved for 2 epochs",
        f"EarlyStopping: restored the weights of epoch {best}, the best "
        f"(val_loss {val[best - 1]:.4f})",
    ]


class _NoTerminal:
    """A stream that is no terminal, as a file or a pipe."""

    def __init__(self):
        self.text = []

    def write(self, s):
        self.text.append(s)

    def flush(self):
        pass

    def isatty(self):
        return False


class _KernelStream(_NoTerminal):
    """Stands for a Jupyter kernel's stderr: no terminal, yet it shows bars."""


_KernelStream.__module__ = "ipykernel.iostream"


@pytest.mark.parametrize("stream, drawn", [(_KernelStream, True),
                                           (_NoTerminal, False)])
def test_a_jupyter_kernel_still_gets_the_bar(monkeypatch, stream, drawn):
    stream = stream()
    monkeypatch.setattr(sys, "stderr", stream)
    X, y = _digits()
    _model().fit(X, y, epochs=1, seed=0)
    n_steps = -(-len(X) // 32)
    assert (f"{n_steps}/{n_steps}" in "".join(stream.text)) == drawn
    assert drawn or stream.text == []
