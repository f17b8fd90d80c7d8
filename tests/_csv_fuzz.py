"""Bad CSV files through ``fastnn train`` and ``fastnn predict``.

Run as ``python _csv_fuzz.py N SEED DIR``: writes N random, mostly damaged CSV
files into DIR and runs each through the command line's ``main`` in this
process. Every run must end with exit code 0, or 2 with exactly one line on
stderr that starts ``fastnn <command>: error:``; anything else (an exception
escaping ``main``, a traceback, a second line) is printed as a finding. The
parent test runs this in a subprocess, so a crash fails it too.
"""

import contextlib
import io
import json
import os
import random
import sys

CELLS = ["0", "1", "-1", "2.5", "1e3", "-0", "3", "", " ", "x", "nan", "inf",
         "-inf", "1e400", "0x10", "1,5", '"1"', '"a,b"', '"', "a\"b", "1 2",
         "True", "é", "\u00a0", "1_000", "+5", ".5", "5.", "--1", "\t"]


def random_csv(rng):
    n_rows = rng.choice([0, 1, 2, 3, 5, 20, 60])
    n_cols = rng.choice([1, 2, 3, 5])
    numeric = rng.random() < 0.6
    rows = []
    if rng.random() < 0.5:
        rows.append([rng.choice(["a", "b", "", "label", "Unnamed: 0", "1", "a"])
                     for _ in range(n_cols)])
    for r in range(n_rows):
        row = []
        for c in range(n_cols):
            if numeric and rng.random() < 0.9:
                row.append(f"{rng.gauss(0, 1):.3f}" if c < n_cols - 1
                           else str(r % rng.choice([1, 2, 3])))
            else:
                row.append(rng.choice(CELLS))
        if rng.random() < 0.05:
            row = row[:-1] or ["1"]
        rows.append(row)
    delimiter = rng.choice([",", ",", ";", "\t", " "])
    text = "\n".join(delimiter.join(row) for row in rows)
    if rng.random() < 0.2:
        text = "\ufeff" + text
    if rng.random() < 0.3:
        text += "\n"
    data = text.encode("utf-8")
    if rng.random() < 0.1 and data:  # damaged bytes, invalid UTF-8, NUL
        pos = rng.randrange(len(data))
        data = data[:pos] + rng.choice([b"\xff", b"\x00", b"\xc3", b"\r"]) + data[pos:]
    if rng.random() < 0.05:
        data = data[:rng.randrange(len(data) + 1)]
    return data


def run(argv):
    from fastnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - every escape is a finding
        return f"{type(exc).__name__}: {exc}"
    lines = err.getvalue().strip().splitlines()
    if code == 0:
        return None
    if code == 2 and len(lines) == 1 and lines[0].startswith(
        f"fastnn {argv[0]}: error:"
    ) and "Traceback" not in err.getvalue():
        return None
    return f"exit {code}, stderr {err.getvalue()[:300]!r}"


def main(n, seed, folder):
    rng = random.Random(seed)
    model = os.path.join(folder, "m.safetensors")
    good = os.path.join(folder, "good.csv")
    with open(good, "w") as fh:
        fh.write("a,b,label\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n"
                                         for i in range(40)))
    assert run(["train", "--data", good, "--epochs", "1", "--quiet",
                "--hidden", "4", "--save", model]) is None
    findings = []
    for i in range(n):
        path = os.path.join(folder, f"c{i}.csv")
        with open(path, "wb") as fh:
            fh.write(random_csv(rng))
        save = os.path.join(folder, "t.safetensors")
        for argv in (["train", "--data", path, "--epochs", "1", "--quiet",
                      "--hidden", "4", "--val-split", "0", "--test-split", "0",
                      "--save", save],
                     ["predict", model, path]):
            problem = run(argv)
            if problem:
                with open(path, "rb") as fh:
                    findings.append({"argv": argv[:1], "csv": fh.read()[:400]
                                     .decode("latin-1"), "problem": problem})
    print(json.dumps({"cases": n, "findings": findings}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
