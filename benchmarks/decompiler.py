"""Benchmark the JAX decompiler: runtime parity of decompiled code and decompile speed.

Measures, in one run:
  * jitted decompiled vs jitted original (MLP training step, attention block,
    long scan, gradient of a CNN with max pooling): cold (trace + compile + first call) and warm (steady-state
    call) times, each repeated, with ``block_until_ready``; reports the warm
    ratio (target within 1.05);
  * time to decompile a ~1,000-equation jaxpr (target under 0.5 s).

Writes ``benchmarks/results/decompiler.md``. Run:
    python benchmarks/decompiler.py [--repeats 5] [--warm-iters 50]

Reference: Pochelu, "JaxDecompiler: Redefining Gradient-Informed Software
Design", arXiv 2403.10571, 2024.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import itertools

from gradcode.decompiler import decompile, to_function


def _mlp_problem(rng):
    sizes = (64, 256, 256, 10)
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        params[f"w{i}"] = jnp.asarray(rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a))
        params[f"b{i}"] = jnp.zeros((b,), jnp.float32)
    x = jnp.asarray(rng.standard_normal((128, 64)).astype(np.float32))
    y = jax.nn.one_hot(rng.integers(0, 10, 128), 10)

    def loss(p, x, y):
        h = x
        for i in range(3):
            h = h @ p[f"w{i}"] + p[f"b{i}"]
            if i < 2:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(h) * y, -1))

    def train_step(p, x, y):
        value, grads = jax.value_and_grad(loss)(p, x, y)
        return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, p, grads), value

    return train_step, (params, x, y)


def _attention_problem(rng):
    b, t, d = 8, 128, 64
    x = jnp.asarray(rng.standard_normal((b, t, d)).astype(np.float32))
    ws = [jnp.asarray(rng.standard_normal((d, d)).astype(np.float32) * 0.1) for _ in range(4)]

    def block(x, wq, wk, wv, wo):
        q, k, v = x @ wq, x @ wk, x @ wv
        s = jnp.einsum("btd,bsd->bts", q, k) / np.float32(np.sqrt(d))
        s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e9)
        h = jnp.einsum("bts,bsd->btd", jax.nn.softmax(s, -1), v) @ wo
        mu = h.mean(-1, keepdims=True)
        return x + (h - mu) * lax.rsqrt(h.var(-1, keepdims=True) + 1e-5)

    return block, (x, *ws)


def _scan_problem(rng):
    xs = jnp.asarray(rng.standard_normal((2000, 32)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((32, 32)).astype(np.float32) * 0.1)

    def long_scan(h0, xs, w):
        def step(h, x):
            h = jnp.tanh(h @ w + x)
            return h, h.sum()
        return lax.scan(step, h0, xs)

    return long_scan, (jnp.zeros((32,), jnp.float32), xs, w)


def _cnn_problem(rng):
    """Gradient of a two-conv CNN with ReLU and 2x2 max pooling (select_and_scatter_add)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "decompiler"))
    from _api_surface import cnn_init, cnn_loss

    params = cnn_init(rng, channels=(3, 16, 32), hw=16, classes=10)
    x = jnp.asarray(rng.standard_normal((32, 16, 16, 3)).astype(np.float32))
    y = jax.nn.one_hot(rng.integers(0, 10, 32), 10)
    return jax.grad(cnn_loss), (params, x, y)


def _block(out):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), out)


def _time_cold(fn, args):
    jax.clear_caches()
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    _block(jitted(*args))
    return time.perf_counter() - t0, jitted


def _time_warm(jitted, args, iters):
    _block(jitted(*args))
    t0 = time.perf_counter()
    for _ in range(iters):
        out = jitted(*args)
    _block(out)
    return (time.perf_counter() - t0) / iters


def bench_runtime(name, fn, args, repeats, iters):
    """Return timing rows (original vs decompiled), alternating to share noise."""
    rebuilt = to_function(decompile(fn, *args))
    cold = {"original": [], "decompiled": []}
    warm = {"original": [], "decompiled": []}
    jitted = {}
    for _ in range(repeats):
        for label, f in (("original", fn), ("decompiled", rebuilt)):
            c, jitted[label] = _time_cold(f, args)
            cold[label].append(c)
    # Warm: short interleaved rounds (orig, decompiled, orig, ...) so that load bursts on
    # the shared machine hit both alike; the best round of each is reported.
    for _ in range(repeats * 4):
        for label in ("original", "decompiled"):
            warm[label].append(_time_warm(jitted[label], args, max(iters // 4, 3)))
    # min over repeats: the least noise-disturbed estimate on a shared machine
    med = {k: min(v) for k, v in warm.items()}
    cmed = {k: statistics.median(v) for k, v in cold.items()}
    hlo = [_hlo_ops(f, args) for f in (fn, rebuilt)]
    return {
        "name": name,
        "warm_orig_ms": med["original"] * 1e3, "warm_dec_ms": med["decompiled"] * 1e3,
        "warm_ratio": med["decompiled"] / med["original"],
        "cold_orig_ms": cmed["original"] * 1e3, "cold_dec_ms": cmed["decompiled"] * 1e3,
        "cold_ratio": cmed["decompiled"] / cmed["original"],
        "hlo": f"{hlo[0]} / {hlo[1]}",
    }


def _hlo_ops(fn, args):
    """Number of instructions in the optimized (compiled) HLO: a noise-free parity check."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return sum(1 for line in text.splitlines() if " = " in line and not line.lstrip().startswith("//"))


def bench_decompile_speed(n_eqns_target=1000, repeats=5):
    """Return (equation count, median seconds) for decompiling a long chain."""
    def chain(x):
        for i in range(n_eqns_target // 3):
            x = jnp.sin(x) * np.float32(1.0 + i * 1e-3) + x
        return x

    x = jnp.ones((4,), jnp.float32)
    n = len(jax.make_jaxpr(chain)(x).jaxpr.eqns)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decompile(chain, x)
        times.append(time.perf_counter() - t0)
    # Tracing is part of decompile(); report it separately for context.
    t0 = time.perf_counter()
    jax.make_jaxpr(chain)(x)
    trace = time.perf_counter() - t0
    return n, statistics.median(times), trace


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warm-iters", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "decompiler.md"))
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [bench_runtime(n, *p(rng), a.repeats, a.warm_iters) for n, p in
            (("MLP train step", _mlp_problem), ("attention block", _attention_problem),
             ("long scan (2000 steps)", _scan_problem),
             ("CNN with max pooling, gradient", _cnn_problem))]
    n_eqns, dec_s, _trace_s = bench_decompile_speed()
    import os

    lines = [
        "# Decompiler benchmark",
        "",
        f"- CPU: {_cpu_name()} ({os.cpu_count()} logical cores, shared machine)",
        (f"- Python {platform.python_version()}, jax {jax.__version__}, numpy {np.__version__}, "
        f"backend {jax.default_backend()}"),
        (f"- repeats: {a.repeats} (cold = fresh `jax.jit` after `jax.clear_caches()`, first call; "
        f"warm = mean of {max(a.warm_iters // 4, 3)} calls in each of {4 * a.repeats} interleaved rounds, best round reported; cold: median), `block_until_ready` on outputs"),
        "",
        ("| workload | warm orig (ms) | warm decompiled (ms) | warm ratio | cold orig (ms) "
        "| cold decompiled (ms) | cold ratio | optimized HLO instructions (orig / decompiled) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['warm_orig_ms']:.3f} | {r['warm_dec_ms']:.3f} | "
                     f"{r['warm_ratio']:.3f} | {r['cold_orig_ms']:.1f} | {r['cold_dec_ms']:.1f} | "
                     f"{r['cold_ratio']:.3f} | {r['hlo']} |")
    lines += [
        "",
        "Target: warm ratio within 1.05. Timings on a shared, loaded machine are noisy;",
        "identical optimized-HLO sizes indicate XLA compiles the same program.",
        "",
        (f"Decompile time of a {n_eqns}-equation jaxpr (tracing included): **{dec_s:.3f} s** "
        f"median of 5. Target: under 0.5 s."),
        "",
    ]
    text = "\n".join(lines)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
