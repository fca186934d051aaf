"""Public path of :mod:`gradcode.engine.history`, where it is implemented and documented."""

from typing import Any

from .engine import history as _impl
from .engine.history import *  # noqa: F401,F403
from .engine.history import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
