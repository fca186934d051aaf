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
    be.start(prob, scheme.code, delays=st.Constant([np.inf, np.inf] + [1.0] * (N - 2)))
    params = np.linspace(-1, 1, prob.dim)
    res = scheme.run_round(be, 0, params)
    np.testing.assert_allclose(res.g_hat, prob.full_gradient(params), rtol=1e-9)
    assert res.extra["nested_level"] == 2 and res.round_time == pytest.approx(3.0)
    assert not {0, 1} & set(res.responders)
    # one more dead worker than the top level tolerates: no decision, no step
    be.start(prob, scheme.code, delays=st.Constant([np.inf] * 3 + [1.0] * (N - 3)))
    res = scheme.run_round(be, 0, params)
    assert res.responders == [] and res.extra["nested_level"] == -1
    with pytest.raises(TypeError, match="nested code"):
        gc.schemes.nested(gc.codes.cyclic_repetition(4, 1, seed=0))

    class Other:                                   # e.g. Ray: refused before any start
        name = "other"
        started = False

        def start(self, *a, **k):
            self.started = True

        run_round = stop_round = close = start

    other = Other()
    with pytest.raises(NotImplementedError, match="'simulated' and 'local'"):
        tr.train(prob, scheme, rounds=1, backend=other)
    assert not other.started


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


class _FakeBackend:
    """Records the STOP broadcasts of the master side (no processes)."""

    def __init__(self, n):
        self.alive = np.ones(n, dtype=bool)
        self.round_info = gc.backends.RoundInfo()
        self.stops = []

    def stop_round(self, message=None):
        self.stops.append(message)
        return int(self.alive.sum())


def test_local_master_side_decides_stops_and_fails_cleanly():
    from gradcode.backends.base import Arrival
    from gradcode.protocols.nested_scheme import _LocalRound

    n = 6
    code = gc.codes.nested(n, LEVELS, seed=0)

    def arr(w, kind, value, t=0.0):
        return Arrival(w, value, t, 0, kind)

    be = _FakeBackend(n)
    state = _LocalRound(be, code, None, dim=2)
    for w in range(5):                               # 5 workers at 2 tasks: level 1
        assert not state.on_message(arr(w, "progress", 1))
    for w in range(4):
        assert not state.on_message(arr(w, "progress", 2))
    assert be.stops == []
    assert not state.on_message(arr(4, "progress", 2, t=0.5))
    assert be.stops == [{w: 1 for w in range(5)}] and state.decide_time == 0.5
    for w in range(4):
        assert not state.on_message(arr(w, "vector", (1, np.ones(2))))
    assert state.on_message(arr(4, "vector", (1, np.ones(2))))
    assert state.msgs.beacons == 10 and state.msgs.stops == n and state.msgs.vectors == 5
    # an asked worker dies after STOP and nobody else can serve its block: the round
    # ends (no hang) as failed
    be = _FakeBackend(n)
    state = _LocalRound(be, code, None, dim=2)
    for w in range(n):
        state.on_message(arr(w, "progress", 1))
    assert be.stops == [{w: 0 for w in range(n)}]
    assert state.on_message(arr(2, "dead", None)) and state.failed
    # too many dead before any decision: fails at once
    be = _FakeBackend(n)
    state = _LocalRound(be, code, None, dim=2)
    assert not state.on_message(arr(0, "dead", None))
    assert not state.on_message(arr(1, "dropped", "worker error: boom"))
    assert state.on_message(arr(2, "dead", None)) and state.failed and be.stops == []


# ---------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the Ray tests of this module, always shut down."""
    ray = pytest.importorskip("ray")
    from gradcode.backends.ray import connect

    assert not ray.is_initialized(), "another test left Ray running"
    assert connect("local", num_cpus=2) is True
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.parametrize("family, n, levels", [("cyclic", 6, LEVELS),
                                               ("dyadic_frc", 4, (0, 1, 3))])
def test_ray_exact_and_one_slow_worker(ray_session, family, n, levels):
    prob = _problem(n)
    scheme = gc.schemes.nested(gc.codes.nested(n, levels, family=family, seed=0))
    slow = n - 1
    # the slow worker's first task takes 2 s: level 0 would wait for it, level 1 does not
    delays = st.Constant([0.05] * (n - 1) + [2.0 * (levels[-1] + 1)])
    kwargs = {"rounds": 4, "lr": 0.05, "delays": delays, "grad_error": True}
    hist = tr.train(prob, scheme, backend="ray", backend_options={"round_timeout": 60},
                    **kwargs)
    ref = tr.train(prob, scheme, backend="simulated", **kwargs)
    assert hist.meta["backend"] == "ray"
    _check_rows(hist, k_levels=levels)
    np.testing.assert_allclose(hist.column("loss"), ref.column("loss"), rtol=1e-9)
    for row in hist:
        assert row["nested_level"] == 1 and slow not in row["responders"]
        assert row["nested_stops"] == n and row["round_time"] < 2.0
        assert row["nested_beacons"] >= row["n_responders"]     # each asked one reported
        assert row["dead"] == 0


@pytest.mark.ray
def test_ray_dead_actor_is_a_dead_worker(ray_session):
    from gradcode.backends.ray import RayBackend

    ray = ray_session
    n = 6
    prob = _problem(n)
    scheme = gc.schemes.nested(gc.codes.nested(n, LEVELS, seed=0))
    be = RayBackend(round_timeout=60)
    killed: list[int] = []

    def callback(row):
        if row["round"] == 0:                          # between rounds
            ray.kill(be._actors[1], no_restart=True)
            killed.append(1)
        elif row["round"] == 1:                        # during round 2
            threading.Timer(0.02, ray.kill, (be._actors[4],),
                            {"no_restart": True}).start()
            killed.append(4)

    try:
        hist = tr.train(prob, scheme, rounds=5, backend=be, grad_error=True,
                        delays=st.Constant(0.3), callback=callback)
    finally:
        be.close()
    assert killed == [1, 4]
    _check_rows(hist)
    assert hist.final["dead"] == 2
    assert all(1 not in r["responders"] for r in hist.rows[1:])
    assert all(4 not in r["responders"] for r in hist.rows[3:])
    assert hist[0]["nested_stops"] == n
    assert all(r["nested_level"] == 2 for r in hist.rows[3:])
    assert ray.is_initialized()                        # the backend did not own Ray
