"""Public path of :mod:`gradcode.engine.wait`, where it is implemented and documented."""

from typing import Any

from .engine import wait as _impl
from .engine.wait import *  # noqa: F401,F403
from .engine.wait import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
