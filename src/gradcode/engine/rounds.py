"""Round protocols: the master side of one round, and the driver that runs one on a host.

A round protocol (:class:`RoundProtocol`) is the master's half of a scheme's round. The
driver :func:`run_round` is the same for every scheme and host
(:class:`gradcode.backends.base.Host`):

1. ``asked = host.broadcast(t, params)``; ``protocol.begin(asked)``;
2. every event of ``host.events(limit)`` goes to ``protocol.on_event(event)`` (a result,
   a beacon, a death, a dropped result, the timer), which may ``host.send`` messages and
   returns True once the round is decided; ``limit`` is the smaller of the scheme's
   deadline and the round timeout;
3. ``host.cancel()``; ``protocol.finish(host.round_info)`` decodes (a
   :class:`RoundResult`).

When the host knows the whole round in advance (``host.schedule()``, the virtual clock)
and the protocol can use it (``protocol.scheduled``), step 2 is one call instead:
``protocol.on_schedule(schedule, count)`` with the ``count`` events due before ``limit``
returns how many of them the round used (the wait policy's
:meth:`~gradcode.engine.wait.RoundWait.stop_index` over the sorted arrivals, no Python
loop over the workers), the host records them (``host.take``), and a round that is not
decided by them ends exactly as the event stream would have (the timer at ``limit``, or
exhausted). Responders, round time, ``ended`` and the host's round info are the same as
on the event path.

:class:`PlainRound` is the coded round of gradient coding [1]: each worker sends
f_i = sum_j B[i, j] g_j once, the scheme's wait policy says when to stop, the decoder
turns the responders into weights a and g_hat = sum_i a_i f_i (exact schemes,
approximate ones, ErasureHead [2] and deadline policies all use it). On the virtual
clock the results are lazy rows of F = B G and g_hat = G^T (B^T a) is computed with one
sparse product. The nested codes' protocol is
:class:`gradcode.protocols.nested_scheme.NestedRound`.

References:
    [1] R. Tandon, Q. Lei, A. Dimakis, N. Karampatziakis, "Gradient coding",
        arXiv:1612.03301, 2017.
    [2] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead", arXiv:1901.09671, 2019.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg.blas import daxpy, saxpy

from ..backends.base import Event, RowRef
from ..codes.catalogue import resolve
from ..core.errors import NotDecodableError

__all__ = ["PlainRound", "RoundProtocol", "RoundResult", "decode_round", "run_round"]


@dataclass
class RoundResult:
    """Outcome of one round.

    Attributes:
        g_hat: the decoded gradient estimate (zeros when nothing could be decoded).
        decoding: the :class:`gradcode.Decoding` (None when nothing was decoded).
        decoder: name of the decoder actually used (the fallback after NotDecodableError).
        responders: workers used, in arrival order.
        round_time: when the master stopped waiting (host clock, seconds).
        info: the host's :class:`gradcode.backends.RoundInfo` for the round.
        extra: protocol-specific history columns (e.g. the nested codes' ``nested_level``);
            empty for the plain round.
        ended: why the round ended: ``"decided"`` (the protocol was done),
            ``"deadline"`` (the scheme's deadline), ``"timeout"`` (the round timeout),
            ``"exhausted"`` (no worker could send anything more).
        fallback: True when the decoder fell back (an exact scheme that lost more
            workers than it tolerates, decoded by its fallback decoder).
    """

    g_hat: np.ndarray
    decoding: Any
    decoder: str
    responders: list[int]
    round_time: float
    info: Any
    extra: dict = field(default_factory=dict)
    ended: str = "decided"
    fallback: bool = False


class RoundProtocol:
    """Base class of the master side of a round (see the module docstring).

    Attributes:
        deadline: seconds after the broadcast at which the scheme stops waiting (None:
            none; the round timeout still applies).
    """

    deadline: float | None = None
    scheduled: bool = False

    def begin(self, asked: np.ndarray) -> bool:
        """The round was broadcast to ``asked``; True when it is decided already."""
        return False

    def on_schedule(self, schedule: Any, count: int) -> int | None:
        """Take the first ``count`` events of a known ``schedule`` at once (only called
        when :attr:`scheduled` is True): returns how many were used before the round was
        decided, None when all ``count`` were used and it is not decided. Must equal
        feeding them to :meth:`on_event` one by one."""
        raise NotImplementedError

    def on_event(self, event: Any) -> bool:
        """React to one event; True once the round is decided."""
        raise NotImplementedError

    def finish(self, info: Any) -> RoundResult:
        """Decode after the round ended (``info``: the host's RoundInfo)."""
        raise NotImplementedError


def run_round(host: Any, protocol: RoundProtocol, round: int, params: np.ndarray, *,
              round_timeout: float | None = None) -> RoundResult:
    """Run one round of ``protocol`` on a started host (see the module docstring).

    A protocol with a deadline waits until the deadline unless every worker has been
    heard from this round (a result, a dropped result, any other event) or is known dead:
    a worker that fails the round (an infinite delay) but is alive is not known to the
    master, so such a round ends at the deadline (``ended="deadline"``, the round time is
    the deadline; a wall-clock host really waits), although the host knows that nothing
    more will come. Without a deadline the round ends when nothing more can come
    (``ended="exhausted"``, at the last event).

    Example:
        >>> import numpy as np, gradcode as gc
        >>> from gradcode.engine.rounds import PlainRound, run_round
        >>> X, y = gc.data.synthetic_regression(40, 3, seed=0)
        >>> prob = gc.problems.least_squares(X, y, k=4)
        >>> scheme = gc.training.exact(gc.codes.fractional_repetition(n=4, s=1))
        >>> be = gc.backends.SimulatedBackend()
        >>> be.start(prob, scheme.code, delays=gc.stragglers.Exponential(1.0, seed=0))
        >>> res = run_round(be, PlainRound(scheme, 3), 0, np.zeros(3))
        >>> bool(np.allclose(res.g_hat, prob.full_gradient(np.zeros(3)), rtol=1e-12))
        True
    """
    deadline = protocol.deadline
    limit = deadline if round_timeout is None else \
        round_timeout if deadline is None else min(deadline, round_timeout)
    started = time.monotonic()
    asked = host.broadcast(round, params)
    try:
        heard: set[int] | np.ndarray = set()
        schedule = host.schedule() if protocol.scheduled else None
        if protocol.begin(asked):
            ended = "decided"
        elif schedule is not None:
            ended, heard = _take_schedule(host, protocol, schedule, round, limit, deadline)
        else:
            ended = _stream(host, protocol, limit, deadline, heard)
        silent = host.alive                  # a copy: alive and not heard from
        silent[np.fromiter(heard, dtype=np.int64) if isinstance(heard, set) else heard] = False
        if ended == "exhausted" and deadline is not None and silent.any():
            ended = _wait_out(host, protocol, round, limit, deadline, started)
    finally:
        host.cancel()
    result = protocol.finish(host.round_info)
    result.ended = ended
    return result


def _ended_by_timer(time_: float, deadline: float | None) -> str:
    return "deadline" if deadline is not None and time_ >= deadline else "timeout"


def _stream(host: Any, protocol: RoundProtocol, limit: float | None, deadline: float | None,
            heard: set[int]) -> str:
    """Feed the host's events to the protocol; returns why the stream ended. ``heard``
    collects the workers that sent anything."""
    ended = "exhausted"
    stream = host.events(limit)
    try:
        for event in stream:
            if event.kind == "timer":
                ended = _ended_by_timer(event.time, deadline)
            else:
                heard.add(int(event.worker))
            if protocol.on_event(event):
                if event.kind != "timer":
                    ended = "decided"
                break
    finally:
        stream.close()
    return ended


def _take_schedule(host: Any, protocol: RoundProtocol, schedule: Any, round: int,
                   limit: float | None, deadline: float | None) -> tuple[str, np.ndarray]:
    """The event loop of :func:`_stream` over a known schedule in one call; returns why
    the round ended and the workers heard from."""
    times = schedule.times
    count = times.size if limit is None else int(np.searchsorted(times, limit, side="right"))
    used = protocol.on_schedule(schedule, count)
    host.take(count if used is None else used)
    if used is not None:
        return "decided", schedule.workers[:used]
    heard = schedule.workers[:count]
    if count == times.size:
        return "exhausted", heard
    host.round_info.end_time = float(limit)           # the timer: events remain after limit
    protocol.on_event(Event(-1, float(limit), float(limit), int(round), "timer"))
    return _ended_by_timer(float(limit), deadline), heard


def _wait_out(host: Any, protocol: RoundProtocol, round: int, limit: float,
              deadline: float, started: float) -> str:
    """The master does not know that its silent workers failed: it waits until ``limit``
    (on a wall clock, really) and hands the protocol the timer."""
    if host.clock != "virtual":
        time.sleep(max(0.0, limit - (time.monotonic() - started)))
    host.round_info.end_time = float(limit)
    protocol.on_event(Event(-1, float(limit), float(limit), int(round), "timer"))
    return _ended_by_timer(limit, deadline)


def _name(decoder: Any) -> str:
    return decoder if isinstance(decoder, str) else getattr(decoder, "__name__", "custom")


def _combine(dec: Any, order: np.ndarray, values: dict[int, Any], dim: int) -> np.ndarray:
    """sum_i a_i f_i over the responders with a nonzero weight."""
    used = order[dec.weights[order] != 0]
    if isinstance(values, _ScheduledValues) and values.rows_of(used) is not None:
        weights = np.zeros_like(dec.weights)       # a whole virtual-clock schedule of rows:
        weights[used] = dec.weights[used]          # no per-responder Python work
        return values.schedule.rows.combine(weights)
    first = values[int(used[0])] if used.size else None
    if isinstance(first, RowRef) and all(
            isinstance(values[int(i)], RowRef) and values[int(i)].rows is first.rows
            for i in used):
        weights = np.zeros_like(dec.weights)
        weights[used] = dec.weights[used]
        return first.rows.combine(weights)         # G^T (B^T a): F is never built
    vectors = [np.asarray(values[int(i)]) for i in used]
    # float32 results (torch/JAX models) are summed in float32, everything else in float64
    single = bool(vectors) and not np.iscomplexobj(dec.weights) and \
        all(v.dtype == np.float32 for v in vectors)
    g_hat = np.zeros(dim, dtype=np.float32 if single else
                     np.result_type(dec.weights.dtype, np.float64))
    axpy = saxpy if single else daxpy
    for i, value in zip(used, vectors):
        weight = dec.weights[i]
        if (value.dtype == g_hat.dtype and value.ndim == 1 and value.shape == g_hat.shape
                and value.flags.c_contiguous and not np.iscomplexobj(weight)):
            axpy(value, g_hat, a=float(weight))    # in place: no temporary per responder
        else:
            g_hat += weight * value
    return g_hat


def decode_round(scheme: Any, responders: list[int],
                 values: dict[int, Any], dim: int) -> tuple[np.ndarray, Any, str]:
    """Decode one plain round: returns (g_hat, Decoding, name of the decoder used).

    ``responders`` are in arrival order (ErasureHead's decoder uses it). When the scheme's
    decoder raises :class:`NotDecodableError` its ``fallback`` decoder is used instead.
    """
    code = scheme.code
    order = np.asarray(responders, dtype=np.int64)
    used = _name(scheme.decoder)
    try:
        dec = scheme.decode_fn(code, order)
    except NotDecodableError:
        if scheme.fallback is None:
            raise
        dec = resolve(scheme.fallback)(code, order)
        used = _name(scheme.fallback)
    g_hat = _combine(dec, order, values, dim)
    if np.iscomplexobj(g_hat):
        g_hat = g_hat.real
    if g_hat.dtype != np.float32:
        g_hat = np.asarray(g_hat, dtype=np.float64)
    return g_hat, dec, used


class _ScheduledValues(dict):
    """worker -> the value of its event in a schedule, looked up lazily on first use
    (a dict: repeated lookups cost no Python call)."""

    def __init__(self, schedule: Any) -> None:
        super().__init__()
        self.schedule = schedule
        self.index = np.full(int(schedule.workers.max(initial=-1)) + 1, -1, dtype=np.int64)
        self.index[schedule.workers] = np.arange(schedule.workers.size)

    def rows_of(self, workers: np.ndarray) -> Any:
        """The schedule's :class:`~gradcode.backends.base.CodedRows` when every worker of
        ``workers`` has a result row in it (then sum_i a_i f_i is one sparse product),
        else None."""
        rows = self.schedule.rows
        if rows is None or self.schedule.kind != "result" or workers.size == 0:
            return None
        inside = (workers >= 0) & (workers < self.index.size)
        if not np.all(inside) or np.any(self.index[workers] < 0):
            return None
        dropped = self.schedule.dropped
        if dropped is not None and np.any(dropped[self.index[workers]]):
            return None
        return rows

    def __missing__(self, worker: int) -> Any:
        e = int(self.index[worker]) if 0 <= worker < self.index.size else -1
        if e < 0:
            raise KeyError(worker)
        value = self[worker] = self.schedule.payload(e)
        return value


class PlainRound(RoundProtocol):
    """The coded round: results into the scheme's wait policy, then decode.

    Args:
        scheme: a :class:`gradcode.schemes.Scheme`.
        dim: the model's dimension.
    """

    def __init__(self, scheme: Any, dim: int) -> None:
        self.scheme, self.dim = scheme, int(dim)
        self.state = scheme.wait.start(scheme.code, scheme.decoder)
        self.deadline = self.state.deadline
        self.values: Any = {}
        self.stop_time: float | None = None

    scheduled = True

    def on_schedule(self, schedule: Any, count: int) -> int | None:
        """The arrivals of a known schedule into the wait policy at once (see
        :meth:`RoundProtocol.on_schedule`); dropped results are skipped, as
        :meth:`on_event` skips them."""
        if schedule.kind != "result":
            raise ValueError(f"PlainRound.on_schedule: schedule of {schedule.kind!r} events, "
                             f"expected 'result'")
        results = np.flatnonzero(~schedule.dropped[:count]) if schedule.dropped is not None \
            else np.arange(count)
        self.values = _ScheduledValues(schedule)
        m = self.state.stop_index(schedule.workers[results], schedule.times[results])
        if m is None:
            return None
        last = int(results[m - 1])
        self.stop_time = float(schedule.times[last])
        return last + 1

    def on_event(self, event: Any) -> bool:
        if event.kind == "timer":
            return True
        if event.kind != "result":
            return False                   # deaths and drops: the host stops waiting on them
        self.values[event.worker] = event.value
        if self.state.add(event.worker, event.time):
            self.stop_time = float(event.time)
            return True
        return False

    def finish(self, info: Any) -> RoundResult:
        round_time = self.stop_time if self.stop_time is not None else float(info.end_time)
        responders = list(self.state.responders)
        primary = _name(self.scheme.decoder)
        if not responders:
            return RoundResult(np.zeros(self.dim), None, primary, responders, round_time, info)
        g_hat, dec, used = decode_round(self.scheme, responders, self.values, self.dim)
        return RoundResult(g_hat, dec, used, responders, round_time, info,
                           fallback=used != primary)
