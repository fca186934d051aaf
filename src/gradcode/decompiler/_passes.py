"""Passes over jaxprs (dead-code removal, cond patterns, primitive counts) and
over emitted statements (folding single-use temporaries).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._ir import Assign, FunctionDef, Line, Sym, walk_refs

#: Longest expression (characters) the folding pass inlines into its single use.
INLINE_LIMIT = 60


def _is_var(atom: Any) -> bool:
    return not hasattr(atom, "val") and type(atom).__name__ != "Literal"


def live_equations(jaxpr: Any) -> list[Any]:
    """Return the equations of ``jaxpr`` that contribute to its outputs.

    Equations with side effects are always kept.

    Args:
        jaxpr: an open ``Jaxpr``.

    Returns:
        The live equations, in program order.

    Example:
        >>> # live_equations(jax.make_jaxpr(f)(x).jaxpr)
    """
    live = {id(v) for v in jaxpr.outvars if _is_var(v)}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        used = any(id(v) in live for v in eqn.outvars) or bool(eqn.effects)
        if used:
            kept.append(eqn)
            live.update(id(v) for v in eqn.invars if _is_var(v))
    kept.reverse()
    return kept


def sub_jaxprs(params: dict[str, Any]) -> Iterable[Any]:
    """Yield the open jaxprs stored in an equation's parameters (recursively in tuples)."""
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if hasattr(item, "jaxpr") and hasattr(item, "consts"):
                yield item.jaxpr
            elif hasattr(item, "eqns") and hasattr(item, "outvars"):
                yield item


#: Primitives counted under another name when comparing programs.
COUNT_ALIASES = {"pjit": "jit", "add_any": "add", "remat2": "checkpoint",
                 "custom_vjp_call_jaxpr": "custom_vjp_call"}


def primitive_counts(jaxpr: Any, normalize: bool = True) -> Counter:
    """Count primitives in the live part of a (closed) jaxpr and all nested jaxprs.

    Args:
        jaxpr: a ``ClosedJaxpr`` or ``Jaxpr``.
        normalize: map historical/AD-only names onto their public equivalents
            (``pjit`` -> ``jit``, ``add_any`` -> ``add``).

    Returns:
        ``collections.Counter`` of primitive name -> occurrences.

    Example:
        >>> # primitive_counts(jax.make_jaxpr(jnp.sin)(1.0))  -> Counter({'sin': 1})
    """
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        jaxpr = jaxpr.jaxpr
    counts: Counter = Counter()
    for eqn in live_equations(jaxpr):
        name = eqn.primitive.name
        if (normalize and name == "convert_element_type"
                and np.dtype(eqn.invars[0].aval.dtype) == np.dtype(eqn.params["new_dtype"])):
            continue  # weak-type-only cast: no value change, not reproducible publicly
        counts[COUNT_ALIASES.get(name, name) if normalize else name] += 1
        for sub in sub_jaxprs(eqn.params):
            counts.update(primitive_counts(sub, normalize))
    return counts


def cond_index_patterns(eqns: list[Any], outvars: list[Any]) -> tuple[dict[int, Any], set[int]]:
    """Find the ``lax.cond``/``lax.switch`` index preludes so they are not emitted twice.

    ``lax.cond(pred, ...)`` traces ``convert_element_type(pred, int32)`` then
    ``cond``; ``lax.switch(i, ...)`` traces ``convert_element_type`` (a no-op
    for int32) then ``clamp(0, i, n - 1)``. When such a prelude feeds only the
    ``cond``, the ``cond`` is re-emitted from the original predicate/index and
    the prelude dropped. ``lax.platform_dependent`` traces ``platform_index``
    then a ``cond`` with ``branches_platforms``; that pair becomes one
    ``("platform", None)`` entry.

    Args:
        eqns: live equations of one jaxpr.
        outvars: that jaxpr's outputs.

    Returns:
        ``(index_of, absorbed)``: ``id(cond eqn) -> ("cond"|"switch", atom)``
        and the ``id``s of absorbed prelude equations.
    """
    uses: Counter = Counter()
    for eqn in eqns:
        for v in eqn.invars:
            if _is_var(v):
                uses[id(v)] += 1
            for sub in sub_jaxprs(eqn.params):
                pass
    for v in outvars:
        if _is_var(v):
            uses[id(v)] += 1
    producer = {id(v): eqn for eqn in eqns for v in eqn.outvars}
    platform_users: Counter = Counter(
        id(eqn.invars[0]) for eqn in eqns
        if eqn.primitive.name == "cond" and eqn.params.get("branches_platforms") is not None
        and _is_var(eqn.invars[0]))
    index_of: dict[int, Any] = {}
    absorbed: set[int] = set()
    for eqn in eqns:
        if eqn.primitive.name != "cond" or not _is_var(eqn.invars[0]):
            continue
        idx = eqn.invars[0]
        nbranch = len(eqn.params["branches"])
        prod = producer.get(id(idx))
        if prod is None:
            continue
        pname = prod.primitive.name
        if pname == "platform_index":
            # May feed several conds (forward and backward of a gradient).
            if platform_users[id(idx)] == uses[id(idx)]:
                index_of[id(eqn)] = ("platform", None)
                absorbed.add(id(prod))
            continue
        if uses[id(idx)] != 1:
            continue
        if (pname == "convert_element_type" and nbranch == 2
                and np.dtype(prod.invars[0].aval.dtype) == np.bool_
                and np.dtype(idx.aval.dtype) == np.int32):
            index_of[id(eqn)] = ("cond", prod.invars[0])
            absorbed.add(id(prod))
        elif pname == "clamp":
            lo, x, hi = prod.invars
            if (not _is_var(lo) and not _is_var(hi) and int(lo.val) == 0
                    and int(hi.val) == nbranch - 1):
                index_of[id(eqn)] = ("switch", x)
                absorbed.add(id(prod))
    return index_of, absorbed


def index_normalization_patterns(eqns: list[Any], outvars: list[Any]
                                 ) -> tuple[dict[int, dict[int, Any]], set[int]]:
    """Find ``select_n(lt(i, 0), i, add(i, n))`` index wrapping before dynamic slices.

    ``lax.dynamic_slice`` and ``lax.dynamic_update_slice`` wrap negative
    indices themselves; re-emitting the traced wrapping too would wrap twice.
    The wrapping is absorbed and the consumer is given the raw index.

    Returns:
        ``(overrides, absorbed)``: ``id(eqn) -> {operand position: raw atom}``
        and ``id``s of absorbed equations.
    """
    uses: Counter = Counter()
    for eqn in eqns:
        for v in eqn.invars:
            if _is_var(v):
                uses[id(v)] += 1
    for v in outvars:
        if _is_var(v):
            uses[id(v)] += 1
    producer = {id(v): eqn for eqn in eqns for v in eqn.outvars}
    overrides: dict[int, dict[int, Any]] = {}
    absorbed: set[int] = set()
    for eqn in eqns:
        name = eqn.primitive.name
        if name == "dynamic_slice":
            first = 1
        elif name == "dynamic_update_slice":
            first = 2
        else:
            continue
        for pos in range(first, len(eqn.invars)):
            v = eqn.invars[pos]
            sel = producer.get(id(v)) if _is_var(v) else None
            if sel is None or sel.primitive.name != "select_n" or uses[id(v)] != 1:
                continue
            pred, keep, wrapped = sel.invars
            lt = producer.get(id(pred)) if _is_var(pred) else None
            add = producer.get(id(wrapped)) if _is_var(wrapped) else None
            if (lt is None or add is None or lt.primitive.name != "lt"
                    or add.primitive.name != "add" or uses[id(pred)] != 1
                    or uses[id(wrapped)] != 1 or lt.invars[0] is not keep
                    or add.invars[0] is not keep or _is_var(lt.invars[1])
                    or _is_var(add.invars[1]) or int(np.asarray(lt.invars[1].val)) != 0):
                continue
            overrides.setdefault(id(eqn), {})[pos] = keep
            absorbed.update({id(sel), id(lt), id(add)})
    return overrides, absorbed


# ------------------------------------------------------------------ folding
def _assign_syms(target: Any) -> list[Sym]:
    if isinstance(target, Sym):
        return [target]
    if isinstance(target, list):
        return [s for t in target for s in _assign_syms(t)]
    return []


def fold_temporaries(body: list[Any], limit: int = INLINE_LIMIT) -> list[Any]:
    """Inline single-use temporaries into their consumer; return the new body.

    A temporary is folded when it is defined by a single-target assignment,
    read exactly once in this same body (not from a nested function, which
    would move work into a loop or branch), and its expression renders in at
    most ``limit`` characters. Nested function bodies are folded first.

    Args:
        body: statements of one function.
        limit: maximum rendered expression length to inline.

    Returns:
        The body without the folded assignments.
    """
    for stmt in body:
        if isinstance(stmt, FunctionDef):
            stmt.body = fold_temporaries(stmt.body, limit)
    direct: Counter = Counter()
    nested: Counter = Counter()
    for stmt in body:
        counter = nested if isinstance(stmt, FunctionDef) else direct
        for r in walk_refs(stmt):
            counter[id(r.sym)] += 1
    out = []
    for stmt in body:
        if (isinstance(stmt, Assign) and stmt.inlinable and isinstance(stmt.target, Sym)
                and direct[id(stmt.target)] == 1 and nested[id(stmt.target)] == 0
                and len(stmt.expr.render()) <= limit):
            stmt.target.inline = stmt.expr
            continue
        out.append(stmt)
    return out


__all__ = [
    "Line",
    "cond_index_patterns",
    "fold_temporaries",
    "live_equations",
    "primitive_counts",
]
