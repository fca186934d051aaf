"""Property tests: single primitives with random shapes and values (ties included)."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")
hypothesis = pytest.importorskip("hypothesis")
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from gradcode.decompiler import decompile, primitive_counts, to_function

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def tie_pairs(draw):
    """Two float32 arrays drawn from a tiny value set so ties are frequent."""
    shape = draw(shapes)
    size = int(np.prod(shape)) if shape else 1
    vals = st.sampled_from([-1.5, -0.0, 0.0, 1.0, 2.0])
    a = np.array(draw(st.lists(vals, min_size=size, max_size=size)), np.float32).reshape(shape)
    b = np.array(draw(st.lists(vals, min_size=size, max_size=size)), np.float32).reshape(shape)
    return a, b


def _roundtrip(fn, *args):
    rebuilt = to_function(decompile(fn, *args))
    got, want = rebuilt(*args), fn(*args)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.asarray(got).dtype == np.asarray(want).dtype
    assert primitive_counts(rebuilt, *args) == primitive_counts(fn, *args)


BINARY = [lax.gt, lax.lt, lax.ge, lax.le, lax.eq, lax.ne, lax.max, lax.min, lax.add, lax.sub,
          lax.mul]


@SETTINGS
@given(pair=tie_pairs(), op=st.sampled_from(BINARY))
def test_binary_with_ties(pair, op):
    a, b = (jnp.asarray(v) for v in pair)
    _roundtrip(lambda x, y: op(x, y), a, b)


UNARY = [jnp.exp, jnp.tanh, jnp.sin, jnp.floor, jnp.abs, jnp.negative, jax.nn.sigmoid, jnp.sign,
         lambda x: x ** 2, lambda x: jnp.round(x)]


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16), op=st.sampled_from(UNARY))
def test_unary(shape, seed, op):
    x = jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    _roundtrip(lambda v: op(v), x)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       seed=st.integers(0, 2**16), data=st.data(),
       op=st.sampled_from([jnp.sum, jnp.max, jnp.min, jnp.argmax, jnp.argmin, jnp.cumsum]))
def test_reductions_random_axis(shape, seed, data, op):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = np.random.default_rng(seed).integers(-2, 3, size=shape).astype(np.float32)  # ties
    _roundtrip(lambda v: op(v, axis=axis), jnp.asarray(x))


@SETTINGS
@given(seed=st.integers(0, 2**16), shape=st.lists(st.integers(1, 5), min_size=1, max_size=2).map(tuple),
       op=st.sampled_from([lax.div, lax.rem, lax.bitwise_and, lax.bitwise_or, lax.bitwise_xor,
                           lax.shift_left, lax.shift_right_arithmetic, lax.max, lax.min]))
def test_integer_ops(seed, shape, op):
    rng = np.random.default_rng(seed)
    a = rng.integers(-20, 20, size=shape).astype(np.int32)
    b = rng.integers(1, 6, size=shape).astype(np.int32) * rng.choice([-1, 1], size=shape).astype(np.int32)
    _roundtrip(lambda x, y: op(x, y), jnp.asarray(a), jnp.asarray(b))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(value=st.floats(width=32, allow_nan=False))
def test_float32_literal_exact(value):
    _roundtrip(lambda x: x + np.float32(value), jnp.zeros((), jnp.float32))
