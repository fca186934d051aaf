"""Source text for primitive parameters (shapes, dtypes, enums, dimension numbers)."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from ._literals import dtype_source

#: Public enum classes a parameter may hold: (source prefix, module path, attribute).
_ENUMS = (
    ("lax.Precision", "jax.lax", "Precision"),
    ("lax.GatherScatterMode", "jax.lax", "GatherScatterMode"),
    ("lax.RoundingMethod", "jax.lax", "RoundingMethod"),
    ("lax.FftType", "jax.lax", "FftType"),
    ("lax.RandomAlgorithm", "jax.lax", "RandomAlgorithm"),
    ("lax.AccuracyMode", "jax.lax", "AccuracyMode"),
    ("lax.linalg.EighImplementation", "jax.lax.linalg", "EighImplementation"),
    ("lax.linalg.EigImplementation", "jax.lax.linalg", "EigImplementation"),
    ("lax.linalg.SvdAlgorithm", "jax.lax.linalg", "SvdAlgorithm"),
    ("jax.memory.Space", "jax.memory", "Space"),
)


def _enum_classes() -> list[tuple[str, type]]:
    import jax

    out = []
    for prefix, module, attr in _ENUMS:
        obj: Any = jax
        for part in module.split(".")[1:]:
            obj = getattr(obj, part, None)
        cls = getattr(obj, attr, None)
        if isinstance(cls, type):
            out.append((prefix, cls))
    return out


def primitive_source(value: Any) -> str | None:
    """Source naming a JAX primitive object via ``jax.extend.core.primitives``, else None.

    The generated module imports that namespace as ``prims`` when it is used.

    Example:
        >>> from jax import lax
        >>> primitive_source(lax.ge_p)
        'prims.ge_p'
    """
    from jax.extend.core import primitives

    name = getattr(value, "name", None)
    if not isinstance(name, str) or not hasattr(value, "bind"):
        return None
    attr = name.replace("-", "_") + "_p"
    if getattr(primitives, attr, None) is value:
        return f"prims.{attr}"
    for cand in dir(primitives):
        if getattr(primitives, cand) is value:
            return f"prims.{cand}"
    return None


def param_source(value: Any) -> str:
    """Return Python source that evaluates to ``value`` in the generated module.

    Handles None, bool, int, float, str, tuples/lists, numpy dtypes and scalar
    types, public enums (``lax.Precision``, ``GatherScatterMode``,
    ``RoundingMethod``, ``FftType``, ``RandomAlgorithm``, ``AccuracyMode``, the ``lax.linalg``
    algorithm enums, ``jax.memory.Space``), primitives exported by
    ``jax.extend.core.primitives`` (as ``prims.<name>_p``) and ``lax``
    dimension-number named tuples.

    Args:
        value: a primitive parameter value.

    Returns:
        Source text.

    Raises:
        NotImplementedError: for a value with no known source form.

    Example:
        >>> param_source((1, (2, 3)))
        '(1, (2, 3))'
    """
    from jax import lax

    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, enum.Enum):  # before int: IntEnum values (FftType) are ints
        for prefix, cls in _enum_classes():
            if isinstance(value, cls) and getattr(cls, value.name, None) is value:
                return f"{prefix}.{value.name}"
        raise NotImplementedError(f"param_source: no source form for enum value {value!r}")
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return repr(v) if np.isfinite(v) else f"float({repr(v)!r})"
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return dtype_source(value)
    for cls_name in ("GatherDimensionNumbers", "ScatterDimensionNumbers", "ConvDimensionNumbers"):
        cls = getattr(lax, cls_name)
        if isinstance(value, cls):
            fields = ", ".join(f"{f}={param_source(getattr(value, f))}" for f in value._fields)
            return f"lax.{cls_name}({fields})"
    prim = primitive_source(value)
    if prim is not None:
        return prim
    if isinstance(value, tuple):
        inner = ", ".join(param_source(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(param_source(v) for v in value) + "]"
    if hasattr(value, "dtype") and hasattr(value, "name") and str(type(value).__name__).endswith("DType"):
        return dtype_source(value)
    try:
        return dtype_source(np.dtype(value))
    except TypeError:
        pass
    raise NotImplementedError(f"param_source: no source form for parameter value {value!r}")
