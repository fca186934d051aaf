"""Local backend (one process per worker): exact recovery, agreement with the simulated
backend, reliability (kill -9, NaN results, all workers dead), no backlog, no leftovers."""

from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr
from gradcode.backends.local import LocalBackend

pytestmark = pytest.mark.timeout(120) if hasattr(pytest.mark, "timeout") else []


@pytest.fixture(autouse=True)
def _no_leftover_processes(no_leftover_processes):
    """Every test here checks that no worker process outlives it (tests/conftest.py)."""


@pytest.fixture(scope="module")
def logreg():
    X, y = gc.data.synthetic_classification(240, 5, seed=0)
    return gc.problems.logistic_regression(X, y, 4, l2=1e-3)


class NaNPart(gc.problems.Part):
    def __init__(self, part):
        self.part = part

    def gradient(self, params):
        return np.full_like(self.part.gradient(params), np.nan)


class FaultyProblem(gc.problems.LinearProblem):
    """Partition ``bad`` returns NaN in the workers (the master's own copy is fine)."""

    bad = 3

    def part(self, j):
        p = super().part(j)
        return NaNPart(p) if j == self.bad else p


def test_exact_gradient_on_local_backend(logreg):
    scheme = tr.exact(gc.codes.cyclic_repetition(n=4, s=1, seed=0))
    with LocalBackend(time_scale=0.01) as be:
        be.start(logreg, scheme.code, delays=st.ShiftedExponential(1.0, 2.0, seed=0))
        rng = np.random.default_rng(1)
        for t in range(3):
            w = rng.standard_normal(logreg.dim)
            res = tr.coded_round(be, scheme, t, w)
            assert len(res.responders) == 3
            np.testing.assert_allclose(res.g_hat, logreg.full_gradient(w), rtol=1e-9,
                                       atol=1e-13)


def test_same_seed_same_responders_and_params_as_simulated(logreg, tmp_path):
    rng = np.random.default_rng(0)
    trace = tmp_path / "trace.csv"
    with open(trace, "w") as fh:
        for t in range(4):
            fh.writelines(f"{t},{w},{d}\n" for w, d in enumerate(rng.permutation(4) * 0.15))
    scheme = tr.approximate(gc.codes.regularized_bernoulli(n=4, k=4, d=2, seed=0), r=2)
    kw = dict(rounds=4, delays=st.Trace(trace), lr=1.0)
    sim = tr.train(logreg, scheme, **kw)
    loc = tr.train(logreg, scheme, backend="local", **kw)
    assert [r["responders"] for r in loc] == [r["responders"] for r in sim]
    np.testing.assert_allclose(loc.column("loss"), sim.column("loss"), rtol=1e-12)
    np.testing.assert_allclose(loc.column("round_time"), sim.column("round_time"), atol=0.1)


def test_kill_minus_9_mid_run(logreg, caplog):
    scheme = tr.exact(gc.codes.fractional_repetition(n=4, s=1))
    be = LocalBackend(time_scale=0.01)
    killed = []

    def kill_one(row):
        if row["round"] == 2:
            os.kill(be.pids[1], signal.SIGKILL)
            killed.append(be.pids[1])

    with caplog.at_level(logging.WARNING, logger="gradcode.training"):
        h = tr.train(logreg, scheme, rounds=8, backend=be, callback=kill_one,
                     delays=st.Exponential(1.0, seed=0), grad_error=True)
    assert killed and len(h) == 8
    assert h.final["dead"] == 1
    assert all(1 not in r["responders"] for r in h.rows[3:])
    assert all(r["grad_rel_error"] < 1e-9 for r in h)        # FRC still decodes exactly
    loss = h.column("loss")
    assert loss[-1] < loss[2] < h.meta["initial_loss"]
    assert "worker 1 is dead" in caplog.text


def test_nan_worker_is_dropped_and_logged(logreg, caplog):
    X, y = logreg.X, logreg.y
    prob = FaultyProblem("logistic", X, y, logreg.parts, logreg.l2, None, 1, "faulty")
    code = gc.codes.cyclic_repetition(n=4, s=1, seed=0)
    with caplog.at_level(logging.WARNING, logger="gradcode.training"):
        h = tr.train(prob, tr.exact(code), rounds=4, backend="local",
                     backend_options={"time_scale": 0.01}, delays=st.Exponential(1.0, seed=0))
    holders = set(np.flatnonzero(code.toarray()[:, FaultyProblem.bad]).tolist())
    for r in h:
        assert not holders & set(r["responders"])
        assert any("non-finite" in d for d in r["dropped"])
    assert "non-finite result" in caplog.text
    assert h.final["loss"] < h.meta["initial_loss"]


def test_all_workers_dead_clear_error_and_checkpoint(logreg, tmp_path):
    scheme = tr.uncoded(4, deadline=5.0)
    be = LocalBackend()

    def kill_all(row):
        if row["round"] == 1:
            for pid in be.pids:
                os.kill(pid, signal.SIGKILL)

    t0 = time.monotonic()
    with pytest.raises(gc.backends.WorkersLostError, match="all 4 workers are dead at round 2"):
        tr.train(logreg, scheme, rounds=10, backend=be, callback=kill_all,
                 checkpoint=tmp_path / "ck", checkpoint_every=100)
    assert time.monotonic() - t0 < 5.0 + 10.0
    ck = tr.load_checkpoint(tmp_path / "ck")
    assert ck is not None and ck["round"] == 1 and len(ck["history"]) == 2


def test_superseded_rounds_leave_no_backlog(logreg):
    """A worker with a 3 s injected delay is cancelled every round: 5 rounds take << 3 s."""
    scheme = tr.approximate(gc.codes.uncoded(4), r=3)
    delays = st.Constant([0.0, 0.0, 0.0, 3.0])
    with LocalBackend() as be:
        be.start(logreg, scheme.code, delays=delays)
        t0 = time.perf_counter()
        for t in range(5):
            res = tr.coded_round(be, scheme, t, np.zeros(logreg.dim))
            assert sorted(res.responders) == [0, 1, 2]
            assert be.round_info.late == 0
        assert time.perf_counter() - t0 < 2.5
        res = tr.coded_round(be, tr.uncoded(4, deadline=0.2), 5, np.zeros(logreg.dim))
        assert sorted(res.responders) == [0, 1, 2] and res.round_time == pytest.approx(0.2)


def test_bad_start_method():
    with pytest.raises(ValueError, match="start_method='fork' must be 'spawn' or 'forkserver'"):
        LocalBackend(start_method="fork")


def test_failed_workers_are_not_waited_on_without_deadline(logreg):
    """A worker whose delay is infinite this round (Failures) is not asked, so wait_all
    with no deadline ends with the others instead of hanging."""
    scheme = tr.Scheme(gc.codes.uncoded(4), decoder="optimal", wait=gc.wait.wait_all())
    delays = st.Failures([0.0, 0.0, 0.0, 1.0], base=st.Constant(1.0), seed=0)
    with LocalBackend(time_scale=0.01) as be:
        be.start(logreg, scheme.code, delays=delays)
        t0 = time.perf_counter()
        res = tr.coded_round(be, scheme, 0, np.zeros(logreg.dim))
        assert time.perf_counter() - t0 < 30
    assert sorted(res.responders) == [0, 1, 2]
    assert res.decoding.error == pytest.approx(1.0)
