"""References for benchmarks/autopilot.py: the clairvoyant bound (Monte Carlo and an
independent exact integral) and the best non-clairvoyant plan (exhaustive search).

Both work on the "time cube" of a delay model: cube[t, i, L - 1] = the time worker i takes
in round t when it holds L partitions (L = 1..k), i.e. ``model.sample(t, L * ones)``.
For the benchmark's models the draws of a round do not depend on the load, so one cube
answers every assignment of every plan on the same draws.

* Clairvoyant bound of round t: the smallest makespan M such that the partitions the
  workers could finish by M, sum_i #{L : cube[t, i, L - 1] <= M}, reach k (every worker
  knows its delay in advance, the data goes to the best set of workers, no replica is
  needed, exact gradients). Its mean over rounds times the straggler-free number of
  rounds is the bound.
* Exact check (persistent regime): with T_i(L) = s_i (a + c L + E_i), E_i ~ Exp(mu)
  i.i.d., N_i(M) = #{L <= k : T_i(L) <= M} has P(N_i(M) >= j) = 1 - exp(-(M / s_i - a -
  c j) / mu)^+, the N_i are independent, so P(M* <= M) = P(sum_i N_i(M) >= k) is an
  exact convolution and E M* = int_0^inf P(M* > M) dM (trapezoid on a fine grid).
* Best non-clairvoyant plan: every plan of the autopilot's candidate family built from
  the TRUE per-worker speeds and load curve (group plans over the m fastest workers, m =
  1..n, group sizes 1..8, exact and with deadlines at the 50/60/75/90% quantiles of the
  exact round time; cyclic s = 1..3; the heterogeneous code at three deadlines), each
  predicted on the true model's draws with the autopilot's own predictor; the smallest
  cost (seconds per exact-equivalent round) wins. It knows the delay distribution, not
  the realisations.
"""

from __future__ import annotations

import math

import numpy as np

from gradcode import stragglers as st
from gradcode.engine.autopilot import Plan, group_plan, predict
from gradcode.engine.autopilot.predictor import straggling_probabilities


def time_cube(model: st.DelayModel, n: int, k: int, rounds: range) -> np.ndarray:
    """cube[t, i, L - 1]: worker i's time in round t at load L."""
    return np.stack([np.stack([model.sample(t, np.full(n, float(L))) for L in range(1, k + 1)],
                              axis=1) for t in rounds])


def clairvoyant_makespans(cube: np.ndarray, k: int) -> np.ndarray:
    """Best makespan of every round of the cube (see the module docstring)."""
    out = np.empty(cube.shape[0])
    for t, times in enumerate(cube):
        cands = np.unique(times[np.isfinite(times)])
        lo, hi = 0, cands.size - 1
        while lo < hi:                                   # smallest feasible makespan
            mid = (lo + hi) // 2
            if np.sum(times <= cands[mid]) >= k:         # times are nondecreasing in L
                hi = mid
            else:
                lo = mid + 1
        out[t] = cands[lo]
    return out


def clairvoyant_exact(speeds: np.ndarray, a: float, c: float, mu: float, k: int,
                      step: float = 2e-4) -> float:
    """E[best makespan] for T_i(L) = s_i (a + c L + E_i), E_i ~ Exp(mu), by the exact
    convolution of the module docstring (no simulation)."""
    speeds = np.asarray(speeds, dtype=float)
    lo = a + c                                          # no round is faster
    grid = np.arange(lo, float(speeds.min()) * (a + c * k + 40 * mu), step)
    surv = np.zeros(grid.size)
    j = np.arange(1, k + 1)
    for gi, M in enumerate(grid):
        if gi and surv[gi - 1] < 1e-13:                 # the rest of the integral is < 1e-9
            break
        dist = np.zeros(k + 1)
        dist[0] = 1.0                                   # pmf of min(k, sum N_i)
        for s in speeds:
            x = M / s - a - c * j
            ge = np.where(x > 0, -np.expm1(-np.maximum(x, 0) / mu), 0.0)   # P(N >= j)
            pmf = np.r_[1.0 - ge[0], ge[:-1] - ge[1:], ge[-1]]          # P(N = 0..k)
            new = np.convolve(dist, pmf)
            dist = np.r_[new[:k], new[k:].sum()]
        surv[gi] = 1.0 - dist[k]
    return lo + float(np.trapezoid(surv, grid))


class TrueModel:
    """Stands in for the autopilot's estimator with the true model: ``times(load, R)``
    reads the cube (R's row count is ignored: every round of the cube is used)."""

    def __init__(self, cube: np.ndarray, a: float, c: float) -> None:
        self.cube, self.a, self.c = cube, a, c
        n = cube.shape[1]
        finite = np.where(np.isfinite(cube[:, :, 0]), cube[:, :, 0], np.nan)
        with np.errstate(all="ignore"):
            med = np.nanmedian(finite, axis=0)
        self.loc = np.where(np.isfinite(med), med, np.inf)
        self.failed = ~np.isfinite(self.loc)
        self.silent = np.zeros(n, dtype=bool)

    def g(self, load):
        L = np.asarray(load, dtype=float)
        return (self.a + self.c * L) / (self.a + self.c)

    def times(self, load, R=None):
        L = np.asarray(load, dtype=int)
        idx = np.clip(L - 1, 0, self.cube.shape[2] - 1)
        T = self.cube[:, np.arange(L.size), idx]
        return np.where(L > 0, T, 0.0)


def family(tm: TrueModel, n: int, k: int, quantiles=(0.5, 0.6, 0.75, 0.9)) -> list[Plan]:
    """The candidate family of the autopilot, built from the true speeds (module docstring)."""
    ok = [i for i in np.argsort(tm.loc, kind="stable").tolist() if not tm.failed[i]]
    out: list[Plan] = []
    for m in range(1, len(ok) + 1):
        active = ok[:m]
        for d in range(1, min(8, m) + 1):
            exact = group_plan(n, k, active, d, tm.loc, tm.g, None)
            out.append(exact)
            full = tm.times(exact.load)
            G = np.stack([full[:, list(g)].min(axis=1) for g in exact.groups], axis=1).max(1)
            G = G[np.isfinite(G)]
            for q in quantiles if G.size else ():
                out.append(group_plan(n, k, active, d, tm.loc, tm.g, None,
                                      deadline=float(np.quantile(G, q))))
    if k == n:
        out += [Plan("cyclic", n, k, s=s) for s in (1, 2, 3)]
        unit = tm.times(np.ones(n))
        finite = unit[np.isfinite(unit)]
        for q in (0.5, 0.75, 0.9):
            tau = float(np.quantile(finite, q))
            p = straggling_probabilities(tm, np.ones(n), tau, None)
            out.append(Plan("heterogeneous", n, k, deadline=tau,
                            p=tuple(np.round(p, 4).tolist())))
    return out


def best_non_clairvoyant(cube: np.ndarray, a: float, c: float, n: int, k: int,
                         gamma: float = 2.0, bias_tol: float = 0.05):
    """(best plan, its prediction, best exact plan, its prediction, plans searched)."""
    tm = TrueModel(cube, a, c)
    plans = family(tm, n, k)
    preds = [predict(p, tm, None, gamma=gamma, bias_tol=bias_tol) for p in plans]
    costs = np.array([p.cost for p in preds])
    best = int(np.argmin(costs))
    exact = [i for i, p in enumerate(plans) if p.deadline is None]
    be = min(exact, key=lambda i: costs[i])
    return plans[best], preds[best], plans[be], preds[be], len(plans)


def check_bound(mc: float, se: float, exact: float) -> str:
    """One line comparing the Monte Carlo bound with the exact integral."""
    z = (mc - exact) / se if se > 0 else math.nan
    return f"Monte Carlo {mc:.4f} +- {se:.4f} s, exact integral {exact:.4f} s (z = {z:+.2f})"
