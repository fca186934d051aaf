"""Public path of :mod:`gradcode.engine.training` (the master loop, checkpoints) and the
nested codes' scheme from :mod:`gradcode.protocols.nested_scheme`."""

from typing import Any

from .engine import training as _impl
from .engine.training import *  # noqa: F401,F403
from .engine.training import __all__ as _ENGINE_NAMES
from .protocols.nested_scheme import nested  # noqa: F401

__all__ = [*_ENGINE_NAMES, "nested"]


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
