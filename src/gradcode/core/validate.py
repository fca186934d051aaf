"""Argument checks shared by the public boundary.

Every check raises ``TypeError`` or ``ValueError`` whose message names the caller,
the argument, the rule and the offending value, e.g.
``fractional_repetition: n=7 must be a multiple of s+1=3``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["MAX_ENTRIES", "check_entries", "check_int", "check_real", "check_probability",
           "as_rng", "fail"]

MAX_ENTRIES = 10_000_000
"""Most entries a built-in code family stores or allocates while building (non-zeros of B
and dense temporaries): about 120 MB as a sparse matrix. Constructors check it from their
arguments BEFORE allocating anything, so ``uncoded(10**9)`` is one clear error instead of
a memory error. Build bigger codes from your own matrix with :class:`gradcode.Code`."""


def fail(where: str, message: str, exc: type[Exception] = ValueError) -> None:
    """Raise ``exc`` with ``"where: message"``."""
    raise exc(f"{where}: {message}")


def check_entries(where: str, args: str, formula: str, count: int) -> None:
    """Refuse a construction that would hold ``count`` > :data:`MAX_ENTRIES` entries.

    ``args`` names the offending arguments with their values (``"n=1000000000"``),
    ``formula`` says how the count follows from them (``"n*(s+1)"``).
    """
    if count > MAX_ENTRIES:
        raise ValueError(f"{where}: {args} is too large: the code would hold {formula} = "
                         f"{count:,} entries, more than the limit of {MAX_ENTRIES:,} "
                         f"(gradcode.core.validate.MAX_ENTRIES); choose smaller parameters")


def check_int(where: str, name: str, value: Any, *, low: int | None = None,
              high: int | None = None) -> int:
    """Return ``value`` as ``int`` after checking its type and the range [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an integer, got {value!r} "
                        f"({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{where}: {name}={value} must be >= {low}")
    if high is not None and value > high:
        raise ValueError(f"{where}: {name}={value} must be <= {high}")
    return value


def check_real(where: str, name: str, value: Any, *, low: float | None = None,
               high: float | None = None, low_open: bool = False,
               high_open: bool = False) -> float:
    """Return ``value`` as a finite ``float`` inside the given (optionally open) bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{where}: {name}={value} must be finite")
    if low is not None and (value < low or (low_open and value == low)):
        op = ">" if low_open else ">="
        raise ValueError(f"{where}: {name}={value} must be {op} {low}")
    if high is not None and (value > high or (high_open and value == high)):
        op = "<" if high_open else "<="
        raise ValueError(f"{where}: {name}={value} must be {op} {high}")
    return value


def check_probability(where: str, name: str, value: Any) -> float:
    """A real number in [0, 1]."""
    return check_real(where, name, value, low=0.0, high=1.0)


def as_rng(where: str, seed: Any) -> np.random.Generator:
    """Turn ``seed`` (None, int or ``numpy.random.Generator``) into a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"{where}: seed must be a non-negative integer or a "
                        f"numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))
