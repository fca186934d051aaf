"""Hosts: the protocol every backend implements, and the worker-task plug-in.

A backend is a *host*: it owns the workers, knows no round protocol and no scheme. The
master side of a round (what to send, how to react to each event, when to stop, how to
decode) is a round protocol object (:mod:`gradcode.engine.rounds`); the worker side is a
:class:`WorkerTask` that the host runs in every worker. One round on any host:

.. code-block:: python

    host.start(problem, code, delays=model, task=task)   # workers hold their partitions
    for t in rounds:
        asked = host.broadcast(t, params)        # (t, params, delay_i) to the live workers
        for event in host.events(deadline):      # results, beacons, deaths, the timer
            if protocol.on_event(event):         # the protocol may host.send(w, message)
                break
        host.cancel()                            # end the rest of the round
        info = host.round_info                   # end time, dropped results, deaths
    host.close()

The :class:`Host` methods:

* ``start(problem, code, *, delays=None, task=None)``: start ``code.n`` workers, worker
  i holding the partitions j with B[i, j] != 0 and running ``task`` (default: the coded
  gradient, :class:`gradcode.backends.tasks.CodedGradientTask`).
* ``broadcast(round, params) -> asked``: start round t: every live worker whose injected
  delay this round is finite gets (t, params, delay); returns those workers (a worker
  with an infinite delay has failed this round and is not asked).
* ``send(worker, message)``: a protocol message to one worker of the current round; the
  task answers it (:meth:`WorkerTask.answer` on the virtual clock, ``ctx.receive`` on
  real workers).
* ``events(deadline=None)``: the round's :class:`Event` stream, in arrival order.
  Kinds: ``"result"`` (the task's return value; the worker is done), any kind the task
  emits (``"progress"``, ``"vector"``, ...), ``"dead"`` (the worker died: a permanent
  straggler), ``"dropped"`` (an error or a bad result: a straggler this round; value =
  the reason) and, last, ``"timer"`` when ``deadline`` (seconds after the broadcast)
  passed with workers still pending. The stream also ends when no asked worker can
  send anything more (on real workers: a task that streams, e.g. the nested one, stays
  pending until cancelled, so its protocol or the deadline ends the round).
* ``schedule() -> Schedule | None``: right after ``broadcast`` (before any event was
  taken), the round's whole event stream at once when the host knows it in advance and
  no message can change it: on the virtual clock for a task whose results are rows of
  F = B G (``Schedule.rows`` set; ``Schedule.dropped`` marks the results that
  ``events`` would turn into ``"dropped"`` events). None otherwise (wall-clock hosts,
  streaming tasks): the protocol then reads ``events``.
* ``take(count)``: the protocol used the first ``count`` events of ``schedule()`` at
  once; the host records them as ``events`` would have (``round_info.end_time`` at the
  last of them, dropped results in ``round_info.dropped``) and a later ``events`` call
  continues after them.
* ``cancel()``: end the round on every worker (interrupts injected delays); idempotent.
* ``reassign(problem, code, task=None)``: hold the partitions of another code (same n).
* ``close()``: stop every worker; idempotent.
* ``round_info`` (:class:`RoundInfo`), ``alive`` (bool mask), ``round_timeout`` (the
  host's default safety limit of a round in seconds, None: none), ``name``, ``clock``.

Rules every host follows: results of an older round are never yielded (counted in
``round_info.late``); a dead worker is a permanent straggler, never a hang; a result that
is not a finite vector of the right shape becomes a ``"dropped"`` event; ``Event.time``
is seconds since the broadcast on the host's clock (virtual for ``simulated``,
wall-clock for ``local``/``ray``). Problems whose partition gradients depend on the round
(minibatches) receive it: each host computes gradients in one place
(:func:`gradcode.models.problems.gradient_at` on workers,
``SimulatedBackend._gradients`` on the virtual clock), passing ``round=t`` when the
problem's method accepts that keyword.

``run_round(t, params, wait_state)`` / ``stop_round()`` remain as conveniences built on
the methods above (:class:`HostBase`): they yield the ``"result"`` events as
:class:`Arrival` objects until the wait state is satisfied.

References:
    [1] R. Tandon, Q. Lei, A. Dimakis, N. Karampatziakis, "Gradient coding",
        arXiv:1612.03301, 2017.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..core.validate import check_real
from ..models.stragglers import check_delays

__all__ = [
    "Arrival",
    "Backend",
    "CodedRows",
    "Event",
    "Host",
    "RoundInfo",
    "Schedule",
    "WorkerTask",
    "WorkersLostError",
]

DEFAULT_ROUND_TIMEOUT = 300.0
"""Default ``round_timeout`` (seconds) of the wall-clock hosts (local, ray): a round whose
policy has no deadline still ends this long after its broadcast, with whoever answered.
Five minutes is far above one round of any workload these hosts are meant for (seconds),
so it never cuts a healthy round, and it bounds a run whose worker hangs while alive
(its process or actor exists, so no death is ever reported)."""


class WorkersLostError(RuntimeError):
    """Every worker is dead (or no worker answered and none can): training cannot go on."""


@dataclass(frozen=True)
class Event:
    """One event of a round, from a worker or the host.

    Attributes:
        worker: worker index (row of B); -1 for the host's ``"timer"``.
        value: f_i for a ``"result"`` (or a :class:`CodedRows` row reference on the
            virtual clock), else the kind's payload.
        time: seconds since the round's broadcast (host clock).
        round: the round the event belongs to.
        kind: ``"result"``, ``"dead"``, ``"dropped"``, ``"timer"`` or a task's own kind.
        more: True when the next event happens at the same instant (the virtual clock
            sets it so that a protocol can apply simultaneous events together).
    """

    worker: int
    value: Any
    time: float
    round: int = 0
    kind: str = "result"
    more: bool = False


Arrival = Event
"""The name of :class:`Event` before hosts streamed more than results."""


@dataclass
class RoundInfo:
    """What happened in the last round besides the events.

    Attributes:
        end_time: when the round's stream ended (seconds since the broadcast).
        dropped: ``(worker, reason)`` for results that were discarded.
        dead: workers found dead during this round.
        late: messages of older rounds that were discarded.
        true_gradient: the exact full gradient when the host has it for free
            (simulated), else None.
        asked: the workers the round was sent to (alive, finite delay).
    """

    end_time: float = 0.0
    dropped: list[tuple[int, str]] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    late: int = 0
    true_gradient: np.ndarray | None = None
    asked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Schedule:
    """Events of one round on the virtual clock, from :meth:`WorkerTask.simulate`.

    Attributes:
        times: event times (seconds after the broadcast), one per event.
        workers: the emitting worker of each event.
        kind: the kind of every event of the schedule.
        payload: ``payload(e) -> value`` of event e (called lazily, when delivered).
        rows: when every payload is a row of one :class:`CodedRows` (``payload(e)`` is
            ``RowRef(rows, workers[e])``), that object, else None.
        dropped: from :meth:`Host.schedule`: True for the events that are delivered as
            ``"dropped"`` (a non-finite result), else None.
    """

    times: np.ndarray
    workers: np.ndarray
    kind: str
    payload: Callable[[int], Any]
    rows: Any = None
    dropped: np.ndarray | None = None


class CodedRows:
    """The coded results F = B G of one simulated round, never materialised.

    ``row(i)`` is f_i = B[i] G, computed on demand; :meth:`combine` returns
    sum_i a_i f_i = G^T (B^T a) with one sparse product, so decoding costs O(nnz(B) + k
    dim) whatever n is.
    """

    def __init__(self, B: Any, G: np.ndarray) -> None:
        self.B, self.G = B, G

    def row(self, i: int) -> np.ndarray:
        """f_i as a dense vector, in G's dtype when G is float32 (as a worker sends it)."""
        value = np.asarray(self.B[[int(i)]] @ self.G)[0]
        return value.astype(np.float32) if self.G.dtype == np.float32 else value

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """sum_i weights[i] f_i (weights: length n, zero off the responders); only the
        partitions with a nonzero coefficient in B^T weights are read, so a non-finite
        gradient of a partition no responder used does not leak in as 0 * NaN.

        A float32 G (torch and JAX models) is combined in float32, as the other hosts sum
        float32 results: the coefficients B^T a are computed in float64 and rounded once.
        """
        coef = self.B.T @ weights
        if self.G.dtype == np.float32 and not np.iscomplexobj(coef):
            coef = coef.astype(np.float32)
        used = np.flatnonzero(coef)
        if used.size == coef.size:
            return np.asarray(self.G.T @ coef)
        return np.asarray(self.G[used].T @ coef[used])


@dataclass(frozen=True)
class RowRef:
    """f_i of a :class:`CodedRows` (a lazy ``"result"`` value on the virtual clock)."""

    rows: CodedRows
    worker: int

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self.rows.row(self.worker)
        return value if dtype is None else value.astype(dtype)


@runtime_checkable
class WorkerTask(Protocol):
    """The worker side of a round protocol (a picklable plug-in object).

    Attributes:
        streams: True when the task emits events besides its return value (beacons,
            answers to messages); hosts then keep a channel open for the whole round.

    Real workers (local, ray) call ``runner = task.bind(worker, parts)`` once (parts:
    ``(partition j, B[i, j], Part)``), then ``runner(params, ctx)`` every round; it
    returns the result (or None) and may use ``ctx.emit(kind, payload)``,
    ``ctx.receive(timeout)`` (the next message of this round, None on timeout or
    cancel), ``ctx.pause(seconds)``, ``ctx.cancelled()``, ``ctx.round``, ``ctx.delay``
    (the injected delay; a task that spreads it itself sets it to 0) and
    ``ctx.clock()``. The virtual clock instead calls :meth:`simulate` (the round's
    events, vectorised) and :meth:`answer` (the events a message causes).
    """

    streams: bool

    def bind(self, worker: int, parts: list) -> Callable[[np.ndarray, Any], Any]: ...

    def simulate(self, code: Any, G: np.ndarray, delays: np.ndarray,
                 asked: np.ndarray) -> Schedule: ...

    def answer(self, code: Any, G: np.ndarray, worker: int,
               message: Any) -> tuple[list[tuple[str, Any]], bool]: ...


@runtime_checkable
class Host(Protocol):
    """Protocol of a backend (see the module docstring for the methods and rules)."""

    name: str
    clock: str                      # "virtual" or "wall"
    round_timeout: float | None

    def start(self, problem: Any, code: Any, *, delays: Any = None,
              task: Any = None) -> None: ...

    def broadcast(self, round: int, params: np.ndarray) -> np.ndarray: ...

    def send(self, worker: int, message: Any) -> None: ...

    def events(self, deadline: float | None = None) -> Iterator[Event]: ...

    def schedule(self) -> Schedule | None: ...

    def take(self, count: int) -> None: ...

    def cancel(self) -> None: ...

    def reassign(self, problem: Any, code: Any, task: Any = None) -> None: ...

    def close(self) -> None: ...

    @property
    def round_info(self) -> RoundInfo: ...

    @property
    def alive(self) -> np.ndarray: ...


Backend = Host
"""The name of :class:`Host` in gradcode 0.1."""


class HostBase:
    """Shared parts of the built-in hosts: ``round_info``/``alive`` (from ``self._info``
    and ``self._alive``) and the ``run_round``/``stop_round`` conveniences."""

    _info: RoundInfo
    _alive: np.ndarray
    round_timeout: float | None = None

    @property
    def round_info(self) -> RoundInfo:
        """What happened in the last round besides the events (see :class:`RoundInfo`)."""
        return self._info

    @property
    def alive(self) -> np.ndarray:
        """Boolean mask of the workers not known to be dead for good (a copy)."""
        return self._alive.copy()

    def run_round(self, round: int, params: np.ndarray,
                  policy_state: Any) -> Iterator[Arrival]:
        """Broadcast, then yield the ``"result"`` events until the stream ends (at
        ``policy_state.deadline``, else the host's ``round_timeout``)."""
        self.broadcast(round, params)  # type: ignore[attr-defined]
        limit = round_deadline(policy_state, self.round_timeout)
        for event in self.events(limit):  # type: ignore[attr-defined]
            if event.kind == "result":
                yield event

    def schedule(self) -> Schedule | None:
        """The round's events known in advance: None (the default, e.g. a wall clock)."""
        return None

    def take(self, count: int) -> None:
        """Record the first ``count`` events of :meth:`schedule` as delivered."""
        if count:
            raise RuntimeError(f"{type(self).__name__}.take: this host gives no schedule")

    def stop_round(self) -> None:
        """Cancel the rest of the round (same as ``cancel()``)."""
        self.cancel()  # type: ignore[attr-defined]

    def reassign(self, problem: Any, code: Any, task: Any = None) -> None:
        """Hold the partitions of another code: close the workers and start new ones
        with the same delays (the default; hosts may do better)."""
        self.close()  # type: ignore[attr-defined]
        self.start(problem, code, delays=self._model, task=task)  # type: ignore[attr-defined]


BackendState = HostBase


def round_delays(model: Any, round: int, load: np.ndarray, n: int,
                 time_scale: float = 1.0) -> np.ndarray:
    """This round's validated injected delays ``model.sample(round, load) * time_scale``
    (``inf``: the worker fails this round)."""
    return check_delays(model, model.sample(round, load), n) * time_scale


def round_deadline(policy_state: Any, fallback: float | None = None) -> float | None:
    """The smaller of the wait state's ``deadline`` and ``fallback`` (None: no limit)."""
    deadline = getattr(policy_state, "deadline", None)
    if deadline is None:
        return fallback
    return deadline if fallback is None else min(deadline, fallback)


def bad_result(value: Any, dim: int | None = None) -> str | None:
    """Why a worker's result must be dropped (wrong type or shape, NaN/inf), else None."""
    if dim is not None and (not isinstance(value, np.ndarray) or value.shape != (dim,)):
        return f"result of shape {getattr(value, 'shape', None)}, expected ({dim},)"
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and \
            math.isfinite(value.sum()):
        return None             # a finite sum has only finite terms (one pass, no temporary)
    if not np.all(np.isfinite(value)):
        return "non-finite result (NaN or inf)"
    return None


def check_round_timeout(where: str, value: Any) -> float | None:
    """Validate a ``round_timeout`` option (None or a positive number of seconds)."""
    if value is None:
        return None
    return check_real(where, "round_timeout", value, low=0.0, low_open=True)
