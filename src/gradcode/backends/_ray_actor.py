"""The Ray actor of the ``ray`` backend: one gradcode worker, holding its partitions.

This module imports nothing from Ray at import time; :mod:`gradcode.backends.ray` wraps
:class:`GradientWorker` with ``ray.remote`` when the backend starts. Keeping the class a
plain Python class makes it testable without a cluster.

Worker i holds the partitions j with B[i, j] != 0 and runs the host's worker task
(:class:`gradcode.backends.base.WorkerTask`; default the coded gradient
f_i = sum_j B[i, j] g_j(params)). The methods are ``async`` so that Ray runs the actor on
an event loop: a task that does not stream runs in :meth:`GradientWorker.compute`, its
injected delay an ``asyncio.sleep`` that ``ray.cancel`` interrupts at once; a task that
streams runs in a thread under :meth:`GradientWorker.run` (a streaming generator of its
events), fed by :meth:`GradientWorker.message` and ended by
:meth:`GradientWorker.cancel`. A newer round supersedes an older one (the per-actor round
counter), so a cancelled or late round leaves no backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import time
from typing import Any

import numpy as np

from ..models.problems import gradient_at
from .tasks import CodedGradientTask, TaskContext, run_task

__all__ = ["GradientWorker", "Result"]

# (round, worker, kind, value or None when superseded, pid)
Result = tuple[int, int, str, Any, int]


class _SupersededContext:
    """Context of a task that does not stream: cancelled once a newer round arrived."""

    def __init__(self, actor: GradientWorker, round: int, delay: float) -> None:
        self.actor, self.round, self.delay = actor, round, delay
        self.worker = actor.worker

    def cancelled(self) -> bool:
        return self.round < self.actor.latest_round


class _ActorContext(TaskContext):
    """Context of a streaming task running in a thread of the actor: control messages
    come through ``inbox`` (thread-safe), events go to ``out`` on the actor's loop."""

    def __init__(self, worker: int, loop: Any) -> None:
        super().__init__(worker)
        self.loop = loop
        self.inbox: queue.Queue = queue.Queue()
        self.out: asyncio.Queue = asyncio.Queue()

    def _send(self, kind: str, payload: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, (kind, payload))

    def _pump(self, timeout: float | None) -> None:
        try:
            kind, round, payload = self.inbox.get(timeout=timeout) if timeout != 0 \
                else self.inbox.get_nowait()
        except queue.Empty:
            return
        self._file(kind, round, payload)


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
        >>> asyncio.run(w.compute(0, np.ones(2), 0.0))[3]
        array([7., 7.])
    """

    def __init__(self, worker: int, columns: Any, coefficients: Any, parts: list[Any],
                 task: Any = None) -> None:
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
        self.task = CodedGradientTask() if task is None else task
        self.runner = self.task.bind(self.worker, list(zip(self.columns.tolist(),
                                                           self.coefficients.tolist(), parts)))
        self.latest_round = -1
        self.started = time.time()
        self._ctx: _ActorContext | None = None       # the streaming round in progress

    async def ready(self, dim: int | None = None) -> tuple[int, int, str]:
        """(worker, pid, node id or "") once the partitions are loaded.

        With ``dim``, first compute one throw-away f_i at zero parameters, so the first
        real round does not pay for cold pages of the partitions (mapped from the object
        store) and first-call imports; an error there is left for the rounds to report.
        """
        if dim is not None:
            # an error here is left for a real round to report as a worker error
            with contextlib.suppress(Exception), np.errstate(all="ignore"):
                self._gradient(np.zeros(int(dim)))
        node = ""
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray there is no node
            node = ""
        return self.worker, os.getpid(), node

    def _gradient(self, params: np.ndarray) -> Any:
        """Warm-up: every held partition's gradient once (the value is discarded)."""
        for part in self.parts:
            gradient_at(part, params, 0)

    async def compute(self, round: int, params: np.ndarray, delay: float) -> Result:
        """Run a task that does not stream; return its result tagged with ``round``, no
        sooner than ``delay`` seconds after the call.

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
            return round, self.worker, "result", None, os.getpid()
        ctx = _SupersededContext(self, round, delay)
        value = self.runner(params, ctx)
        remaining = delay - (time.monotonic() - received)
        if math.isinf(remaining):
            while self.latest_round == round:
                await asyncio.sleep(0.05)
        elif remaining > 0:
            await asyncio.sleep(remaining)
        if round < self.latest_round:
            value = None
        return round, self.worker, "result", value, os.getpid()

    async def run(self, round: int, params: np.ndarray, delay: float) -> Any:
        """Run a task that streams (a Ray streaming generator, ``num_returns="streaming"``).

        The task runs in a thread with a :class:`~gradcode.backends.tasks.TaskContext`
        fed by :meth:`message` and :meth:`cancel`; each event it emits is yielded as
        ``(round, worker, kind, payload, pid)``, then its result (kind ``"result"``) or
        its error (kind ``"error"``). A newer round cancels this one.
        """
        round = int(round)
        self.latest_round = max(self.latest_round, round)
        if round < self.latest_round:
            return
        if self._ctx is not None:
            self._ctx.inbox.put(("supersede", round, None))
        loop = asyncio.get_running_loop()
        ctx = _ActorContext(self.worker, loop)
        ctx.begin(round, delay)
        self._ctx = ctx
        done = loop.run_in_executor(None, self._serve, params, ctx)
        pid = os.getpid()
        while True:
            item = await ctx.out.get()
            if item is None:
                break
            yield round, self.worker, item[0], item[1], pid
        await done

    def _serve(self, params: np.ndarray, ctx: _ActorContext) -> None:
        try:
            value = run_task(self.runner, params, ctx)
            if value is not None:
                ctx.emit("result", np.asarray(value))
        except Exception as err:  # noqa: BLE001 - reported to the master as an event
            ctx.emit("error", f"{type(err).__name__}: {err}")
        finally:
            ctx.loop.call_soon_threadsafe(ctx.out.put_nowait, None)

    async def message(self, round: int, payload: Any) -> None:
        """A protocol message for the running task of ``round``."""
        if self._ctx is not None:
            self._ctx.inbox.put(("msg", int(round), payload))

    async def cancel(self, round: int) -> None:
        """End the running task of ``round`` (and its injected delay)."""
        if self._ctx is not None:
            self._ctx.inbox.put(("cancel", int(round), None))

    async def pid(self) -> int:
        """The actor's process id (tests use it to check clean-up)."""
        return os.getpid()
