"""Worker side of the local backend (runs in a child process; keep imports light).

Wire format on the worker's duplex pipe. Vectors travel as raw bytes in their own dtype
(float32 for torch/JAX models, float64 for the NumPy problems, see
:func:`gradcode.backends.tasks.wire_dtype`) behind a small header; every other message is
a pickle (pickles start with ``b"\\x80"``, so the one-byte tags are unambiguous).

master -> worker:
    ROUND: header ``<c c 6x q q`` (b"R", dtype char, t, n) + n float64 delays (one per
        worker, the worker reads its own) + params: ONE message per round, built once and
        sent to every asked worker
    SHARED ROUND: header ``<c c 6x q q q`` (b"P", dtype char, t, n, s) + n float64
        delays + n int64 result slots (-1: answer through the pipe), when the parameters
        of broadcast s are in shared memory (:mod:`gradcode.backends._shared`): a small
        message instead of the vector
    ("msg", t, message)          a protocol message for round t (``host.send``)
    ("cancel", t)                stop working on round t
    ("close",)                   exit
worker -> master:
    ("ready", worker, pid)
    RESULT: header ``<c c 6x q q`` (b"F", dtype char, t, worker) + the task's return value
        as raw bytes (float32 stays float32; anything else becomes float64)
    SLOT: header ``<c c 6x q q q`` (b"S", dtype char, t, worker, k): the result of
        round t is in the worker's shared-memory slot k
    ("error", t, worker, text)       the task raised
    (kind, t, worker, payload)       any other kind the task emits (e.g. "progress")

Headers are 24 (32) bytes and the delays 8 bytes each, so the vectors start 8-byte aligned.
Receivers read every message straight into a fresh buffer (:class:`Reader`): a received
vector is a writable view of it, with no further copy and no buffer shared between
messages.

The task is a :class:`gradcode.backends.base.WorkerTask` (default: the coded gradient,
:class:`gradcode.backends.tasks.CodedGradientTask`); the worker binds it once and runs
each round with :func:`gradcode.backends.tasks.run_task` and a pipe-backed
:class:`gradcode.backends.tasks.TaskContext`: the task computes, may emit events and
receive messages, then the worker waits out the rest of the injected delay, polling its
pipe, so a cancel or a new round ends it at once and a superseded round leaves no
backlog.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import struct
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from .tasks import CodedGradientTask, TaskContext, run_task, wire_dtype

__all__ = ["Reader", "pack_result", "pack_round", "pack_shared_round", "pack_slot", "poll_ms",
           "worker_main"]

ROUND_TAG = b"R"
RESULT_TAG = b"F"
SHARED_ROUND_TAG = b"P"
SLOT_TAG = b"S"
_HEADER = struct.Struct("<cc6xqq")            # tag, dtype char, round, n (or worker)
HEADER_SIZE = _HEADER.size                    # 24
_SHARED = struct.Struct("<cc6xqqq")           # tag, dtype char, round, n (or worker), seq
                                              # (or slot)
_SIZE, _SIZE64 = struct.Struct("!i"), struct.Struct("!Q")   # Connection framing
_DTYPES = {b"f": np.dtype(np.float32), b"d": np.dtype(np.float64)}


def poll_ms(timeout: float | None) -> int | None:
    """A timeout in seconds as ``select.poll``'s milliseconds (rounded up; None: forever)."""
    return None if timeout is None else max(0, math.ceil(timeout * 1000.0))


def pack_round(rnd: int, delays: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The round message (see the module docstring): one buffer for every worker."""
    params = np.ascontiguousarray(params)
    delays = np.ascontiguousarray(delays, dtype="<f8")
    head = HEADER_SIZE + delays.nbytes
    msg = np.empty(head + params.nbytes, dtype=np.uint8)
    _HEADER.pack_into(msg, 0, ROUND_TAG, params.dtype.char.encode(), int(rnd), delays.size)
    msg[HEADER_SIZE:head] = delays.view(np.uint8)
    msg[head:] = params.view(np.uint8)
    return msg


def pack_shared_round(rnd: int, seq: int, delays: np.ndarray, slots: np.ndarray,
                      dtype: Any) -> np.ndarray:
    """The round message when broadcast ``seq``'s parameters are in shared memory
    (``slots``: each worker's result slot this round)."""
    delays = np.ascontiguousarray(delays, dtype="<f8")
    n = delays.size
    msg = np.empty(_SHARED.size + 16 * n, dtype=np.uint8)
    _SHARED.pack_into(msg, 0, SHARED_ROUND_TAG, np.dtype(dtype).char.encode(), int(rnd), n,
                      int(seq))
    msg[_SHARED.size:_SHARED.size + 8 * n] = delays.view(np.uint8)
    msg[_SHARED.size + 8 * n:] = np.ascontiguousarray(slots, dtype="<i8").view(np.uint8)
    return msg


def pack_slot(rnd: int, worker: int, slot: int, dtype: Any) -> bytes:
    """The "done" message of a result written into the worker's shared-memory slot."""
    return _SHARED.pack(SLOT_TAG, np.dtype(dtype).char.encode(), int(rnd), int(worker),
                        int(slot))


def pack_result(rnd: int, worker: int, value: np.ndarray) -> np.ndarray:
    """A result message: header and the raw bytes of ``value`` (float32 or float64)."""
    msg = np.empty(HEADER_SIZE + value.nbytes, dtype=np.uint8)
    _HEADER.pack_into(msg, 0, RESULT_TAG, value.dtype.char.encode(), int(rnd), int(worker))
    msg[HEADER_SIZE:] = value.view(np.uint8)
    return msg


def _read_exact(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise EOFError
        data += more
    if not data:
        raise EOFError
    return data


class Reader:
    """Reads one message from a connection straight into a fresh buffer.

    The framing is the one of ``multiprocessing.connection.Connection`` (a 4-byte
    big-endian length, -1 then an 8-byte length for messages over 2 GiB), read here with
    ``os.readv`` into a NumPy buffer: ``Connection.recv_bytes`` would assemble large
    messages chunk by chunk in a ``BytesIO`` and copy them again. Vectors come back as
    writable views of the buffer; no buffer is shared between messages.

    Args:
        size: the buffer size to start with (bytes); it grows to the largest message.
    """

    def __init__(self, size: int = 0) -> None:
        self.size = max(int(size), 4096)

    def _recv(self, conn: Any) -> tuple[np.ndarray, int]:
        fd = conn.fileno()
        nbytes = _SIZE.unpack(_read_exact(fd, 4))[0]
        if nbytes == -1:
            nbytes = _SIZE64.unpack(_read_exact(fd, 8))[0]
        self.size = max(self.size, nbytes)
        buf = np.empty(self.size, dtype=np.uint8)
        view, pos = memoryview(buf), 0
        while pos < nbytes:
            got = os.readv(fd, [view[pos:nbytes]])
            if not got:
                raise EOFError
            pos += got
        return buf, nbytes

    def read(self, conn: Any, worker: int = -1) -> tuple:
        """The message as a tuple: ``("round", t, delay, params)`` (``worker``: whose
        delay), ``("shared", t, delay, seq, slot)``, ``("result", t, worker, value)``,
        ``("slot", t, worker, slot)`` or the unpickled tuple.

        Raises:
            EOFError: the other end closed the pipe. OSError: the pipe broke.
        """
        buf, nbytes = self._recv(conn)
        tag = buf[:1].tobytes()
        if tag == ROUND_TAG:
            _, char, rnd, n = _HEADER.unpack_from(buf, 0)
            delay = float(buf[HEADER_SIZE:HEADER_SIZE + 8 * n].view("<f8")[worker])
            return ("round", rnd, delay, buf[HEADER_SIZE + 8 * n:nbytes].view(_DTYPES[char]))
        if tag == RESULT_TAG:
            _, char, rnd, w = _HEADER.unpack_from(buf, 0)
            return ("result", rnd, w, buf[HEADER_SIZE:nbytes].view(_DTYPES[char]))
        if tag == SLOT_TAG:
            _, _, rnd, w, slot = _SHARED.unpack_from(buf, 0)
            return ("slot", rnd, w, slot)
        if tag == SHARED_ROUND_TAG:
            _, _, rnd, n, seq = _SHARED.unpack_from(buf, 0)
            head = _SHARED.size
            delay = float(buf[head:head + 8 * n].view("<f8")[worker])
            slot = int(buf[head + 8 * n:head + 16 * n].view("<i8")[worker])
            return ("shared", rnd, delay, seq, slot)
        return pickle.loads(buf[:nbytes])


class _PipeContext(TaskContext):
    """A round's context on the worker's pipe; a newer round or close that arrives
    meanwhile is kept in ``pending`` for the main loop."""

    def __init__(self, conn: Any, worker: int, reader: Reader) -> None:
        super().__init__(worker)
        self.conn, self.reader = conn, reader
        self.poller = select.poll()                 # one registration, one syscall a poll
        self.poller.register(conn.fileno(), select.POLLIN)
        self.pending: list[tuple] = []

    def _send(self, kind: str, payload: Any) -> None:
        self.conn.send((kind, self.round, self.worker, payload))

    def _pump(self, timeout: float | None) -> None:
        if self.pending:
            self._file("supersede", self.round)
            return
        if not self.poller.poll(poll_ms(timeout)):
            return
        msg = self.reader.read(self.conn, self.worker)
        if msg[0] in ("round", "shared", "close"):
            self.pending.append(msg)
            self._file("supersede", self.round)
        elif msg[0] == "cancel":
            self._file("cancel", msg[1])
        elif msg[0] == "msg":
            self._file("msg", msg[1], msg[2])


def worker_main(conn: Any, worker: int, parts: Sequence[tuple[int, Any, Any]],
                task: Any = None, block: Any = None) -> None:
    """Child-process entry point: serve rounds until ``("close",)`` or the pipe breaks.

    ``block``: the :class:`gradcode.backends._shared.SharedBlock` the master passes when
    vectors travel through shared memory (then rounds come as ``"shared"`` messages and a
    result that fits the block goes into this worker's slot), else None."""
    try:
        if "torch" in sys.modules:          # n worker processes share the cores
            sys.modules["torch"].set_num_threads(1)
        runner = (CodedGradientTask() if task is None else task).bind(worker, list(parts))
        reader = Reader()
        ctx = _PipeContext(conn, worker, reader)
        conn.send(("ready", worker, os.getpid()))
        while True:
            msg = ctx.pending.pop(0) if ctx.pending else reader.read(conn, worker)
            if msg[0] == "close":
                return
            slot = -1
            if msg[0] == "shared":
                _, rnd, delay, seq, slot = msg
                params = block.read_params(seq)
                if params is None:                          # overwritten: superseded
                    continue
            elif msg[0] == "round":
                _, rnd, delay, params = msg
            else:
                continue                                    # cancel/msg of an idle round
            ctx.begin(rnd, delay)
            try:
                value = run_task(runner, params, ctx)
            except Exception:  # noqa: BLE001 - reported to the master, worker lives on
                conn.send(("error", rnd, worker, traceback.format_exc(limit=5)))
                continue
            if value is None:
                continue
            value = np.asarray(value)
            if slot >= 0 and block.fits(value):
                block.write_result(worker, slot, rnd, value)
                conn.send_bytes(pack_slot(rnd, worker, slot, value.dtype))
            elif value.ndim == 1:
                conn.send_bytes(pack_result(
                    rnd, worker, np.ascontiguousarray(value, dtype=wire_dtype(value.dtype))))
            else:                           # the master drops it (wrong shape) and says so
                conn.send(("result", rnd, worker, np.asarray(value, dtype=np.float64)))
    except (EOFError, OSError, KeyboardInterrupt, BrokenPipeError):
        return
