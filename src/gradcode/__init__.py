"""gradcode: gradient coding for straggler-tolerant distributed gradient descent.

Build a code, drop stragglers, decode::

    >>> import gradcode as gc
    >>> code = gc.codes.fractional_repetition(n=6, s=2)
    >>> round(gc.decode(code, [0, 4], decoder="optimal").error, 12)
    0.0

Heavy extras (ray, torch, jax, matplotlib) are imported lazily, never here.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import analysis, codes, decoders, designs
from .code import Code
from .decoders import Decoding, decode
from .errors import NotDecodableError

__version__ = "0.1.0"

# The training side (and its scipy.stats / multiprocessing imports) loads on first use,
# so `import gradcode` stays quick for code-only users and for worker processes.
_LAZY = ("backends", "data", "estimation", "history", "latency", "optimizers", "problems",
         "schemes", "stragglers", "training", "wait")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gradcode' has no attribute {name!r}")

__all__ = [
    "Code", "Decoding", "NotDecodableError", "decode", "codes", "decoders", "designs", "analysis",
    "backends", "data", "history", "optimizers", "problems", "schemes", "stragglers",
    "training", "wait", "estimation", "latency", "__version__",
]
