"""Numerical tolerances shared by the decoders and the :class:`~gradcode.core.code.Code` checks."""

from __future__ import annotations

__all__ = ["EXACT_TOL"]

EXACT_TOL = 1e-9
"""Exact decoding: the squared error ||alpha - 1||^2 must be below ``EXACT_TOL * max(k, 1)``."""
