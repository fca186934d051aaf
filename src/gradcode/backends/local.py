"""The local backend: one OS process per worker, data resident in the worker.

* Processes come from stdlib ``multiprocessing`` with the ``forkserver`` (default on
  Linux) or ``spawn`` start method; each worker receives its partitions once, at start.
* One duplex pipe per worker. Vectors travel in the problem's dtype (float32 for
  torch/JAX models, float64 for the NumPy problems), in one of two ways
  (``shared_memory``; see :mod:`gradcode.backends._worker` for the wire format):

  - shared memory (default for vectors above 32 KiB where Linux's ``memfd_create``
    exists): the master writes each round's parameters ONCE into an anonymous shared
    block that every worker maps, and sends each worker a small message (round,
    broadcast number, delays, result slot); a worker copies the parameters out,
    computes, writes its result into its slot of the block and sends a small "done t"
    message; the master yields a view of the slot (no copy) and does not give that slot
    out again while the view (or anything made from it) is alive. Round tags in the block
    and in the messages keep a late result from ever being read as the current one; the
    block has no name and is freed by the kernel when the last process mapping it exits,
    so no path leaks it (:mod:`gradcode.backends._shared`);
  - pipes (small vectors, or ``shared_memory=False``): ONE round message (a small
    header, every worker's delay, the raw parameter bytes) built once and written to
    every asked worker; payloads above 32 KiB go through a per-worker sender thread so a
    full pipe can never deadlock the master. Results come back as raw bytes behind a
    small header, read straight into a fresh buffer.

  The master waits on the pending workers' pipes and process sentinels with one
  ``select.poll`` object and the round's deadline.
* Every message carries its round number; results of older rounds are dropped.
* The worker task is a plug-in (:class:`gradcode.backends.base.WorkerTask`, default the
  coded gradient); it may emit events and answer the master's messages (``send``).
* ``round_timeout`` (default :data:`gradcode.backends.base.DEFAULT_ROUND_TIMEOUT`, 300 s)
  bounds every round, so a worker that hangs while alive cannot stall training.
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

import logging
import multiprocessing as mp
import queue
import select
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from multiprocessing.connection import wait as mp_wait
from typing import Any

import numpy as np

from ..core.validate import check_real
from ..models.stragglers import as_delay_model
from . import _shared, _worker
from .base import (
    DEFAULT_ROUND_TIMEOUT,
    Event,
    HostBase,
    RoundInfo,
    WorkersLostError,
    bad_result,
    check_round_timeout,
    round_delays,
)
from .tasks import wire_dtype

__all__ = ["LocalBackend"]

_log = logging.getLogger("gradcode.backends.local")

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


def _widen(conn: Any, nbytes: int) -> None:
    """Ask for socket buffers that hold a whole vector message (the kernel caps the
    request at net.core.wmem_max / rmem_max): fewer writer/reader hand-offs per message."""
    if nbytes <= _INLINE_LIMIT:
        return
    try:
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, nbytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, nbytes)
    except OSError:
        pass                                    # not a socket, or not allowed: keep them


def _shutdown(procs: list, conns: list, senders: list, grace: float,
              block: Any = None) -> None:
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
    if block is not None:
        block.close()


class LocalBackend(HostBase):
    """One process per worker on this machine (see module docstring).

    Args:
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``.
        time_scale: multiply every injected delay (e.g. 0.01 to run a model in seconds
            as milliseconds).
        startup_timeout: seconds to wait for all workers to load their data.
        round_timeout: the longest a round may last (seconds; None: no limit); when it
            passes the round ends with whoever answered. Default 300 s (see
            :data:`gradcode.backends.base.DEFAULT_ROUND_TIMEOUT`).
        grace: seconds ``close()`` waits for workers to exit before terminating them.
        shared_memory: True: parameters and results travel through shared memory
            (Linux only); False: through the pipes; None (default): shared memory where
            available for vectors above 32 KiB, pipes otherwise (and, with a warning,
            when the block cannot be made).

    Attributes:
        name: ``"local"``; clock: ``"wall"``.
        pids: process ids of the workers (after ``start``).
        shared: True when the started workers exchange vectors through shared memory.

    Raises:
        ValueError: an unknown start method, a bad number, or ``shared_memory=True`` where
            shared memory is not available. TypeError: ``shared_memory`` not a bool/None.
    """

    name = "local"
    clock = "wall"

    def __init__(self, *, start_method: str | None = None, time_scale: float = 1.0,
                 startup_timeout: float = 120.0,
                 round_timeout: float | None = DEFAULT_ROUND_TIMEOUT,
                 grace: float = 2.0, shared_memory: bool | None = None) -> None:
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
        self.round_timeout = check_round_timeout("LocalBackend", round_timeout)
        self.grace = float(grace)
        if shared_memory is not None and not isinstance(shared_memory, bool):
            raise TypeError(f"LocalBackend: shared_memory must be True, False or None, got "
                            f"{shared_memory!r}")
        if shared_memory and not _shared.available():
            raise ValueError("LocalBackend: shared_memory=True needs os.memfd_create (Linux); "
                             "use shared_memory=None or False here")
        self.shared_memory = shared_memory
        self.shared = False
        self._block: Any = None
        self._seq = 0
        self._slots = np.zeros(0, dtype=np.int64)
        self._procs: list = []
        self._conns: list = []
        self._senders: list = []
        self._alive = np.zeros(0, dtype=bool)
        self._busy = np.zeros(0, dtype=bool)
        self._pending: set[int] = set()
        self._info = RoundInfo()
        self._round = -1
        self._t0 = 0.0
        self._finalizer: Any = None
        self._poller: Any = None
        self._watch: dict[int, int] = {}         # fd polled this round -> worker
        self.pids: list[int] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, problem: Any, code: Any, *, delays: Any = None, task: Any = None) -> None:
        """Start n worker processes, each holding the partitions its row of B needs and
        running ``task`` (default: the coded gradient).

        Raises:
            ValueError: a complex code (not supported by the local workers).
            WorkersLostError: a worker died or did not report ready within
                ``startup_timeout`` (all workers are then shut down).
        """
        if self._procs:
            self.close()
        if np.iscomplexobj(code.B.data):
            raise ValueError(f"LocalBackend: complex codes ({code.name}) are not supported on "
                             f"the local backend; use the simulated backend")
        self._code = code
        self._model = as_delay_model(delays)
        self._model.validate(code.n)
        self._load = code.row_support.astype(np.float64)
        self._dim = int(problem.dim)
        self._dtype = wire_dtype(getattr(problem, "dtype", np.float64))
        self._block = self._make_block(code.n)
        self.shared = self._block is not None
        vector_bytes = 0 if self.shared else 8 * self._dim
        self._message_bytes = _worker.HEADER_SIZE + 8 * code.n + vector_bytes
        self._reader = _worker.Reader(self._message_bytes)
        try:
            procs, conns = self._spawn(problem, code, task)
        finally:
            if self._block is not None:
                self._block.release_fd()             # every worker holds its own now
        self._procs, self._conns = procs, conns
        self._senders = [None] * code.n
        self._finalizer = weakref.finalize(self, _shutdown, procs, conns, self._senders,
                                           self.grace, self._block)
        self._alive = np.ones(code.n, dtype=bool)
        self._busy = np.zeros(code.n, dtype=bool)
        self._slots = np.full(code.n, -1, dtype=np.int64)     # result slot of this round
        self.pids = [p.pid for p in procs]
        self._await_ready()

    def _make_block(self, n: int) -> Any:
        """The shared block of this start, or None for the pipes (``shared_memory=None``:
        vectors above 32 KiB where available; the pipes too when the block cannot be
        made, e.g. out of memory)."""
        if self.shared_memory is False:
            return None
        if self.shared_memory is None and (
                not _shared.available() or self._dim * self._dtype.itemsize <= _INLINE_LIMIT):
            return None
        try:
            return _shared.SharedBlock.create(self._dim, self._dtype, n)
        except OSError as exc:
            if self.shared_memory:
                raise
            _log.warning("LocalBackend: no shared memory (%s); vectors go through the pipes",
                         exc)
            return None

    def _spawn(self, problem: Any, code: Any, task: Any) -> tuple[list, list]:
        """One process per row of B, given its (partition, coefficient, Part) triples."""
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(["numpy", "scipy.sparse", "gradcode.backends._worker"])
        B = code.B
        parts_cache: dict[int, Any] = {}
        procs: list = []
        conns: list = []
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
                _widen(parent, self._message_bytes)
                _widen(child, self._message_bytes)
                p = ctx.Process(target=_worker.worker_main, name=f"gradcode-worker-{i}",
                                args=(child, i, parts, task, self._block), daemon=True)
                p.start()
                child.close()
                procs.append(p)
                conns.append(parent)
        except BaseException:
            _shutdown(procs, conns, [], 0.5, self._block)
            self._block = None
            raise
        return procs, conns

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
        self._block = None
        self._alive = np.zeros(0, dtype=bool)
        self._pending = set()
        self._poller, self._watch = None, {}

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def processes(self) -> list:
        """The worker ``multiprocessing.Process`` objects (for tests and monitoring)."""
        return list(self._procs)

    # ------------------------------------------------------------------ messages
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

    # ------------------------------------------------------------------ a round
    def broadcast(self, round: int, params: np.ndarray) -> np.ndarray:
        """Send (round, delay_i, params) to every live worker with a finite delay.

        Raises:
            RuntimeError: before ``start``. ValueError: params of the wrong shape.
        """
        if not self._procs:
            raise RuntimeError("LocalBackend: start() must be called before broadcast()")
        n = self._code.n
        body = np.asarray(params, dtype=self._dtype)
        if body.shape != (self._dim,):
            raise ValueError(f"LocalBackend: params must have shape ({self._dim},), got "
                             f"{body.shape}")
        delays = round_delays(self._model, round, self._load, n, self.time_scale)
        self._round = int(round)
        # a worker whose delay is infinite has failed this round: it is not asked, so a
        # policy without a deadline can never wait on it
        asked = np.flatnonzero(self._alive & np.isfinite(delays))
        self._info = RoundInfo(asked=asked)
        if self._block is not None:                # the vector once, into shared memory
            self._seq += 1
            self._block.write_params(self._seq, body)
            slots = self._slots
            slots[:] = -1
            for i in asked.tolist():
                slots[i] = self._block.pick_slot(i)
            msg = _worker.pack_shared_round(self._round, self._seq, delays, slots,
                                            self._dtype)
        else:
            msg = _worker.pack_round(self._round, delays, body)  # one buffer for everyone
        self._unwatch_all()
        self._t0 = time.perf_counter()
        for i in asked.tolist():
            self._send(i, [("bytes", msg)], msg.nbytes)
            self._busy[i] = True
            self._watch_worker(i)
        self._pending = set(asked.tolist())
        return asked

    def _watch_worker(self, i: int) -> None:
        if self._poller is None:
            self._poller = select.poll()
        for fd in (self._conns[i].fileno(), self._procs[i].sentinel):
            self._poller.register(fd, select.POLLIN)
            self._watch[fd] = i

    def _unwatch(self, i: int) -> None:
        for fd in (self._conns[i].fileno(), self._procs[i].sentinel):
            if self._watch.pop(fd, None) is not None:
                self._poller.unregister(fd)

    def _unwatch_all(self) -> None:
        for fd in list(self._watch):
            self._poller.unregister(fd)
        self._watch.clear()

    def send(self, worker: int, message: Any) -> None:
        """A protocol message to one worker of the current round."""
        if self._alive[worker]:
            self._send(int(worker), [("obj", ("msg", self._round, message))], 0)

    def events(self, deadline: float | None = None) -> Iterator[Event]:
        """The round's events (see :mod:`gradcode.backends.base`): waits on every pending
        worker's pipe and process sentinel, up to ``deadline`` seconds after the
        broadcast."""
        info, t0, pending, watch = self._info, self._t0, self._pending, self._watch
        end = None if deadline is None else t0 + deadline
        while pending:
            timeout = None if end is None else max(0.0, end - time.perf_counter())
            ready = self._poller.poll(_worker.poll_ms(timeout))
            if not ready:
                if end is not None and time.perf_counter() < end:
                    continue                                # woke early: wait on
                break                                       # deadline
            for fd, _ in ready:
                i = watch.get(fd)
                if i is None or i not in pending:
                    continue
                if fd != self._conns[i].fileno():           # sentinel: the process ended
                    yield from self._worker_died(i, pending)
                    continue
                try:
                    msg = self._reader.read(self._conns[i])
                except (EOFError, OSError):
                    yield from self._worker_died(i, pending)
                    continue
                event = self._accept(i, msg)
                if event is None:
                    continue
                if event.kind in ("result", "dropped"):
                    self._forget(i, pending)
                    self._busy[i] = False
                info.end_time = event.time
                yield event
        if pending and end is not None:
            info.end_time = float(deadline)
            yield Event(-1, float(deadline), float(deadline), self._round, "timer")

    def _worker_died(self, i: int, pending: set) -> Iterator[Event]:
        """Events a dead worker sent before dying (the sentinel may be reported before
        the pipe in the same wait), then its ``"dead"`` event."""
        try:
            while self._conns[i].poll(0):
                event = self._accept(i, self._reader.read(self._conns[i]))
                if event is not None:
                    yield event
        except (EOFError, OSError):
            pass
        self._forget(i, pending)
        self._mark_dead(i)
        yield Event(i, None, time.perf_counter() - self._t0, self._round, "dead")

    def _forget(self, i: int, pending: set) -> None:
        pending.discard(i)
        self._unwatch(i)

    def _accept(self, i: int, msg: tuple) -> Event | None:
        """The event of one worker message; None for a message of an older round."""
        kind, rnd = msg[0], msg[1]
        info = self._info
        if rnd != self._round:
            info.late += 1
            return None
        reason = None
        if kind == "slot":                   # the result is in worker i's shared slot
            slot = int(self._slots[i])
            kind, value = "result", None
            if msg[3] == slot >= 0:
                value = self._block.read_result(i, slot, rnd)
            if value is None:
                reason = f"shared-memory slot {msg[3]} of worker {i} does not hold round {rnd}"
        else:
            value = msg[3]
        if kind == "error":
            reason = "worker error: " + str(value).strip().splitlines()[-1]
        elif kind == "result" and reason is None:
            reason = bad_result(value, self._dim)
        now = time.perf_counter() - self._t0
        if reason is not None:
            info.dropped.append((i, reason))
            return Event(i, reason, now, rnd, "dropped")
        return Event(i, value, now, rnd, kind)

    def cancel(self) -> None:
        """Tell the workers still busy with this round to abandon it (ends injected
        sleeps and streaming tasks); idempotent."""
        busy = np.flatnonzero(self._busy & self._alive).tolist()
        for i in busy:
            self._send(i, [("obj", ("cancel", self._round))], 0)
        self._busy[:] = False
        self._pending.clear()
        self._unwatch_all()

    def reassign(self, problem: Any, code: Any, task: Any = None) -> None:
        """Hold another code's partitions: new worker processes (same delays)."""
        self.close()
        self.start(problem, code, delays=self._model, task=task)
