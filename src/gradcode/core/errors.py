"""Exceptions raised by gradcode for domain failures (not for bad arguments)."""

from __future__ import annotations

__all__ = ["NotDecodableError"]


class NotDecodableError(ArithmeticError):
    """The responders do not allow the requested decoding (e.g. exact decoding with
    more stragglers than the code tolerates)."""
