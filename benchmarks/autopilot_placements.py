"""How fast can ANY exact, non-clairvoyant scheme be in the autopilot's persistent regime?

Run:  python benchmarks/autopilot_placements.py      (writes
      benchmarks/results/autopilot_placements.md; about 3 minutes on 2 cores)

Issue 14 asks `auto` to come within 1.06x of the clairvoyant bound in the persistent regime
of benchmarks/autopilot.py (16 workers, workers 3 and 11 10x slow, worker time
speed_i * (a + c * load_i + Exp(0.3)), a = 1, c = 0.1; straggler-free round a + c = 1.1 s).
That bound is 1.233x the straggler-free time, so the target is 1.306x. This script asks
whether any scheme that fixes its data placement before the round's delays are drawn
(non-clairvoyant) and recovers the exact gradient can get there.

The model. A placement is a 0/1 matrix H (worker i holds partition j); worker i's load is
L_i = sum_j H[i, j] and its time T_i = cube[t, i, L_i - 1] (the same "time cube" as
benchmarks/autopilot_bounds.py, read from the regime's own delay model). An exact decoder
needs every partition in the support of some responder, so a round with placement H lasts
at least

    C(H) = max_j min_{i : H[i, j] = 1} T_i          (the coverage time),

and a scheme whose workers send their partitions' gradients separately attains C(H)
exactly (this model does not charge for message size). So min_H E[C(H)] is the best
expected round time of every exact non-clairvoyant scheme of the model, coded or not, and
it runs for the straggler-free number of rounds (exact gradients).

The search (a search, not a proof: the space has 2^256 placements):
1. exhaustively, every disjoint-group placement (fractional repetition with groups of any
   sizes, partitions split in groups of any sizes) on the m fastest workers, m = 1..16, up
   to 6 groups, larger worker groups holding no fewer partitions (with identical workers
   any other pairing is a relabelling of one of these or gives the slower group more work);
2. greedy single-bit flips from the best of (1) until no flip of the 256 improves;
3. simulated annealing over arbitrary placements from 3 random starts.
Every candidate is scored on the same 1,000 rounds of draws (common random numbers); the
winner is re-scored on 20,000 fresh rounds with its standard error.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import autopilot_bounds as ab  # noqa: E402
from autopilot import N, regimes  # noqa: E402
from training import A, C  # noqa: E402

SEARCH_ROUNDS = 1_000
CHECK_ROUNDS = 20_000
MAX_GROUPS = 6
TARGET = 1.06


def coverage_times(H: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """C(H) of every round of the cube (inf when some partition has no holder)."""
    load = H.sum(axis=1)
    T = cube[:, np.arange(H.shape[0]), np.clip(load - 1, 0, cube.shape[2] - 1)]
    T = np.where(load > 0, T, np.inf)
    per_part = np.where(H[None], T[:, :, None], np.inf).min(axis=1)
    return per_part.max(axis=1)


def mean_cost(H: np.ndarray, cube: np.ndarray) -> float:
    return float(coverage_times(H, cube).mean())


def compositions(total: int, parts: int):
    """Ordered tuples of `parts` positive integers summing to `total`."""
    for cuts in itertools.combinations(range(1, total), parts - 1):
        yield tuple(b - a for a, b in zip((0, *cuts), (*cuts, total)))


def group_placement(order: list[int], wsizes, psizes, n: int, k: int) -> np.ndarray:
    H = np.zeros((n, k), dtype=bool)
    w = p = 0
    for ws, ps in zip(wsizes, psizes):
        H[np.ix_(order[w:w + ws], range(p, p + ps))] = True
        w, p = w + ws, p + ps
    return H


def best_groups(cube: np.ndarray, order: list[int]):
    n, k = cube.shape[1], cube.shape[2]
    best, count = (math.inf, None, None), 0
    for m in range(1, n + 1):
        for g in range(1, min(MAX_GROUPS, m, k) + 1):
            for ws in set(tuple(sorted(c)) for c in compositions(m, g)):
                for ps in set(tuple(sorted(c)) for c in compositions(k, g)):
                    count += 1
                    H = group_placement(order, ws, ps, n, k)
                    v = mean_cost(H, cube)
                    if v < best[0]:
                        best = (v, H, (ws, ps))
    return best, count


def greedy(H: np.ndarray, cube: np.ndarray):
    H, cur, flips = H.copy(), mean_cost(H, cube), 0
    improved = True
    while improved:
        improved = False
        for i, j in itertools.product(range(H.shape[0]), range(H.shape[1])):
            H[i, j] ^= True
            v = mean_cost(H, cube)
            if v < cur - 1e-12:
                cur, improved, flips = v, True, flips + 1
            else:
                H[i, j] ^= True
    return cur, H, flips


def anneal(cube: np.ndarray, seed: int, steps: int = 4_000, t0: float = 0.05):
    rng = np.random.default_rng(seed)
    n, k = cube.shape[1], cube.shape[2]
    H = rng.random((n, k)) < 0.25
    cur = mean_cost(H, cube)
    best = (cur, H.copy())
    for s in range(steps):
        temp = t0 * (1 - s / steps) + 1e-4
        i, j = rng.integers(n), rng.integers(k)
        H[i, j] ^= True
        v = mean_cost(H, cube)
        if v <= cur or rng.random() < math.exp((cur - v) / temp):
            cur = v
            if cur < best[0]:
                best = (cur, H.copy())
        else:
            H[i, j] ^= True
    return best


def main() -> None:
    start = time.time()
    model = regimes()["persistent"]
    ref = A + C                                    # straggler-free round, no noise
    bound = ab.clairvoyant_exact(np.where(np.isin(np.arange(N), [3, 11]), 10.0, 1.0),
                                 A, C, 0.3, N) / ref
    cube = ab.time_cube(model, N, N, range(SEARCH_ROUNDS))
    order = np.argsort(np.nanmedian(cube[:, :, 0], axis=0), kind="stable").tolist()
    (g_cost, g_H, g_shape), count = best_groups(cube, order)
    l_cost, l_H, flips = greedy(g_H, cube)
    sa = [anneal(cube, seed) for seed in range(3)]
    cands = [("disjoint groups, exhaustive", g_cost, g_H), ("+ greedy flips", l_cost, l_H)]
    cands += [(f"annealing, start {s}", c, H) for s, (c, H) in enumerate(sa)]
    name, _, H = min(cands, key=lambda x: x[1])
    check = ab.time_cube(model, N, N, range(SEARCH_ROUNDS, SEARCH_ROUNDS + CHECK_ROUNDS))
    cov = coverage_times(H, check) / ref
    est, se = float(cov.mean()), float(cov.std() / math.sqrt(cov.size))
    rows = "\n".join(f"| {nm} | {c / ref:.4f} | {c / ref / bound:.4f} |" for nm, c, _ in cands)
    text = f"""# Best exact non-clairvoyant placement, persistent regime

`python benchmarks/autopilot_placements.py` (model and search: the script's docstring);
took {time.time() - start:.0f} s.

Clairvoyant bound (exact integral): {bound:.4f}x the straggler-free time; the issue's target
{TARGET}x the bound is {TARGET * bound:.4f}x.

| search | E[coverage time] / straggler-free round | / clairvoyant bound |
|---|---:|---:|
{rows}

Disjoint-group placements searched: {count:,}; best shape (worker group sizes, partition
group sizes) {g_shape}; greedy single-bit flips that improved it: {flips}.
Best placement ({name}), re-scored on {CHECK_ROUNDS:,} fresh rounds: {est:.4f} +- {se:.4f}
x straggler-free = {est / bound:.4f}x the bound (target {TARGET}: \
{"reachable" if est <= TARGET * bound else "not reached by any placement found"}).

Reading: the coverage time is a lower bound on the round time of any exact scheme with that
placement and is attained when workers report partitions separately, so no exact
non-clairvoyant scheme of this delay model is expected to beat the best placement found.
The gap to the clairvoyant bound is the price of not knowing, before the round, which of
the fast workers will be fast this round (the Exp(0.3) noise of every worker), not of the
two slow workers: with no slow workers at all the bound is already 1.213x.
"""
    out = os.path.join(os.path.dirname(__file__), "results", "autopilot_placements.md")
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
