"""JAX decompiler: turn a JAX function (or its gradient) into editable Python source.

The function is traced to a closed jaxpr, whose equations are walked (never
the printed text) and re-emitted through public ``jax`` / ``jax.numpy`` /
``jax.lax`` calls by one emitter per primitive. Nested jaxprs (``jit``,
``cond``, ``while``, ``scan``, ``checkpoint``, custom JVP/VJP rules) become
nested named functions; dead equations are dropped and single-use
temporaries folded.

Reference: Pochelu, "JaxDecompiler: Redefining Gradient-Informed Software
Design", arXiv 2403.10571, 2024.

Importing this package does not import JAX; the functions do, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["cli_decompile", "decompile", "primitive_counts", "to_function"]

_INSTALL_HINT = (
    "gradcode.decompiler needs JAX, an optional extra: pip install 'gradcode[jax]'"
)


def _require_jax() -> None:
    try:
        import jax  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised without jax
        raise ImportError(_INSTALL_HINT) from exc


def decompile(fn: Callable, *example_args: Any, **example_kwargs: Any) -> str:
    """Return Python source of a function computing the same values as ``fn``.

    The source is a self-contained module (imports, exact constants, one
    function with ``fn``'s parameter names; pytrees in and out) using
    ``jax.numpy`` and ``jax.lax``.

    Args:
        fn: a JAX-traceable callable, e.g. ``f``, ``jax.grad(f)``,
            ``jax.vmap(f)``, ``jax.jit(f)``.
        *example_args: example positional arguments (arrays, scalars,
            pytrees, or ``jax.ShapeDtypeStruct``) fixing shapes and dtypes.
        **example_kwargs: example keyword arguments; they become
            keyword-only parameters of the generated function.

    Returns:
        The module source as a string.

    Raises:
        TypeError: if ``fn`` is not callable.
        NotImplementedError: naming the primitive when a primitive has no emitter.
        ImportError: when JAX is not installed (with the install command).

    Example:
        >>> import jax.numpy as jnp
        >>> src = decompile(lambda x: jnp.sin(x) * 2.0, jnp.ones(3))
        >>> "lax.sin" in src
        True
    """
    _require_jax()
    from ._decompile import decompile_impl

    return decompile_impl(fn, example_args, example_kwargs)


def to_function(source: str, name: str | None = None) -> Callable:
    """Execute decompiled source in memory and return its function.

    **Security: this runs ``exec`` on ``source``.** Any Python code in it is
    executed with your privileges, exactly like importing a module. Only pass
    text you generated with :func:`decompile` or otherwise trust.

    Nothing is written to disk and ``sys.path`` is not touched; the source is
    executed in a fresh namespace.

    Args:
        source: text returned by :func:`decompile` (or any trusted module source).
        name: function to return. Default: the one name in the source's
            ``__all__`` (``decompile`` writes it, whatever the function is
            called, e.g. ``_loss``), else the only function defined, else the
            only public one.

    Returns:
        The compiled function.

    Raises:
        TypeError: if ``source`` is not a string or ``name`` not a string/None.
        ValueError: if ``name`` is not a function of the source, or no name is
            given and the source defines no function or several candidates.
        SyntaxError: if the source does not compile.

    Example:
        >>> f = to_function("def _double(x):\\n    return 2 * x\\n")
        >>> f(3)
        6
    """
    from ._decompile import to_function_impl

    return to_function_impl(source, name)


def cli_decompile(target: str, args_shapes: list[str], grad: bool = False) -> str:
    """Decompile ``"module:function"`` for the given argument shapes (CLI backend).

    Args:
        target: ``"package.module:function"``.
        args_shapes: one spec per positional argument, ``"3,4:float32"``;
            an empty shape (``":float32"`` or ``""``) is a scalar; the dtype
            defaults to ``float32``.
        grad: decompile ``jax.grad(function)`` (w.r.t. the first argument)
            instead of the function.

    Returns:
        The module source.

    Raises:
        ValueError: for a malformed target or shape spec, naming the value.
        ImportError: when JAX is not installed.

    Example:
        >>> src = cli_decompile("jax.numpy:tanh", ["3:float32"], grad=False)
        >>> "lax.tanh" in src
        True
    """
    _require_jax()
    import jax

    from ._decompile import load_target, parse_shape

    if not isinstance(args_shapes, (list, tuple)):
        raise ValueError(f"args_shapes: must be a list of specs like '3,4:float32', "
                         f"got {args_shapes!r}")
    fn = load_target(target)
    specs = [parse_shape(s) for s in args_shapes]
    try:
        import inspect

        inspect.signature(fn).bind(*specs)
    except TypeError as exc:
        raise ValueError(f"args_shapes: {target} cannot take {len(specs)} positional "
                         f"argument(s) ({exc}); give one spec per argument") from None
    except ValueError:  # no signature (some builtins): let tracing decide
        pass
    if grad:
        if not specs:
            raise ValueError("args_shapes: --grad needs at least one argument, got []")
        base = fn
        fn = jax.grad(base)
        try:
            fn.__name__ = f"grad_{getattr(base, '__name__', 'fn')}"
        except (AttributeError, TypeError):  # pragma: no cover
            pass
    return decompile(fn, *specs)


def primitive_counts(fn_or_jaxpr: Any, *example_args: Any, **example_kwargs: Any):
    """Count primitives (live equations, nested jaxprs included) of a function or jaxpr.

    Args:
        fn_or_jaxpr: a ``ClosedJaxpr``/``Jaxpr``, or a function traced with the
            example arguments.

    Returns:
        ``collections.Counter`` of primitive names (``pjit`` counted as ``jit``,
        ``add_any`` as ``add``).

    Example:
        >>> import jax.numpy as jnp
        >>> primitive_counts(jnp.sin, 1.0)["sin"]
        1
    """
    _require_jax()
    from ._passes import primitive_counts as _counts

    if callable(fn_or_jaxpr) and not hasattr(fn_or_jaxpr, "eqns"):
        import jax

        fn = fn_or_jaxpr
        flat, tree = jax.tree_util.tree_flatten((example_args, example_kwargs))

        def flat_fn(*leaves):
            a, k = jax.tree_util.tree_unflatten(tree, leaves)
            return fn(*a, **k)

        return _counts(jax.make_jaxpr(flat_fn)(*flat))
    return _counts(fn_or_jaxpr)
