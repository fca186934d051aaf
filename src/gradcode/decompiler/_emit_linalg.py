"""Emitters for linear-algebra and FFT primitives (``jax.lax.linalg``, ``lax.fft``).

Each decomposition primitive is re-emitted through its public
``jax.lax.linalg`` function with the equation's parameters, so the re-traced
program binds the very same primitive (no re-derivation through
``jax.numpy.linalg``, which would add its own pre- and post-processing twice).
``custom_linear_solve`` (what ``jnp.linalg.solve`` traces) becomes
``lax.custom_linear_solve`` with nested ``matvec``/``solve``/``transpose_solve``
functions.

Reference: Golub and Van Loan, "Matrix Computations", 4th ed., 2013 (the
LU/QR/eigen/SVD decompositions these primitives compute).
"""

from __future__ import annotations

from typing import Any

from ._ir import Expr, call, seq
from ._params import param_source
from ._registry import EqnInfo, register


def _kwargs(e: EqnInfo, rename: dict[str, str] | None = None,
            drop: tuple[str, ...] = ()) -> dict[str, str]:
    """Keyword source for every parameter (renamed where the public name differs)."""
    rename = rename or {}
    return {rename.get(k, k): param_source(v) for k, v in e.params.items()
            if k not in drop and not k.startswith("_")}


def _public(fn: str, rename: dict[str, str] | None = None, drop: tuple[str, ...] = ()):
    """``fn(*operands, **params)`` for a primitive whose public function takes its params."""

    def emit(e: EqnInfo) -> Expr:
        return call(fn, *e.args, **_kwargs(e, rename, drop))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


register("lu")(_public("lax.linalg.lu"))
register("qr")(_public("lax.linalg.qr"))
register("eigh")(_public("lax.linalg.eigh", rename={"algorithm": "implementation"}))
register("eig")(_public("lax.linalg.eig"))
register("schur")(_public("lax.linalg.schur"))
register("hessenberg")(_public("lax.linalg.hessenberg"))
register("householder_product")(_public("lax.linalg.householder_product"))
register("cholesky_update")(_public("lax.linalg.cholesky_update"))
register("tridiagonal")(_public("lax.linalg.tridiagonal"))
register("tridiagonal_solve")(_public("lax.linalg.tridiagonal_solve"))
register("ormqr")(_public("lax.linalg.ormqr"))
register("symmetric_product")(_public("lax.linalg.symmetric_product"))


@register("lu_pivots_to_permutation")
def emit_lu_pivots_to_permutation(e: EqnInfo) -> Expr:
    return call("lax.linalg.lu_pivots_to_permutation", e.args[0],
                param_source(e.params["permutation_size"]))


@register("svd")
def emit_svd(e: EqnInfo) -> Expr:
    """``lax.linalg.svd``: the primitive yields ``(s, u, vt)``, the function ``(u, s, vh)``."""
    kw = _kwargs(e)
    if not e.params.get("compute_uv", True):
        return seq([call("lax.linalg.svd", e.args[0], **kw)], "()")
    expr = call("lax.linalg.svd", e.args[0], **kw)
    expr.out_order = [1, 0, 2]
    return expr


@register("fft")
def emit_fft(e: EqnInfo) -> Expr:
    """``lax.fft(x, lax.FftType.<T>, lengths)``."""
    return call("lax.fft", e.args[0], param_source(e.params["fft_type"]),
                param_source(tuple(e.params["fft_lengths"])))


def _open(jaxpr: Any) -> tuple[Any, list[Any]]:
    if hasattr(jaxpr, "jaxpr") and hasattr(jaxpr, "consts"):
        return jaxpr.jaxpr, list(jaxpr.consts)
    return jaxpr, []


@register("custom_linear_solve")
def emit_custom_linear_solve(e: EqnInfo) -> Expr:
    """``lax.custom_linear_solve(matvec, b, solve, transpose_solve, symmetric=...)``.

    The operands are the constants of ``matvec``, ``vecmat``, ``solve`` and
    ``transpose_solve`` (in that order) followed by the leaves of ``b``;
    ``vecmat`` is re-derived by JAX from ``matvec`` (it is its transpose), so
    only the other three become nested functions closing over their constants.
    """
    p = e.params
    jaxprs, lengths = p["jaxprs"], p["const_lengths"]
    n_b = len(e.args) - sum(lengths)
    if len(jaxprs.solve.out_avals) != len(jaxprs.matvec.out_avals):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'custom_linear_solve' with has_aux=True is not "
            "supported (solve returns auxiliary outputs)")
    consts, pos = {}, 0
    for field in ("matvec", "vecmat", "solve", "transpose_solve"):
        k = getattr(lengths, field)
        consts[field] = e.args[pos:pos + k]
        pos += k
    b = e.args[pos:]
    packed = n_b != 1

    def ret(outs: list[Expr], ins: list[Expr]) -> Expr:
        return seq(outs, "()") if packed else outs[0]

    group = ("tuple", n_b, "b") if packed else ("flat", 1, "b")
    ctx = e.ctx
    names = {}
    for field in ("matvec", "solve", "transpose_solve"):
        jx = getattr(jaxprs, field)
        if jx is None:
            continue
        inner, inner_consts = _open(jx)
        groups = [group] if field == "matvec" else [("unused", 0, "_matvec"), group]
        names[field] = ctx.function(inner, inner_consts, f"{field}_fn", consts[field], groups,
                                    ret)
    kwargs = {}
    if "transpose_solve" in names:
        kwargs["transpose_solve"] = names["transpose_solve"]
        if jaxprs.vecmat is jaxprs.matvec:
            kwargs["symmetric"] = "True"
    b_expr = seq(b, "()") if packed else b[0]
    expr = call("lax.custom_linear_solve", names["matvec"], b_expr, names["solve"], **kwargs)
    return expr if packed else seq([expr], "()")


@register("geqrf")
def emit_geqrf(e: EqnInfo) -> Expr:
    raise NotImplementedError(
        "gradcode.decompiler: primitive 'geqrf' (Householder QR factors, reached through "
        "jax.scipy.linalg.qr_multiply) is not supported: JAX exports no public function for "
        "it and jax.extend.core.primitives does not export the primitive, so no faithful "
        "public call exists; use jnp.linalg.qr / lax.linalg.qr in the original function")
