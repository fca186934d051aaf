"""Deterministic, readable, clash-free Python identifiers for jaxpr values.

JAX ``Var`` objects carry no stable printable name, so the decompiler keeps
its own: each value gets a short base (``mul``, ``dot``, ``x``) plus a
counter, skipping Python keywords, builtins and the module's own imports.
"""

from __future__ import annotations

import builtins
import keyword
import re

#: Names the generated module binds at top level.
IMPORT_NAMES = frozenset({"jax", "jnp", "lax", "np", "base64", "_array", "prims", "importlib"})

_RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | IMPORT_NAMES
)

#: Shorter bases for long primitive names.
_SHORT = {
    "dot_general": "dot",
    "broadcast_in_dim": "bcast",
    "convert_element_type": "cast",
    "reduce_sum": "total",
    "reduce_max": "rmax",
    "reduce_min": "rmin",
    "reduce_prod": "rprod",
    "integer_pow": "ipow",
    "select_n": "sel",
    "dynamic_slice": "dslice",
    "dynamic_update_slice": "dupdate",
    "conv_general_dilated": "conv",
    "custom_jvp_call": "cjvp",
    "custom_vjp_call": "cvjp",
    "stop_gradient": "nograd",
    "concatenate": "concat",
    "transpose": "transp",
    "bitcast_convert_type": "bitcast",
    "random_bits": "bits",
    "random_split": "keys",
    "random_wrap": "key",
    "random_unwrap": "keydata",
    "random_seed": "key",
    "random_fold_in": "key",
}


def sanitize(text: str) -> str:
    """Turn arbitrary text into a lowercase identifier fragment.

    Args:
        text: any string (a primitive name, a pytree key path, ...).

    Returns:
        A non-empty string of ``[a-z0-9_]`` not starting with a digit.

    Example:
        >>> sanitize("scatter-add")
        'scatter_add'
    """
    out = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_")
    out = re.sub(r"_+", "_", out)
    if not out:
        out = "v"
    if out[0].isdigit():
        out = "v" + out
    return out


def base_for_primitive(name: str) -> str:
    """Return the readable variable base used for results of primitive ``name``.

    Example:
        >>> base_for_primitive("dot_general")
        'dot'
    """
    return _SHORT.get(name, sanitize(name))


class NameAllocator:
    """Hands out unique identifiers, deterministic for a given call order.

    Args:
        reserved: extra names never to hand out (function name, ...).

    Example:
        >>> names = NameAllocator()
        >>> names.fresh("mul"), names.fresh("mul"), names.exact("x")
        ('mul0', 'mul1', 'x')
    """

    def __init__(self, reserved: frozenset[str] | set[str] = frozenset()) -> None:
        self._taken: set[str] = set(_RESERVED) | set(reserved)
        self._counters: dict[str, int] = {}

    def taken(self, name: str) -> bool:
        """Return whether ``name`` is already used or reserved."""
        return name in self._taken

    def fresh(self, base: str) -> str:
        """Return ``base`` followed by the smallest free counter value."""
        base = sanitize(base)
        n = self._counters.get(base, 0)
        while f"{base}{n}" in self._taken:
            n += 1
        self._counters[base] = n + 1
        name = f"{base}{n}"
        self._taken.add(name)
        return name

    def exact(self, name: str) -> str:
        """Return ``name`` itself when free (a parameter name), else a fresh variant."""
        clean = sanitize(name) if not name.isidentifier() else name
        if clean in self._taken:
            return self.fresh(clean + "_")
        self._taken.add(clean)
        return clean
