"""Exact Python source for scalar literals, dtypes and constant arrays.

Every value is emitted so that re-evaluating the text gives back the very
same bits: floats use their shortest ``repr`` only when it round-trips
through the target dtype, otherwise ``float.hex``; arrays larger than a few
elements travel as base64 of their raw bytes plus dtype and shape.

Reference: Pochelu, "JaxDecompiler: Redefining Gradient-Informed Software
Design", arXiv 2403.10571, 2024.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

#: Largest number of elements written as a readable nested list.
SMALL_ARRAY_LIMIT = 16

_NUMPY_NATIVE = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}


def dtype_source(dtype: Any) -> str:
    """Return source text naming ``dtype``, e.g. ``jnp.float32``.

    Args:
        dtype: anything ``numpy.dtype`` (with ml_dtypes) understands.

    Returns:
        ``"jnp.<name>"``; ``bool`` becomes ``jnp.bool_``.

    Example:
        >>> dtype_source(np.float32)
        'jnp.float32'
    """
    if is_float0(dtype):
        return "jax.dtypes.float0"
    name = np.dtype(dtype).name
    if name == "bool":
        return "jnp.bool_"
    return f"jnp.{name}"


def _float_text(value: float, dtype: np.dtype) -> str:
    """Shortest text of a float that converts back to the same ``dtype`` bits."""
    if math.isnan(value):
        return "float('nan')"
    if math.isinf(value):
        return "float('inf')" if value > 0 else "float('-inf')"
    target = np.asarray(value, dtype=dtype)
    short = repr(float(target))
    for candidate in (str(target[()]), short):
        try:
            back = np.asarray(float(candidate), dtype=dtype)
        except (ValueError, OverflowError):
            continue
        if back.tobytes() == target.tobytes():
            text = candidate
            if not any(c in text for c in ".eEinf"):
                text += ".0"
            return text
    return f"float.fromhex({float(target).hex()!r})"


def is_extended_float(dtype: Any) -> bool:
    """Whether ``dtype`` is an ml_dtypes float (bfloat16, float8_*, float4_*, ...)."""
    dt = np.dtype(dtype)
    return dt.kind == "V" and dt.name.startswith(("bfloat", "float"))


def is_float0(dtype: Any) -> bool:
    """Whether ``dtype`` is JAX's ``float0`` (the tangent type of integers)."""
    dt = np.dtype(dtype)
    return dt.kind == "V" and dt.names is not None and "float0" in dt.names


def python_scalar_text(value: Any, dtype: Any) -> str:
    """Return a plain Python literal for a scalar of kind bool/int/float/complex.

    Args:
        value: the scalar (numpy or Python).
        dtype: its dtype; floats are made exact for this dtype.

    Returns:
        Source text such as ``2.0``, ``-3``, ``True`` or ``complex(1.0, 2.0)``.

    Raises:
        TypeError: if the dtype is not numeric or boolean.

    Example:
        >>> python_scalar_text(np.float32(0.1), np.float32)
        '0.1'
    """
    dt = np.dtype(dtype)
    if is_extended_float(dt):
        return _float_text(float(value), dt)
    if dt.kind == "b":
        return "True" if bool(value) else "False"
    if dt.kind in "iu":
        return repr(int(value))
    if dt.kind == "f":
        return _float_text(float(value), dt)
    if dt.kind == "c":
        part = np.dtype(f"float{dt.itemsize * 4}")
        c = complex(value)
        return f"complex({_float_text(c.real, part)}, {_float_text(c.imag, part)})"
    raise TypeError(f"python_scalar_text: dtype must be numeric or bool, got {dt!r}")


def scalar_source(value: Any, dtype: Any, weak_type: bool) -> str:
    """Return source text for a scalar literal that keeps dtype and weak type.

    Weakly typed scalars become plain Python literals (``2.0``) so JAX keeps
    them weak; strongly typed ones are wrapped (``np.float32(2.0)``).

    Args:
        value: the scalar value.
        dtype: its dtype.
        weak_type: whether JAX treats it as weakly typed.

    Returns:
        Source text.

    Example:
        >>> scalar_source(1, np.uint32, False)
        'np.uint32(1)'
    """
    dt = np.dtype(dtype)
    if is_float0(dt):
        return "np.zeros((), dtype=jax.dtypes.float0)"
    text = python_scalar_text(value, dt)
    if weak_type and dt.kind in "biufc":
        return text
    if dt.name in _NUMPY_NATIVE:
        return f"np.{'bool_' if dt.name == 'bool' else dt.name}({text})"
    return f"np.asarray({text}, dtype=jnp.{dt.name})[()]"


def array_source(value: Any, helper: str = "_array") -> str:
    """Return exact source text rebuilding a numpy array.

    Small arrays become ``np.array([...], dtype=...)``; larger ones become
    ``<helper>("<base64>", "<dtype>", <shape>)`` decoded from raw bytes.

    Args:
        value: array-like constant (numpy or JAX array).
        helper: name of the decoding helper defined by the generated module.

    Returns:
        Source text of an expression evaluating to a numpy array.

    Raises:
        TypeError: for object or structured dtypes.

    Example:
        >>> array_source(np.arange(3, dtype=np.int32))
        'np.array([0, 1, 2], dtype=np.int32)'
    """
    arr = np.asarray(value)
    dt = arr.dtype
    if is_float0(dt):
        return f"np.zeros({tuple(arr.shape)!r}, dtype=jax.dtypes.float0)"
    if dt.kind not in "biufc" and not is_extended_float(dt):
        raise TypeError(f"array_source: value dtype must be numeric or bool, got {dt!r}")
    if arr.size <= SMALL_ARRAY_LIMIT and dt.name in _NUMPY_NATIVE:
        flat = [python_scalar_text(v, dt) for v in arr.reshape(-1)]
        dname = "np.bool_" if dt.name == "bool" else f"np.{dt.name}"
        body = f"np.array([{', '.join(flat)}], dtype={dname})"
        if arr.ndim != 1:
            body += f".reshape({tuple(arr.shape)!r})"
        return body
    data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")
    return f"{helper}({data!r}, {dt.name!r}, {tuple(arr.shape)!r})"


ARRAY_HELPER_SOURCE = '''\
def _array(data, dtype, shape):
    """Decode an exact constant from base64 raw bytes."""
    return np.frombuffer(base64.b64decode(data), dtype=jnp.dtype(dtype)).reshape(shape)
'''
