"""Render statements into the text of a self-contained Python module."""

from __future__ import annotations

from typing import Any

from ._ir import Assign, FunctionDef, Line, Sym
from ._literals import ARRAY_HELPER_SOURCE

INDENT = "    "


def _target_text(target: Any, top: bool = True) -> str:
    if target is None:
        return "_"
    if isinstance(target, Sym):
        return target.name
    parts = [_target_text(t, top=False) for t in target]
    if len(parts) == 0:
        return "()"
    text = ", ".join(parts) + ("," if len(parts) == 1 else "")
    return text if top else f"({text})"


def render_statements(body: list[Any], depth: int) -> list[str]:
    """Return source lines for a statement list at indentation ``depth``."""
    pad = INDENT * depth
    lines: list[str] = []
    for stmt in body:
        if isinstance(stmt, Assign):
            target = _target_text(stmt.target)
            if target == "()":
                lines.append(f"{pad}{stmt.expr.render()}")
            else:
                lines.append(f"{pad}{target} = {stmt.expr.render()}")
        elif isinstance(stmt, Line):
            lines.append(f"{pad}{stmt.prefix}{stmt.expr.render()}")
        elif isinstance(stmt, FunctionDef):
            lines.extend(render_function(stmt, depth))
        else:  # pragma: no cover - defensive
            raise TypeError(f"render_statements: unknown statement type {type(stmt).__name__}")
    return lines


def render_function(fdef: FunctionDef, depth: int) -> list[str]:
    """Return source lines of a (possibly nested) function definition."""
    pad = INDENT * depth
    lines = [f"{pad}@{d}" for d in fdef.decorators]
    lines.append(f"{pad}def {fdef.name}({', '.join(fdef.params)}):")
    if fdef.doc:
        lines.append(f'{pad}{INDENT}"""{fdef.doc}"""')
    lines.extend(render_statements(fdef.body, depth + 1))
    return lines


def render_module(fdef: FunctionDef, constants: list[tuple[str, str]], array_helper: bool,
                  header: str) -> str:
    """Return the full module text: imports, constants, ``__all__``, then the function."""
    out = [f'"""{header}"""', ""]
    if array_helper:
        out.append("import base64")
        out.append("")
    out += ["import jax", "import jax.numpy as jnp", "import numpy as np", "from jax import lax", ""]
    if array_helper:
        out += ["", ARRAY_HELPER_SOURCE.rstrip("\n")]
    if constants:
        out.append("")
        for name, src in constants:
            out.append(f"{name} = {src}")
    out += ["", f"__all__ = [{fdef.name!r}]"]
    while out and out[-1] == "":
        out.pop()
    out += ["", ""]
    out.extend(render_function(fdef, 0))
    return "\n".join(out) + "\n"
