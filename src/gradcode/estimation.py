"""Public path of :mod:`gradcode.engine.estimation`, where it is implemented and documented."""

from typing import Any

from .engine import estimation as _impl
from .engine.estimation import *  # noqa: F401,F403
from .engine.estimation import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
