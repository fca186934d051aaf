"""Gradient-code families. Every constructor returns a :class:`gradcode.Code`.

``CATALOGUE`` maps a family name to an :class:`Entry`: calling the entry builds the code
with its listed defaults (override any of them by keyword). The CLI lists it and the
contract tests run every entry through the same checks. ``DECODERS`` (in
:mod:`gradcode.codes.catalogue`) is the one name -> decoder registry: the core decoders
plus those the families bring.
"""

from __future__ import annotations

from .bibd import bibd, soft_bibd
from .catalogue import CATALOGUE, DECODERS, Entry, decode, resolve
from .graphs import expander, graph_scheme
from .heterogeneous import (
                            HeterogeneousMeta,
                            allocation_change,
                            heterogeneous,
                            unbiased,
                            unbiased_bias,
                            unbiased_expected_error,
                            unbiased_for,
)
from .mds import cyclic_mds
from .nested import NestedMeta, nested
from .product import ProductMeta, kronecker
from .random_sparse import bernoulli, regularized_bernoulli, stochastic_block
from .repetition import cyclic_repetition, fractional_repetition, uncoded

__all__ = [
    "CATALOGUE", "Entry", "uncoded", "fractional_repetition", "cyclic_repetition",
    "cyclic_mds", "expander", "graph_scheme", "bernoulli", "regularized_bernoulli",
    "stochastic_block", "nested",
    "bibd", "soft_bibd", "kronecker",
    "heterogeneous", "unbiased_for", "unbiased_bias", "unbiased_expected_error",
    "allocation_change", "HeterogeneousMeta", "NestedMeta", "ProductMeta",
]
