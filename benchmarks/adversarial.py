"""Worst-case vs random-straggler error for block-design, product and other codes.

Two groups at matched replication d (workers per partition):
  d = 4, n about 16:  PG(2,3), AG(2,4), soft BIBD, product FRC(4,1) (x) FRC(4,1),
                      FRC, BGC, SBC, rBGC, expander, graph scheme
  d = 8, n about 64:  PG(2,7), AG(2,8), soft BIBD, product AG(2,2) (x) AG(2,4), FRC,
                      BGC, SBC, rBGC, expander, graph scheme
SBC (stochastic block code, Charles & Papailiopoulos 2018): communities of d workers and d
partitions, p = 0.75 inside and q across so that the expected replication is d.
Decoding is optimal (least squares) for every code (the expander and graph scheme too,
so the comparison is about the codes, not the decoders). Errors are divided by k (the
fraction of the gradient's squared mass lost, ||alpha - 1||^2 / k). Worst case: exhaustive
when C(n, s) <= 2,000, else gradcode's search (a lower bound on the true worst);
random: exact mean or Monte Carlo over 200 sets.

Run:  OMP_NUM_THREADS=1 python benchmarks/adversarial.py
Writes benchmarks/results/adversarial.md and adversarial.png.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import gradcode as gc
from gradcode import analysis as A

OUT = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)


def groups() -> dict[str, dict[str, gc.Code]]:
    D = gc.designs
    C = gc.codes
    return {
        "d=4 (n~16)": {
            "BIBD PG(2,3)": C.bibd(D.projective_plane(3)),
            "BIBD AG(2,4)": C.bibd(D.affine_plane(4)),
            "soft BIBD(16,16,4)": C.soft_bibd(16, 16, 4, seed=0),
            "product FRC(4,1)xFRC(4,1)": C.kronecker(C.fractional_repetition(4, 1),
                                                     C.fractional_repetition(4, 1)),
            "FRC(16,3)": C.fractional_repetition(16, 3),
            "BGC(16,16,4)": C.bernoulli(16, 16, 4, seed=0),
            "SBC(16,16,c=4,p=.75,q=.083)": C.stochastic_block(16, 16, 4, 0.75, 1 / 12, seed=0),
            "rBGC(16,16,4)": C.regularized_bernoulli(16, 16, 4, seed=0),
            "expander(16,4)": C.expander(16, 4, seed=0),
            "graph scheme(k=8,d=4)": C.graph_scheme(k=8, d=4, seed=0),
        },
        "d=8 (n~64)": {
            "BIBD PG(2,7)": C.bibd(D.projective_plane(7)),
            "BIBD AG(2,8)": C.bibd(D.affine_plane(8)),
            "soft BIBD(64,64,8)": C.soft_bibd(64, 64, 8, seed=0),
            "product AG(2,2)xAG(2,4)": C.kronecker(C.bibd(D.affine_plane(2)),
                                                   C.bibd(D.affine_plane(4))),
            "FRC(64,7)": C.fractional_repetition(64, 7),
            "BGC(64,64,8)": C.bernoulli(64, 64, 8, seed=0),
            "SBC(64,64,c=8,p=.75,q=.036)": C.stochastic_block(64, 64, 8, 0.75, 1 / 28, seed=0),
            "rBGC(64,64,8)": C.regularized_bernoulli(64, 64, 8, seed=0),
            "expander(64,8)": C.expander(64, 8, seed=0),
            "graph scheme(k=16,d=8)": C.graph_scheme(k=16, d=8, seed=0),
        },
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    curves: dict[str, dict[str, tuple[list, list, list]]] = {}
    t0 = time.perf_counter()
    for gname, codes in groups().items():
        curves[gname] = {}
        for name, code in codes.items():
            ss, worst, rand = [], [], []
            for f in FRACTIONS:
                s = max(1, round(f * code.n))
                wc = A.worst_case(code, s, exhaustive_limit=2_000, restarts=3, seed=0)
                ee = A.expected_error(code, s, trials=200, seed=0, exact_limit=2_000)
                ss.append(s / code.n)
                worst.append(wc.error / code.k)
                rand.append(ee.mean / code.k)
                rows.append((gname, name, code.n, code.k, code.replication, code.load, s,
                             wc.error / code.k, wc.method, ee.mean / code.k, ee.method))
            eps = 0.1 * code.k
            thr = A.adversarial_threshold(code, eps, exhaustive_limit=2_000, restarts=2)
            rows.append((gname, name, code.n, code.k, code.replication, code.load, "s*(0.1k)",
                         thr / code.n, "threshold/n", float("nan"), ""))
            curves[gname][name] = (ss, worst, rand)
            print(f"{gname:12s} {name:28s} done  {time.perf_counter() - t0:7.1f}s", flush=True)
    write_table(rows, time.perf_counter() - t0)
    plot(curves)


def write_table(rows, seconds: float) -> None:
    intro = ("Error = ||alpha - 1||^2 / k. `worst` is exhaustive or gradcode's search (a "
             "lower bound on the true worst); `random` is the mean over uniformly random "
             "straggler sets of the same size. The `s*(0.1k)` rows give the adversarial "
             "threshold (fewest stragglers reaching error >= 0.1 k) divided by n "
             "(closed form for BIBD codes, binary search with worst_case otherwise: an upper "
             "bound when not exhaustive).")
    header = ("| group | code | n | k | repl | load | s | worst/k | worst method | "
              "random/k | random method |")
    lines = ["# Adversarial vs random stragglers (optimal decoding)", "", intro, "",
             header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for g, name, n, k, d, load, s, w, wm, r, rm in rows:
        rs = "" if np.isnan(r) else f"{r:.4f}"
        lines.append(f"| {g} | {name} | {n} | {k} | {d} | {load} | {s} | {w:.4f} | {wm} | "
                     f"{rs} | {rm} |")
    lines += ["", f"Total run time: {seconds:.0f} s (one run, 2 shared cores)."]
    (OUT / "adversarial.md").write_text("\n".join(lines) + "\n")


def plot(curves) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(7 * len(curves), 5), squeeze=False)
    for ax, (gname, codes) in zip(axes[0], curves.items()):
        for i, (name, (ss, worst, rand)) in enumerate(codes.items()):
            color = f"C{i % 10}"
            ax.plot(ss, worst, "-o", color=color, label=f"{name}")
            ax.plot(ss, rand, "--", color=color, alpha=0.6)
        ax.set_title(f"{gname}: worst case (solid) vs random (dashed)")
        ax.set_xlabel("stragglers s / n")
        ax.set_ylabel("error / k")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "adversarial.png", dpi=120)


if __name__ == "__main__":
    main()
