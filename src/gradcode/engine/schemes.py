"""Schemes = a code + a decoder + a wait policy, and the ready-made baselines.

Baselines:
    * :func:`uncoded`: B = I, wait for every worker, plain sum (synchronous GD).
    * :func:`ignore_stragglers`: B = I, first n - s workers, sum rescaled by n / (n - s).
    * :func:`exact`: any exact code, wait until decodable, exact decoding.
    * :func:`erasurehead`: FRC with groups of d, first w or all groups covered, first
      arrival per group, no rescaling [ErasureHead].
    * :func:`approximate`: any code, first r workers (or until error <= eps), optimal decoding.
    * :func:`nested`: a nested code (``gc.codes.nested``) with its adaptive-load protocol
      (progress beacons, STOP(level), one vector, exact decoding;
      :mod:`gradcode.protocols.nested_scheme`).

Example:
    >>> import gradcode as gc
    >>> s = gc.schemes.erasurehead(n=6, d=2, w=4)
    >>> s.code.n, s.decoder, s.wait.name
    (6, 'frc_group', 'erasurehead(w=4)')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..codes import fractional_repetition
from ..codes import uncoded as uncoded_code
from ..codes.catalogue import resolve
from ..core.code import Code
from ..core.decoders import Decoding
from ..core.validate import check_int, check_real
from .rounds import PlainRound, RoundProtocol
from .wait import WaitPolicy, first, until_decodable, until_error, wait_all
from .wait import erasurehead as erasurehead_wait

__all__ = ["Scheme", "approximate", "erasurehead", "exact", "ignore_stragglers", "uncoded"]

Decoder = str | Callable[[Code, Any], Decoding]


@dataclass(frozen=True)
class Scheme:
    """A coded training scheme: who computes what (code), how the master combines the
    responses (decoder), and when it stops waiting (wait policy).

    Attributes:
        code: the :class:`gradcode.Code` (n workers x k partitions).
        decoder: a decoder name from ``gc.decoders.DECODERS`` or a callable.
        wait: a :class:`gradcode.wait.WaitPolicy`.
        name: label used in histories and reports (default: built from the parts).
        fallback: decoder used when ``decoder`` raises ``NotDecodableError`` (e.g. exact
            decoding after more workers died than the code tolerates); ``None`` re-raises.
        task: the worker task the hosts run (a
            :class:`gradcode.backends.base.WorkerTask`); None: the coded gradient f_i.

    Raises:
        TypeError: code is not a Code, wait is not a WaitPolicy, decoder not callable/name.
        ValueError: unknown decoder name, or the wait policy does not fit the code.
    """

    code: Code
    decoder: Decoder = "optimal"
    wait: WaitPolicy = field(default_factory=wait_all)
    name: str = ""
    fallback: Decoder | None = "optimal"
    task: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, Code):
            raise TypeError(f"Scheme: code must be a gradcode.Code, got {type(self.code).__name__}")
        resolve(self.decoder, "Scheme")
        if self.fallback is not None:
            resolve(self.fallback, "Scheme")
        if not isinstance(self.wait, WaitPolicy):
            raise TypeError(f"Scheme: wait must be a gradcode.wait policy (e.g. wait_all(), "
                            f"first(r)), got {type(self.wait).__name__}")
        self.wait.validate(self.code)
        if not self.name:
            dec = self.decoder if isinstance(self.decoder, str) else \
                getattr(self.decoder, "__name__", "custom")
            object.__setattr__(self, "name", f"{self.code.name} | {dec} | {self.wait.name}")

    def after_round(self, row: dict, history: Any) -> Any:
        """Called by ``train`` after each round (when no callback answered): None to go
        on, True to stop, or a :class:`Scheme` to switch to. Plain schemes return None;
        self-driving ones (``gc.schemes.auto``) decide here."""
        return None

    @property
    def decode_fn(self) -> Callable[[Code, Any], Decoding]:
        return resolve(self.decoder, "Scheme")

    def round_protocol(self, host: Any, round: int, params: Any) -> RoundProtocol:
        """The master side of one round (:class:`gradcode.engine.rounds.PlainRound`:
        wait by the policy, decode); schemes with their own protocol override it."""
        return PlainRound(self, int(np.asarray(params).size))

    def check(self, *, k: int | None = None, n: int | None = None) -> None:
        """Raise ``ValueError`` unless the code has ``k`` partitions and ``n`` workers."""
        if k is not None and self.code.k != k:
            raise ValueError(f"scheme {self.name!r}: the code has k={self.code.k} partitions but "
                             f"the problem is split into k={k} (build the problem with "
                             f"k={self.code.k}, or the code with k={k})")
        if n is not None and self.code.n != n:
            raise ValueError(f"scheme {self.name!r}: the code has n={self.code.n} workers but "
                             f"the backend has {n}")


def uncoded(n: int, *, deadline: float | None = None) -> Scheme:
    """Uncoded synchronous GD: B = I_n, wait for every live worker, plain sum."""
    n = check_int("uncoded", "n", n, low=1)
    return Scheme(uncoded_code(n), "optimal", wait_all(deadline), name=f"uncoded(n={n})")


def ignore_stragglers(n: int, s: int) -> Scheme:
    """Ignore the s slowest: B = I_n, first n - s workers, sum times n / (n - s).

    The rescaling is one-step decoding (unbiased under uniformly random stragglers).
    """
    n = check_int("ignore_stragglers", "n", n, low=1)
    s = check_int("ignore_stragglers", "s", s, low=0, high=n - 1)
    return Scheme(uncoded_code(n), "one_step", first(n - s),
                  name=f"ignore_stragglers(n={n}, s={s})")


def exact(code: Code, *, decoder: Decoder = "exact", deadline: float | None = None) -> Scheme:
    """An exact gradient code: wait until decodable, decode exactly.

    Args:
        code: e.g. ``gc.codes.cyclic_repetition(n, s)`` or ``fractional_repetition``.
        decoder: ``"exact"`` (least squares with an exactness check) or e.g. ``"frc_group"``.
    """
    if not isinstance(code, Code):
        raise TypeError(f"exact: code must be a gradcode.Code, got {type(code).__name__}")
    return Scheme(code, decoder, until_decodable(deadline), name=f"exact({code.name})")


def erasurehead(n: int, d: int, w: int) -> Scheme:
    """ErasureHead: FRC groups of d workers, collect until w arrived or all groups covered,
    first arrival per group with coefficient 1, uncovered groups dropped (no rescaling).

    References:
        [1] H. Wang, Z. Charles, D. Papailiopoulos, arXiv:1901.09671, 2019.
    """
    n = check_int("erasurehead", "n", n, low=1)
    d = check_int("erasurehead", "d", d, low=1)
    if n % d:
        raise ValueError(f"erasurehead: n={n} must be a multiple of d={d}")
    w = check_int("erasurehead", "w", w, low=1, high=n)
    return Scheme(fractional_repetition(n, d - 1), "frc_group", erasurehead_wait(w),
                  name=f"erasurehead(n={n}, d={d}, w={w})")


def approximate(code: Code, r: int | None = None, *, eps: float | None = None,
                decoder: Decoder = "optimal", deadline: float | None = None) -> Scheme:
    """An approximate code with (by default optimal) decoding.

    Waits for the first ``r`` workers, or until the decoding error is <= ``eps`` when
    ``eps`` is given. Default r = n - (replication - 1): as many stragglers as a
    partition has extra copies.
    """
    if not isinstance(code, Code):
        raise TypeError(f"approximate: code must be a gradcode.Code, got {type(code).__name__}")
    if eps is not None:
        eps = check_real("approximate", "eps", eps, low=0.0)
        wait = until_error(eps, deadline)
        label = f"eps={eps:g}"
    else:
        if r is None:
            r = max(1, code.n - max(code.replication - 1, 0))
        r = check_int("approximate", "r", r, low=1, high=code.n)
        wait = first(r, deadline)
        label = f"r={r}"
    dec = decoder if isinstance(decoder, str) else getattr(decoder, "__name__", "custom")
    return Scheme(code, decoder, wait, name=f"approximate({code.name}, {label}, {dec})")
