"""Charles and Papailiopoulos 2018: stochastic block codes and the hardness of the adversary.

An SBC splits workers and partitions into c communities; B[i, j] = 1 with probability p
inside a community and q across. p = 1, q = 0 is an FRC; p = q is a BGC. The paper's claim:
finding the worst stragglers of an SBC is as hard as detecting the communities. We keep
the expected replication fixed (4 p + 12 q = 3, n = 16) and weaken the block structure from
q = 0 to p = q, and ask how close two polynomial-time adversaries get to the TRUE worst
straggler set (exhaustive search):

* a spectral community-detection adversary: embed the workers with the top c
  eigenvectors of B B^T, cluster them (k-means), and straggle the cluster whose loss
  hurts most (each candidate scored with the true optimal-decoding error);
* gradcode's generic ``worst_case`` search (greedy + swap local search), forced to search.
"""

from __future__ import annotations

import numpy as np
from _gallery import pyplot, table, write_page
from scipy.cluster.vq import kmeans2

import gradcode as gc

N, C, S = 16, 4, 4            # 16 workers/partitions, 4 communities of 4, 4 stragglers
REPL = 3                      # expected replication of every code
PS = (0.75, 0.65, 0.55, 0.45, 0.35, 0.25)
SEEDS = tuple(range(6))


def q_for(p: float) -> float:
    """Cross-community probability keeping the expected replication at REPL."""
    size = N // C
    return max(0.0, (REPL - size * p) / (N - size))


def spectral_adversary(code: gc.Code, s: int, communities: int, seed: int) -> np.ndarray:
    """Straggle the detected community whose loss costs most (a polynomial-time attack).

    Workers are embedded with the top ``communities`` eigenvectors of B B^T (shared
    partitions), clustered by k-means; for each cluster the candidate set is its s members
    most connected to the cluster (padded with the workers closest to it when the cluster
    is smaller than s). Candidates are scored with the optimal decoder's true error.
    """
    B = np.abs(code.toarray())
    W = B @ B.T
    _, vecs = np.linalg.eigh(W)
    emb = vecs[:, -communities:]
    _, labels = kmeans2(emb, communities, minit="++", seed=seed)
    best, best_err = None, -1.0
    for c in range(communities):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        affinity = W[:, members].sum(axis=1)          # overlap of every worker with the cluster
        order = np.argsort(-affinity, kind="stable")
        inside = [i for i in order if i in set(members)]
        outside = [i for i in order if i not in set(members)]
        cand = np.array((inside + outside)[:s])
        err = gc.analysis.error(code, np.setdiff1d(np.arange(code.n), cand))
        if err > best_err:
            best, best_err = cand, err
    return best


def main() -> None:
    rows, curves = [], {"spectral": [], "search": [], "random": []}
    for p in PS:
        q = q_for(p)
        r_spec, r_search, r_rand, worst_abs = [], [], [], []
        for seed in SEEDS:
            code = gc.codes.stochastic_block(N, N, C, p, q, seed=seed)
            truth = gc.analysis.worst_case(code, S, exhaustive_limit=5_000)
            assert truth.method == "exhaustive"
            spec = spectral_adversary(code, S, C, seed)
            e_spec = gc.analysis.error(code, np.setdiff1d(np.arange(N), spec))
            search = gc.analysis.worst_case(code, S, exhaustive_limit=0, restarts=1, seed=seed)
            rand = gc.analysis.expected_error(code, S, trials=300, seed=seed,
                                              exact_limit=0)
            worst_abs.append(truth.error)
            r_spec.append(e_spec / truth.error)
            r_search.append(search.error / truth.error)
            r_rand.append(rand.mean / truth.error)
        curves["spectral"].append(np.mean(r_spec))
        curves["search"].append(np.mean(r_search))
        curves["random"].append(np.mean(r_rand))
        rows.append([p, round(q, 4), np.mean(worst_abs) / N, np.mean(r_spec), min(r_spec),
                     np.mean(r_search), min(r_search), np.mean(r_rand)])
        print(f"p={p}: spectral {np.mean(r_spec):.3f}, search {np.mean(r_search):.3f}",
              flush=True)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    x = [p - q_for(p) for p in PS]
    ax.plot(x, curves["spectral"], "-o", label="spectral community-detection adversary")
    ax.plot(x, curves["search"], "-s", label="worst_case search (greedy + swaps)")
    ax.plot(x, curves["random"], "--", color="gray", label="random stragglers (mean)")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("block contrast p - q  (0: BGC, right: FRC-like)")
    ax.set_ylabel("error reached / true worst error")
    ax.set_title(f"SBC n = k = {N}, {C} communities, s = {S}, replication {REPL}")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    strong = rows[0]
    weak = rows[-1]
    sec = [
        "## Setting", "",
        f"n = k = {N}, {C} communities of {N // C} workers and {N // C} partitions, "
        f"s = {S} stragglers (one community's worth). p runs from {PS[0]} to {PS[-1]} with "
        f"q = ({REPL} - {N // C}p)/{N - N // C}, so every code has expected replication "
        f"{REPL}; at p = q = {PS[-1]} the code is a BGC. For every p, {len(SEEDS)} random "
        "codes; the true worst set is found by exhaustive search over all "
        f"C({N}, {S}) sets. Errors use optimal decoding. "
        "The spectral adversary is defined in the script (`spectral_adversary`); "
        "`worst_case` is forced to search (`exhaustive_limit=0`, one restart).", "",
        "## Our numbers", "",
        table(["p", "q", "true worst error / k", "spectral / worst (mean)",
               "spectral / worst (min)", "search / worst (mean)", "search / worst (min)",
               "random mean / worst"], rows), "",
        "## Against the paper", "",
        "The paper (Z. Charles, D. Papailiopoulos, *Gradient coding via the stochastic block "
        "model*, arXiv:1805.10378, 2018) states that SBCs are efficient and accurate and that, "
        "under certain settings, adversarial straggler selection becomes as hard as "
        "detecting the community structure of a multi-community stochastic block model. We "
        "have no numbers from the paper to put side by side. What our small experiment shows:", "",
        f"* With strong blocks (p = {strong[0]}), the spectral adversary reaches "
        f"{strong[3]:.0%} of the true worst error on average: when the communities are "
        "detectable, detecting them is an effective attack, as the paper's reduction "
        "suggests.",
        f"* As the blocks fade (p = {weak[0]}, a BGC), the spectral adversary falls to "
        f"{weak[3]:.0%} of the worst, while random stragglers reach {weak[7]:.0%}: "
        "without community structure there is nothing to detect.",
        f"* gradcode's generic search stays at {min(r[5] for r in rows):.0%} or more of the "
        "worst on average at every p. At this n a local search is strong; a hardness "
        "statement is about how the cost of the attack grows with n near the detection "
        "threshold, which a 2-minute experiment with exhaustive ground truth cannot reach. "
        "So this page "
        "supports the direction of the claim (community structure is what an adversary "
        "exploits) but does not, and cannot at this size, show computational hardness.",
        "", "The spectral adversary lives in this script for now; the comparison of SBC with "
        "the other codes under worst-case search is in `benchmarks/adversarial.py`.",
    ]
    write_page("charles_papailiopoulos2018", "Charles & Papailiopoulos 2018: stochastic block "
               "codes and community-detection adversaries",
               "Z. Charles, D. Papailiopoulos, *Gradient coding via the stochastic block "
               "model*, arXiv:1805.10378 (2018).", sec, fig)


if __name__ == "__main__":
    main()
