"""Decoding and construction benchmark (not a test). Writes benchmarks/results/decode.md.

Run:  python benchmarks/decode.py [--quick]

1. ``optimal`` decoding vs ``np.linalg.lstsq`` on the dense B_F (what published
   gradient-coding implementations do every round): rBGC n = k = 2000, load 5,
   10% stragglers. The first (uncached) solve is timed with ``code.cache()`` cleared
   before every repetition; the cached (memoised pattern) time is reported apart.
   Then consecutive rounds at n = k = 10,000 whose patterns differ in 10% of the
   responders (what training sees), against SciPy's ``lsmr`` with the tolerances the
   decoder used before it switched to CGLS, on the same blocks.
2. Structured decoders (``frc_group``, ``graph``) at n = 10,000 workers.
3. Building every CATALOGUE family at n = 10,000 (where parameters allow): wall time
   and tracemalloc peak against the number of non-zeros.

All timings are medians measured in this one run, on the machine described in the
report; ratios matter more than absolute numbers on a shared machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.sparse.linalg import lsmr

import gradcode as gc
from gradcode.core.cgls import cgls

OUT = Path(__file__).resolve().parent / "results" / "decode.md"


def median_time(fn, reps: int, setup=None, clock=time.perf_counter) -> float:
    times = []
    for _ in range(reps):
        if setup is not None:
            setup()
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return [f"- CPU: {model}", f"- cores visible: {os.cpu_count()}",
            f"- load average (1/5/15 min) at start: {load} (shared machine)",
            f"- Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}, gradcode {gc.__version__}",
            f"- platform: {platform.platform()}"]


def bench_optimal(reps: int) -> list[str]:
    n = k = 2000
    code = gc.codes.regularized_bernoulli(n=n, k=k, d=5, seed=0)
    rng = np.random.default_rng(1)
    masks = []
    for _ in range(reps):
        m = np.ones(n, dtype=bool)
        m[rng.choice(n, size=n // 10, replace=False)] = False
        masks.append(m)
    dense = code.toarray()
    ones = np.ones(k)

    # correctness first: same alpha, same error
    for m in masks[:2]:
        d = gc.decode(code, m, "optimal")
        BF = dense[m]
        a = np.linalg.lstsq(BF.T, ones, rcond=None)[0]
        np.testing.assert_allclose(d.alpha, BF.T @ a, rtol=0, atol=1e-7)

    # interleaved (optimal, lstsq) per straggler set, so both see the same machine load
    t_opt, t_lstsq = [], []
    for m in masks:
        code.cache().clear()
        t0 = time.perf_counter()
        gc.decode(code, m, "optimal")
        t_opt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        BF = dense[m]
        np.linalg.lstsq(BF.T, ones, rcond=None)
        t_lstsq.append(time.perf_counter() - t0)
    t_cached = median_time(lambda: gc.decode(code, masks[-1], "optimal"), 20)
    opt, lst = statistics.median(t_opt), statistics.median(t_lstsq)
    return [
        "## 1. optimal vs dense lstsq (rBGC n = k = 2000, load 5, 10% stragglers)",
        "",
        f"{reps} random straggler sets; median seconds per decode.",
        "",
        "| method | median s | min s | max s |",
        "| --- | --- | --- | --- |",
        f"| `np.linalg.lstsq` on dense B_F | {lst:.4f} | {min(t_lstsq):.4f} | {max(t_lstsq):.4f} |",
        f"| `optimal`, uncached (cache cleared each time) | {opt:.4f} | {min(t_opt):.4f} | "
        f"{max(t_opt):.4f} |",
        f"| `optimal`, cached pattern | {t_cached:.6f} | | |",
        "",
        f"**Speed-up of the uncached first solve: {lst / opt:.1f}x** (target >= 20x: "
        f"{'met' if lst / opt >= 20 else 'MISSED'}). Cached: {lst / t_cached:.0f}x.",
        "",
    ]


def _shifted(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The next round's pattern: 10% of the responders become stragglers and as many
    stragglers respond."""
    out = mask.copy()
    on, off = np.flatnonzero(mask), np.flatnonzero(~mask)
    swap = min(on.size // 10, off.size)
    out[rng.choice(on, swap, replace=False)] = False
    out[rng.choice(off, swap, replace=False)] = True
    return out


def bench_new_pattern(reps: int) -> list[str]:
    n = k = 10_000
    code = gc.codes.regularized_bernoulli(n=n, k=k, d=5, seed=0)
    rng = np.random.default_rng(3)
    mask = np.ones(n, dtype=bool)
    mask[rng.choice(n, size=n // 10, replace=False)] = False
    gc.decode(code, mask, "optimal")                        # the previous round
    t_new, t_lsmr = [], []
    for _ in range(reps):
        mask = _shifted(mask, rng)
        t0 = time.perf_counter()
        dec = gc.decode(code, mask, "optimal")
        t_new.append(time.perf_counter() - t0)
        BF = code.B[np.flatnonzero(mask)]
        t0 = time.perf_counter()
        A = BF.T.tocsr()
        sol = lsmr(A, np.ones(k), atol=1e-15, btol=1e-15, conlim=1e15, maxiter=20 * n)[0]
        t_lsmr.append(time.perf_counter() - t0)
        np.testing.assert_allclose(dec.alpha, A @ sol, rtol=0, atol=1e-7)
    new, old = statistics.median(t_new), statistics.median(t_lsmr)
    return [
        "### 1b. A new pattern every round (rBGC n = k = 10,000, load 5, 10% stragglers)",
        "",
        f"{reps} consecutive rounds, each pattern differing from the previous round's in 10% "
        "of its responders (never seen before, so nothing is memoised); median ms.",
        "",
        "| method | median ms | min ms | max ms |",
        "| --- | --- | --- | --- |",
        f"| `optimal` (CGLS) | {new * 1e3:.1f} | {min(t_new) * 1e3:.1f} | "
        f"{max(t_new) * 1e3:.1f} |",
        f"| SciPy `lsmr` alone, previous tolerances | {old * 1e3:.1f} | "
        f"{min(t_lsmr) * 1e3:.1f} | {max(t_lsmr) * 1e3:.1f} |",
        "",
        f"**New pattern: {new * 1e3:.1f} ms** (target < 20 ms: "
        f"{'met' if new < 0.020 else 'MISSED'}); {old / new:.1f}x faster than the LSMR solve "
        "alone.",
        "",
    ]


def bench_cgls_floor() -> list[str]:
    """Why a new pattern at n = k = 10,000 needs ~270 CGLS iterations: accuracy of alpha
    against the stopping tolerance, and the cost of the two products per iteration."""
    n = k = 10_000
    code = gc.codes.regularized_bernoulli(n=n, k=k, d=5, seed=0)
    rng = np.random.default_rng(3)
    mask = np.ones(n, dtype=bool)
    mask[rng.choice(n, size=n // 10, replace=False)] = False
    BF = code.B[np.flatnonzero(mask)]
    A, At = sp.csr_array(BF.T), sp.csr_array(BF)
    ones, scale = np.ones(k), float(sp.linalg.norm(A))
    x_ref, _, it_ref = cgls(A, At, ones, 1e-14, scale, 100_000)
    alpha_ref = A @ x_ref
    p, r = rng.random(A.shape[1]), rng.random(A.shape[0])
    mv = median_time(lambda: (A @ p, At @ r), 200, clock=time.process_time)
    rows = ["### 1c. What a new pattern costs: CGLS iterations against accuracy", "",
            f"Same code and a 10% straggler pattern; reference alpha from CGLS at tol 1e-14 "
            f"({it_ref} iterations). One iteration needs one product with B_F^T and one with "
            f"B_F: {mv * 1e3:.3f} ms CPU for the pair here, so the products alone put a floor "
            f"of iterations x {mv * 1e3:.3f} ms under any CGLS/LSMR solve. Load "
            f"{os.getloadavg()[0]:.1f}.", "",
            "| stopping tol | iterations | CPU ms | products alone ms | max abs alpha error | "
            "error(alpha) difference |", "| --- | --- | --- | --- | --- | --- |"]
    for tol in (1e-10, 1e-9, 1e-8, 1e-7, 1e-6):
        c0 = time.process_time()
        x, _, it = cgls(A, At, ones, tol, scale, 100_000)
        cpu = time.process_time() - c0
        alpha = A @ x
        rows.append(f"| {tol:.0e} | {it} | {cpu * 1e3:.1f} | {it * mv * 1e3:.1f} | "
                    f"{np.abs(alpha - alpha_ref).max():.1e} | "
                    f"{abs(np.sum((alpha - 1) ** 2) - np.sum((alpha_ref - 1) ** 2)):.1e} |")
    rows += ["", "The decoder stops at 1e-10 (alpha within ~1e-8 of the dense solution, the tests "
             "demand 1e-7). At that accuracy the products alone take about "
             "270 x the pair cost, close to 20 ms on this machine before any other work; "
             "the tolerance that would fit 20 ms (1e-6 to 1e-7) leaves alpha errors of "
             "1e-5 to 1e-4. Warm-starting from the previous round's weights did not reduce the "
             "iteration count (measured: 271 vs 271), since the stopping test is relative and "
             "the convergence rate, set by the conditioning of B_F, is unchanged; a diagonal "
             "(Jacobi) preconditioner is the identity up to scale for a regular 0/1 code.", ""]
    return rows


def bench_structured(reps: int) -> list[str]:
    rng = np.random.default_rng(2)
    rows = ["## 2. Structured decoders at n = 10,000 workers", "",
            f"10% stragglers, structure cached after a warm-up call; median of {reps} calls "
            "with a fresh straggler set each time.", "",
            "| decoder | code | median ms | target < 1 ms |", "| --- | --- | --- | --- |"]
    cases = [("frc_group", gc.codes.fractional_repetition(n=10_000, s=4)),
             ("graph", gc.codes.graph_scheme(k=5_000, d=4, seed=0))]
    for name, code in cases:
        n = code.n
        patterns = []
        for _ in range(reps):
            if name == "frc_group":
                patterns.append(rng.permutation(n)[: n - n // 10])     # arrival order
            else:
                m = np.ones(n, dtype=bool)
                m[rng.choice(n, size=n // 10, replace=False)] = False
                patterns.append(m)
        gc.decode(code, patterns[0], name)                               # warm-up
        if name == "graph":
            o = gc.decode(code, patterns[0], "optimal")
            g = gc.decode(code, patterns[0], "graph")
            np.testing.assert_allclose(g.alpha, o.alpha, rtol=0, atol=1e-8)
        times = []
        for p in patterns:
            t0 = time.perf_counter()
            gc.decode(code, p, name)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times) * 1e3
        rows.append(f"| `{name}` | {code.name} (n={n}) | {med:.3f} | "
                    f"{'met' if med < 1 else 'MISSED'} |")
    rows.append("")
    return rows


BUILD_AT_10K = {
    "uncoded": {"n": 10_000},
    "fractional_repetition": {"n": 10_000, "s": 4},
    "cyclic_repetition": {"n": 10_000, "s": 4, "seed": 0},
    "cyclic_mds": {"n": 10_000, "s": 4},
    "expander": {"n": 10_000, "d": 4, "seed": 0},
    "graph_scheme": {"k": 5_000, "d": 4, "seed": 0},
    "bernoulli": {"n": 10_000, "k": 10_000, "d": 5, "seed": 0},
    "regularized_bernoulli": {"n": 10_000, "k": 10_000, "d": 5, "seed": 0},
    "stochastic_block": {"n": 10_000, "k": 10_000, "communities": 10, "p": 0.004,
                         "q": 0.0001, "seed": 0},
}


def _params_for(name: str, entry) -> dict | None:
    if name in BUILD_AT_10K:
        return BUILD_AT_10K[name]
    over = {key: 10_000 for key in ("n", "k") if key in entry.defaults}
    if "p" in entry.defaults and "n" not in entry.defaults:      # e.g. per-worker probs
        over["p"] = tuple(np.linspace(0.05, 0.6, 10_000).tolist())
        if "k" in entry.defaults:
            over["k"] = 10_000
    return over or None


def bench_build() -> list[str]:
    rows = ["## 3. Building every CATALOGUE family at n = 10,000", "",
            "Wall time is the median of 3 builds without tracemalloc, CPU time (process time, "
            "less sensitive to the other load on a shared machine) the median of 3 more; peak "
            "is the tracemalloc peak of one more build. A CSR float64 non-zero costs 12 bytes "
            "(value + int32 index).", "",
            "| family | parameters | n x k | nnz | build s | build CPU s | peak MiB | "
            "peak bytes / nnz | < 1 s | load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in sorted(gc.codes.CATALOGUE):
        entry = gc.codes.CATALOGUE[name]
        params = _params_for(name, entry)
        if params is None:
            rows.append(f"| {name} | (no n/k parameter to scale) | | | | | | | skipped | |")
            continue
        shown = {k_: (v if not isinstance(v, tuple) else f"<{len(v)} values>")
                 for k_, v in params.items()}
        try:
            t = median_time(lambda: entry(**params), 3)
            cpu = median_time(lambda: entry(**params), 3, clock=time.process_time)
            tracemalloc.start()
            code = entry(**params)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        except Exception as exc:                                   # report, keep going
            tracemalloc.stop()
            rows.append(f"| {name} | {shown} | | | | | | | skipped: {type(exc).__name__}: "
                        f"{str(exc)[:80]} | |")
            continue
        nnz = code.B.nnz
        rows.append(f"| {name} | {shown} | {code.n} x {code.k} | {nnz} | {t:.3f} | "
                    f"{cpu:.3f} | {peak / 2**20:.2f} | {peak / max(nnz, 1):.0f} | "
                    f"{'met' if t < 1 else ('CPU met' if cpu < 1 else 'MISSED')} | "
                    f"{os.getloadavg()[0]:.1f} |")
    rows.append("")
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    lines = ["# Decoding and construction benchmark", "",
             f"Generated by `python benchmarks/decode.py` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "", "## Machine", ""]
    lines += machine() + [""]
    lines += bench_optimal(3 if quick else 7)
    lines += bench_new_pattern(3 if quick else 9)
    lines += bench_cgls_floor()
    lines += bench_structured(10 if quick else 50)
    lines += bench_build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
