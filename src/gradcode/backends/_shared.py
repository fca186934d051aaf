"""Shared memory of the local backend: one anonymous block for large vectors.

The master creates one block per started code, an anonymous in-memory file
(``os.memfd_create``) mapped by the master and by every worker; its descriptor travels to
the workers when they are started (the way ``multiprocessing`` passes a pipe), so the
block has no name: nothing is ever created under ``/dev/shm``, nothing has to be unlinked,
and the kernel frees the memory once the last process that maps it has unmapped it or
died, on every path (``close``, a killed worker, a killed master).

Layout: ``1 + n * SLOTS`` regions of the same stride, each a 64-byte header (three int64:
``tag``, ``worker``, ``count``) followed by the vector (64-byte aligned):

* region 0 holds the round's parameters, written once for all workers; its ``tag`` is
  the broadcast's sequence number s (unique per broadcast, so two broadcasts with the
  same round number are never confused);
* regions ``1 + i * SLOTS + k`` are worker i's result slots k. Each round the master
  assigns every asked worker one of its slots (in the round message); the worker writes
  its vector there, then the header ``(t, i, count)``, then sends a small "done t in
  slot k" message on its pipe.

The master hands a result out as a NumPy view of its slot (no copy). The slot stays
*leased* while any array (or tensor, memoryview) derived from that view is alive: each
slot's view is made from its own exporter object (a ``ctypes`` array over the slot),
whose reference count is above its resting value exactly while some buffer made from it
exists. A leased slot is never assigned again, so a result never changes under the
caller's feet; when all of a worker's slots are leased, that worker's result of the
round travels through its pipe instead.

Ordering (each pipe message is a system call, which orders the memory writes before it):

* the master writes the parameters of broadcast s as ``tag = -1``, data, ``tag = s``,
  then sends the round messages. A worker copies the parameters into a private array and
  keeps them only when ``tag`` read s before and after the copy; otherwise a newer
  broadcast is being written, i.e. the worker's round was superseded and it skips it.
* a worker handles its rounds one after the other and the master reads slot k of worker
  i only on the "done" message of the current round t, which it assigned k to, after
  checking that the header says ``(t, i, dim)``. A late result of an older round is
  never read: its message is discarded by its round number, and every write into a slot
  for an older round precedes (in the worker's order) the write of a newer one, so no
  write reaches a slot after the master handed it out.

Example:
    >>> import numpy as np
    >>> block = SharedBlock.create(4, "float32", 2)
    >>> block.write_params(1, np.arange(4.0, dtype=np.float32))
    >>> block.read_params(1).tolist(), block.read_params(2)
    ([0.0, 1.0, 2.0, 3.0], None)
    >>> k = block.pick_slot(1)
    >>> block.write_result(1, k, 7, np.ones(4, dtype=np.float32))
    >>> value = block.read_result(1, k, 7)
    >>> value.tolist(), block.pick_slot(1) != k, block.read_result(1, k, 8)
    ([1.0, 1.0, 1.0, 1.0], True, None)
    >>> del value
    >>> block.pick_slot(1) == k
    True
    >>> block.close()
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from multiprocessing import reduction
from typing import Any

import numpy as np

__all__ = ["SLOTS", "SharedBlock", "available"]

HEADER = 64                                    # bytes before every vector
SLOTS = 2                                      # result slots per worker
_ALIGN = 64


def available() -> bool:
    """True where anonymous shared memory (``os.memfd_create``, Linux) exists."""
    return hasattr(os, "memfd_create")


def _stride(dim: int, itemsize: int) -> int:
    return HEADER + -(-dim * itemsize // _ALIGN) * _ALIGN


def _size(dim: int, dtype: Any, n: int) -> int:
    return (1 + n * SLOTS) * _stride(dim, np.dtype(dtype).itemsize)


class SharedBlock:
    """The parameter region and the workers' result slots (see the module docstring).

    Build it with :meth:`create` in the master; pickling it while a worker process is
    being started hands the worker a duplicate of the descriptor, and the worker's copy
    maps the same memory.

    Attributes:
        dim, dtype, n: vector length, dtype, number of workers.
        size: bytes of the block.
    """

    def __init__(self, fd: int, dim: int, dtype: Any, n: int) -> None:
        self.dim, self.dtype, self.n = int(dim), np.dtype(dtype), int(n)
        self.stride = _stride(self.dim, self.dtype.itemsize)
        self.size = _size(self.dim, self.dtype, self.n)
        self.fd: int | None = fd
        self._map: Any = mmap.mmap(fd, self.size)
        regions = np.frombuffer(self._map, dtype=np.uint8).reshape(-1, self.stride)
        self._heads: Any = regions[:, :HEADER].view(np.int64)          # (regions, 8)
        self._vecs: Any = regions[:, HEADER:HEADER + self.dim * self.dtype.itemsize] \
            .view(self.dtype)                                           # (regions, dim)
        self._owners: list | None = None          # the master's slot exporters
        self._resting = 0                         # their reference count with no view

    @classmethod
    def create(cls, dim: int, dtype: Any, n: int) -> SharedBlock:
        """A new block in the calling process (the master), every slot free."""
        fd = os.memfd_create("gradcode-local", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, _size(int(dim), dtype, int(n)))
            block = cls(fd, dim, dtype, n)
        except BaseException:
            os.close(fd)
            raise
        block._heads[:, 0] = -1
        nbytes = block.dim * block.dtype.itemsize
        block._owners = [(ctypes.c_char * nbytes).from_buffer(block._map, r * block.stride +
                                                              HEADER)
                         for r in range(1, 1 + block.n * SLOTS)]
        block._resting = block._refs(0)           # measured, not assumed
        return block

    def __reduce__(self) -> tuple:
        if self.fd is None:
            raise ValueError("SharedBlock: the descriptor was released after the workers "
                             "started; the block cannot be passed on")
        return _attach, (reduction.DupFd(self.fd), self.dim, self.dtype.str, self.n)

    def release_fd(self) -> None:
        """Close the descriptor (the mapping stays); call once every worker holds its own."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        """Unmap the block in this process (idempotent). While a result handed out is still
        alive the mapping stays until that array is freed; the memory is freed when no
        process maps it any more."""
        self.release_fd()
        if self._map is None:
            return
        self._heads = self._vecs = self._owners = None
        try:
            self._map.close()
        except BufferError:                   # a result is still alive: unmapped with it
            pass
        self._map = None

    # ------------------------------------------------------------------ parameters
    def write_params(self, seq: int, params: np.ndarray) -> None:
        """The master: broadcast ``seq``'s parameters (see the module docstring)."""
        head = self._heads[0]
        head[0] = -1
        self._vecs[0] = params
        head[2] = self.dim
        head[0] = seq

    def read_params(self, seq: int) -> np.ndarray | None:
        """A worker: a private copy of broadcast ``seq``'s parameters, None when a newer
        broadcast has overwritten (or is overwriting) them."""
        head = self._heads[0]
        if head[0] != seq:
            return None
        out = self._vecs[0].copy()
        return out if head[0] == seq else None

    # ------------------------------------------------------------------ results
    def _refs(self, index: int) -> int:
        return sys.getrefcount(self._owners[index])

    def pick_slot(self, worker: int) -> int:
        """The master: a slot of ``worker`` that no live array refers to, -1 if none."""
        for k in range(SLOTS):
            if self._refs(worker * SLOTS + k) <= self._resting:
                return k
        return -1

    def fits(self, value: np.ndarray) -> bool:
        """True when ``value`` can travel through a result slot (1-D, dim, the dtype)."""
        return value.ndim == 1 and value.shape[0] == self.dim and value.dtype == self.dtype

    def write_result(self, worker: int, slot: int, round: int, value: np.ndarray) -> None:
        """A worker: its result of ``round`` into its ``slot``, then the slot header."""
        r = 1 + worker * SLOTS + slot
        self._vecs[r] = value
        head = self._heads[r]
        head[1], head[2] = worker, self.dim
        head[0] = round

    def read_result(self, worker: int, slot: int, round: int) -> np.ndarray | None:
        """The master: worker's result of ``round`` as a writable view of its slot (the
        slot is leased while the view lives); None when the slot header does not say
        ``(round, worker, dim)`` (the slot is then never decoded)."""
        r = 1 + worker * SLOTS + slot
        head = self._heads[r]
        if head[0] != round or head[1] != worker or head[2] != self.dim:
            return None
        return np.frombuffer(self._owners[r - 1], dtype=self.dtype, count=self.dim)


def _attach(dupfd: Any, dim: int, dtype: str, n: int) -> SharedBlock:
    """A worker's side of a pickled :class:`SharedBlock`: map it, keep no descriptor."""
    block = SharedBlock(dupfd.detach(), dim, dtype, n)
    block.release_fd()
    return block
