"""Public path of :mod:`gradcode.models.optimizers`, where it is implemented and documented."""

from typing import Any

from .models import optimizers as _impl
from .models.optimizers import *  # noqa: F401,F403
from .models.optimizers import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
