"""Public path of :mod:`gradcode.analysis.latency`, where it is implemented and documented."""

from typing import Any

from .analysis import latency as _impl
from .analysis.latency import *  # noqa: F401,F403
from .analysis.latency import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
