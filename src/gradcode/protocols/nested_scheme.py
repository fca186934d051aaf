"""Nested gradient codes in :func:`gradcode.training.train`: the scheme and its round.

``gc.schemes.nested(code)`` returns a :class:`NestedScheme`; ``train`` calls its
:meth:`NestedScheme.run_round` instead of the generic arrival loop. One round follows the
protocol of :mod:`gradcode.protocols.nested` ([design], docs/theory.md, T29): worker i
computes the partitions of its order pi_i one after the other and sends a PROGRESS
beacon after each; at the first instant some level is decodable the
master (:class:`~gradcode.protocols.nested.NestedMaster`) sends STOP(level) to every
worker; the asked workers send one vector each and the master decodes exactly
(:func:`~gradcode.protocols.nested.decode_vectors`).

Timing model (both backends): the delay model's draw for worker i in round t is the
delay a scheme with this code's load would see, d_i = model.sample(t, load)_i with
load_i = s_max + 1 (the row support of the top level); it is spread evenly over the
worker's s_max + 1 tasks, so task m ends at m d_i / (s_max + 1) = m u_i, with u_i the
model's per-partition draw for the load-linear models (d_i = load_i u_i: every parametric
model of :mod:`gradcode.stragglers`; a ``Trace`` without ``scale_by_load`` is spread too).
A fixed GC(n, s) on the same draws finishes at the (n - s)-th smallest (s + 1) u_i, so
on every round the nested time is min over the levels of the fixed codes' times
(:func:`gradcode.latency.nested_path_latency`).

* ``simulated``: :func:`gradcode.protocols.nested.simulate_round` on those task times (no
  link delay): the round time is the decision instant, the gradient is decoded from the
  asked workers' level vectors.
* ``local``: the workers run :class:`NestedTask` (installed as the backend's
  ``task_factory`` by :meth:`NestedScheme.prepare_backend`): after each partition they
  sleep until m u_i (time-scaled) has passed since the round started and emit a
  ``"progress"`` beacon; the master's STOP is ``backend.stop_round(assignment)``
  (``{worker: level}``), the vectors come back as ``"vector"`` messages; a final
  ``stop_round()`` releases the others. A worker that dies (or errs) is dropped from the
  :class:`NestedMaster`; if it was asked for a vector the master decides again and asks
  the new workers. The round time is when the last needed vector arrived.
* ``ray``: the same protocol on the actors (:meth:`gradcode.backends.ray.RayBackend.
  run_nested_round`): each worker's ``nested_round`` is a Ray streaming generator yielding
  one PROGRESS beacon per task (same timing as local), STOP(level) is
  ``backend.stop_round({worker: level})`` (an actor call ``nested_stop`` whose answer is
  the worker's level vector), a dead actor is a dead worker. The master side
  (:class:`_LocalRound`) is the local one.
* other backends: not supported (``NotImplementedError``).

History columns added to every row of a nested run (``RoundResult.extra``):
``nested_level`` (the level s used, -1 when the round could not decode; dyadic FRC: the
largest block size used - 1), ``nested_decide_time`` (when the master decided),
``nested_beacons``, ``nested_stops``, ``nested_vectors``, ``nested_extra_messages``
(beacons + STOPs: what a fixed code does not send), ``nested_extra_bytes``,
``nested_vector_bytes`` (message sizes of :mod:`gradcode.protocols.nested`) and
``nested_work`` (partitions computed: all tasks finished by STOP when simulated, the
tasks reported at the decision on real workers).

Example:
    >>> import gradcode as gc
    >>> X, y = gc.data.synthetic_regression(120, 3, seed=0)
    >>> prob = gc.problems.least_squares(X, y, k=6)
    >>> scheme = gc.schemes.nested(gc.codes.nested(6, (0, 1, 2), seed=0))
    >>> h = gc.training.train(prob, scheme, rounds=3, delays=gc.stragglers.Exponential(seed=0))
    >>> bool(h.final["grad_rel_error"] < 1e-9), h.final["nested_level"] in (0, 1, 2)
    (True, True)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.base import RoundInfo
from ..backends.local import LocalBackend
from ..codes.nested import is_nested
from ..core.code import Code
from ..core.decoders import Decoding, exact
from ..engine.schemes import Scheme
from ..engine.training import RoundResult
from ..engine.wait import until_decodable
from .nested import (
    BEACON_BYTES,
    STOP_BYTES,
    VECTOR_HEADER_BYTES,
    Decision,
    Messages,
    NestedMaster,
    WorkerAccumulator,
    decode_vectors,
    simulate_round,
)

__all__ = ["NestedScheme", "NestedTask", "NestedTaskFactory", "nested"]


# --------------------------------------------------------------------------- the scheme
class NestedScheme(Scheme):
    """A :class:`gradcode.schemes.Scheme` whose rounds run the nested protocol (build it
    with :func:`gradcode.schemes.nested`). ``decoder``/``wait`` are only labels here,
    except ``wait.deadline``, the per-round time limit."""

    def prepare_backend(self, backend: Any) -> None:
        """Before ``backend.start``: install the nested worker task on a local backend.

        Raises:
            ValueError: the local backend already has a custom (non-nested) task_factory.
            NotImplementedError: the backend is neither simulated, local nor ray (raised
                before any worker starts).
        """
        if callable(getattr(backend, "sample_delays", None)):
            return                                          # simulated: nothing to install
        if callable(getattr(backend, "run_nested_round", None)):
            return                                          # ray: the actors have it
        if not isinstance(backend, LocalBackend):
            raise NotImplementedError(
                f"scheme {self.name!r}: the nested protocol runs on the 'simulated' and "
                f"'local' backends and on 'ray', not on "
                f"{getattr(backend, 'name', type(backend).__name__)!r}")
        current = backend.task_factory
        if current is not None and not isinstance(current, NestedTaskFactory):
            raise ValueError(f"scheme {self.name!r}: the backend has a custom task_factory "
                             f"({current!r}); the nested protocol needs its own worker task")
        backend.task_factory = NestedTaskFactory(self.code)

    def run_round(self, backend: Any, round: int, params: np.ndarray) -> RoundResult:
        """One round of the nested protocol on a started backend (see module docstring).

        Raises:
            NotImplementedError: the backend is neither simulated, local nor ray.
        """
        if callable(getattr(backend, "sample_delays", None)):
            return _simulated_round(self, backend, round, params)
        if isinstance(backend, LocalBackend) and isinstance(backend.task_factory,
                                                            NestedTaskFactory):
            return _local_round(self, backend, round, params)
        if callable(getattr(backend, "run_nested_round", None)):
            return _ray_round(self, backend, round, params)
        raise NotImplementedError(
            f"scheme {self.name!r}: the nested protocol runs on the 'simulated' backend, on "
            f"a 'local' one prepared by prepare_backend() and on 'ray', not on "
            f"{getattr(backend, 'name', type(backend).__name__)!r}")


def _unit_times(code: Code, delays: np.ndarray) -> np.ndarray:
    """Per-task time u_i = d_i / load_i (inf stays inf)."""
    load = code.row_support.astype(np.float64)
    return np.asarray(delays, dtype=np.float64) / load


def _decoding(code: Code, decision: Decision) -> Decoding:
    """Weights and alpha of the decoded combination (alpha = 1: exact)."""
    levels = code.meta["levels"]
    level_codes = code.meta["level_codes"]
    workers = np.array(sorted(decision.assignment), dtype=np.int64)
    if code.meta["family"] == "dyadic_frc":
        weights = np.zeros(code.n)
        weights[workers] = 1.0
    else:
        weights = np.asarray(exact(level_codes[levels.index(decision.level)], workers).weights)
    alpha = np.zeros(code.k, dtype=np.result_type(weights.dtype, np.float64))
    for w, s in decision.assignment.items():
        alpha = alpha + weights[w] * level_codes[levels.index(s)].B[[w]].toarray()[0]
    return Decoding(weights=weights, alpha=alpha, error=float(np.sum(np.abs(alpha - 1) ** 2)))


def _extra(decision: Decision | None, decide_time: float, msgs: Messages,
           work: int) -> dict:
    return {"nested_level": -1 if decision is None else int(decision.level),
            "nested_decide_time": float(decide_time),
            "nested_beacons": msgs.beacons, "nested_stops": msgs.stops,
            "nested_vectors": msgs.vectors, "nested_extra_messages": msgs.extra_messages,
            "nested_extra_bytes": msgs.extra_bytes, "nested_vector_bytes": msgs.vector_bytes,
            "nested_work": int(work)}


def _result(scheme: NestedScheme, decision: Decision | None, g_hat: np.ndarray | None,
            responders: list[int], round_time: float, info: RoundInfo, decide_time: float,
            msgs: Messages, work: int, dim: int) -> RoundResult:
    extra = _extra(decision, decide_time, msgs, work)
    if decision is None or g_hat is None:
        return RoundResult(np.zeros(dim), None, "nested", [], round_time, info, extra)
    return RoundResult(np.asarray(g_hat, dtype=np.float64), _decoding(scheme.code, decision),
                       f"nested(s={decision.level})", responders, round_time, info, extra)


# --------------------------------------------------------------------------- simulated
def _simulated_round(scheme: NestedScheme, backend: Any, round: int,
                     params: np.ndarray) -> RoundResult:
    code = scheme.code
    tasks = code.meta["levels"][-1] + 1
    unit = _unit_times(code, backend.sample_delays(round))
    with np.errstate(invalid="ignore"):                  # 0 * inf never happens: m >= 1
        times = unit[:, None] * np.arange(1, tasks + 1)[None, :]
    G = backend.partition_gradients(params)
    res = simulate_round(code, times, G)
    info = RoundInfo(true_gradient=G.sum(axis=0))
    deadline = scheme.wait.deadline
    dim = int(np.asarray(params).size)
    if res.decision is None or (deadline is not None and res.decide_time > deadline):
        finite = times[np.isfinite(times)]
        info.end_time = float(deadline) if deadline is not None else \
            float(finite.max()) if finite.size else 0.0
        backend.set_round_info(info)
        return _result(scheme, None, None, [], info.end_time, info, math.nan, res.messages,
                       int(res.tasks_done.sum()), dim)
    info.end_time = res.time
    backend.set_round_info(info)
    return _result(scheme, res.decision, res.gradient, res.decision.responders.tolist(),
                   res.time, info, res.decide_time, res.messages, int(res.tasks_done.sum()),
                   dim)


# --------------------------------------------------------------------------- local: worker
class NestedTaskFactory:
    """Picklable ``task_factory`` of the local backend: ``(worker, parts) -> NestedTask``.

    Holds one empty :class:`~gradcode.protocols.nested.WorkerAccumulator` per worker (its
    order and level coefficients), not the code.
    """

    def __init__(self, code: Code) -> None:
        self.code_name = code.name
        self.templates = [WorkerAccumulator(code, i) for i in range(code.n)]

    def __call__(self, worker: int, parts: Sequence[tuple[int, Any, Any]]) -> NestedTask:
        return NestedTask(worker, parts, self.templates[worker])

    def __repr__(self) -> str:
        return f"NestedTaskFactory({self.code_name})"


class NestedTask:
    """Worker side of the nested protocol on the local backend (runs in the worker).

    Per round: compute the partitions of the order one by one into the level
    accumulators; after partition m wait until m * delay / load has passed since the
    round started (interruptible) and emit ``("progress", m)``; then serve STOP(level)
    messages of this round (``("cancel", round, {worker: level})``), emitting
    ``("vector", (level, acc_level))`` when asked, until the round is cancelled without
    a message or superseded. Returns None (the vectors travel as messages).
    """

    def __init__(self, worker: int, parts: Sequence[tuple[int, Any, Any]],
                 template: WorkerAccumulator) -> None:
        by_partition = {int(j): part for j, _, part in parts}
        missing = [int(j) for j in template.order if int(j) not in by_partition]
        if missing:
            raise ValueError(f"NestedTask: worker {worker} lacks partitions {missing} of its "
                             f"order (the top level's row must cover the order)")
        self.worker = int(worker)
        self.parts = [by_partition[int(j)] for j in template.order]
        self.template = template

    def __call__(self, params: np.ndarray, ctx: Any) -> None:
        unit = ctx.delay / len(self.parts)     # the round's delay spread over the tasks
        ctx.delay = 0.0                        # injected here, per task: none after return
        start = time.monotonic()
        acc = copy.copy(self.template)         # fresh accumulators (order/coef shared)
        for m, part in enumerate(self.parts, 1):
            if ctx.should_stop():
                break
            acc.add(np.asarray(part.gradient(params), dtype=np.float64))
            left = start + m * unit - time.monotonic()
            if ctx.wait(None if math.isinf(left) else max(0.0, left)):
                break                          # STOP (or a newer round) during task m
            ctx.emit("progress", m)
        sent: set[int] = set()
        while ctx.wait(None):
            msg = ctx.pending[0]
            if msg[0] != "cancel":
                return                         # next round / close: for the main loop
            if msg[1] == ctx.round and msg[2] is None:
                return                         # plain cancel: the round is over
            ctx.pending.pop(0)
            if msg[1] != ctx.round:
                continue                       # stale
            level = msg[2].get(self.worker)
            if level is not None and level not in sent and acc.done >= level + 1:
                sent.add(level)
                ctx.emit("vector", (int(level), acc.vector(int(level))))


# --------------------------------------------------------------------------- local: master
class _LocalRound:
    """Master side on real workers (local and ray backends): a policy state fed by
    ``on_message``."""

    def __init__(self, backend: Any, code: Code, deadline: float | None, dim: int) -> None:
        self.backend, self.code, self.deadline, self.dim = backend, code, deadline, dim
        self.master = NestedMaster(code)
        for i in np.flatnonzero(~np.asarray(backend.alive, dtype=bool)):
            self.master.mark_dead(i)
        self.msgs = Messages()
        self.vectors: dict[tuple[int, int], np.ndarray] = {}
        self.arrival: list[int] = []
        self.decision: Decision | None = None
        self.decide_time = math.nan
        self.work = 0
        self.failed = False

    def possible(self) -> bool:
        """Whether the workers still counted could decode if they all finished."""
        return self.master.possible()

    def _stop(self, decision: Decision) -> None:
        sent = self.backend.stop_round({int(w): int(s) for w, s in
                                        decision.assignment.items()})
        self.msgs.stops += int(sent) if isinstance(sent, (int, np.integer)) else \
            int(np.count_nonzero(self.master.alive))

    def on_message(self, arr: Any) -> bool:
        """Handle one protocol message; True once every needed vector is in (or never)."""
        w = int(arr.worker)
        if arr.kind == "progress":
            self.msgs.beacons += 1
            self.master.progress(w, int(arr.value))
        elif arr.kind == "vector":
            level, value = arr.value
            value = np.asarray(value)
            self.msgs.vectors += 1
            self.msgs.vector_bytes += VECTOR_HEADER_BYTES + value.nbytes
            if value.shape != (self.dim,) or not np.all(np.isfinite(value)):
                self.backend.round_info.dropped.append(
                    (w, f"nested vector of shape {value.shape} or not finite"))
                self.master.mark_dead(w)
            else:
                self.vectors[(w, int(level))] = value
                self.arrival.append(w)
        elif arr.kind in ("dead", "dropped"):
            self.master.mark_dead(w)
        if self.decision is None:
            decision = self.master.decision()
            if decision is None:
                self.failed = not self.possible()
                return self.failed
            self.decision, self.decide_time = decision, float(arr.time)
            self.work = int(self.master.tasks.sum())
            self._stop(decision)
        elif any(not self.master.alive[v] for v, s in self.decision.assignment.items()
                 if (v, s) not in self.vectors):
            # an asked worker died before sending: decide again, ask the new ones
            decision = self.master.decision()
            if decision is None:
                self.failed = True
                return True
            self.decision = decision
            self._stop(decision)
        return all(key in self.vectors for key in self.decision.assignment.items())


def _local_round(scheme: NestedScheme, backend: Any, round: int,
                 params: np.ndarray) -> RoundResult:
    def drive(state: _LocalRound) -> None:
        stream = backend.run_round(round, params, state)
        try:
            for arr in stream:                            # the nested task yields none
                raise RuntimeError(f"scheme {scheme.name!r}: worker {arr.worker} sent a "
                                   f"plain {arr.kind!r}; the backend does not run NestedTask")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    return _protocol_round(scheme, backend, params, drive)


def _ray_round(scheme: NestedScheme, backend: Any, round: int,
               params: np.ndarray) -> RoundResult:
    templates = NestedTaskFactory(scheme.code).templates    # empty accumulators
    return _protocol_round(scheme, backend, params, lambda state: backend.run_nested_round(
        round, params, templates, state))


def _protocol_round(scheme: NestedScheme, backend: Any, params: np.ndarray,
                    drive: Any) -> RoundResult:
    """The master side on real workers (local, ray): ``drive(state)`` runs the round,
    feeding every protocol message to ``state.on_message``; then decode."""
    code = scheme.code
    dim = int(np.asarray(params).size)
    state = _LocalRound(backend, code, scheme.wait.deadline, dim)
    if not state.possible():                              # too many dead already
        info = RoundInfo()
        return _result(scheme, None, None, [], 0.0, info, math.nan, state.msgs, 0, dim)
    try:
        drive(state)
    finally:
        backend.stop_round()                              # release the idle workers
    info = backend.round_info
    msgs = state.msgs
    msgs.beacon_bytes = msgs.beacons * BEACON_BYTES
    msgs.stop_bytes = msgs.stops * STOP_BYTES
    decision = state.decision
    if decision is None or state.failed or not all(
            key in state.vectors for key in decision.assignment.items()):
        return _result(scheme, None, None, [], float(info.end_time), info, state.decide_time,
                       msgs, state.work, dim)
    vectors = {w: state.vectors[(w, s)] for w, s in decision.assignment.items()}
    g_hat = decode_vectors(code, decision, vectors)
    responders = [w for w in dict.fromkeys(state.arrival) if w in decision.assignment]
    return _result(scheme, decision, g_hat, responders, float(info.end_time), info,
                   state.decide_time, msgs, state.work, dim)


def nested(code: Code, *, deadline: float | None = None) -> Scheme:
    """A nested gradient code run with its protocol: workers compute their partitions in
    order and beacon after each; the master picks the level at the first decodable
    instant, sends STOP(level), and decodes the asked vectors exactly.

    Works with :func:`gradcode.training.train` on the ``"simulated"`` and ``"local"``
    backends (see :mod:`gradcode.protocols.nested_scheme` for the timing model and the extra
    history columns ``nested_level``, ``nested_extra_messages``, ``nested_extra_bytes``...).

    Args:
        code: a nested code, ``gc.codes.nested(n, levels, ...)``.
        deadline: optional time limit (seconds) of every round.

    Raises:
        TypeError: ``code`` is not a nested code.

    Example:
        >>> import gradcode as gc
        >>> gc.schemes.nested(gc.codes.nested(6, (0, 1, 2), seed=0)).name
        "nested(nested(n=6, levels=(0, 1, 2), family='cyclic', seed=0))"
    """
    if not is_nested(code):
        raise TypeError(f"nested: code must be a nested code from gc.codes.nested(...), got "
                        f"{getattr(code, 'name', type(code).__name__)!r}")
    return NestedScheme(code, "exact", until_decodable(deadline), name=f"nested({code.name})")
