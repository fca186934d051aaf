"""Every emitter, registered, and :func:`lookup`: the emitter of a primitive name.

Importing this module imports every ``_emit_*`` module, whose ``@register`` decorators
fill :data:`gradcode.decompiler._registry.REGISTRY`; :mod:`._registry` itself imports no
emitter (no import cycle).
"""

from __future__ import annotations

from . import _emit_basic, _emit_bind, _emit_control, _emit_linalg, _emit_misc  # noqa: F401
from ._registry import REGISTRY, Emitter


def lookup(name: str) -> Emitter:
    """Return the emitter for primitive ``name``.

    A primitive without a registered emitter that ``jax.extend.core.primitives``
    exports is emitted as ``prims.<name>_p.bind(...)`` (the same equation).

    Raises:
        NotImplementedError: naming the primitive when none is registered.
    """
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
