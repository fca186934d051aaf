"""Public path of the decoders: the core decoders of :mod:`gradcode.core.decoders` and
the one name -> decoder registry (``DECODERS``, ``resolve``, ``decode``) of
:mod:`gradcode.codes.catalogue`, which adds the decoders code families bring."""

from typing import Any

from .codes.catalogue import DECODERS, decode, resolve  # noqa: F401
from .core import decoders as _impl
from .core.decoders import (  # noqa: F401
    Decoding,
    exact,
    fixed,
    frc_group,
    graph,
    one_step,
    optimal,
    responder_mask,
)

__all__ = [
    "Decoding", "decode", "optimal", "one_step", "exact", "frc_group", "graph", "fixed",
    "DECODERS", "resolve", "responder_mask",
]


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
