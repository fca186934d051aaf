"""Public path of the schemes: :mod:`gradcode.engine.schemes` (code + decoder + wait
policy) and the nested codes' scheme from :mod:`gradcode.protocols.nested_scheme`."""

from typing import Any

from .engine import schemes as _impl
from .engine.autopilot import auto  # noqa: F401
from .engine.schemes import *  # noqa: F401,F403
from .engine.schemes import __all__ as _ENGINE_NAMES
from .protocols.nested_scheme import nested  # noqa: F401

__all__ = [*_ENGINE_NAMES, "auto", "nested"]


def __getattr__(name: str) -> Any:
    return getattr(_impl, name)
