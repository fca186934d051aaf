"""Wait policies: when the master stops waiting for workers in a round.

A policy is a small factory: ``policy.start(code, decoder)`` returns a fresh per-round
state (:class:`RoundWait`) that the master feeds with arrivals
(``state.add(worker, time) -> stop?``). Every policy may also carry a ``deadline`` in
seconds after the round starts, after which the master stops with whoever answered.
The backend reads ``state.deadline``; the master loop is generic over the arrivals.
The shortcuts that make the decodability checks cheap are in docs/theory.md, T34.

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
        if self.code.n > _CHECK_EVERY_UP_TO:
            self._next_check = int(count * 1.05) + 1
        return True


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
        _, alpha = _optimal_alpha(self.code, self._mask)
        return float(np.sum(np.abs(alpha - 1.0) ** 2)) <= self.tol * max(self.code.k, 1)


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

    def enough(self) -> bool:
        if len(self.responders) >= self.code.n:
            return True
        if self.code.k - self._n_covered > self.eps:
            return False      # each uncovered partition has alpha_j = 0: error >= its count
        if not self._due():
            return False
        try:
            err = self.decoder(self.code, np.asarray(self.responders, dtype=np.int64)).error
        except NotDecodableError:
            return False
        return err <= self.eps


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
    """Wait until the decoding error ||alpha - 1||^2 of the current responders is <= eps."""
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
