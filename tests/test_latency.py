"""Latency of fixed and nested codes: exact order statistics vs seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import gradcode as gc
from gradcode.latency import (
    LatencySimulation,
    TaskTimes,
    fixed_latency,
    fixed_path_latency,
    inject_stragglers,
    latency_tail,
    nested_latency,
    nested_path_latency,
    per_worker_fixed_latency,
    sample_task_times,
    simulate_latency,
)
from gradcode.protocols.nested import simulate_round


@pytest.mark.parametrize("n,s", [(1, 0), (5, 0), (5, 2), (10, 4), (12, 11)])
def test_exact_matches_closed_form_per_worker_speed(n, s):
    model = TaskTimes(shift=0.7, mean=1.3, per="worker")
    np.testing.assert_allclose(fixed_latency(n, s, model).mean,
                               per_worker_fixed_latency(n, s, 0.7, 1.3), rtol=1e-9)


def test_exact_fixed_per_task_matches_gamma_order_statistic():
    # n = 1, s = 0: E[T] = D + b
    model = TaskTimes(shift=0.5, mean=2.0, per="task")
    np.testing.assert_allclose(fixed_latency(1, 0, model).mean, 2.5, rtol=1e-9)
    # T_1 for n = 2 with 2 tasks = min of two Gamma(2, b) + 2 D
    grid = np.linspace(0, 200, 400001)
    sf = stats.gamma.sf(grid, a=2, scale=2.0) ** 2
    np.testing.assert_allclose(fixed_latency(2, 1, model).mean,
                               1.0 + np.trapezoid(sf, grid), rtol=1e-6)


CASES = [
    ("cyclic", 8, [2], TaskTimes(1.0, 1.0)),
    ("cyclic", 10, [0, 1, 3, 6], TaskTimes(1.0, 1.0)),
    ("cyclic", 10, [0, 2, 5, 9], TaskTimes(0.5, 1.0, per="worker", p_slow=0.2,
                                            slow_factor=5.0)),
    ("dyadic_frc", 8, [0, 1, 3], TaskTimes(1.0, 1.0, p_slow=0.1, slow_factor=4.0)),
    ("dyadic_frc", 16, [1, 7], TaskTimes(0.2, 1.0, per="worker")),
]


@pytest.mark.parametrize("family,n,levels,model", CASES)
def test_exact_matches_simulation_within_two_standard_errors(family, n, levels, model):
    exact = nested_latency(n, levels, model, family=family)
    sim = simulate_latency(n, levels, model, family=family, samples=20_000, seed=2024)
    est = LatencySimulation.estimate(sim.nested)
    assert exact.method == "exact" and est.method == "simulation"
    assert abs(exact.mean - est.mean) <= 2 * est.stderr, (exact.mean, est.mean, est.stderr)
    if family == "cyclic":
        for s in levels:
            e = fixed_latency(n, s, model)
            m = LatencySimulation.estimate(sim.fixed[s])
            assert abs(e.mean - m.mean) <= 2 * m.stderr, (s, e.mean, m.mean, m.stderr)
            assert exact.mean <= e.mean + 1e-9


def test_dead_workers_failure_probability_and_conditional_mean():
    model = TaskTimes(0.5, 1.0, p_dead=0.15)
    n, levels = 6, [0, 1, 2]
    exact = nested_latency(n, levels, model)
    # fails iff more than s_max workers are dead
    p_fail = stats.binom.sf(levels[-1], n, 0.15)
    np.testing.assert_allclose(1 - exact.decode_probability, p_fail, rtol=1e-9)
    np.testing.assert_allclose(latency_tail(n, levels, model, np.inf), p_fail, rtol=1e-9)
    assert math.isinf(exact.mean)
    sim = simulate_latency(n, levels, model, samples=40_000, seed=5)
    est = LatencySimulation.estimate(sim.nested)
    assert abs(est.decode_probability - exact.decode_probability) <= 2 * math.sqrt(
        p_fail * (1 - p_fail) / 40_000)
    assert abs(est.conditional_mean - exact.conditional_mean) <= 2 * est.conditional_stderr
    # dyadic: P(fail) by the block recursion vs simulation
    d_exact = nested_latency(8, [0, 1, 3], model, family="dyadic_frc")
    d_sim = LatencySimulation.estimate(simulate_latency(8, [0, 1, 3], model,
                                                        family="dyadic_frc",
                                                        samples=40_000, seed=6).nested)
    q = 1 - d_exact.decode_probability
    assert abs(d_sim.decode_probability - d_exact.decode_probability) <= 2 * math.sqrt(
        q * (1 - q) / 40_000)
    assert abs(d_sim.conditional_mean - d_exact.conditional_mean) <= 2 * \
        d_sim.conditional_stderr


@pytest.mark.parametrize("count,factor", [(0, 1.0), (2, 8.0), (3, math.inf), (9, 3.0)])
def test_nested_never_slower_than_best_fixed_on_the_same_path(count, factor):
    n, levels = 10, list(range(10))
    times = sample_task_times(TaskTimes(1.0, 0.5), n, n, 500, seed=count)
    times = inject_stragglers(times, count, factor, seed=count + 1)
    sim = simulate_latency(n, levels, times=times)
    best = np.min(np.stack(list(sim.fixed.values())), axis=0)
    np.testing.assert_array_equal(sim.nested, best)      # min over all levels, pathwise
    # a subset of levels is never slower than any of its own fixed codes
    sub = nested_path_latency(times, [0, 3, 7])
    for s in (0, 3, 7):
        assert np.all(sub <= fixed_path_latency(times, s))
    # and the event-driven protocol decides at the same instant
    code = gc.codes.nested(n, levels, seed=0)
    for t, expected in zip(times[:50], sim.nested[:50]):
        r = simulate_round(code, t)
        assert r.decide_time == expected or (np.isinf(expected) and not r.decoded)


def test_dyadic_path_latency_is_the_root_cover_time():
    times = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0.5, 20, 30, 40.]])
    # levels 0 and 1 (blocks of 1 and 2): {0,1} by worker 0 at 2; {2,3} by max(9, 0.5)=9
    # or by worker 2 at 10 / worker 3 at 20 -> 9
    assert nested_path_latency(times, [0, 1], "dyadic_frc")[0] == 9.0
    # with level 3, worker 0 covers everything at 4
    assert nested_path_latency(times, [0, 1, 3], "dyadic_frc")[0] == 4.0
    assert nested_path_latency(times, [1], "dyadic_frc")[0] == 10.0


def test_work_counts():
    times = sample_task_times(TaskTimes(1.0, 1.0), 6, 6, 100, seed=1)
    sim = simulate_latency(6, [0, 2, 5], times=times)
    np.testing.assert_array_equal(sim.fixed_work[0], 6)    # everyone did its one task
    assert np.all(sim.fixed_work[5] >= 6)             # at least one worker did all 6
    assert np.all(sim.nested_work <= 36)


def test_sampling_is_seeded():
    m = TaskTimes(1.0, 1.0, p_slow=0.2, slow_factor=3, p_dead=0.1)
    np.testing.assert_array_equal(sample_task_times(m, 5, 3, 10, seed=7),
                                  sample_task_times(m, 5, 3, 10, seed=7))


@pytest.mark.parametrize("call,exc,words", [
    (lambda: TaskTimes(shift=-1.0), ValueError, ["shift=-1.0", ">= 0"]),
    (lambda: TaskTimes(per="round"), ValueError, ["per='round'"]),
    (lambda: TaskTimes(p_slow=0.7, p_dead=0.5), ValueError, ["p_slow + p_dead"]),
    (lambda: TaskTimes(slow_factor=0.5), ValueError, ["slow_factor=0.5"]),
    (lambda: TaskTimes(0.0, 0.0), ValueError, ["both be 0"]),
    (lambda: fixed_latency(4, 4, TaskTimes()), ValueError, ["s=4", "n=4"]),
    (lambda: fixed_latency(4, 1, "exp"), TypeError, ["TaskTimes"]),
    (lambda: nested_latency(4, [1, 0], TaskTimes()), ValueError, ["strictly increasing"]),
    (lambda: nested_latency(6, [0, 1], TaskTimes(), family="dyadic_frc"), ValueError,
     ["2^L", "n=6"]),
    (lambda: nested_latency(8, [2], TaskTimes(), family="dyadic_frc"), ValueError,
     ["power of two", "s=2"]),
    (lambda: nested_path_latency(np.ones((2, 4, 1)), [0, 1]), ValueError, ["s_max+1=2"]),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
