"""Gradient-code families. Every constructor returns a :class:`gradcode.Code`.

``CATALOGUE`` maps a family name to an :class:`Entry`: calling the entry builds the code
with its listed defaults (override any of them by keyword). The CLI lists it and the
contract tests run every entry through the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..code import Code
from .bibd import bibd, soft_bibd
from .graphs import expander, graph_scheme
from .heterogeneous import (allocation_change, heterogeneous, unbiased, unbiased_bias,
                            unbiased_expected_error, unbiased_for)
from .mds import cyclic_mds
from .nested import nested
from .product import kronecker
from .random_sparse import bernoulli, regularized_bernoulli, stochastic_block
from .repetition import cyclic_repetition, fractional_repetition, uncoded

__all__ = [
    "CATALOGUE", "Entry", "uncoded", "fractional_repetition", "cyclic_repetition",
    "cyclic_mds", "expander", "graph_scheme", "bernoulli", "regularized_bernoulli",
    "stochastic_block", "nested",
    "bibd", "soft_bibd", "kronecker",
    "heterogeneous", "unbiased_for", "unbiased_bias", "unbiased_expected_error",
    "allocation_change",
]


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

# The heterogeneous family's decoder (registered here: decoders.py cannot import codes).
from .. import decoders as _decoders  # noqa: E402

_decoders.DECODERS.setdefault("unbiased", unbiased)

# Block-design and product decoders (registered here for the same reason).
from .bibd import bibd_decoder as _bibd_decoder  # noqa: E402
from .product import product_decoder as _product_decoder  # noqa: E402

_decoders.DECODERS.setdefault("bibd", _bibd_decoder)
_decoders.DECODERS.setdefault("product", _product_decoder)
