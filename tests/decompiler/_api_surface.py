"""Generated cases over JAX's public API surface, shared by tests and the coverage script.

For every public function of a module, :func:`surface_cases` tries a fixed
list of sample-argument templates (vectors in a safe domain, a symmetric
positive-definite matrix, integer vectors, PRNG keys) and keeps the first
template under which the function traces to a jaxpr producing arrays. Each
kept case can be paired with its gradient (:func:`grad_case`). Curated cases
for functions whose arguments cannot be guessed (convolutions, windows,
control flow, collectives under ``vmap``, optax) live in :func:`curated_cases`.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

F32 = np.float32


def _vec(n=4, lo=0.2, hi=0.8, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, n).astype(F32))


def _spd(n=3, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, n)).astype(F32)
    return jnp.asarray(a @ a.T / n + np.eye(n, dtype=F32))


def _ivec(n=4, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 3, n).astype(np.int32))


def templates() -> list[tuple[str, tuple]]:
    """Sample-argument templates, tried in order."""
    a, b, c = _vec(seed=0), _vec(seed=1), _vec(seed=2)
    m, m2 = _spd(seed=0), _spd(seed=1)
    s = jnp.asarray(F32(0.5))
    return [
        ("v", (a,)), ("v,v", (a, b)), ("v,v,v", (a, b, c)), ("m", (m,)), ("m,m", (m, m2)),
        ("m,v3", (m, a[:3])), ("i", (_ivec(),)), ("i,i", (_ivec(), _ivec(seed=1))),
        ("v,i", (a, _ivec())), ("s", (s,)), ("s,s", (s, s + 1)), ("v,s", (a, s)),
        ("s,v", (s, a)), ("s,s,v", (s + 1, s + 2, a)), ("v,v,v,v", (a, b, c, a + b)),
        ("bool", (a > 0.5,)), ("i,v", (_ivec() + 1, a)),
    ]


#: Functions not worth tracing (I/O, printing, configuration, shape-only helpers).
SKIP = {
    "load", "save", "savez", "fromfile", "fromstring", "frombuffer", "fromfunction",
    "set_printoptions", "printoptions", "get_printoptions", "show_config", "iinfo", "finfo",
    "result_type", "promote_types", "can_cast", "issubdtype", "isdtype", "dtype",
    "ndim", "shape", "size", "broadcast_shapes", "vectorize", "frompyfunc", "piecewise",
    "einsum_path", "from_dlpack", "array_str", "array_repr", "iterable", "isscalar",
}


def _outputs_arrays(out: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(out)
    return bool(leaves) and all(isinstance(x, jax.Array) for x in leaves)


def _traces(fn: Callable, args: tuple) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    except Exception:  # noqa: BLE001 - a template that does not fit: try the next
        return False
    leaves = jax.tree_util.tree_leaves(shapes)
    return bool(leaves) and all(hasattr(x, "dtype") and hasattr(x, "shape") for x in leaves)


def public_functions(module_name: str) -> Iterator[tuple[str, Callable]]:
    """Yield ``(qualified name, function)`` for the public callables of a module."""
    mod = importlib.import_module(module_name)
    for name in sorted(dir(mod)):
        if name.startswith("_") or name in SKIP:
            continue
        obj = getattr(mod, name, None)
        if inspect.isclass(obj) or inspect.ismodule(obj) or not callable(obj):
            continue
        yield f"{module_name}.{name}", obj


def surface_cases(module_name: str) -> Iterator[tuple[str, Callable, tuple]]:
    """Yield ``(id, fn, args)``: each public function with the first template it traces on."""
    for qual, fn in public_functions(module_name):
        for tname, args in templates():
            wrapped = _wrap(fn)
            if _traces(wrapped, args):
                yield f"{qual}({tname})", wrapped, args
                break


def random_cases() -> Iterator[tuple[str, Callable, tuple]]:
    """Each public ``jax.random`` sampler with a threefry key, and the common ones with rbg."""
    keys = {"threefry": jax.random.key(0), "rbg": jax.random.key(0, impl="rbg")}
    half = jnp.asarray(F32(0.5))
    trials = [((), ()), (((3,),), ()), ((), (half,)), (((3,),), (half,)),
              ((), (half, half + 1))]
    for qual, fn in public_functions("jax.random"):
        for impl, key in keys.items():
            if impl == "rbg" and qual.split(".")[-1] not in ("normal", "uniform", "bits", "split",
                                                              "fold_in", "bernoulli", "key_data"):
                continue
            for static, extra in trials:
                def case(k, *arrays, fn=fn, static=static):
                    return fn(k, *arrays, *static)

                case.__name__ = qual.split(".")[-1]
                args = (key, *extra)
                if _traces(case, args):
                    yield f"{qual}({impl})", case, args
                    break


def _wrap(fn: Callable) -> Callable:
    def case(*args):
        return fn(*args)

    case.__name__ = getattr(fn, "__name__", "case")
    return case


def scalar_loss(out: Any) -> jax.Array:
    """Sum of the real parts of every inexact leaf (a differentiable scalar)."""
    total = jnp.zeros((), F32)
    for leaf in jax.tree_util.tree_leaves(out):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            total = total + jnp.sum(jnp.real(leaf)).astype(F32)
    return total


def grad_case(case_id: str, fn: Callable, args: tuple) -> tuple[str, Callable, tuple] | None:
    """The gradient of ``scalar_loss(fn(*args))`` w.r.t. the first argument, if it traces."""
    if not args or not jnp.issubdtype(args[0].dtype, jnp.floating):
        return None
    g = jax.grad(lambda *a: scalar_loss(fn(*a)))
    g.__name__ = f"grad_{getattr(fn, '__name__', 'fn')}"
    if not _traces(g, args):
        return None
    return f"grad {case_id}", g, args


# --------------------------------------------------------------- curated cases
def _max_pool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def cnn_loss(params, x, y):
    """Two conv layers, ReLU, max pooling, a dense head, softmax cross-entropy."""
    h = lax.conv_general_dilated(x, params["k1"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = _max_pool(jax.nn.relu(h))
    h = lax.conv_general_dilated(h, params["k2"], (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = _max_pool(jax.nn.relu(h)).reshape(x.shape[0], -1)
    logits = h @ params["w"]
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=-1))


def cnn_init(rng, channels=(1, 4, 8), hw=8, classes=3):
    return {"k1": jnp.asarray(rng.standard_normal((3, 3, channels[0], channels[1])).astype(F32)
                              * 0.3),
            "k2": jnp.asarray(rng.standard_normal((3, 3, channels[1], channels[2])).astype(F32)
                              * 0.3),
            "w": jnp.asarray(rng.standard_normal(((hw // 4) ** 2 * channels[2], classes))
                             .astype(F32) * 0.3)}


def linsolve_model(w, a, b):
    """A loss through ``jnp.linalg.solve`` and ``slogdet`` of a parameterised matrix."""
    mat = a + w[0] * jnp.eye(a.shape[0], dtype=a.dtype)
    sol = jnp.linalg.solve(mat, b * w[1])
    sign, logdet = jnp.linalg.slogdet(mat)
    return jnp.sum(sol ** 2) + sign * logdet


def fft_loss(x, target):
    """Spectral loss: squared distance of rfft magnitudes plus an irfft round trip."""
    spec = jnp.fft.rfft(x)
    back = jnp.fft.irfft(spec * 0.5, n=x.shape[-1])
    return jnp.sum((jnp.abs(spec) - target) ** 2) + jnp.sum(back ** 2)


def vector_fn(x):
    return jnp.stack([jnp.sin(x[0]) * x[1], x[1] ** 2 + x[2], jnp.exp(x[0] * x[2])])


def curated_cases() -> list[tuple[str, Callable, tuple]]:
    """Cases whose arguments cannot be guessed from a template."""
    rng = np.random.default_rng(0)
    a, m = _vec(), _spd()
    img = jnp.asarray(rng.standard_normal((2, 8, 8, 1)).astype(F32))
    labels = jax.nn.one_hot(jnp.asarray([0, 2]), 3)
    key = jax.random.key(0)
    rbg = jax.random.key(1, impl="rbg")
    raw = jax.random.PRNGKey(2)
    cases: list[tuple[str, Callable, tuple]] = [
        ("cnn_loss", cnn_loss, (cnn_init(rng), img, labels)),
        ("grad cnn_loss", jax.grad(cnn_loss), (cnn_init(rng), img, labels)),
        ("jvp max_pool", lambda x, t: jax.jvp(_max_pool, (x,), (t,)), (img, img * 0.5)),
        ("linsolve_model", jax.value_and_grad(linsolve_model),
         (jnp.asarray([0.5, 1.5], F32), m, a[:3])),
        ("fft_loss", jax.value_and_grad(fft_loss), (_vec(8), _vec(5))),
        ("jacrev vector_fn", jax.jacrev(vector_fn), (a[:3],)),
        ("jacfwd vector_fn", jax.jacfwd(vector_fn), (a[:3],)),
        ("vjp two outputs", lambda x: jax.vjp(lambda v: (jnp.sin(v), v * 2), x)[1]((x, x)),
         (a,)),
        ("det/inv/solve grads", jax.grad(lambda x: jnp.linalg.det(x) + jnp.sum(jnp.linalg.inv(x))
                                         + jnp.sum(jnp.linalg.solve(x, x[0]))), (m,)),
        ("qr/eigh/svd grads", jax.grad(lambda x: jnp.sum(jnp.linalg.qr(x)[1])
                                       + jnp.sum(jnp.linalg.eigh(x)[0])
                                       + jnp.linalg.norm(x, 2)), (m,)),
        ("svd full", lambda x: jnp.linalg.svd(x), (m,)),
        ("eig", lambda x: jnp.linalg.eig(x), (m,)),
        ("searchsorted/interp", lambda x, q: (jnp.searchsorted(x, q), jnp.interp(q, x, x ** 2)),
         (jnp.sort(a), _vec(seed=3))),
        ("mvn logpdf grad", jax.grad(lambda mu: jax.scipy.stats.multivariate_normal.logpdf(
            a[:3], mu, m)), (a[:3] * 0.5,)),
        ("grad scan in cond", jax.grad(lambda x: lax.cond(
            x.sum() > 0, lambda b: lax.scan(lambda c, y: (c * y, c), b[0], b)[0],
            lambda b: b[0], x)), (a,)),
        ("conv grad", jax.grad(lambda k, x: jnp.sum(lax.conv_general_dilated(
            x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2)),
         (jnp.asarray(rng.standard_normal((3, 3, 1, 2)).astype(F32)), img)),
        ("reduce_window generic", lambda x: lax.reduce_window(
            x, 1.0, lambda u, v: u * v, (2,), (1,), "VALID"), (a,)),
        ("reduce generic", lambda x: lax.reduce(x, 0.0, lambda u, v: u * v + 1.0, (0,)), (a,)),
        ("scatter ops", lambda x, i: (x.at[i].set(1.0), x.at[i].add(2.0), x.at[i].mul(3.0),
                                      x.at[i].min(0.1), x.at[i].max(0.9)), (a, _ivec())),
        ("while/fori", lambda x: lax.fori_loop(0, 3, lambda i, c: c * 0.5 + i, x), (a,)),
        ("switch", lambda i, x: lax.switch(i, [jnp.sin, jnp.cos], x),
         (jnp.asarray(1, jnp.int32), a)),
        ("top_k/sort", lambda x: (lax.top_k(x, 2), lax.sort(x), jnp.argsort(x)), (a,)),
        ("approx_max_k", lambda x: lax.approx_max_k(x, 2), (a,)),
        ("cumulative", lambda x: (lax.cummax(x), lax.cummin(x), lax.cumprod(x),
                                  lax.cumlogsumexp(x), jnp.cumsum(x)), (a,)),
        ("psum/pmax/pmin/pmean/all_gather/axis_index under vmap", jax.vmap(
            lambda x: (lax.psum(x, "i"), lax.pmax(x, "i"), lax.pmin(x, "i"), lax.pmean(x, "i"),
                       lax.all_gather(x, "i"), lax.axis_index("i")), axis_name="i"),
         (jnp.ones((3, 2), F32),)),
        ("ppermute/all_to_all under vmap", jax.vmap(
            lambda x: (lax.ppermute(x, "i", [(0, 1), (1, 0)]),
                       lax.all_to_all(x, "i", 0, 0)), axis_name="i"),
         (jnp.ones((2, 2), F32),)),
        ("random threefry", lambda k: (jax.random.normal(k, (3,)), jax.random.uniform(k, (2,)),
                                       jax.random.key_data(jax.random.split(k, 2)),
                                       jax.random.bits(jax.random.fold_in(k, 7), (2,)),
                                       jax.random.randint(k, (3,), 0, 9),
                                       jax.random.gamma(k, 2.0, (2,)),
                                       jax.random.permutation(k, 4)), (key,)),
        ("random rbg", lambda k: (jax.random.normal(k, (3,)),
                                  jax.random.key_data(jax.random.split(k, 2)),
                                  jax.random.bits(jax.random.fold_in(k, 7), (2,))), (rbg,)),
        ("random raw uint32 key", lambda k: (jax.random.normal(k, (3,)),
                                             jax.random.split(k, 2),
                                             jax.random.fold_in(k, 3)), (raw,)),
        ("random key from seed", lambda s: jax.random.key_data(jax.random.key(s)),
         (jnp.asarray(3, jnp.int32),)),
        ("rng_bit_generator", lambda k: lax.rng_bit_generator(k, (3,)),
         (jnp.asarray([1, 2, 3, 4], jnp.uint32),)),
        ("threefry_2x32", lambda k, x: jax.extend.random.threefry_2x32(k, x),
         (jnp.asarray([1, 2], jnp.uint32), jnp.arange(4, dtype=jnp.uint32))),
        ("ragged_dot", lambda x, y, g: lax.ragged_dot(x, y, g),
         (jnp.ones((4, 3), F32), jnp.ones((2, 3, 5), F32), jnp.asarray([1, 3], jnp.int32))),
        ("linalg lax", lambda x: (lax.linalg.lu(x), lax.linalg.schur(x),
                                  lax.linalg.hessenberg(x), lax.linalg.tridiagonal(x),
                                  lax.linalg.lu_pivots_to_permutation(
                                      jnp.asarray([1, 1, 2], jnp.int32), 3)), (m,)),
        ("tridiagonal_solve", lambda d, b: lax.linalg.tridiagonal_solve(
            d * 0.1, d + 2.0, d * 0.1, b), (a.at[0].set(0.0).at[3].set(0.0), m[:, :1].repeat(
                4, 0)[:4])),
        ("ormqr", lambda x, t, c: lax.linalg.ormqr(x, t, c, left=True, transpose=False),
         (jnp.tril(m, -1), a[:3] * 0.5, m)),
        ("expm/sqrtm", lambda x: (jax.scipy.linalg.expm(x * 0.1), jax.scipy.linalg.sqrtm(x)),
         (m,)),
        ("stft", lambda x: jax.scipy.signal.stft(x, nperseg=4), (_vec(16),)),
        ("debug print", lambda x: (jax.debug.print("x={}", x), x * 2)[1], (a,)),
        ("checkpoint grad", jax.grad(lambda x: jnp.sum(jax.checkpoint(jnp.sin)(x))), (a,)),
        ("custom_jvp/vjp nn", jax.grad(lambda x: jnp.sum(jax.nn.relu(x) + jax.nn.gelu(x)
                                                         + jax.nn.softplus(x))), (a,)),
    ]
    cases.extend(optax_cases())
    return cases


def optax_cases() -> list[tuple[str, Callable, tuple]]:
    """A training step of each common optax optimizer and the common losses (if installed)."""
    try:
        import optax
    except ImportError:
        return []
    w = {"w": _vec(), "b": jnp.asarray(F32(0.1))}
    x = jnp.asarray(np.random.default_rng(1).standard_normal((5, 4)).astype(F32))
    y = _vec(5)

    def loss(p):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    out = []
    for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "lamb", "adafactor"):
        opt = getattr(optax, name)(1e-2)
        state = opt.init(w)

        def step(p, s, opt=opt):
            g = jax.grad(loss)(p)
            upd, s = opt.update(g, s, p)
            return optax.apply_updates(p, upd), s

        out.append((f"optax.{name} step", step, (w, state)))
    logits = jnp.asarray(np.random.default_rng(2).standard_normal((5, 3)).astype(F32))
    onehot = jax.nn.one_hot(jnp.asarray([0, 1, 2, 1, 0]), 3)
    out += [
        ("optax losses", jax.value_and_grad(lambda lg: (
            optax.softmax_cross_entropy(lg, onehot).sum()
            + optax.softmax_cross_entropy_with_integer_labels(lg, jnp.asarray([0, 1, 2, 1, 0]))
            .sum() + optax.sigmoid_binary_cross_entropy(lg, onehot).sum()
            + optax.l2_loss(lg, onehot).sum() + optax.huber_loss(lg, onehot).sum()
            + optax.log_cosh(lg, onehot).sum() + optax.cosine_distance(lg, onehot).sum())),
         (logits,)),
        ("optax clip_by_global_norm chain", lambda g: optax.chain(
            optax.clip_by_global_norm(1.0), optax.scale(-0.1)).update(g, optax.chain(
                optax.clip_by_global_norm(1.0), optax.scale(-0.1)).init(g))[0], (w,)),
    ]
    return out


#: Modules whose public functions are swept.
SURFACE_MODULES = (
    "jax.numpy", "jax.numpy.linalg", "jax.numpy.fft", "jax.scipy.special", "jax.scipy.linalg",
    "jax.scipy.signal", "jax.scipy.stats.norm", "jax.scipy.stats.gamma", "jax.scipy.stats.beta",
    "jax.scipy.stats.t", "jax.scipy.stats.poisson", "jax.scipy.stats.multivariate_normal",
    "jax.scipy.stats.dirichlet", "jax.scipy.stats.expon", "jax.scipy.stats.logistic",
    "jax.scipy.stats.cauchy", "jax.scipy.stats.laplace", "jax.scipy.stats.chi2",
    "jax.scipy.stats.binom", "jax.scipy.stats.vonmises", "jax.scipy.stats.truncnorm",
    "jax.scipy.stats", "jax.nn", "jax.lax", "jax.lax.linalg",
)
