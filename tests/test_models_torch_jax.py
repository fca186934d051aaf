"""PyTorch and JAX models as people write them: a Module + torch.optim optimiser + Dataset,
a pytree loss + optax; parameters as one flat buffer in the model's dtype."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gradcode as gc
import gradcode.data  # noqa: F401
import gradcode.optimizers  # noqa: F401
import gradcode.problems  # noqa: F401
import gradcode.schemes  # noqa: F401
import gradcode.training  # noqa: F401


class CountingDataset:
    """A lazy map-style dataset that records which items were read (per copy)."""

    def __init__(self, X, y):
        self.X, self.y, self.read = X, y, []

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.read.append(i)
        return self.X[i], self.y[i]


def _data():
    X, y = gc.data.synthetic_multiclass(120, 6, classes=3, seed=5)
    return X.astype(np.float32), y.astype(np.int64)


@pytest.mark.torch
def test_dataset_partitions_are_read_where_used_and_only_their_items():
    torch = pytest.importorskip("torch")
    X, y = _data()
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 3)
    F = torch.nn.functional
    ds = CountingDataset(X, y)
    prob = gc.problems.torch_problem(net, F.cross_entropy, dataset=ds, k=4, batch_size=5,
                                     partition_seed=1)
    assert ds.read == []                                  # nothing read on the master
    part = pickle.loads(pickle.dumps(prob.part(2)))       # what a worker receives
    part.gradient(prob.init_params(), round=7)
    rows = prob.batches.rows(7, 2)
    assert sorted(part.source.dataset.read) == sorted(prob.parts[2][rows].tolist())
    # the same gradient as from the arrays
    arr = gc.problems.torch_problem(net, F.cross_entropy, X, y, k=4, batch_size=5,
                                    partition_seed=1)
    np.testing.assert_allclose(part.gradient(prob.init_params(), round=7),
                               arr.part(2).gradient(arr.init_params(), round=7), rtol=1e-6)
    # a TensorDataset is sliced: a part pickles about a quarter of the data
    big = torch.utils.data.TensorDataset(torch.randn(4000, 6), torch.randint(0, 3, (4000,)))
    tp = gc.problems.torch_problem(net, F.cross_entropy, dataset=big, k=4)
    whole = len(pickle.dumps(big.tensors))
    assert len(pickle.dumps(tp.part(0))) < 0.3 * whole


@pytest.mark.torch
def test_torch_optimizer_instance_matches_plain_pytorch():
    """Adam built on model.parameters() (two param groups): gradcode's step on the flat
    vector equals plain PyTorch's step on the module, state kept on the master."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils import parameters_to_vector
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    twin = pickle.loads(pickle.dumps(net))
    groups = lambda m: [{"params": m[0].parameters(), "lr": 1e-2},  # noqa: E731
                        {"params": m[2].parameters(), "lr": 3e-3}]
    ours = gc.optimizers.make_optimizer(torch.optim.Adam(groups(net)), None)
    plain = torch.optim.Adam(groups(twin))
    w = parameters_to_vector(net.parameters()).detach().numpy().copy()
    rng = np.random.default_rng(0)
    for t in range(5):
        g = rng.normal(size=w.size).astype(np.float32)
        w = ours.step(w, g, t)
        off = 0
        for p in twin.parameters():
            p.grad = torch.tensor(g[off:off + p.numel()]).view_as(p)
            off += p.numel()
        plain.step()
        np.testing.assert_allclose(w, parameters_to_vector(twin.parameters()).detach().numpy(),
                                   rtol=1e-6, atol=1e-7)
    assert w.dtype == np.float32 and "0.exp_avg" in ours.state_arrays()
    with pytest.raises(ValueError, match="hold 21 numbers but the parameter vector has 3"):
        gc.optimizers.TorchOptimizer(torch.optim.SGD(torch.nn.Linear(6, 3).parameters(),
                                                     lr=0.1)).reset(np.zeros(3))


@pytest.mark.torch
def test_torch_optimizer_never_aliases_the_callers_arrays():
    """The caller's gradient and parameter arrays are left untouched by a step (the
    parameters used to become views of the caller's array, which the step then
    overwrote), every step returns a new array, and writing into an earlier result does
    not change later steps (an Adam class on a flat float32 tensor, against plain
    PyTorch's Adam on a copy)."""
    torch = pytest.importorskip("torch")
    ours = gc.optimizers.make_optimizer(torch.optim.Adam, 0.01)
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=50).astype(np.float32)
    ref = torch.nn.Parameter(torch.tensor(w0))
    plain = torch.optim.Adam([ref], lr=0.01)
    w, outs = w0.copy(), []
    for t in range(4):
        g = rng.normal(size=50).astype(np.float32)
        g_before, w_before = g.copy(), w.copy()
        new = ours.step(w, g, t)
        np.testing.assert_array_equal(g, g_before)
        np.testing.assert_array_equal(w, w_before)
        assert all(new is not o and not np.shares_memory(new, o) for o in outs)
        ref.grad = torch.tensor(g)
        plain.step()
        np.testing.assert_allclose(new, ref.detach().numpy(), rtol=1e-6, atol=1e-7)
        outs.append(new)
        w = new.copy()
        new[:] = np.nan                        # the caller scribbles on what it got back
    assert np.isfinite(w).all()


@pytest.mark.torch
def test_torch_minibatch_training_with_adam_on_local_workers():
    torch = pytest.importorskip("torch")
    X, y = _data()
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    ds = torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y))
    prob = gc.problems.torch_problem(net, torch.nn.functional.cross_entropy, dataset=ds, k=4,
                                     batch_size=10, accuracy=True)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    scheme = gc.schemes.exact(gc.codes.fractional_repetition(n=4, s=1))
    hist = gc.training.train(prob, scheme, rounds=25, backend="local", optimizer=opt,
                             lr=None, eval_every=24)
    losses = [r["loss"] for r in hist.rows if not np.isnan(r["loss"])]
    assert losses[-1] < 0.7 * hist.meta.get("initial_loss", losses[0])
    assert hist.rows[-1]["accuracy"] > 0.6


def _mlp(p, X, y):
    import jax
    import jax.numpy as jnp
    logits = jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


@pytest.mark.jax
def test_optax_on_the_pytree_matches_plain_optax():
    optax = pytest.importorskip("optax")
    import jax
    from jax.flatten_util import ravel_pytree
    X, y = _data()
    rng = np.random.default_rng(1)
    p0 = {"w1": (rng.normal(size=(6, 8)) * 0.3).astype(np.float32),
          "b1": np.zeros(8, np.float32),
          "w2": (rng.normal(size=(8, 3)) * 0.3).astype(np.float32),
          "b2": np.zeros(3, np.float32)}
    # weight decay only on the weights: needs the pytree (a mask by leaf name)
    tx = optax.adamw(1e-2, weight_decay=0.1, mask=lambda t: {k: k[0] == "w" for k in t})
    prob = gc.problems.jax_problem(_mlp, p0, X, y, k=4, batch_size=12)
    ours = gc.optimizers.OptaxOptimizer(tx, params0=p0)
    w = prob.init_params()
    tree, state = jax.tree_util.tree_map(np.asarray, p0), tx.init(p0)
    for t in range(4):
        g = prob.full_gradient(w, round=t)
        assert g.dtype == np.float32
        w = ours.step(w, g, t)
        up, state = tx.update(prob.unravel(g), state, tree)
        tree = optax.apply_updates(tree, up)
        np.testing.assert_allclose(w, ravel_pytree(tree)[0], rtol=1e-6, atol=1e-7)
    assert w.dtype == np.float32
    hist = gc.training.train(prob, gc.schemes.exact(gc.codes.cyclic_repetition(4, 1, seed=0)),
                             rounds=30, backend="simulated", lr=None,
                             optimizer=gc.optimizers.OptaxOptimizer(optax.adam(0.03), p0))
    assert hist.rows[-1]["loss"] < 0.7 * prob.loss(prob.init_params())


@pytest.mark.parametrize("kwargs, exc, needle", [
    ({"X": np.zeros((4, 2)), "y": np.zeros(4), "dataset": [(0, 0)] * 4}, ValueError, "not both"),
    ({}, ValueError, "give X and y, or dataset="),
    ({"dataset": 5}, TypeError, "map-style"),
    ({"X": np.zeros((4, 2)), "y": np.zeros(3)}, ValueError, "X has 4 rows but y has 3"),
])
def test_model_problems_name_bad_data_arguments(kwargs, exc, needle):
    """torch_problem and jax_problem refuse the same bad data arguments the same way."""
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(exc, match=needle):
        gc.problems.torch_problem(torch.nn.Linear(2, 1), torch.nn.functional.mse_loss, k=2,
                                  **kwargs)
    with pytest.raises(exc, match=needle):
        gc.problems.jax_problem(lambda p, X, y: jnp.mean((X @ p - y) ** 2), jnp.zeros(2),
                                k=2, **kwargs)
