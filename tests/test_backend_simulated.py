"""Simulated backend: arrivals ordered by virtual time, deadlines, failures, protocol."""

from __future__ import annotations

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr
from gradcode.backends import SimulatedBackend


@pytest.fixture(scope="module")
def prob():
    X, y = gc.data.synthetic_regression(60, 3, seed=0)
    return gc.problems.least_squares(X, y, 6)


def _arrivals(be, state, t=0, w=None):
    return list(be.run_round(t, np.zeros(3) if w is None else w, state))


def test_arrivals_in_delay_order_with_load_scaling(prob):
    code = gc.codes.cyclic_repetition(n=6, s=2, seed=0)          # load 3
    model = st.ShiftedExponential(1.0, 1.0, seed=5)
    be = SimulatedBackend()
    be.start(prob, code, delays=model)
    arr = _arrivals(be, gc.wait.wait_all().start(code), t=2)
    expect = model.sample(2, np.full(6, 3.0))
    assert [a.worker for a in arr] == np.argsort(expect, kind="stable").tolist()
    np.testing.assert_allclose([a.time for a in arr], np.sort(expect))
    assert be.round_info.end_time == pytest.approx(expect.max())
    G = prob.partition_gradients(np.zeros(3))
    for a in arr:
        np.testing.assert_allclose(a.value, (code.B[[a.worker]] @ G)[0], rtol=1e-12)
    np.testing.assert_allclose(be.round_info.true_gradient, G.sum(axis=0))
    assert isinstance(be, gc.backends.Backend)


def test_deadline_and_failures(prob):
    code = gc.codes.uncoded(6)
    be = SimulatedBackend()
    be.start(prob, code, delays=st.Constant([0.1, 0.5, np.inf, 0.2, 2.0, 0.3]))
    arr = _arrivals(be, gc.wait.deadline(1.0).start(code))
    assert [a.worker for a in arr] == [0, 3, 5, 1]
    assert be.round_info.end_time == 1.0
    arr = _arrivals(be, gc.wait.wait_all().start(code))
    assert [a.worker for a in arr] == [0, 3, 5, 1, 4]              # worker 2 never answers
    assert be.round_info.end_time == 2.0


def test_nonfinite_results_are_dropped():
    class Bad(gc.problems.Problem):
        dim, k, name = 2, 3, "bad"

        def partition_gradients(self, params):
            G = np.ones((3, 2))
            G[1] = np.nan
            return G

    code = gc.codes.uncoded(3)
    be = SimulatedBackend()
    be.start(Bad(), code)
    arr = _arrivals(be, gc.wait.wait_all().start(code), w=np.zeros(2))
    assert [a.worker for a in arr] == [0, 2]
    assert be.round_info.dropped == [(1, "non-finite result (NaN or inf)")]


def test_get_backend():
    assert isinstance(gc.backends.get_backend("simulated"), SimulatedBackend)
    be = SimulatedBackend()
    assert gc.backends.get_backend(be) is be
    with pytest.raises(ValueError, match="backend='gpu' is not known; valid: simulated, local"):
        gc.backends.get_backend("gpu")
    with pytest.raises(TypeError, match="start/run_round"):
        gc.backends.get_backend(object())


def test_complex_code_trains(prob):
    h = tr.train(prob, tr.exact(gc.codes.cyclic_mds(n=6, s=2)), rounds=5,
                 delays=st.Exponential(1.0, seed=0))
    assert all(r["grad_rel_error"] < 1e-9 for r in h)


@pytest.mark.torch
@pytest.mark.parametrize("scheme", [
    lambda n: gc.schemes.exact(gc.codes.fractional_repetition(n=n, s=1)),
    lambda n: gc.schemes.exact(gc.codes.cyclic_repetition(n=n, s=2, seed=1)),
    lambda n: gc.schemes.approximate(gc.codes.cyclic_repetition(n=n, s=2, seed=1), r=n),
    lambda n: gc.schemes.nested(gc.codes.nested(n, (0, 1, 2), seed=0)),
], ids=["frc", "cyclic", "cyclic-optimal-events", "nested"])
def test_float32_model_is_decoded_in_float32(scheme):
    """A torch model's decoded gradient keeps the model's dtype (float32), as on the local
    and Ray hosts, and equals the direct sum of the round's partition gradients."""
    torch = pytest.importorskip("torch")
    from gradcode.backends.base import CodedRows
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    X, y = gc.data.synthetic_multiclass(120, 5, classes=3, seed=1)
    n = 6
    prob = gc.problems.torch_problem(net, torch.nn.functional.cross_entropy,
                                     X.astype(np.float32), y.astype(np.int64), n,
                                     batch_size=6, batch_seed=2)
    sc = scheme(n)
    be = SimulatedBackend()
    be.start(prob, sc.code, delays=st.Exponential(1.0, seed=3), task=sc.task)
    rng = np.random.default_rng(4)
    for t in range(3):
        w = (prob.init_params() + 0.1 * rng.normal(size=prob.dim)).astype(np.float32)
        res = tr.coded_round(be, sc, t, w)
        direct = prob.partition_gradients(w, round=t).sum(axis=0)
        assert direct.dtype == np.float32 and res.g_hat.dtype == np.float32
        np.testing.assert_allclose(res.g_hat, direct, rtol=1e-6,
                                   atol=1e-6 * float(np.max(np.abs(direct))))
    be.close()
    G = prob.partition_gradients(w, round=0)
    assert CodedRows(sc.code.B, G).row(0).dtype == np.float32
