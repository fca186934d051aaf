"""Nested codes through ``gc.training.train``: exact gradients on the simulated and local
backends, simulated latency = min over levels of the fixed codes' latency on the same
draws, dead workers survived, no process left behind."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr
from gradcode.backends.local import LocalBackend
from gradcode.latency import fixed_path_latency, nested_path_latency
from gradcode.protocols.nested import BEACON_BYTES, STOP_BYTES

pytestmark = pytest.mark.timeout(120) if hasattr(pytest.mark, "timeout") else []

N = 12
LEVELS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _no_leftover_processes(no_leftover_processes):
    """Every test here checks that no worker process outlives it (tests/conftest.py)."""


def _problem(k: int):
    X, y = gc.data.synthetic_regression(20 * k, 4, seed=0)
    return gc.problems.least_squares(X, y, k=k)


def _check_rows(hist, *, k_levels=LEVELS):
    for row in hist:
        assert row["grad_rel_error"] <= 1e-9
        assert row["nested_level"] in k_levels
        assert row["error"] < 1e-12
        assert row["nested_extra_messages"] == row["nested_beacons"] + row["nested_stops"]
        assert row["nested_extra_bytes"] == (BEACON_BYTES * row["nested_beacons"]
                                             + STOP_BYTES * row["nested_stops"])
        assert row["nested_vectors"] >= row["n_responders"] > 0


@pytest.mark.parametrize("family, n, levels", [("cyclic", N, LEVELS),
                                               ("dyadic_frc", 8, (0, 1, 3))])
def test_simulated_exact_and_latency_is_min_of_fixed_codes(family, n, levels):
    prob = _problem(n)
    code = gc.codes.nested(n, levels, family=family, seed=0)
    scheme = gc.training.nested(code)              # re-exported like the other baselines
    assert scheme is not None and scheme.name.startswith("nested(")
    model = st.ShiftedExponential(shift=0.5, mean=1.0, seed=3)
    rounds = 8
    hist = tr.train(prob, scheme, rounds=rounds, delays=model)
    _check_rows(hist, k_levels=levels)
    # the same draws: task m of worker i ends at m * u_i (u_i: the per-partition draw)
    unit = np.stack([model.sample(t, np.ones(n)) for t in range(rounds)])
    times = unit[:, :, None] * np.arange(1, levels[-1] + 2)[None, None, :]
    expected = nested_path_latency(times, levels, family)
    np.testing.assert_allclose(hist.column("round_time"), expected, rtol=1e-12)
    if family == "cyclic":
        fixed = np.min([fixed_path_latency(times, s) for s in levels], axis=0)
        np.testing.assert_allclose(hist.column("round_time"), fixed, rtol=1e-12)
        # and a fixed GC(n, s) run by train on the same model waits exactly T_s
        s = levels[1]
        level_code = code.meta["level_codes"][1]
        h_fixed = tr.train(prob, tr.exact(level_code), rounds=rounds, delays=model)
        np.testing.assert_allclose(h_fixed.column("round_time"),
                                   fixed_path_latency(times, s), rtol=1e-12)
        assert np.all(hist.column("round_time") <= h_fixed.column("round_time") + 1e-12)


def test_simulated_run_round_gradient_and_dead_workers():
    prob = _problem(N)
    scheme = gc.schemes.nested(gc.codes.nested(N, LEVELS, seed=1))
    be = gc.backends.SimulatedBackend()
    be.start(prob, scheme.code, delays=st.Constant([np.inf, np.inf] + [1.0] * (N - 2)),
             task=scheme.task)
    params = np.linspace(-1, 1, prob.dim)
    res = scheme.run_round(be, 0, params)
    np.testing.assert_allclose(res.g_hat, prob.full_gradient(params), rtol=1e-9)
    assert res.extra["nested_level"] == 2 and res.round_time == pytest.approx(3.0)
    assert not {0, 1} & set(res.responders) and not res.fallback
    # one more failed worker than the top level tolerates: the fallback decodes the
    # completed (top-level) vectors of the 9 others optimally
    be.start(prob, scheme.code, delays=st.Constant([np.inf] * 3 + [1.0] * (N - 3)),
             task=scheme.task)
    res = scheme.run_round(be, 0, params)
    assert res.fallback and res.extra["nested_level"] == -1
    assert sorted(res.responders) == list(range(3, N))
    assert res.decoder == "nested-fallback(optimal)"
    # independent check: least squares over the level-2 rows of the 9 responders
    C = scheme.code.meta["level_codes"][2].B.toarray()[3:]
    a = np.linalg.lstsq(C.T, np.ones(N), rcond=None)[0]
    G = prob.partition_gradients(params)
    np.testing.assert_allclose(res.g_hat, a @ (C @ G), rtol=1e-9, atol=1e-12)
    assert res.decoding.error == pytest.approx(float(np.sum((C.T @ a - 1) ** 2)))
    assert 0 < res.decoding.error < N
    with pytest.raises(TypeError, match="nested code"):
        gc.schemes.nested(gc.codes.cyclic_repetition(4, 1, seed=0))


def test_local_exact_with_kill_9_and_no_leftovers():
    n = 6
    prob = _problem(n)
    scheme = gc.schemes.nested(gc.codes.nested(n, LEVELS, seed=0))
    be = LocalBackend(time_scale=0.05, round_timeout=30)
    killed: list[int] = []

    def callback(row):
        if row["round"] == 0:                      # between rounds
            os.kill(be.pids[1], signal.SIGKILL)
            killed.append(1)
        elif row["round"] == 1:                    # during round 2 (wherever it is)
            threading.Timer(0.03, os.kill, (be.pids[4], signal.SIGKILL)).start()
            killed.append(4)

    hist = tr.train(prob, scheme, rounds=5, backend=be, grad_error=True,
                    delays=st.Constant(1.0), callback=callback)
    assert killed == [1, 4]
    _check_rows(hist)
    assert hist.final["dead"] == 2
    assert all(1 not in r["responders"] for r in hist.rows[1:])
    assert all(4 not in r["responders"] for r in hist.rows[3:])
    assert hist[0]["nested_stops"] == n            # STOP(level) to all 6 live workers
    # two dead: level 0 is impossible; level 1 (n - 1 = 5 workers) is too after round 2
    assert all(r["nested_level"] == 2 for r in hist.rows[3:])
    assert hist.final["loss"] < hist.meta["initial_loss"]
    assert not be.processes


def test_local_dyadic_family_exact():
    n = 4
    prob = _problem(n)
    scheme = gc.schemes.nested(gc.codes.nested(n, (0, 1, 3), family="dyadic_frc"))
    hist = tr.train(prob, scheme, rounds=3, backend="local", grad_error=True,
                    delays=st.Exponential(1.0, seed=0),
                    backend_options={"time_scale": 0.02, "round_timeout": 30})
    _check_rows(hist, k_levels=(0, 1, 3))
