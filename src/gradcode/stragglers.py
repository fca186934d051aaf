"""Public path of :mod:`gradcode.models.stragglers`, where it is implemented and documented."""

from typing import Any

from .models import stragglers as _impl
from .models.stragglers import *  # noqa: F401,F403
from .models.stragglers import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
