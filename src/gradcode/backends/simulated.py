"""The simulated host: one process, a virtual clock, deterministic.

Round t: the delay model gives every worker its delay d_i = model.sample(t, load)
(``inf``: the worker fails this round and is not asked). All k partition gradients are
computed once per round (``problem.partition_gradients``, vectorised for the linear
problems; ``round=t`` is passed when the method accepts it) and the worker task's
:meth:`~gradcode.backends.base.WorkerTask.simulate` turns them and the delays into the
round's events (for the coded gradient: each result at d_i, as a lazy row of F = B G
that is never materialised, :class:`~gradcode.backends.base.CodedRows`). A message
(``send``) is answered at the current virtual instant by the task's
:meth:`~gradcode.backends.base.WorkerTask.answer`. So the round protocols run unchanged
on simulated event times; per-round work is vectorised over the n workers except for the
events the protocol actually consumes. The exact full gradient comes for free
(``round_info.true_gradient``). A float32 model (torch, JAX) is decoded in float32, as
the local and Ray hosts sum its float32 results (:class:`~gradcode.backends.base.CodedRows`).

Example:
    >>> import numpy as np, gradcode as gc
    >>> X, y = gc.data.synthetic_regression(60, 3, seed=0)
    >>> prob = gc.problems.least_squares(X, y, k=6)
    >>> code = gc.codes.fractional_repetition(n=6, s=1)
    >>> be = gc.backends.SimulatedBackend()
    >>> be.start(prob, code, delays=gc.stragglers.Exponential(1.0, seed=0))
    >>> st = gc.wait.first(3).start(code)
    >>> [a.worker for a in be.run_round(0, prob.init_params(), st)]
    [3, 2, 4, 0, 1, 5]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ..models.problems import partition_gradients_at
from ..models.stragglers import as_delay_model
from .base import Event, HostBase, RoundInfo, RowRef, Schedule, bad_result, round_delays
from .tasks import CodedGradientTask

__all__ = ["SimulatedBackend"]

_NON_FINITE = "non-finite result (NaN or inf)"


class SimulatedBackend(HostBase):
    """Virtual-clock host (see module docstring).

    Attributes:
        name: ``"simulated"``. clock: ``"virtual"``. round_timeout: None (a virtual
            round cannot hang: a worker that never answers is never pending).
    """

    name = "simulated"
    clock = "virtual"
    round_timeout = None

    def __init__(self) -> None:
        self._problem: Any = None
        self._code: Any = None
        self._info = RoundInfo()
        self._alive: np.ndarray = np.zeros(0, dtype=bool)
        self._schedule: Any = None

    def start(self, problem: Any, code: Any, *, delays: Any = None, task: Any = None) -> None:
        """Hold the problem, the code and the task; validate the delays against n."""
        self._problem, self._code = problem, code
        self._task = CodedGradientTask() if task is None else task
        self._model = as_delay_model(delays)
        self._model.validate(code.n)
        self._load = code.row_support.astype(np.float64)
        self._alive = np.ones(code.n, dtype=bool)
        self._schedule = None

    def reassign(self, problem: Any, code: Any, task: Any = None) -> None:
        """Hold another code's partitions (nothing to move on a virtual clock)."""
        self.start(problem, code, delays=self._model, task=task)

    def _gradients(self, params: np.ndarray, round: int) -> np.ndarray:
        """All k partition gradients (k x dim): the host's one gradient call."""
        return np.asarray(partition_gradients_at(self._problem, params, round))

    # ------------------------------------------------------------------ a round
    def broadcast(self, round: int, params: np.ndarray) -> np.ndarray:
        """Draw the delays, compute G and schedule the task's events; returns the asked
        workers (alive, finite delay)."""
        if self._code is None:
            raise RuntimeError("SimulatedBackend: start() must be called before broadcast()")
        code = self._code
        delays = round_delays(self._model, round, self._load, code.n)
        asked = np.flatnonzero(self._alive & np.isfinite(delays))
        G = self._gradients(params, round)
        self._info = RoundInfo(true_gradient=G.sum(axis=0), asked=asked)
        self._round, self._G, self._bad = int(round), G, None
        self._schedule = self._task.simulate(code, G, delays, asked)
        self._pos = 0
        self._ended = np.zeros(code.n, dtype=bool)
        self._replies: list[tuple] = []
        self._seq = 0
        self._now = 0.0
        return asked

    def send(self, worker: int, message: Any) -> None:
        """Deliver ``message`` now; the task's answer is queued at the current instant."""
        if self._schedule is None:
            return
        replies, ends = self._task.answer(self._code, self._G, int(worker), message)
        if ends:
            self._ended[int(worker)] = True
        for kind, payload in replies:
            heapq.heappush(self._replies, (self._now, self._seq, int(worker), kind, payload))
            self._seq += 1

    def _next_time(self) -> float:
        """Time of the next deliverable event (inf: none), skipping ended workers."""
        sched = self._schedule
        while self._pos < sched.times.size and self._ended[sched.workers[self._pos]]:
            self._pos += 1
        t = float(sched.times[self._pos]) if self._pos < sched.times.size else math.inf
        return min(t, self._replies[0][0]) if self._replies else t

    def _pop(self) -> tuple[float, int, str, Any]:
        sched = self._schedule
        if self._replies and (self._pos >= sched.times.size
                              or self._replies[0][0] <= sched.times[self._pos]):
            t, _, w, kind, payload = heapq.heappop(self._replies)
            return t, w, kind, payload
        e = self._pos
        self._pos += 1
        return float(sched.times[e]), int(sched.workers[e]), sched.kind, sched.payload(e)

    def _bad_rows(self) -> np.ndarray:
        """Workers whose row of F = B G is not finite (one vectorised check per round)."""
        if self._bad is None:
            G = self._G.reshape(self._G.shape[0], -1)
            broken = ~np.all(np.isfinite(G), axis=1)
            self._bad = (abs(self._code.B) @ broken.astype(np.float64)) > 0 \
                if broken.any() else np.zeros(self._code.n, dtype=bool)
        return self._bad

    def _check(self, worker: int, value: Any) -> str | None:
        if not isinstance(value, RowRef):
            return bad_result(np.asarray(value))
        return _NON_FINITE if self._bad_rows()[worker] else None

    def schedule(self) -> Schedule | None:
        """The round's events at once (see :class:`~gradcode.backends.base.Host`): given
        when the task's results are rows of F and no event was taken yet, else None."""
        sched = self._schedule
        if sched is None or sched.rows is None or sched.kind != "result" or self._pos \
                or self._replies or self._ended.any():
            return None
        return replace(sched, dropped=self._bad_rows()[sched.workers])

    def take(self, count: int) -> None:
        """Record the first ``count`` scheduled events as delivered (see ``schedule``)."""
        sched = self._schedule
        count = int(count)
        if count <= 0:
            return
        if sched is None or self._pos or count > sched.times.size:
            raise RuntimeError(f"SimulatedBackend.take: cannot take {count} events now")
        workers = sched.workers[:count]
        self._ended[workers] = True
        self._pos = count
        self._now = float(sched.times[count - 1])
        self._info.end_time = self._now
        bad = workers[self._bad_rows()[workers]]
        self._info.dropped.extend((int(w), _NON_FINITE) for w in bad)

    def events(self, deadline: float | None = None) -> Iterator[Event]:
        """The round's events in virtual-time order (see :mod:`gradcode.backends.base`)."""
        if self._schedule is None:
            return
        info, rnd = self._info, self._round
        while True:
            t = self._next_time()
            if math.isinf(t):
                break
            if deadline is not None and t > deadline:
                info.end_time = float(deadline)
                yield Event(-1, float(deadline), float(deadline), rnd, "timer")
                return
            t, worker, kind, value = self._pop()
            self._now = t
            info.end_time = t
            if kind == "result":
                self._ended[worker] = True
                reason = self._check(worker, value)
                if reason is not None:
                    info.dropped.append((worker, reason))
                    kind, value = "dropped", reason
            yield Event(worker, value, t, rnd, kind, more=self._next_time() == t)

    def cancel(self) -> None:
        """End the round (nothing runs in a simulation)."""
        self._schedule = None

    def close(self) -> None:
        self._problem = None
        self._schedule = None
