"""The nested protocol: event-driven simulation and real processes decode exactly."""

from __future__ import annotations

import numpy as np
import pytest

import gradcode as gc
from gradcode.latency import (
    TaskTimes,
    fixed_path_latency,
    inject_stragglers,
    nested_path_latency,
    sample_task_times,
)
from gradcode.protocols.nested import (
    BEACON_BYTES,
    STOP_BYTES,
    NestedMaster,
    WorkerAccumulator,
    decode_vectors,
    level_vector,
    simulate_round,
)


def _check_exact(gradient, partials):
    full = partials.sum(axis=0)
    np.testing.assert_allclose(gradient, full, rtol=1e-12,
                               atol=1e-12 * np.max(np.abs(full)))


@pytest.mark.parametrize("n", [2, 3, 5, 8, 10])
def test_cyclic_protocol_returns_true_gradient(n):
    rng = np.random.default_rng(n)
    levels = sorted({0, n // 3, n // 2, n - 1})
    code = gc.codes.nested(n, levels, seed=n)
    partials = rng.standard_normal((n, 7)) + 2.0
    times = sample_task_times(TaskTimes(1.0, 1.0), n, levels[-1] + 1, 40, seed=n)
    times = inject_stragglers(times, n // 3, 6.0, seed=1)
    times[:5] = np.round(times[:5])                            # ties
    seen = set()
    for t in times:
        r = simulate_round(code, t, partials)
        assert r.decoded
        _check_exact(r.gradient, partials)
        assert r.decide_time == nested_path_latency(t, levels)[0]
        assert all(r.decide_time <= fixed_path_latency(t, s)[0] for s in levels)
        assert r.messages.vectors == n - r.level == r.decision.responders.size
        assert r.messages.stops == n and r.messages.stop_bytes == n * STOP_BYTES
        assert r.messages.beacons == r.tasks_done.sum()
        assert r.messages.beacon_bytes == BEACON_BYTES * r.messages.beacons
        assert r.messages.extra_messages == r.messages.beacons + n
        assert np.all(r.tasks_done[r.decision.responders] >= r.level + 1)
        seen.add(r.level)
    assert len(seen) >= 1


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_dyadic_protocol_returns_true_gradient_from_coverings(L):
    n = 2**L
    levels = [2**j - 1 for j in range(L + 1)]
    code = gc.codes.nested(n, levels, family="dyadic_frc")
    rng = np.random.default_rng(L)
    partials = rng.standard_normal((n, 3))
    times = sample_task_times(TaskTimes(1.0, 1.0, p_dead=0.2), n, n, 100, seed=L)
    decoded = 0
    for t in times:
        r = simulate_round(code, t, partials)
        expected = nested_path_latency(t, levels, "dyadic_frc")[0]
        if not r.decoded:
            assert np.isinf(expected)
            continue
        decoded += 1
        assert r.decide_time == expected
        _check_exact(r.gradient, partials)
        # the asked blocks partition {0..n-1}
        covered = []
        order = code.meta["order"]
        for w, s in r.decision.assignment.items():
            covered += order[w, : s + 1].tolist()
        assert sorted(covered) == list(range(n))
    assert decoded > 50


def test_link_delay_and_loads():
    code = gc.codes.nested(4, [0, 1, 2], seed=0)
    times = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3], [9, 10, 11.]])
    r = simulate_round(code, times, np.eye(4), link_delay=0.5)
    assert r.level == 1 and r.decide_time == 2.5 and r.time == 3.5
    # STOP reaches the workers at 3.0: three of them have finished 3 tasks
    assert r.tasks_done.tolist() == [3, 3, 3, 0]
    _check_exact(r.gradient, np.eye(4))


def test_not_decodable_when_too_many_die():
    code = gc.codes.nested(4, [0, 1], seed=0)
    times = np.array([[1, 2], [np.inf, np.inf], [np.inf, np.inf], [1, 2.]])
    r = simulate_round(code, times, np.eye(4))
    assert not r.decoded and r.gradient is None and np.isinf(r.time)
    assert r.tasks_done.tolist() == [2, 0, 0, 2]


def test_master_and_accumulator_pieces():
    code = gc.codes.nested(5, [0, 2, 4], seed=1)
    partials = np.random.default_rng(0).standard_normal((5, 2))
    for w in range(5):
        acc = WorkerAccumulator(code, w)
        while acc.next_partition() is not None:
            acc.add(partials[acc.next_partition()])
        for s in (0, 2, 4):
            np.testing.assert_allclose(acc.vector(s), level_vector(code, w, s, partials),
                                       rtol=1e-13)
        with pytest.raises(ValueError, match="already computed"):
            acc.add(partials[0])
    m = NestedMaster(code)
    for w in range(4):
        m.progress(w, 2)
    assert m.decision() is None                  # level 0 needs all 5 workers
    m.progress(0, 3)
    m.progress(1, 3)
    assert m.decision() is None                  # level 2 needs 3 workers with 3 tasks
    m.progress(2, 3)
    d = m.decision()
    assert d.level == 2 and d.responders.tolist() == [0, 1, 2]
    m.mark_dead(1)
    assert m.decision() is None
    vectors = {w: level_vector(code, w, 2, partials) for w in (0, 1, 2)}
    _check_exact(decode_vectors(code, d, vectors), partials)
    with pytest.raises(ValueError, match="missing"):
        decode_vectors(code, d, {0: vectors[0]})


def test_bad_input():
    code = gc.codes.nested(4, [0, 1], seed=0)
    with pytest.raises(TypeError, match="nested code"):
        simulate_round(gc.codes.uncoded(4), np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"shape \(n, s_max\+1\) = \(4, 2\)"):
        simulate_round(code, np.ones((4, 3)))
    with pytest.raises(ValueError, match="non-decreasing"):
        simulate_round(code, np.array([[2, 1.0]] * 4))
    with pytest.raises(ValueError, match="link_delay=-1.0"):
        simulate_round(code, np.ones((4, 2)), link_delay=-1.0)
    with pytest.raises(ValueError, match="k=4 rows"):
        simulate_round(code, np.ones((4, 2)), np.ones((3, 2)))


def test_real_processes_decode_exactly_with_dead_workers():
    """The one nested task on the ordinary local backend: exact with a failed worker,
    then with a killed one; its fixed-level form runs a fixed GC(4, 1) on the plain round."""
    import os
    import signal

    from gradcode import stragglers as st
    from gradcode.backends.local import LocalBackend
    from gradcode.problems import least_squares
    from gradcode.protocols.nested_scheme import NestedTask

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 4)), rng.standard_normal(80)
    n = 4
    problem = least_squares(X, y, n)
    params = np.linspace(-1, 1, 4)
    partials = problem.partition_gradients(params)
    code = gc.codes.nested(n, [0, 1, 3], seed=0)
    scheme = gc.schemes.nested(code)
    delays = st.Constant([0.04, 0.04, 0.04, np.inf])       # worker 3 fails every round
    with LocalBackend(round_timeout=30) as be:
        be.start(problem, code, delays=delays, task=scheme.task)
        procs = be.processes
        pids = list(be.pids)
        res = scheme.run_round(be, 0, params)
        _check_exact(res.g_hat, partials)
        assert res.extra["nested_level"] == 1 and sorted(res.responders) == [0, 1, 2]
        assert res.extra["nested_stops"] == 3 and res.extra["nested_beacons"] >= 6
        os.kill(be.pids[0], signal.SIGKILL)                 # a real death
        procs[0].join(10)
        res = scheme.run_round(be, 1, params)               # only level 3 is left
        _check_exact(res.g_hat, partials)
        assert res.extra["nested_level"] == 3 and len(res.responders) == 1
        assert 0 not in res.responders and not res.fallback
    assert not be.processes and len(pids) == n and all(_gone(pid) for pid in pids)
    level_code = code.meta["level_codes"][1]
    fixed = gc.training.Scheme(level_code, "exact", gc.wait.first(n - 1),
                               task=NestedTask(code, fixed=1), name="GC(4, 1) nested task")
    hist = gc.training.train(problem, fixed, rounds=2, backend="local", grad_error=True,
                             delays=st.Constant(0.01), backend_options={"round_timeout": 30})
    assert all(r["grad_rel_error"] < 1e-9 and r["n_responders"] == 3 for r in hist)
    with pytest.raises(ValueError, match="fixed=2 must be None or one of"):
        NestedTask(code, fixed=2)


def _gone(pid: int) -> bool:
    """The process has exited (no /proc entry, or a zombie awaiting its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
