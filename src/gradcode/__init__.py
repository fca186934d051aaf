"""gradcode: gradient coding for straggler-tolerant distributed gradient descent.

Build a code, drop stragglers, decode::

    >>> import gradcode as gc
    >>> code = gc.codes.fractional_repetition(n=6, s=2)
    >>> round(gc.decode(code, [0, 4], decoder="optimal").error, 12)
    0.0

Heavy extras (ray, torch, jax, matplotlib) are imported lazily, never here.

The package is built in layers; each imports only the layers below it (checked in CI by
``lint-imports`` with the contract in ``pyproject.toml``), and there are no import cycles:

==============  =============================================================  ==========
layer           holds                                                          may import
==============  =============================================================  ==========
``core``        ``Code``, decoders and their linear algebra, argument checks   numpy,
                                                                               scipy
``codes``       every code family (one module each), block designs, the        core
                catalogue (family name -> constructor, decoder name -> decoder)
``analysis``    decoding error: enumeration, Monte Carlo, worst case, bounds;  core, codes
                latency of fixed and nested codes
``models``      problems, data, straggler (delay) models, optimisers           core
``backends``    hosts that run workers: simulated, local processes, Ray        core, models
``engine``      wait policies, schemes, the training loop, rounds, history,    everything
                checkpoints, adaptation                                        above
``protocols``   round protocols (the nested codes' protocol), master and       everything
                worker side                                                    above
``app``         config, compare, report, the command line                      everything
``decompiler``  JAX jaxpr -> Python source: an island                          jax only
==============  =============================================================  ==========

The modules at the top (``gradcode.decoders``, ``gradcode.training``, ``gradcode.problems``,
...) are thin facades that keep the public import paths; nothing inside the layers imports
them.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import analysis, codes, decoders, designs
from ._version import __version__
from .codes.catalogue import decode
from .core.code import Code
from .core.decoders import Decoding
from .core.errors import NotDecodableError

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
