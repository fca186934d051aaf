"""Public path of the command line, :mod:`gradcode.app.cli` (``gradcode`` runs ``main``;
``gradcode.cli.app`` is the typer application, built on first access)."""

from typing import Any

from .app import cli as _cli
from .app.cli import __all__, main  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_cli, name)
