"""The one registry mapping primitive names to emitter functions.

An emitter is a pure function ``(EqnInfo) -> Expr``: it reads the operand
expressions, parameters and avals and returns the source expression that
recomputes the equation through public ``jax`` / ``jax.numpy`` / ``jax.lax``
calls, passing only parameters those public functions accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._ir import Expr

Emitter = Callable[["EqnInfo"], Expr]

#: Primitive name -> emitter.
REGISTRY: dict[str, Emitter] = {}


@dataclass
class EqnInfo:
    """Everything an emitter may look at for one equation.

    Attributes:
        name: primitive name.
        args: one expression per operand.
        params: the equation's parameters.
        in_avals: operand abstract values.
        out_avals: result abstract values.
        is_array: per operand, whether its expression surely evaluates to a
            JAX array (so Python operators dispatch to ``jax.numpy``).
        ctx: the decompiler context, for higher-order primitives that emit
            nested functions (``None`` for first-order ones in tests).
    """

    name: str
    args: list[Expr]
    params: dict[str, Any]
    in_avals: list[Any] = field(default_factory=list)
    out_avals: list[Any] = field(default_factory=list)
    is_array: list[bool] = field(default_factory=list)
    ctx: Any = None


def register(*names: str) -> Callable[[Emitter], Emitter]:
    """Decorator registering an emitter under one or more primitive names.

    Raises:
        ValueError: if a name is already registered.
    """

    def deco(fn: Emitter) -> Emitter:
        for n in names:
            if n in REGISTRY:
                raise ValueError(f"register: primitive name {n!r} is already registered")
            REGISTRY[n] = fn
        return fn

    return deco
