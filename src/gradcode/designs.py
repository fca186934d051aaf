"""Public path of :mod:`gradcode.codes.designs`, where it is implemented and documented."""

from typing import Any

from .codes import designs as _impl
from .codes.designs import *  # noqa: F401,F403
from .codes.designs import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
