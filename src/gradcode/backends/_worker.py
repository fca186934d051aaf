"""Worker side of the local backend (runs in a child process; keep imports light).

Protocol on the worker's duplex pipe (master -> worker):
    b"R" + struct("<qd": t, delay) + params as raw float64 bytes   (one message per round)
    ("msg", t, message)          a protocol message for round t (``host.send``)
    ("cancel", t)                stop working on round t
    ("close",)                   exit
worker -> master:
    ("ready", worker, pid)
    ("result", t, worker, value)     value: float64 ndarray (the task's return value)
    ("error", t, worker, text)       the task raised
    (kind, t, worker, payload)       any other kind the task emits (e.g. "progress")

The task is a :class:`gradcode.backends.base.WorkerTask` (default: the coded gradient,
:class:`gradcode.backends.tasks.CodedGradientTask`); the worker binds it once and runs
each round with :func:`gradcode.backends.tasks.run_task` and a pipe-backed
:class:`gradcode.backends.tasks.TaskContext`: the task computes, may emit events and
receive messages, then the worker waits out the rest of the injected delay, polling its
pipe, so a cancel or a new round ends it at once and a superseded round leaves no
backlog.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from .tasks import CodedGradientTask, TaskContext, run_task

__all__ = ["pack_round", "worker_main"]

ROUND_TAG = b"R"            # pickles start with b"\x80", so the tag is unambiguous
_HEADER = struct.Struct("<qd")


class _PipeContext(TaskContext):
    """A round's context on the worker's pipe; a newer round or close that arrives
    meanwhile is kept in ``pending`` for the main loop."""

    def __init__(self, conn: Any, worker: int) -> None:
        super().__init__(worker)
        self.conn = conn
        self.pending: list[tuple] = []

    def _send(self, kind: str, payload: Any) -> None:
        self.conn.send((kind, self.round, self.worker, payload))

    def _pump(self, timeout: float | None) -> None:
        if self.pending:
            self._file("supersede", self.round)
            return
        if not self.conn.poll(timeout):
            return
        msg = _recv(self.conn)
        if msg[0] in ("round", "close"):
            self.pending.append(msg)
            self._file("supersede", self.round)
        elif msg[0] == "cancel":
            self._file("cancel", msg[1])
        elif msg[0] == "msg":
            self._file("msg", msg[1], msg[2])


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
                task: Any = None) -> None:
    """Child-process entry point: serve rounds until ``("close",)`` or the pipe breaks."""
    try:
        if "torch" in sys.modules:          # n worker processes share the cores
            sys.modules["torch"].set_num_threads(1)
        runner = (CodedGradientTask() if task is None else task).bind(worker, list(parts))
        ctx = _PipeContext(conn, worker)
        conn.send(("ready", worker, os.getpid()))
        while True:
            msg = ctx.pending.pop(0) if ctx.pending else _recv(conn)
            if msg[0] == "close":
                return
            if msg[0] != "round":
                continue                                    # cancel/msg of an idle round
            _, rnd, delay, params = msg
            ctx.begin(rnd, delay)
            try:
                value = run_task(runner, params, ctx)
            except Exception:  # noqa: BLE001 - reported to the master, worker lives on
                conn.send(("error", rnd, worker, traceback.format_exc(limit=5)))
                continue
            if value is not None:
                conn.send(("result", rnd, worker, np.asarray(value, dtype=np.float64)))
    except (EOFError, OSError, KeyboardInterrupt, BrokenPipeError):
        return


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
