"""Emitters for the remaining public ``jax.lax`` primitives.

Covers ``unstack`` (what ``jax.jacrev``/``jax.vjp`` of several outputs
trace), ``empty``, the random-bit generators (``rng_bit_generator``,
``rng_uniform``, ``threefry2x32``), ``approx_top_k``, ``ragged_dot_general``,
the generic ``reduce``/``reduce_window`` with a traced reducer,
``regularized_incomplete_beta``, ``composite``, ``mulhi``, ``scaled_dot``,
``random_clone``, ``add_jaxvals`` and
``sharding_constraint`` (a value identity; the sharding itself is not
emitted).
"""

from __future__ import annotations

from typing import Any

from ._ir import Expr, call, seq
from ._literals import dtype_source
from ._params import param_source
from ._registry import EqnInfo, register


def _open(jaxpr: Any) -> tuple[Any, list[Any]]:
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        return jaxpr.jaxpr, list(jaxpr.consts)
    return jaxpr, []


def _ret_tuple(outs: list[Expr], ins: list[Expr]) -> Expr:
    return seq(outs, "()")


def _ret_single_or_tuple(outs: list[Expr], ins: list[Expr]) -> Expr:
    return outs[0] if len(outs) == 1 else seq(outs, "()")


@register("unstack")
def emit_unstack(e: EqnInfo) -> Expr:
    return call("lax.unstack", e.args[0], axis=param_source(e.params["axis"]))


@register("empty")
def emit_empty(e: EqnInfo) -> Expr:
    return call("lax.empty", param_source(tuple(e.params["shape"])),
                dtype_source(e.params["dtype"]))


@register("add_jaxvals")
def emit_add_jaxvals(e: EqnInfo) -> Expr:
    return call("lax.add", *e.args)


@register("regularized_incomplete_beta")
def emit_betainc(e: EqnInfo) -> Expr:
    return call("lax.betainc", *e.args)


@register("rng_bit_generator")
def emit_rng_bit_generator(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.rng_bit_generator", e.args[0], param_source(tuple(p["shape"])),
                dtype=dtype_source(p["dtype"]), algorithm=param_source(p["algorithm"]))


@register("rng_uniform")
def emit_rng_uniform(e: EqnInfo) -> Expr:
    return call("lax.rng_uniform", e.args[0], e.args[1], param_source(tuple(e.params["shape"])))


@register("threefry2x32")
def emit_threefry2x32(e: EqnInfo) -> Expr:
    """``jax.extend.random.threefry_2x32((k0, k1), (x0, x1))`` flattened back to two outputs."""
    k0, k1, x0, x1 = e.args
    inner = call("jax.extend.random.threefry_2x32", call("jnp.stack", seq([k0, k1], "()")),
                 call("jnp.stack", seq([x0, x1], "()")))
    return Expr(["tuple(", *inner.pieces, ")"])


@register("approx_top_k")
def emit_approx_top_k(e: EqnInfo) -> Expr:
    p = e.params
    fn = "lax.approx_max_k" if p["is_max_k"] else "lax.approx_min_k"
    return call(fn, e.args[0], param_source(p["k"]),
                reduction_dimension=param_source(p["reduction_dimension"]),
                recall_target=param_source(p["recall_target"]),
                reduction_input_size_override=param_source(p["reduction_input_size_override"]),
                aggregate_to_topk=param_source(bool(p["aggregate_to_topk"])))


@register("ragged_dot_general")
def emit_ragged_dot_general(e: EqnInfo) -> Expr:
    p = e.params
    dn = p["ragged_dot_dimension_numbers"]
    dn_src = ("lax.RaggedDotDimensionNumbers("
              f"dot_dimension_numbers={param_source(dn.dot_dimension_numbers)}, "
              f"lhs_ragged_dimensions={param_source(tuple(dn.lhs_ragged_dimensions))}, "
              f"rhs_group_dimensions={param_source(tuple(dn.rhs_group_dimensions))})")
    kwargs = {"ragged_dot_dimension_numbers": dn_src}
    if p.get("precision") is not None:
        kwargs["precision"] = param_source(p["precision"])
    if p.get("preferred_element_type") is not None:
        kwargs["preferred_element_type"] = dtype_source(p["preferred_element_type"])
    if p.get("group_offset") is not None:
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'ragged_dot_general' with group_offset is not "
            "supported")
    return call("lax.ragged_dot_general", *e.args, **kwargs)


def _reducer(e: EqnInfo, jaxpr: Any, n: int, consts_closure: list[Expr]) -> str:
    inner, inner_consts = _open(jaxpr)
    # With several operands lax.reduce/reduce_window call the reducer on two tuples.
    groups = [("tuple", n, "acc"), ("tuple", n, "val")] if n > 1 else [("flat", 2, "v")]
    return e.ctx.function(inner, inner_consts, "reducer", consts_closure, groups,
                          _ret_single_or_tuple)


@register("reduce")
def emit_reduce(e: EqnInfo) -> Expr:
    """``lax.reduce(operands, init_values, reducer, dimensions)``."""
    n = len(e.args) // 2
    ops, inits = e.args[:n], e.args[n:]
    fn = _reducer(e, e.params["jaxpr"], n, [])
    dims = param_source(tuple(e.params["dimensions"]))
    if n == 1:
        return seq([call("lax.reduce", ops[0], inits[0], fn, dims)], "()")
    return call("lax.reduce", seq(ops, "()"), seq(inits, "()"), fn, dims)


@register("reduce_window")
def emit_reduce_window(e: EqnInfo) -> Expr:
    """``lax.reduce_window(operand, init, reducer, dims, strides, padding, ...)``."""
    p = e.params
    n = (len(e.args)) // 2
    ops, inits = e.args[:n], e.args[n:]
    consts = [raw_const for raw_const in (e.ctx.const(c) for c in p.get("consts", ()))]
    fn = _reducer(e, p["jaxpr"], n, consts)
    rest = [param_source(tuple(p["window_dimensions"])), param_source(tuple(p["window_strides"])),
            param_source(tuple(tuple(x) for x in p["padding"])),
            param_source(tuple(p["base_dilation"])), param_source(tuple(p["window_dilation"]))]
    if n == 1:
        return seq([call("lax.reduce_window", ops[0], inits[0], fn, *rest)], "()")
    return call("lax.reduce_window", seq(ops, "()"), seq(inits, "()"), fn, *rest)


@register("composite")
def emit_composite(e: EqnInfo) -> Expr:
    """``lax.composite(decomposition, name=..., version=...)(*args)``."""
    p = e.params
    if p.get("attributes"):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'composite' with attributes is not supported")
    inner, consts = _open(p["jaxpr"])
    fn = e.ctx.function(inner, consts, "decomposition", [], [("flat", len(e.args), None)],
                        _ret_single_or_tuple)
    comp = call("lax.composite", fn, name=repr(p["name"]), version=param_source(p["version"]))
    expr = call(comp.render(), *e.args)
    return expr if len(e.out_avals) != 1 else seq([expr], "()")


@register("sharding_constraint")
def emit_sharding_constraint(e: EqnInfo) -> Expr:
    """The operand itself: on one device a sharding constraint does not change values."""
    return e.args[0]


@register("platform_index")
def emit_platform_index(e: EqnInfo) -> Expr:
    """The current platform's branch number, through ``lax.platform_dependent``.

    Only reached when the index leaves its function (e.g. as a residual of a
    gradient); a ``platform_index`` feeding a ``cond`` is absorbed into it.
    """
    kwargs: dict[str, str] = {}
    for i, platforms in enumerate(e.params["platforms"]):
        for plat in (("default",) if platforms is None else platforms):
            kwargs[plat] = f"lambda: np.int32({i})"
    return call("lax.platform_dependent", **kwargs)


@register("mulhi")
def emit_mulhi(e: EqnInfo) -> Expr:
    return call("lax.mulhi", *e.args)


@register("random_clone")
def emit_random_clone(e: EqnInfo) -> Expr:
    return call("jax.random.clone", e.args[0])


@register("scaled_dot")
def emit_scaled_dot(e: EqnInfo) -> Expr:
    """``lax.scaled_dot(lhs, rhs, lhs_scale=..., rhs_scale=..., ...)``."""
    p = e.params
    lhs, rhs, lhs_scale, rhs_scale = e.args
    (lc, rc), (lb, rb) = p["dimension_numbers"]
    kwargs = {"lhs_scale": lhs_scale, "rhs_scale": rhs_scale,
              "dimension_numbers": param_source(((tuple(lc), tuple(rc)),
                                                 (tuple(lb), tuple(rb))))}
    if p.get("preferred_element_type") is not None:
        kwargs["preferred_element_type"] = dtype_source(p["preferred_element_type"])
    return call("lax.scaled_dot", lhs, rhs, **kwargs)
