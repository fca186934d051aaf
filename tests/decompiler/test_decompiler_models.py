"""Round trips of the programs a user of CNNs, linear algebra, FFTs and Jacobians writes.

Each model is decompiled, re-executed, and compared under ``jax.jit`` with
the original and with an independent NumPy computation; gradients are checked
both by decompiling ``jax.grad`` and by differentiating the rebuilt code
(which exercises the re-emitted custom differentiation rules).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _api_surface import cnn_init, cnn_loss, fft_loss, linsolve_model, vector_fn

from gradcode.decompiler import decompile, primitive_counts, to_function

F32 = np.float32


def _close(got, want, rtol=1e-4, atol=1e-5):
    gl, gt = jax.tree_util.tree_flatten(got)
    wl, wt = jax.tree_util.tree_flatten(want)
    assert gt == wt
    for g, w in zip(gl, wl):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


def _rebuild(fn, *args):
    return to_function(decompile(fn, *args))


def test_cnn_with_max_pooling_value_and_grad():
    rng = np.random.default_rng(0)
    params = cnn_init(rng)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 1)).astype(F32))
    y = jax.nn.one_hot(jnp.asarray([0, 2]), 3)
    grad_src = decompile(jax.grad(cnn_loss), params, x, y)
    assert "select_and_scatter_add_p.bind" in grad_src  # the max-pool gradient
    rebuilt_grad = to_function(grad_src)
    _close(jax.jit(rebuilt_grad)(params, x, y), jax.jit(jax.grad(cnn_loss))(params, x, y))
    rebuilt = _rebuild(cnn_loss, params, x, y)
    _close(jax.jit(rebuilt)(params, x, y), jax.jit(cnn_loss)(params, x, y))
    _close(jax.jit(jax.grad(rebuilt))(params, x, y), jax.jit(jax.grad(cnn_loss))(params, x, y))
    assert primitive_counts(rebuilt_grad, params, x, y) == primitive_counts(
        jax.grad(cnn_loss), params, x, y)
    # Independent check of one gradient entry: central difference of the loss.
    eps = F32(1e-2)
    k = params["w"]
    bumped = [dict(params, w=k.at[1, 2].add(s * eps)) for s in (1, -1)]
    fd = (cnn_loss(bumped[0], x, y) - cnn_loss(bumped[1], x, y)) / (2 * eps)
    np.testing.assert_allclose(rebuilt_grad(params, x, y)["w"][1, 2], fd, rtol=2e-2, atol=1e-3)


def test_linear_solve_and_slogdet_model():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4)).astype(F32)
    a = jnp.asarray(a @ a.T / 4 + np.eye(4, dtype=F32))
    b = jnp.asarray(rng.standard_normal(4).astype(F32))
    w = jnp.asarray([0.5, 1.5], F32)
    src = decompile(linsolve_model, w, a, b)
    assert "lax.custom_linear_solve(" in src and "lax.linalg.lu(" in src
    rebuilt = to_function(src)
    _close(jax.jit(rebuilt)(w, a, b), jax.jit(linsolve_model)(w, a, b))
    # Independent value: NumPy in float64.
    mat = np.asarray(a, np.float64) + 0.5 * np.eye(4)
    sol = np.linalg.solve(mat, np.asarray(b, np.float64) * 1.5)
    sign, logdet = np.linalg.slogdet(mat)
    np.testing.assert_allclose(rebuilt(w, a, b), np.sum(sol ** 2) + sign * logdet, rtol=1e-4)
    g_orig = jax.jit(jax.grad(linsolve_model))(w, a, b)
    _close(jax.jit(jax.grad(rebuilt))(w, a, b), g_orig, rtol=1e-3, atol=1e-4)
    rebuilt_grad = _rebuild(jax.grad(linsolve_model, argnums=(0, 1)), w, a, b)
    _close(jax.jit(rebuilt_grad)(w, a, b),
           jax.jit(jax.grad(linsolve_model, argnums=(0, 1)))(w, a, b), rtol=1e-3, atol=1e-4)


def test_jacrev_of_vector_function_matches_closed_form():
    x = jnp.asarray([0.3, -0.7, 1.1], F32)
    jac = jax.jacrev(vector_fn)
    rebuilt = _rebuild(jac, x)
    got = np.asarray(jax.jit(rebuilt)(x))
    _close(got, jax.jit(jac)(x))
    x0, x1, x2 = (float(v) for v in x)
    want = np.array([[np.cos(x0) * x1, np.sin(x0), 0.0],
                     [0.0, 2 * x1, 1.0],
                     [x2 * np.exp(x0 * x2), 0.0, x0 * np.exp(x0 * x2)]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_vjp_with_two_outputs():
    x = jnp.asarray([0.1, 0.5, -0.4], F32)

    def pullback(v):
        _, vjp = jax.vjp(lambda u: (jnp.sin(u), jnp.outer(u, u)), v)
        return vjp((v, jnp.ones((3, 3), F32)))

    rebuilt = _rebuild(pullback, x)
    _close(jax.jit(rebuilt)(x), jax.jit(pullback)(x))
    assert primitive_counts(rebuilt, x) == primitive_counts(pullback, x)


def test_fft_loss_value_and_grad():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal(8).astype(F32))
    target = jnp.asarray(rng.uniform(0, 1, 5).astype(F32))
    vg = jax.value_and_grad(fft_loss)
    src = decompile(vg, x, target)
    assert "lax.FftType.RFFT" in src and "lax.FftType.IRFFT" in src
    rebuilt = to_function(src)
    _close(jax.jit(rebuilt)(x, target), jax.jit(vg)(x, target), rtol=1e-4, atol=1e-4)
    spec = np.fft.rfft(np.asarray(x, np.float64))
    back = np.fft.irfft(spec * 0.5, n=8)
    want = np.sum((np.abs(spec) - np.asarray(target)) ** 2) + np.sum(back ** 2)
    np.testing.assert_allclose(rebuilt(x, target)[0], want, rtol=1e-4)
    fwd = _rebuild(fft_loss, x, target)
    _close(jax.jit(jax.grad(fwd))(x, target), jax.jit(jax.grad(fft_loss))(x, target),
           rtol=1e-4, atol=1e-4)


def test_searchsorted_interp_and_decompositions():
    rng = np.random.default_rng(3)
    xs = jnp.asarray(np.sort(rng.uniform(0, 1, 6)).astype(F32))
    q = jnp.asarray(np.concatenate([rng.uniform(-0.2, 1.2, 5), np.asarray(xs[:2])]).astype(F32))

    def f(xs, q):
        return (jnp.searchsorted(xs, q), jnp.searchsorted(xs, q, side="right"),
                jnp.interp(q, xs, xs ** 2))

    rebuilt = _rebuild(f, xs, q)
    got, want = jax.jit(rebuilt)(xs, q), jax.jit(f)(xs, q)
    np.testing.assert_array_equal(got[0], want[0])  # integer outputs: exact
    np.testing.assert_array_equal(got[1], np.searchsorted(np.asarray(xs), np.asarray(q), "right"))
    _close(got[2], want[2])
    m = rng.standard_normal((3, 3)).astype(F32)
    m = jnp.asarray(m @ m.T + np.eye(3, dtype=F32))

    def decomp(a):
        q_, r = jnp.linalg.qr(a)
        w, v = jnp.linalg.eigh(a)
        return q_ @ r, w, jnp.abs(v), jnp.linalg.svd(a, compute_uv=False), jnp.linalg.norm(a, 2)

    rebuilt = _rebuild(decomp, m)
    _close(jax.jit(rebuilt)(m), jax.jit(decomp)(m), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rebuilt(m)[1], np.linalg.eigvalsh(np.asarray(m)), rtol=1e-4)
