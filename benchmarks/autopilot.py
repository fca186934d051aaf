"""The autopilot (gc.schemes.auto) against every fixed scheme, regime by regime.

Run:  python benchmarks/autopilot.py [--quick]      (writes benchmarks/results/autopilot.md
                                                     and autopilot.png)

Simulated backend (virtual clock), the problem of benchmarks/training.py (logistic
regression m=6400, dim=40, l2=1e-3, k = n = 16, GD lr = 1/L, target F* + 1e-3 (F0 - F*)).
Worker time in a round: speed_i(t) * (a + c * load_i + noise), a = 1 s, c = 0.1 s,
noise ~ Exp(0.3 s) unless the regime says otherwise. Every scheme sees the same draws.

Regimes: none (the noise only); persistent (workers 3 and 11 10x slow, the training.py
setting); iid (each worker 10x slow with probability 0.1 each round); pareto (noise
0.3 * Pareto(1.5)); markov (bursts: fast->slow 0.05, slow->fast 0.3, 10x); failures
(workers 5, 9, 12 die for good at rounds 2, 6, 10); hetero (speeds 1x..5x, shuffled);
drift (3 and 11 slow until round 8, then 5 and 13).

Per regime: time to target of auto (plus the time charged for shipping partitions on
its switches, 128 kB per partition at 100 MB/s), of every scheme of the default
`gradcode compare` line-up that fits n = 16 and of the FRC / ErasureHead shapes of
training.py, the best fixed in hindsight, the straggler-free run (uncoded, T = a + c),
and the clairvoyant bound: rounds of straggler-free GD times the mean over rounds of
the best makespan when every delay of the round is known in advance and the k
partitions go to the workers that finish them first (integer loads; exact gradients).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

from training import MEAN, SEED, A, C, LatencyPlusCompute, setup  # noqa: E402

import gradcode as gc  # noqa: E402
from gradcode import stragglers as st  # noqa: E402
from gradcode import training as tr  # noqa: E402
from gradcode.app.compare import build_scheme, default_lineup  # noqa: E402
from gradcode.app.config import ExperimentConfig  # noqa: E402

N = 16
PARTITION_BYTES = 400 * 41 * 8            # 400 samples x (40 features + label), float64
BANDWIDTH = 1e8


class Scaled(st.DelayModel):
    """speed_i(t) * base: per-worker, per-round slowdown factors from ``factors(t)``."""

    def __init__(self, base: st.DelayModel, factors) -> None:
        self.base, self.factors = base, factors

    def sample(self, round, load):
        out = np.asarray(self.base.sample(round, load), dtype=float)
        return out * self.factors(round)


def noise(mean: float = MEAN) -> st.DelayModel:
    return LatencyPlusCompute(A, C, st.ShiftedExponential(0.0, mean, seed=SEED))


def regimes() -> dict[str, st.DelayModel]:
    base = noise()
    speeds = np.random.default_rng(SEED).permutation(np.linspace(1.0, 5.0, N))

    def iid(t):
        return np.where(np.random.default_rng([SEED, t, 9]).random(N) < 0.1, 10.0, 1.0)

    def deaths(t):
        f = np.ones(N)
        for w, t0 in ((5, 2), (9, 6), (12, 10)):
            if t >= t0:
                f[w] = np.inf
        return f

    def drift(t):
        f = np.ones(N)
        f[[3, 11] if t < 8 else [5, 13]] = 10.0
        return f

    return {
        "none": base,
        "persistent": st.PersistentSlow(base, [3, 11], factor=10.0),
        "iid": Scaled(base, iid),
        "pareto": LatencyPlusCompute(A, C, st.Pareto(1.5, 0.3, seed=SEED)),
        "markov": st.Markov(0.05, 0.3, 10.0, base=base, seed=SEED),
        "failures": Scaled(base, deaths),
        "hetero": Scaled(base, lambda t: speeds),
        "drift": Scaled(base, drift),
    }


def fixed_schemes() -> list[tuple[str, tr.Scheme]]:
    cfg = ExperimentConfig(workers=N, backend="simulated", seed=0)
    out = []
    for name, sc in default_lineup(cfg):
        try:
            scheme = build_scheme(sc, cfg)
        except ValueError:
            continue                       # needs n divisible by 3: does not fit 16
        if scheme.code.k == N:             # BIBD affine_plane(4) has k = 20 partitions
            out.append((name, scheme))
    out += [("FRC s=1 (training.py)", tr.exact(gc.codes.fractional_repetition(N, 1),
                                               decoder="frc_group")),
            ("FRC s=3 (training.py)", tr.exact(gc.codes.fractional_repetition(N, 3),
                                               decoder="frc_group")),
            ("ErasureHead d=2 w=12", tr.erasurehead(N, 2, 12)),
            ("ErasureHead d=4 w=8", tr.erasurehead(N, 4, 8))]
    return out


def clairvoyant_round(model: st.DelayModel, t: int, k: int = N) -> float:
    """Best makespan of round t when every worker's time at every load is known."""
    times = np.stack([model.sample(t, np.full(N, float(L))) for L in range(1, k + 1)],
                     axis=1)                                  # n x k, nondecreasing in L
    cands = np.unique(times[np.isfinite(times)])
    lo, hi = 0, cands.size - 1
    while lo < hi:                                            # smallest feasible makespan
        mid = (lo + hi) // 2
        if np.sum(times <= cands[mid]) >= k:                  # loads are monotone in L
            hi = mid
        else:
            lo = mid + 1
    return float(cands[lo])


def run(prob, scheme, model, rounds, lr, target, callback=None):
    h = tr.train(prob, scheme, rounds=rounds, delays=model, lr=lr, target_loss=target,
                 seed=SEED, callback=callback)
    t = h.time_to_loss(target)
    charge = 0.0
    if math.isfinite(t):
        for r in h:
            charge += float(r.get("autopilot_move_seconds", 0.0))
            if r["loss"] <= target:
                break
    return h, t + charge, charge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 regimes only")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "autopilot.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    prob, fstar, f0, target, lr = setup()
    rounds = 150
    ref = tr.train(prob, tr.uncoded(N), rounds=rounds, lr=lr, target_loss=target, seed=SEED,
                   delays=LatencyPlusCompute(A, C, st.NoDelay()))
    t_ref = ref.time_to_loss(target)
    r_ref = len(ref)
    fixed = fixed_schemes()
    regs = regimes()
    if args.quick:
        regs = {k: regs[k] for k in ("none", "persistent", "hetero")}
    table, details = {}, {}
    for rname, model in regs.items():
        row = {}
        for name, scheme in fixed:
            _, t, _ = run(prob, scheme, model, rounds, lr, target)
            row[name] = t
        s = gc.schemes.auto(N, seed=SEED, partition_bytes=PARTITION_BYTES,
                            bandwidth=BANDWIDTH)
        h, t_auto, charge = run(prob, s, model, rounds, lr, target)
        bound = r_ref * float(np.mean([clairvoyant_round(model, t) for t in range(200)]))
        best_name = min(row, key=lambda k: row[k])
        table[rname] = {"fixed": row, "auto": t_auto, "bound": bound, "best": best_name,
                        "charge": charge}
        switches = [(r["round"], r["autopilot_switch"]) for r in h if r["autopilot_switch"]]
        details[rname] = {"rounds": len(h), "switches": switches,
                          "estimate": s.pilot.estimator.summary(),
                          "decisions": len(s.pilot.decisions),
                          "final_plan": s.pilot.plan.name,
                          "pred": [(r["round_time"], r["autopilot_predicted"]) for r in h]}
        print(f"{rname}: auto {t_auto / t_ref:.3f}, best fixed {best_name} "
              f"{row[best_name] / t_ref:.3f}, bound {bound / t_ref:.3f}  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    write(args, table, details, fixed, t_ref, r_ref, fstar, f0, target, lr,
          time.perf_counter() - t0)


def _geo(xs):
    xs = np.asarray(xs, dtype=float)
    return float(np.exp(np.mean(np.log(xs)))) if np.all(np.isfinite(xs)) else math.inf


def write(args, table, details, fixed, t_ref, r_ref, fstar, f0, target, lr, took):
    names = [n for n, _ in fixed]
    regs = list(table)
    lines = [
        "# Autopilot benchmark",
        "",
        f"`python benchmarks/autopilot.py{' --quick' if args.quick else ''}` on "
        f"{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}; took {took:.0f} s. Simulated backend, virtual "
        f"clock; every ratio is time to target / straggler-free time, measured in this run.",
        "",
        f"Problem: logistic regression m=6400, dim=40, l2=1e-3, k=n={N}, GD lr=1/L={lr:.4g}, "
        f"target F* + 1e-3 (F0 - F*) = {target:.6f}. Straggler-free (uncoded, T = a + c = "
        f"{A + C:.1f} s): {r_ref} rounds, {t_ref:.2f} s. Worker time speed_i(t) (a + c load_i "
        f"+ noise), a={A}, c={C}, noise Exp({MEAN}) (regimes in the script's docstring). "
        f"auto's time includes {PARTITION_BYTES} B per shipped partition at "
        f"{BANDWIDTH / 1e6:.0f} MB/s.",
        "",
        "## Ratio to straggler-free, per regime",
        "",
        "| scheme | " + " | ".join(regs) + " | geo-mean |",
        "| --- | " + " | ".join("---:" for _ in regs) + " | ---: |",
    ]

    def fmt(x):
        return f"{x:.2f}" if math.isfinite(x) else "inf"

    geo = {}
    for n in names:
        vals = [table[r]["fixed"][n] / t_ref for r in regs]
        geo[n] = _geo(vals)
        lines.append(f"| {n} | " + " | ".join(fmt(v) for v in vals) + f" | {fmt(geo[n])} |")
    best = [table[r]["fixed"][table[r]["best"]] / t_ref for r in regs]
    auto = [table[r]["auto"] / t_ref for r in regs]
    bound = [table[r]["bound"] / t_ref for r in regs]
    geo_auto = _geo(auto)
    lines += [
        "| **best fixed in hindsight** | " + " | ".join(fmt(v) for v in best) +
        f" | {fmt(_geo(best))} |",
        "| **auto** | " + " | ".join(fmt(v) for v in auto) + f" | {fmt(geo_auto)} |",
        "| clairvoyant bound | " + " | ".join(fmt(v) for v in bound) +
        f" | {fmt(_geo(bound))} |",
        "| auto / best fixed | " + " | ".join(f"{a / b:.3f}" for a, b in zip(auto, best)) +
        " | |",
        "| auto / clairvoyant | " + " | ".join(f"{a / b:.3f}" for a, b in zip(auto, bound)) +
        " | |",
        "",
        "Best fixed scheme per regime: " + "; ".join(f"{r}: {table[r]['best']}" for r in regs)
        + ".",
        "",
        "## Acceptance",
        "",
    ]
    worst = max(a / b for a, b in zip(auto, best))
    beaten = [n for n in names if geo[n] <= geo_auto]
    lines += [
        f"- auto within 1.10x of the best fixed scheme in every regime: worst ratio "
        f"{worst:.3f} ({'met' if worst <= 1.10 else 'NOT met'}).",
        f"- geometric-mean ratio of auto {geo_auto:.3f} lower than every fixed scheme's "
        f"(best fixed: {min(geo.values()):.3f}): "
        f"{'met' if not beaten else 'NOT met (' + ', '.join(beaten) + ')'}.",
    ]
    if "persistent" in table:
        i = regs.index("persistent")
        lines.append(f"- persistent regime: auto / clairvoyant = {auto[i] / bound[i]:.3f} "
                     f"(target <= 1.06: {'met' if auto[i] / bound[i] <= 1.06 else 'NOT met'});"
                     f" bound {bound[i]:.3f}, best fixed {best[i]:.3f}.")
    lines += ["", "## What auto did", "",
              "| regime | rounds | switches (round: plan) | final estimate | moved-data "
              "charge (s) | mean predicted / observed round time |",
              "| --- | ---: | --- | --- | ---: | ---: |"]
    for r in regs:
        d = details[r]
        sw = "; ".join(f"{t}: {p}" for t, p in d["switches"]) or "-"
        est = d["estimate"]
        pred = [(o, p) for o, p in d["pred"] if math.isfinite(p)]
        ratio = (np.mean([p for _, p in pred]) / np.mean([o for o, _ in pred])) if pred \
            else math.nan
        lines.append(f"| {r} | {d['rounds']} | {sw} | slow {est['slow']}, failed "
                     f"{est['failed']}, load cost {est['load_cost']}, tail q99/q50 "
                     f"{est['tail_ratio']} | {table[r]['charge']:.3f} | {ratio:.3f} |")
    lines.append("")
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
    plot(args.out.replace(".md", ".png"), regs, best, auto, bound)
    print(f"wrote {args.out}")


def plot(path, regs, best, auto, bound):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(regs))
    fig, ax = plt.subplots(figsize=(9, 4))
    for off, vals, label in ((-0.27, best, "best fixed (hindsight)"), (0.0, auto, "auto"),
                             (0.27, bound, "clairvoyant bound")):
        ax.bar(x + off, np.minimum(vals, 10), 0.27, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, regs)
    ax.set_ylabel("time to target / straggler-free")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
