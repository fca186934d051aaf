"""The local backend: one OS process per worker, data resident in the worker.

* Processes come from stdlib ``multiprocessing`` with the ``forkserver`` (default on
  Linux) or ``spawn`` start method; each worker receives its partitions once, at start.
* One duplex pipe per worker. The master broadcasts the parameters (a small header plus
  the raw float64 bytes; payloads above 32 KiB go through a per-worker sender thread so
  a full pipe can never deadlock the master), then waits on all pipes and all process
  sentinels with ``multiprocessing.connection.wait`` and the round's deadline.
* Every message carries its round number; results of older rounds are dropped.
* Injected delays are slept by the worker after computing, polling its pipe, so a
  cancel or the next round ends them at once (no backlog).
* A worker whose sentinel fires (killed, crashed) is a permanent straggler. A result that
  is NaN/inf or of the wrong shape, or a task exception, drops that worker for the round
  and is logged in ``round_info.dropped``.
* ``close()`` asks workers to exit, then terminates and finally kills any survivor;
  a finalizer does the same if the backend is garbage-collected while open.

Example:
    >>> import gradcode as gc                                        # doctest: +SKIP
    >>> be = gc.backends.get_backend("local", start_method="spawn")  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait as mp_wait
from typing import Any

import numpy as np

from ..core.validate import check_real
from ..models.stragglers import as_delay_model
from . import _worker
from .base import (
    Arrival,
    BackendState,
    RoundInfo,
    WorkersLostError,
    bad_result,
    round_deadline,
    round_delays,
)

__all__ = ["LocalBackend"]

_INLINE_LIMIT = 32 * 1024


class _Sender(threading.Thread):
    """Sends queued messages to one worker so the master never blocks on a full pipe."""

    def __init__(self, conn: Any) -> None:
        super().__init__(daemon=True)
        self.conn = conn
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                for kind, payload in item:
                    if kind == "obj":
                        self.conn.send(payload)
                    else:
                        self.conn.send_bytes(payload)
            except (OSError, ValueError, BrokenPipeError):
                pass


def _shutdown(procs: list, conns: list, senders: list, grace: float) -> None:
    # ask politely; a worker with a sender thread gets "close" through it (the main
    # thread writing to the same pipe could interleave with, or block behind, a large
    # message the thread is still sending to a busy or hung worker)
    for i, (p, c) in enumerate(zip(procs, conns)):
        sender = senders[i] if i < len(senders) else None
        if sender is not None:
            sender.queue.put([("obj", ("close",))])
            sender.queue.put(None)
        elif p.is_alive():
            try:
                c.send(("close",))
            except (OSError, ValueError, BrokenPipeError):
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(1.0)
        if p.is_alive():
            p.kill()
            p.join(1.0)
    for c in conns:
        try:
            c.close()
        except OSError:
            pass
    for p in procs:
        try:
            p.close()
        except ValueError:
            pass


class LocalBackend(BackendState):
    """One process per worker on this machine (see module docstring).

    Args:
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``.
        time_scale: multiply every injected delay (e.g. 0.01 to run a model in seconds
            as milliseconds).
        startup_timeout: seconds to wait for all workers to load their data.
        round_timeout: a safety limit (seconds) for rounds whose policy has no deadline;
            when it passes the round ends with whoever answered (None: no limit).
        task_factory: ``(worker, parts) -> task`` run in the worker (default: the coded
            gradient); must be picklable (module-level).
        grace: seconds ``close()`` waits for workers to exit before terminating them.

    Attributes:
        name: ``"local"``; clock: ``"wall"``.
        pids: process ids of the workers (after ``start``).
    """

    name = "local"
    clock = "wall"

    def __init__(self, *, start_method: str | None = None, time_scale: float = 1.0,
                 startup_timeout: float = 120.0, round_timeout: float | None = None,
                 task_factory: Callable | None = None, grace: float = 2.0) -> None:
        methods = mp.get_all_start_methods()
        if start_method is None:
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        if start_method not in ("spawn", "forkserver") or start_method not in methods:
            raise ValueError(f"LocalBackend: start_method={start_method!r} must be 'spawn' or "
                             f"'forkserver' (available here: {methods})")
        self.start_method = start_method
        self.time_scale = check_real("LocalBackend", "time_scale", time_scale, low=0.0)
        self.startup_timeout = check_real("LocalBackend", "startup_timeout", startup_timeout,
                                          low=0.0, low_open=True)
        self.round_timeout = None if round_timeout is None else check_real(
            "LocalBackend", "round_timeout", round_timeout, low=0.0, low_open=True)
        self.task_factory = task_factory
        self.grace = float(grace)
        self._procs: list = []
        self._conns: list = []
        self._senders: list = []
        self._alive = np.zeros(0, dtype=bool)
        self._busy = np.zeros(0, dtype=bool)
        self._info = RoundInfo()
        self._round = -1
        self._finalizer: Any = None
        self.pids: list[int] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, problem: Any, code: Any, *, delays: Any = None) -> None:
        """Start n worker processes, each holding the partitions its row of B needs.

        Raises:
            WorkersLostError: a worker died or did not report ready within
                ``startup_timeout`` (all workers are then shut down).
        """
        if self._procs:
            self.close()
        self._code = code
        self._model = as_delay_model(delays)
        self._model.validate(code.n)
        self._load = code.row_support.astype(np.float64)
        self._dim = int(problem.dim)
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(["numpy", "scipy.sparse", "gradcode.backends._worker"])
        B = code.B
        if np.iscomplexobj(B.data):
            raise ValueError(f"LocalBackend: complex codes ({code.name}) are not supported on "
                             f"the local backend; use the simulated backend")
        parts_cache: dict[int, Any] = {}
        procs, conns = [], []
        try:
            for i in range(code.n):
                cols = B.indices[B.indptr[i]:B.indptr[i + 1]]
                coefs = B.data[B.indptr[i]:B.indptr[i + 1]]
                parts = []
                for j, c in zip(cols.tolist(), coefs.tolist()):
                    if j not in parts_cache:
                        parts_cache[j] = problem.part(j)
                    parts.append((j, float(c), parts_cache[j]))
                parent, child = ctx.Pipe(duplex=True)
                p = ctx.Process(target=_worker.worker_main, name=f"gradcode-worker-{i}",
                                args=(child, i, parts, self.task_factory), daemon=True)
                p.start()
                child.close()
                procs.append(p)
                conns.append(parent)
        except BaseException:
            _shutdown(procs, conns, [], 0.5)
            raise
        self._procs, self._conns = procs, conns
        self._senders = [None] * code.n
        self._finalizer = weakref.finalize(self, _shutdown, procs, conns, self._senders,
                                           self.grace)
        self._alive = np.ones(code.n, dtype=bool)
        self._busy = np.zeros(code.n, dtype=bool)
        self.pids = [p.pid for p in procs]
        self._await_ready()

    def _await_ready(self) -> None:
        pending = set(range(len(self._procs)))
        deadline = time.monotonic() + self.startup_timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            waitables = {self._conns[i]: i for i in pending}
            waitables.update({self._procs[i].sentinel: i for i in pending})
            for obj in mp_wait(list(waitables), timeout=left):
                i = waitables[obj]
                if i not in pending:
                    continue
                if obj is self._procs[i].sentinel and not self._conns[i].poll(0):
                    self.close()
                    raise WorkersLostError(f"LocalBackend: worker {i} died while starting "
                                           f"(exit code {self._procs[i].exitcode})")
                try:
                    msg = self._conns[i].recv()
                except (EOFError, OSError):
                    self.close()
                    raise WorkersLostError(f"LocalBackend: worker {i} died while starting") \
                        from None
                if msg[0] == "ready":
                    pending.discard(i)
        if pending:
            self.close()
            raise WorkersLostError(f"LocalBackend: workers {sorted(pending)[:10]} did not start "
                                   f"within startup_timeout={self.startup_timeout} s")

    def close(self) -> None:
        """Stop every worker (close, then terminate, then kill); idempotent."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._procs, self._conns, self._senders = [], [], []
        self._alive = np.zeros(0, dtype=bool)

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def processes(self) -> list:
        """The worker ``multiprocessing.Process`` objects (for tests and monitoring)."""
        return list(self._procs)

    # ------------------------------------------------------------------ rounds
    def _send(self, i: int, items: list[tuple[str, Any]], size: int) -> None:
        if size <= _INLINE_LIMIT and (self._senders[i] is None):
            try:
                for kind, payload in items:
                    if kind == "obj":
                        self._conns[i].send(payload)
                    else:
                        self._conns[i].send_bytes(payload)
            except (OSError, ValueError, BrokenPipeError):
                self._mark_dead(i)
            return
        if self._senders[i] is None:
            sender = _Sender(self._conns[i])
            sender.start()
            self._senders[i] = sender
        self._senders[i].queue.put(items)

    def _mark_dead(self, i: int) -> None:
        if self._alive[i]:
            self._alive[i] = False
            self._busy[i] = False
            self._info.dead.append(i)

    def run_round(self, round: int, params: np.ndarray,
                  policy_state: Any) -> Iterator[Arrival]:
        if not self._procs:
            raise RuntimeError("LocalBackend: start() must be called before run_round()")
        n = self._code.n
        info = RoundInfo()
        self._info = info
        self._round = int(round)
        delays = round_delays(self._model, round, self._load, n, self.time_scale)
        deadline = round_deadline(policy_state, self.round_timeout)
        body = np.asarray(params, dtype=np.float64)
        if body.shape != (self._dim,):
            raise ValueError(f"LocalBackend: params must have shape ({self._dim},), got "
                             f"{body.shape}")
        raw = body.tobytes()
        t0 = time.perf_counter()
        # a worker that died between rounds is caught by its sentinel (or a broken pipe);
        # a worker whose delay is infinite has failed this round: it is not asked, so a
        # policy without a deadline can never wait on it
        asked = np.flatnonzero(self._alive & np.isfinite(delays)).tolist()
        for i in asked:
            msg = _worker.pack_round(self._round, float(delays[i]), raw)
            self._send(i, [("bytes", msg)], len(msg))
            self._busy[i] = True
        pending = set(asked)
        by_obj: dict[Any, int] = {}
        for i in pending:
            by_obj[self._conns[i]] = i
            by_obj[self._procs[i].sentinel] = i
        end = None if deadline is None else t0 + deadline
        while pending:
            timeout = None if end is None else max(0.0, end - time.perf_counter())
            ready = mp_wait(list(by_obj), timeout=timeout)
            if not ready:
                break                                       # deadline
            for obj in ready:
                i = by_obj.get(obj)
                if i is None or i not in pending:
                    continue
                conn = self._conns[i]
                if obj is not conn:                          # sentinel: process ended
                    # a result it sent before dying still counts (the sentinel may be
                    # reported before the pipe in the same wait)
                    last = self._drain(i, info, t0)
                    self._forget(i, pending, by_obj)
                    self._mark_dead(i)
                    if last is not None:
                        info.end_time = last.time
                        yield last
                    if self._tell(policy_state, i, None, t0, "dead", info):
                        return
                    continue
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    self._forget(i, pending, by_obj)
                    self._mark_dead(i)
                    if self._tell(policy_state, i, None, t0, "dead", info):
                        return
                    continue
                arrival = self._accept(i, msg, info, t0)
                if arrival is None:
                    if msg[0] in ("result", "error") and msg[1] == self._round:
                        self._forget(i, pending, by_obj)    # dropped: straggler this round
                        if self._tell(policy_state, i, info.dropped[-1][1], t0, "dropped",
                                      info):
                            return
                    continue
                if arrival.kind == "result":
                    self._forget(i, pending, by_obj)
                    self._busy[i] = False
                    info.end_time = arrival.time
                    yield arrival
                else:
                    handler = getattr(policy_state, "on_message", None)
                    if handler is not None and handler(arrival):
                        info.end_time = arrival.time     # the state's protocol is done
                        return
        if pending and end is not None:
            info.end_time = float(deadline)

    def _tell(self, policy_state: Any, i: int, value: Any, t0: float, kind: str,
              info: RoundInfo) -> bool:
        """Hook for custom protocols (nested codes, :mod:`gradcode.protocols.nested_scheme`): tell
        ``policy_state.on_message`` that worker i died (``"dead"``) or that its result was
        dropped (``"dropped"``, value = the reason). True from the handler ends the round
        stream (as for any other message kind)."""
        handler = getattr(policy_state, "on_message", None)
        if handler is None:
            return False
        now = time.perf_counter() - t0
        if handler(Arrival(i, value, now, self._round, kind)):
            info.end_time = now
            return True
        return False

    def _forget(self, i: int, pending: set, by_obj: dict) -> None:
        pending.discard(i)
        by_obj.pop(self._conns[i], None)
        by_obj.pop(self._procs[i].sentinel, None)

    def _drain(self, i: int, info: RoundInfo, t0: float) -> Arrival | None:
        """Read whatever a dead worker managed to send; return its valid result of this
        round, if any (other messages are discarded, stale ones counted as late)."""
        found = None
        try:
            while self._conns[i].poll(0):
                msg = self._conns[i].recv()
                arrival = self._accept(i, msg, info, t0)
                if arrival is not None and arrival.kind == "result":
                    found = arrival
        except (EOFError, OSError):
            pass
        return found

    def _accept(self, i: int, msg: tuple, info: RoundInfo, t0: float) -> Arrival | None:
        kind, rnd = msg[0], msg[1]
        if rnd != self._round:
            info.late += 1
            return None
        if kind == "error":
            info.dropped.append((i, "worker error: " + str(msg[3]).strip().splitlines()[-1]))
            self._busy[i] = False
            return None
        now = time.perf_counter() - t0
        if kind == "result":
            reason = bad_result(msg[3], self._dim)
            if reason is not None:
                info.dropped.append((i, reason))
                self._busy[i] = False
                return None
        return Arrival(i, msg[3], now, rnd, kind)

    def stop_round(self, message: Any = None) -> int:
        """Tell workers still busy with this round to abandon it (ends injected sleeps).

        With a ``message`` (a protocol message such as the nested codes' STOP(level),
        :mod:`gradcode.protocols.nested_scheme`) the workers stay busy: the round goes on, and a
        final ``stop_round()`` cancels it. Returns the number of workers messaged.
        """
        busy = np.flatnonzero(self._busy & self._alive).tolist()
        for i in busy:
            self._send(i, [("obj", ("cancel", self._round, message))], 0)
        if message is None:
            self._busy[:] = False
        return len(busy)
