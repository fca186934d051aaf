"""Emitters for higher-order primitives: jit, cond, while, scan, remat, custom rules.

Nested jaxprs become nested named Python functions (``ctx.function``); the
values they close over are referenced by name, exactly as a person would
write a closure.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ._ir import Expr, FunctionDef, Line, call, raw, seq
from ._naming import sanitize
from ._params import param_source
from ._registry import EqnInfo, register


def _open(jaxpr: Any) -> tuple[Any, list[Any]]:
    """Split a closed or open jaxpr into (open jaxpr, const values)."""
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        return jaxpr.jaxpr, list(jaxpr.consts)
    return jaxpr, []


def _ret_tuple(outs: list[Expr], ins: list[Expr]) -> Expr:
    return seq(outs, "()")


def _bind_consts(ctx: Any, jaxpr: Any, consts: list[Any]) -> tuple[list[Any], list[Expr]]:
    """Split the const values of a traced rule into (constvar values, leading-invar closure).

    ``core.eval_jaxpr(jaxpr, consts, *args)`` binds ``consts`` to the first
    ``len(consts)`` of ``constvars + invars``: JAX releases that keep closed-over
    values as ``constvars`` fill those, newer ones (0.12) hoist them into leading
    ``invars``. The latter become closure expressions of the nested function.
    """
    consts = list(consts)
    n_cv = len(jaxpr.constvars)
    if n_cv > len(consts):
        raise RuntimeError(f"decompiler: jaxpr has {n_cv} constvars but {len(consts)} consts")
    return consts[:n_cv], [ctx.const(c) for c in consts[n_cv:]]


def scan_layout(params: dict[str, Any]) -> tuple[int, int]:
    """``(num_consts, num_carry)`` of a ``scan`` equation's operands.

    Older JAX stores them as ``num_consts``/``num_carry``; JAX 0.12 stores the
    operand grouping as a flat tree ``ft_in`` = (consts, carry, xs).
    """
    if "num_consts" in params and "num_carry" in params:
        return int(params["num_consts"]), int(params["num_carry"])
    ft_in = params.get("ft_in")
    if ft_in is None or not hasattr(ft_in, "unpack"):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'scan' without num_consts/num_carry or ft_in "
            f"parameters is not supported (got parameters {sorted(params)})")
    groups = ft_in.unpack()
    if len(groups) != 3:
        raise NotImplementedError(
            f"gradcode.decompiler: primitive 'scan' with ft_in of {len(groups)} groups "
            "(expected consts, carry, xs) is not supported")
    return len(groups[0]), len(groups[1])


def _custom_call_parts(e: EqnInfo, jaxpr: Any) -> tuple[list, list, Any, list, str]:
    """(consts, args, open jaxpr, its consts, name hint) of a custom JVP/VJP call."""
    ncon = e.params.get("num_consts", 0)
    inner, jconsts = _open(jaxpr)
    hint = e.params.get("name") or getattr(getattr(inner, "debug_info", None), "func_name",
                                           None) or "custom_fn"
    return e.args[:ncon], e.args[ncon:], inner, jconsts, hint


@register("jit", "pjit", "closed_call", "core_call")
def emit_jit(e: EqnInfo) -> Expr:
    """``jax.jit(inner)(*args)``; the inner function keeps the jit's name."""
    jaxpr, consts = _open(e.params.get("jaxpr", e.params.get("call_jaxpr")))
    hint = e.params.get("name", "inner")
    fn = e.ctx.function(jaxpr, consts, hint, [], [("flat", len(e.args), None)], _ret_tuple)
    if e.name in ("closed_call", "core_call"):
        return call(fn, *e.args)
    kwargs = {}
    if e.params.get("keep_unused"):
        kwargs["keep_unused"] = "True"
    return call(call("jax.jit", fn, **kwargs).render(), *e.args)


@register("call_hi_primitive")
def emit_call_hi_primitive(e: EqnInfo) -> Expr:
    """A high-level JAX primitive (JAX 0.12 ``HiPrim``, e.g. ``SearchSorted``) as its expansion.

    ``call_hi_primitive`` has no public function of its own; JAX lowers it by
    tracing ``_prim.expand`` into ordinary primitives. The same expansion is
    traced here for the operands' shapes and emitted as a nested function
    called in place (the equations XLA runs, so values are unchanged).
    """
    import jax

    prim = e.params["_prim"]
    expand = getattr(prim, "expand", None)
    in_tree, out_tree = getattr(prim, "in_tree", None), getattr(prim, "out_tree", None)
    hint = sanitize(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(prim).__name__)).lower()
    if expand is None or in_tree is None or out_tree is None or not all(
            hasattr(a, "shape") and hasattr(a, "dtype") for a in e.in_avals):
        raise NotImplementedError(
            f"gradcode.decompiler: primitive 'call_hi_primitive' ({type(prim).__name__}) "
            "without an array-typed expand() is not supported")

    def flat_expand(*flat):
        out = expand(*jax.tree_util.tree_unflatten(in_tree, list(flat)))
        return out_tree.flatten_up_to(out)

    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, "weak_type", False))
             for a in e.in_avals]
    closed = jax.make_jaxpr(flat_expand)(*specs)
    if _has_tracer(closed.consts):
        raise NotImplementedError(
            f"gradcode.decompiler: primitive 'call_hi_primitive' ({type(prim).__name__}) whose "
            "expansion closes over traced values is not supported")
    jaxpr, consts = _open(closed)
    fn = e.ctx.function(jaxpr, consts, hint, [], [("flat", len(e.args), None)], _ret_tuple)
    return call(fn, *e.args)


@register("cond")
def emit_cond(e: EqnInfo) -> Expr:
    """``lax.cond(pred, ...)`` or ``lax.switch(index, [...], ...)``.

    The walker recognises ``convert_element_type(bool -> int32)`` (what
    ``lax.cond`` emits) and ``clamp(0, i, n-1)`` (what ``lax.switch`` emits)
    and hands the original predicate/index in ``params['_index']`` so the
    re-traced program has the same primitives. A ``cond`` selected by
    ``platform_index`` (what ``lax.platform_dependent`` traces) is re-emitted
    as ``lax.platform_dependent(*ops, <platform>=branch, ..., default=branch)``.
    """
    kind, index = e.params.get("_index", ("raw", e.args[0]))
    ops = e.args[1:]
    names = []
    for i, br in enumerate(e.params["branches"]):
        jaxpr, consts = _open(br)
        names.append(e.ctx.function(jaxpr, consts, f"branch{i}_", [],
                                    [("flat", len(ops), None)], _ret_tuple))
    if kind == "platform" or e.params.get("branches_platforms") is not None:
        # The index of a platform-dependent cond is the current platform's branch
        # by construction (even when it arrives as a residual of a gradient):
        # platform_dependent recomputes it.
        kwargs: dict[str, str] = {}
        for fn, platforms in zip(names, e.params["branches_platforms"]):
            for plat in (("default",) if platforms is None else platforms):
                kwargs[plat] = fn
        return call("lax.platform_dependent", *ops, **kwargs)
    if kind == "cond" and len(names) == 2:
        return call("lax.cond", index, names[1], names[0], *ops)
    return call("lax.switch", index, seq(names), *ops)


@register("while")
def emit_while(e: EqnInfo) -> Expr:
    """``lax.while_loop(cond_fn, body_fn, (carry...))``."""
    p = e.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, init = e.args[:nc], e.args[nc:nc + nb], e.args[nc + nb:]
    n = len(init)
    cj, cc = _open(p["cond_jaxpr"])
    bj, bc = _open(p["body_jaxpr"])
    cond_fn = e.ctx.function(cj, cc, "cond_fn", cconsts, [("tuple", n, "carry")],
                             lambda outs, ins: outs[0])
    body_fn = e.ctx.function(bj, bc, "body_fn", bconsts, [("tuple", n, "carry")], _ret_tuple)
    pred_shape = tuple(cj.outvars[0].aval.shape)
    if pred_shape:
        cond_fn, body_fn = _batched_predicate_loop(e.ctx, cond_fn, body_fn, len(pred_shape))
    return call("lax.while_loop", cond_fn, body_fn, seq(init, "()"))


def _batched_predicate_loop(ctx: Any, cond_fn: str, body_fn: str, pred_ndim: int
                            ) -> tuple[str, str]:
    """Wrappers giving a batched-predicate ``while`` (from ``vmap``) its exact semantics.

    ``lax.while_loop`` needs a scalar predicate, but the ``while`` primitive
    produced by batching may carry one per batch element; XLA then loops while
    any element is true and updates only the carries whose predicate (on the
    previous carry) is true. The wrappers write exactly that.
    """
    dims = param_source(tuple(range(pred_ndim)))
    any_fn = ctx.names.fresh("any_cond_fn")
    ctx.add_def(FunctionDef(any_fn, ["carry"], [
        Line(raw(f"lax.reduce_or({cond_fn}(carry), {dims})"), "return ")]))
    sel_fn = ctx.names.fresh("masked_body_fn")
    ctx.add_def(FunctionDef(sel_fn, ["carry"], [
        Line(raw(f"{cond_fn}(carry)"), "pred = "),
        Line(raw(f"tuple(lax.select(lax.broadcast_in_dim(pred, jnp.shape(new), {dims}), new, "
                 f"old) for new, old in zip({body_fn}(carry), carry))"), "return "),
    ]))
    return any_fn, sel_fn


@register("scan")
def emit_scan(e: EqnInfo) -> Expr:
    """``lax.scan(body, (carry...), (xs...), length=..., reverse=...)``."""
    p = e.params
    ncon, ncar = scan_layout(p)
    consts, init, xs = e.args[:ncon], e.args[ncon:ncon + ncar], e.args[ncon + ncar:]
    jaxpr, jconsts = _open(p["jaxpr"])
    body = e.ctx.function(
        jaxpr, jconsts, "scan_body", consts,
        [("tuple", ncar, "carry"), ("tuple", len(xs), "x")],
        lambda outs, ins: Expr([*seq(outs[:ncar], "()").pieces, ", ",
                                *seq(outs[ncar:], "()").pieces]),
    )
    kwargs = {"length": param_source(int(p["length"]))}
    if p.get("reverse"):
        kwargs["reverse"] = "True"
    unroll = p.get("unroll", 1)
    if unroll not in (1, False):
        kwargs["unroll"] = param_source(unroll)
    return call("lax.scan", body, seq(init, "()"), seq(xs, "()"), **kwargs)


def _policy_source(policy: Any) -> str | None:
    if policy is None:
        return None
    import jax

    for name in dir(jax.checkpoint_policies):
        if getattr(jax.checkpoint_policies, name) is policy:
            return f"jax.checkpoint_policies.{name}"
    return None


@register("checkpoint", "remat2", "remat")
def emit_checkpoint(e: EqnInfo) -> Expr:
    """``jax.checkpoint(inner, prevent_cse=..., policy=...)(*args)``.

    A policy that is not one of the named ``jax.checkpoint_policies`` cannot
    be written as source; it is dropped (values are unchanged, only what is
    saved for the backward pass differs).
    """
    jaxpr, consts = _open(e.params["jaxpr"])
    fn = e.ctx.function(jaxpr, consts, "remat_fn", [], [("flat", len(e.args), None)], _ret_tuple)
    kwargs = {}
    if not e.params.get("prevent_cse", True):
        kwargs["prevent_cse"] = "False"
    pol = _policy_source(e.params.get("policy"))
    if pol is not None:
        kwargs["policy"] = pol
    return call(call("jax.checkpoint", fn, **kwargs).render(), *e.args)


def _zeros_like(x: Expr) -> Expr:
    return call("jnp.zeros_like", x)


@register("custom_jvp_call")
def emit_custom_jvp_call(e: EqnInfo) -> Expr:
    """Re-emit the primal under ``@jax.custom_jvp`` and keep its JVP rule.

    The rule is recovered by tracing the primitive's ``jvp_jaxpr_fun`` with all
    tangents non-zero. Inside a rule, nested custom functions are emitted as
    plain calls of their primal (keeps the output finite; values unchanged).
    """
    p = e.params
    consts, args, jaxpr, jconsts, hint = _custom_call_parts(e, p["call_jaxpr"])
    ctx = e.ctx
    keep_rule = ctx.rule_depth == 0
    rule = None
    if keep_rule:
        try:
            rule = p["jvp_jaxpr_fun"].call_wrapped(*([False] * len(args)))
        except Exception:  # noqa: BLE001 - rule unrecoverable: keep primal only
            rule = None
        if rule is not None and _has_tracer(rule[1]):
            rule = None  # the rule closes over traced values of the outer trace
    decorators = ["jax.custom_jvp"] if rule is not None else []
    fn = ctx.function(jaxpr, jconsts, hint, consts, [("flat", len(args), None)], _ret_tuple,
                      decorators=decorators)
    if rule is None:
        return call(fn, *args)
    jvp_jaxpr, jvp_consts, out_zeros = rule
    n_out = len(out_zeros)

    def build_ret(outs: list[Expr], ins: list[Expr]) -> Expr:
        primals_out = outs[:n_out]
        nz = iter(outs[n_out:])
        tangents = [_zeros_like(po) if z else next(nz) for po, z in zip(primals_out, out_zeros)]
        return Expr([*seq(primals_out, "()").pieces, ", ", *seq(tangents, "()").pieces])

    ctx.rule_depth += 1
    try:
        # The rule's jaxpr takes (primals, nonzero tangents) of the non-const
        # operands only; what it needs of the consts travels in jvp_consts.
        cvals, closure = _bind_consts(ctx, jvp_jaxpr, jvp_consts)
        jvp_fn = ctx.function(jvp_jaxpr, cvals, f"{fn}_jvp", closure,
                              [("tuple", len(args), "primals"), ("tuple", len(args), "tangents")],
                              build_ret)
    finally:
        ctx.rule_depth -= 1
    ctx.add_line(call(f"{fn}.defjvp", jvp_fn))
    return call(fn, *args)


def _has_tracer(values: Any) -> bool:
    import jax

    return any(isinstance(v, jax.core.Tracer) for v in values)


def _materialize(values: list[Any], avals: list[Any]) -> list[Any]:
    import jax.numpy as jnp

    out = []
    for v, a in zip(values, avals):
        if v is None or type(v).__name__ in ("Zero", "SymbolicZero"):
            out.append(jnp.zeros(a.shape, a.dtype))
        else:
            out.append(v)
    return out


def _vjp_rule(params: dict[str, Any], in_avals: list[Any]) -> Any:
    """Trace fwd and bwd of a ``custom_vjp_call`` into jaxprs; ``None`` when impossible."""
    import jax

    ncon = params.get("num_consts", 0)
    prim_avals = in_avals[ncon:]
    fwd_jaxpr, fwd_consts = params["fwd_jaxpr_thunk"].call_wrapped(*([True] * len(prim_avals)))
    _out_tree, res_tree, fwds = params["out_trees"]()
    n_res_out = res_tree.num_leaves - sum(f is not None for f in fwds)
    fwd_out_avals = [v.aval for v in fwd_jaxpr.outvars]
    res_avals = []
    it = iter(fwd_out_avals[:n_res_out])
    for f in fwds:  # a forwarded index counts all operands, consts first
        res_avals.append(in_avals[f] if f is not None else next(it))
    call_jaxpr = params["call_jaxpr"]
    ct_avals = [a.to_ct_aval() if hasattr(a, "to_ct_aval") else a for a in call_jaxpr.out_avals]
    bwd = params["bwd"]
    n_res = len(res_avals)

    def bwd_flat(*xs):
        res = list(xs[:n_res])
        cts = list(xs[n_res:])
        got = list(bwd.call_wrapped(*res, *cts))
        return _materialize(got, prim_avals)

    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in res_avals + ct_avals]
    bwd_closed = jax.make_jaxpr(bwd_flat)(*specs)
    return fwd_jaxpr, list(fwd_consts), n_res_out, list(fwds), bwd_closed


@register("custom_vjp_call", "custom_vjp_call_jaxpr")
def emit_custom_vjp_call(e: EqnInfo) -> Expr:
    """Re-emit the primal under ``@jax.custom_vjp`` with traced fwd/bwd rules.

    When the rule cannot be traced (e.g. a ``bwd`` with Python side effects),
    only the primal is emitted; values are unchanged.
    """
    p = e.params
    consts, args, jaxpr, jconsts, hint = _custom_call_parts(e, p.get("call_jaxpr",
                                                                     p.get("fun_jaxpr")))
    ctx = e.ctx
    rule = None
    if ctx.rule_depth == 0 and "fwd_jaxpr_thunk" in p and "bwd" in p:
        try:
            rule = _vjp_rule(p, e.in_avals)
        except Exception:  # noqa: BLE001 - rule unrecoverable: keep primal only
            rule = None
        if rule is not None and (_has_tracer(rule[1]) or _has_tracer(rule[4].consts)):
            rule = None  # the rule closes over traced values of the outer trace
    decorators = ["jax.custom_vjp"] if rule is not None else []
    fn = ctx.function(jaxpr, jconsts, hint, consts, [("flat", len(args), None)], _ret_tuple,
                      decorators=decorators)
    if rule is None:
        return call(fn, *args)
    fwd_jaxpr, fwd_consts, n_res_out, fwds, bwd_closed = rule
    n_out = len(fwd_jaxpr.outvars) - n_res_out

    def fwd_ret(outs: list[Expr], ins: list[Expr]) -> Expr:
        # A forwarded residual index counts the equation's operands (consts first).
        operands = [*consts, *ins]
        res_it = iter(outs[:n_res_out])
        res = [operands[f] if f is not None else next(res_it) for f in fwds]
        return Expr([*seq(outs[n_res_out:], "()").pieces, ", ", *seq(res, "()").pieces])

    ctx.rule_depth += 1
    try:
        # The fwd rule takes the primal (non-const) operands only, like the
        # decorated function; its own closed-over values travel in fwd_consts.
        cvals, closure = _bind_consts(ctx, fwd_jaxpr, fwd_consts)
        fwd_fn = ctx.function(fwd_jaxpr, cvals, f"{fn}_fwd", closure,
                              [("flat", len(args), None)], fwd_ret)
        bj, bc = _open(bwd_closed)
        bwd_fn = ctx.function(bj, bc, f"{fn}_bwd", [],
                              [("tuple", len(fwds), "res"), ("tuple", n_out, "cts")], _ret_tuple)
    finally:
        ctx.rule_depth -= 1
    ctx.add_line(call(f"{fn}.defvjp", fwd_fn, bwd_fn))
    return call(fn, *args)


__all__ = [
    "emit_call_hi_primitive",
    "emit_checkpoint",
    "emit_cond",
    "emit_custom_jvp_call",
    "emit_custom_vjp_call",
    "emit_jit",
    "emit_scan",
    "emit_while",
    "np",
    "scan_layout",
    "raw",
]
