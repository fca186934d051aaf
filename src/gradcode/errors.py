"""Public path of :mod:`gradcode.core.errors`, where it is implemented and documented."""

from typing import Any

from .core import errors as _impl
from .core.errors import *  # noqa: F401,F403
from .core.errors import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
