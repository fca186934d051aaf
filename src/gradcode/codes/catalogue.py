"""The catalogue: every code family by name, and every decoder by name.

``CATALOGUE`` maps a family name to an :class:`Entry` (constructor, defaults, decoder,
exactness, summary). ``DECODERS`` is the single name -> decoder registry: the core decoders
of :mod:`gradcode.core.decoders` plus the ones the families bring (``unbiased``,
``bibd``, ``product``); nothing mutates the core's table.

Example:
    >>> from gradcode.codes.catalogue import CATALOGUE, DECODERS
    >>> CATALOGUE["fractional_repetition"]().name
    'fractional_repetition(n=12, s=2)'
    >>> sorted(set(DECODERS) - {"optimal", "one_step", "exact", "frc_group", "graph"})
    ['bibd', 'product', 'unbiased']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core import decoders as core_decoders
from ..core.code import Code
from ..core.decoders import Decoding
from .bibd import bibd, bibd_decoder, soft_bibd
from .graphs import expander, graph_scheme
from .heterogeneous import heterogeneous, unbiased
from .mds import cyclic_mds
from .nested import nested
from .product import kronecker, product_decoder
from .random_sparse import bernoulli, regularized_bernoulli, stochastic_block
from .repetition import cyclic_repetition, fractional_repetition, uncoded

__all__ = ["CATALOGUE", "DECODERS", "Entry", "decode", "resolve"]

Decoder = Callable[[Code, Any], Decoding]

DECODERS: dict[str, Decoder] = {
    **core_decoders.DECODERS,
    "unbiased": unbiased,
    "bibd": bibd_decoder,
    "product": product_decoder,
}
"""Every decoder by name: the core ones and those the code families bring."""


def resolve(decoder: str | Decoder, where: str = "decode") -> Decoder:
    """The decoder callable for a name of :data:`DECODERS` or a callable (returned as is).

    Raises:
        ValueError: an unknown name (the valid names are listed).
    """
    return core_decoders.resolve(decoder, where, registry=DECODERS)


def decode(code: Code, responders: Sequence[int] | np.ndarray,
           decoder: str | Decoder = "optimal") -> Decoding:
    """Decode one round: weights on the responders, alpha = B^T weights, and the error.

    Args:
        code: a :class:`gradcode.Code`.
        responders: boolean mask of length n, or worker indices (arrival order).
        decoder: a name from :data:`DECODERS` or a callable ``(code, responders) -> Decoding``.

    Returns:
        :class:`~gradcode.core.decoders.Decoding` with ``weights``, ``alpha`` and
        ``error`` = ||alpha - 1||^2.

    Raises:
        ValueError: unknown decoder name or malformed responders.
        NotDecodableError: ``decoder="exact"`` with too many stragglers.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bibd(gc.designs.fano())
        >>> round(gc.decode(code, [0, 1, 2, 3, 4, 5], decoder="bibd").error, 6)
        0.25
    """
    core_decoders._check_code("decode", code)
    return resolve(decoder)(code, responders)


@dataclass(frozen=True)
class Entry:
    """A catalogue entry: a constructor, its default parameters and its decoder.

    Attributes:
        constructor: the family's constructor function.
        defaults: keyword arguments that build a small, representative code.
        decoder: the decoder the family is meant to be used with.
        exact: whether the family tolerates stragglers exactly (``tolerates > 0``).
        summary: one line for listings.
    """

    constructor: Callable[..., Code]
    defaults: dict[str, Any] = field(default_factory=dict)
    decoder: str = "optimal"
    exact: bool = False
    summary: str = ""

    def __call__(self, **overrides: Any) -> Code:
        return self.constructor(**{**self.defaults, **overrides})


CATALOGUE: dict[str, Entry] = {
    "uncoded": Entry(uncoded, {"n": 12}, "optimal", False, "B = I: wait for everyone"),
    "fractional_repetition": Entry(fractional_repetition, {"n": 12, "s": 2}, "frc_group", True,
                                   "groups of s+1 workers share s+1 partitions [Tandon 2017]"),
    "cyclic_repetition": Entry(cyclic_repetition, {"n": 12, "s": 2, "seed": 0}, "exact", True,
                               "random cyclic code, any n-s rows span 1 [Tandon 2017]"),
    "cyclic_mds": Entry(cyclic_mds, {"n": 12, "s": 2}, "exact", True,
                        "circulant generator of a cyclic MDS code [Raviv 2018]"),
    "expander": Entry(expander, {"n": 12, "d": 3, "seed": 0}, "one_step", False,
                      "B = Adj/d of a random d-regular graph [Raviv 2018]"),
    "graph_scheme": Entry(graph_scheme, {"k": 8, "d": 3, "seed": 0}, "graph", False,
                          "one machine per edge, closed-form optimal decoding "
                          "[Glasgow-Wootters 2021]"),
    "bernoulli": Entry(bernoulli, {"n": 12, "k": 12, "d": 3, "seed": 0}, "optimal", False,
                       "B[i,j] ~ Bernoulli(d/k) [Charles 2017]"),
    "regularized_bernoulli": Entry(regularized_bernoulli, {"n": 12, "k": 12, "d": 3, "seed": 0},
                                   "optimal", False,
                                   "each partition on exactly d workers [Charles 2017]"),
    "stochastic_block": Entry(stochastic_block, {"n": 12, "k": 12, "communities": 3, "p": 0.8,
                                                 "q": 0.05, "seed": 0}, "optimal", False,
                              "stochastic block model code [Charles-Papailiopoulos 2018]"),
    "nested": Entry(nested, {"n": 12, "levels": (0, 1, 2), "family": "cyclic", "seed": 0},
                    "exact", True, "stacked cyclic levels, load adapts to the actual "
                    "stragglers [Massny 2022]"),
    "heterogeneous": Entry(heterogeneous, {"p": tuple(round(0.05 + 0.05 * i, 2)
                                                      for i in range(12)), "k": 12},
                           "unbiased", False, "rows sums follow (1-p_i)/p_i, fixed unbiased "
                           "weights 1/(1-p_i) [Song-Choi 2025]"),
    "bibd": Entry(bibd, {"design": "projective_plane(3)"}, "bibd", False,
                  "workers = points, partitions = blocks of a BIBD; same error for every "
                  "straggler set of a size [Kadhe 2019]"),
    "soft_bibd": Entry(soft_bibd, {"n": 12, "k": 12, "r": 3, "seed": 0}, "optimal", False,
                       "load-r 0/1 code with pair counts balanced by local search "
                       "[Sakorikar-Wang 2021]"),
    "kronecker": Entry(kronecker, {"code1": fractional_repetition(4, 1),
                                   "code2": fractional_repetition(3, 2)}, "product", True,
                       "B1 (x) B2, tolerates (s1+1)(s2+1)-1 [Sakorikar-Wang 2021]"),
}

