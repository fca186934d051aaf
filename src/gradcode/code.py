"""Public path of :mod:`gradcode.core.code`, where it is implemented and documented."""

from typing import Any

from .core import code as _impl
from .core.code import *  # noqa: F401,F403
from .core.code import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
