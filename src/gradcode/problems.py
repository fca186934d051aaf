"""Public path of :mod:`gradcode.models.problems`, where it is implemented and documented."""

from typing import Any

from .models import problems as _impl
from .models.problems import *  # noqa: F401,F403
from .models.problems import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
