"""API-level tests: literals, naming, errors, CLI helper, optional-jax behaviour."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest


def test_import_gradcode_without_jax():
    code = textwrap.dedent("""
        import sys
        import gradcode, gradcode.decompiler as d
        assert 'jax' not in sys.modules, 'import gradcode imported jax'
        sys.modules['jax'] = None      # from now on, import jax raises ImportError
        try:
            d.decompile(lambda x: x, 1.0)
        except ImportError as e:
            assert "pip install 'gradcode[jax]'" in str(e), e
        else:
            raise SystemExit('no ImportError')
    """)
    env_path = ":".join(p for p in sys.path if p)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path}, check=False)
    assert res.returncode == 0, res.stderr


jax = pytest.importorskip("jax")
import jax.numpy as jnp
from jax import lax

from gradcode.decompiler import cli_decompile, decompile, to_function
from gradcode.decompiler._literals import array_source, python_scalar_text
from gradcode.decompiler._naming import NameAllocator


def test_float_literals_are_exact():
    rng = np.random.default_rng(0)
    for v in rng.standard_normal(200).astype(np.float32):
        text = python_scalar_text(v, np.float32)
        assert np.float32(eval(text)) == v
    assert python_scalar_text(np.float32(0.1), np.float32) == "0.1"


def test_large_constant_exact_bits():
    arr = np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32)
    src = array_source(arr)
    assert src.startswith("_array(")
    ns: dict = {}
    exec("import base64\nimport numpy as np\nimport jax.numpy as jnp\n"  # noqa: S102
         + __import__("gradcode.decompiler._literals", fromlist=["x"]).ARRAY_HELPER_SOURCE, ns)
    back = eval(src, ns)
    assert back.tobytes() == arr.tobytes() and back.shape == arr.shape


def test_constant_in_decompiled_source_is_exact():
    table = jnp.asarray(np.random.default_rng(2).standard_normal(100).astype(np.float32))
    src = decompile(lambda x: x * table, jnp.ones(100))
    assert "base64" in src
    f = to_function(src)
    np.testing.assert_array_equal(f(jnp.ones(100)), table)


def test_names_avoid_keywords_and_imports():
    names = NameAllocator()
    got = [names.exact("lambda"), names.exact("jnp"), names.fresh("if"), names.fresh("x")]
    for n in got:
        assert n.isidentifier()
        assert n not in {"lambda", "jnp", "if"}


def test_comparisons_keep_strictness():
    src = decompile(lambda x, y: (x > y, x < y, jnp.maximum(x, y)), jnp.ones(3), jnp.ones(3))
    assert "lax.gt(" in src and "lax.lt(" in src and "lax.max(" in src
    assert ">=" not in src and "<=" not in src and "reduce_max" not in src


def test_dead_code_removed_and_signature_kept():
    def f(x, y):
        unused = jnp.sin(x) * 3  # noqa: F841
        return x + y
    src = decompile(f, jnp.ones(2), jnp.ones(2))
    assert "sin" not in src
    assert "def f(x, y):" in src


def test_pytree_signature():
    def f(params, x, *, scale):
        return {"out": params["w"] @ x * scale, "aux": (x.sum(),)}
    params = {"w": jnp.ones((2, 3))}
    src = decompile(f, params, jnp.ones(3), scale=jnp.float32(2.0))
    assert "def f(params, x, *, scale):" in src
    g = to_function(src)
    out = g(params, jnp.arange(3.0), scale=jnp.float32(2.0))
    np.testing.assert_allclose(out["out"], f(params, jnp.arange(3.0), scale=2.0)["out"])


def test_unsupported_primitive_named():
    def f(x):
        return jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct((2,), jnp.float32), x)
    with pytest.raises(NotImplementedError, match="pure_callback"):
        decompile(f, jnp.ones(2, jnp.float32))


def test_to_function_is_in_memory():
    before = list(sys.path)
    f = to_function("def double(x):\n    return 2 * x\n")
    assert f(3) == 6 and sys.path == before
    with pytest.raises(ValueError, match="name"):
        to_function("def a():\n    return 1\n", name="missing")


def test_cli_decompile_and_errors():
    src = cli_decompile("jax.numpy:tanh", ["3:float32"], grad=False)
    assert "lax.tanh" in src
    gsrc = cli_decompile("jax.numpy:sum", ["4"], grad=True)
    g = to_function(gsrc)
    np.testing.assert_allclose(g(jnp.arange(4.0)), np.ones(4))
    with pytest.raises(ValueError, match="module:function"):
        cli_decompile("jax.numpy.tanh", ["3"], grad=False)
    with pytest.raises(ValueError, match="cannot import"):
        cli_decompile("no_such_module_xyz:f", ["3"], grad=False)
    with pytest.raises(ValueError, match="shape"):
        cli_decompile("jax.numpy:tanh", ["3,x:float32"], grad=False)
    with pytest.raises(ValueError, match="dtype"):
        cli_decompile("jax.numpy:tanh", ["3:floaty"], grad=False)


def test_nested_functions_and_folding_readable():
    def f(x):
        return lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2.0 + 1.0, x)
    src = decompile(f, jnp.ones(2))
    assert "def body_fn" in src and "def cond_fn" in src and "lax.while_loop(" in src
    # single-use temporaries are folded: the loop body is one return line
    body = src.split("def body_fn")[1].split("return")[0]
    assert body.count(" = ") <= 1


def test_docstring_examples():
    """The examples of the public functions run (tests/test_doctests.py leaves them here)."""
    import doctest

    import gradcode.decompiler as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result


def _loss(w, x):
    return jnp.sum(jnp.tanh(x @ w) ** 2)


def test_to_function_finds_underscore_function():
    w, x = jnp.ones((3, 2)) * 0.1, jnp.arange(12.0).reshape(4, 3) / 10
    src = decompile(jax.grad(_loss), w, x)
    assert "def _loss(w, x):" in src and "__all__ = ['_loss']" in src
    g = to_function(src)
    np.testing.assert_allclose(g(w, x), jax.grad(_loss)(w, x), rtol=1e-6)
    src2 = decompile(jax.checkpoint(_loss), w, x)
    np.testing.assert_allclose(to_function(src2)(w, x), _loss(w, x), rtol=1e-6)
    # Without __all__: the only function, even if private; several public ones: ambiguous.
    assert to_function("def _only(x):\n    return x + 1\n")(1) == 2
    with pytest.raises(ValueError, match="several functions"):
        to_function("def a(x):\n    return x\n\ndef b(x):\n    return x\n")
    with pytest.raises(ValueError, match="no function"):
        to_function("X = 1\n")
    with pytest.raises(TypeError, match="name"):
        to_function("def a(x):\n    return x\n", name=3)


def test_to_function_docstring_says_it_executes():
    doc = to_function.__doc__
    assert "exec" in doc and "Security" in doc


def test_callback_errors_name_equation_and_remedy():
    from jax.experimental import io_callback

    def f(x):
        return jax.pure_callback(np.sin, jax.ShapeDtypeStruct((2,), jnp.float32), x)

    with pytest.raises(NotImplementedError, match=r"pure_callback\(callback=.*sin.*float32\[2\]"):
        decompile(f, jnp.ones(2, jnp.float32))

    def g(x):
        return io_callback(np.cos, jax.ShapeDtypeStruct((2,), jnp.float32), x)

    with pytest.raises(NotImplementedError, match="Decompile the function without it"):
        decompile(g, jnp.ones(2, jnp.float32))

    def h(x):
        jax.debug.callback(lambda v: None, x)
        return x * 2

    with pytest.raises(NotImplementedError, match="debug_callback"):
        decompile(h, jnp.ones(2, jnp.float32))


def test_debug_print_is_reemitted(capfd):
    def f(x):
        jax.debug.print("x={x}", x=x)
        return x * 2

    src = decompile(f, jnp.ones(2, jnp.float32))
    assert "jax.debug.print('x={x}', x=x" in src
    out = to_function(src)(jnp.asarray([1.5, 2.0], jnp.float32))
    np.testing.assert_array_equal(out, [3.0, 4.0])
    assert "x=[1.5 2. ]" in capfd.readouterr().out


def test_primitives_without_public_function_use_jax_extend_bind():
    xs = jnp.asarray([0.1, 0.4, 0.4, 0.9], jnp.float32)
    q = jnp.asarray([0.4, -1.0, 2.0, 0.5], jnp.float32)
    src = decompile(lambda a, b: (jnp.searchsorted(a, b), jnp.searchsorted(a, b, side="right")),
                    xs, q)
    assert "from jax.extend.core import primitives as prims" in src
    assert "prims.lt_to_p.bind(" in src and "prims.le_to_p.bind(" in src
    left, right = to_function(src)(xs, q)
    np.testing.assert_array_equal(left, np.searchsorted(np.asarray(xs), np.asarray(q), "left"))
    np.testing.assert_array_equal(right, np.searchsorted(np.asarray(xs), np.asarray(q), "right"))


def test_platform_dependent_and_svd_order():
    m = jnp.asarray([[3.0, 1.0], [1.0, 2.0]], jnp.float32)
    src = decompile(lambda a: (jnp.diagonal(a), jnp.linalg.svd(a)), m)
    assert "lax.platform_dependent(" in src and "platform_index" not in src
    diag, (u, s, vh) = to_function(src)(m)
    np.testing.assert_array_equal(diag, [3.0, 2.0])
    np.testing.assert_allclose((u * s) @ vh, m, atol=1e-5)
    np.testing.assert_allclose(s, np.linalg.svd(np.asarray(m), compute_uv=False), rtol=1e-5)
