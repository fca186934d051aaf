"""The autopilot's data-movement charge on the clock, its checkpointed state (resume
continues exactly where the run stopped), and plan_scheme."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradcode as gc
from gradcode.engine.autopilot import Autopilot, ClusterEstimator, plan_scheme, start_plan
from gradcode.stragglers import Constant

SPEEDS = np.array([1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0])


def _problem():
    X, y = gc.data.synthetic_classification(800, 5, seed=0)
    return gc.problems.logistic_regression(X, y, k=8)


def _auto():
    return gc.schemes.auto(8, partition_bytes=1e6, bandwidth=1e7)


def _run(**kw):
    return gc.training.train(_problem(), _auto(), delays=Constant(SPEEDS), **kw)


def test_switches_charge_the_moved_data_on_the_clock():
    h = _run(rounds=12)
    moves = [r for r in h if r["move_time"] > 0]
    assert moves, "heterogeneous speeds: the autopilot must switch at least once"
    for r in h:
        assert r["moved_bytes"] == r["autopilot_copies"] * 1e6
        assert r["move_time"] == pytest.approx(r["autopilot_copies"] * 1e6 / 1e7)
    # sim_time = sum of round times + the moves made after the earlier rounds
    rt = h.column("round_time")
    mv = h.column("move_time")
    expected = np.cumsum(rt) + np.r_[0.0, np.cumsum(mv)[:-1]]
    assert np.allclose(h.column("sim_time"), expected, rtol=0, atol=1e-12)


def test_plain_schemes_move_nothing():
    h = gc.training.train(_problem(), gc.training.uncoded(8), rounds=3,
                          delays=Constant(SPEEDS))
    assert all(r["moved_bytes"] == 0 and r["move_time"] == 0 for r in h)
    assert gc.training.uncoded(8).checkpoint_state() is None


def test_resume_continues_the_autopilot_exactly(tmp_path):
    full = _run(rounds=30)
    _run(rounds=15, checkpoint=tmp_path, checkpoint_every=5)
    state = json.loads((tmp_path / "state.json").read_text())["extra"]["scheme_state"]
    assert state["estimator"]["rounds"] == 15 and len(state["decisions"]) >= 3
    s = _auto()
    resumed = gc.training.train(_problem(), s, delays=Constant(SPEEDS), rounds=30,
                                checkpoint=tmp_path, resume=True)
    cols = ("autopilot_plan", "autopilot_switch", "round_time", "sim_time", "move_time")
    assert [[r[c] for c in cols] for r in resumed] == [[r[c] for c in cols] for r in full]
    assert np.allclose(resumed.column("loss"), full.column("loss"))
    # the plan at the checkpoint is not the start plan: without the state the resumed run
    # would have started over (this test would fail)
    assert full.rows[15]["autopilot_plan"] != start_plan(8, 8).name
    decided = [d["round"] for d in s.pilot.decisions]
    assert decided == [d["round"] for d in full.meta["autopilot"]]


def test_state_dict_is_json_and_restores_the_same_decisions():
    rng = np.random.default_rng(0)
    a = Autopilot(8, 8, seed=3)
    for t in range(10):
        times = SPEEDS * (1 + rng.exponential(0.2, 8))
        times[7] = np.inf                               # censored every round
        row = {"round": t, "round_time": float(np.sort(times)[5]),
               "responders": np.argsort(times)[:6].tolist()}
        a.after_round(row)
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
    b = Autopilot(8, 8, seed=3)
    b.load_state(state)
    assert b.plan == a.plan and b.decisions == json.loads(json.dumps(
        a.state_dict()["decisions"]))
    assert b.estimator.summary() == a.estimator.summary()
    assert np.allclose(b.estimator.loc, a.estimator.loc)
    da = a.planner.decide(a.estimator, a.plan, np.random.default_rng(1))
    db = b.planner.decide(b.estimator, b.plan, np.random.default_rng(1))
    assert da.plan == db.plan and da.predicted == db.predicted


def test_load_state_rejects_foreign_states():
    a = Autopilot(8, 8)
    with pytest.raises(ValueError, match="Autopilot.load_state: state must be"):
        a.load_state(Autopilot(6, 6).state_dict())
    with pytest.raises(ValueError, match="Autopilot.load_state"):
        a.load_state([1, 2])
    est = ClusterEstimator(4)
    bad = {"rounds": 1, "window": [[[1, 1], [1.0, None], 1.0, [True, True]]]}
    with pytest.raises(ValueError, match="ClusterEstimator.load_state: a saved round has 2"):
        est.load_state(bad)


def test_plan_scheme_runs_the_plan_exactly():
    plan = start_plan(16, 16)
    s = plan_scheme(plan)
    ref = gc.codes.fractional_repetition(16, 3)      # contiguous groups of 4
    assert np.array_equal(s.code.B.toarray(), ref.B.toarray())
    X, y = gc.data.synthetic_classification(640, 5, seed=1)
    prob = gc.problems.logistic_regression(X, y, k=16)
    slow = gc.stragglers.PersistentSlow(gc.stragglers.ShiftedExponential(1, 0.3, seed=2),
                                        [0, 5, 10], factor=10)
    h = gc.training.train(prob, s, rounds=4, delays=slow)
    assert all(r["error"] == 0.0 for r in h)
