"""``"package.module:name"`` references in a config: checked, imported and looked up,
with one precise error per mistake.

A reference names a module (dotted, importable) and an attribute path inside it
(``"mypkg.models:make_cnn"``, ``"torch.nn:CrossEntropyLoss"``). Modules are searched in
the config file's folder first (so a TOML file next to its script works from any
working directory), then on the usual ``sys.path``. The folder stays on ``sys.path``
afterwards: worker processes started later receive the master's ``sys.path`` and can
then unpickle classes defined in that module.

Example:
    >>> from gradcode.app.references import resolve_reference
    >>> resolve_reference("problem.loss", "math:sqrt")(9.0)
    3.0
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from typing import Any

__all__ = ["check_arguments", "parse_reference", "resolve_reference"]

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_REFERENCE = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


def parse_reference(where: str, text: Any) -> tuple[str, str]:
    """Split ``"module:attr"`` into (module, attr); both must be dotted identifiers.

    Raises:
        ValueError: ``text`` is not a string of that form.
    """
    if not isinstance(text, str) or _REFERENCE.match(text.strip()) is None:
        raise ValueError(f"{where}: expected 'module:callable' (e.g. "
                              f"'mypkg.models:make_model'), got {text!r}")
    module, attr = text.strip().split(":")
    return module, attr


def _search(folder: str | None) -> None:
    """Put ``folder`` first on ``sys.path`` (once) so its modules can be imported."""
    if folder is None:
        return
    folder = os.path.abspath(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def resolve_reference(where: str, text: Any, folder: str | None = None, *,
                      callable_: bool = True) -> Any:
    """Import ``"module:attr"`` (searching ``folder`` first) and return the attribute.

    Args:
        where: the config key, for the messages (``"problem.model"``).
        text: the reference.
        folder: the config file's folder (None: only ``sys.path``).
        callable_: the attribute must be callable.

    Raises:
        ValueError: malformed, the module cannot be imported (naming the module and
            the import error), the attribute is missing, or it is not callable.
    """
    module_name, attr = parse_reference(where, text)
    _search(folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure while importing user code
        place = f"the config's folder {os.path.abspath(folder)} and " if folder else ""
        raise ValueError(f"{where}: cannot import module {module_name!r} (from "
                              f"{text!r}; searched {place}sys.path): "
                              f"{type(exc).__name__}: {exc}") from None
    obj: Any = module
    for i, name in enumerate(attr.split(".")):
        if not hasattr(obj, name):
            owner = ".".join([module_name, *attr.split(".")[:i]])
            raise ValueError(f"{where}: {owner!r} has no attribute {name!r} (from "
                                  f"{text!r})")
        obj = getattr(obj, name)
    if callable_ and not callable(obj):
        raise ValueError(f"{where}: {text!r} is not callable (it is a "
                              f"{type(obj).__name__})")
    return obj


def check_arguments(where: str, fn: Any, text: str, kwargs: dict[str, Any]) -> None:
    """``fn(**kwargs)`` would bind: every key is a parameter and the required ones are
    given (a function whose signature cannot be read is not checked).

    Raises:
        ValueError: naming ``where``, the function and the binding problem.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}={kwargs!r} does not fit {text}{sig}: {exc}") from None
