"""Public path of :mod:`gradcode.models.data`, where it is implemented and documented."""

from typing import Any

from .models import data as _impl
from .models.data import *  # noqa: F401,F403
from .models.data import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
