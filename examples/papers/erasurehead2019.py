"""Wang, Charles, Papailiopoulos 2019: ErasureHead.

ErasureHead assigns data with a fractional repetition code (groups of d workers share d
partitions), collects answers until w workers responded or every group is covered, and
adds the first answer of every covered group without rescaling: a slightly biased
gradient, much earlier. We reproduce the paper's setting (delays Exp(mean 0.5 s) per
iteration, 30 workers, collect 15) on the simulated backend and compare the time to a
target loss with uncoded GD and with exact FRC coding.
"""

from __future__ import annotations

import numpy as np
from _gallery import pyplot, table, write_page

import gradcode as gc

N, D, W = 30, 3, 15
ROUNDS = 80


def main() -> None:
    X, y = gc.data.synthetic_classification(3000, 40, seed=0)
    problem = gc.problems.logistic_regression(X, y, k=N)
    delays = gc.stragglers.Exponential(0.5, seed=0)
    schemes = {
        "uncoded GD": gc.schemes.uncoded(N),
        f"exact FRC (groups of {D})": gc.schemes.exact(gc.codes.fractional_repetition(N, D - 1),
                                                      decoder="frc_group"),
        f"ErasureHead d={D}, w={W}": gc.schemes.erasurehead(N, D, W),
    }
    runs = {}
    for opt in ("gd", "nesterov"):
        for name, scheme in schemes.items():
            runs[(name, opt)] = gc.training.train(problem, scheme, rounds=ROUNDS, delays=delays,
                                                  optimizer=opt, lr="auto", seed=0)
    rows = []
    for opt in ("gd", "nesterov"):
        ref = runs[("uncoded GD", opt)]
        f_star = float(np.min([h.column("loss").min() for (n_, o), h in runs.items()
                               if o == opt]))
        f0 = float(ref.column("loss")[0])
        target = f_star + 0.05 * (f0 - f_star)
        t_ref = ref.time_to_loss(target)
        for name in schemes:
            h = runs[(name, opt)]
            t = h.time_to_loss(target)
            rows.append([opt, name, float(np.mean(h.column("round_time"))), t,
                         t_ref / t if np.isfinite(t) else 0.0, h.final["loss"],
                         float(np.mean(h.column("error")))])
    eh = runs[(f"ErasureHead d={D}, w={W}", "gd")]
    per_round = eh.column("error") / D / (N // D)     # fraction of groups erased, per round
    erased = float(np.mean(per_round))
    erased_se = float(np.std(per_round, ddof=1) / np.sqrt(ROUNDS))

    def mean_se(values) -> str:
        v = np.asarray(values, dtype=float)
        return f"{v.mean():.4g} +- {v.std(ddof=1) / np.sqrt(v.size):.2g}"
    p_erase = gc.analysis.erasure_probability(N, D, W)
    wait_all = gc.analysis.expected_wait_exponential(N, N, 0.5)
    wait_w = gc.analysis.expected_wait_exponential(N, W, 0.5)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, opt in zip(axes, ("gd", "nesterov")):
        for i, name in enumerate(schemes):
            h = runs[(name, opt)]
            ax.plot(h.column("sim_time"), h.column("loss"), color=f"C{i}", label=name)
        ax.set_title(f"optimizer: {opt}")
        ax.set_xlabel("virtual time (s)")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss")

    gd = {r[1]: r for r in rows if r[0] == "gd"}
    nag = {r[1]: r for r in rows if r[0] == "nesterov"}
    z = abs(erased - p_erase) / erased_se
    sec = [
        "## Setting", "",
        f"Logistic regression on synthetic data (3,000 samples, 40 features), n = {N} "
        f"workers and k = {N} partitions; every worker needs Exp(mean 0.5 s) per round "
        "times its load, the same draws for every scheme (simulated backend, virtual "
        f"clock); {ROUNDS} rounds with learning rate 1/L, plain GD and the accelerated "
        "(Nesterov) update. ErasureHead: FRC groups of d = 3, collect until 15 workers "
        "answered or every group is covered. Exact FRC: wait until every group is covered. "
        "Target: 5% of the initial gap above the best loss any scheme reached.", "",
        "## Our numbers", "",
        table(["optimizer", "scheme", "mean round time (s)", "time to target (s)",
               "speedup vs uncoded", "final loss", "mean error ||alpha - 1||^2"], rows), "",
        "Closed forms against the run (i.i.d. delays make the first w responders a "
        "uniformly random w-set):", "",
        table(["quantity", "closed form", "measured (mean +- 1 standard error)"],
              [["P(group erased) = C(n-d, w) / C(n, w)", p_erase,
                f"{erased:.4g} +- {erased_se:.2g}"],
               ["E[wait for all 30] = 0.5 H_30 (load 1)", wait_all,
                mean_se(runs[("uncoded GD", "gd")].column("round_time"))],
               ["E[wait for first 15] = 0.5 (H_30 - H_15), times load 3",
                D * wait_w, mean_se(eh.column("round_time"))]]), "",
        "ErasureHead stops at w = 15 arrivals or earlier when every group is covered, so "
        "its mean round time is at most the 'first 15' value.", "",
        "## Against the paper", "",
        "The paper (H. Wang, Z. Charles, D. Papailiopoulos, *ErasureHead: distributed "
        "gradient descent without delays using approximate gradient coding*, "
        "arXiv:1901.09671, 2019) proves that, down to a small noise floor, ErasureHead "
        "converges as fast as distributed GD per iteration and has a faster overall "
        "runtime under a probabilistic delay model, and reports significant speedups over "
        "both uncoded and exactly coded GD on real clusters. We have no numbers of the "
        "paper to put side by side.", "",
        f"* **Speedup over uncoded GD**: {gd[f'ErasureHead d={D}, w={W}'][4]:.2f}x for "
        f"ErasureHead and {gd[f'exact FRC (groups of {D})'][4]:.2f}x for exact FRC "
        f"with plain GD, {nag[f'ErasureHead d={D}, w={W}'][4]:.2f}x and "
        f"{nag[f'exact FRC (groups of {D})'][4]:.2f}x with the accelerated update. "
        "ErasureHead's rounds are shorter than exact FRC's "
        "because it does not wait for the last uncovered group.",
        "* **Noise floor.** ErasureHead drops the erased groups without rescaling; its "
        "final loss is slightly above the exact schemes' (the table's final loss column), "
        "the bias the paper calls a noise floor. The measured erasure rate is "
        f"{z:.1f} standard errors from the closed form.",
        "* **Caveat.** Delays here are proportional to the load (3x for the coded "
        "schemes), a harsher model for coding than a per-iteration delay independent of "
        "the load; with load-independent delays the coded schemes would gain more.",
    ]
    write_page("erasurehead2019", "Wang et al. 2019: ErasureHead", "H. Wang, Z. Charles, "
               "D. Papailiopoulos, *ErasureHead: distributed gradient descent without delays "
               "using approximate gradient coding*, arXiv:1901.09671 (2019).", sec, fig)


if __name__ == "__main__":
    main()
