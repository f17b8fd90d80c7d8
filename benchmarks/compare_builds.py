"""The portable build (the wheel's) against a native build, in one run.

Each build is a folder holding a ``fastnn`` package (an installed
site-packages, or a source tree built in place); every measurement runs in a
subprocess with that folder first on ``PYTHONPATH``, the builds alternating
round by round so that a busy spell of the machine hits both. Two tables:

- every kernel of ``run_kernels.py`` (its Cython side), portable / native;
- seconds per epoch of the training configs (plain Dense+Adam, as ``fastnn
  bench``), portable / native.

    python benchmarks/compare_builds.py --native /path/a --portable /path/b
    python benchmarks/compare_builds.py ... --quick

A ratio above 1 is the portable build being slower. The portable build runs
the instruction-set level its kernels choose on this CPU (``fastnn info``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

#: One training config's seconds per epoch (best of the timed epochs).
TRAIN = """
import json, sys, time, numpy as np, fastnn, fastnn._kernels as k
rows, d, h, o, batch, epochs = (int(v) for v in sys.argv[1:7])
rng = np.random.default_rng(0)
X = rng.standard_normal((rows, d)).astype(np.float32)
y = rng.integers(0, o, rows)
model = fastnn.Sequential([fastnn.Dense(h, "relu"), fastnn.Dense(o)], input_dim=d,
                          seed=0)
opt = fastnn.Adam()
model.fit(X, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0, seed=0)
best = min(model.fit(X, y, optimizer=opt, epochs=1, batch_size=batch, verbose=0,
                     seed=e).history["time"][0] for e in range(epochs))
print(json.dumps({"seconds": best, "level": k.LEVEL, "build": k.BUILD}))
"""

CONFIGS = {"tiny 64-32-10, batch 32": (1797, 64, 32, 10, 32),
           "small 784-128-10, batch 128": (60000, 784, 128, 10, 128)}


def _env(folder, threads):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [folder] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                    if p]))
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def _kernels(folder, quick, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "k.json")
        cmd = [sys.executable, os.path.join(HERE, "run_kernels.py"), "--json", out,
               "--threads", str(threads), "--no-check"] + (["--quick"] if quick
                                                          else [])
        subprocess.run(cmd, env=_env(folder, threads), check=True,
                       capture_output=True, text=True)
        with open(out, encoding="utf-8") as fh:
            return {case: v["cython"] for case, v in json.load(fh).items()}


def _train(folder, config, epochs, threads):
    args = [str(v) for v in config] + [str(epochs)]
    proc = subprocess.run([sys.executable, "-c", TRAIN] + args,
                          env=_env(folder, threads), check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", required=True,
                        help="folder holding the native build's fastnn package")
    parser.add_argument("--portable", required=True,
                        help="folder holding the portable build's fastnn package")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="run_kernels --quick, 3 timed epochs, 1 round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    epochs = 3 if args.quick else 5
    builds = {"native": args.native, "portable": args.portable}
    kernels = {b: {} for b in builds}
    train = {b: {} for b in builds}
    info = {}
    for r in range(rounds):
        for b in (builds if r % 2 == 0 else list(builds)[::-1]):
            for case, t in _kernels(builds[b], args.quick, args.threads).items():
                kernels[b][case] = min(t, kernels[b].get(case, t))
            for name, config in CONFIGS.items():
                res = _train(builds[b], config, epochs, args.threads)
                info[b] = f"{res['build']}; level {res['level']}"
                train[b][name] = min(res["seconds"], train[b].get(name, 1e9))
            print(f"round {r + 1}: {b} done", file=sys.stderr, flush=True)
    print(f"{_cpu()}; {args.threads} thread(s); best of {rounds} round(s)")
    for b in builds:
        print(f"- {b}: {builds[b]} ({info[b]})")
    print("\n| kernel (cython) | native us | portable us | portable / native |")
    print("|---|---|---|---|")
    worst = 0.0
    for case in kernels["native"]:
        n, p = kernels["native"][case], kernels["portable"].get(case)
        if p is None:
            continue
        worst = max(worst, p / n)
        print(f"| {case} | {n * 1e6:.1f} | {p * 1e6:.1f} | {p / n:.3f} |")
    print("\n| training config | native s/epoch | portable s/epoch | portable / native |")
    print("|---|---|---|---|")
    for name in CONFIGS:
        n, p = train["native"][name], train["portable"][name]
        worst = max(worst, p / n)
        print(f"| {name} | {n:.4f} | {p:.4f} | {p / n:.3f} |")
    print(f"\nworst ratio: {worst:.3f} (aim: 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
