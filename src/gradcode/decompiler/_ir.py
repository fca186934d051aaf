"""Tiny statement/expression model the emitters build and the passes rewrite.

Expressions are lists of text pieces and :class:`Ref` pieces. A ``Ref``
points at a :class:`Sym` (one named value); the inlining pass can replace a
symbol by its defining expression without re-parsing any text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(eq=False)
class Sym:
    """One named Python value in the generated code.

    Attributes:
        name: its identifier.
        inline: defining expression once the inlining pass folded it away.
    """

    name: str
    inline: Expr | None = None


@dataclass(eq=False)
class Ref:
    """A use of a :class:`Sym` inside an expression."""

    sym: Sym


Piece = Union[str, Ref]


@dataclass(eq=False)
class Expr:
    """Source expression made of text and symbol references.

    Attributes:
        pieces: the text and :class:`Ref` parts, in order.
        atomic: ``True`` when it needs no parentheses when nested (a name,
            a call, a literal); ``False`` for operator expressions.
        out_order: for a multiple-result primitive whose public function
            returns its results in another order: position ``k`` of the
            returned tuple is primitive result ``out_order[k]``.
    """

    pieces: list[Piece]
    atomic: bool = True
    out_order: list[int] | None = None

    def refs(self) -> Iterator[Ref]:
        """Yield the references in this expression."""
        for p in self.pieces:
            if isinstance(p, Ref):
                yield p

    def render(self) -> str:
        """Return the source text, expanding inlined symbols."""
        out = []
        for p in self.pieces:
            if isinstance(p, Ref):
                sub = p.sym.inline
                if sub is None:
                    out.append(p.sym.name)
                else:
                    text = sub.render()
                    out.append(text if sub.atomic else f"({text})")
            else:
                out.append(p)
        return "".join(out)


def raw(text: str) -> Expr:
    """Expression made of fixed text only."""
    return Expr([text])


def ref(sym: Sym) -> Expr:
    """Expression that names one symbol."""
    return Expr([Ref(sym)])


Arg = Union[Expr, str, Any]


def as_expr(value: Arg) -> Expr:
    """Coerce a parameter value to an expression (text is taken verbatim).

    Non-text values go through :func:`gradcode.decompiler._params.param_source`.
    """
    if isinstance(value, Expr):
        return value
    if isinstance(value, str):
        return raw(value)
    from ._params import param_source

    return raw(param_source(value))


def join(items: list[Arg], sep: str = ", ") -> list[Piece]:
    """Concatenate the pieces of several expressions with a separator."""
    pieces: list[Piece] = []
    for i, item in enumerate(items):
        if i:
            pieces.append(sep)
        pieces.extend(as_expr(item).pieces)
    return pieces


def call(fn: str, *args: Arg, **kwargs: Arg) -> Expr:
    """Expression ``fn(arg, ..., key=value, ...)``.

    Example:
        >>> call("lax.add", "a", "b").render()
        'lax.add(a, b)'
    """
    items: list[Arg] = list(args)
    for key, value in kwargs.items():
        e = as_expr(value)
        items.append(Expr([f"{key}=", *e.pieces]))
    return Expr([f"{fn}(", *join(items), ")"])


def seq(items: list[Arg], bracket: str = "[]") -> Expr:
    """Expression for a list (``"[]"``) or tuple (``"()"``) literal."""
    open_, close = bracket
    tail = "," if bracket == "()" and len(items) == 1 else ""
    return Expr([open_, *join(items), tail, close])


def binop(op: str, a: Arg, b: Arg) -> Expr:
    """Expression ``a <op> b``; operands get parentheses when not atomic."""
    ea, eb = as_expr(a), as_expr(b)
    pa = ea.pieces if ea.atomic else ["(", *ea.pieces, ")"]
    pb = eb.pieces if eb.atomic else ["(", *eb.pieces, ")"]
    return Expr([*pa, f" {op} ", *pb], atomic=False)


@dataclass(eq=False)
class Assign:
    """``targets = expr``; ``targets`` is a Sym, or a nested list of Syms/None."""

    target: Any
    expr: Expr
    inlinable: bool = True


@dataclass(eq=False)
class Line:
    """A fixed statement such as a ``return`` or decorator application."""

    expr: Expr
    prefix: str = ""


@dataclass(eq=False)
class FunctionDef:
    """A nested ``def``: parameters, body statements, optional decorators."""

    name: str
    params: list[str]
    body: list[Any] = field(default_factory=list)
    decorators: list[str] = field(default_factory=list)
    doc: str | None = None


def walk_refs(stmt: Any) -> Iterator[Ref]:
    """Yield every reference a statement reads, including nested functions."""
    if isinstance(stmt, (Assign, Line)):
        yield from stmt.expr.refs()
    elif isinstance(stmt, FunctionDef):
        for s in stmt.body:
            yield from walk_refs(s)
