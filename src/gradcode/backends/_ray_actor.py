"""The Ray actor of the ``ray`` backend: one gradcode worker, holding its partitions.

This module imports nothing from Ray at import time; :mod:`gradcode.backends.ray` wraps
:class:`GradientWorker` with ``ray.remote`` when the backend starts. Keeping the class a
plain Python class makes it testable without a cluster.

Worker i holds the partitions j with B[i, j] != 0 and answers
f_i = sum_j B[i, j] g_j(params). The methods are ``async`` so that Ray runs the actor on an
event loop: an injected delay is an ``asyncio.sleep`` that ``ray.cancel`` interrupts at
once, and a newer round supersedes an older one still sleeping (the per-actor round
counter), so a cancelled or late round leaves no backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import time
from typing import Any

import numpy as np

from ..models.problems import gradient_at

__all__ = ["GradientWorker", "Result"]

# (round, worker, value or None when superseded, compute seconds, pid)
Result = tuple[int, int, Any, float, int]


class GradientWorker:
    """A gradcode worker as a Ray actor: holds partitions, answers f_i per round.

    The partitions are loaded in the constructor (from object-store references or plain
    :class:`gradcode.problems.Part` objects), so an actor that Ray restarts after a crash
    or a lost node rebuilds itself from its constructor arguments and rejoins.

    Args:
        worker: the worker index i.
        columns: the partitions j it holds (the support of row i of B).
        coefficients: B[i, j] for those partitions (real or complex).
        parts: one :class:`~gradcode.problems.Part` (or a Ray ``ObjectRef`` to one) per
            column.

    Example:
        >>> import asyncio, numpy as np
        >>> class P:
        ...     def __init__(self, c): self.c = c
        ...     def gradient(self, params): return self.c * params
        >>> w = GradientWorker(0, [0, 1], [1.0, 2.0], [P(1.0), P(3.0)])
        >>> asyncio.run(w.compute(0, np.ones(2), 0.0))[2]
        array([7., 7.])
    """

    def __init__(self, worker: int, columns: Any, coefficients: Any, parts: list[Any]) -> None:
        self.worker = int(worker)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.coefficients = np.asarray(coefficients)
        parts = list(parts)
        if len(parts) != self.columns.size or self.coefficients.size != self.columns.size:
            raise ValueError(f"GradientWorker: worker {worker} got {len(parts)} parts, "
                             f"{self.coefficients.size} coefficients and {self.columns.size} "
                             f"columns; they must match")
        refs = [i for i, p in enumerate(parts) if type(p).__name__ == "ObjectRef"]
        if refs:
            import ray  # only inside an actor; resolves the partitions from the object store

            loaded = ray.get([parts[i] for i in refs])
            for i, part in zip(refs, loaded):
                parts[i] = part
        self.parts = parts
        self.latest_round = -1
        self.started = time.time()
        self._nested: dict[str, Any] | None = None   # the nested round in progress
        self._nested_stopped = -1                    # latest round that got a STOP

    async def ready(self, dim: int | None = None) -> tuple[int, int, str]:
        """(worker, pid, node id or "") once the partitions are loaded.

        With ``dim``, first compute one throw-away f_i at zero parameters, so the first
        real round does not pay for cold pages of the partitions (mapped from the object
        store) and first-call imports; an error there is left for the rounds to report.
        """
        if dim is not None:
            # an error here is left for a real round to report as a worker error
            with contextlib.suppress(Exception), np.errstate(all="ignore"):
                self._gradient(np.zeros(int(dim)), 0)
        node = ""
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray there is no node
            node = ""
        return self.worker, os.getpid(), node

    def _gradient(self, params: np.ndarray, round: int | None = None) -> Any:
        value: Any = None
        for coef, part in zip(self.coefficients, self.parts):
            term = coef * np.asarray(gradient_at(part, params, round))
            value = term if value is None else value + term
        if value is None:                               # a worker holding nothing
            value = np.zeros(np.shape(params), dtype=np.result_type(self.coefficients, params))
        return value

    async def compute(self, round: int, params: np.ndarray, delay: float) -> Result:
        """Return f_i tagged with ``round``, no sooner than ``delay`` seconds after the call.

        As in the local backend, the worker computes first and then sleeps for what is
        left of ``delay`` (the injected straggler delay); the sleep is an
        ``asyncio.sleep``, so ``ray.cancel`` ends it at once. A round that a newer one
        superseded returns ``None`` as its value. ``delay=inf`` means the worker fails
        this round: it sleeps until cancelled or superseded.
        """
        round = int(round)
        received = time.monotonic()
        self.latest_round = max(self.latest_round, round)
        if round < self.latest_round:
            return round, self.worker, None, 0.0, os.getpid()
        value = self._gradient(params, round)
        compute_s = time.monotonic() - received
        remaining = delay - compute_s
        if math.isinf(remaining):
            while self.latest_round == round:
                await asyncio.sleep(0.05)
        elif remaining > 0:
            await asyncio.sleep(remaining)
        if round < self.latest_round:
            return round, self.worker, None, compute_s, os.getpid()
        return round, self.worker, value, compute_s, os.getpid()

    # ------------------------------------------------------------ nested codes
    async def nested_round(self, round: int, params: np.ndarray, delay: float,
                           accumulator: Any) -> Any:
        """Worker side of the nested protocol (:mod:`gradcode.protocols.nested_scheme`); a Ray
        streaming generator (call it with ``num_returns="streaming"``).

        Computes the partitions of ``accumulator.order`` (an empty
        :class:`~gradcode.protocols.nested.WorkerAccumulator` of this worker) one by one;
        after partition m it waits until m * delay / (number of tasks) has passed since
        the call and yields the beacon ``(round, worker, m, pid)``. A STOP
        (:meth:`nested_stop` of this round) or a newer round ends it at once; the
        accumulator stays for :meth:`nested_stop` to read.
        """
        round = int(round)
        self.latest_round = max(self.latest_round, round)
        if round < self.latest_round or round <= self._nested_stopped:
            return                                      # superseded or already stopped
        if self._nested is not None:
            self._nested["event"].set()                 # supersede the previous round
        by_column = {int(j): part for j, part in zip(self.columns, self.parts)}
        missing = [int(j) for j in accumulator.order if int(j) not in by_column]
        if missing:
            raise ValueError(f"nested_round: worker {self.worker} lacks partitions {missing} "
                             f"of its order (the top level's row must cover the order)")
        acc = copy.copy(accumulator)
        event = asyncio.Event()
        self._nested = {"round": round, "acc": acc, "event": event}
        parts = [by_column[int(j)] for j in acc.order]
        unit = float(delay) / len(parts)
        start = time.monotonic()
        for m, part in enumerate(parts, 1):
            if event.is_set():
                return
            acc.add(np.asarray(part.gradient(params), dtype=np.float64))
            left = start + m * unit - time.monotonic()
            try:
                await asyncio.wait_for(event.wait(),
                                       None if math.isinf(left) else max(0.0, left))
                return                                  # STOP (or newer round) in task m
            except TimeoutError:
                pass
            yield round, self.worker, m, os.getpid()

    async def nested_stop(self, round: int, level: int) -> Result:
        """STOP(round, level): end this worker's nested round; return its level vector.

        ``level < 0`` asks for nothing (the value is None). The value is also None when
        the round is not this worker's current one or it has fewer than level + 1 tasks
        done (the master only asks for levels reported done). Returns
        ``(round, worker, (level, vector) or None, 0.0, pid)``.
        """
        round, level = int(round), int(level)
        self._nested_stopped = max(self._nested_stopped, round)
        state = self._nested
        if state is None or state["round"] != round:
            return round, self.worker, None, 0.0, os.getpid()
        state["event"].set()
        acc = state["acc"]
        if level < 0 or acc.done < level + 1:
            return round, self.worker, None, 0.0, os.getpid()
        return round, self.worker, (level, acc.vector(level)), 0.0, os.getpid()

    async def pid(self) -> int:
        """The actor's process id (tests use it to check clean-up)."""
        return os.getpid()
