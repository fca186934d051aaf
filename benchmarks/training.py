"""Coded training against stragglers: time to a target loss, and local-backend overhead.

Run:  python benchmarks/training.py [--quick]      (writes benchmarks/results/training.md)

Part 1 (simulated backend, virtual clock, deterministic). Logistic regression (synthetic,
m = 6400, dim = 40, l2 = 1e-3) split into k = 16 partitions, n = 16 workers, plain GD with
lr = 1/L. Time of worker i in round t:

    T_i = slow_i * (a + c * load_i + E_i),   E_i ~ Exp(mean)   (shifted exponential)

with a = 1.0 s fixed per-round latency, c = 0.1 s compute per partition, mean = 0.3 s,
and slow_i = 10 for two persistent slow workers (3 and 11), 1 otherwise. Every scheme
sees the same draws (per-round generators keyed on (seed, round)). The straggler-free
reference is uncoded GD with T_i = a + c (no exponential part, nobody slow): the
physical limit of any scheme, ratio 1.0. A coded scheme with load d has the floor
(a + c d) / (a + c) even when nobody straggles; the table lists it.

Part 2 (local backend, real processes, no injected delays). n = 16 worker processes on
this machine, tiny partitions, so the per-round time is the framework's fixed cost:
``gc.training.train(..., backend="local")`` against a bare multiprocessing loop (one
pipe per worker, params out, gradient back, wait for all, sum) doing the same work.
Median seconds per round, measured in one run, and the CPU seconds per round of the
master and its workers (from /proc on Linux), which other jobs on a shared machine
barely move.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from multiprocessing.connection import wait as mp_wait

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr

N = 16
A, C, MEAN = 1.0, 0.1, 0.3
SLOW = [3, 11]
SEED = 7


class LatencyPlusCompute(st.DelayModel):
    """T_i = a + c * load_i + E_i with E_i from ``noise`` sampled at unit load."""

    def __init__(self, a: float, c: float, noise: st.DelayModel) -> None:
        self.a, self.c, self.noise = a, c, noise

    def sample(self, round: int, load) -> np.ndarray:
        load = np.asarray(load, dtype=float)
        return self.a + self.c * load + self.noise.sample(round, np.ones(load.size))


def delay_model(mean: float = MEAN) -> st.DelayModel:
    base = LatencyPlusCompute(A, C, st.ShiftedExponential(0.0, mean, seed=SEED))
    return st.PersistentSlow(base, SLOW, factor=10.0)


def straggler_free() -> st.DelayModel:
    return LatencyPlusCompute(A, C, st.NoDelay())


def problem() -> gc.problems.LinearProblem:
    X, y = gc.data.synthetic_classification(6400, 40, seed=0, noise=0.5)
    return gc.problems.logistic_regression(X, y, N, l2=1e-3, partition_seed=0)


def optimum(prob) -> float:
    from scipy.optimize import minimize
    res = minimize(prob.loss, prob.init_params(), jac=prob.full_gradient, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000})
    return float(res.fun)


def candidates(quick: bool) -> list[tuple[str, tr.Scheme]]:
    out = [
        ("baseline", tr.uncoded(N)),
        ("baseline", tr.ignore_stragglers(N, 2)),
        ("baseline", tr.ignore_stragglers(N, 4)),
        ("baseline", tr.exact(gc.codes.fractional_repetition(N, 1), decoder="frc_group")),
        ("baseline", tr.exact(gc.codes.fractional_repetition(N, 3), decoder="frc_group")),
        ("baseline", tr.exact(gc.codes.cyclic_repetition(N, 2, seed=0))),
        ("baseline", tr.erasurehead(N, 2, 8)),
        ("baseline", tr.erasurehead(N, 2, 12)),
        ("baseline", tr.erasurehead(N, 4, 8)),
    ]
    rs = [8, 12] if quick else [6, 8, 10, 12, 14]
    for d in (2, 3, 4):
        for r in rs:
            out.append(("approximate", tr.approximate(
                gc.codes.regularized_bernoulli(n=N, k=N, d=d, seed=0), r=r)))
            if N % d == 0:
                out.append(("approximate", tr.approximate(
                    gc.codes.fractional_repetition(N, d - 1), r=r)))
            out.append(("approximate", tr.approximate(
                gc.codes.cyclic_repetition(N, d - 1, seed=0), r=r)))
    return out


GAP = 1e-3


def setup() -> tuple:
    prob = problem()
    fstar = optimum(prob)
    f0 = prob.loss(prob.init_params())
    target = fstar + GAP * (f0 - fstar)
    lr = 1.0 / prob.lipschitz()
    return prob, fstar, f0, target, lr


def run_all(prob, target, lr, rounds, mean, quick):
    ref = tr.train(prob, tr.uncoded(N), rounds=rounds, delays=straggler_free(), lr=lr,
                   target_loss=target, seed=SEED)
    t_ref = ref.time_to_loss(target)
    rows = []
    for kind, scheme in candidates(quick):
        h = tr.train(prob, scheme, rounds=rounds, delays=delay_model(mean), lr=lr,
                     target_loss=target, seed=SEED)
        t = h.time_to_loss(target)
        reached = math.isfinite(t)
        n_rounds = len(h) if reached else math.inf
        floor = (A + C * scheme.code.load) / (A + C)
        rows.append({
            "kind": kind, "name": scheme.name, "time": t, "ratio": t / t_ref,
            "rounds": n_rounds, "per_round": h.final["sim_time"] / len(h),
            "error": float(np.mean(h.column("error"))), "floor": floor,
            "final_loss": h.final["loss"],
        })
    return ref, t_ref, rows


def part1(quick: bool) -> tuple[list[str], dict]:
    prob, fstar, f0, target, lr = setup()
    rounds = 300 if quick else 600
    ref, t_ref, rows = run_all(prob, target, lr, rounds, MEAN, quick)
    best = min((r for r in rows if r["kind"] == "approximate"), key=lambda r: r["time"])
    best_any = min(rows, key=lambda r: r["time"])
    lines = [
        "## Part 1: time to target loss (simulated backend, virtual clock)",
        "",
        f"Logistic regression m=6400, dim=40, l2=1e-3, k=n={N}, GD lr=1/L={lr:.4g}. "
        f"Worker time slow_i * (a + c*load_i + Exp(mean)), a={A}, c={C}, mean={MEAN}, "
        f"workers {SLOW} 10x slow. F* = {fstar:.6f} (L-BFGS), F0 = {f0:.6f}, target = "
        f"F* + {GAP:g} (F0 - F*) = {target:.6f}. Straggler-free reference (uncoded, T = a + c, "
        f"nobody slow): {len(ref)} rounds, {t_ref:.2f} s = ratio 1.0.",
        "",
        "| kind | scheme | time to target (s) | ratio to straggler-free | rounds | "
        "mean round (s) | mean error (sq. decoding) | load floor |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: (r["kind"] != "baseline", r["time"])):
        mark = " **(best approximate)**" if r is best else ""
        lines.append(f"| {r['kind']} | {r['name']}{mark} | {r['time']:.2f} | {r['ratio']:.2f} | "
                     f"{r['rounds']} | {r['per_round']:.3f} | {r['error']:.3g} | "
                     f"{r['floor']:.2f} |")
    unc = next(r for r in rows if r["name"].startswith("uncoded"))
    lines += ["", f"Best approximate: {best['name']}, ratio {best['ratio']:.2f} "
              f"(target <= 1.3: {'met' if best['ratio'] <= 1.3 else 'NOT met'}). "
              f"Best overall: {best_any['name']}, ratio {best_any['ratio']:.2f}. "
              f"Uncoded GD: ratio {unc['ratio']:.2f}.", ""]
    # sensitivity to the exponential part (same problem, same schemes, same seeds)
    lines += ["### Sensitivity to the delay noise (mean of the exponential part)", "",
              "| mean (s) | best approximate | ratio | best overall | ratio | uncoded ratio |",
              "| ---: | --- | ---: | --- | ---: | ---: |"]
    for mean in (0.05, 0.1, 0.3, 0.5, 1.0):
        _, _, rws = run_all(prob, target, lr, rounds, mean, True)
        ba = min((r for r in rws if r["kind"] == "approximate"), key=lambda r: r["time"])
        bo = min(rws, key=lambda r: r["time"])
        un = next(r for r in rws if r["name"].startswith("uncoded"))
        lines.append(f"| {mean} | {ba['name']} | {ba['ratio']:.2f} | {bo['name']} | "
                     f"{bo['ratio']:.2f} | {un['ratio']:.2f} |")
    lines.append("")
    return lines, {"best": best, "uncoded": unc, "t_ref": t_ref}


# ---------------------------------------------------------------------------- part 2
def _bare_worker(conn, X, y, m_total, l2, frac):
    from gradcode.problems import _sigmoid
    while True:
        data = conn.recv_bytes()
        if not data:
            return
        tag = int.from_bytes(data[:8], "little")
        w = np.frombuffer(data, dtype=np.float64, offset=8)
        r = _sigmoid(X @ w) - y
        conn.send((tag, X.T @ r / m_total + l2 * frac * w))


def _cpu_seconds(pids) -> float:
    """CPU seconds used so far by this process and the processes ``pids`` (Linux /proc;
    NaN elsewhere): unlike wall time, barely moved by other jobs on the machine."""
    try:
        total = 0.0
        for pid in pids:
            with open(f"/proc/{pid}/schedstat") as fh:
                total += int(fh.read().split()[0]) / 1e9
        return time.process_time() + total
    except OSError:
        return math.nan


def bare_loop(prob, rounds: int, ctx, skip: int = 20) -> tuple[list[float], float]:
    """Per-round seconds of the bare loop, and its CPU seconds per round (master and
    workers) after the first ``skip`` rounds."""
    procs, conns = [], []
    for j in range(prob.k):
        part = prob.part(j)
        a, b = ctx.Pipe()
        p = ctx.Process(target=_bare_worker, args=(b, part.X, part.y, prob.m, part.l2,
                                                   part.y.size / prob.m), daemon=True)
        p.start()
        b.close()
        procs.append(p)
        conns.append(a)
    w = prob.init_params()
    lr = 1.0 / prob.lipschitz()
    times = []
    try:
        for t in range(rounds):
            if t == skip:
                cpu0 = _cpu_seconds([p.pid for p in procs])
            t0 = time.perf_counter()
            msg = t.to_bytes(8, "little") + np.ascontiguousarray(w).tobytes()
            for c in conns:
                c.send_bytes(msg)
            pending = set(range(len(conns)))
            g = np.zeros_like(w)
            while pending:
                for c in mp_wait([conns[i] for i in pending]):
                    tag, gi = c.recv()
                    g += gi
                    pending.discard(conns.index(c))
            w = w - lr * g
            times.append(time.perf_counter() - t0)
        cpu = (_cpu_seconds([p.pid for p in procs]) - cpu0) / (rounds - skip)
    finally:
        for c in conns:
            c.send_bytes(b"")
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
    return times, cpu


def _local_run(prob, rounds: int, skip: int = 20) -> tuple[np.ndarray, float]:
    """Per-round seconds of train(backend='local'), and its CPU seconds per round."""
    host = gc.backends.LocalBackend()
    marks = []

    def mark(row):
        if row["round"] in (skip - 1, rounds - 1):
            marks.append(_cpu_seconds(host.pids))

    h = tr.train(prob, tr.uncoded(N), rounds=rounds, backend=host, eval_every=10**9,
                 grad_error=False, checkpoint_every=10**9, callback=mark)
    return np.diff(h.column("wall_time"))[skip:], (marks[1] - marks[0]) / (rounds - skip)


def part2(quick: bool) -> tuple[list[str], dict]:
    X, y = gc.data.synthetic_classification(1600, 20, seed=0)
    prob = gc.problems.logistic_regression(X, y, N)
    rounds = 150 if quick else 400
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "gradcode.backends._worker"])
    reps = 3 if quick else 5
    ours, bare, cpu_ours, cpu_bare = [], [], [], []
    for _ in range(reps):
        bt, cpu = bare_loop(prob, rounds, ctx)
        bare.append(statistics.median(bt[20:]))
        cpu_bare.append(cpu)
        wt, cpu = _local_run(prob, rounds)
        ours.append(float(np.median(wt)))
        cpu_ours.append(cpu)
    cb, co = statistics.median(cpu_bare), statistics.median(cpu_ours)
    o, b = min(ours), min(bare)
    # repetitions alternate, so each (bare, ours) pair saw about the same machine load;
    # the median of the paired ratios is robust to a load burst during one repetition
    paired = statistics.median(x / y for x, y in zip(ours, bare))
    load = os.getloadavg()
    lines = [
        "## Part 2: local backend fixed overhead per round",
        "",
        f"n = {N} worker processes (forkserver), logistic regression m=1600, dim=20 (100 "
        f"samples per worker), no injected delays, {rounds} rounds x {reps} repetitions, "
        f"median seconds per round (best repetition), this machine: {os.cpu_count()} cores "
        f"shared with other jobs (load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} at the end of the part). Ratio: median over the alternating "
        f"repetitions of local / bare (each pair ran back to back).",
        "",
        "| loop | median s / round | ratio | CPU / round (master + 16 workers) | CPU ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| bare multiprocessing loop (one pipe and one message per worker, wait all, sum) "
        f"| {b * 1e3:.3f} ms | 1.00 | {cb * 1e3:.3f} ms | 1.00 |",
        f"| gc.training.train(backend='local', uncoded) | {o * 1e3:.3f} ms | {paired:.2f} "
        f"| {co * 1e3:.3f} ms | {co / cb:.2f} |",
        "",
        f"All repetitions (ms): bare {[round(x * 1e3, 3) for x in bare]}, local "
        f"{[round(x * 1e3, 3) for x in ours]}; ratio of the best repetitions "
        f"{o / b:.2f}. Target <= 1.5x: {'met' if paired <= 1.5 else 'NOT met'}.",
        "",
    ]
    return lines, {"ours": o, "bare": b, "ratio": paired, "cpu_ratio": co / cb}


def _kept_section(path: str, title: str) -> list[str]:
    """The lines of an existing results file's section starting with ``title``."""
    try:
        with open(path) as fh:
            text = fh.read().splitlines()
    except OSError:
        return []
    start = next((i for i, line in enumerate(text) if line.startswith(title)), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")),
               len(text))
    return text[start:end] + [""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", type=int, choices=(1, 2), default=None,
                    help="run only this part; the other part's section of the existing "
                         "results file is kept")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "training.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.part in (None, 1):
        l1, _ = part1(args.quick)
        print("\n".join(l1))
    else:
        l1 = _kept_section(args.out, "## Part 1")
    if args.part in (None, 2):
        l2, _ = part2(args.quick)
        print("\n".join(l2))
    else:
        l2 = _kept_section(args.out, "## Part 2")
    cmd = "python benchmarks/training.py" + (" --quick" if args.quick else "") + \
        (f" --part {args.part}" if args.part else "")
    head = [
        "# Coded training benchmark",
        "",
        f"`{cmd}` on {platform.platform()}, Python {platform.python_version()}, numpy "
        f"{np.__version__}; {time.strftime('%Y-%m-%d %H:%M')}; took "
        f"{time.perf_counter() - t0:.0f} s. All ratios of a part measured in one run"
        + (f"; part {3 - args.part} kept from the previous run." if args.part else "."),
        "",
    ]
    with open(args.out, "w") as fh:
        fh.write("\n".join(head + l1 + l2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
