"""Tandon, Lei, Dimakis, Karampatziakis 2017: gradient coding against uncoded GD.

Exact gradient codes (fractional repetition and cyclic repetition) let the master decode
the full gradient from any n - s workers, at load s + 1. We train the same logistic
regression with uncoded GD and with both codes on the simulated backend (virtual clock)
under workers that randomly become slow, and measure the time per iteration and the time
to a target loss; then sweep the probability of being slow.
"""

from __future__ import annotations

import numpy as np
from _gallery import pyplot, table, write_page

import gradcode as gc

N = 12
ROUNDS = 60
P_SLOW = (0.0, 0.02, 0.05, 0.1, 0.2)
MAIN_P = 0.02


def delays(p_slow: float) -> gc.stragglers.DelayModel:
    """Per partition 10 ms + Exp(5 ms); each worker flips to 8x slower with probability
    p_slow per round and recovers with probability 0.3."""
    base = gc.stragglers.ShiftedExponential(shift=0.010, mean=0.005, seed=0)
    return gc.stragglers.Markov(p_slow=p_slow, p_recover=0.3, factor=8.0, base=base, seed=1)


def schemes() -> dict[str, gc.schemes.Scheme]:
    S = gc.schemes
    C = gc.codes
    return {"uncoded GD": S.uncoded(N),
            "FRC s=1": S.exact(C.fractional_repetition(N, 1), decoder="frc_group"),
            "FRC s=2": S.exact(C.fractional_repetition(N, 2), decoder="frc_group"),
            "cyclic s=1": S.exact(C.cyclic_repetition(N, 1, seed=0)),
            "cyclic s=2": S.exact(C.cyclic_repetition(N, 2, seed=0))}


def main() -> None:
    X, y = gc.data.synthetic_classification(2400, 30, seed=0)
    problem = gc.problems.logistic_regression(X, y, k=N)
    runs = {}
    for name, scheme in schemes().items():
        runs[name] = gc.training.train(problem, scheme, rounds=ROUNDS, delays=delays(MAIN_P),
                                       lr=1.0, seed=0)
    ref = runs["uncoded GD"]
    target = float(ref.column("loss")[int(0.75 * ROUNDS) - 1])
    t_unc = ref.time_to_loss(target)
    rows = []
    for name, h in runs.items():
        t = h.time_to_loss(target)
        rows.append([name, h.meta.get("load", "") or schemes()[name].code.load,
                     float(np.mean(h.column("round_time"))) * 1e3, t, t_unc / t,
                     h.final["loss"], float(np.max(h.column("error")))])

    sweep = {name: [] for name in runs}
    for p in P_SLOW:
        for name, scheme in schemes().items():
            h = gc.training.train(problem, scheme, rounds=30, delays=delays(p), lr=1.0,
                                  seed=0, eval_every=30)
            sweep[name].append(float(np.mean(h.column("round_time"))) * 1e3)

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (name, h) in enumerate(runs.items()):
        a1.plot(h.column("sim_time"), h.column("loss"), color=f"C{i}", label=name)
        a2.plot(P_SLOW, sweep[name], "-o", color=f"C{i}", label=name)
    a1.axhline(target, color="gray", lw=0.8, ls=":")
    a1.set_xlabel("virtual time (s)")
    a1.set_ylabel("training loss")
    a1.set_title(f"loss against time, P(turn slow) = {MAIN_P} per round")
    a2.set_xlabel("probability of turning 8x slower per round")
    a2.set_ylabel("mean time per iteration (ms)")
    a2.set_title("time per iteration")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    same = all(np.allclose(h.column("loss"), ref.column("loss"), rtol=1e-9, atol=1e-12)
               for h in runs.values())
    best = min(rows, key=lambda r: r[3])
    sweep_rows = [[p, *[sweep[name][j] for name in runs]] for j, p in enumerate(P_SLOW)]
    sec = [
        "## Setting", "",
        f"Logistic regression on synthetic data (2,400 samples, 30 features) split into "
        f"k = n = {N} partitions; gradient descent with learning rate 1 for {ROUNDS} rounds "
        "on the simulated backend. A worker's time per round is its load times "
        "(10 ms + Exp(5 ms)), and each worker turns 8x slower with probability "
        f"{MAIN_P} per round and recovers with probability 0.3 (a Markov chain: "
        f"{MAIN_P / (MAIN_P + 0.3):.1%} of the workers, {N * MAIN_P / (MAIN_P + 0.3):.2f} on "
        "average, are slow at any time). Every scheme sees the same delay draws. Exact codes wait "
        "until the responders can decode exactly. Target: the loss uncoded GD reaches "
        "after 75% of the rounds.", "",
        "## Our numbers", "",
        table(["scheme", "load", "mean time / iteration (ms)", "time to target (s)",
               "speedup", "final loss", "max decoding error"], rows), "",
        "Mean time per iteration (ms) as stragglers become more frequent (30 rounds each):",
        "", table(["P(slow)", *runs], sweep_rows), "",
        "## Against the paper", "",
        "The paper (R. Tandon, Q. Lei, A. G. Dimakis, N. Karampatziakis, *Gradient coding: "
        "avoiding stragglers in distributed learning*, arXiv:1612.03301, ICML 2017) proves "
        "that tolerating any s stragglers exactly needs every partition on at least s + 1 "
        "workers, gives the fractional-repetition and cyclic-repetition codes that meet "
        "this bound, and reports experiments on Amazon EC2 in which the codes run faster "
        "than uncoded (naive) distributed GD. We do "
        "not have its measured times, and ours come from a simulated cluster, so only the "
        "qualitative picture can be compared:", "",
        f"* **Exactness** {'holds' if same else 'FAILS'}: every coded run follows uncoded "
        "GD's loss curve round for round (max decoding error 0 up to round-off), at "
        "load s + 1, the paper's lower bound.",
        f"* **Faster when stragglers are present.** Best time to target: {best[0]} "
        f"({best[4]:.2f}x uncoded GD); cyclic s = 2: {rows[4][4]:.2f}x. With no stragglers "
        "the coded schemes pay their s + 1 load in every round and are slower than "
        "uncoded GD (first row of the sweep), as expected.",
        "* **Where it differs: many slow workers.** When more than s workers are slow at "
        f"once (P(slow) >= {P_SLOW[2]} in the sweep, i.e. about "
        f"{N * P_SLOW[2] / (P_SLOW[2] + 0.3):.1f} or more slow workers on average), the "
        "cyclic code has to wait for a slow worker that also carries s + 1 partitions, and "
        "it becomes SLOWER than uncoded GD (see the sweep). FRC degrades gracefully, "
        "because one answer per group suffices, which often survives more than s "
        "stragglers. The paper's EC2 stragglers are not modelled here; the lesson is that "
        "an exact code designed for s stragglers should be chosen with the actual number "
        "of slow workers in mind (see [nested codes](massny2022.md)).",
    ]
    write_page("tandon2017", "Tandon et al. 2017: exact gradient codes vs uncoded GD",
               "R. Tandon, Q. Lei, A. G. Dimakis, N. Karampatziakis, *Gradient coding: "
               "avoiding stragglers in distributed learning*, arXiv:1612.03301 (ICML 2017).",
               sec, fig)


if __name__ == "__main__":
    main()
