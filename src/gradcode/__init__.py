"""gradcode: gradient coding for straggler-tolerant distributed gradient descent.

Build a code, drop stragglers, decode::

    >>> import gradcode as gc
    >>> code = gc.codes.fractional_repetition(n=6, s=2)
    >>> round(gc.decode(code, [0, 4], decoder="optimal").error, 12)
    0.0

Heavy extras (ray, torch, jax, matplotlib) are imported lazily, never here.
"""

from __future__ import annotations

from . import analysis, codes, decoders, designs
from . import (backends, data, history, optimizers, problems, schemes, stragglers,  # noqa: E501
               training, wait)
from .code import Code
from .decoders import Decoding, decode
from .errors import NotDecodableError

__version__ = "0.1.0"

__all__ = [
    "Code", "Decoding", "NotDecodableError", "decode", "codes", "decoders", "designs", "analysis",
    "backends", "data", "history", "optimizers", "problems", "schemes", "stragglers",
    "training", "wait", "__version__",
]
