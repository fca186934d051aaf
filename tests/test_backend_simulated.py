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
