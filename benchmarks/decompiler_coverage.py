"""Primitive coverage of the JAX decompiler, generated from JAX itself.

Sweeps every public function of jax.numpy (+ linalg, fft), jax.scipy (special,
linalg, signal, stats), jax.nn, jax.lax (+ linalg), jax.random (threefry and
rbg keys), with and without ``jax.grad``, plus curated cases (CNN with max
pooling, linear solves, FFT loss, Jacobians, control flow, collectives under
``vmap``, optax optimizers and losses). Each case is traced, decompiled,
executed, and compared with the original under ``jax.jit`` (exact for integer,
boolean and key outputs). A primitive is *reachable* when some case's jaxpr
contains it, *supported* when every case containing it decompiles, and
*round-trip checked* when at least one case containing it round-trips with
matching values.

Writes ``docs/decompiler-coverage.md``. Run (about 5-10 minutes on 2 cores):
    python benchmarks/decompiler_coverage.py [--quick] [--out docs/decompiler-coverage.md]

``--quick`` round-trips a case only while one of its primitives has fewer than
two round-trip checks (faster; the full run checks every case).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "decompiler"))

from _api_surface import (  # noqa: E402  (after the sys.path setup)
    SURFACE_MODULES,
    curated_cases,
    grad_case,
    random_cases,
    surface_cases,
)

from gradcode.decompiler import decompile, to_function  # noqa: E402
from gradcode.decompiler._passes import primitive_counts  # noqa: E402

#: Callback primitives: Python functions have no source form (clear error by design).
CALLBACKS = {
    "pure_callback": "calls a Python function; no source form (decompile raises a clear error)",
    "io_callback": "calls a Python function; no source form (decompile raises a clear error)",
    "debug_callback": "calls a Python function; no source form (decompile raises a clear error)",
}


def all_cases():
    """Every case: (id, fn, args)."""
    for module in SURFACE_MODULES:
        for case in surface_cases(module):
            yield case
            g = grad_case(*case)
            if g is not None:
                yield g
    yield from random_cases()
    yield from curated_cases()
    yield ("pure_callback", lambda x: jax.pure_callback(
        lambda v: v, jax.ShapeDtypeStruct((4,), jnp.float32), x), (jnp.ones(4, jnp.float32),))


def primitives_of(fn, args) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return set(primitive_counts(jax.make_jaxpr(fn)(*args), normalize=False))


def _comparable(x):
    x = jnp.asarray(x) if not isinstance(x, jax.Array) else x
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def values_match(got, want) -> str | None:
    """None when the pytrees match (exact for ints/bools/keys), else a reason."""
    gl, gt = jax.tree_util.tree_flatten(got)
    wl, wt = jax.tree_util.tree_flatten(want)
    if gt != wt:
        return f"output structure {gt} != {wt}"
    for g, w in zip(gl, wl):
        g, w = _comparable(g), _comparable(w)
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"dtype/shape {g.dtype}{g.shape} != {w.dtype}{w.shape}"
        if g.dtype.kind in "biuV" or w.dtype.kind in "biu":
            if not np.array_equal(g, w):
                return "integer/boolean values differ"
        elif not np.allclose(g, w, rtol=1e-4, atol=1e-5, equal_nan=True):
            return f"values differ (max abs err {np.nanmax(np.abs(g - w)):.3g})"
    return None


def check_case(fn, args) -> tuple[str, str]:
    """('ok' | 'mismatch' | 'error', detail)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = decompile(fn, *args)
            rebuilt = to_function(src)
            want = jax.jit(fn)(*args)
            got = jax.jit(rebuilt)(*args)
    except Exception as exc:  # noqa: BLE001 - recorded in the table
        return "error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    why = values_match(got, want)
    return ("ok", "") if why is None else ("mismatch", why)


def run(quick: bool, verbose: bool):
    seen: dict[str, list[str]] = defaultdict(list)      # primitive -> case ids
    checked: dict[str, list[str]] = defaultdict(list)   # primitive -> round-tripped case ids
    failed: dict[str, list[str]] = defaultdict(list)    # primitive -> "case: reason"
    failures: list[tuple[str, str, str]] = []
    n_cases = 0
    for cid, fn, args in all_cases():
        try:
            prims = primitives_of(fn, args)
        except Exception:  # noqa: BLE001, S112 - not traceable with these args: not a case
            continue
        n_cases += 1
        for p in prims:
            seen[p].append(cid)
        if quick and prims and all(len(checked[p]) >= 2 for p in prims):
            continue
        status, detail = check_case(fn, args)
        if status == "ok":
            for p in prims:
                checked[p].append(cid)
        else:
            failures.append((cid, status, detail))
            if verbose:
                print(f"FAIL {cid}: {status} {detail}", flush=True)
            named = [p for p in prims if repr(p) in detail]
            for p in named or prims:
                failed[p].append(f"{cid}: {detail}")
    return seen, checked, failed, failures, n_cases


def render(seen, checked, failed, failures, n_cases, seconds, quick=False) -> str:
    registered = set()
    from jax.extend.core import primitives as prims

    for attr in dir(prims):
        name = getattr(getattr(prims, attr), "name", None)
        if isinstance(name, str):
            registered.add(name)
    reach = sorted(p for p in seen if p not in CALLBACKS)
    rows, good = [], 0
    for p in reach:
        ok_rt = bool(checked[p])
        errors = [f for f in failed[p] if "NotImplementedError" in f]
        supported = not errors
        good += supported and ok_rt
        if supported and ok_rt:
            note = f"{len(checked[p])} of {len(seen[p])} cases, e.g. `{checked[p][0]}`"
        elif errors:
            note = errors[0]
        else:
            note = (failed[p][0] if failed[p] else "no case round-tripped")
        rows.append(f"| `{p}` | {'yes' if supported else 'no'} | {'yes' if ok_rt else 'no'} | "
                    f"{note.replace('|', '/')} |")
    pct = 100.0 * good / max(len(reach), 1)
    lines = [
        "# Decompiler primitive coverage",
        "",
        "Generated by `python benchmarks/decompiler_coverage.py` from JAX itself; do not edit.",
        "",
        (f"- jax {jax.__version__}, backend {jax.default_backend()}; {n_cases} traced cases "
         f"({seconds:.0f} s; {'--quick: each primitive round-tripped on up to two cases' if quick else 'every case round-tripped'})."),
        ("- Sources: every public function of "
         + ", ".join(f"`{m}`" for m in SURFACE_MODULES)
         + (", `jax.random` (threefry and rbg keys), each with and without `jax.grad` where "
            "it traces, plus curated cases (CNN with max pooling, `jnp.linalg.solve`/"
            "`slogdet`, FFT loss, `jax.jacrev`/`jax.vjp`, control flow, collectives under "
            "`vmap`, optax optimizers and losses).")),
        ("- *supported*: no case containing the primitive fails with `NotImplementedError`; "
         "*round-trip checked*: at least one case containing it decompiles, runs, and matches "
         "the original under `jax.jit` (rtol 1e-4, atol 1e-5; exact for integer, boolean and "
         "key outputs)."),
        "",
        (f"**{good} of {len(reach)} reachable primitives ({pct:.1f} %) are supported and "
         f"round-trip checked.**"),
        "",
        "| primitive | supported | round-trip checked | note |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Callbacks (unsupported by design)",
        "",
        "| primitive | reason |",
        "|---|---|",
        *[f"| `{p}` | {r} |" for p, r in CALLBACKS.items()],
        "",
        "## Registered but not reached by the sweep",
        "",
        ("Primitives exported by `jax.extend.core.primitives` that no case above emits on CPU "
         "(collectives outside `vmap`, state/refs, tokens, Pallas/GPU-only, internal AD "
         "helpers). Those with first-order parameters are emitted through "
         "`prims.<name>_p.bind`."),
        "",
        ", ".join(f"`{p}`" for p in sorted(registered - set(seen))),
        "",
    ]
    if failures:
        lines += ["## Cases that did not round-trip", "", "| case | status | detail |",
                  "|---|---|---|"]
        lines += [f"| {c} | {s} | {d.replace('|', '/')} |" for c, s, d in failures]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "decompiler-coverage.md"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    seen, checked, failed, failures, n = run(a.quick, a.verbose)
    text = render(seen, checked, failed, failures, n, time.perf_counter() - t0, a.quick)
    Path(a.out).write_text(text)
    print(text.split("| primitive |")[0])
    print(f"{len(failures)} failing cases; table written to {a.out}")


if __name__ == "__main__":
    main()
