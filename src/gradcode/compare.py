"""Public path of :mod:`gradcode.app.compare`, where it is implemented and documented."""

from typing import Any

from .app import compare as _impl
from .app.compare import *  # noqa: F401,F403
from .app.compare import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
