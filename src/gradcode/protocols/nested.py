"""The nested-code protocol: progress beacons, STOP(level), one vector, exact decoding.

[design] (docs/theory.md, T29; the paper [1] gives only the idea):

1. Worker i computes the partitions of its order pi_i one after the other. After each
   task it sends a PROGRESS(round, i, tasks) beacon. It keeps one accumulator per level
   s: acc_s = sum_{p <= s} B^(s)[i, pi_i(p)] g_{pi_i(p)} (for the dyadic FRC family all
   coefficients are 1, so the accumulators are prefix sums of one running sum).
2. The master keeps the tasks count of every worker. At the first instant the code is
   decodable it broadcasts STOP(round, level_i) to every worker: level_i is the vector
   worker i must send, or "none".
   - cyclic family: the first level s with n - s workers at >= s + 1 tasks; the first
     n - s of them (arrival order) are asked for acc_s;
   - dyadic FRC family: the root block is covered (a block of size z, z - 1 a level, is
     covered by a worker inside it with >= z tasks, or by both of its halves); each
     block of the cover is asked from its first finisher, with level z - 1.
3. The asked workers send their one vector; the master decodes exactly: the exact
   decoder of B^(s) on the responders (cyclic) or the plain sum (dyadic).

Ties: events at the same instant are applied together; when several levels become
decodable at once the smallest s is chosen. The extra traffic relative to a fixed code
is the beacons plus the n STOP messages (:class:`Messages`).

:class:`NestedMaster` and :class:`WorkerAccumulator` are shared by the event-driven
simulation here (:func:`simulate_round`) and by the real-process runner
(:class:`gradcode.protocols.nested_scheme.NestedRound`, the same on every backend).

References:
    [1] L. Massny, C. Hofmeister, M. Egger, R. Bitar, A. Wachter-Zeh, "Nested gradient
        codes for straggler mitigation in distributed machine learning",
        arXiv:2212.08580, 2022.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..codes.nested import nested_meta
from ..core.code import Code
from ..core.decoders import exact
from ..core.validate import check_real

__all__ = [
    "BEACON_BYTES",
    "STOP_BYTES",
    "VECTOR_HEADER_BYTES",
    "Decision",
    "Messages",
    "NestedMaster",
    "ProtocolResult",
    "WorkerAccumulator",
    "decode_vectors",
    "level_vector",
    "simulate_round",
]

BEACON_BYTES = 24
"""PROGRESS(round, worker, tasks): three 64-bit integers [design]."""
STOP_BYTES = 24
"""STOP(round, worker, level or -1): three 64-bit integers [design]."""
VECTOR_HEADER_BYTES = 24
"""Header of a vector message (round, worker, level); the payload is 8 bytes a float."""


@dataclass(frozen=True)
class Decision:
    """What the master decided.

    Attributes:
        level: the straggler tolerance used (dyadic: the largest block size used - 1).
        assignment: worker -> level of the vector it must send (sorted by worker).
        responders: the asked workers, sorted.
    """

    level: int
    assignment: dict[int, int]

    @property
    def responders(self) -> np.ndarray:
        return np.array(sorted(self.assignment), dtype=np.int64)


@dataclass
class Messages:
    """Traffic of one round [design sizes: :data:`BEACON_BYTES`, :data:`STOP_BYTES`].

    Attributes:
        beacons: PROGRESS messages sent. stops: STOP messages sent. vectors: vectors sent.
        beacon_bytes, stop_bytes, vector_bytes: their bytes.
    """

    beacons: int = 0
    stops: int = 0
    vectors: int = 0
    beacon_bytes: int = 0
    stop_bytes: int = 0
    vector_bytes: int = 0

    @property
    def extra_messages(self) -> int:
        """Messages a fixed code does not need: beacons + STOPs."""
        return self.beacons + self.stops

    @property
    def extra_bytes(self) -> int:
        return self.beacon_bytes + self.stop_bytes


class NestedMaster:
    """Incremental decodability tracker of the master (shared by simulation and runner).

    Call :meth:`progress` for each beacon (in arrival order), then :meth:`decision`,
    which returns a :class:`Decision` as soon as the code is decodable, else ``None``.
    :meth:`mark_dead` drops a worker that died (its vector can no longer be asked).

    Example:
        >>> import gradcode as gc
        >>> from gradcode.protocols.nested import NestedMaster
        >>> code = gc.codes.nested(4, [0, 1], seed=0)
        >>> m = NestedMaster(code)
        >>> for w in (0, 1, 2):
        ...     m.progress(w, 2)
        >>> m.decision().level, m.decision().responders.tolist()
        (1, [0, 1, 2])
    """

    def __init__(self, code: Code) -> None:
        meta = nested_meta("NestedMaster", code)
        self.code = code
        self.n = code.n
        self.levels: tuple[int, ...] = meta.levels
        self.family: str = meta.family
        self.tasks_max = self.levels[-1] + 1
        self.reset()

    def reset(self) -> None:
        """Start a new round: every count back to 0, every worker alive."""
        n = self.n
        self.tasks = np.zeros(n, dtype=np.int64)
        self.alive = np.ones(n, dtype=bool)
        self._possible: bool | None = None      # possible() depends on ``alive`` only
        # arrival order of reaching s+1 tasks, per level (cyclic) / block size (dyadic)
        self._reached: dict[int, list[int]] = {s + 1: [] for s in self.levels}
        if self.family == "dyadic_frc":
            self._direct: dict[int, np.ndarray] = {}
            size = 1
            while size <= n:
                self._direct[size] = np.full(n // size, -1, dtype=np.int64)
                size *= 2

    def progress(self, worker: int, tasks: int) -> None:
        """Worker ``worker`` reports ``tasks`` finished tasks (counts only grow)."""
        worker, tasks = int(worker), int(tasks)
        if not 0 <= worker < self.n:
            raise ValueError(f"NestedMaster.progress: worker={worker} must lie in "
                             f"[0, {self.n - 1}]")
        if not self.alive[worker] or tasks <= self.tasks[worker]:
            return
        old = int(self.tasks[worker])
        self.tasks[worker] = min(tasks, self.tasks_max)
        for m in self._reached:
            if old < m <= tasks:
                self._reached[m].append(worker)
                if self.family == "dyadic_frc" and self._direct[m][worker // m] < 0:
                    self._direct[m][worker // m] = worker

    def mark_dead(self, worker: int | np.integer) -> None:
        """Forget a dead worker: it can no longer send a vector."""
        worker = int(worker)
        if not self.alive[worker]:
            return
        self.alive[worker] = False
        self._possible = None
        for m, lst in self._reached.items():
            if worker in lst:
                lst.remove(worker)
                if self.family == "dyadic_frc" and self._direct[m][worker // m] == worker:
                    block = worker // m
                    others = [w for w in lst if w // m == block]
                    self._direct[m][block] = others[0] if others else -1

    def possible(self) -> bool:
        """Whether the workers still alive could decode if they all finished every task
        (computed once per set of live workers: an O(n) probe, asked after every event
        while the round is undecided)."""
        if self._possible is None:
            self._possible = self._probe()
        return self._possible

    def _probe(self) -> bool:
        probe = NestedMaster(self.code)
        for i in np.flatnonzero(~self.alive):
            probe.mark_dead(i)
        for i in np.flatnonzero(self.alive):
            probe.progress(i, self.tasks_max)
        return probe.decision() is not None

    def decision(self) -> Decision | None:
        """The decision if the code is decodable now (smallest level on ties), else None."""
        if self.family == "cyclic":
            for s in self.levels:
                reached = self._reached[s + 1]
                if len(reached) >= self.n - s:
                    chosen = reached[: self.n - s]
                    return Decision(s, {w: s for w in sorted(chosen)})
            return None
        cover = self._cover(self.n, 0)
        if cover is None:
            return None
        assignment = dict(sorted(cover))
        return Decision(max(assignment.values()), assignment)

    def _cover(self, size: int, block: int) -> list[tuple[int, int]] | None:
        """Workers covering ``block`` of ``size`` (largest direct blocks first), or None."""
        if size in self._reached and self._direct[size][block] >= 0:
            return [(int(self._direct[size][block]), size - 1)]
        if size == 1:
            return None
        left = self._cover(size // 2, 2 * block)
        if left is None:
            return None
        right = self._cover(size // 2, 2 * block + 1)
        if right is None:
            return None
        return left + right


def _coefficients(code: Code, worker: int) -> np.ndarray:
    """coef[l, p]: coefficient of task p (order position) in level l's vector of ``worker``."""
    meta = nested_meta("_coefficients", code)
    order = meta.order[worker]
    coef = np.zeros((len(meta.levels), order.size))
    for li, (s, lc) in enumerate(zip(meta.levels, meta.level_codes)):
        row = lc.B[[worker]].toarray()[0]
        coef[li, : s + 1] = row[order[: s + 1]]
    return coef


class WorkerAccumulator:
    """Worker-side state: one accumulator per level, updated after each task.

    ``add(g)`` takes the gradient of the NEXT partition of the worker's order;
    ``vector(s)`` returns acc_s once at least s + 1 tasks are done.

    Example:
        >>> import numpy as np, gradcode as gc
        >>> from gradcode.protocols.nested import WorkerAccumulator
        >>> code = gc.codes.nested(4, [0, 3], family="dyadic_frc")
        >>> acc = WorkerAccumulator(code, 2)
        >>> for j in code.meta.order[2]:
        ...     acc.add(np.array([float(j)]))
        >>> acc.vector(0).tolist(), acc.vector(3).tolist()
        ([2.0], [6.0])
    """

    def __init__(self, code: Code, worker: int) -> None:
        meta = nested_meta("WorkerAccumulator", code)
        self.worker = int(worker)
        self.levels = meta.levels
        self.order = np.asarray(meta.order[self.worker])
        self.coef = _coefficients(code, self.worker)
        self.done = 0
        self.acc: np.ndarray | None = None

    def next_partition(self) -> int | None:
        """The partition to compute next, or None when the order is exhausted."""
        return int(self.order[self.done]) if self.done < self.order.size else None

    def add(self, g: Any) -> None:
        g = np.asarray(g)
        if self.done >= self.order.size:
            raise ValueError(f"WorkerAccumulator.add: worker {self.worker} already computed "
                             f"all {self.order.size} tasks of its order")
        if self.acc is None:
            self.acc = np.zeros((len(self.levels),) + g.shape,
                                dtype=np.result_type(g.dtype, np.float64))
        c = self.coef[:, self.done]
        for li in np.flatnonzero(c):
            self.acc[li] += c[li] * g
        self.done += 1

    def vector(self, level: int) -> np.ndarray:
        if level not in self.levels:
            raise ValueError(f"WorkerAccumulator.vector: level={level} is not one of "
                             f"{self.levels}")
        if self.done < level + 1 or self.acc is None:
            raise ValueError(f"WorkerAccumulator.vector: worker {self.worker} has "
                             f"{self.done} tasks done, level {level} needs {level + 1}")
        return self.acc[self.levels.index(level)].copy()


def level_vector(code: Code, worker: int, level: int, partials: Any) -> np.ndarray:
    """acc_s of ``worker`` computed directly from all partial gradients (k x dim)."""
    meta = nested_meta("level_vector", code)
    row = meta.level_codes[meta.levels.index(level)].B[[worker]].toarray()[0]
    return row @ np.asarray(partials)


def decode_vectors(code: Code, decision: Decision, vectors: dict[int, np.ndarray]
                   ) -> np.ndarray:
    """Exact gradient from the asked workers' vectors.

    Cyclic: weights a = exact decoder of B^(s) on the responders, g = sum_i a_i v_i.
    Dyadic: the vectors' blocks partition {0..n-1} with coefficient 1: g = sum_i v_i.

    Raises:
        ValueError: a vector of an asked worker is missing.
    """
    meta = nested_meta("decode_vectors", code)
    missing = [w for w in decision.assignment if w not in vectors]
    if missing:
        raise ValueError(f"decode_vectors: vectors of workers {missing} are missing")
    workers = sorted(decision.assignment)
    if meta.family == "dyadic_frc":
        return np.sum([np.asarray(vectors[w]) for w in workers], axis=0)
    level_code = meta.level_codes[meta.levels.index(decision.level)]
    weights = exact(level_code, np.array(workers, dtype=np.int64)).weights
    return np.sum([weights[w] * np.asarray(vectors[w]) for w in workers], axis=0)


@dataclass
class ProtocolResult:
    """One simulated round of the nested protocol.

    Attributes:
        decoded: whether the code became decodable (False only when too many workers
            never finish, e.g. dead ones).
        decision: the :class:`Decision` (None when not decoded).
        decide_time: when the master decided (last beacon it needed arrived).
        time: when the gradient is available: decide_time + 2 link delays (STOP out,
            vector back); inf when not decoded.
        tasks_done: tasks each worker finished before STOP reached it (the load actually
            computed).
        messages: :class:`Messages` counts and bytes.
        gradient: the decoded gradient when partial gradients were given, else None.
    """

    decoded: bool
    decision: Decision | None
    decide_time: float
    time: float
    tasks_done: np.ndarray
    messages: Messages = field(default_factory=Messages)
    gradient: np.ndarray | None = None

    @property
    def level(self) -> int | None:
        return None if self.decision is None else self.decision.level


def simulate_round(code: Code, finish_times: Any, partials: Any = None, *,
                   link_delay: float = 0.0) -> ProtocolResult:
    """Event-driven simulation of one round of the nested protocol.

    Beacons are processed in time order (workers' finish times plus ``link_delay``);
    after every instant the :class:`NestedMaster` checks decodability. Workers keep
    computing until STOP reaches them (decide_time + link_delay) and the asked vectors
    arrive another link delay later.

    Args:
        code: a nested code (``gc.codes.nested``).
        finish_times: (n, s_max + 1) cumulative finish times S_i(1..s_max+1) of each
            worker's ordered tasks, non-decreasing along rows; ``inf`` = never.
        partials: optional (k, ...) array of partial gradients g_j; when given, the
            workers' accumulators are run and the gradient decoded.
        link_delay: one-way message delay (>= 0).

    Returns:
        :class:`ProtocolResult`.

    Raises:
        TypeError: ``code`` is not a nested code.
        ValueError: wrong shapes, NaN or decreasing finish times, negative link delay.

    Example:
        >>> import numpy as np, gradcode as gc
        >>> from gradcode.protocols.nested import simulate_round
        >>> code = gc.codes.nested(4, [0, 1, 2], seed=0)
        >>> times = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3], [9, 10, 11.]])
        >>> g = np.arange(8.0).reshape(4, 2)
        >>> r = simulate_round(code, times, g)
        >>> r.level, r.time, np.allclose(r.gradient, g.sum(axis=0)), r.tasks_done.tolist()
        (1, 2.0, True, [2, 2, 2, 0])

    References:
        Massny et al., arXiv:2212.08580, 2022 (idea); this protocol is [design].
    """
    where = "simulate_round"
    meta = nested_meta(where, code)
    link_delay = check_real(where, "link_delay", link_delay, low=0.0)
    n = code.n
    M = meta.levels[-1] + 1
    times = np.asarray(finish_times, dtype=float)
    if times.shape != (n, M):
        raise ValueError(f"{where}: finish_times must have shape (n, s_max+1) = ({n}, {M}), "
                         f"got {times.shape}")
    if np.any(np.isnan(times)):
        raise ValueError(f"{where}: finish_times must not contain NaN")
    if M > 1 and np.any(times[:, 1:] < times[:, :-1]):
        raise ValueError(f"{where}: finish_times must be non-decreasing along each row "
                         f"(cumulative times of the ordered tasks)")
    grads = None
    if partials is not None:
        grads = np.asarray(partials)
        if grads.ndim < 1 or grads.shape[0] != code.k:
            raise ValueError(f"{where}: partials must have k={code.k} rows (one partial "
                             f"gradient each), got shape {grads.shape}")
    master = NestedMaster(code)
    workers, tasks = np.nonzero(np.isfinite(times))
    arrival = times[workers, tasks] + link_delay
    order = np.lexsort((workers, arrival))
    decision = None
    decide_time = np.inf
    i = 0
    while i < order.size:
        t = arrival[order[i]]
        j = i
        while j < order.size and arrival[order[j]] == t:
            e = order[j]
            master.progress(workers[e], tasks[e] + 1)
            j += 1
        i = j
        decision = master.decision()
        if decision is not None:
            decide_time = float(t)
            break
    stop_at = decide_time + link_delay
    tasks_done = np.sum(np.isfinite(times) & (times <= stop_at), axis=1).astype(np.int64)
    msgs = Messages()
    msgs.beacons = int(tasks_done.sum())
    msgs.beacon_bytes = msgs.beacons * BEACON_BYTES
    if decision is None:
        return ProtocolResult(False, None, np.inf, np.inf, tasks_done, msgs, None)
    msgs.stops = n
    msgs.stop_bytes = n * STOP_BYTES
    msgs.vectors = len(decision.assignment)
    payload = 0 if grads is None else int(np.prod(grads.shape[1:], dtype=np.int64)) * 8
    msgs.vector_bytes = msgs.vectors * (VECTOR_HEADER_BYTES + payload)
    gradient = None
    if grads is not None:
        vectors = {}
        for w, lvl in decision.assignment.items():
            acc = WorkerAccumulator(code, w)
            for _ in range(lvl + 1):
                acc.add(grads[acc.next_partition()])
            vectors[w] = acc.vector(lvl)
        gradient = decode_vectors(code, decision, vectors)
    return ProtocolResult(True, decision, decide_time, decide_time + 2 * link_delay,
                          tasks_done, msgs, gradient)
