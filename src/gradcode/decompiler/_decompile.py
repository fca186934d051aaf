"""Top level: trace a function, name its inputs, emit, fold, and render."""

from __future__ import annotations

import importlib
import inspect
import keyword
import re
from collections.abc import Callable
from typing import Any

from ._context import Context
from ._ir import Expr, as_expr, call, raw, seq
from ._naming import IMPORT_NAMES, NameAllocator, sanitize
from ._passes import fold_temporaries
from ._writer import render_module


def _function_name(fn: Callable) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        return "decompiled"
    if name in IMPORT_NAMES or name.startswith("<"):
        return "decompiled"
    return name


def _parameter_names(fn: Callable, n_args: int, kwarg_names: list[str]) -> list[str]:
    """Names for the positional example arguments, from ``fn``'s signature if possible."""
    names: list[str] = []
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        for p in sig.parameters.values():
            if len(names) == n_args:
                break
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                if p.name not in kwarg_names:
                    names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                while len(names) < n_args:
                    names.append(f"{p.name}_{len(names)}")
    while len(names) < n_args:
        names.append(f"arg{len(names)}")
    return names


def _path_text(path: tuple) -> str:
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "_".join(parts)


class _Leaf:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def _structure_source(node: Any, leaves: list[Expr]) -> Expr:
    """Source rebuilding an output pytree from leaf expressions."""
    if isinstance(node, _Leaf):
        return leaves[node.index]
    if node is None:
        return raw("None")
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        cls = type(node)
        mod = cls.__module__
        items = [Expr([f"{f}=", *_structure_source(getattr(node, f), leaves).pieces])
                 for f in node._fields]
        return call(f"importlib.import_module({mod!r}).{cls.__qualname__}", *items)
    if isinstance(node, tuple):
        return seq([_structure_source(x, leaves) for x in node], "()")
    if isinstance(node, list):
        return seq([_structure_source(x, leaves) for x in node], "[]")
    if isinstance(node, dict):
        items: list[Any] = []
        for k, v in node.items():
            if not isinstance(k, (str, int, bool)):
                raise NotImplementedError(
                    f"decompile: output dict key {k!r} has no source form (use str/int keys)")
            items.append(Expr([repr(k), ": ", *_structure_source(v, leaves).pieces]))
        return Expr(["{", *seq(items, "[]").pieces[1:-1], "}"])
    raise NotImplementedError(
        f"decompile: output pytree node of type {type(node).__name__!r} is not supported "
        f"(supported: tuple, list, dict, None, namedtuple)")


def decompile_impl(fn: Callable, args: tuple, kwargs: dict) -> str:
    """Implementation of :func:`gradcode.decompiler.decompile` (jax already imported)."""
    import jax

    if not callable(fn):
        raise TypeError(f"decompile: fn must be callable, got {type(fn).__name__} {fn!r}")
    flat_in, in_tree = jax.tree_util.tree_flatten((args, kwargs))
    store: dict[str, Any] = {}

    def flat_fn(*leaves):
        a, k = jax.tree_util.tree_unflatten(in_tree, leaves)
        out = fn(*a, **k)
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        store["tree"] = out_tree
        return out_leaves

    closed = jax.make_jaxpr(flat_fn)(*flat_in)
    fname = _function_name(fn)
    kw_names = list(kwargs)
    pos_names = _parameter_names(fn, len(args), kw_names)
    names = NameAllocator(reserved={fname, "importlib"})

    # Parameters and the names of their leaves.
    params_src: list[str] = []
    leaf_names: list[str] = []
    unpack: list[tuple[str, list[str]]] = []
    for i, (pname, value) in enumerate([*zip(pos_names, args), *kwargs.items()]):
        real = names.exact(pname)
        if i == len(args):
            params_src.append("*")
        params_src.append(real)
        with_path = jax.tree_util.tree_flatten_with_path(value)[0]
        is_leaf = len(with_path) == 1 and with_path[0][0] == ()
        if is_leaf:
            leaf_names.append(real)
        else:
            sub = [names.fresh(sanitize(f"{real}_{_path_text(p)}") + "_") if False else
                   names.exact(sanitize(f"{real}_{_path_text(p)}")) for p, _ in with_path]
            leaf_names.extend(sub)
            if sub:
                unpack.append((real, sub))
    ctx = Context(names)
    ret_tree = store["tree"]

    def build_ret(outs: list[Expr], ins: list[Expr]) -> Expr:
        skeleton = jax.tree_util.tree_unflatten(ret_tree, [_Leaf(i) for i in range(len(outs))])
        return _structure_source(skeleton, outs)

    fdef = ctx.build(closed.jaxpr, list(closed.consts), fname, [],
                     [("flat", len(flat_in), None)], build_ret, leaf_names)
    fdef.params = [p for p in params_src]
    from ._ir import Assign, Sym

    pre = []
    for real, sub in unpack:
        pre.append(Assign([Sym(s) for s in sub], call("jax.tree_util.tree_leaves", real),
                          inlinable=False))
    fdef.body = pre + fold_temporaries(fdef.body)
    needs_importlib = any("importlib.import_module" in line for line in
                          [s.expr.render() for s in fdef.body if hasattr(s, "expr")])
    header = (f"Decompiled by gradcode.decompiler from {getattr(fn, '__qualname__', fname)!s}.\n\n"
              "Regenerate rather than hand-edit if the original changes.\n")
    text = render_module(fdef, ctx.constants, ctx.uses_array_helper, header)
    if needs_importlib:
        text = text.replace("import jax\n", "import importlib\n\nimport jax\n", 1)
    if re.search(r"(?<![\w.])prims\.", text):
        text = text.replace("from jax import lax\n",
                            "from jax import lax\nfrom jax.extend.core import primitives as prims\n",
                            1)
    if "jax.extend.random." in text:
        text = text.replace("import jax\n", "import jax\nimport jax.extend.random\n", 1)
    return text


def to_function_impl(source: str, name: str | None) -> Callable:
    """Execute ``source`` in a fresh namespace and return its function.

    Without ``name``: the single name listed in the source's ``__all__`` (what
    :func:`decompile_impl` writes), else the only function the source defines,
    else the only public one; anything else is ambiguous and raises.
    """
    if not isinstance(source, str):
        raise TypeError(f"to_function: source must be str, got {type(source).__name__}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"to_function: name must be str or None, got {type(name).__name__}")
    module = "gradcode_decompiled"
    namespace: dict[str, Any] = {"__name__": module}
    code = compile(source, "<gradcode.decompiler>", "exec")
    exec(code, namespace)  # noqa: S102 - executing the given source is the documented purpose
    if name is None:
        listed = namespace.get("__all__")
        funcs = [k for k, v in namespace.items()
                 if inspect.isfunction(v) and v.__module__ == module]
        public = [k for k in funcs if not k.startswith("_")]
        if isinstance(listed, (list, tuple)) and len(listed) == 1:
            name = listed[0]
        elif len(funcs) == 1:
            name = funcs[0]
        elif len(public) == 1:
            name = public[0]
        elif not funcs:
            raise ValueError("to_function: source defines no function")
        else:
            raise ValueError(f"to_function: source defines several functions {funcs}; "
                             f"pass name= to choose one")
    if name not in namespace or not callable(namespace[name]):
        raise ValueError(f"to_function: name must name a function in the source, got {name!r}")
    return namespace[name]


def parse_shape(spec: str) -> Any:
    """Parse ``"3,4:float32"`` (or ``":int32"``, ``"3"``) into a ``jax.ShapeDtypeStruct``.

    Raises:
        ValueError: naming the malformed spec.
    """
    import jax
    import numpy as np

    if not isinstance(spec, str):
        raise TypeError(f"args_shapes: each entry must be str like '3,4:float32', got {spec!r}")
    shape_txt, _, dtype_txt = spec.strip().partition(":")
    shape_txt = shape_txt.strip().strip("()[]")
    try:
        shape = tuple(int(s) for s in shape_txt.split(",") if s.strip())
    except ValueError:
        raise ValueError(
            f"args_shapes: shape must be comma-separated non-negative ints, got {spec!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"args_shapes: dimensions must be >= 0, got {spec!r}")
    dtype_txt = dtype_txt.strip() or "float32"
    try:
        dtype = jax.numpy.dtype(dtype_txt)
    except TypeError:
        raise ValueError(
            f"args_shapes: dtype must be a numpy dtype name such as float32, got {dtype_txt!r} "
            f"in {spec!r}") from None
    return jax.ShapeDtypeStruct(shape, np.dtype(dtype))


def load_target(target: str) -> Callable:
    """Import ``"package.module:function"`` (attribute paths allowed after the colon).

    Raises:
        ValueError: if the target is malformed, the module cannot be imported,
            or the attribute is missing or not callable.
    """
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"target: must look like 'module:function', got {target!r}")
    mod_name, attr_path = (s.strip() for s in target.split(":"))
    if not mod_name or not attr_path:
        raise ValueError(f"target: module and function must be non-empty, got {target!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"target: cannot import module {mod_name!r} ({exc})") from exc
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"target: {mod_name!r} has no attribute path {attr_path!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"target: {target!r} is not callable")
    return obj


__all__ = ["as_expr", "decompile_impl", "load_target", "parse_shape", "to_function_impl"]
