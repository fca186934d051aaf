"""Worker tasks: the coded gradient (the default task) and what every task runs with.

A worker task (:class:`gradcode.backends.base.WorkerTask`) is a picklable plug-in that a
host runs in each worker. This module holds

* :class:`CodedGradientTask`: f_i = sum_j B[i, j] g_j(w_t) over the worker's partitions,
  returned as the round's result (the plain coded round of Tandon et al. [1]); on the
  virtual clock its results arrive at the delays d_i, as lazy rows of F = B G;
* :class:`TaskContext`: the worker-side context of a round (``emit``, ``receive``,
  ``pause``, ``cancelled``, ``clock``), shared by the local worker processes and the Ray
  actors, which only supply how a control message is received (:meth:`TaskContext._pump`);
* :func:`run_task`: one round of a task followed by the rest of the injected delay;
* every partition gradient a worker computes goes through
  :func:`gradcode.models.problems.gradient_at` (``part.gradient(params, round=t)`` when the
  part accepts ``round``, for minibatch problems, else ``part.gradient(params)``).

References:
    [1] R. Tandon, Q. Lei, A. Dimakis, N. Karampatziakis, "Gradient coding",
        arXiv:1612.03301, 2017.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..models.problems import gradient_at
from .base import CodedRows, RowRef, Schedule

__all__ = ["CodedGradientTask", "TaskContext", "run_task", "wire_dtype"]

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def wire_dtype(dtype: Any) -> np.dtype:
    """The dtype vectors travel in between the master and the workers: float32 stays
    float32 (torch and JAX models), anything else is sent as float64 (the NumPy problems).

    Example:
        >>> wire_dtype("float32").name, wire_dtype(int).name
        ('float32', 'float64')
    """
    return _FLOAT32 if np.dtype(dtype) == _FLOAT32 else _FLOAT64


class TaskContext:
    """Worker-side context of one round (see :class:`gradcode.backends.base.WorkerTask`).

    Subclasses implement :meth:`_pump` (wait up to ``timeout`` seconds for one control
    message and file it with :meth:`_file`) and :meth:`_send` (an event to the master).
    """

    def __init__(self, worker: int) -> None:
        self.worker = int(worker)
        self.round = -1
        self.delay = 0.0
        self.started = 0.0
        self.messages: list[Any] = []
        self._cancelled = False

    def begin(self, round: int, delay: float) -> None:
        """A new round: forget the previous one's messages and cancel."""
        self.round, self.delay = int(round), float(delay)
        self.started = time.monotonic()
        self.messages = []
        self._cancelled = False

    @staticmethod
    def clock() -> float:
        """Monotonic seconds (the worker's clock)."""
        return time.monotonic()

    def emit(self, kind: str, payload: Any) -> None:
        """Send an event of ``kind`` to the master (delivered as an Event)."""
        self._send(kind, payload)

    def cancelled(self) -> bool:
        """True once this round was cancelled or superseded (checks the channel)."""
        if not self._cancelled:
            self._pump(0.0)
        return self._cancelled

    def receive(self, timeout: float | None) -> Any:
        """The next message of this round; None after ``timeout`` seconds (None:
        forever) or when the round is cancelled."""
        end = None if timeout is None or math.isinf(timeout) else self.clock() + timeout
        while True:
            if self.messages:
                return self.messages.pop(0)
            if self._cancelled:
                return None
            left = None if end is None else end - self.clock()
            if left is not None and left <= 0:
                self._pump(0.0)
                if not self.messages:
                    return None
                continue
            self._pump(left)

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` (inf: until cancelled); True when the round was cancelled
        meanwhile (messages that arrive stay queued)."""
        end = None if math.isinf(seconds) else self.clock() + seconds
        while not self._cancelled:
            left = None if end is None else end - self.clock()
            if left is not None and left <= 0:
                break
            self._pump(left)
        return self._cancelled

    def _file(self, kind: str, round: int, payload: Any = None) -> None:
        """File a control message: ``"msg"`` (for this round: queued), ``"cancel"`` (of
        this round) or ``"supersede"`` (a newer round or close)."""
        if kind == "supersede":
            self._cancelled = True
        elif round == self.round:
            if kind == "cancel":
                self._cancelled = True
            else:
                self.messages.append(payload)

    def _pump(self, timeout: float | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _send(self, kind: str, payload: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def run_task(runner: Callable[[np.ndarray, Any], Any], params: np.ndarray,
             ctx: TaskContext) -> Any:
    """Run one round of a task, then wait out the rest of ``ctx.delay`` (interrupted by
    a cancel); None when the round was cancelled or the task returned None."""
    value = runner(params, ctx)
    if value is None or ctx._cancelled:        # no channel poll here: it costs a syscall
        return None
    remaining = ctx.delay - (ctx.clock() - ctx.started)
    if remaining > 0 and ctx.pause(remaining):
        return None
    return value


class _CodedRunner:
    """f_i = sum_j B[i, j] g_j over the worker's partitions, checking for a cancel
    between partitions."""

    def __init__(self, worker: int, parts: Sequence[tuple[int, Any, Any]]) -> None:
        self.worker = int(worker)
        self.parts = list(parts)

    def __call__(self, params: np.ndarray, ctx: Any) -> np.ndarray | None:
        total: Any = None
        owned = False                   # total is our own array (may be added to in place)
        for _, coef, part in self.parts:
            if ctx.cancelled():
                return None
            grad = np.asarray(gradient_at(part, params, ctx.round))
            # a coefficient of 1 (uncoded, fractional repetition) costs no pass over the
            # vector; the part's array is then never written to
            term = grad if coef == 1.0 else coef * grad
            if total is None:
                total, owned = term, term is not grad
            elif owned and total.shape == term.shape and \
                    total.dtype == np.result_type(total, term):
                total += term                       # in place: no new vector per partition
            else:
                total, owned = total + term, True
        if total is None:
            return np.zeros_like(params)
        return total


class CodedGradientTask:
    """The default worker task: the coded gradient f_i as the round's one result.

    On the virtual clock worker i's result arrives at its delay d_i (ties by worker
    index) as a lazy row of F = B G (:class:`gradcode.backends.base.CodedRows`).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> task = CodedGradientTask()
        >>> class Code: B = sp.csr_array(np.eye(3))
        >>> s = task.simulate(Code, np.ones((3, 2)), np.array([2.0, 1.0, np.inf]),
        ...                   np.array([0, 1]))
        >>> s.workers.tolist(), s.times.tolist()
        ([1, 0], [1.0, 2.0])
    """

    streams = False

    def bind(self, worker: int, parts: Sequence[tuple[int, Any, Any]]) -> _CodedRunner:
        return _CodedRunner(worker, parts)

    def simulate(self, code: Any, G: np.ndarray, delays: np.ndarray,
                 asked: np.ndarray) -> Schedule:
        rows = CodedRows(code.B, G)
        order = asked[np.argsort(delays[asked], kind="stable")]
        return Schedule(delays[order], order, "result",
                        lambda e: RowRef(rows, int(order[e])), rows=rows)

    def answer(self, code: Any, G: np.ndarray, worker: int,
               message: Any) -> tuple[list[tuple[str, Any]], bool]:
        return [], False

    def __repr__(self) -> str:
        return "CodedGradientTask()"

    def __eq__(self, other: object) -> bool:
        return type(other) is CodedGradientTask

    def __hash__(self) -> int:
        return hash(CodedGradientTask)
