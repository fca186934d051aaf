"""Parameter layouts that differ between JAX releases (0.10 and 0.12 are both tested).

Each test checks the property on whichever JAX is installed: scan operand
grouping (``num_consts``/``num_carry`` or the ``ft_in`` flat tree), rule
constants (``constvars`` or hoisted leading ``invars``), the ``AccuracyMode``
enum, custom VJPs with closed-over operands, high-level primitives
(``call_hi_primitive``) under ``vmap``, and variadic ``reduce`` (what 0.12's
``jnp.minmax`` traces).
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp
from jax import lax

from gradcode.decompiler import decompile, to_function
from gradcode.decompiler._emit_control import scan_layout
from gradcode.decompiler._params import param_source


def _eqns(jaxpr):
    """Every equation of a jaxpr, nested jaxprs included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def test_scan_layout_reads_the_installed_scan_parameters():
    def f(w, h0, c0, xs):
        def step(carry, x):
            h, c = carry
            return (jnp.tanh(h * w + x), c + 1.0), h
        return lax.scan(step, (h0, c0), xs)

    v = jnp.ones(3, jnp.float32)
    closed = jax.make_jaxpr(f)(v, v, jnp.float32(0.0), jnp.ones((4, 3), jnp.float32))
    (scan,) = [e for e in _eqns(closed.jaxpr) if e.primitive.name == "scan"]
    n_consts, n_carry = scan_layout(scan.params)
    assert (n_consts, n_carry) == (1, 2)  # w closed over; carry (h, c); one xs
    assert len(scan.invars) == n_consts + n_carry + 1


def test_scan_layout_reads_the_named_counts_and_rejects_unknown_layouts():
    assert scan_layout({"num_consts": 3, "num_carry": 1, "length": 2}) == (3, 1)
    with pytest.raises(NotImplementedError, match="scan"):
        scan_layout({"length": 2, "reverse": False})


def test_accuracy_mode_parameter_round_trips():
    assert param_source(lax.AccuracyMode.HIGHEST) == "lax.AccuracyMode.HIGHEST"
    assert eval(param_source(lax.AccuracyMode.DEFAULT), {"lax": lax}) is lax.AccuracyMode.DEFAULT

    def f(x):
        return lax.exp(x, accuracy=lax.AccuracyMode.HIGHEST) + lax.log(x)

    x = jnp.asarray([0.5, 1.0, 2.5], jnp.float32)
    src = decompile(f, x)
    assert "accuracy=lax.AccuracyMode.HIGHEST" in src
    np.testing.assert_array_equal(to_function(src)(x), f(x))


_SLOPES = np.asarray([3.0, -1.0, 0.5, 7.0], np.float32)


@jax.custom_jvp
def _sin_with_table_slope(x):
    return jnp.sin(x)


@_sin_with_table_slope.defjvp
def _table_slope_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), jnp.asarray(_SLOPES) * t  # deliberately not cos(x): a closed-over array


def test_custom_jvp_rule_with_a_closed_over_array_is_kept():
    x = jnp.asarray([0.1, 0.2, 0.3, 0.4], jnp.float32)
    src = decompile(_sin_with_table_slope, x)
    assert "defjvp" in src
    rebuilt = to_function(src)
    np.testing.assert_array_equal(rebuilt(x), jnp.sin(x))
    grad = jax.grad(lambda v: jnp.sum(rebuilt(v)))(x)
    np.testing.assert_array_equal(grad, _SLOPES)  # the rule's table, not cos(x)


def _scale_by(x, y):
    @jax.custom_vjp
    def f(a):
        return a * y  # closes over y: the equation gets num_consts=1

    def fwd(a):
        # No closure over y here: a rule closing over the outer trace's values
        # cannot be written as source (the decompiler then keeps the primal only).
        return 2.0 * a, a

    def bwd(a, g):
        return (3.0 * a * g,)  # deliberately not y * g

    f.defvjp(fwd, bwd)
    return f(x)


def test_custom_vjp_with_a_closed_over_operand_keeps_its_rule():
    x = jnp.asarray([0.0, 1.0, 2.0], jnp.float32)
    y = jnp.asarray([5.0, 5.0, -2.0], jnp.float32)
    closed = jax.make_jaxpr(_scale_by)(x, y)
    (eqn,) = [e for e in _eqns(closed.jaxpr) if e.primitive.name.startswith("custom_vjp")]
    assert eqn.params["num_consts"] == 1
    src = decompile(_scale_by, x, y)
    assert "defvjp" in src
    rebuilt = to_function(src)
    np.testing.assert_array_equal(rebuilt(x, y), x * y)
    grad = jax.grad(lambda v: jnp.sum(rebuilt(v, y)))(x)
    np.testing.assert_array_equal(grad, 3.0 * x)  # the bwd rule, not y


def test_vmapped_searchsorted_matches_numpy_row_by_row():
    rng = np.random.default_rng(7)
    table = np.sort(rng.uniform(0, 1, (3, 5)).astype(np.float32), axis=1)
    queries = np.concatenate([rng.uniform(-0.2, 1.2, (3, 4)), table[:, :2]], axis=1)
    queries = queries.astype(np.float32)

    def f(t, q):
        return (jax.vmap(jnp.searchsorted)(t, q),
                jax.vmap(lambda a, b: jnp.searchsorted(a, b, side="right"))(t, q),
                jax.vmap(jnp.searchsorted, in_axes=(None, 0))(t[0], q))

    src = decompile(f, jnp.asarray(table), jnp.asarray(queries))
    assert "call_hi_primitive_p" not in src and "_prim=" not in src
    left, right, shared = to_function(src)(jnp.asarray(table), jnp.asarray(queries))
    for i in range(3):
        np.testing.assert_array_equal(left[i], np.searchsorted(table[i], queries[i], "left"))
        np.testing.assert_array_equal(right[i], np.searchsorted(table[i], queries[i], "right"))
        np.testing.assert_array_equal(shared[i], np.searchsorted(table[0], queries[i], "left"))


def test_variadic_reduce_and_reduce_window_call_the_reducer_on_tuples():
    def argmin_pair(acc, val):  # keeps (smallest value, its index): a true two-operand reducer
        (av, ai), (vv, vi) = acc, val
        take = (vv < av) | ((vv == av) & (vi < ai))
        return jnp.where(take, vv, av), jnp.where(take, vi, ai)

    def f(x):
        idx = lax.broadcasted_iota(jnp.int32, x.shape, 1)
        red = lax.reduce((x, idx), (jnp.float32(np.inf), jnp.int32(2**31 - 1)), argmin_pair, (1,))
        win = lax.reduce_window((x, idx), (jnp.float32(np.inf), jnp.int32(2**31 - 1)),
                                argmin_pair, (1, 3), (1, 1), "VALID")
        return red, win

    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, (3, 6)).astype(np.float32)  # ties exercise the index rule
    src = decompile(f, jnp.asarray(x))
    (mins, args), (wmins, wargs) = to_function(src)(jnp.asarray(x))
    np.testing.assert_array_equal(mins, x.min(axis=1))
    np.testing.assert_array_equal(args, x.argmin(axis=1))
    windows = np.stack([x[:, j:j + 3] for j in range(4)], axis=1)  # (3, 4, 3)
    np.testing.assert_array_equal(wmins, windows.min(axis=2))
    np.testing.assert_array_equal(wargs, windows.argmin(axis=2) + np.arange(4))
