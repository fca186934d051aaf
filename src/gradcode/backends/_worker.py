"""Worker side of the local backend (runs in a child process; keep imports light).

Protocol on the worker's duplex pipe (master -> worker):
    b"R" + struct("<qd": t, delay) + params as raw float64 bytes   (one message per round)
    ("cancel", t, message)       stop working on round t
    ("close",)                   exit
worker -> master:
    ("ready", worker, pid)
    ("result", t, worker, value)     value: float64 ndarray
    ("error", t, worker, text)       the task raised
    (kind, t, worker, payload)       any other kind a custom task emits (e.g. "progress")

A task is pluggable: ``task_factory(worker, parts) -> task`` with
``task(params, ctx) -> ndarray | None``; ``ctx.emit(kind, payload)`` sends a message,
``ctx.should_stop()`` is True once a newer message (cancel / next round) arrived, in
which case the task may return None to abandon the round. Tasks with their own protocol
(nested codes, :mod:`gradcode.protocols.nested_scheme`) also use ``ctx.wait(timeout)`` (block until
a message arrives; it is kept in ``ctx.pending``) and ``ctx.delay`` (the round's injected
delay; a task that injects it itself, e.g. spread over its partitions, sets it to 0 so
that no delay is added after it returns).

After computing, the worker sleeps until ``delay`` seconds have passed since it
received the round (an injected straggler delay), polling its pipe: a cancel or a new
round ends the sleep at once, so a superseded round leaves no backlog.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..models.problems import gradient_at

__all__ = ["CodedGradientTask", "pack_round", "worker_main"]

ROUND_TAG = b"R"            # pickles start with b"\x80", so the tag is unambiguous
_HEADER = struct.Struct("<qd")


class CodedGradientTask:
    """Default task: f_i = sum_j B[i, j] g_j over the worker's partitions, in order.

    Checks ``ctx.should_stop()`` between partitions so a cancelled round is abandoned.
    """

    def __init__(self, worker: int, parts: Sequence[tuple[int, Any, Any]]) -> None:
        self.worker = worker
        self.parts = list(parts)

    def __call__(self, params: np.ndarray, ctx: Any) -> np.ndarray | None:
        total: np.ndarray | None = None
        for _, coef, part in self.parts:
            if ctx.should_stop():
                return None
            g = np.asarray(gradient_at(part, params, ctx.round))
            term = coef * g
            total = term if total is None else total + term
        if total is None:
            return np.zeros_like(params)
        return total


class _Context:
    def __init__(self, conn: Any, worker: int) -> None:
        self.conn, self.worker = conn, worker
        self.round = -1
        self.delay = 0.0                    # this round's injected delay (tasks may zero it)
        self.pending: list[tuple] = []

    def emit(self, kind: str, payload: Any) -> None:
        self.conn.send((kind, self.round, self.worker, payload))

    def should_stop(self) -> bool:
        if self.pending:
            return True
        if self.conn.poll(0):
            self.pending.append(_recv(self.conn))
            return True
        return False

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds (None: forever) for a message; True if one is
        pending (it stays in ``pending`` for the task or the main loop to handle)."""
        if self.pending:
            return True
        if self.conn.poll(timeout):
            self.pending.append(_recv(self.conn))
            return True
        return False


def _recv(conn: Any) -> tuple:
    data = conn.recv_bytes()
    if data[:1] == ROUND_TAG:
        rnd, delay = _HEADER.unpack_from(data, 1)
        params = np.frombuffer(data, dtype=np.float64, offset=1 + _HEADER.size).copy()
        return ("round", rnd, delay, params)
    return pickle.loads(data)


def pack_round(rnd: int, delay: float, params_bytes: bytes) -> bytes:
    """One message per worker and round: tag, (round, delay), raw float64 params."""
    return ROUND_TAG + _HEADER.pack(int(rnd), float(delay)) + params_bytes


def worker_main(conn: Any, worker: int, parts: Sequence[tuple[int, Any, Any]],
                task_factory: Callable[[int, Sequence], Any] | None = None) -> None:
    """Child-process entry point: serve rounds until ``("close",)`` or the pipe breaks."""
    try:
        if "torch" in sys.modules:          # n worker processes share the cores
            sys.modules["torch"].set_num_threads(1)
        task = (task_factory or CodedGradientTask)(worker, parts)
        ctx = _Context(conn, worker)
        conn.send(("ready", worker, os.getpid()))
        while True:
            msg = ctx.pending.pop(0) if ctx.pending else _recv(conn)
            kind = msg[0]
            if kind == "close":
                return
            if kind != "round":
                continue                                    # cancel of an idle round
            _, rnd, delay, params = msg
            received = time.monotonic()
            ctx.round = rnd
            ctx.delay = delay
            try:
                value = task(params, ctx)
            except Exception:  # noqa: BLE001 - reported to the master, worker lives on
                conn.send(("error", rnd, worker, traceback.format_exc(limit=5)))
                continue
            if value is None or ctx.pending:
                continue                                    # superseded while computing
            remaining = ctx.delay - (time.monotonic() - received)
            if remaining > 0:
                # interruptible injected delay: any message ends it (inf: wait for one)
                if conn.poll(None if not np.isfinite(remaining) else remaining):
                    ctx.pending.append(_recv(conn))
                    continue
            conn.send(("result", rnd, worker, np.asarray(value, dtype=np.float64)))
    except (EOFError, OSError, KeyboardInterrupt, BrokenPipeError):
        return


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
