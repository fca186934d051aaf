"""The autopilot (gc.schemes.auto): estimator per regime, predictor against a direct
simulation, switching without flapping, reproducible decisions."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest

import gradcode as gc
from gradcode.engine.autopilot import (
    ClusterEstimator,
    Plan,
    group_plan,
    kaplan_meier,
    predict,
    rounds_factor,
    start_plan,
)
from gradcode.stragglers import DelayModel, PersistentSlow, ShiftedExponential

N = 16


class Latency(DelayModel):
    """T_i = a + c load_i + noise (fixed per-round cost plus compute, as in clusters)."""

    def __init__(self, noise: DelayModel, a: float = 1.0, c: float = 0.1) -> None:
        self.noise, self.a, self.c = noise, a, c

    def sample(self, round, load):
        load = np.asarray(load, dtype=float)
        return self.a + self.c * load + self.noise.sample(round, np.ones(load.size))


class Deaths(DelayModel):
    """Worker w answers normally until round t0, then never again."""

    def __init__(self, base: DelayModel, deaths: dict[int, int]) -> None:
        self.base, self.deaths = base, deaths

    def sample(self, round, load):
        out = np.array(self.base.sample(round, load), dtype=float)
        for w, t0 in self.deaths.items():
            if round >= t0:
                out[w] = np.inf
        return out


def _problem():
    X, y = gc.data.synthetic_classification(800, 6, seed=0)
    return gc.problems.logistic_regression(X, y, N, partition_seed=0)


def _run(delays, rounds=30, seed=0, **kw):
    s = gc.schemes.auto(N, seed=seed, **kw)
    h = gc.training.train(_problem(), s, rounds=rounds, delays=delays, seed=seed)
    return s.pilot, h


NOISE = ShiftedExponential(0.0, 0.3, seed=3)


# ---------------------------------------------------------------------- estimator
def test_estimator_finds_persistent_slow_workers():
    pilot, _ = _run(PersistentSlow(Latency(NOISE), [3, 11], factor=10.0))
    est = pilot.estimator
    assert np.flatnonzero(est.slow).tolist() == [3, 11]
    assert not est.failed.any()


def test_estimator_finds_failures_and_spares_the_living():
    pilot, _ = _run(Deaths(Latency(NOISE), {5: 3, 9: 6, 12: 9}), rounds=30)
    assert np.flatnonzero(pilot.estimator.failed).tolist() == [5, 9, 12]


def _feed_group_rounds(noise, rounds=60, seed=0, wait_all=False):
    """Rounds of the start plan (4 groups of 4, exact): stop when every group answered,
    later workers censored (or, with wait_all, wait for everyone)."""
    est = ClusterEstimator(N)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        T = 1.4 + noise(rng)
        stop = T.max() if wait_all else T.reshape(4, 4).min(axis=1).max()
        est.update(np.full(N, 4.0), np.where(T <= stop, T, np.inf), stop_time=stop)
    return est


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimator_tells_heavy_tails_from_light_noise(seed):
    def light_noise(r):
        return r.exponential(0.3, N)

    def heavy_noise(r):
        return 0.3 * r.pareto(1.1, N)

    # everyone waited for: the tail's shape is identified
    light = _feed_group_rounds(light_noise, seed=seed, wait_all=True)
    heavy = _feed_group_rounds(heavy_noise, seed=seed, wait_all=True)
    assert light.residual_law.kind == "exponential"
    assert heavy.residual_law.kind == "pareto"
    assert heavy.tail_ratio > 2.0 * light.tail_ratio
    # the slow answers censored (exact group rounds): the order of the tails survives
    light = _feed_group_rounds(light_noise, seed=seed)
    heavy = _feed_group_rounds(heavy_noise, seed=seed)
    assert heavy.tail_ratio > 1.2 * light.tail_ratio
    assert not light.failed.any() and not heavy.failed.any()


def test_estimator_tracks_drift():
    class Drift(DelayModel):
        def sample(self, round, load):
            slow = [3, 11] if round < 15 else [5, 13]
            return PersistentSlow(Latency(NOISE), slow, 10.0).sample(round, load)

    pilot, _ = _run(Drift(), rounds=60)
    bad = np.flatnonzero(pilot.estimator.slow | pilot.estimator.failed).tolist()
    assert {5, 13} <= set(bad)


def test_load_cost_is_learned_from_two_load_levels():
    est = ClusterEstimator(6)
    rng = np.random.default_rng(0)
    for t in range(10):
        load = np.where(np.arange(6) % 2 == 0, 1.0, 3.0) if t % 2 else np.full(6, 2.0)
        times = 1.0 + 0.25 * load + 0.01 * rng.random(6)
        est.update(load, times, stop_time=times.max())
    # g(L) = (a + c L) / (a + c) with a = 1, c = 0.25: kappa = c / (a + c) = 0.2
    assert est.load_cost == pytest.approx(0.2, abs=0.02)


def test_kaplan_meier_matches_the_product_limit_by_hand():
    # values 1, 2+, 3, 4+ , 5: S(1) = 4/5, S(3) = 4/5 * 2/3, S(5) = 0
    x, w = kaplan_meier(np.array([1, 2, 3, 4, 5.0]), np.array([0, 1, 0, 1, 0], bool))
    assert x.tolist() == [1, 3, 5]
    np.testing.assert_allclose(w, [0.2, 0.8 * (1 / 3), 0.8 * (2 / 3)], rtol=1e-12)
    # uncensored: the empirical law
    x, w = kaplan_meier(np.array([2.0, 1.0, 3.0]), np.zeros(3, bool))
    np.testing.assert_allclose(w, [1 / 3] * 3)


# ---------------------------------------------------------------------- predictor
def _replay(plan: Plan, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round times and errors from the real wait policy and decoder on times T."""
    s = gc.schemes.auto(plan.n, plan.k).pilot._scheme(plan)
    rts, errs = [], []
    for row in T:
        state = s.wait.start(s.code, s.decoder)
        stop = None
        for w in np.argsort(row, kind="stable"):
            if not math.isfinite(row[w]) or (state.deadline is not None
                                             and row[w] > state.deadline):
                break
            if state.add(int(w), float(row[w])):
                stop = float(row[w])
                break
        if stop is None:
            stop = state.deadline if state.deadline is not None else float(row.max())
        dec = gc.decoders.decode(s.code, state.responders, s.decoder)
        rts.append(stop)
        errs.append(dec.error)
    return np.array(rts), np.array(errs)


@pytest.mark.parametrize("deadline", [None, 1.9])
def test_group_prediction_matches_the_wait_policy_and_decoder(deadline):
    est = ClusterEstimator(8, load_cost=0.1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        T = (1.0 + rng.exponential(0.4, 8)) * np.where(np.arange(8) == 2, 5.0, 1.0)
        est.update(np.ones(8), T, stop_time=T.max())
    loc = est.loc
    plan = group_plan(8, 8, [0, 1, 3, 4, 5, 6, 7], 2, loc, est.g, None, deadline=deadline)
    R = est.residuals(400, np.random.default_rng(5))
    pred = predict(plan, est, R)
    rts, errs = _replay(plan, est.times(plan.load, R))
    assert pred.round_time == pytest.approx(rts.mean(), rel=1e-9)
    assert pred.error == pytest.approx(errs.mean() / 8, rel=1e-9, abs=1e-12)


def test_rounds_factor_closed_form():
    assert rounds_factor(0.0) == 1.0
    assert rounds_factor(0.2, gamma=1.5) == pytest.approx(1 / 0.7)
    assert rounds_factor(0.7, gamma=1.5) == math.inf
    assert rounds_factor(0.01, spread=0.2) == math.inf


def test_plans_are_valid_codes_that_partition_the_data():
    loc = np.linspace(1, 3, 16)
    for d in (1, 2, 3, 4):
        plan = group_plan(16, 16, list(range(12)), d, loc, lambda L: 1 + 0.1 * (L - 1), None)
        parts = sorted(j for p in plan.parts for j in p)
        assert parts == list(range(16))
        assert sorted(w for g in plan.groups for w in g) == list(range(16))
        assert gc.decoders.decode(plan.code(), list(range(16)), "frc_group").error == 0
    sp = start_plan(16, 16)
    assert [len(g) for g in sp.groups] == [4, 4, 4, 4]


# ---------------------------------------------------------------------- switching
@pytest.mark.parametrize("model", [
    PersistentSlow(Latency(NOISE), [3, 11], factor=10.0),
    Latency(NOISE),
])
def test_no_flapping_under_stationary_delays(model):
    pilot, h = _run(model, rounds=80)
    switches = [r["round"] for r in h if r["autopilot_switch"]]
    late = [t for t in switches if t >= 20]
    assert len(late) <= 1, switches
    plans = [r["autopilot_plan"] for r in h][20:]
    # never back to a plan it left
    seen, prev = [], None
    for p in plans:
        if p != prev:
            assert p not in seen, plans
            seen.append(p)
            prev = p


class Speeds(DelayModel):
    """Heterogeneous speeds 1x..5x (shuffled) times the latency model."""

    def __init__(self) -> None:
        self.speeds = np.random.default_rng(0).permutation(np.linspace(1.0, 5.0, N))

    def sample(self, round, load):
        return Latency(NOISE).sample(round, load) * self.speeds


def test_heterogeneous_speeds_move_data_to_the_fast_workers():
    pilot, h = _run(Speeds(), rounds=20)
    assert any(r["autopilot_switch"] for r in h)
    rt = h.column("round_time")
    assert rt[-5:].mean() < 0.8 * rt[:2].mean()        # stopped waiting for slow workers
    assert sum(r["autopilot_moved"] for r in h) > 0
    # the slowest quarter is never relied on: every group has a faster member
    loc = pilot.estimator.loc
    slowest = set(np.argsort(loc)[-4:].tolist())
    assert all(set(g) - slowest for g in pilot.plan.groups)


def test_decisions_are_reproducible_and_recorded():
    model = Speeds()
    a, ha = _run(model, rounds=25, seed=4)
    b, hb = _run(model, rounds=25, seed=4)
    key = [(d["round"], d["plan"], d["switch"]) for d in a.decisions]
    assert key == [(d["round"], d["plan"], d["switch"]) for d in b.decisions]
    assert ha.column("loss").tolist() == hb.column("loss").tolist()
    assert ha.meta["autopilot"] and ha.meta["autopilot"][0]["round"] == 0
    assert {"autopilot_plan", "autopilot_predicted", "autopilot_moved"} <= set(ha[3])
    assert any(r["autopilot_switch"] for r in ha)


def test_callback_use_without_the_hook_gives_the_same_run():
    model = PersistentSlow(Latency(NOISE), [3, 11], factor=10.0)
    a, ha = _run(model, rounds=15, seed=2)
    s = gc.schemes.auto(N, seed=2)
    plain = gc.schemes.Scheme(s.code, s.decoder, s.wait, name=s.name)  # no hook
    hb = gc.training.train(_problem(), plain, rounds=15, delays=model, seed=2,
                           callback=s.pilot)
    assert ha.column("loss").tolist() == hb.column("loss").tolist()


@pytest.mark.parametrize("kw, msg", [
    ({"n": 0}, "n"), ({"n": 4, "k": 0}, "k"), ({"n": 4, "hysteresis": 2.0}, "hysteresis"),
    ({"n": 4, "families": ("mds",)}, "families"),
])
def test_bad_arguments_are_named(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        gc.schemes.auto(**kw)


@pytest.mark.parametrize("module", ["estimator", "scheme"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"gradcode.engine.autopilot.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
