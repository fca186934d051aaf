"""Simulated rounds at datacenter sizes: milliseconds per round and peak memory against n.

Run:  python benchmarks/scale.py [--quick] [--ns 1024,4096] [--schemes frc,rbgc]
      (writes benchmarks/results/scale.md and scale.png)

Workload (the public API only): ``gc.training.train(problem, scheme, rounds=5,
backend="simulated", delays="exponential")`` on logistic regression with 20 samples per
partition and 20 features (k partitions, one per worker unless the code says otherwise).
Schemes, n in {1,024, 4,096, 16,384, 65,536, 100,000}:

- ``frc``: fractional repetition, s = 3, ``frc_group`` decoding, wait until decodable.
- ``cyclic``: cyclic repetition GC(n, 3), ``exact`` decoding (least squares), wait until
  decodable; reported where it finishes within the time limit.
- ``rbgc``: regularized Bernoulli, k = n, d = 4, first r = n - n / 10 responders,
  ``optimal`` decoding.
- ``graph``: graph scheme on k = n / 2 blocks, degree 4 (n edges = workers), first r,
  ``graph`` decoding.
- ``nested``: nested cyclic code with levels (0, 1, 3), its own protocol.

Every (scheme, n) runs in its own subprocess under ``resource.setrlimit(RLIMIT_AS)`` so
that a blow-up ends that run only. Inside it the problem's gradient methods
(``partition_gradients``, ``full_gradient``) are wrapped with timers: "gradient" is the
time spent in them, "master" is the rest of the round (waiting, decoding, bookkeeping,
the optimiser step, history). Round 0 builds the decoder's caches and is reported apart;
the per-round numbers are medians of rounds 1..R-1. Peak memory is the peak resident set
of the subprocess (``ru_maxrss``, includes the interpreter, NumPy and SciPy: about
100 MiB) and its increase over the RSS after data generation.

Cost model (per round, n workers, k ~ n partitions, m samples each, dim features):
gradient O(k m dim) (all partitions every round in the simulated backend, one sparse
product); waiting O(n log n) (sorting n arrival times, then the wait policy's stopping
point over the sorted arrivals in one vectorised call: counts, first covers, O(log n)
decodability checks); decoding O(n) for ``frc_group`` and ``graph``, O(iterations * nnz)
for ``optimal``/``exact`` with CGLS (nnz ~ n d, iterations roughly flat in n for random
codes); bookkeeping O(n) (for the plain round a few NumPy passes plus one Python lookup per
worker with a nonzero decoding weight); the nested protocol handles O(n) beacon events
one by one in Python. So every column should grow about linearly (slope 1 in the log-log
fit, up to the n log n sort); the table gives the fitted slope per scheme.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT_MD = HERE / "results" / "scale.md"
OUT_PNG = HERE / "results" / "scale.png"
NS = [1024, 4096, 16384, 65536, 100_000]
SCHEMES = ["frc", "cyclic", "rbgc", "graph", "nested"]
SAMPLES, DIM, ROUNDS = 20, 20, 5
MEM_LIMIT = 8 * 2**30                   # address-space cap per run (bytes)
TIME_LIMIT = 240                        # seconds per run
# largest n run per scheme on this machine: the cyclic code's exact decoding is a dense
# least-squares solve per check (O(n^3) at n = 4,096 is minutes for 5 rounds); the nested
# protocol streams every worker's beacons through Python (O(n) events per round, ~0.15 s
# at n = 1,024 once NestedMaster.possible() is cached; 3.5 s before)
MAX_N = {"cyclic": 1024, "nested": 16384}


# --------------------------------------------------------------------------- child
def _scheme(gc, name: str, n: int):
    r = n - n // 10
    if name == "frc":
        return gc.training.Scheme(gc.codes.fractional_repetition(n=n, s=3), "frc_group",
                                  gc.training.until_decodable())
    if name == "cyclic":
        return gc.training.exact(gc.codes.cyclic_repetition(n=n, s=3, seed=0))
    if name == "rbgc":
        return gc.training.approximate(gc.codes.regularized_bernoulli(n=n, k=n, d=4, seed=0),
                                       r=r, decoder="optimal")
    if name == "graph":
        return gc.training.approximate(gc.codes.graph_scheme(k=n // 2, d=4, seed=0), r=r,
                                       decoder="graph")
    if name == "nested":
        return gc.training.nested(gc.codes.nested(n=n, levels=[0, 1, 3], seed=0))
    raise ValueError(f"scale: unknown scheme {name!r}")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(name: str, n: int, rounds: int) -> dict:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    import gradcode as gc

    t0 = time.perf_counter()
    k_parts = n // 2 if name == "graph" else n
    X, y = gc.data.synthetic_classification(SAMPLES * k_parts, DIM, seed=0)
    prob = gc.problems.logistic_regression(X, y, k_parts)
    data_s = time.perf_counter() - t0
    rss_data = _rss_mib()
    grad_time = [0.0]

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                grad_time[0] += time.perf_counter() - t
        return wrapper

    for attr in ("partition_gradients", "full_gradient"):
        setattr(prob, attr, timed(getattr(prob, attr)))
    per_round_grad: list[float] = []

    def callback(row: dict) -> None:
        per_round_grad.append(grad_time[0])

    t0 = time.perf_counter()
    scheme = _scheme(gc, name, n)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hist = gc.training.train(prob, scheme, rounds=rounds, backend="simulated",
                             delays="exponential", seed=0, callback=callback)
    train_s = time.perf_counter() - t0
    walls = np.diff(np.r_[0.0, [row["wall_time"] for row in hist.rows]])
    grads = np.diff(np.r_[0.0, per_round_grad])
    return {"scheme": name, "n": n, "k": k_parts, "data_s": data_s, "build_s": build_s,
            "train_s": train_s, "first_round_ms": walls[0] * 1e3,
            "round_ms": float(np.median(walls[1:])) * 1e3 if walls.size > 1 else float("nan"),
            "grad_ms": float(np.median(grads[1:])) * 1e3 if grads.size > 1 else float("nan"),
            "master_ms": float(np.median(walls[1:] - grads[1:])) * 1e3
            if walls.size > 1 else float("nan"),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_data_mib": rss_data, "rounds": rounds}


# --------------------------------------------------------------------------- parent
def run_one(name: str, n: int, rounds: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(HERE.parent / "src"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, str(n), str(rounds)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        return {"scheme": name, "n": n, "failed": f"timeout > {TIME_LIMIT} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {"scheme": name, "n": n, "failed": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def slope(rows: list[dict], key: str) -> str:
    pts = [(r["n"], r[key]) for r in rows if "failed" not in r and r.get(key, 0) > 0]
    if len(pts) < 2:
        return "n/a"
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return f"{np.polyfit(x, y, 1)[0]:.2f}"


def plot(results: list[dict]) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name in SCHEMES:
        rows = [r for r in results if r["scheme"] == name and "failed" not in r]
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        axes[0].loglog(ns, [r["master_ms"] for r in rows], "o-", label=name)
        axes[1].loglog(ns, [r["grad_ms"] for r in rows], "o-", label=name)
        axes[2].loglog(ns, [r["peak_mib"] for r in rows], "o-", label=name)
    ref = np.array(NS, dtype=float)
    for ax, title in zip(axes, ["master ms / round (wait, decode, bookkeeping)",
                                "gradient ms / round", "peak RSS (MiB)"]):
        ax.set_title(title)
        ax.set_xlabel("n workers")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].loglog(ref, ref / ref[0] * 1.0, "k--", alpha=0.4, label="slope 1")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(OUT_PNG, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ns", default=None)
    parser.add_argument("--schemes", default=None)
    args = parser.parse_args()
    if args.child:
        name, n, rounds = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(child(name, n, rounds)))
        return
    ns = [int(x) for x in args.ns.split(",")] if args.ns else (NS[:3] if args.quick else NS)
    schemes = args.schemes.split(",") if args.schemes else SCHEMES
    load0 = os.getloadavg()
    results = []
    for n in ns:
        for name in schemes:
            if n > MAX_N.get(name, n):
                results.append({"scheme": name, "n": n, "load": os.getloadavg()[0],
                                "failed": f"not run (n > {MAX_N[name]}, see MAX_N)"})
                continue
            res = run_one(name, n, ROUNDS)
            res["load"] = os.getloadavg()[0]
            results.append(res)
            print(json.dumps(res), flush=True)
    frc10 = run_one("frc", 100_000, 10) if 100_000 in ns and "frc" in schemes else None
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        commit = "?"
    lines = ["# Scale benchmark: simulated rounds against n", "",
             f"Generated by `python benchmarks/scale.py` at commit {commit} on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, numpy {np.__version__}; "
             f"OMP/OpenBLAS threads = 1.", "",
             f"Load average (1 min) at start: {load0[0]:.2f} / {load0[1]:.2f} / "
             f"{load0[2]:.2f} (shared machine; each row lists the load when it finished).",
             "", __doc__.split("Workload", 1)[1].split("Cost model")[0].strip()
             .replace("(the public API only): ", "(the public API only): "), "",
             "## Results", "",
             "| scheme | n | k | round ms | gradient ms | master ms | first round ms | "
             "code build s | peak RSS MiB | RSS after data MiB | load |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['scheme']} | {r['n']} | | {r['failed']} | | | | | | | "
                         f"{r['load']:.1f} |")
            continue
        lines.append(f"| {r['scheme']} | {r['n']} | {r['k']} | {r['round_ms']:.1f} | "
                     f"{r['grad_ms']:.1f} | {r['master_ms']:.1f} | {r['first_round_ms']:.1f} | "
                     f"{r['build_s']:.3f} | {r['peak_mib']:.0f} | "
                     f"{r['rss_after_data_mib']:.0f} | {r['load']:.1f} |")
    lines += ["", "## Cost model and fitted growth", "",
              "Cost model: " + __doc__.split("Cost model", 1)[1].split("\n\n")[0].strip(), "",
              "| scheme | slope of master ms vs n | slope of gradient ms vs n | "
              "slope of RSS increase vs n |", "| --- | ---: | ---: | ---: |"]
    for name in schemes:
        rows = [r for r in results if r["scheme"] == name]
        for r in rows:
            if "failed" not in r:
                r["rss_increase"] = max(r["peak_mib"] - r["rss_after_data_mib"], 1e-3)
        lines.append(f"| {name} | {slope(rows, 'master_ms')} | {slope(rows, 'grad_ms')} | "
                     f"{slope(rows, 'rss_increase')} |")
    lines += ["", "## Acceptance targets", ""]
    by = {(r["scheme"], r["n"]): r for r in results if "failed" not in r}
    for (name, n, key, limit, label) in [("frc", 16384, "master_ms", 20, "FRC master work"),
                                         ("rbgc", 16384, "round_ms", 300,
                                          "rBGC optimal, ms per round")]:
        r = by.get((name, n))
        val = "not run" if r is None else f"{r[key]:.1f} ms"
        ok = "" if r is None else ("met" if r[key] <= limit else "MISSED")
        lines.append(f"- n = {n}, {label}: {val} (target <= {limit} ms) {ok}")
    if frc10 is not None and "failed" not in frc10:
        total = frc10["build_s"] + frc10["train_s"]
        lines.append(f"- n = 100,000, FRC, 10 rounds end to end (code build + train, data "
                     f"generation excluded): {total:.2f} s (target < 3 s) "
                     f"{'met' if total < 3 else 'MISSED'}; peak RSS {frc10['peak_mib']:.0f} "
                     f"MiB (target < 4096) {'met' if frc10['peak_mib'] < 4096 else 'MISSED'}")
    elif frc10 is not None:
        lines.append(f"- n = 100,000, FRC, 10 rounds: {frc10['failed']}")
    if plot(results):
        lines += ["", "![scale](scale.png)"]
    OUT_MD.parent.mkdir(parents=True, exist_ok=True)
    OUT_MD.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
