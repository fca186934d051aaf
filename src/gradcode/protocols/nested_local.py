"""Real processes for the nested protocol: beacons, STOP(level), one vector [design].

A small dedicated multiprocessing runner (the generic local backend sends one result
per round and one delay per round; the nested protocol needs per-task delays, a
PROGRESS beacon after every task and a STOP that names the vector to send). It follows
the local backend's rules: ``spawn`` start method, one duplex pipe per worker, every
message tagged with the round (stale ones dropped and counted), injected delays that
any message interrupts, ``Process.sentinel`` watched so that a dead worker is a
permanent straggler and never a hang, and every process joined (terminated if needed)
on :meth:`NestedLocalRunner.close`.

Two kinds of round, on the SAME processes and injected delays, so that fixed codes and
the nested code are compared on one sample path:

- nested (default): the protocol of :mod:`gradcode.protocols.nested`;
- ``fixed=s`` (s one of the levels; the level-s code IS a fixed GC(n, s)): a worker
  sends its level-s vector right after its s + 1-th task; the master decodes from the
  first n - s and cancels the rest (the STOP then acts as the cancel). No beacons.

Pipe protocol (master -> worker): ``("round", t, params, delays, fixed)`` (fixed = -1:
nested), ``("stop", t,
level)`` (level -1: send nothing), ``("send", t, level)`` (re-ask after a death),
``("close",)``. Worker -> master: ``("ready", i)``, ``("progress", t, i, tasks)``,
``("vector", t, i, level, value)``, ``("error", t, i, text)``.

References:
    L. Massny, C. Hofmeister, M. Egger, R. Bitar, A. Wachter-Zeh, "Nested gradient codes
    for straggler mitigation in distributed machine learning", arXiv:2212.08580, 2022.
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Self

import numpy as np

from ..codes.nested import is_nested
from ..core.code import Code
from ..core.errors import NotDecodableError
from .nested import (
    BEACON_BYTES,
    STOP_BYTES,
    VECTOR_HEADER_BYTES,
    Decision,
    Messages,
    NestedMaster,
    WorkerAccumulator,
    decode_vectors,
)

__all__ = ["NestedLocalRunner", "RoundReport"]


# --------------------------------------------------------------------------- worker side
def _worker_main(conn: Any, worker: int, parts: list[Any],
                 template: WorkerAccumulator) -> None:
    """Child process: serve rounds until ("close",) or the pipe breaks."""
    pending: list[tuple] = []
    try:
        conn.send(("ready", worker))
        while True:
            msg = pending.pop(0) if pending else conn.recv()
            if msg[0] == "close":
                return
            if msg[0] != "round":
                continue                                   # stale stop/send
            _, rnd, params, delays, fixed = msg
            try:
                _serve_round(conn, worker, parts, template, fixed, rnd, params, delays,
                             pending)
            except (EOFError, OSError, BrokenPipeError):
                raise
            except Exception:  # noqa: BLE001 - reported, the worker lives on
                conn.send(("error", rnd, worker, traceback.format_exc(limit=5)))
    except (EOFError, OSError, BrokenPipeError, KeyboardInterrupt):
        return


def _serve_round(conn: Any, worker: int, parts: list[Any], template: WorkerAccumulator,
                 fixed: int, rnd: int, params: np.ndarray, delays: np.ndarray,
                 pending: list[tuple]) -> None:
    acc = copy.copy(template)              # fresh accumulators (order/coef shared)
    stopped = False
    sent: set[int] = set()

    def send_vector(level: int) -> None:
        if level in sent or level not in acc.levels or acc.done < level + 1:
            return
        sent.add(level)
        conn.send(("vector", rnd, worker, level, acc.vector(level)))

    def handle(m: tuple) -> None:
        """A control message arrived while this round runs."""
        nonlocal stopped
        if m[0] in ("round", "close"):
            pending.append(m)
        elif m[0] == "stop" and m[1] == rnd:
            stopped = True
            send_vector(int(m[2]))
        elif m[0] == "send" and m[1] == rnd:
            send_vector(int(m[2]))

    for p, part in enumerate(parts):
        g = np.asarray(part.gradient(params), dtype=np.float64)
        # injected delay of this task, interruptible by any message
        wait_for = float(delays[p])
        deadline = time.monotonic() + wait_for if math.isfinite(wait_for) else math.inf
        while not (stopped or pending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if conn.poll(None if math.isinf(remaining) else remaining):
                handle(conn.recv())
        if stopped or pending:
            break
        acc.add(g)
        if fixed < 0:
            conn.send(("progress", rnd, worker, acc.done))
        elif acc.done == fixed + 1:
            send_vector(fixed)
            break
        while conn.poll(0) and not (stopped or pending):
            handle(conn.recv())
        if stopped or pending:
            break
    # idle: serve stop/send for this round until the next round or close
    while not pending:
        handle(conn.recv())


# --------------------------------------------------------------------------- master side
@dataclass
class RoundReport:
    """One real round.

    Attributes:
        gradient: the decoded gradient.
        latency: seconds from sending the round to having the gradient.
        decide_latency: seconds until the master decided (nested) / had n - s vectors.
        level: the level used.
        responders: workers whose vectors were used.
        tasks_reported: last progress count per worker at the decision (nested mode).
        messages: :class:`gradcode.protocols.nested.Messages` of this round.
        stale: messages of earlier rounds dropped during this round.
    """

    gradient: np.ndarray
    latency: float
    decide_latency: float
    level: int
    responders: np.ndarray
    tasks_reported: np.ndarray
    messages: Messages = field(default_factory=Messages)
    stale: int = 0


class NestedLocalRunner:
    """Run the nested protocol (or a fixed GC(n, s)) on one OS process per worker.

    Args:
        problem: a :mod:`gradcode.problems` problem (``k`` and ``part(j)`` with a picklable
            ``gradient(params)``); k must equal the code's n.
        code: a nested code (``gc.codes.nested``).
        mode: default kind of round: ``"nested"``, or ``"fixed"`` (only for a code with a
            single level s: every round is then GC(n, s)).
        timeout: seconds a round may take before :class:`NotDecodableError`.
        start_method: ``"spawn"`` (default) or ``"forkserver"``.

    Raises:
        TypeError: not a nested code. ValueError: k != n, unknown mode, fixed mode with
        several levels.

    Example (not run: starts processes)::

        with NestedLocalRunner(problem, gc.codes.nested(4, [0, 1, 3], seed=0)) as r:
            rep = r.run_round(0, params, delays)     # delays: (n, s_max + 1) seconds
    """

    def __init__(self, problem: Any, code: Code, *, mode: str = "nested",
                 timeout: float = 60.0, start_method: str = "spawn") -> None:
        where = "NestedLocalRunner"
        if not is_nested(code):
            raise TypeError(f"{where}: code must be a nested code from gc.codes.nested(...), "
                            f"got {getattr(code, 'name', type(code).__name__)!r}")
        if mode not in ("nested", "fixed"):
            raise ValueError(f"{where}: mode={mode!r} must be 'nested' or 'fixed'")
        levels = tuple(code.meta["levels"])
        if mode == "fixed" and len(levels) != 1:
            raise ValueError(f"{where}: mode='fixed' needs a code with one level, got "
                             f"levels={list(levels)}")
        if getattr(problem, "k", None) != code.n:
            raise ValueError(f"{where}: problem.k={getattr(problem, 'k', None)} must equal "
                             f"the code's n={code.n} partitions")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"{where}: timeout={timeout!r} must be a positive number")
        self.problem, self.code, self.mode = problem, code, mode
        self.levels = levels
        self.timeout = float(timeout)
        self.start_method = start_method
        self.n = code.n
        self.tasks = levels[-1] + 1
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self.alive = np.zeros(self.n, dtype=bool)
        self._stale = 0

    # -- lifecycle
    def start(self) -> None:
        """Spawn the workers; each holds the partitions of its order."""
        if self._procs:
            return
        ctx: Any = mp.get_context(self.start_method)
        order = self.code.meta["order"]
        for i in range(self.n):
            parent, child = ctx.Pipe(duplex=True)
            parts = [self.problem.part(int(j)) for j in order[i, : self.tasks]]
            proc = ctx.Process(target=_worker_main, name=f"gradcode-nested-{i}",
                               args=(child, i, parts, WorkerAccumulator(self.code, i)),
                               daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        self.alive[:] = True
        deadline = time.monotonic() + max(self.timeout, 120.0)
        ready = np.zeros(self.n, dtype=bool)
        while not ready[self.alive].all():
            self._poll(deadline, lambda w, m: ready.__setitem__(m[1], True)
                       if m[0] == "ready" else None, "start")

    def close(self) -> None:
        """Ask every worker to exit, join, terminate the ones that do not."""
        for i, conn in enumerate(self._conns):
            try:
                if self._procs[i].is_alive():
                    conn.send(("close",))
            except (OSError, BrokenPipeError):
                pass
        for proc in self._procs:
            proc.join(timeout=2.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2.0)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []
        self.alive[:] = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kill(self, worker: int) -> None:
        """Kill one worker process (a permanent straggler from now on)."""
        proc = self._procs[worker]
        proc.kill()
        proc.join(timeout=5.0)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    # -- plumbing
    def _mark_dead(self, worker: int | np.integer) -> None:
        self.alive[int(worker)] = False

    def _poll(self, deadline: float, on_message: Any, what: str) -> None:
        """Wait for one batch of messages / deaths and dispatch them."""
        live = np.flatnonzero(self.alive)
        if live.size == 0:
            raise NotDecodableError(f"NestedLocalRunner: every worker is dead ({what})")
        objs = {self._conns[i]: ("conn", i) for i in live}
        objs.update({self._procs[i].sentinel: ("dead", i) for i in live})
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotDecodableError(f"NestedLocalRunner: {what} timed out after "
                                    f"{self.timeout} s")
        ready = wait(list(objs), timeout=remaining)
        for obj in ready:
            kind, i = objs[obj]
            if not self.alive[i]:
                continue
            if kind == "conn":
                try:
                    while self._conns[i].poll(0):
                        on_message(i, self._conns[i].recv())
                except (EOFError, OSError):
                    self._mark_dead(i)
            else:
                # drain what it sent before dying, then mark it dead
                try:
                    while self._conns[i].poll(0):
                        on_message(i, self._conns[i].recv())
                except (EOFError, OSError):
                    pass
                self._mark_dead(i)

    def _send(self, worker: int | np.integer, msg: tuple) -> bool:
        worker = int(worker)
        try:
            self._conns[worker].send(msg)
            return True
        except (OSError, BrokenPipeError):
            self._mark_dead(worker)
            return False

    # -- one round
    def run_round(self, rnd: int, params: Any, delays: Any, *,
                  fixed: int | None = None) -> RoundReport:
        """Run round ``rnd``: broadcast params and per-task delays, decode exactly.

        Args:
            rnd: round number (messages of other rounds are dropped).
            params: parameter vector.
            delays: (n, tasks) injected seconds per task in each worker's order (``inf``:
                the worker hangs on that task); tasks >= the code's s_max + 1.
            fixed: run this round as the fixed code GC(n, fixed) (its level code);
                ``fixed`` must be one of the levels. Default: nested (or the single
                level when the runner was made with ``mode="fixed"``).

        Returns:
            :class:`RoundReport`.

        Raises:
            NotDecodableError: too many workers dead or the round ran past ``timeout``.
        """
        where = "NestedLocalRunner.run_round"
        if not self._procs:
            raise RuntimeError(f"{where}: call start() first (or use a with-block)")
        delays = np.asarray(delays, dtype=float)
        if delays.ndim != 2 or delays.shape[0] != self.n or delays.shape[1] < self.tasks:
            raise ValueError(f"{where}: delays must have shape (n={self.n}, >= {self.tasks}),"
                             f" got {delays.shape}")
        if np.any(np.isnan(delays)) or np.any(delays < 0):
            raise ValueError(f"{where}: delays must be >= 0 (inf allowed), not NaN")
        if fixed is None and self.mode == "fixed":
            fixed = self.levels[0]
        if fixed is not None and fixed not in self.levels:
            raise ValueError(f"{where}: fixed={fixed!r} must be one of the code's levels "
                             f"{list(self.levels)}")
        params = np.asarray(params, dtype=np.float64)
        master = NestedMaster(self.code)
        for i in np.flatnonzero(~self.alive):
            master.mark_dead(i)
        msgs = Messages()
        stale = 0
        vectors: dict[tuple[int, int], np.ndarray] = {}
        arrivals: list[int] = []
        errors: list[str] = []

        def on_message(i: int, m: tuple) -> None:
            nonlocal stale
            if m[0] == "ready" or len(m) < 2 or m[1] != rnd:
                stale += 1
                return
            if m[0] == "progress":
                msgs.beacons += 1
                master.progress(i, m[3])
            elif m[0] == "vector":
                msgs.vectors += 1
                msgs.vector_bytes += VECTOR_HEADER_BYTES + m[4].nbytes
                vectors[(i, int(m[3]))] = m[4]
                arrivals.append(i)
            elif m[0] == "error":
                errors.append(m[3])
                self._mark_dead(i)

        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        for i in np.flatnonzero(self.alive):
            self._send(i, ("round", rnd, params, delays[i, : self.tasks],
                           -1 if fixed is None else int(fixed)))
        decision: Decision | None = None
        while True:
            for i in np.flatnonzero(~self.alive):
                master.mark_dead(i)
            if fixed is None:
                decision = master.decision()
            else:
                got = [w for w in arrivals if self.alive[w]][: self.n - fixed]
                if len(got) == self.n - fixed:
                    decision = Decision(int(fixed), {w: int(fixed) for w in sorted(got)})
            if decision is not None:
                break
            if fixed is not None and self.alive.sum() < self.n - fixed:
                raise NotDecodableError(f"{where}: only {int(self.alive.sum())} workers alive,"
                                        f" GC({self.n}, {fixed}) needs {self.n - fixed}")
            if not master.possible():        # master.alive == self.alive here
                dead = np.flatnonzero(~self.alive).tolist()
                raise NotDecodableError(f"{where}: workers {dead} are dead; the rest "
                                        f"cannot decode")
            if errors:
                raise RuntimeError(f"{where}: a worker raised:\n{errors[0]}")
            self._poll(deadline, on_message, f"round {rnd}")
        decide = time.perf_counter() - t0
        reported = master.tasks.copy()
        # STOP(level) to every live worker; then collect the asked vectors
        for i in np.flatnonzero(self.alive):
            if self._send(i, ("stop", rnd, decision.assignment.get(int(i), -1))):
                msgs.stops += 1
        while True:
            missing = [(w, s) for w, s in decision.assignment.items() if (w, s) not in vectors]
            if not missing:
                break
            dead = [w for w, _ in missing if not self.alive[w]]
            if dead:
                for w in dead:
                    master.mark_dead(w)
                new = master.decision()
                if new is None:
                    raise NotDecodableError(f"{where}: asked worker(s) {dead} died after "
                                            f"STOP and the rest cannot decode")
                for w, s in new.assignment.items():
                    if (w, s) not in vectors and w not in decision.assignment:
                        self._send(w, ("send", rnd, s))
                        msgs.stops += 1
                decision = new
                continue
            self._poll(deadline, on_message, f"round {rnd} (vectors)")
        gradient = decode_vectors(self.code, decision,
                                  {w: vectors[(w, s)] for w, s in decision.assignment.items()})
        latency = time.perf_counter() - t0
        msgs.beacon_bytes = msgs.beacons * BEACON_BYTES
        msgs.stop_bytes = msgs.stops * STOP_BYTES
        self._stale += stale
        return RoundReport(gradient, latency, decide, decision.level, decision.responders,
                           reported, msgs, stale)
