"""Public path of :mod:`gradcode.app.config`, where it is implemented and documented."""

from typing import Any

from .app import config as _impl
from .app.config import *  # noqa: F401,F403
from .app.config import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
