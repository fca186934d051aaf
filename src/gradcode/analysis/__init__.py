"""Analysis: decoding error (exact enumeration, Monte Carlo, worst case, closed forms and
bounds) and the latency of fixed and nested codes.

Everything here is importable as ``gradcode.analysis.<name>``; the latency functions live
in :mod:`gradcode.analysis.latency` (public path ``gradcode.latency``) and load on first
use, because they pull in ``scipy.stats`` and ``scipy.integrate``.

Example:
    >>> import gradcode as gc
    >>> code = gc.codes.fractional_repetition(n=6, s=1)
    >>> gc.analysis.worst_case(code, s=2).error
    2.0
"""

from __future__ import annotations

import importlib
from typing import Any

from .decoding_error import *  # noqa: F401,F403
from .decoding_error import __all__ as _ERROR_NAMES

_LATENCY_NAMES = ("TaskTimes", "LatencyEstimate", "LatencySimulation", "fixed_latency",
                  "nested_latency", "latency_tail", "per_worker_fixed_latency",
                  "simulate_latency")

__all__ = [*_ERROR_NAMES, *_LATENCY_NAMES]


def __getattr__(name: str) -> Any:
    if name in _LATENCY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.latency"), name)
    raise AttributeError(f"module 'gradcode.analysis' has no attribute {name!r}")
