"""Problems: partition gradients add up to the full gradient, which matches finite
differences of the loss; dense and sparse agree; torch and jax adapters."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import gradcode as gc


def _fd_grad(f, w, h=1e-6):
    g = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        g[i] = (f(w + e) - f(w - e)) / (2 * h)
    return g


def _problems():
    Xc, yc = gc.data.synthetic_classification(90, 4, seed=0)
    Xr, yr = gc.data.synthetic_regression(90, 4, seed=0)
    Xm, ym = gc.data.synthetic_multiclass(90, 4, classes=3, seed=0)
    return {
        "least_squares": gc.problems.least_squares(Xr, yr, 6, l2=0.1),
        "logistic": gc.problems.logistic_regression(Xc, yc, 6, l2=0.01),
        "logistic_sparse": gc.problems.logistic_regression(sp.csr_matrix(Xc), yc, 6, l2=0.01),
        "softmax": gc.problems.softmax_regression(Xm, ym, 6, l2=0.01),
    }


@pytest.mark.parametrize("name", list(_problems()))
def test_partition_gradients_sum_to_full_gradient(name):
    prob = _problems()[name]
    w = np.random.default_rng(1).standard_normal(prob.dim) * 0.3
    G = prob.partition_gradients(w)
    assert G.shape == (prob.k, prob.dim)
    np.testing.assert_allclose(G.sum(axis=0), prob.full_gradient(w), rtol=1e-12, atol=1e-14)
    for j in (0, prob.k - 1):
        part = pickle.loads(pickle.dumps(prob.part(j)))
        np.testing.assert_allclose(part.gradient(w), G[j], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(prob.full_gradient(w), _fd_grad(prob.loss, w), rtol=1e-5,
                               atol=1e-7)


def test_dense_and_sparse_agree():
    probs = _problems()
    w = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(probs["logistic"].partition_gradients(w),
                               probs["logistic_sparse"].partition_gradients(w), rtol=1e-12)
    assert probs["logistic"].loss(w) == pytest.approx(probs["logistic_sparse"].loss(w), rel=1e-12)


def test_metrics_and_test_data():
    X, y = gc.data.synthetic_classification(200, 3, seed=0)
    Xa, ya, Xb, yb = gc.data.train_test_split(X, y, 0.25, seed=0)
    prob = gc.problems.logistic_regression(Xa, 2 * ya - 1, 5, test=(Xb, yb))   # {-1, 1} labels
    m = prob.metrics(np.ones(3))
    assert {"loss", "test_loss", "accuracy", "test_accuracy", "train_accuracy"} <= set(m)
    assert m["accuracy"] == m["test_accuracy"]
    assert prob.lipschitz() > 0
    assert "accuracy" not in gc.problems.least_squares(Xa, ya, 5).metrics(np.ones(3))


def test_bad_input():
    X, y = gc.data.synthetic_classification(20, 3, seed=0)
    with pytest.raises(ValueError, match="k=30 must be <= the number of samples 20"):
        gc.problems.logistic_regression(X, y, 30)
    with pytest.raises(ValueError, match="binary labels"):
        gc.problems.logistic_regression(X, y + 2, 2)
    with pytest.raises(ValueError, match="one label per row"):
        gc.problems.least_squares(X, y[:5], 2)
    X2 = X.copy()
    X2[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        gc.problems.least_squares(X2, y, 2)
    with pytest.raises(ValueError, match="l2=-1.0 must be >= 0"):
        gc.problems.least_squares(X, y, 2, l2=-1)


def test_torch_adapter():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, y = gc.data.synthetic_multiclass(60, 4, classes=3, seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 3)).double()
    prob = gc.problems.torch_problem(model, torch.nn.functional.cross_entropy, X, y, 4,
                                     accuracy=True, test=(X[:10], y[:10]))
    w = prob.init_params()
    G = prob.partition_gradients(w)
    ref = model
    ref.zero_grad()
    torch.nn.functional.cross_entropy(ref(torch.tensor(X)), torch.tensor(y)).backward()
    full = torch.cat([p.grad.reshape(-1) for p in ref.parameters()]).numpy()
    np.testing.assert_allclose(G.sum(axis=0), full, rtol=1e-10, atol=1e-12)
    part = pickle.loads(pickle.dumps(prob.part(1)))
    np.testing.assert_allclose(part.gradient(w), G[1], rtol=1e-12)
    m = prob.metrics(w)
    assert {"loss", "accuracy", "test_loss"} <= set(m)


def _mse(p, X, y):
    import jax.numpy as jnp
    return jnp.mean((X @ p["w"] + p["b"] - y) ** 2) / 2


def test_jax_adapter():
    pytest.importorskip("jax")
    X, y = gc.data.synthetic_regression(40, 3, seed=0)
    prob = gc.problems.jax_problem(_mse, {"b": np.zeros(()), "w": np.zeros(3)}, X, y, 4)
    ref = gc.problems.least_squares(np.hstack([np.ones((40, 1)), X]), y, 4)
    w = np.array([0.3, -0.2, 0.1, 0.5])          # ravel order: b, w
    G = prob.partition_gradients(w)
    np.testing.assert_allclose(G, ref.partition_gradients(w), rtol=1e-5, atol=1e-6)
    part = pickle.loads(pickle.dumps(prob.part(2)))
    np.testing.assert_allclose(part.gradient(w), G[2], rtol=1e-6)
    assert prob.loss(w) == pytest.approx(ref.loss(w), rel=1e-5)
