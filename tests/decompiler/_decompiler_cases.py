"""Functions used by the decompiler round-trip tests (importable helper module)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

F32 = np.float32


def normal(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


def ties(rng, *shape):
    """Floats from a tiny set so comparisons and max/min see exact ties."""
    return rng.integers(-2, 3, size=shape).astype(F32)


def ints(rng, *shape, lo=-50, hi=50):
    return rng.integers(lo, hi, size=shape).astype(np.int32)


# ------------------------------------------------------------------ models
def mlp_init(rng, sizes=(4, 8, 3)):
    return {f"w{i}": normal(rng, a, b) * F32(0.5) for i, (a, b) in enumerate(itertools.pairwise(sizes))} | \
           {f"b{i}": normal(rng, b) * F32(0.1) for i, b in enumerate(sizes[1:])}


def mlp_apply(params, x):
    h = jnp.tanh(x @ params["w0"] + params["b0"])
    return h @ params["w1"] + params["b1"]


def mlp_loss(params, x, y):
    logits = mlp_apply(params, x)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))


def mlp_train_step(params, x, y):
    loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
    new = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    return new, loss


def attention(x, wq, wk, wv):
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = jnp.einsum("bqd,bkd->bqk", q, k) / jnp.sqrt(q.shape[-1]).astype(x.dtype)
    mask = jnp.tril(jnp.ones((x.shape[1], x.shape[1]), bool))
    scores = jnp.where(mask, scores, -1e9)
    return jnp.einsum("bqk,bkd->bqd", jax.nn.softmax(scores, axis=-1), v)


def newton_sqrt(a):
    def cond(state):
        x, it = state
        return jnp.logical_and(jnp.max(jnp.abs(x * x - a)) > 1e-5, it < 50)

    def body(state):
        x, it = state
        return 0.5 * (x + a / x), it + 1

    return lax.while_loop(cond, body, (jnp.ones_like(a), 0))[0]


def rnn_scan(h0, xs, w):
    def step(h, x):
        h = jnp.tanh(h @ w + x)
        return h, h.sum()

    return lax.scan(step, h0, xs)


@jax.custom_jvp
def softclip(x):
    return jnp.tanh(x) * 2.0


@softclip.defjvp
def _softclip_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = softclip(x)
    return y, 2.0 * (1.0 - jnp.tanh(x) ** 2) * t


@jax.custom_vjp
def clip_grad_identity(x):
    return x * 1.0


def _cgi_fwd(x):
    return x * 1.0, None


def _cgi_bwd(_, g):
    return (jnp.clip(g, -0.5, 0.5),)


clip_grad_identity.defvjp(_cgi_fwd, _cgi_bwd)


@jax.custom_vjp
def scaled_square(x, s):
    return x * x * s


def _ss_fwd(x, s):
    return x * x * s, (x, s)


def _ss_bwd(res, g):
    x, s = res
    return 2.0 * x * s * g, jnp.sum(x * x * g)  # s is a scalar


scaled_square.defvjp(_ss_fwd, _ss_bwd)


def conv2d(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def max_pool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def avg_pool(x):
    return lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "SAME") / 4.0


# (id, function, args factory(rng) -> tuple)
CASES = [
    # elementwise math
    ("sin_cos_exp", lambda x: jnp.sin(x) * jnp.cos(x) + jnp.exp(-x * x), lambda r: (normal(r, 5),)),
    ("log_sqrt", lambda x: jnp.log1p(jnp.abs(x)) + jnp.sqrt(jnp.abs(x)) + lax.rsqrt(1 + x * x),
     lambda r: (normal(r, 3, 4),)),
    ("tanh_logistic", lambda x: jnp.tanh(x) - jax.nn.sigmoid(x), lambda r: (normal(r, 6),)),
    ("pow_ipow", lambda x, y: jnp.abs(x) ** y + x ** 3, lambda r: (normal(r, 4), normal(r, 4))),
    ("sign_floor_ceil_round", lambda x: jnp.sign(x) + jnp.floor(x) * jnp.ceil(x) + jnp.round(x * 3),
     lambda r: (normal(r, 7) * 3,)),
    ("erf_atan2_expm1", lambda x, y: lax.erf(x) + jnp.arctan2(x, y) + jnp.expm1(y),
     lambda r: (normal(r, 5), normal(r, 5))),
    ("clip_where", lambda x: jnp.where(x > 0.5, jnp.clip(x, -1, 1), x * 0.1), lambda r: (normal(r, 8),)),
    ("square_reciprocal", lambda x: jnp.square(x) + 1.0 / (1.0 + x * x), lambda r: (normal(r, 4),)),
    ("nan_inf_consts", lambda x: jnp.where(jnp.isfinite(x / x), x, jnp.inf) - jnp.float32(1e-38),
     lambda r: (ties(r, 6),)),
    ("gelu_softplus", lambda x: jax.nn.gelu(x) + jax.nn.softplus(x), lambda r: (normal(r, 5),)),
    # comparisons with ties
    ("cmp_gt_lt", lambda x, y: (x > y).astype(F32) + (x < y) * 2.0, lambda r: (ties(r, 9), ties(r, 9))),
    ("cmp_ge_le", lambda x, y: (x >= y).astype(F32) - (x <= y), lambda r: (ties(r, 9), ties(r, 9))),
    ("cmp_eq_ne", lambda x, y: jnp.where(x == y, 1, 0) + jnp.where(x != y, 10, 0),
     lambda r: (ties(r, 9), ties(r, 9))),
    ("max_min_binary", lambda x, y: jnp.maximum(x, y) * 2 + jnp.minimum(x, y), lambda r: (ties(r, 9), ties(r, 9))),
    ("max_min_grad", jax.grad(lambda x, y: jnp.sum(jnp.maximum(x, y) + jnp.minimum(x, 0.0))),
     lambda r: (ties(r, 9), ties(r, 9))),
    # integer and bitwise
    ("int_div_rem", lambda a, b: (lax.div(a, b), lax.rem(a, b), a // b, a % b),
     lambda r: (ints(r, 8), ints(r, 8, lo=1, hi=7) * np.array([1, -1] * 4, np.int32))),
    ("bitwise", lambda a, b: ((a & b) | (a ^ ~b), a << 2, a >> 1, lax.shift_right_logical(a, 3)),
     lambda r: (ints(r, 6), ints(r, 6))),
    ("int_arith", lambda a, b: a * b - 3 * a + jnp.abs(b) + lax.population_count(a),
     lambda r: (ints(r, 5), ints(r, 5))),
    ("bool_logic", lambda x: jnp.logical_and(x > 0, jnp.logical_not(x > 1)) | (x < -1), lambda r: (ties(r, 7),)),
    # casts
    ("casts", lambda x: (x.astype(jnp.int32), x.astype(jnp.int8).astype(F32) * 2, (x > 0).astype(jnp.float32)),
     lambda r: (normal(r, 6) * 10,)),
    ("bitcast", lambda x: lax.bitcast_convert_type(x, jnp.uint32) >> 23, lambda r: (normal(r, 5),)),
    ("float16_mix", lambda x: (x.astype(jnp.float16) * 3).astype(F32), lambda r: (normal(r, 4),)),
    # shapes
    ("reshape_transpose", lambda x: x.reshape(4, 3).T @ x.reshape(4, 3), lambda r: (normal(r, 2, 6),)),
    ("expand_squeeze_bcast", lambda x: jnp.squeeze(x[None, :, None], axis=(0, 2)) + jnp.broadcast_to(x, (3, 5)),
     lambda r: (normal(r, 5),)),
    ("concat_stack_split", lambda x, y: jnp.split(jnp.concatenate([x, y, jnp.stack([x, y]).sum(0)]), 3),
     lambda r: (normal(r, 4), normal(r, 4))),
    ("pad_flip_tile", lambda x: jnp.tile(jnp.flip(jnp.pad(x, ((1, 2), (0, 1)), constant_values=7.0), 0), (2, 1)),
     lambda r: (normal(r, 2, 3),)),
    ("iota_arange", lambda x: x * jnp.arange(6, dtype=F32) + jnp.eye(6, dtype=F32)[2],
     lambda r: (normal(r, 6),)),
    # slicing, gather, scatter
    ("static_slices", lambda x: x[1:3, ::2] + x[-2:, 1::2], lambda r: (normal(r, 4, 6),)),
    ("gather_take", lambda x, i: x[i] + jnp.take_along_axis(x, i[:, None] % 3, axis=1).sum(),
     lambda r: (normal(r, 4, 3), r.integers(0, 4, size=4).astype(np.int32))),
    ("scatter_set_add", lambda x, i: x.at[i].set(0.0).at[i].add(1.0).at[0].mul(3.0),
     lambda r: (normal(r, 6), r.integers(0, 6, size=3).astype(np.int32))),
    ("scatter_min_max", lambda x, i, u: (x.at[i].min(u), x.at[i].max(u)),
     lambda r: (normal(r, 5), r.integers(0, 5, size=4).astype(np.int32), normal(r, 4))),
    ("dynamic_slices", lambda x, i: lax.dynamic_update_slice(x, lax.dynamic_slice(x, (i, 0), (2, 3)) * 2, (0, i)),
     lambda r: (normal(r, 5, 6), np.int32(r.integers(0, 3)))),
    ("fancy_index_grad", jax.grad(lambda x, i: jnp.sum(x[i] ** 2)),
     lambda r: (normal(r, 6), r.integers(0, 6, size=4).astype(np.int32))),
    # reductions
    ("reductions", lambda x: (x.sum(0), x.max(1), x.min(), jnp.prod(x, 1), x.mean()), lambda r: (normal(r, 3, 4),)),
    ("bool_reductions", lambda x: (jnp.all(x > -1, 0), jnp.any(x > 1, 1)), lambda r: (ties(r, 3, 4),)),
    ("argmin_argmax_ties", lambda x: (jnp.argmax(x, 0), jnp.argmin(x, 1)), lambda r: (ties(r, 4, 5),)),
    ("logsumexp_var_norm", lambda x: (jax.nn.logsumexp(x, 1), jnp.var(x), jnp.linalg.norm(x)), lambda r: (normal(r, 3, 4),)),
    # sort, cumulative
    ("sort_argsort", lambda x: (jnp.sort(x), jnp.argsort(x, stable=True)), lambda r: (ties(r, 8),)),
    ("top_k", lambda x: lax.top_k(x, 3), lambda r: (normal(r, 2, 6),)),
    ("cumulative", lambda x: (jnp.cumsum(x), jnp.cumprod(x, 0), lax.cummax(x, 0, reverse=True), lax.cumlogsumexp(x)),
     lambda r: (normal(r, 6),)),
    # dot / conv
    ("matmul", lambda a, b: a @ b, lambda r: (normal(r, 3, 4), normal(r, 4, 2))),
    ("batched_einsum", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), lambda r: (normal(r, 2, 3, 4), normal(r, 2, 4, 5))),
    ("dot_general_batch_dims", lambda a, b: lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,)))),
     lambda r: (normal(r, 3, 2, 4), normal(r, 3, 4, 2))),
    ("tensordot_int", lambda a, b: jnp.tensordot(a, b, axes=1), lambda r: (ints(r, 3, 4), ints(r, 4, 2))),
    ("conv2d_nhwc", conv2d, lambda r: (normal(r, 1, 6, 6, 2), normal(r, 3, 3, 2, 4))),
    ("conv1d_grad", jax.grad(lambda x, k: jnp.sum(jnp.convolve(x, k, mode="same") ** 2), argnums=1),
     lambda r: (normal(r, 8), normal(r, 3))),
    ("pools", lambda x: (max_pool(x), avg_pool(x)), lambda r: (normal(r, 1, 4, 4, 2),)),
    # jit and custom rules
    ("nested_jit", jax.jit(lambda x: jax.jit(lambda y: jnp.sin(y) * 2)(x) + 1), lambda r: (normal(r, 4),)),
    ("relu_custom_jvp", lambda x: jax.nn.relu(x) + softclip(x), lambda r: (normal(r, 6),)),
    ("grad_custom_jvp", jax.grad(lambda x: jnp.sum(softclip(x) * jax.nn.relu(x))), lambda r: (normal(r, 6),)),
    ("custom_vjp_forward", lambda x, s: scaled_square(clip_grad_identity(x), s), lambda r: (normal(r, 4), normal(r))),
    ("custom_vjp_grad", jax.grad(lambda x, s: jnp.sum(scaled_square(clip_grad_identity(x) * 3, s)), argnums=(0, 1)),
     lambda r: (normal(r, 4), normal(r))),
    ("stop_gradient", jax.grad(lambda x: jnp.sum(x * lax.stop_gradient(x) ** 2)), lambda r: (normal(r, 5),)),
    # control flow
    ("cond_bool", lambda p, x: lax.cond(p, lambda a: a + 1, lambda a: jnp.sin(a), x),
     lambda r: (np.bool_(r.integers(0, 2)), normal(r, 3))),
    ("switch_int", lambda i, x: lax.switch(i, [jnp.sin, jnp.cos, lambda a: a * 3], x),
     lambda r: (np.int32(r.integers(-1, 4)), normal(r, 3))),
    ("cond_grad", jax.grad(lambda x: lax.cond(x.sum() > 0, lambda a: jnp.sum(a ** 2), lambda a: jnp.sum(jnp.sin(a)), x)),
     lambda r: (normal(r, 4),)),
    ("while_solver", newton_sqrt, lambda r: (np.abs(normal(r, 5)) + 0.5,)),
    ("fori_loop", lambda x: lax.fori_loop(0, 5, lambda i, c: c * 0.9 + i, x), lambda r: (normal(r, 3),)),
    ("scan_rnn", rnn_scan, lambda r: (normal(r, 3), normal(r, 6, 3), normal(r, 3, 3) * 0.5)),
    ("long_scan_reverse", lambda xs: lax.scan(lambda c, x: (c * 0.5 + x, c), 0.0, xs, reverse=True),
     lambda r: (normal(r, 40),)),
    ("scan_grad", jax.grad(lambda w, h0, xs: jnp.sum(rnn_scan(h0, xs, w)[1])),
     lambda r: (normal(r, 3, 3) * 0.5, normal(r, 3), normal(r, 5, 3))),
    ("remat", jax.grad(lambda x: jnp.sum(jax.checkpoint(lambda y: jnp.sin(jnp.sin(y)))(x))), lambda r: (normal(r, 4),)),
    ("remat_policy", lambda x: jax.checkpoint(lambda y: jnp.tanh(y @ y), policy=jax.checkpoint_policies.nothing_saveable)(x),
     lambda r: (normal(r, 3, 3),)),
    # random
    ("random_normal_uniform", lambda k: (jax.random.normal(jax.random.wrap_key_data(k), (3,)),
                                         jax.random.uniform(jax.random.fold_in(jax.random.wrap_key_data(k), 3), (2,))),
     lambda r: (r.integers(0, 2**32, size=2, dtype=np.uint32),)),
    ("random_seed_split", lambda s: jax.random.key_data(jax.random.split(jax.random.key(s), 3)),
     lambda r: (np.int32(r.integers(0, 1000)),)),
    ("random_bernoulli_perm", lambda s: (jax.random.bernoulli(jax.random.key(s), 0.3, (5,)),
                                         jax.random.randint(jax.random.key(s + 1), (4,), 0, 10)),
     lambda r: (np.int32(r.integers(0, 1000)),)),
    # transformations and models
    ("grad_tanh_chain", jax.grad(lambda x: jnp.sum(jnp.tanh(jnp.tanh(x) * 2.0) ** 2)), lambda r: (normal(r, 5),)),
    ("value_and_grad", jax.value_and_grad(lambda w, x: jnp.mean((x @ w) ** 2)), lambda r: (normal(r, 3), normal(r, 4, 3))),
    ("hessian", jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x ** 2)), lambda r: (normal(r, 3),)),
    ("vmap_fn", jax.vmap(lambda x, w: jnp.tanh(w @ x), in_axes=(0, None)), lambda r: (normal(r, 5, 3), normal(r, 2, 3))),
    ("vmap_grad", jax.vmap(jax.grad(lambda x: jnp.sum(jnp.sin(x) ** 2))), lambda r: (normal(r, 4, 3),)),
    ("jitted_fn", jax.jit(lambda x, y: jnp.dot(x, y) + jnp.max(x)), lambda r: (normal(r, 3, 3), normal(r, 3, 3))),
    ("mlp_forward", mlp_apply, lambda r: (mlp_init(r), normal(r, 5, 4))),
    ("mlp_train_step", mlp_train_step,
     lambda r: (mlp_init(r), normal(r, 5, 4), np.eye(3, dtype=F32)[r.integers(0, 3, size=5)])),
    ("attention", attention, lambda r: (normal(r, 2, 4, 8), normal(r, 8, 8) * 0.3, normal(r, 8, 8) * 0.3,
                                        normal(r, 8, 8) * 0.3)),
    ("attention_grad", jax.grad(lambda x, wq, wk, wv: jnp.sum(attention(x, wq, wk, wv) ** 2), argnums=(1, 2, 3)),
     lambda r: (normal(r, 1, 3, 4), normal(r, 4, 4) * 0.3, normal(r, 4, 4) * 0.3, normal(r, 4, 4) * 0.3)),
    ("big_constant", lambda x: x + jnp.asarray(np.linspace(-1, 1, 64, dtype=F32).reshape(8, 8)) ** 3,
     lambda r: (normal(r, 8, 8),)),
    ("kwargs_pytree_out", lambda x, *, scale: {"y": x * scale, "z": [x.sum(), None]},
     lambda r: ((normal(r, 3),), {"scale": normal(r, 3)})),
]
