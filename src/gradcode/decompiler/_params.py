"""Source text for primitive parameters (shapes, dtypes, enums, dimension numbers)."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from ._literals import dtype_source


def param_source(value: Any) -> str:
    """Return Python source that evaluates to ``value`` in the generated module.

    Handles None, bool, int, float, str, tuples/lists, numpy dtypes and scalar
    types, ``lax`` enums (``Precision``, ``GatherScatterMode``,
    ``RoundingMethod``) and ``lax`` dimension-number named tuples.

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
    if isinstance(value, enum.Enum):
        for cls_name in ("Precision", "GatherScatterMode", "RoundingMethod"):
            cls = getattr(lax, cls_name, None)
            if cls is not None and isinstance(value, cls):
                return f"lax.{cls_name}.{value.name}"
        raise NotImplementedError(f"param_source: no source form for enum value {value!r}")
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
