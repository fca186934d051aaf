"""The walker: turns (nested) jaxprs into statements using the emitter registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._emit_basic import WEAK_LITERAL_OK
from ._emit_control import scan_layout
from ._emitters import lookup
from ._ir import Assign, Expr, FunctionDef, Line, Sym, raw, ref
from ._literals import array_source, scalar_source
from ._naming import NameAllocator, base_for_primitive, sanitize
from ._passes import cond_index_patterns, index_normalization_patterns, live_equations
from ._registry import EqnInfo

ArgGroup = tuple  # ("flat", n, base|None), ("tuple", n, base) or ("unused", 0, base)
RetBuilder = Callable[[list[Expr], list[Expr]], Expr]


def _is_literal(atom: Any) -> bool:
    return type(atom).__name__ == "Literal" or (hasattr(atom, "val") and not hasattr(atom, "count"))


def _is_default_dtype(dtype: Any) -> bool:
    import jax

    dt = np.dtype(dtype)
    if dt.kind == "f":
        return dt == jax.dtypes.canonicalize_dtype(float)
    if dt.kind == "i":
        return dt == jax.dtypes.canonicalize_dtype(int)
    return dt.kind == "b"


def weak_only_cast(eqn: Any) -> bool:
    """Whether ``eqn`` is a ``convert_element_type`` that changes only the weak type."""
    return (eqn.primitive.name == "convert_element_type"
            and np.dtype(eqn.invars[0].aval.dtype) == np.dtype(eqn.params["new_dtype"]))


class Context:
    """State shared while decompiling one function.

    Attributes:
        names: the identifier allocator.
        constants: module-level ``(name, source)`` pairs for array constants.
        rule_depth: >0 while emitting a custom JVP/VJP rule.
        uses_array_helper: whether the ``_array`` decoder is needed.
    """

    def __init__(self, names: NameAllocator) -> None:
        self.names = names
        self.constants: list[tuple[str, str]] = []
        self._const_cache: dict[int, Expr] = {}
        self._const_keep: list[Any] = []
        self.rule_depth = 0
        self.uses_array_helper = False
        self._bodies: list[list[Any]] = []
        self.jax_values: set[int] = set()

    # ----------------------------------------------------------- constants
    def const(self, value: Any) -> Expr:
        """Expression for a constant value; non-scalars become module constants."""
        key = id(value)
        if key in self._const_cache:
            return self._const_cache[key]
        arr = value
        dtype = getattr(arr, "dtype", None)
        if dtype is not None and "key<" in str(dtype):
            import jax

            data = np.asarray(jax.random.key_data(arr))
            impl = jax.random.key_impl(arr)
            src = f"jax.random.wrap_key_data({array_source(data)}, impl={str(impl)!r})"
        else:
            arr = np.asarray(value)
            if arr.ndim == 0:
                expr = raw(scalar_source(arr[()], arr.dtype, False))
                self._const_cache[key] = expr
                self._const_keep.append(value)
                return expr
            src = array_source(arr)
        if "_array(" in src:
            self.uses_array_helper = True
        name = self.names.fresh("const")
        self.constants.append((name, src))
        expr = raw(name)
        self._const_cache[key] = expr
        self._const_keep.append(value)
        return expr

    # --------------------------------------------------------------- atoms
    def atom(self, atom: Any, env: dict[int, Expr], weak_ok: bool) -> Expr:
        """Expression for a jaxpr atom (variable or literal)."""
        if _is_literal(atom):
            val = atom.val
            aval = atom.aval
            if np.shape(val) == () and "key<" not in str(aval.dtype):
                # A Python scalar takes its array partner's dtype only when that is
                # the default dtype for its kind (lax does not cast weak operands).
                weak = weak_ok and _is_default_dtype(aval.dtype)
                return raw(scalar_source(np.asarray(val)[()], aval.dtype, weak))
            return self.const(val)
        try:
            return env[id(atom)]
        except KeyError:
            raise RuntimeError(f"decompiler: variable {atom} used before definition") from None

    # ----------------------------------------------------------- structure
    def add_line(self, expr: Expr, prefix: str = "") -> None:
        """Append a fixed statement to the function being emitted."""
        self._bodies[-1].append(Line(expr, prefix))

    def add_def(self, fdef: Any) -> None:
        """Append a hand-built nested :class:`FunctionDef` to the function being emitted."""
        self._bodies[-1].append(fdef)

    def function(self, jaxpr: Any, consts: list[Any], hint: str, closure: list[Expr],
                 arg_groups: list[ArgGroup], ret: RetBuilder,
                 decorators: list[str] | tuple = ()) -> str:
        """Emit a nested function for ``jaxpr`` into the current body; return its name.

        Args:
            jaxpr: open jaxpr of the function.
            consts: values of ``jaxpr.constvars``.
            hint: base for the function name.
            closure: expressions bound to the first ``len(closure)`` invars
                (values the nested function closes over).
            arg_groups: parameters: ``("flat", n, base)`` gives n parameters,
                ``("tuple", n, base)`` one parameter unpacked into n values,
                ``("unused", 0, base)`` one parameter the body ignores.
            ret: builds the returned expression from output and input expressions.
            decorators: decorator texts.
        """
        name = self.names.fresh(sanitize(hint))
        fdef = self.build(jaxpr, consts, name, closure, arg_groups, ret, None)
        fdef.decorators = list(decorators)
        self._bodies[-1].append(fdef)
        return name

    def build(self, jaxpr: Any, consts: list[Any], name: str, closure: list[Expr],
              arg_groups: list[ArgGroup], ret: RetBuilder,
              param_names: list[str] | None) -> FunctionDef:
        """Build (without attaching) the :class:`FunctionDef` for ``jaxpr``."""
        env: dict[int, Expr] = {}
        for cv, val in zip(jaxpr.constvars, consts):
            env[id(cv)] = self.const(val)
        invars = list(jaxpr.invars)
        for v, e in zip(invars[:len(closure)], closure):
            env[id(v)] = e
        rest = invars[len(closure):]
        fdef = FunctionDef(name, [])
        prelude: list[Any] = []
        pos = 0
        dbg = getattr(jaxpr, "debug_info", None)
        arg_names = list(getattr(dbg, "arg_names", None) or [])
        arg_names = arg_names[len(closure):] if len(arg_names) == len(invars) else []
        for gi, group in enumerate(arg_groups):
            kind, n, base = group
            if kind == "unused":
                fdef.params.append(self.names.fresh(base))
                continue
            if kind == "flat":
                for k in range(n):
                    var = rest[pos]
                    pos += 1
                    if param_names is not None:
                        pname = param_names[pos - 1]
                    else:
                        hint = base or "a"
                        if pos - 1 < len(arg_names) and arg_names[pos - 1]:
                            cand = sanitize(str(arg_names[pos - 1]).split("[")[0].split(".")[0])
                            if cand and cand != "v":
                                hint = cand
                        pname = self.names.fresh(hint)
                    sym = Sym(pname)
                    if param_names is None:
                        self.jax_values.add(id(sym))
                    env[id(var)] = ref(sym)
                    fdef.params.append(pname)
            else:
                pname = self.names.fresh(base)
                fdef.params.append(pname)
                syms = []
                for k in range(n):
                    var = rest[pos]
                    pos += 1
                    sym = Sym(self.names.fresh(base[0] if base else "c"))
                    self.jax_values.add(id(sym))
                    env[id(var)] = ref(sym)
                    syms.append(sym)
                if syms:
                    prelude.append(Assign(syms, raw(pname), inlinable=False))
        if pos != len(rest):
            raise RuntimeError(f"decompiler: {name} expects {len(rest)} inputs, got {pos}")
        self._bodies.append(fdef.body)
        try:
            fdef.body.extend(prelude)
            self.emit_equations(jaxpr, env)
            outs = [self.atom(v, env, weak_ok=False) for v in jaxpr.outvars]
            ins = [self.atom(v, env, weak_ok=False) for v in rest]
            fdef.body.append(Line(ret(outs, ins), "return "))
        finally:
            self._bodies.pop()
        return fdef

    def emit_equations(self, jaxpr: Any, env: dict[int, Expr]) -> None:
        """Emit every live equation of ``jaxpr`` into the current body."""
        eqns = live_equations(jaxpr)
        index_of, absorbed = cond_index_patterns(eqns, list(jaxpr.outvars))
        overrides, absorbed_idx = index_normalization_patterns(eqns, list(jaxpr.outvars))
        absorbed |= absorbed_idx
        body = self._bodies[-1]
        for eqn in eqns:
            if id(eqn) in absorbed:
                for v in eqn.outvars:
                    env[id(v)] = raw("None")  # replaced by the consumer's pattern
                continue
            if weak_only_cast(eqn):
                # Only the weak type changes: values are identical, emit an alias.
                env[id(eqn.outvars[0])] = self.atom(eqn.invars[0], env, False)
                continue
            pname = eqn.primitive.name
            emitter = lookup(pname)
            has_var = any(not _is_literal(a) for a in eqn.invars)
            weak_ok = pname in WEAK_LITERAL_OK and has_var and not eqn.primitive.multiple_results
            invars = list(eqn.invars)
            for pos, atom in overrides.get(id(eqn), {}).items():
                invars[pos] = atom
            args = [self.atom(a, env, weak_ok) for a in invars]
            params = dict(eqn.params)
            if id(eqn) in index_of:
                kind, atom = index_of[id(eqn)]
                params["_index"] = (kind, None if atom is None else self.atom(atom, env, False))
            is_array = [
                (not _is_literal(a)) and self._is_jax_value(env[id(a)]) for a in invars
            ]
            info = EqnInfo(
                name=pname, args=args, params=params,
                in_avals=[a.aval for a in eqn.invars],
                out_avals=[v.aval for v in eqn.outvars],
                is_array=is_array, ctx=self,
            )
            expr = emitter(info)
            base = base_for_primitive(pname)
            syms: list[Any] = []
            for v in eqn.outvars:
                if type(v).__name__ == "DropVar":
                    syms.append(None)
                    continue
                sym = Sym(self.names.fresh(base))
                self.jax_values.add(id(sym))
                env[id(v)] = ref(sym)
                syms.append(sym)
            if eqn.primitive.multiple_results:
                target: Any = syms
                if expr.out_order is not None:
                    target = [syms[i] for i in expr.out_order]
                if pname == "scan":
                    nc = scan_layout(eqn.params)[1]
                    target = [syms[:nc], syms[nc:]]
                body.append(Assign(target, expr, inlinable=False))
            elif not syms:
                body.append(Assign([], expr, inlinable=False))  # effect only (e.g. a print)
            else:
                body.append(Assign(syms[0], expr, inlinable=syms[0] is not None))

    def _is_jax_value(self, expr: Expr) -> bool:
        pieces = expr.pieces
        if len(pieces) == 1 and hasattr(pieces[0], "sym"):
            return id(pieces[0].sym) in self.jax_values
        return False
