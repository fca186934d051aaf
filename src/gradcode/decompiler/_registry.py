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


def lookup(name: str) -> Emitter:
    """Return the emitter for primitive ``name``.

    A primitive without a registered emitter that ``jax.extend.core.primitives``
    exports is emitted as ``prims.<name>_p.bind(...)`` (the same equation).

    Raises:
        NotImplementedError: naming the primitive when none is registered.
    """
    from . import (  # noqa: F401  (fill the registry)
        _emit_basic,
        _emit_bind,
        _emit_control,
        _emit_linalg,
        _emit_misc,
    )

    try:
        return REGISTRY[name]
    except KeyError:
        pass
    if _emit_bind.primitive_attr(name) is not None:
        # No public function, but the primitive is exported by jax.extend: bind it.
        REGISTRY[name] = _emit_bind.bind_emitter(name)
        return REGISTRY[name]
    raise NotImplementedError(
        f"gradcode.decompiler: primitive {name!r} is not supported "
        f"(no emitter registered for it, and jax.extend.core.primitives does not export it)"
    )
