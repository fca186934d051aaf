"""Emitters for primitives with no public Python function, and for callbacks.

A few primitives that real programs emit have no ``jax``/``jax.lax`` function
of their own: the total-order comparisons ``lt_to``/``le_to``/``eq_to`` (from
``jnp.searchsorted``), the gradient of max pooling ``select_and_scatter_add``,
its forward-mode twin ``select_and_gather_add``, the uninitialised buffer
``empty2`` (gradient of a scan inside a cond), ``random_gamma``. They are
re-emitted as ``prims.<name>_p.bind(*operands, **params)``, where ``prims``
is the documented ``jax.extend.core.primitives`` namespace: the very same
equation, never an approximation. Any other primitive found there with
first-order parameters is emitted the same way (see :func:`bind_emitter`).

Callbacks into Python (``pure_callback``, ``io_callback``,
``debug_callback``) cannot be written as source: they raise a
``NotImplementedError`` naming the equation and what to do instead.
``jax.debug.print`` (primitive ``debug_print``) is re-emitted as itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ir import Expr, call
from ._params import param_source
from ._registry import EqnInfo, register


def _bind_param_source(value: Any) -> str:
    """Like :func:`param_source` but dtypes stay ``numpy.dtype`` objects (as bind expects)."""
    if isinstance(value, np.dtype):
        return f"jnp.dtype({param_source(value)})"
    return param_source(value)


def primitive_attr(name: str) -> str | None:
    """Attribute of ``jax.extend.core.primitives`` holding primitive ``name``, else None.

    Example:
        >>> primitive_attr("lt_to")
        'lt_to_p'
    """
    from jax.extend.core import primitives

    for attr in (name.replace("-", "_") + "_p", name + "_p"):
        prim = getattr(primitives, attr, None)
        if prim is not None and getattr(prim, "name", None) == name:
            return attr
    for attr in dir(primitives):
        if getattr(getattr(primitives, attr), "name", None) == name:
            return attr
    return None


def bind_emitter(name: str):
    """Emitter writing ``prims.<attr>.bind(*operands, **params)`` for primitive ``name``.

    Raises (when emitting):
        NotImplementedError: if a parameter has no source form (e.g. a nested jaxpr).
    """
    attr = primitive_attr(name)
    if attr is None:
        raise ValueError(f"bind_emitter: primitive {name!r} is not in jax.extend.core.primitives")

    def emit(e: EqnInfo) -> Expr:
        kwargs = {}
        for key, value in e.params.items():
            if key.startswith("_"):
                continue
            try:
                kwargs[key] = _bind_param_source(value)
            except NotImplementedError as exc:
                raise NotImplementedError(
                    f"gradcode.decompiler: primitive {name!r} is not supported: its parameter "
                    f"{key!r} has no source form ({exc})") from None
        return call(f"prims.{attr}.bind", *e.args, **kwargs)

    emit.__name__ = f"emit_bind_{attr}"
    return emit


#: Primitives reached from public APIs that have no public function of their own.
BIND_ONLY = ("lt_to", "le_to", "eq_to", "select_and_scatter_add", "select_and_gather_add",
             "select_and_scatter", "empty2", "random_gamma")

for _n in BIND_ONLY:
    if primitive_attr(_n) is not None:
        register(_n)(bind_emitter(_n))


_CALLBACK_HINTS = {
    "pure_callback": "jax.pure_callback",
    "io_callback": "jax.experimental.io_callback",
    "debug_callback": "jax.debug.callback",
}


def _callback(name: str):
    def emit(e: EqnInfo) -> Expr:
        fn = e.params.get("callback")
        target = getattr(fn, "callback_func", None) or getattr(fn, "__wrapped__", None) or fn
        label = getattr(target, "__qualname__", None) or repr(target)
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in e.in_avals)
        raise NotImplementedError(
            f"gradcode.decompiler: equation {name}(callback={label}; operands {shapes}) calls "
            f"back into Python ({_CALLBACK_HINTS[name]}); a Python callback has no JAX source "
            f"form. Decompile the function without it (call the callback outside the traced "
            f"function, or express it with jax.numpy/jax.lax), then add the callback by hand "
            f"to the generated source.")

    emit.__name__ = f"emit_{name}"
    return emit


for _n in _CALLBACK_HINTS:
    register(_n)(_callback(_n))


@register("debug_print")
def emit_debug_print(e: EqnInfo) -> Expr:
    """``jax.debug.print(fmt, *args, ordered=..., **kwargs)``."""
    import jax

    p = e.params
    if p.get("static_args"):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'debug_print' with static (non-array) format "
            "arguments is not supported; pass arrays to jax.debug.print")
    args, kwargs = jax.tree_util.tree_unflatten(p["in_tree"], list(e.args))
    if not all(isinstance(a, Expr) for a in [*args, *kwargs.values()]):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'debug_print' with pytree arguments is not "
            "supported; pass arrays to jax.debug.print")
    extra = {"ordered": param_source(bool(p.get("ordered", False)))}
    if p.get("partitioned"):
        extra["partitioned"] = "True"
    return call("jax.debug.print", repr(p["fmt"]), *args, **kwargs, **extra)
