"""Nested gradient codes: stacked level codes whose load adapts to the actual stragglers [1].

A nested code is a list of *levels* s_1 < ... < s_m (straggler tolerances). Every worker
i holds the partitions of a fixed processing order pi_i and computes them one after the
other; the level-s code B^(s) uses only the FIRST s + 1 partitions of each order, so a
worker that has finished s + 1 tasks can send its level-s vector. The master stops the
round at the first instant some level is decodable (see :mod:`gradcode.protocols.nested`)
and the computation load then matches the number of stragglers that actually happened.

Only the abstract of [1] was available; the concrete construction below is [design]
(docs/theory.md, T28).

References:
    [1] L. Massny, C. Hofmeister, M. Egger, R. Bitar, A. Wachter-Zeh, "Nested gradient
        codes for straggler mitigation in distributed machine learning",
        arXiv:2212.08580, 2022.
    [2] R. Tandon, Q. Lei, A. G. Dimakis, N. Karampatziakis, "Gradient coding: avoiding
        stragglers in distributed learning", ICML 2017, arXiv:1612.03301.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.code import Code, CodeMeta
from ..core.validate import as_rng, check_entries, check_int
from ._common import seed_param
from .repetition import cyclic_repetition, fractional_repetition

__all__ = ["FAMILIES", "NestedMeta", "check_levels", "cyclic_order", "dyadic_order",
           "is_nested", "nested", "nested_meta"]

FAMILIES = ("cyclic", "dyadic_frc")
"""The nested families: ``"cyclic"`` (any n - s workers decode level s) and
``"dyadic_frc"`` (n = 2^L, decode from any dyadic covering of the partitions)."""


def check_levels(where: str, n: int, levels: Any) -> tuple[int, ...]:
    """Validate ``levels``: a non-empty, strictly increasing sequence of ints in [0, n-1].

    Raises:
        TypeError: ``levels`` is not a sequence of integers.
        ValueError: empty, not strictly increasing, or some s < 0 or s >= n.
    """
    if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)):
        raise TypeError(f"{where}: levels must be a sequence of integers, got {levels!r}")
    out = []
    for s in list(levels):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{where}: levels must hold integers, got {s!r} "
                            f"({type(s).__name__}) in levels={list(levels)!r}")
        out.append(int(s))
    if not out:
        raise ValueError(f"{where}: levels must hold at least one straggler tolerance, got []")
    for a, b in itertools.pairwise(out):
        if b <= a:
            raise ValueError(f"{where}: levels must be strictly increasing, got {out} "
                             f"({b} follows {a})")
    if out[0] < 0:
        raise ValueError(f"{where}: every level s must be >= 0, got s={out[0]} in {out}")
    if out[-1] >= n:
        raise ValueError(f"{where}: every level s must be < n={n} (at least one worker must "
                         f"respond), got s={out[-1]} in {out}")
    return tuple(out)


def cyclic_order(n: int, tasks: int) -> np.ndarray:
    """Processing order of the cyclic family: row i is (i, i+1, ..., i+tasks-1) mod n."""
    return (np.arange(n)[:, None] + np.arange(tasks)[None, :]) % n


def dyadic_order(n: int, tasks: int) -> np.ndarray:
    """Processing order of the dyadic FRC family (n = 2^L).

    Worker i first computes its own partition, then its sibling i XOR 1, then the
    sibling block of 2, of 4, ...: after 2^j tasks it has computed exactly the aligned
    dyadic block of size 2^j that contains i. Row i lists the first ``tasks`` entries.
    """
    order = np.empty((n, n), dtype=np.int64)
    order[:, 0] = np.arange(n)
    size = 1
    while size < n:
        # tasks size .. 2 size - 1: the sibling block (i XOR size) with the same offsets
        order[:, size:2 * size] = order[:, :size] ^ size
        size *= 2
    return order[:, :tasks].copy()


@dataclass(frozen=True, eq=False)
class NestedMeta(CodeMeta):
    """``code.meta`` of a nested code (all [design], see :func:`nested`).

    Attributes:
        levels: the tolerances (s_1, ..., s_m), strictly increasing.
        level_codes: B^(s) for each level, as :class:`gradcode.Code` (same order).
        order: int array n x (s_max + 1), row i = worker i's processing order pi_i.
        family: ``"cyclic"`` or ``"dyadic_frc"``.
    """

    levels: tuple[int, ...]
    level_codes: tuple[Code, ...]
    order: np.ndarray
    family: str


def nested(n: int, levels: Sequence[int], family: str = "cyclic", seed: Any = None) -> Code:
    """Nested gradient code with levels s_1 < ... < s_m and per-worker processing orders [1].

    Construction ([design], docs/theory.md, T28); k = n, s_max = s_m:

    - ``family="cyclic"``: worker i processes pi_i = (i, i+1, ..., i+s_max) mod n. The
      level-s code B^(s) is Tandon's randomized cyclic repetition code GC(n, s) [2]
      (one independent draw per level from ``seed``): row i is supported on
      {i, ..., i+s} mod n = the first s + 1 entries of pi_i, and ANY n - s rows of
      B^(s) span the all-ones vector (with probability 1 over the draw).
    - ``family="dyadic_frc"`` (n = 2^L, every s + 1 a power of two): pi_i = i, then
      i XOR 1, then the sibling block of 2, of 4, ...; B^(s) is the fractional
      repetition code whose groups are the aligned dyadic blocks of size s + 1, all
      coefficients 1, so one running sum per worker serves every level. Level s
      decodes from any n - s workers; the protocol decodes more often, from any
      covering of {0..n-1} by blocks each finished by one worker inside it.

    ``code.B`` is the TOP level B^(s_max) (so ``code.tolerates == s_max`` and
    ``code.load == s_max + 1``): it is what a worker computes when it is never stopped.

    ``code.meta`` is a :class:`NestedMeta` (all [design]): ``levels`` (s_1, ..., s_m),
    ``level_codes`` (B^(s) for each level), ``order`` (int array n x (s_max + 1), row i =
    pi_i) and ``family``; read them as attributes (``code.meta.levels``) or by key
    (``code.meta["levels"]``).

    Args:
        n: number of workers (= partitions), >= 1; a power of two for ``"dyadic_frc"``.
        levels: strictly increasing straggler tolerances, each in [0, n-1]; for
            ``"dyadic_frc"`` each s + 1 must be a power of two.
        family: ``"cyclic"`` or ``"dyadic_frc"``.
        seed: int or numpy Generator for the random cyclic levels (unused by
            ``"dyadic_frc"``, which is deterministic).

    Returns:
        A :class:`gradcode.Code` (the top level) carrying the levels in ``meta``.

    Raises:
        TypeError: n or a level is not an int, levels is not a sequence, family not a str.
        ValueError: levels empty or not strictly increasing, some s >= n or s < 0, unknown
            family, ``"dyadic_frc"`` with n not a power of two or s + 1 not a power of two.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.nested(6, levels=[0, 1, 3], seed=0)
        >>> code.tolerates, code.meta.levels, code.meta.order[1].tolist()
        (3, (0, 1, 3), [1, 2, 3, 4])
        >>> [c.load for c in code.meta.level_codes]
        [1, 2, 4]

    References:
        [1] Massny, Hofmeister, Egger, Bitar, Wachter-Zeh, "Nested gradient codes for
            straggler mitigation in distributed machine learning", arXiv:2212.08580, 2022.
        [2] Tandon et al., "Gradient coding", arXiv:1612.03301, 2017 (cyclic levels).
    """
    where = "nested"
    n = check_int(where, "n", n, low=1)
    if not isinstance(family, str):
        raise TypeError(f"{where}: family must be a str, one of {FAMILIES}, got {family!r}")
    if family not in FAMILIES:
        raise ValueError(f"{where}: family={family!r} is not a nested family; valid: "
                         f"{', '.join(FAMILIES)}")
    levels = check_levels(where, n, levels)
    s_max = levels[-1]
    check_entries(where, f"n={n}, levels={list(levels)}", "n*(max(levels)+1)^2*len(levels)",
                  n * (s_max + 1) ** 2 * len(levels))
    seed_name = seed_param(seed)
    if family == "cyclic":
        rng = as_rng(where, seed)
        level_codes = tuple(cyclic_repetition(n, s, seed=rng) for s in levels)
        order = cyclic_order(n, s_max + 1)
    else:
        if n & (n - 1):
            raise ValueError(f"{where}: family='dyadic_frc' needs n = 2^L workers, got n={n}")
        check_entries(where, f"n={n}", "n*n (the dyadic processing order)", n * n)
        for s in levels:
            if (s + 1) & s:
                raise ValueError(f"{where}: family='dyadic_frc' needs every s+1 to be a power "
                                 f"of two (block sizes 1, 2, 4, ...), got s={s} (s+1={s + 1}) "
                                 f"in levels={list(levels)}")
        level_codes = tuple(fractional_repetition(n, s) for s in levels)
        order = dyadic_order(n, s_max + 1)
        seed_name = None
    top = level_codes[-1]
    name = (f"nested(n={n}, levels={levels!r}, family={family!r}"
            + (f", seed={seed_name!r})" if seed_name is not None else ")"))
    meta = NestedMeta(levels=tuple(levels), level_codes=level_codes, order=order,
                      family=family)
    params = {"n": n, "levels": levels, "family": family, "seed": seed_name}
    return Code(top.B, name=name, params=params, tolerates=s_max, meta=meta, verify=False)


def is_nested(code: Any) -> bool:
    """Whether ``code`` carries the nested-code metadata of :func:`nested`."""
    return isinstance(code, Code) and isinstance(code.meta, NestedMeta)


def nested_meta(where: str, code: Any) -> NestedMeta:
    """``code.meta`` of a nested code, typed; TypeError naming ``where`` for any other code."""
    if not is_nested(code):
        raise TypeError(f"{where}: code must be a nested code from gc.codes.nested(...), got "
                        f"{getattr(code, 'name', type(code).__name__)!r}")
    return code.meta
