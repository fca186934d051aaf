"""Wait policies: when the master stops waiting for workers in a round.

A policy is a small factory: ``policy.start(code, decoder)`` returns a fresh per-round
state (:class:`RoundWait`) that the master feeds with arrivals
(``state.add(worker, time) -> stop?``). Every policy may also carry a ``deadline`` in
seconds after the round starts, after which the master stops with whoever answered.
The backend reads ``state.deadline``; the master loop is generic over the arrivals.
The shortcuts that make the decodability checks cheap are in docs/theory.md, T34.

When the whole round's arrivals are known at once (the virtual clock),
``state.stop_index(workers, times)`` gives the stopping point over them in one call:
the number m of arrivals after which ``add`` would first have returned True (None: never),
leaving the state exactly as those m calls would. Every built-in state computes it without
a Python loop over the arrivals: counts for :func:`wait_all`, :func:`first` and
:func:`deadline`; the first arrival that covers every FRC group (first occurrences) for
:func:`erasurehead`; the first arrival after which every partition is held (per
partition, the earliest arrival among its holders) for :func:`until_decodable` and
:func:`until_error`, and then, where a least-squares check is needed, a binary search
over the prefixes the arrival-by-arrival loop would have checked: adding responders never
increases the optimal decoding error (docs/theory.md, T1), so the first satisfied check
is found with O(log n) decodes (decoders not known to be monotone are checked in order).

Policies (constructors):
    * :func:`wait_all`: every live worker.
    * :func:`first`: the first r arrivals.
    * :func:`deadline`: whoever answered within ``seconds``.
    * :func:`until_decodable`: until the responders recover the gradient exactly.
    * :func:`until_error`: until the scheme's decoder reaches error <= eps.
    * :func:`erasurehead`: ErasureHead's rule, first w arrivals or every FRC group covered.

Example:
    >>> import gradcode as gc
    >>> code = gc.codes.fractional_repetition(n=6, s=1)
    >>> st = gc.wait.erasurehead(5).start(code, "frc_group")
    >>> [st.add(w, 0.0) for w in (0, 2, 4)]
    [False, False, True]

References:
    [1] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead: distributed gradient descent
        without delays using approximate gradient coding", arXiv:1901.09671, 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codes.catalogue import resolve
from ..core.code import Code
from ..core.decoders import _memo, _optimal_alpha, frc_groups
from ..core.errors import NotDecodableError
from ..core.validate import check_int, check_real

__all__ = [
    "RoundWait",
    "WaitPolicy",
    "deadline",
    "erasurehead",
    "first",
    "until_decodable",
    "until_error",
    "wait_all",
]

_EXACT_TOL = 1e-9
# decoders whose error never increases when responders are added (docs/theory.md, T1)
_MONOTONE = (resolve("optimal"), resolve("exact"))
_CHECK_EVERY_UP_TO = 512     # above this many workers decodability checks back off


def _check_at_most_n(where: str, name: str, value: int, code: Code) -> None:
    if value > code.n:
        raise ValueError(f"{where}: {name}={value} must be <= the code's n={code.n} workers")


def _deadline_arg(where: str, value: Any) -> float | None:
    if value is None:
        return None
    return check_real(where, "deadline", value, low=0.0, low_open=True)


class RoundWait:
    """Per-round state of a wait policy.

    Attributes:
        deadline: seconds after the round start at which to stop (None: no limit).
        responders: workers added so far, in arrival order.
        times: their arrival times.
    """

    def __init__(self, code: Code, deadline: float | None) -> None:
        self.code = code
        self.deadline = deadline
        self.responders: list[int] = []
        self.times: list[float] = []

    def add(self, worker: int, time: float) -> bool:
        """Record an arrival; return True when the master may stop waiting."""
        self.responders.append(int(worker))
        self.times.append(float(time))
        return self.enough()

    def enough(self) -> bool:
        return len(self.responders) >= self.code.n

    def stop_index(self, workers: np.ndarray, times: np.ndarray) -> int | None:
        """Add the arrivals ``workers`` (in order, at ``times``) up to the first one after
        which the master may stop; returns how many were added (m >= 1), or None when
        all were added and it may not stop yet. Same answers and the same state as
        calling :meth:`add` on each in turn (a subclass that keeps more state than the
        arrivals either overrides :meth:`_stop_count` and :meth:`_absorb`, or this method
        falls back to that loop)."""
        workers = np.asarray(workers, dtype=np.int64)
        times = np.asarray(times, dtype=np.float64)
        if workers.size == 0:
            return None
        m = self._stop_count(workers)
        if m is NotImplemented:
            for e, (w, t) in enumerate(zip(workers.tolist(), times.tolist())):
                if self.add(w, t):
                    return e + 1
            return None
        count = workers.size if m is None else m
        self._absorb(workers[:count])
        self.responders.extend(workers[:count].tolist())
        self.times.extend(times[:count].tolist())
        return m

    def _stop_count(self, workers: np.ndarray) -> Any:
        """The stopping point of :meth:`stop_index` (m or None) without changing the
        state, or NotImplemented (use the arrival-by-arrival loop)."""
        if type(self).add is not RoundWait.add or type(self).enough is not RoundWait.enough:
            return NotImplemented
        return _by_count(self.code.n - len(self.responders), workers.size)

    def _absorb(self, workers: np.ndarray) -> None:
        """Update the state kept besides the arrivals for the added ``workers``."""


def _by_count(need: int, size: int) -> int | None:
    """First m >= 1 with m >= need, within ``size`` arrivals (None: not within)."""
    m = max(int(need), 1)
    return m if m <= size else None


@dataclass(frozen=True)
class WaitPolicy:
    """Base class: ``start(code, decoder) -> RoundWait``; ``validate(code)`` before workers start.

    Attributes:
        deadline: optional time limit (seconds) of every round.
    """

    deadline: float | None = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def validate(self, code: Code) -> None:
        """Raise ``ValueError`` if the policy cannot work with ``code``."""

    def start(self, code: Code, decoder: Any = "optimal") -> RoundWait:
        return RoundWait(code, self.deadline)

    def _suffix(self) -> str:
        return "" if self.deadline is None else f", deadline={self.deadline:g}"


# ------------------------------------------------------------------ all
@dataclass(frozen=True)
class WaitAll(WaitPolicy):
    """Wait for every live worker (dead ones are dropped by the backend)."""

    @property
    def name(self) -> str:
        return f"wait_all({self._suffix().lstrip(', ')})"


def wait_all(deadline: float | None = None) -> WaitAll:
    """Wait for all workers (uncoded GD); a dead worker is a permanent straggler.

    Args:
        deadline: optional per-round time limit in seconds.
    """
    return WaitAll(_deadline_arg("wait_all", deadline))


# ------------------------------------------------------------------ first r
class _FirstState(RoundWait):
    def __init__(self, code: Code, deadline: float | None, r: int) -> None:
        super().__init__(code, deadline)
        self.r = r

    def enough(self) -> bool:
        return len(self.responders) >= self.r

    def _stop_count(self, workers: np.ndarray) -> Any:
        if type(self) is not _FirstState:
            return NotImplemented
        return _by_count(self.r - len(self.responders), workers.size)


@dataclass(frozen=True)
class First(WaitPolicy):
    """Stop after the first r arrivals."""

    r: int = 1

    @property
    def name(self) -> str:
        return f"first(r={self.r}{self._suffix()})"

    def validate(self, code: Code) -> None:
        _check_at_most_n("first", "r", self.r, code)

    def start(self, code: Code, decoder: Any = "optimal") -> RoundWait:
        return _FirstState(code, self.deadline, self.r)


def first(r: int, deadline: float | None = None) -> First:
    """Stop waiting after the first ``r`` workers answered (r <= n, checked at start)."""
    return First(_deadline_arg("first", deadline), check_int("first", "r", r, low=1))


# ------------------------------------------------------------------ deadline
@dataclass(frozen=True)
class Deadline(WaitPolicy):
    """Wait ``deadline`` seconds (or until all n answered)."""

    @property
    def name(self) -> str:
        return f"deadline({self.deadline:g})"


def deadline(seconds: float) -> Deadline:
    """Use whoever answered within ``seconds`` of the round start (> 0)."""
    return Deadline(check_real("deadline", "seconds", seconds, low=0.0, low_open=True))


# ------------------------------------------------------------------ until decodable
class _CoverageState(RoundWait):
    """Tracks which partitions some responder holds; checks decodability lazily."""

    def __init__(self, code: Code, deadline: float | None) -> None:
        super().__init__(code, deadline)
        B = code.B
        self._indptr, self._indices = B.indptr, B.indices
        self._covered = np.zeros(code.k, dtype=bool)
        self._n_covered = 0
        self._mask = np.zeros(code.n, dtype=bool)
        self._next_check = 0

    def _cover(self, worker: int) -> None:
        cols = self._indices[self._indptr[worker]:self._indptr[worker + 1]]
        new = cols[~self._covered[cols]]
        self._covered[new] = True
        self._n_covered += new.size
        self._mask[worker] = True

    def add(self, worker: int, time: float) -> bool:
        self._cover(int(worker))
        return super().add(worker, time)

    def _due(self) -> bool:
        count = len(self.responders)
        if count < self._next_check:
            return False
        self._next_check = self._after(count)
        return True

    def _after(self, count: int) -> int:
        """The next count at which a check is due after a check at ``count``."""
        return int(count * 1.05) + 1 if self.code.n > _CHECK_EVERY_UP_TO else \
            self._next_check

    def _absorb(self, workers: np.ndarray) -> None:
        cols = _holdings(self.code, workers)
        self._covered[cols] = True
        self._n_covered = int(np.count_nonzero(self._covered))
        self._mask[workers] = True

    def _cover_order(self, workers: np.ndarray) -> np.ndarray:
        """For each partition not held yet, the number of the arrivals (1-based) after
        which some holder arrived (``workers.size + 1``: none of them), sorted."""
        never = workers.size + 1
        pos = np.full(self.code.n, never, dtype=np.int64)
        pos[workers[::-1]] = np.arange(workers.size, 0, -1)       # first arrival counts
        Bc = _by_column(self.code)
        open_ = np.flatnonzero(~self._covered)
        first = np.full(open_.size, never, dtype=np.int64)
        starts, ends = Bc.indptr[open_], Bc.indptr[open_ + 1]
        held = ends > starts
        if held.any():
            first[held] = _column_min(pos[Bc.indices], starts[held], ends[held])
        return np.sort(first)

    def _checks(self, start: int, stop: int) -> list[int]:
        """The counts in [start, stop) at which the arrival-by-arrival loop would check
        (a check is due at count c >= ``_next_check``, then not before ``_after(c)``)."""
        out, c = [], max(start, self._next_check)
        if self.code.n <= _CHECK_EVERY_UP_TO:
            return list(range(c, stop))
        while c < stop:
            out.append(c)
            c = max(int(c * 1.05) + 1, c + 1)
        return out

    def _first_passing(self, workers: np.ndarray, counts: list[int], ok: Callable,
                       monotone: bool) -> int | None:
        """The first count of ``counts`` (total responders) whose prefix passes ``ok``
        (a mask -> bool), by bisection when ``monotone`` else in order; sets
        ``_next_check`` as the loop would have."""
        base = len(self.responders)
        prefix = self._mask.copy()

        def passes(c: int) -> bool:
            mask = prefix.copy()
            mask[workers[:c - base]] = True
            return bool(ok(mask, workers[:c - base]))

        found = None
        if monotone:
            lo, hi = 0, len(counts)
            while lo < hi:
                mid = (lo + hi) // 2
                if passes(counts[mid]):
                    hi = mid
                else:
                    lo = mid + 1
            found = counts[lo] if lo < len(counts) else None
        else:
            found = next((c for c in counts if passes(c)), None)
        last = found if found is not None else (counts[-1] if counts else None)
        if last is not None:
            self._next_check = self._after(last)
        return found


def _column_min(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """min(values[starts[i]:ends[i]]) for non-empty, non-overlapping, sorted slices."""
    cut = np.empty(2 * starts.size, dtype=np.int64)
    cut[0::2], cut[1::2] = starts, ends
    mins = np.minimum.reduceat(values, cut[:-1] if cut[-1] == values.size else cut)
    return mins[0::2]


def _by_column(code: Code) -> Any:
    """B as CSC (the holders of each partition), cached on the code."""
    return _memo(code, ("wait.csc",), lambda: code.B.tocsc())


def _holdings(code: Code, workers: np.ndarray) -> np.ndarray:
    """The partitions held by ``workers`` (with repeats)."""
    B = code.B
    starts, ends = B.indptr[workers], B.indptr[workers + 1]
    lengths = ends - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return B.indices[np.arange(int(lengths.sum())) + offsets]


def _is_frc(code: Code) -> bool:
    """True for a real code whose workers form groups of identical rows with disjoint
    supports, each row's coefficients equal (then any covering set decodes exactly).
    Cached on the code: every round's state asks."""
    return _memo(code, ("wait.is_frc",), lambda: _compute_is_frc(code))


def _compute_is_frc(code: Code) -> bool:
    if code.is_complex:
        return False
    try:
        frc_groups(code)
    except ValueError:
        return False
    B = code.B
    data = B.data
    first = np.repeat(data[B.indptr[:-1]], np.diff(B.indptr)) if data.size else data
    return bool(np.all(data == first))


class _DecodableState(_CoverageState):
    def __init__(self, code: Code, deadline: float | None, tol: float) -> None:
        super().__init__(code, deadline)
        self.tol = tol
        self._frc = _is_frc(code)

    def enough(self) -> bool:
        count = len(self.responders)
        if count >= self.code.n:
            return True
        known = self.code.tolerates_if_known
        if known is not None and known > 0 and count >= self.code.n - known:
            return True
        if self._n_covered < self.code.k:
            return False
        if self._frc:
            return True                  # FRC: one responder per group recovers g exactly
        if not self._due():
            return False
        return self._decodable(self._mask)

    def _decodable(self, mask: np.ndarray, _workers: Any = None) -> bool:
        _, alpha = _optimal_alpha(self.code, mask)
        return float(np.sum(np.abs(alpha - 1.0) ** 2)) <= self.tol * max(self.code.k, 1)

    def _stop_count(self, workers: np.ndarray) -> int | None:
        base = len(self.responders)
        need = self.code.n - base
        known = self.code.tolerates_if_known
        if known is not None and known > 0:
            need = min(need, self.code.n - known - base)
        by_count = _by_count(need, workers.size)
        stop = workers.size + 1 if by_count is None else by_count
        order = self._cover_order(workers[:stop])
        cover = max(int(order[-1]), 1) if order.size else 1
        if cover >= stop:                       # not covered before the count rule stops
            return by_count
        if self._frc:
            return cover
        counts = self._checks(base + cover, base + stop)
        found = self._first_passing(workers, counts, self._decodable, True)
        return by_count if found is None else found - base


@dataclass(frozen=True)
class UntilDecodable(WaitPolicy):
    """Stop as soon as the responders recover the full gradient exactly."""

    tol: float = _EXACT_TOL

    @property
    def name(self) -> str:
        return f"until_decodable({self._suffix().lstrip(', ')})"

    def start(self, code: Code, decoder: Any = "optimal") -> RoundWait:
        return _DecodableState(code, self.deadline, self.tol)


def until_decodable(deadline: float | None = None) -> UntilDecodable:
    """Wait until 1 lies in the row span of B_F (exact recovery possible).

    Checked cheaply: a least-squares decodability test only runs once every partition is
    held by some responder, and never needs to run past n - tolerates responders.
    """
    return UntilDecodable(_deadline_arg("until_decodable", deadline))


# ------------------------------------------------------------------ until error <= eps
class _ErrorState(_CoverageState):
    def __init__(self, code: Code, deadline: float | None, eps: float,
                 decoder: Callable) -> None:
        super().__init__(code, deadline)
        self.eps, self.decoder = eps, decoder
        self.monotone = decoder in _MONOTONE

    def enough(self) -> bool:
        if len(self.responders) >= self.code.n:
            return True
        if self.code.k - self._n_covered > self.eps:
            return False      # each uncovered partition has alpha_j = 0: error >= its count
        if not self._due():
            return False
        return self._small(self._mask, np.asarray(self.responders, dtype=np.int64))

    def _small(self, _mask: np.ndarray, responders: np.ndarray) -> bool:
        try:
            err = self.decoder(self.code, responders).error
        except NotDecodableError:
            return False
        return err <= self.eps + _EXACT_TOL * max(self.code.k, 1)   # rounding: as T1's

    def _stop_count(self, workers: np.ndarray) -> int | None:
        base = len(self.responders)
        by_count = _by_count(self.code.n - base, workers.size)
        stop = workers.size + 1 if by_count is None else by_count
        order = self._cover_order(workers[:stop])
        # uncovered partitions after m arrivals: k - covered - #(order < m + 1)
        gap = self.code.k - self._n_covered - self.eps        # partitions still to cover
        need = int(np.ceil(gap)) if gap > 0 else 0
        if need > order.size or (need and order[need - 1] >= stop):
            return by_count
        first = max(int(order[need - 1]) if need else 1, 1)
        previous = np.asarray(self.responders, dtype=np.int64)
        counts = self._checks(base + first, base + stop)
        found = self._first_passing(
            workers, counts, lambda _m, new: self._small(_m, np.r_[previous, new]),
            self.monotone)
        return by_count if found is None else found - base


@dataclass(frozen=True)
class UntilError(WaitPolicy):
    """Stop when the scheme's decoder reaches ||alpha - 1||^2 <= eps."""

    eps: float = 0.0

    @property
    def name(self) -> str:
        return f"until_error(eps={self.eps:g}{self._suffix()})"

    def start(self, code: Code, decoder: Any = "optimal") -> RoundWait:
        return _ErrorState(code, self.deadline, self.eps, resolve(decoder, "until_error"))


def until_error(eps: float, deadline: float | None = None) -> UntilError:
    """Wait until the decoding error ||alpha - 1||^2 of the current responders is <= eps.

    The comparison allows rounding, ``eps + 1e-9 k`` (as :func:`until_decodable`), so
    ``until_error(0)`` means "exactly decodable" rather than "the solver's rounding
    happened to give 0.0"; with it the answer is monotone in the responders for the
    optimal and exact decoders, which lets a known round be searched by bisection.
    """
    return UntilError(_deadline_arg("until_error", deadline),
                      check_real("until_error", "eps", eps, low=0.0))


# ------------------------------------------------------------------ ErasureHead
class _ErasureHeadState(_FirstState):
    """First w arrivals (``r = w``), or earlier once every FRC group has an arrival."""

    def __init__(self, code: Code, deadline: float | None, w: int) -> None:
        super().__init__(code, deadline, w)
        self.groups = frc_groups(code)
        self._seen = np.zeros(int(self.groups.max()) + 1, dtype=bool)
        self._left = self._seen.size

    def add(self, worker: int, time: float) -> bool:
        g = self.groups[int(worker)]
        if not self._seen[g]:
            self._seen[g] = True
            self._left -= 1
        return super().add(worker, time)

    def enough(self) -> bool:
        return self._left == 0 or super().enough()

    def _stop_count(self, workers: np.ndarray) -> int | None:
        by_count = _by_count(self.r - len(self.responders), workers.size)
        groups = self.groups[workers]
        fresh = ~self._seen[groups]
        found, first = np.unique(groups[fresh], return_index=True)
        if found.size < self._left:
            return by_count
        cover = int(np.flatnonzero(fresh)[first].max()) + 1
        return cover if by_count is None else min(cover, by_count)

    def _absorb(self, workers: np.ndarray) -> None:
        self._seen[self.groups[workers]] = True
        self._left = int(self._seen.size - np.count_nonzero(self._seen))


@dataclass(frozen=True)
class ErasureHeadWait(WaitPolicy):
    """ErasureHead: first w arrivals, or earlier once every FRC group is covered."""

    w: int = 1

    @property
    def name(self) -> str:
        return f"erasurehead(w={self.w}{self._suffix()})"

    def validate(self, code: Code) -> None:
        _check_at_most_n("erasurehead", "w", self.w, code)
        frc_groups(code)          # raises ValueError for a non-FRC code

    def start(self, code: Code, decoder: Any = "optimal") -> RoundWait:
        return _ErasureHeadState(code, self.deadline, self.w)


def erasurehead(w: int, deadline: float | None = None) -> ErasureHeadWait:
    """ErasureHead's wait rule: stop after w arrivals or when every group has an arrival.

    References:
        [1] Wang, Charles, Papailiopoulos, arXiv:1901.09671, 2019 (collect w = n/2 of n = 30).
    """
    return ErasureHeadWait(_deadline_arg("erasurehead", deadline),
                           check_int("erasurehead", "w", w, low=1))
