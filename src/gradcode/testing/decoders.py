"""check_decoder: the contract of a decoder ``(code, responders) -> Decoding``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..codes import cyclic_repetition, fractional_repetition
from ..core.code import Code
from ..core.errors import NotDecodableError

__all__ = ["check_decoder"]


def _default_codes() -> list[Code]:
    return [fractional_repetition(n=6, s=1), cyclic_repetition(n=5, s=2, seed=0)]


def check_decoder(decoder: Callable[[Code, Any], Any], codes: Sequence[Code] | None = None,
                  *, exact_when_decodable: bool = False) -> None:
    """Check a decoder on every responder set of size >= 1 of small codes.

    Rules: the result has ``weights`` (length n, zero off the responders), ``alpha``
    equal to B^T weights, ``error`` equal to ||alpha - 1||^2; decoding twice gives the
    same weights; the only exception allowed is :class:`gradcode.NotDecodableError`.
    With ``exact_when_decodable``, every responder set that leaves at most ``tolerates``
    stragglers must decode with error ~ 0.

    Raises:
        AssertionError: a rule is broken (the message names the code and responders).
    """
    name = getattr(decoder, "__name__", repr(decoder))
    for code in codes if codes is not None else _default_codes():
        B = code.B.toarray()
        for r in range(1, code.n + 1):
            for resp in itertools.combinations(range(code.n), r):
                where = f"check_decoder({name}): code {code.name}, responders {list(resp)}"
                order = np.array(resp, dtype=np.int64)
                try:
                    dec = decoder(code, order)
                except NotDecodableError:
                    assert not (exact_when_decodable and code.n - r <= code.tolerates), \
                        f"{where}: NotDecodableError although at most tolerates stragglers"
                    continue
                w = np.asarray(dec.weights)
                assert w.shape == (code.n,), f"{where}: weights of shape {w.shape}"
                off = np.setdiff1d(np.arange(code.n), order)
                assert np.all(w[off] == 0), f"{where}: nonzero weight on a straggler"
                assert np.allclose(dec.alpha, B.T @ w, atol=1e-9), \
                    f"{where}: alpha differs from B^T weights"
                err = float(np.sum(np.abs(np.asarray(dec.alpha) - 1) ** 2))
                assert np.isclose(dec.error, err, rtol=1e-7, atol=1e-9), \
                    f"{where}: error {dec.error} differs from ||alpha - 1||^2 = {err}"
                again = decoder(code, order)
                assert np.allclose(again.weights, w), f"{where}: not deterministic"
                if exact_when_decodable and code.n - r <= code.tolerates:
                    assert dec.error < 1e-8, f"{where}: error {dec.error} on a decodable set"
