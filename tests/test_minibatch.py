"""Coded minibatch SGD: round t uses, per partition j, rows seeded by (seed, t, j).

Checks: the draws are reproducible across objects and processes, the partition
gradients of a round add up to the gradient of the union of the round's minibatches
(computed independently on the union rows), and for exact codes the decoded gradient
equals that union gradient on the simulated, local and Ray backends (rtol 1e-9 in
float64, 1e-6 in float32).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gradcode as gc
import gradcode.backends  # noqa: F401
import gradcode.data  # noqa: F401
import gradcode.problems  # noqa: F401
import gradcode.schemes  # noqa: F401
import gradcode.training  # noqa: F401
from gradcode.problems import Minibatches

N = 4


def union_index(prob, t):
    """Global indices of round t's minibatches, partition by partition."""
    out = []
    for j, p in enumerate(prob.parts):
        rows = prob.batches.rows(t, j)
        out.append(p if rows is None else p[rows])
    return np.concatenate(out)


# ---------------------------------------------------------------------------- draws
def test_minibatch_draws_are_fixed_by_seed_round_and_partition():
    sizes = [30, 7, 12]
    a, b = Minibatches(sizes, 8, seed=3), pickle.loads(pickle.dumps(Minibatches(sizes, 8, 3)))
    assert a.total(0) == 8 + 7 + 8 and a.total(None) == 49
    assert a.rows(5, 1) is None and a.count(5, 1) == 7            # m_j <= b: all rows
    draws = set()
    for t in range(20):
        r = a.rows(t, 0)
        np.testing.assert_array_equal(r, b.rows(t, 0))
        assert r.size == 8 and np.all(np.diff(r) > 0) and r.min() >= 0 and r.max() < 30
        draws.add(tuple(r))
    assert len(draws) == 20                                         # rounds differ
    assert not np.array_equal(a.rows(0, 0), Minibatches(sizes, 8, seed=4).rows(0, 0))
    assert not np.array_equal(a.rows(0, 0), a.rows(0, 2)[:8])
    assert Minibatches(sizes, None, 0).rows(3, 0) is None
    # every row is equally likely: 2000 rounds, each row drawn 8/30 of the time
    counts = np.zeros(30)
    for t in range(2000):
        counts[a.rows(t, 0)] += 1
    p = 8 / 30
    se = np.sqrt(2000 * p * (1 - p))
    assert np.all(np.abs(counts - 2000 * p) < 5 * se)


def test_bad_batch_arguments():
    X, y = gc.data.synthetic_regression(20, 3, seed=0)
    with pytest.raises(ValueError, match="batch_size=0 must be >= 1"):
        gc.problems.least_squares(X, y, 4, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        gc.problems.least_squares(X, y, 4, batch_size=2.5)
    with pytest.raises(ValueError, match="batch_seed=-1 must be >= 0"):
        gc.problems.least_squares(X, y, 4, batch_size=2, batch_seed=-1)
    with pytest.raises(ValueError, match="round=-1 must be >= 0"):
        gc.problems.least_squares(X, y, 4, batch_size=2).partition_gradients(
            np.zeros(3), round=-1)


# ---------------------------------------------------------------------------- numpy
def _linear(kind, sparse=False):
    if kind == "softmax_regression":
        X, y = gc.data.synthetic_multiclass(90, 5, classes=3, seed=1)
        build = gc.problems.softmax_regression
    elif kind == "logistic_regression":
        X, y = gc.data.synthetic_classification(90, 5, seed=1, density=0.5 if sparse else None)
        build = gc.problems.logistic_regression
    else:
        X, y = gc.data.synthetic_regression(90, 5, seed=1)
        build = gc.problems.least_squares
    return X, y, build


@pytest.mark.parametrize("kind,sparse", [("least_squares", False), ("logistic_regression", False),
                                         ("logistic_regression", True),
                                         ("softmax_regression", False)])
def test_linear_round_gradient_is_the_union_gradient(kind, sparse):
    X, y, build = _linear(kind, sparse)
    # unequal parts (one smaller than the batch) and shuffled partitioning
    parts = [np.arange(0, 40), np.arange(40, 45), np.arange(45, 70), np.arange(70, 90)]
    prob = build(X, y, parts, l2=0.01, batch_size=9, batch_seed=7)
    w = np.random.default_rng(0).normal(size=prob.dim)
    for t in (0, 1, 17):
        G = prob.partition_gradients(w, round=t)
        rows = np.stack([prob.part(j).gradient(w, round=t) for j in range(prob.k)])
        np.testing.assert_allclose(G, rows, rtol=1e-12, atol=1e-15)
        idx = union_index(prob, t)
        assert idx.size == 9 + 5 + 9 + 9
        ref = build(X[idx], y[idx], 1, l2=0.01).full_gradient(w)    # independent problem
        np.testing.assert_allclose(G.sum(axis=0), ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(prob.full_gradient(w, round=t), ref, rtol=1e-12)
    assert not np.allclose(prob.partition_gradients(w, round=0),
                           prob.partition_gradients(w, round=1))
    # round None (or no batch_size): the full data, as before
    full = build(X, y, parts, l2=0.01)
    np.testing.assert_allclose(prob.partition_gradients(w), full.partition_gradients(w),
                               rtol=1e-12)
    np.testing.assert_allclose(full.partition_gradients(w, round=3),
                               full.partition_gradients(w), rtol=1e-12)


# ---------------------------------------------------------------------------- backends
EXACT = {
    "frc": lambda: gc.schemes.exact(gc.codes.fractional_repetition(n=N, s=1)),
    "cyclic": lambda: gc.schemes.exact(gc.codes.cyclic_repetition(n=N, s=1, seed=3)),
}


class Straggle(gc.stragglers.DelayModel):
    """Worker (t mod n) is 0.3 s late in round t; the others answer at once."""

    def sample(self, round, load):  # noqa: A002
        d = np.zeros(len(load))
        d[round % len(load)] = 0.3
        return d


def _decoded_equals_union(prob, scheme, backend, reference, rtol, rounds=3):
    """Returns the rounds' results: each decodes the union gradient of round t."""
    be = gc.backends.get_backend(backend)
    be.start(prob, scheme.code, delays=Straggle(), task=scheme.task)
    results = []
    try:
        rng = np.random.default_rng(5)
        for t in range(rounds):
            w = (rng.normal(size=prob.dim) * 0.3).astype(prob.dtype)
            res = gc.training.coded_round(be, scheme, t, w)
            assert len(res.responders) < N or backend == "simulated"
            ref = reference(w, union_index(prob, t))
            scale = float(np.max(np.abs(ref)))
            np.testing.assert_allclose(res.g_hat, ref, rtol=rtol, atol=rtol * scale)
            # the union of the minibatches is not the full data: a round that used all
            # rows (batch_size ignored) would fail the check above
            full = prob.full_gradient(w)
            assert np.linalg.norm(full - ref) > 1e-3 * np.linalg.norm(full)
            results.append(res)
    finally:
        be.close()
    return results


def _nested_scheme():
    return gc.schemes.nested(gc.codes.nested(N, (0, 1, 2), seed=0))


@pytest.mark.parametrize("backend", ["simulated", "local"])
def test_nested_protocol_decodes_the_minibatch_union_gradient(backend):
    """Nested codes: every worker task computes partition j's round-t minibatch (the same
    rows as the plain protocol), and the level vectors decode exactly their union."""
    prob, ref = _ls_problem()
    results = _decoded_equals_union(prob, _nested_scheme(), backend, ref, rtol=1e-9)
    assert all(r.extra["nested_level"] in (0, 1, 2) and not r.fallback for r in results)


def _ls_problem():
    X, y = gc.data.synthetic_regression(40 * N, 6, seed=2)
    prob = gc.problems.least_squares(X, y, N, l2=0.1, batch_size=7, batch_seed=11)
    ref = lambda w, idx: gc.problems.least_squares(X[idx], y[idx], 1, l2=0.1).full_gradient(w)  # noqa: E731
    return prob, ref


@pytest.mark.parametrize("backend", ["simulated", "local"])
@pytest.mark.parametrize("name", list(EXACT))
def test_decoded_minibatch_gradient_numpy(backend, name):
    prob, ref = _ls_problem()
    _decoded_equals_union(prob, EXACT[name](), backend, ref, rtol=1e-9)


class TinyNet:
    """A float32 MLP with dropout (seeded per round and partition) and its reference."""

    @staticmethod
    def build():
        torch = pytest.importorskip("torch")
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                                  torch.nn.Dropout(0.2), torch.nn.Linear(16, 3))
        X, y = gc.data.synthetic_multiclass(30 * N, 6, classes=3, seed=3)
        return net, X.astype(np.float32), y.astype(np.int64)


def _torch_problem(dataset=False):
    torch = pytest.importorskip("torch")
    net, X, y = TinyNet.build()
    F = torch.nn.functional
    if dataset:
        data = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
        prob = gc.problems.torch_problem(net, F.cross_entropy, dataset=data, k=N,
                                         batch_size=8, batch_seed=4)
    else:
        prob = gc.problems.torch_problem(net, F.cross_entropy, X, y, N, batch_size=8,
                                         batch_seed=4)
    net.eval()      # the reference below has no dropout: check dropout separately
    prob.module.eval()

    def ref(w, idx):
        from torch.nn.utils import vector_to_parameters
        vector_to_parameters(torch.tensor(np.asarray(w, np.float32)), net.parameters())
        net.zero_grad()
        F.cross_entropy(net(torch.tensor(X[idx])), torch.tensor(y[idx])).backward()
        return torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
    return prob, ref


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["simulated", "local"])
def test_decoded_minibatch_gradient_torch_float32(backend):
    prob, ref = _torch_problem(dataset=backend == "local")
    assert prob.dtype == np.float32 and prob.init_params().dtype == np.float32
    _decoded_equals_union(prob, EXACT["frc"](), backend, ref, rtol=1e-6)


def _mlp_loss(p, X, y):
    import jax
    import jax.numpy as jnp
    h = jnp.tanh(X @ p["w1"] + p["b1"])
    logits = h @ p["w2"] + p["b2"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


def _jax_problem():
    pytest.importorskip("jax")
    import jax
    X, y = gc.data.synthetic_multiclass(30 * N, 6, classes=3, seed=3)
    X = X.astype(np.float32)
    rng = np.random.default_rng(0)
    p0 = {"w1": rng.normal(size=(6, 8)).astype(np.float32) * 0.3, "b1": np.zeros(8, np.float32),
          "w2": rng.normal(size=(8, 3)).astype(np.float32) * 0.3, "b2": np.zeros(3, np.float32)}
    prob = gc.problems.jax_problem(_mlp_loss, p0, X, y, N, batch_size=8, batch_seed=2)

    def ref(w, idx):
        from jax.flatten_util import ravel_pytree
        g = jax.grad(_mlp_loss)(prob.unravel(w), X[idx], y[idx])
        return np.asarray(ravel_pytree(g)[0])
    return prob, ref


@pytest.mark.jax
@pytest.mark.parametrize("backend", ["simulated", "local"])
def test_decoded_minibatch_gradient_jax_float32(backend):
    prob, ref = _jax_problem()
    assert prob.dtype == np.float32
    _decoded_equals_union(prob, EXACT["cyclic"](), backend, ref, rtol=1e-6)


@pytest.mark.torch
def test_dropout_masks_agree_between_replicas():
    """Two copies of partition j (as two workers hold them) give the same round-t gradient
    with dropout on; different rounds draw different masks."""
    torch = pytest.importorskip("torch")
    net, X, y = TinyNet.build()
    prob = gc.problems.torch_problem(net, torch.nn.functional.cross_entropy, X, y, N,
                                     batch_size=8)
    assert prob.module.training
    w = prob.init_params()
    a, b = prob.part(1), pickle.loads(pickle.dumps(prob.part(1)))
    np.testing.assert_array_equal(a.gradient(w, round=3), b.gradient(w, round=3))
    np.testing.assert_array_equal(a.gradient(w, round=3), prob.partition_gradients(w, 3)[1])
    # same rows, different round: only the dropout masks differ
    c = prob.part(1)
    c.batches = Minibatches(prob.batches.sizes, None, 0)
    assert not np.array_equal(c.gradient(w, round=3), c.gradient(w, round=4))


# ---------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from gradcode.backends.ray import connect
    assert not ray.is_initialized()
    assert connect("local", num_cpus=2) is True
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(EXACT))
def test_decoded_minibatch_gradient_ray(ray_session, name):
    prob, ref = _ls_problem()
    _decoded_equals_union(prob, EXACT[name](), "ray", ref, rtol=1e-9)


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_nested_minibatch_union_gradient_ray(ray_session):
    prob, ref = _ls_problem()
    _decoded_equals_union(prob, _nested_scheme(), "ray", ref, rtol=1e-9)


@pytest.mark.parametrize("module", ["gradcode.models.problems", "gradcode.models.problems._base",
                                    "gradcode.models.problems._linear"])
def test_docstring_examples(module):
    import doctest
    import importlib
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


def test_toml_key_problem_batch_size():
    from gradcode.app.compare import _make_problem
    from gradcode.app.config import ConfigError, parse_config
    cfg = parse_config({"workers": 4, "seed": 3,
                        "problem": {"dataset": "synthetic", "batch_size": 16}})
    assert cfg.problem.batch_size == 16 and parse_config({}).problem.batch_size is None
    X, y = gc.data.synthetic_classification(80, 5, seed=0)
    prob = _make_problem(cfg, (X, y, None, None), 4)
    assert prob.batch_size == 16 and prob.batches.seed == 3
    with pytest.raises(ConfigError, match=r"problem.batch_size=0 must be >= 1"):
        parse_config({"problem": {"batch_size": 0}})
