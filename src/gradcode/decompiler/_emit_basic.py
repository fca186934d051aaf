"""Emitters for first-order primitives: elementwise, shape, indexing, reductions.

Each emitter is a pure function of its :class:`EqnInfo`. Comparisons keep
their exact semantics (``gt`` is ``>``, never ``>=``) and binary ``max``/``min``
stay elementwise ``lax.max``/``lax.min``, fixing the bugs of the original
JaxDecompiler (Pochelu, arXiv 2403.10571, 2024).
"""

from __future__ import annotations

import numpy as np

from ._ir import Expr, binop, call, seq
from ._literals import dtype_source, scalar_source
from ._params import param_source
from ._registry import EqnInfo, register

# --------------------------------------------------------------- elementwise
_ACCURACY_UNARY = [
    "exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "tan",
    "sqrt", "rsqrt", "cbrt",
]
_PLAIN_UNARY = {
    "sign": "lax.sign", "floor": "lax.floor", "ceil": "lax.ceil", "is_finite": "lax.is_finite",
    "abs": "lax.abs", "asin": "lax.asin", "acos": "lax.acos", "atan": "lax.atan",
    "sinh": "lax.sinh", "cosh": "lax.cosh", "asinh": "lax.asinh", "acosh": "lax.acosh",
    "atanh": "lax.atanh", "not": "lax.bitwise_not", "erf": "lax.erf", "erfc": "lax.erfc",
    "erf_inv": "lax.erf_inv", "lgamma": "lax.lgamma", "digamma": "lax.digamma",
    "real": "lax.real", "imag": "lax.imag", "conj": "lax.conj", "square": "lax.square",
    "population_count": "lax.population_count", "clz": "lax.clz",
    "bessel_i0e": "lax.bessel_i0e", "bessel_i1e": "lax.bessel_i1e",
    "stop_gradient": "lax.stop_gradient", "copy": "jnp.copy",
}
_BINARY = {
    "add": "lax.add", "add_any": "lax.add", "sub": "lax.sub", "mul": "lax.mul",
    "div": "lax.div", "rem": "lax.rem", "pow": "lax.pow", "max": "lax.max", "min": "lax.min",
    "atan2": "lax.atan2", "nextafter": "lax.nextafter", "and": "lax.bitwise_and",
    "or": "lax.bitwise_or", "xor": "lax.bitwise_xor", "shift_left": "lax.shift_left",
    "shift_right_logical": "lax.shift_right_logical",
    "shift_right_arithmetic": "lax.shift_right_arithmetic",
    "eq": "lax.eq", "ne": "lax.ne", "lt": "lax.lt", "le": "lax.le", "gt": "lax.gt",
    "ge": "lax.ge", "complex": "lax.complex", "igamma": "lax.igamma", "igammac": "lax.igammac",
    "polygamma": "lax.polygamma", "zeta": "lax.zeta", "igamma_grad_a": "lax.igamma_grad_a",
    "random_gamma_grad": "lax.random_gamma_grad",
}
#: Primitives written with a Python operator when the left operand is a JAX array.
_OPERATORS = {
    "add": "+", "add_any": "+", "sub": "-", "mul": "*", "eq": "==", "ne": "!=", "lt": "<",
    "le": "<=", "gt": ">", "ge": ">=",
}
#: Binary primitives whose Python-scalar operand may stay weakly typed.
WEAK_LITERAL_OK = frozenset(_BINARY)


def _unary_with_accuracy(fn: str):
    def emit(e: EqnInfo) -> Expr:
        acc = e.params.get("accuracy")
        if acc is None:
            return call(fn, e.args[0])
        return call(fn, e.args[0], accuracy=param_source(acc))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


def _unary(fn: str):
    def emit(e: EqnInfo) -> Expr:
        return call(fn, e.args[0])

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


def _binary(name: str, fn: str):
    op = _OPERATORS.get(name)

    def emit(e: EqnInfo) -> Expr:
        a, b = e.args
        out_dtype = e.params.get("out_dtype")
        if out_dtype is not None:
            return call(fn, a, b, out_dtype=dtype_source(out_dtype))
        dtype = np.dtype(e.in_avals[0].dtype) if e.in_avals else None
        arith_ok = dtype is not None and (dtype.kind != "b" or op in ("==", "!="))
        if op is not None and e.is_array and e.is_array[0] and arith_ok:
            return binop(op, a, b)
        return call(fn, a, b)

    emit.__name__ = f"emit_{name}"
    return emit


for _n in _ACCURACY_UNARY:
    register(_n)(_unary_with_accuracy(f"lax.{_n}"))
for _n, _f in _PLAIN_UNARY.items():
    register(_n)(_unary(_f))
for _n, _f in _BINARY.items():
    register(_n)(_binary(_n, _f))


@register("neg")
def emit_neg(e: EqnInfo) -> Expr:
    """``-x`` for JAX arrays, ``lax.neg(x)`` otherwise."""
    if e.is_array and e.is_array[0] and np.dtype(e.in_avals[0].dtype).kind != "b":
        x = e.args[0]
        return Expr(["-", *(x.pieces if x.atomic else ["(", *x.pieces, ")"])], atomic=False)
    return call("lax.neg", e.args[0])


def _with_param(fn: str, key: str, source):
    """``fn(x, source(params[key]))``: one operand plus one positional parameter."""

    def emit(e: EqnInfo) -> Expr:
        return call(fn, e.args[0], source(e.params[key]))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


def _all_operands(fn: str):
    """``fn(*operands)``."""

    def emit(e: EqnInfo) -> Expr:
        return call(fn, *e.args)

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


register("round")(_with_param("lax.round", "rounding_method", param_source))
register("integer_pow")(_with_param("lax.integer_pow", "y", param_source))
register("convert_element_type")(_with_param("lax.convert_element_type", "new_dtype",
                                             dtype_source))
register("bitcast_convert_type")(_with_param("lax.bitcast_convert_type", "new_dtype",
                                             dtype_source))
register("select_n")(_all_operands("lax.select_n"))
register("clamp")(_all_operands("lax.clamp"))


@register("reduce_precision")
def emit_reduce_precision(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.reduce_precision", e.args[0], exponent_bits=p["exponent_bits"],
                mantissa_bits=p["mantissa_bits"])


# --------------------------------------------------------------------- shapes
@register("reshape")
def emit_reshape(e: EqnInfo) -> Expr:
    dims = e.params.get("dimensions")
    if dims is None:
        return call("lax.reshape", e.args[0], param_source(tuple(e.params["new_sizes"])))
    return call("lax.reshape", e.args[0], param_source(tuple(e.params["new_sizes"])),
                param_source(tuple(dims)))


@register("broadcast_in_dim")
def emit_broadcast_in_dim(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.broadcast_in_dim", e.args[0], param_source(tuple(p["shape"])),
                param_source(tuple(p["broadcast_dimensions"])))


@register("squeeze")
def emit_squeeze(e: EqnInfo) -> Expr:
    return call("lax.squeeze", e.args[0], param_source(tuple(e.params["dimensions"])))


@register("transpose")
def emit_transpose(e: EqnInfo) -> Expr:
    return call("lax.transpose", e.args[0], param_source(tuple(e.params["permutation"])))


@register("rev")
def emit_rev(e: EqnInfo) -> Expr:
    return call("lax.rev", e.args[0], param_source(tuple(e.params["dimensions"])))


@register("pad")
def emit_pad(e: EqnInfo) -> Expr:
    cfg = tuple(tuple(int(v) for v in c) for c in e.params["padding_config"])
    return call("lax.pad", e.args[0], e.args[1], param_source(cfg))


@register("concatenate")
def emit_concatenate(e: EqnInfo) -> Expr:
    return call("lax.concatenate", seq(e.args), param_source(e.params["dimension"]))


@register("stack")
def emit_stack(e: EqnInfo) -> Expr:
    return call("lax.stack", seq(e.args), axis=param_source(e.params["axis"]))


@register("tile")
def emit_tile(e: EqnInfo) -> Expr:
    return call("lax.tile", e.args[0], param_source(tuple(e.params["reps"])))


@register("split")
def emit_split(e: EqnInfo) -> Expr:
    return call("lax.split", e.args[0], param_source(tuple(e.params["sizes"])),
                axis=param_source(e.params["axis"]))


@register("iota")
def emit_iota(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.broadcasted_iota", dtype_source(p["dtype"]), param_source(tuple(p["shape"])),
                param_source(p["dimension"]))


# ------------------------------------------------------------------- indexing
@register("slice")
def emit_slice(e: EqnInfo) -> Expr:
    p = e.params
    args = [e.args[0], param_source(tuple(p["start_indices"])),
            param_source(tuple(p["limit_indices"]))]
    if p.get("strides") is not None:
        args.append(param_source(tuple(p["strides"])))
    return call("lax.slice", *args)


@register("dynamic_slice")
def emit_dynamic_slice(e: EqnInfo) -> Expr:
    return call("lax.dynamic_slice", e.args[0], seq(e.args[1:]),
                param_source(tuple(e.params["slice_sizes"])))


@register("dynamic_update_slice")
def emit_dynamic_update_slice(e: EqnInfo) -> Expr:
    return call("lax.dynamic_update_slice", e.args[0], e.args[1], seq(e.args[2:]))


@register("gather")
def emit_gather(e: EqnInfo) -> Expr:
    p = e.params
    kwargs = {
        "dimension_numbers": param_source(p["dimension_numbers"]),
        "slice_sizes": param_source(tuple(p["slice_sizes"])),
        "indices_are_sorted": param_source(bool(p["indices_are_sorted"])),
        "unique_indices": param_source(bool(p["unique_indices"])),
        "mode": param_source(p["mode"]),
    }
    if p.get("fill_value") is not None:
        kwargs["fill_value"] = param_source(p["fill_value"])
    return call("lax.gather", e.args[0], e.args[1], **kwargs)


def _scatter(fn: str):
    def emit(e: EqnInfo) -> Expr:
        p = e.params
        return call(fn, e.args[0], e.args[1], e.args[2],
                    dimension_numbers=param_source(p["dimension_numbers"]),
                    indices_are_sorted=param_source(bool(p["indices_are_sorted"])),
                    unique_indices=param_source(bool(p["unique_indices"])),
                    mode=param_source(p["mode"]))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


for _n, _f in {"scatter": "lax.scatter", "scatter-add": "lax.scatter_add",
               "scatter_add": "lax.scatter_add", "scatter-mul": "lax.scatter_mul",
               "scatter_mul": "lax.scatter_mul", "scatter-min": "lax.scatter_min",
               "scatter_min": "lax.scatter_min", "scatter-max": "lax.scatter_max",
               "scatter_max": "lax.scatter_max", "scatter-sub": "lax.scatter_sub",
               "scatter_sub": "lax.scatter_sub"}.items():
    register(_n)(_scatter(_f))


# ----------------------------------------------------------------- reductions
def _reduction(fn: str):
    def emit(e: EqnInfo) -> Expr:
        return call(fn, e.args[0], param_source(tuple(e.params["axes"])))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


for _n in ["reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and",
           "reduce_or", "reduce_xor"]:
    register(_n)(_reduction(f"lax.{_n}"))


def _arg_reduction(fn: str):
    def emit(e: EqnInfo) -> Expr:
        (axis,) = e.params["axes"]
        return call(fn, e.args[0], param_source(axis), dtype_source(e.params["index_dtype"]))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


register("argmax")(_arg_reduction("lax.argmax"))
register("argmin")(_arg_reduction("lax.argmin"))


def _cumulative(fn: str):
    def emit(e: EqnInfo) -> Expr:
        return call(fn, e.args[0], axis=param_source(e.params["axis"]),
                    reverse=param_source(bool(e.params["reverse"])))

    emit.__name__ = f"emit_{fn.split('.')[-1]}"
    return emit


for _n in ["cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"]:
    register(_n)(_cumulative(f"lax.{_n}"))


def _window_init(kind: str, dtype: np.dtype) -> str:
    if kind == "sum":
        return scalar_source(0, dtype, False)
    if dtype.kind == "f":
        return scalar_source(-np.inf if kind == "max" else np.inf, dtype, False)
    if dtype.kind == "b":
        return scalar_source(kind == "min", dtype, False)
    info = np.iinfo(dtype)
    return scalar_source(info.min if kind == "max" else info.max, dtype, False)


def _reduce_window(kind: str):
    def emit(e: EqnInfo) -> Expr:
        p = e.params
        dtype = np.dtype(e.in_avals[0].dtype)
        return call("lax.reduce_window", e.args[0], _window_init(kind, dtype),
                    {"sum": "lax.add", "max": "lax.max", "min": "lax.min"}[kind],
                    param_source(tuple(p["window_dimensions"])),
                    param_source(tuple(p["window_strides"])),
                    param_source(tuple(tuple(x) for x in p["padding"])),
                    param_source(tuple(p["base_dilation"])),
                    param_source(tuple(p["window_dilation"])))

    emit.__name__ = f"emit_reduce_window_{kind}"
    return emit


for _k in ["sum", "max", "min"]:
    register(f"reduce_window_{_k}")(_reduce_window(_k))


@register("sort")
def emit_sort(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.sort", seq(e.args, "()"), dimension=param_source(p["dimension"]),
                is_stable=param_source(bool(p["is_stable"])),
                num_keys=param_source(p["num_keys"]))


@register("top_k")
def emit_top_k(e: EqnInfo) -> Expr:
    axis = e.params.get("axis", -1)
    ndim = len(e.in_avals[0].shape) if e.in_avals else 1
    if axis in (-1, ndim - 1):
        return call("lax.top_k", e.args[0], param_source(e.params["k"]))
    return call("lax.top_k", e.args[0], param_source(e.params["k"]), axis=param_source(axis))


# ------------------------------------------------------------- linear algebra
@register("dot_general")
def emit_dot_general(e: EqnInfo) -> Expr:
    p = e.params
    (lc, rc), (lb, rb) = p["dimension_numbers"]
    dn = ((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb)))
    kwargs = {}
    if p.get("precision") is not None:
        kwargs["precision"] = param_source(p["precision"])
    if p.get("preferred_element_type") is not None:
        kwargs["preferred_element_type"] = dtype_source(p["preferred_element_type"])
    return call("lax.dot_general", e.args[0], e.args[1], param_source(dn), **kwargs)


@register("conv_general_dilated")
def emit_conv_general_dilated(e: EqnInfo) -> Expr:
    p = e.params
    kwargs = {
        "window_strides": param_source(tuple(p["window_strides"])),
        "padding": param_source(tuple(tuple(x) for x in p["padding"])),
        "lhs_dilation": param_source(tuple(p["lhs_dilation"])),
        "rhs_dilation": param_source(tuple(p["rhs_dilation"])),
        "dimension_numbers": param_source(p["dimension_numbers"]),
        "feature_group_count": param_source(p["feature_group_count"]),
        "batch_group_count": param_source(p["batch_group_count"]),
    }
    if p.get("precision") is not None:
        kwargs["precision"] = param_source(p["precision"])
    if p.get("preferred_element_type") is not None:
        kwargs["preferred_element_type"] = dtype_source(p["preferred_element_type"])
    return call("lax.conv_general_dilated", e.args[0], e.args[1], **kwargs)


@register("cholesky")
def emit_cholesky(e: EqnInfo) -> Expr:
    return call("lax.linalg.cholesky", e.args[0], symmetrize_input="False")


@register("triangular_solve")
def emit_triangular_solve(e: EqnInfo) -> Expr:
    p = e.params
    return call("lax.linalg.triangular_solve", e.args[0], e.args[1],
                **{k: param_source(bool(p[k])) for k in
                   ("left_side", "lower", "transpose_a", "conjugate_a", "unit_diagonal")})


# --------------------------------------------------------------------- random
def _impl_name(impl) -> str:
    return repr(getattr(impl, "name", str(impl)))


@register("random_seed")
def emit_random_seed(e: EqnInfo) -> Expr:
    return call("jax.random.key", e.args[0], impl=_impl_name(e.params["impl"]))


@register("random_wrap")
def emit_random_wrap(e: EqnInfo) -> Expr:
    return call("jax.random.wrap_key_data", e.args[0], impl=_impl_name(e.params["impl"]))


@register("random_unwrap")
def emit_random_unwrap(e: EqnInfo) -> Expr:
    return call("jax.random.key_data", e.args[0])


@register("random_bits")
def emit_random_bits(e: EqnInfo) -> Expr:
    p = e.params
    return call("jax.random.bits", e.args[0], param_source(tuple(p["shape"])),
                dtype=f"jnp.uint{int(p['bit_width'])}")


@register("random_split")
def emit_random_split(e: EqnInfo) -> Expr:
    return call("jax.random.split", e.args[0], param_source(tuple(e.params["shape"])))


@register("random_fold_in")
def emit_random_fold_in(e: EqnInfo) -> Expr:
    return call("jax.random.fold_in", e.args[0], e.args[1])


# ----------------------------------------------------------------------- misc
@register("optimization_barrier")
def emit_optimization_barrier(e: EqnInfo) -> Expr:
    return call("lax.optimization_barrier", seq(e.args, "()"))


@register("device_put")
def emit_device_put(e: EqnInfo) -> Expr:
    devices = e.params.get("devices") or ()
    if any(d is not None for d in devices):
        raise NotImplementedError(
            "gradcode.decompiler: primitive 'device_put' with explicit devices is not supported")
    return call("jax.device_put", seq(e.args, "()"))
