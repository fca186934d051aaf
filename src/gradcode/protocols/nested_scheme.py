"""Nested gradient codes in :func:`gradcode.training.train`: the worker task, the
master's round protocol and the scheme, written once for every host.

``gc.schemes.nested(code)`` returns a :class:`NestedScheme`; its rounds run the protocol
of :mod:`gradcode.protocols.nested` ([design], docs/theory.md, T29):
worker i computes the partitions of its order pi_i one after the other and sends a
PROGRESS beacon after each; at the first instant some level is decodable the master
(:class:`~gradcode.protocols.nested.NestedMaster`) sends STOP(level) to every worker;
the asked workers send one vector each and the master decodes exactly
(:func:`~gradcode.protocols.nested.decode_vectors`).

* :class:`NestedTask` is the worker side (a :class:`gradcode.backends.base.WorkerTask`):
  on real workers (local processes, Ray actors) it computes, emits ``"progress"`` beacons
  and answers STOP messages (``host.send(worker, level)``, -1: nothing) with a
  ``"vector"`` event ``(level, acc_level)``; on the virtual clock its beacons are
  scheduled at the same times and a STOP is answered at once. ``NestedTask(code,
  fixed=s)`` instead computes the first s + 1 tasks and returns its level-s vector as a
  plain result, without beacons: with the level-s code B^(s) (a fixed GC(n, s)) and the
  plain round this is the fixed code on the nested code's workers and timing.
* :class:`NestedRound` is the master side (a :class:`gradcode.engine.rounds.RoundProtocol`),
  the same on every host. Simultaneous events (``Event.more``, virtual clock) are applied
  together; when several levels become decodable at once the smallest is chosen.

Minibatches (problems with ``batch_size``): task m of worker i in round t is partition
pi_i(m)'s gradient on its round-t minibatch (``gradient_at(part, params, t)``; on the
virtual clock the rows of the round's G), the same rows the plain protocol and every
other copy of the partition use, so the decoded vector is exactly the gradient of the
union of the round's minibatches.

Timing model (every host): the delay model's draw for worker i in round t is the delay a
scheme with this code's load would see, d_i = model.sample(t, load)_i with load_i =
s_max + 1; it is spread evenly over the worker's s_max + 1 tasks, so task m ends at
m d_i / (s_max + 1) = m u_i, with u_i the model's per-partition draw for the load-linear
models. A fixed GC(n, s) on the same draws finishes at the (n - s)-th smallest (s + 1) u_i,
so on the virtual clock the nested round time is the minimum over the levels of the
fixed codes' times (:func:`gradcode.latency.nested_path_latency`).

When the top level cannot be reached any more (more than s_max workers dead, failed or
dropped this round), no level decodes exactly. As an exact scheme falls back to optimal
decoding of its responders, the master then waits until every live worker has finished
its tasks (or was stopped), asks each for the highest level it completed, and decodes
the vectors it gets optimally: weights a minimising ||C^T a - 1|| with C the rows of
those levels' codes (decoder ``"nested-fallback(optimal)"``; the history's ``fallback``
column is True and ``train`` logs it once). The round timeout bounds the wait.

History columns added to every row of a nested run (``RoundResult.extra``):
``nested_level`` (the level s used, -1 when no level decoded; dyadic FRC: the largest
block size used - 1), ``nested_decide_time``, ``nested_beacons``, ``nested_stops``,
``nested_vectors``, ``nested_extra_messages`` (beacons + STOPs: what a fixed code does
not send), ``nested_extra_bytes``, ``nested_vector_bytes`` and ``nested_work`` (tasks
reported at the decision).

Example:
    >>> import gradcode as gc
    >>> X, y = gc.data.synthetic_regression(120, 3, seed=0)
    >>> prob = gc.problems.least_squares(X, y, k=6)
    >>> scheme = gc.schemes.nested(gc.codes.nested(6, (0, 1, 2), seed=0))
    >>> h = gc.training.train(prob, scheme, rounds=3, delays=gc.stragglers.Exponential(seed=0))
    >>> bool(h.final["grad_rel_error"] < 1e-9), h.final["nested_level"] in (0, 1, 2)
    (True, True)

References:
    [1] L. Massny, C. Hofmeister, M. Egger, R. Bitar, A. Wachter-Zeh, "Nested gradient
        codes for straggler mitigation in distributed machine learning",
        arXiv:2212.08580, 2022.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.base import CodedRows, RowRef, Schedule
from ..backends.tasks import wire_dtype
from ..codes.nested import nested_meta
from ..core.code import Code
from ..core.decoders import Decoding, exact
from ..engine.rounds import RoundProtocol, RoundResult, run_round
from ..engine.schemes import Scheme
from ..engine.wait import until_decodable
from ..models.problems import gradient_at
from .nested import (
    BEACON_BYTES,
    STOP_BYTES,
    VECTOR_HEADER_BYTES,
    Decision,
    Messages,
    NestedMaster,
    WorkerAccumulator,
    decode_vectors,
    level_vector,
)

__all__ = ["NestedRound", "NestedScheme", "NestedTask", "nested"]


# --------------------------------------------------------------------------- worker side
class _NestedRunner:
    """One worker's nested task on real workers (see :class:`NestedTask`)."""

    def __init__(self, worker: int, parts: Sequence[tuple[int, Any, Any]],
                 template: WorkerAccumulator, fixed: int | None) -> None:
        by_partition = {int(j): part for j, _, part in parts}
        order = template.order if fixed is None else template.order[: fixed + 1]
        missing = [int(j) for j in order if int(j) not in by_partition]
        if missing:
            raise ValueError(f"NestedTask: worker {worker} lacks partitions {missing} of its "
                             f"order (the code's row must cover the order)")
        self.worker, self.fixed, self.template = int(worker), fixed, template
        self.parts = [by_partition[int(j)] for j in order]

    def __call__(self, params: np.ndarray, ctx: Any) -> np.ndarray | None:
        unit = ctx.delay / len(self.parts)     # the round's delay spread over the tasks
        ctx.delay = 0.0                        # injected here, per task: none after return
        acc = copy.copy(self.template)         # fresh accumulators (order/coef shared)
        message = None
        for m, part in enumerate(self.parts, 1):
            if ctx.cancelled():
                return None
            acc.add(np.asarray(gradient_at(part, params, ctx.round), dtype=np.float64))
            left = max(0.0, ctx.started + m * unit - ctx.clock())
            if self.fixed is not None:
                if left > 0 and ctx.pause(left):
                    return None
                continue
            message = ctx.receive(left)        # STOP (or cancel) during task m ends it
            if message is not None or ctx.cancelled():
                break
            ctx.emit("progress", m)
        if self.fixed is not None:
            return acc.vector(self.fixed)
        self._serve(acc, message, ctx)
        return None

    @staticmethod
    def _serve(acc: WorkerAccumulator, message: Any, ctx: Any) -> None:
        """Answer STOP(level) messages with the level's vector until the round ends."""
        sent: set[int] = set()
        while True:
            if message is None:
                message = ctx.receive(None)
                if message is None:
                    return                     # cancelled or superseded
            level, message = int(message), None
            if level >= 0 and level not in sent and acc.done >= level + 1:
                sent.add(level)
                ctx.emit("vector", (level, acc.vector(level)))


class NestedTask:
    """The nested protocol's worker task, for every host (see the module docstring).

    Args:
        code: the nested code (``gc.codes.nested``).
        fixed: None (the nested protocol) or a level s: compute the first s + 1 tasks and
            return the level-s vector as the round's result (run it with the level-s
            code, ``code.meta.level_codes[i]``, and the plain round).

    Holds one empty :class:`~gradcode.protocols.nested.WorkerAccumulator` per worker
    (its order and level coefficients) and the level codes, and is picklable.
    """

    def __init__(self, code: Code, fixed: int | None = None) -> None:
        meta = nested_meta("NestedTask", code)
        levels = meta.levels
        if fixed is not None and fixed not in levels:
            raise ValueError(f"NestedTask: fixed={fixed!r} must be None or one of the "
                             f"levels {levels}")
        self.code_name, self.fixed, self.levels = code.name, fixed, levels
        self.level_codes = list(meta.level_codes)
        self.nested_code = code
        self.templates = [WorkerAccumulator(code, i) for i in range(code.n)]
        self.streams = fixed is None

    def bind(self, worker: int, parts: Sequence[tuple[int, Any, Any]]) -> _NestedRunner:
        return _NestedRunner(worker, parts, self.templates[worker], self.fixed)

    def simulate(self, code: Any, G: np.ndarray, delays: np.ndarray,
                 asked: np.ndarray) -> Schedule:
        """Beacon m of worker i at m u_i (u_i = d_i / tasks); fixed: the level-s vector
        at d_i, as a lazy row of B^(s) G."""
        if self.fixed is not None:
            rows = CodedRows(self.level_codes[self.levels.index(self.fixed)].B, G)
            order = asked[np.argsort(delays[asked], kind="stable")]
            return Schedule(delays[order], order, "result",
                            lambda e: RowRef(rows, int(order[e])))
        tasks = self.levels[-1] + 1
        unit = delays[asked] / tasks
        m = np.tile(np.arange(1, tasks + 1), asked.size)
        workers = np.repeat(asked, tasks)
        times = np.repeat(unit, tasks) * m
        order = np.lexsort((m, workers, times))
        m, workers, times = m[order], workers[order], times[order]
        return Schedule(times, workers, "progress", lambda e: int(m[e]))

    def answer(self, code: Any, G: np.ndarray, worker: int,
               message: Any) -> tuple[list[tuple[str, Any]], bool]:
        """STOP(level): the level's vector now (level -1: nothing); beacons end."""
        level = int(message)
        if level < 0:
            return [], True
        return [("vector", (level, level_vector(self.nested_code, worker, level, G)))], True

    def __repr__(self) -> str:
        return f"NestedTask({self.code_name}, fixed={self.fixed})"


def _decoding(code: Code, decision: Decision) -> Decoding:
    """Weights and alpha of the decoded combination (alpha = 1: exact)."""
    meta = nested_meta("_decoding", code)
    levels, level_codes = meta.levels, meta.level_codes
    workers = np.array(sorted(decision.assignment), dtype=np.int64)
    if meta.family == "dyadic_frc":
        weights = np.zeros(code.n)
        weights[workers] = 1.0
    else:
        weights = np.asarray(exact(level_codes[levels.index(decision.level)], workers).weights)
    alpha = np.zeros(code.k, dtype=np.result_type(weights.dtype, np.float64))
    for w, s in decision.assignment.items():
        alpha = alpha + weights[w] * level_codes[levels.index(s)].B[[w]].toarray()[0]
    return Decoding(weights=weights, alpha=alpha, error=float(np.sum(np.abs(alpha - 1) ** 2)))


def _fallback_decoding(code: Code, asked: dict[int, int], vectors: dict[tuple[int, int],
                       np.ndarray]) -> tuple[np.ndarray, Decoding, list[int]]:
    """Optimal decoding of level vectors of mixed levels: min ||C^T a - 1|| over a, with
    C the rows of the levels' codes (least squares, minimum norm)."""
    meta = nested_meta("_fallback_decoding", code)
    level_codes, levels = meta.level_codes, meta.levels
    got = [(w, s) for w, s in sorted(asked.items()) if (w, s) in vectors]
    C = np.array([level_codes[levels.index(s)].B[[w]].toarray()[0] for w, s in got])
    a = np.linalg.lstsq(C.T, np.ones(code.k), rcond=None)[0]
    weights = np.zeros(code.n)
    weights[[w for w, _ in got]] = a
    alpha = C.T @ a
    g_hat = np.sum([a[i] * vectors[key] for i, key in enumerate(got)], axis=0)
    dec = Decoding(weights=weights, alpha=alpha, error=float(np.sum(np.abs(alpha - 1) ** 2)))
    return g_hat, dec, [w for w, _ in got]


class NestedRound(RoundProtocol):
    """The master side of one nested round, the same on every host (see the module
    docstring): beacons into a :class:`NestedMaster`, STOP(level) at the first
    decodable instant, exact decoding of the asked vectors, or the fallback."""

    def __init__(self, scheme: NestedScheme, host: Any, dim: int,
                 dtype: Any = np.float64) -> None:
        self.code, self.host, self.dim = scheme.code, host, int(dim)
        self.dtype = wire_dtype(dtype)   # decoded in float64, delivered in the wire dtype
        self.deadline = scheme.wait.deadline
        self.master = NestedMaster(self.code)
        self.msgs = Messages()
        self.vectors: dict[tuple[int, int], np.ndarray] = {}
        self.arrival: list[int] = []
        self.decision: Decision | None = None
        self.decide_time = math.nan
        self.done_time = math.nan
        self.work = 0
        self.live: set[int] = set()
        self.stopped: set[int] = set()
        self.fallback: dict[int, int] | None = None      # worker -> level asked
        self.draining = False

    def begin(self, asked: np.ndarray) -> bool:
        self.live = {int(w) for w in asked}
        for i in range(self.code.n):
            if i not in self.live:
                self.master.mark_dead(i)           # dead, or failed this round
        return not self.live

    def on_event(self, event: Any) -> bool:
        w, kind = int(event.worker), event.kind
        if kind == "timer":
            return True
        if kind == "progress":
            self.msgs.beacons += 1
            self.master.progress(w, int(event.value))
        elif kind == "vector":
            self._vector(w, event.value)
        elif kind in ("dead", "dropped", "result"):
            self.master.mark_dead(w)
            self.live.discard(w)
        if event.more:
            return False                           # apply simultaneous events together
        done = self._advance(float(event.time))
        if done:
            self.done_time = float(event.time)
        return done

    def _vector(self, w: int, payload: Any) -> None:
        level, value = payload
        value = np.asarray(value)
        self.msgs.vectors += 1
        self.msgs.vector_bytes += VECTOR_HEADER_BYTES + value.nbytes
        if value.shape != (self.dim,) or not np.all(np.isfinite(value)):
            self.host.round_info.dropped.append(
                (w, f"nested vector of shape {value.shape} or not finite"))
            self.master.mark_dead(w)
            self.live.discard(w)
        else:
            self.vectors[(w, int(level))] = value
            self.arrival.append(w)

    def _send(self, assignment: dict[int, int], everyone: bool) -> None:
        targets = sorted(self.live) if everyone else sorted(assignment)
        for w in targets:
            if w in self.live:
                self.host.send(w, int(assignment.get(w, -1)))
                self.msgs.stops += 1
                self.stopped.add(w)

    def _advance(self, now: float) -> bool:
        if self.fallback is not None:
            return all(key in self.vectors or key[0] not in self.live
                       for key in self.fallback.items())
        if self.draining:
            return self._drain()
        if self.decision is not None and all(
                key in self.vectors for key in self.decision.assignment.items()):
            return True
        if self.decision is None or any(w not in self.live for w in self.decision.assignment):
            decision = self.master.decision()
            if decision is None:
                if not self.master.possible():
                    self.draining = True
                    return self._drain()
                return False
            new = {w: s for w, s in decision.assignment.items()
                   if (w, s) not in self.vectors}
            first = self.decision is None
            if first:
                self.decide_time = now
                self.work = int(self.master.tasks.sum())
            self.decision = decision
            self._send(new, everyone=first)
        return all(key in self.vectors for key in self.decision.assignment.items())

    def _drain(self) -> bool:
        """Top level out of reach: once every live worker finished or was stopped, ask
        each for its highest completed level (the fallback)."""
        tasks, levels = self.master.tasks, self.master.levels
        if any(tasks[w] < self.master.tasks_max and w not in self.stopped for w in self.live):
            return False
        ask = {}
        for w in sorted(self.live):
            done = [s for s in levels if tasks[w] >= s + 1]
            if done:
                ask[w] = done[-1]
        self.fallback = ask
        for w in sorted(self.live):
            if (w, ask.get(w, -1)) not in self.vectors:
                self.host.send(w, int(ask.get(w, -1)))
                self.msgs.stops += 1
        return not ask

    def finish(self, info: Any) -> RoundResult:
        msgs = self.msgs
        msgs.beacon_bytes = msgs.beacons * BEACON_BYTES
        msgs.stop_bytes = msgs.stops * STOP_BYTES
        decision = self.decision
        end = self.done_time if not math.isnan(self.done_time) else float(info.end_time)
        level = -1 if decision is None or self.fallback is not None else int(decision.level)
        extra = _extra(level, self.decide_time, msgs, self.work)
        if self.fallback is None and decision is not None and all(
                key in self.vectors for key in decision.assignment.items()):
            vectors = {w: self.vectors[(w, s)] for w, s in decision.assignment.items()}
            g_hat = decode_vectors(self.code, decision, vectors)
            responders = [w for w in dict.fromkeys(self.arrival) if w in decision.assignment]
            return RoundResult(np.asarray(g_hat, dtype=self.dtype),
                               _decoding(self.code, decision), f"nested(s={decision.level})",
                               responders, end, info, extra)
        if self.fallback and any(key in self.vectors for key in self.fallback.items()):
            g_hat, dec, used = _fallback_decoding(self.code, self.fallback, self.vectors)
            responders = [w for w in dict.fromkeys(self.arrival) if w in used]
            return RoundResult(np.asarray(g_hat, dtype=self.dtype), dec,
                               "nested-fallback(optimal)", responders, end, info, extra,
                               fallback=True)
        return RoundResult(np.zeros(self.dim, dtype=self.dtype), None, "nested", [], end, info,
                           extra)


def _extra(level: int, decide_time: float, msgs: Messages, work: int) -> dict:
    return {"nested_level": level, "nested_decide_time": float(decide_time),
            "nested_beacons": msgs.beacons, "nested_stops": msgs.stops,
            "nested_vectors": msgs.vectors, "nested_extra_messages": msgs.extra_messages,
            "nested_extra_bytes": msgs.extra_bytes, "nested_vector_bytes": msgs.vector_bytes,
            "nested_work": int(work)}


# --------------------------------------------------------------------------- the scheme
class NestedScheme(Scheme):
    """A :class:`gradcode.schemes.Scheme` whose rounds run the nested protocol (build it
    with :func:`gradcode.schemes.nested`). ``decoder``/``wait`` are only labels here,
    except ``wait.deadline``, the per-round time limit; ``task`` is the
    :class:`NestedTask`."""

    def round_protocol(self, host: Any, round: int, params: Any) -> NestedRound:
        params = np.asarray(params)
        return NestedRound(self, host, int(params.size), params.dtype)

    def run_round(self, host: Any, round: int, params: np.ndarray, *,
                  round_timeout: float | None = None) -> RoundResult:
        """One round of the nested protocol on a started host (see the module docstring)."""
        return run_round(host, self.round_protocol(host, round, params), round, params,
                         round_timeout=round_timeout)


def nested(code: Code, *, deadline: float | None = None) -> Scheme:
    """A nested gradient code run with its protocol: workers compute their partitions in
    order and beacon after each; the master picks the level at the first decodable
    instant, sends STOP(level), and decodes the asked vectors exactly.

    Runs with :func:`gradcode.training.train` on every backend (``"simulated"``,
    ``"local"``, ``"ray"``; see :mod:`gradcode.protocols.nested_scheme` for the timing
    model, the fallback and the extra history columns).

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
    nested_meta("nested", code)
    return NestedScheme(code, "exact", until_decodable(deadline), name=f"nested({code.name})",
                        task=NestedTask(code))
