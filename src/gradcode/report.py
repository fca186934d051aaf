"""Public path of :mod:`gradcode.app.report`, where it is implemented and documented."""

from typing import Any

from .app import report as _impl
from .app.report import *  # noqa: F401,F403
from .app.report import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
