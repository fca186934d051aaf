"""Plans the autopilot can run, and what it expects of each: seconds per round, decoding
error, and from both the time to reach a given loss.

A :class:`Plan` is a code + decoder + wait policy in a form the predictor can reason
about without building the code:

* ``groups``: fractional-repetition shape with free group sizes and loads. Workers are
  split into groups; every member of group g holds the same partitions P_g (the P_g
  partition the data). The master waits until every group has answered (exact), or
  until a deadline tau (then the partitions of silent groups are dropped: error =
  their count). Covers uncoded GD (groups of one), FRC and ErasureHead, and the
  allocations no fixed code makes: data only on the fast workers, loads proportional
  to speed, slow workers as spare replicas nobody waits for.
* ``cyclic``: Tandon et al.'s cyclic repetition code with s stragglers, exact.
* ``heterogeneous``: Song & Choi's optimal unbiased code for the straggling
  probabilities p_i(tau) the estimator predicts at a deadline tau, decoded with
  weights 1/(1 - p_i).

Prediction. With the worker times of S simulated rounds drawn from the fitted model
(:meth:`ClusterEstimator.sample`, common random numbers for every plan of a decision):

* groups: group time G_g = min over members of T_i; exact round = max_g G_g; with a
  deadline, round = min(tau, max_g G_g), error = sum of |P_g| over groups with G_g > tau
  (each partition's miss probability q_j is recorded too);
* cyclic: the (n - s)-th smallest T_i (``gc.latency.fixed_path_latency``);
* heterogeneous: round = E min(tau, max_i T_i), error = the exact
  ``unbiased_expected_error(code, p)`` (no simulation).

Convergence model (how decoding error slows training). With e = E||alpha - 1||^2 / k
(the history's ``error`` column over k) the number of rounds to a target loss grows as

    rounds(e) = rounds(0) / (1 - gamma e),      gamma = 2 by default,

(gradient descent whose step loses a fraction ~gamma e of its progress). Calibration:
on logistic regression with gradient descent at lr = 1/L (the ``benchmarks/training.py``
runs) errors of 0.04..0.4 of k cost 1.06x..2.25x the rounds, a fitted gamma of 1.4..1.6;
the default 2 is deliberately above that, because a run needs a whole number of rounds
and ``benchmarks/autopilot.py`` measured that small errors (e ~ 0.01..0.04) cost a full
extra round of 16 more often than the fit predicts. It holds only when the error is
spread evenly over the partitions; a plan that keeps missing the same partitions (miss
probabilities q_j differing by more than ``bias_tol``) converges to the wrong point and
gets an infinite cost. The plan's cost is the expected seconds per exact-equivalent
round, E[round time] / (1 - gamma e).

References:
    [1] R. Tandon, Q. Lei, A. Dimakis, N. Karampatziakis, "Gradient coding",
        arXiv:1612.03301, 2017.
    [2] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead", arXiv:1901.09671, 2019.
    [3] Song & Choi, "Approximate Gradient Coding for Distributed Learning with
        Heterogeneous Stragglers", arXiv:2510.22539, 2025.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...analysis.latency import fixed_path_latency
from ...codes import cyclic_repetition
from ...codes.heterogeneous import heterogeneous, unbiased_expected_error
from ...core.code import Code
from .estimator import ClusterEstimator

__all__ = ["Plan", "Prediction", "predict", "rounds_factor"]


@dataclass(frozen=True)
class Plan:
    """One candidate (see the module docstring).

    Attributes:
        kind: ``"groups"``, ``"cyclic"`` or ``"heterogeneous"``.
        n, k: workers and partitions.
        groups: (groups) member workers of each group.
        parts: (groups) partitions of each group.
        deadline: tau in seconds, or None (exact).
        s: (cyclic) stragglers tolerated.
        p: (heterogeneous) straggling probabilities the code is built for.
    """

    kind: str
    n: int
    k: int
    groups: tuple[tuple[int, ...], ...] = ()
    parts: tuple[tuple[int, ...], ...] = ()
    deadline: float | None = None
    s: int = 0
    p: tuple[float, ...] = ()
    seed: int = 0
    _code: list = field(default_factory=list, compare=False, repr=False)

    @property
    def name(self) -> str:
        tau = "" if self.deadline is None else f", deadline={self.deadline:.3g}"
        if self.kind == "groups":
            sizes = sorted({len(g) for g in self.groups})
            loads = sorted({len(p) for p in self.parts})
            return (f"groups({len(self.groups)} groups of {'/'.join(map(str, sizes))}, "
                    f"loads {'/'.join(map(str, loads))}{tau})")
        if self.kind == "cyclic":
            return f"cyclic(s={self.s})"
        return f"heterogeneous({tau.lstrip(', ')})"

    def code(self) -> Code:
        """The plan's :class:`gradcode.Code` (built once)."""
        if not self._code:
            self._code.append(self._build())
        return self._code[0]

    def _build(self) -> Code:
        if self.kind == "groups":
            B = np.zeros((self.n, self.k))
            for members, parts in zip(self.groups, self.parts, strict=True):
                for i in members:
                    B[i, list(parts)] = 1.0
            return Code(B, name=f"autopilot {self.name}",
                        params={"groups": [list(g) for g in self.groups]})
        if self.kind == "cyclic":
            return cyclic_repetition(self.n, self.s, seed=self.seed)
        return heterogeneous(np.asarray(self.p), self.k)

    @property
    def load(self) -> np.ndarray:
        """Partitions each worker holds."""
        if self.kind == "groups":
            out = np.zeros(self.n)
            for members, parts in zip(self.groups, self.parts, strict=True):
                out[list(members)] = len(parts)
            return out
        if self.kind == "cyclic":
            return np.full(self.n, self.s + 1.0)
        return self.code().row_support.astype(float)

    def holdings(self) -> list[set[int]]:
        """The partitions each worker holds (for data-movement accounting)."""
        B = self.code().B
        return [set(B.indices[B.indptr[i]:B.indptr[i + 1]].tolist()) for i in range(self.n)]


@dataclass(frozen=True)
class Prediction:
    """What a plan is expected to do per round.

    Attributes:
        round_time: E[round time] in seconds.
        error: E||alpha - 1||^2 / k.
        spread: max_j q_j - min_j q_j of the partitions' miss probabilities.
        cost: seconds per exact-equivalent round (``inf``: not admissible).
    """

    round_time: float
    error: float
    spread: float
    cost: float


def rounds_factor(error: float, spread: float = 0.0, *, gamma: float = 2.0,
                  bias_tol: float = 0.05) -> float:
    """How many times more rounds than exact GD a plan needs: 1 / (1 - gamma e), or
    ``inf`` when gamma e >= 0.9 or the misses are uneven (spread > bias_tol)."""
    if not math.isfinite(error) or gamma * error >= 0.9 or spread > bias_tol:
        return math.inf
    return 1.0 / (1.0 - gamma * error)


def _finish(rt: np.ndarray, err: np.ndarray, q: np.ndarray, k: int, gamma: float,
            bias_tol: float) -> Prediction:
    if not np.all(np.isfinite(rt)):
        return Prediction(math.inf, math.inf, 1.0, math.inf)
    e = float(np.mean(err)) / k
    spread = float(q.max() - q.min()) if q.size else 0.0
    t = float(np.mean(rt))
    return Prediction(t, e, spread, t * rounds_factor(e, spread, gamma=gamma,
                                                      bias_tol=bias_tol))


def predict(plan: Plan, est: ClusterEstimator, R: np.ndarray, *, gamma: float = 2.0,
            bias_tol: float = 0.05) -> Prediction:
    """Predict ``plan`` on the residual draws ``R`` (samples x n) of ``est``
    (:meth:`ClusterEstimator.residuals`)."""
    T = est.times(plan.load, R)
    k = plan.k
    if plan.kind == "groups":
        G = np.stack([T[:, list(g)].min(axis=1) for g in plan.groups], axis=1)
        sizes = np.array([len(p) for p in plan.parts], dtype=float)
        full = G.max(axis=1)
        if plan.deadline is None:
            return _finish(full, np.zeros(T.shape[0]), np.zeros(1), k, gamma, bias_tol)
        late = G > plan.deadline
        rt = np.minimum(full, plan.deadline)
        qg = late.mean(axis=0)
        q = np.repeat(qg, sizes.astype(int))
        return _finish(rt, late @ sizes, q, k, gamma, bias_tol)
    if plan.kind == "cyclic":
        rt = fixed_path_latency(np.repeat(T[:, :, None], plan.s + 1, axis=2), plan.s)
        return _finish(rt, np.zeros(T.shape[0]), np.zeros(1), k, gamma, bias_tol)
    tau = float(plan.deadline)
    p = np.clip((T > tau).mean(axis=0), 0.01, 0.99)
    rt = np.minimum(np.where(np.isfinite(T), T, np.inf).max(axis=1), tau)
    err = unbiased_expected_error(plan.code(), p)
    return _finish(rt, np.full(T.shape[0], err), np.zeros(1), k, gamma, bias_tol)


def straggling_probabilities(est: ClusterEstimator, load: Any, tau: float,
                             R: np.ndarray) -> np.ndarray:
    """p_i(tau) = P(T_i > tau) at ``load`` under the fitted model, clipped to
    [0.01, 0.99]."""
    T = est.times(load, R)
    return np.clip((T > tau).mean(axis=0), 0.01, 0.99)
