"""Nested gradient codes against every fixed-tolerance code and against uncoded.

Run:  python benchmarks/nested.py [--quick]      (writes benchmarks/results/nested.md)

Part 1 (simulated, virtual clock): n = 12 workers, per-task times D + Exp(b); in each
round exactly r uniformly chosen workers are stragglers (times x 10, or dead). On the
SAME sample paths: every fixed GC(12, s) with sequential tasks (s = 0 is uncoded), the
nested cyclic code with all levels 0..11, and the nested dyadic FRC code (n = 16)
against the fixed dyadic FRCs. Latency, tasks actually computed, decode rate.
Part 2: exact expected latency (order statistics / multinomial DP) vs simulation.
Part 3: protocol traffic from the event-driven simulation (beacons, STOPs, bytes).
Part 4 (real processes): n = 6 spawned workers, injected per-task delays (same draws for
every scheme), fixed GC(6, s) for every s vs nested; wall-clock latency per round,
measured in one run.

References: Massny, Hofmeister, Egger, Bitar, Wachter-Zeh, "Nested gradient codes for
straggler mitigation in distributed machine learning", arXiv:2212.08580, 2022.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np

import gradcode as gc
from gradcode.errors import NotDecodableError
from gradcode.latency import (
    LatencySimulation,
    TaskTimes,
    fixed_latency,
    inject_stragglers,
    nested_latency,
    nested_path_latency,
    sample_task_times,
    simulate_latency,
)
from gradcode.protocols.nested import simulate_round

RESULTS = os.path.join(os.path.dirname(__file__), "results", "nested.md")


def fmt(x: float, nd: int = 3) -> str:
    return "inf" if math.isinf(x) else f"{x:.{nd}f}"


def part_simulated(lines: list[str], samples: int) -> None:
    n = 12
    levels = list(range(n))
    base = TaskTimes(shift=1.0, mean=0.2)
    lines += ["## 1. Simulated: nested cyclic vs every fixed GC(12, s) (same sample paths)", "",
              (f"n = {n}, per-task time 1 + Exp(0.2), {samples} rounds per row; r stragglers "
              "chosen uniformly per round. Latency in task units (mean); 'best fixed' = the "
              "fixed s with the lowest mean in hindsight; 'pathwise' = fraction of rounds "
              "where nested <= every fixed code. Work = tasks finished by all workers when "
              "the master stops (nested / best fixed)."), "",
              ("| stragglers | kind | uncoded | best fixed (s) | worst fixed | nested | "
              "nested / best | pathwise <= | work nested | work best fixed | "
              "nested decodes | best-fixed decodes |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, factor in (("slow x10", 10.0), ("dead", math.inf)):
        for r in (0, 1, 2, 3, 4, 6, 8, 11):
            if kind == "dead" and r == 0:
                continue
            times = sample_task_times(base, n, n, samples, seed=100 + r)
            times = inject_stragglers(times, r, factor, seed=200 + r)
            sim = simulate_latency(n, levels, times=times)
            means = {s: float(np.mean(sim.fixed[s])) for s in levels}
            best = min(means, key=means.get)
            worst = max(v for v in means.values())
            nested_mean = float(np.mean(sim.nested))
            stack = np.stack([sim.fixed[s] for s in levels])
            pathwise = float(np.mean(sim.nested <= stack.min(axis=0)))
            ok_n = float(np.mean(np.isfinite(sim.nested)))
            ok_b = float(np.mean(np.isfinite(sim.fixed[best])))
            lines.append(
                f"| {r} | {kind} | {fmt(means[0])} | {fmt(means[best])} (s={best}) | "
                f"{fmt(worst)} | {fmt(nested_mean)} | {fmt(nested_mean / means[best])} | "
                f"{pathwise:.3f} | {np.mean(sim.nested_work):.1f} | "
                f"{np.mean(sim.fixed_work[best]):.1f} | {ok_n:.3f} | {ok_b:.3f} |")
    # dyadic
    n2 = 16
    lv = [0, 1, 3, 7, 15]
    lines += ["", ("### Nested dyadic FRC (n = 16, levels 0, 1, 3, 7, 15) vs fixed dyadic "
              "FRC(16, s) and vs nested cyclic (same paths)"), "",
              ("| stragglers | kind | uncoded | best fixed FRC (s) | nested dyadic | "
              "nested cyclic (levels 0..15) | dyadic decodes | cyclic decodes | "
              "best FRC decodes |"), "|---|---|---|---|---|---|---|---|---|"]
    for kind, factor in (("slow x10", 10.0), ("dead", math.inf)):
        for r in (0, 2, 4, 8):
            if kind == "dead" and r == 0:
                continue
            times = sample_task_times(base, n2, n2, samples, seed=300 + r)
            times = inject_stragglers(times, r, factor, seed=400 + r)
            frc = {s: nested_path_latency(times, [s], "dyadic_frc") for s in lv}
            means = {s: float(np.mean(frc[s])) for s in lv}
            best = min(means, key=lambda s: (means[s], s))
            dy = nested_path_latency(times, lv, "dyadic_frc")
            cy = nested_path_latency(times, list(range(n2)))
            lines.append(f"| {r} | {kind} | {fmt(means[0])} | {fmt(means[best])} (s={best}) | "
                         f"{fmt(float(np.mean(dy)))} | {fmt(float(np.mean(cy)))} | "
                         f"{np.mean(np.isfinite(dy)):.3f} | {np.mean(np.isfinite(cy)):.3f} | "
                         f"{np.mean(np.isfinite(frc[best])):.3f} |")
    lines.append("")


def part_exact(lines: list[str], samples: int) -> None:
    lines += ["## 2. Exact expected latency vs simulation (random slow/dead workers)", "",
              ("Workers i.i.d.; 'exact' integrates the tail (binomial for fixed, "
              "multinomial DP for nested cyclic, block recursion for nested dyadic). "
              "With dead workers the mean is infinite: conditional mean E[T | decoded] and "
              "P(decode) are shown."), "",
              ("| model | scheme | exact E[T] (or E[T given decode]) | simulated +- 1 SE | "
              "P(decode) exact | P(decode) sim | exact time (s) |"), "|---|---|---|---|---|---|---|"]
    configs = [
        ("per-task 1+Exp(1)", TaskTimes(1.0, 1.0), 12, list(range(12)), "cyclic"),
        ("per-worker 1+Exp(1), 20% slow x5", TaskTimes(1.0, 1.0, per="worker", p_slow=0.2,
                                                      slow_factor=5.0), 12, list(range(12)),
         "cyclic"),
        ("per-task 1+Exp(0.5), 10% dead", TaskTimes(1.0, 0.5, p_dead=0.1), 12,
         list(range(12)), "cyclic"),
        ("per-task 1+Exp(0.5), 10% dead", TaskTimes(1.0, 0.5, p_dead=0.1), 16,
         [0, 1, 3, 7, 15], "dyadic_frc"),
    ]
    for label, model, n, levels, family in configs:
        sim = simulate_latency(n, levels, model, family=family, samples=samples, seed=7)
        rows = []
        if family == "cyclic":
            fixed_means = {s: fixed_latency(n, s, model) for s in levels}
            best = min(levels, key=lambda s: fixed_means[s].conditional_mean
                       if fixed_means[s].decode_probability > 0.999 else math.inf)
            rows.append((f"uncoded GC({n},0)", fixed_latency, (n, 0, model), sim.fixed[0]))
            rows.append((f"best fixed GC({n},{best})", fixed_latency, (n, best, model),
                         sim.fixed[best]))
        rows.append((f"nested {family}", nested_latency, (n, levels, model, family),
                     sim.nested))
        for name, fn, args, sample in rows:
            t0 = time.perf_counter()
            e = fn(*args)
            dt = time.perf_counter() - t0
            m = LatencySimulation.estimate(sample)
            lines.append(f"| {label} (n={n}) | {name} | {fmt(e.conditional_mean)} | "
                         f"{fmt(m.conditional_mean)} +- {fmt(m.conditional_stderr)} | "
                         f"{e.decode_probability:.5f} | {m.decode_probability:.5f} | "
                         f"{dt:.2f} |")
    lines.append("")


def part_messages(lines: list[str], samples: int) -> None:
    n, dim = 12, 1000
    code = gc.codes.nested(n, list(range(n)), seed=0)
    times = sample_task_times(TaskTimes(1.0, 0.2), n, n, samples, seed=11)
    times = inject_stragglers(times, 3, 10.0, seed=12)
    partials = np.zeros((n, dim))
    rows = [simulate_round(code, t, partials) for t in times[: min(samples, 300)]]
    beacons = np.mean([r.messages.beacons for r in rows])
    stops = np.mean([r.messages.stops for r in rows])
    vec = np.mean([r.messages.vectors for r in rows])
    extra_b = np.mean([r.messages.extra_bytes for r in rows])
    vec_b = np.mean([r.messages.vector_bytes for r in rows])
    levels = np.bincount([r.level for r in rows], minlength=n)
    lines += ["## 3. Protocol traffic (event-driven simulation)", "",
              (f"n = {n}, 3 slow workers (x10), gradient dimension {dim}, {len(rows)} rounds. "
              "Extra = beacons (24 B) + STOPs (24 B) that a fixed code does not send."), "",
              ("| beacons / round | STOPs / round | vectors / round | extra bytes / round | "
              "vector bytes / round | extra / vector bytes | levels chosen (s: count) |"),
              "|---|---|---|---|---|---|---|",
              f"| {beacons:.1f} | {stops:.1f} | {vec:.1f} | {extra_b:.0f} | {vec_b:.0f} | "
              f"{extra_b / vec_b:.4f} | "
              + ", ".join(f"{s}: {c}" for s, c in enumerate(levels) if c) + " |", ""]


class PerTaskUnits(gc.stragglers.DelayModel):
    """Round t, worker i: u[t, i] seconds per task, so a worker holding l tasks gets
    delay l u[t, i] (load-linear: the nested task and the level-s task both spread it
    evenly, task m ends at m u[t, i])."""

    def __init__(self, units: np.ndarray) -> None:
        self.units = units

    def sample(self, round: int, load):  # noqa: A002
        return self.units[round] * np.asarray(load, dtype=np.float64)


def part_real(lines: list[str], rounds: int) -> None:
    from gradcode.backends.local import LocalBackend
    from gradcode.problems import least_squares
    from gradcode.protocols.nested_scheme import NestedTask

    n, dim = 6, 20
    unit = 0.04                                       # seconds per task (shift)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((600, dim)), rng.standard_normal(600)
    problem = least_squares(X, y, n)
    params = np.zeros(dim)
    full = problem.full_gradient(params)
    model = TaskTimes(shift=unit, mean=unit / 4)
    scenarios = [("0 stragglers", 0, 1.0), ("1 slow x8", 1, 8.0), ("2 slow x8", 2, 8.0),
                 ("3 slow x8", 3, 8.0), ("1 dead", 1, math.inf)]
    # per-task time of worker i in round t: its mean task time on the drawn path, the
    # same for every scheme (stragglers x8, dead = inf)
    units = {}
    for si, (_, r, factor) in enumerate(scenarios):
        cum = sample_task_times(model, n, n, rounds, seed=500 + si)
        cum = inject_stragglers(cum, r, factor, seed=600 + si)
        last = cum[:, :, -1]
        units[si] = np.where(np.isfinite(last), last / n, np.inf)
    names = [f"GC({n},{s})" for s in range(n)] + ["nested"]
    lat: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    fails: dict[str, dict[int, int]] = {name: {} for name in names}
    work: dict[int, list[float]] = {}
    worst_err = 0.0
    t_start = time.perf_counter()
    # GC(n, s) is the level-s code of the nested code: the nested task with a fixed level
    # runs it on the ordinary local backend (plain round: first n - s, exact decoding)
    code = gc.codes.nested(n, list(range(n)), seed=0)
    schemes = [gc.training.Scheme(code.meta["level_codes"][s], "exact",
                                  gc.wait.first(n - s), fallback=None,
                                  task=NestedTask(code, fixed=s), name=f"GC({n},{s})")
               for s in range(n)] + [gc.schemes.nested(code)]
    for name, scheme in zip(names, schemes):
        with LocalBackend(round_timeout=1.5, start_method="spawn") as be:
            be.start(problem, scheme.code, delays=PerTaskUnits(np.concatenate(
                [units[si] for si in range(len(scenarios))])), task=scheme.task)
            for si in range(len(scenarios)):
                lat[name][si], fails[name][si] = [], 0
                for t in range(rounds):
                    rnd = si * rounds + t
                    t0 = time.perf_counter()
                    try:
                        res = gc.training.coded_round(be, scheme, rnd, params,
                                                      round_timeout=1.5)
                    except NotDecodableError:
                        res = None
                    if res is None or not res.responders or res.fallback:
                        lat[name][si].append(math.inf)
                        fails[name][si] += 1
                        continue
                    lat[name][si].append(time.perf_counter() - t0)
                    worst_err = max(worst_err, float(np.max(np.abs(res.g_hat - full))
                                                     / np.max(np.abs(full))))
                    if name == "nested":
                        work.setdefault(si, []).append(float(res.extra["nested_work"]))
    wall = time.perf_counter() - t_start
    lines += ["## 4. Real processes (local backend, injected per-task delays)", "",
              (f"n = {n} worker processes on {os.cpu_count()} CPU(s), {rounds} rounds per "
              f"scenario; worker i's per-task time in round t is its mean task time on a "
              f"path of {unit:.2f} s + Exp({unit / 4:.2f} s) tasks (stragglers x8, dead = "
              "never), the same for every scheme. Mean wall-clock latency per round (s), "
              "from the broadcast to holding the decoded gradient; 'best fixed' = lowest "
              "mean in hindsight among GC(6, s), s = 0..5, each run with the nested task at "
              "that fixed level on the ordinary local backend (one backend per scheme). A "
              "round that times out (1.5 s; dead workers) or falls back "
              f"counts as not decoding. Worst relative gradient error: {worst_err:.2e}. "
              f"Total wall time {wall:.0f} s."), "",
              ("| scenario | uncoded GC(6,0) | best fixed (s) | nested | nested / best fixed | "
              "nested - best (ms) | tasks reported nested | decodes: nested / best / uncoded |"),
              "|---|---|---|---|---|---|---|---|"]
    for si, (label, _, _) in enumerate(scenarios):
        means = {name: float(np.mean(lat[name][si])) for name in names}
        fixed_names = names[:-1]
        best = min(fixed_names, key=lambda k: means[k])
        nm = means["nested"]
        def dec(k: str, si: int = si) -> str:
            return f"{rounds - fails[k][si]}/{rounds}"
        lines.append(f"| {label} | {fmt(means[fixed_names[0]])} | {fmt(means[best])} ({best}) "
                     f"| {fmt(nm)} | {fmt(nm / means[best])} | {1000 * (nm - means[best]):.1f} "
                     f"| {np.mean(work.get(si, [math.nan])):.1f} | {dec('nested')} / "
                     f"{dec(best)} / {dec(fixed_names[0])} |")
    lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    samples = 500 if args.quick else 4000
    rounds = 2 if args.quick else 8
    lines = ["# Nested gradient codes: benchmark", "",
             (f"Generated by `python benchmarks/nested.py{' --quick' if args.quick else ''}` on "
             f"{platform.platform()}, Python {sys.version.split()[0]}, "
             f"{os.cpu_count()} CPU(s). Seeded; one run."), ""]
    t0 = time.perf_counter()
    part_simulated(lines, samples)
    part_exact(lines, 4 * samples)
    part_messages(lines, samples)
    part_real(lines, rounds)
    lines.append(f"Total benchmark time: {time.perf_counter() - t0:.0f} s.")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
