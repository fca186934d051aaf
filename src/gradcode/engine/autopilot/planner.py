"""The candidate space of the autopilot and its switching rule.

Candidates (rebuilt at every decision from the current estimate):

* group plans (see :mod:`.predictor`) over the m fastest responsive workers, m from
  {all, all - 1, ..., all - 4, the workers within 1.5x / 2x / 3x of the median speed},
  group sizes d in {1, 2, 3, 4, 6, 8}. Workers are dealt to groups in a snake order of
  speed (every group gets a mix), partitions are dealt to groups greedily so that the
  groups finish together (group g gets one more partition while its best member's
  predicted time loc g(L + 1) is the smallest), and the remaining workers (slow, silent
  or failed) join groups as spare replicas: they cost the master nothing, and their
  arrivals, if any, keep the estimate honest (a worker that recovers is seen at once).
  Each is tried exact and with deadlines at the 50/75/90% quantiles of its exact round
  time.
* cyclic repetition codes s = 1, 2, 3 (when k = n), exact.
* the heterogeneous code for p_i(tau) at a few deadlines tau (when k = n).

Which partitions go where: the allocation reuses the current holdings (each group takes
the partitions its members already hold, most-held first), so that a switch ships as
few partitions as possible.

Switching rule: let c(P) be the predicted seconds per exact-equivalent round
(:func:`.predictor.rounds_factor`). The autopilot moves from the current plan C to the
best candidate B when

    c(B) < (1 - hysteresis) c(C)   and   (c(C) - c(B)) * horizon > move_seconds(C -> B),

with move_seconds = shipped copies * partition_bytes / bandwidth + switch_latency, and
at least ``min_rounds`` rounds observed (unless c(C) is infinite). Only candidates that
are not worse than C (by more than half the margin) when every residual beyond the
largest one actually observed is replaced by a 10x slowdown are considered: the master
rarely waits for the slowest answers, so the size of the tail is mostly censored, and a
plan that waits for single workers must not be chosen on a tail it has not seen. The
relative margin (10% by default) and the shared random numbers keep it from flapping
between plans of equal merit; the pessimistic-tail rule keeps it from leaving a good
plan on a model error (predictions for plans far from the one in force are off by
10-20%, see docs/autopilot.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core.validate import check_int, check_real
from .estimator import ClusterEstimator
from .predictor import Plan, Prediction, predict, straggling_probabilities

__all__ = ["Planner", "Decision", "group_plan", "start_plan"]

_SIZES = (1, 2, 3, 4, 6, 8)
_QUANTILES = (0.5, 0.75, 0.9)


def _snake(order: list[int], groups: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(groups)]
    for idx, w in enumerate(order):
        lap, pos = divmod(idx, groups)
        out[pos if lap % 2 == 0 else groups - 1 - pos].append(w)
    return out


def _allocate(speed: np.ndarray, k: int, g: Any) -> np.ndarray:
    """Partitions per group: greedy, one at a time to the group predicted to finish
    first with it (every group gets at least one when k allows)."""
    G = speed.size
    counts = np.zeros(G, dtype=int)
    if k >= G:
        counts[:] = 1
    for _ in range(k - counts.sum()):
        finish = speed * g(counts + 1)
        counts[int(np.argmin(finish))] += 1
    return counts


def group_plan(n: int, k: int, active: list[int], d: int, loc: np.ndarray, g: Any,
               holdings: list[set[int]] | None, deadline: float | None = None) -> Plan:
    """A group plan over ``active`` (fastest first) with groups of about ``d`` workers;
    the other workers become spare replicas (see the module docstring)."""
    m = len(active)
    n_groups = max(1, min(m // max(d, 1), k))
    groups = _snake(active, n_groups)
    speed = np.array([loc[grp].min() for grp in groups])
    counts = _allocate(speed, k, g)
    holdings = holdings or [set() for _ in range(n)]
    free = set(range(k))
    parts: list[list[int]] = [[] for _ in groups]
    for gi in np.argsort(-counts, kind="stable"):
        score = {j: sum(j in holdings[w] for w in groups[gi]) for j in free}
        pick = sorted(free, key=lambda j: (-score[j], j))[:counts[gi]]
        parts[gi] = sorted(pick)
        free -= set(pick)
    keep = [i for i, p in enumerate(parts) if p]
    groups = [groups[i] for i in keep]
    parts = [parts[i] for i in keep]
    for w in range(n):
        if w in active:
            continue
        overlap = [len(holdings[w] & set(p)) for p in parts]
        best = max(range(len(parts)), key=lambda i: (overlap[i], -len(groups[i]), -i))
        groups[best].append(w)
    return Plan("groups", n, k, tuple(tuple(sorted(x)) for x in groups),
                tuple(tuple(p) for p in parts), deadline)


def start_plan(n: int, k: int) -> Plan:
    """What the autopilot runs before it knows anything: contiguous groups of 4 workers
    (2 for n < 8; FRC with s = 3), exact - any 3 slow or dead workers, wherever they
    are, cost nothing, and the first rounds show almost every worker's speed."""
    d = 4 if n >= 8 else (2 if n >= 2 else 1)
    n_groups = max(1, min(n // d, k))
    bounds_w = np.linspace(0, n, n_groups + 1).round().astype(int)
    groups = [tuple(range(bounds_w[i], bounds_w[i + 1])) for i in range(n_groups)]
    counts = _allocate(np.ones(n_groups), k, lambda c: np.asarray(c, float))
    bounds = np.r_[0, np.cumsum(counts)]
    parts = [tuple(range(bounds[i], bounds[i + 1])) for i in range(n_groups)]
    return Plan("groups", n, k, tuple(groups), tuple(parts), None)


@dataclass(frozen=True)
class Decision:
    """One decision of the planner.

    Attributes:
        plan: the chosen plan.
        predicted: its prediction.
        current: the prediction for the plan in force (None at the start).
        moved_copies: (worker, partition) copies to ship for the switch.
        moved_partitions: partitions whose holder set changes.
        move_seconds: the charged switching time.
        switch: whether the plan changes.
        candidates: how many plans were compared.
    """

    plan: Plan
    predicted: Prediction
    current: Prediction | None
    moved_copies: int
    moved_partitions: int
    move_seconds: float
    switch: bool
    candidates: int


class Planner:
    """Enumerates candidates, predicts them, applies the switching rule.

    Args:
        n, k: workers and partitions.
        samples: simulated rounds per prediction.
        gamma, bias_tol: the convergence model (:func:`.predictor.rounds_factor`).
        hysteresis: relative gain needed to switch.
        min_rounds: rounds the estimator must have seen before a switch (unless the plan
            in force is predicted never to finish).
        horizon: rounds over which a switch must pay for itself.
        partition_bytes: size of one data partition (None: unknown, counted as 0 bytes).
        bandwidth: bytes per second when shipping partitions.
        switch_latency: fixed seconds charged per switch.
        families: subset of ``("groups", "cyclic", "heterogeneous")``.
    """

    def __init__(self, n: int, k: int, *, samples: int = 256, gamma: float = 2.0,
                 bias_tol: float = 0.05, hysteresis: float = 0.10, min_rounds: int = 3,
                 horizon: int = 20,
                 partition_bytes: float | None = None, bandwidth: float = 1e8,
                 switch_latency: float = 0.0,
                 families: tuple[str, ...] = ("groups", "cyclic", "heterogeneous")) -> None:
        where = "Planner"
        self.n = check_int(where, "n", n, low=1)
        self.k = check_int(where, "k", k, low=1)
        self.samples = check_int(where, "samples", samples, low=8)
        self.gamma = check_real(where, "gamma", gamma, low=0.0)
        self.bias_tol = check_real(where, "bias_tol", bias_tol, low=0.0)
        self.hysteresis = check_real(where, "hysteresis", hysteresis, low=0.0, high=1.0)
        self.min_rounds = check_int(where, "min_rounds", min_rounds, low=0)
        self.horizon = check_int(where, "horizon", horizon, low=1)
        self.partition_bytes = None if partition_bytes is None else \
            check_real(where, "partition_bytes", partition_bytes, low=0.0)
        self.bandwidth = check_real(where, "bandwidth", bandwidth, low=0.0, low_open=True)
        self.switch_latency = check_real(where, "switch_latency", switch_latency, low=0.0)
        bad = set(families) - {"groups", "cyclic", "heterogeneous"}
        if bad or not families:
            raise ValueError(f"Planner: families must be a non-empty subset of ('groups', "
                             f"'cyclic', 'heterogeneous'), got {families!r}")
        self.families = tuple(families)

    # ------------------------------------------------------------------ candidates
    def candidates(self, est: ClusterEstimator, current: Plan | None,
                   R: np.ndarray) -> list[Plan]:
        """Every plan worth predicting under the current estimate."""
        n, k = self.n, self.k
        loc = est.loc
        failed = est.failed
        silent = est.silent
        holdings = current.holdings() if current is not None else None
        ok = [i for i in np.argsort(loc, kind="stable").tolist()
              if not failed[i] and not silent[i]]
        if not ok:
            ok = [i for i in range(n) if not failed[i]] or list(range(n))
        med = float(np.median(loc[ok]))
        sizes = {len(ok) - j for j in range(5)}
        sizes |= {int(np.sum(loc[ok] <= f * med)) for f in (1.5, 2.0, 3.0)}
        out: list[Plan] = []
        if "groups" in self.families:
            for m in sorted(s for s in sizes if s >= 1):
                active = ok[:m]
                for d in _SIZES:
                    if d > m:
                        continue
                    exact = group_plan(n, k, active, d, loc, est.g, holdings)
                    out.append(exact)
                    full = est.times(exact.load, R)
                    G = np.stack([full[:, list(grp)].min(axis=1) for grp in exact.groups],
                                 axis=1).max(axis=1)
                    for q in _QUANTILES:
                        tau = float(np.quantile(G[np.isfinite(G)], q)) if \
                            np.any(np.isfinite(G)) else math.inf
                        if math.isfinite(tau) and tau > 0:
                            out.append(group_plan(n, k, active, d, loc, est.g, holdings,
                                                  deadline=tau))
        if k == n and "cyclic" in self.families:
            out += [Plan("cyclic", n, k, s=s) for s in (1, 2, 3) if s < n]
        if k == n and "heterogeneous" in self.families:
            unit = est.times(np.ones(n), R)
            finite = unit[np.isfinite(unit)]
            for q in (0.5, 0.75, 0.9):
                if finite.size == 0:
                    break
                tau = float(np.quantile(finite, q))
                p = straggling_probabilities(est, np.ones(n), tau, R)
                out.append(Plan("heterogeneous", n, k, deadline=tau,
                                p=tuple(np.round(p, 4).tolist())))
        return out

    def move(self, old: Plan | None, new: Plan) -> tuple[int, int, float]:
        """(shipped copies, partitions whose holders change, charged seconds)."""
        if old is None:
            return 0, 0, 0.0
        a, b = old.holdings(), new.holdings()
        copies = sum(len(b[i] - a[i]) for i in range(self.n))
        holders_a = [frozenset(i for i in range(self.n) if j in a[i]) for j in range(self.k)]
        holders_b = [frozenset(i for i in range(self.n) if j in b[i]) for j in range(self.k)]
        moved = sum(x != y for x, y in zip(holders_a, holders_b, strict=True))
        if copies == 0:
            return 0, moved, 0.0
        seconds = self.switch_latency
        if self.partition_bytes is not None:
            seconds += copies * self.partition_bytes / self.bandwidth
        return copies, moved, seconds

    # ------------------------------------------------------------------ decide
    def decide(self, est: ClusterEstimator, current: Plan | None,
               rng: np.random.Generator) -> Decision:
        """Compare every candidate with the plan in force and apply the switching rule."""
        R = est.residuals(self.samples, rng)
        Rp = est.pessimistic(R)
        kw = {"gamma": self.gamma, "bias_tol": self.bias_tol}
        cands = self.candidates(est, current, R)
        preds = [predict(p, est, R, **kw) for p in cands]
        pess = [predict(p, est, Rp, **kw).cost for p in cands]
        cur = predict(current, est, R, **kw) if current is not None else None
        cur_pess = predict(current, est, Rp, **kw).cost if current is not None else math.inf
        # robust: a candidate may not be worse than the plan in force when the unseen
        # tail is as bad as the data allows
        ok = [i for i in range(len(cands))
              if pess[i] <= cur_pess * (1.0 + 0.5 * self.hysteresis) or
              not math.isfinite(cur_pess)]
        if not ok:
            ok = list(range(len(cands)))
        best = min(ok, key=lambda i: preds[i].cost)
        plan, pred = cands[best], preds[best]
        if current is None or cur is None:
            return Decision(plan, pred, None, 0, 0, 0.0, True, len(cands))
        copies, moved, seconds = self.move(current, plan)
        gain = cur.cost - pred.cost
        stuck = not math.isfinite(cur.cost)
        switch = plan != current and pred.cost < (1.0 - self.hysteresis) * cur.cost and \
            (stuck or (gain * self.horizon > seconds and est.rounds >= self.min_rounds))
        if not switch:
            return Decision(current, cur, cur, 0, 0, 0.0, False, len(cands))
        return Decision(plan, pred, cur, copies, moved, seconds, True, len(cands))
