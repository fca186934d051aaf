"""``auto(n)``: a scheme that measures the cluster while it trains and picks the code,
the decoder and the wait for it.

How it runs. ``gc.schemes.auto(n)`` returns an :class:`AutoScheme`: an ordinary
:class:`gradcode.schemes.Scheme` (the start plan: pairs of workers, exact) that carries
its :class:`Autopilot`. After every round :func:`gradcode.training.train` calls
``scheme.after_round(row, history)``; the autopilot

1. feeds the round to its :class:`.estimator.ClusterEstimator`: every worker's load,
   the arrival times of the responders (recorded by a thin wrapper around the wait
   policy) and the stop time, which censors everyone the master did not wait for;
2. on decision rounds (every round during ``warmup``, then every ``every`` rounds, and
   at once when a worker is declared failed or two rounds in a row took 1.5x longer
   than predicted) asks its :class:`.planner.Planner` for the best candidate and
   applies the switching rule;
3. when it switches, returns the new :class:`AutoScheme`; ``train`` re-assigns the
   partitions through the backend (``reassign``, or a restart) as for any adaptive
   scheme.

Everything is recorded. Every row gets ``autopilot_plan`` (the plan that ran),
``autopilot_predicted`` (its predicted mean round time, next to the observed
``round_time``), ``autopilot_switch`` (the new plan's name on a switch, else ``""``),
``autopilot_moved`` (partitions whose holders changed), ``autopilot_copies`` (copies
shipped) and ``autopilot_move_seconds`` (the time charged for shipping them); every
decision, kept or not, goes to ``history.meta["autopilot"]`` and :attr:`Autopilot.decisions`
with the estimate it was based on. Decisions depend only on the observed rounds and
``seed``: a run is reproducible.

Without the ``after_round`` hook (an older ``train``), pass the autopilot as the
callback: ``train(prob, s, callback=s.pilot, ...)``.

Example:
    >>> import gradcode as gc
    >>> X, y = gc.data.synthetic_classification(400, 5, seed=0)
    >>> prob = gc.problems.logistic_regression(X, y, k=8)
    >>> delays = gc.stragglers.PersistentSlow(gc.stragglers.ShiftedExponential(1, 0.3),
    ...                                      [2], factor=10)
    >>> s = gc.schemes.auto(8)
    >>> h = gc.training.train(prob, s, rounds=12, delays=delays)
    >>> 2 in s.pilot.estimator.summary()["slow"]
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.validate import check_int
from ..schemes import Scheme
from ..wait import RoundWait, WaitPolicy, deadline, until_decodable
from .estimator import ClusterEstimator
from .planner import Decision, Planner, start_plan
from .predictor import Plan, Prediction, predict

__all__ = ["AutoScheme", "Autopilot", "auto"]


class _Tap:
    """Holds the wait state of the round in progress (what the estimator reads)."""

    def __init__(self) -> None:
        self.state: RoundWait | None = None


@dataclass(frozen=True)
class Observed(WaitPolicy):
    """A wait policy that behaves exactly like ``inner`` and lets the autopilot read the
    round's arrival times afterwards."""

    inner: WaitPolicy = field(default_factory=until_decodable)
    tap: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.inner.name

    def validate(self, code: Any) -> None:
        self.inner.validate(code)

    def start(self, code: Any, decoder: Any = "optimal") -> RoundWait:
        state = self.inner.start(code, decoder)
        if self.tap is not None:
            self.tap.state = state
        return state


@dataclass(frozen=True)
class AutoScheme(Scheme):
    """A :class:`gradcode.schemes.Scheme` driven by an :class:`Autopilot` (``pilot``):
    ``train`` calls :meth:`after_round` after every round and switches to the scheme it
    returns."""

    pilot: Any = field(default=None, compare=False, repr=False)
    plan: Any = field(default=None, compare=False, repr=False)

    def after_round(self, row: dict, history: Any = None) -> Any:
        """Hand the round to the autopilot; returns a new scheme, or None."""
        return self.pilot.after_round(row, history) if self.pilot is not None else None


class Autopilot:
    """Estimator + planner + switching, fed one history row at a time.

    Args: see :func:`auto`.

    Attributes:
        estimator: the :class:`.estimator.ClusterEstimator`.
        planner: the :class:`.planner.Planner`.
        plan: the plan in force; scheme: its :class:`AutoScheme`.
        decisions: one dict per decision (also in ``history.meta["autopilot"]``).
    """

    def __init__(self, n: int, k: int, *, seed: int = 0, window: int = 40, warmup: int = 8,
                 every: int = 5, load_cost: float | None = None, **planner: Any) -> None:
        self.n, self.k = n, k
        self.seed = check_int("auto", "seed", seed, low=0)
        self.warmup = check_int("auto", "warmup", warmup, low=0)
        self.every = check_int("auto", "every", every, low=1)
        self.estimator = ClusterEstimator(n, window=window, load_cost=load_cost)
        self.planner = Planner(n, k, **planner)
        self.decisions: list[dict] = []
        self._tap = _Tap()
        self.plan: Plan = start_plan(n, k)
        self._predicted: Prediction | None = None
        self._last_decision = -1
        self._failed: frozenset[int] = frozenset()
        self._surprises = 0
        self.scheme = self._scheme(self.plan)

    def _scheme(self, plan: Plan) -> AutoScheme:
        code = plan.code()
        if plan.kind == "groups":
            decoder, wait = "frc_group", until_decodable(plan.deadline)
        elif plan.kind == "cyclic":
            decoder, wait = "exact", until_decodable()
        else:
            decoder, wait = "unbiased", deadline(float(plan.deadline))
        return AutoScheme(code, decoder, Observed(wait.deadline, wait, self._tap),
                          name=f"auto(n={self.n}, k={self.k})", fallback="optimal",
                          pilot=self, plan=plan)

    # ------------------------------------------------------------------ one round
    def _observe(self, row: dict) -> None:
        times = np.full(self.n, np.inf)
        state = self._tap.state
        stop = float(row["round_time"])
        if state is not None and len(state.times) == len(state.responders):
            for w, t in zip(state.responders, state.times, strict=True):
                times[int(w)] = float(t)
        else:                                    # no timing: responders at the stop time
            times[np.asarray(row.get("responders", []), dtype=np.int64)] = stop
        self._tap.state = None
        load = self.plan.load
        self.estimator.update(load, times, stop,
                              observed=np.ones(self.n, dtype=bool))

    def _due(self, t: int, row: dict) -> bool:
        if t < self.warmup or t - self._last_decision >= self.every:
            return True
        failed = frozenset(np.flatnonzero(self.estimator.failed).tolist())
        if failed != self._failed:
            return True
        pred = self._predicted
        if pred is not None and math.isfinite(pred.round_time):
            self._surprises = self._surprises + 1 \
                if row["round_time"] > 1.5 * pred.round_time else 0
            if self._surprises >= 2:
                return True
        return False

    def after_round(self, row: dict, history: Any = None) -> AutoScheme | None:
        """Observe the round's row, maybe decide; returns the new scheme on a switch."""
        t = int(row["round"])
        self._observe(row)
        row["autopilot_plan"] = self.plan.name
        row["autopilot_predicted"] = self._predicted.round_time if self._predicted else \
            math.nan
        row.update(autopilot_switch="", autopilot_moved=0, autopilot_copies=0,
                   autopilot_move_seconds=0.0)
        if not self._due(t, row):
            return None
        self._last_decision = t
        self._surprises = 0
        self._failed = frozenset(np.flatnonzero(self.estimator.failed).tolist())
        rng = np.random.default_rng([self.seed, t])
        dec: Decision = self.planner.decide(self.estimator, self.plan, rng)
        record = {
            "round": t, "plan": dec.plan.name, "switch": dec.switch,
            "predicted_round_time": dec.predicted.round_time,
            "predicted_error": dec.predicted.error, "predicted_cost": dec.predicted.cost,
            "current_cost": dec.current.cost if dec.current is not None else math.nan,
            "observed_round_time": float(row["round_time"]),
            "moved_partitions": dec.moved_partitions, "moved_copies": dec.moved_copies,
            "move_bytes": dec.moved_copies * (self.planner.partition_bytes or 0.0),
            "move_seconds": dec.move_seconds, "candidates": dec.candidates,
            "estimate": self.estimator.summary(),
        }
        self.decisions.append(record)
        if history is not None:
            history.meta.setdefault("autopilot", []).append(record)
        self._predicted = dec.predicted
        if not dec.switch or dec.plan == self.plan:
            return None
        self.plan = dec.plan
        self.scheme = self._scheme(dec.plan)
        row.update(autopilot_switch=dec.plan.name, autopilot_moved=dec.moved_partitions,
                   autopilot_copies=dec.moved_copies,
                   autopilot_move_seconds=dec.move_seconds)
        return self.scheme

    def __call__(self, row: dict) -> AutoScheme | None:
        """Use as ``train(..., callback=pilot)`` where ``train`` has no hook."""
        return self.after_round(row)

    def predict(self, plan: Plan, samples: int = 1024) -> Prediction:
        """The current prediction for any plan (e.g. to compare with a fixed code)."""
        R = self.estimator.residuals(samples, np.random.default_rng([self.seed, 10**9]))
        return predict(plan, self.estimator, R, gamma=self.planner.gamma,
                       bias_tol=self.planner.bias_tol)


def auto(n: int, k: int | None = None, *, seed: int = 0, window: int = 40,
         warmup: int = 8, every: int = 5, load_cost: float | None = None,
         samples: int = 256, gamma: float = 2.0, bias_tol: float = 0.05,
         hysteresis: float = 0.10, min_rounds: int = 3, horizon: int = 20,
         partition_bytes: float | None = None,
         bandwidth: float = 1e8, switch_latency: float = 0.0,
         families: tuple[str, ...] = ("groups", "cyclic", "heterogeneous")) -> AutoScheme:
    """A scheme that learns the cluster while it trains and picks the code, decoder and
    wait (see the module docstring and ``docs/autopilot.md``).

    Args:
        n: workers; k: partitions (default n; build the problem with the same k).
        seed: seed of the planner's simulations (decisions are reproducible).
        window: rounds the estimator remembers (drift).
        warmup: decide after each of the first ``warmup`` rounds; then every ``every``.
        load_cost: relative cost of one more partition if known (else learned).
        samples: simulated rounds per prediction.
        gamma, bias_tol: the convergence model (rounds x 1 / (1 - gamma e)).
        hysteresis: relative predicted gain needed to switch.
        min_rounds: rounds observed before the first switch (earlier only when the
            plan in force is predicted never to finish).
        horizon: rounds over which a switch must pay for its data movement.
        partition_bytes, bandwidth, switch_latency: the charge for moving data.
        families: candidate families (``"groups"``, ``"cyclic"``, ``"heterogeneous"``).

    Returns:
        An :class:`AutoScheme`; its autopilot is ``scheme.pilot``.

    Raises:
        ValueError / TypeError: bad arguments.
    """
    n = check_int("auto", "n", n, low=1)
    k = n if k is None else check_int("auto", "k", k, low=1)
    pilot = Autopilot(n, k, seed=seed, window=window, warmup=warmup, every=every,
                      load_cost=load_cost, samples=samples, gamma=gamma, bias_tol=bias_tol,
                      hysteresis=hysteresis, min_rounds=min_rounds, horizon=horizon,
                      partition_bytes=partition_bytes,
                      bandwidth=bandwidth, switch_latency=switch_latency, families=families)
    return pilot.scheme
