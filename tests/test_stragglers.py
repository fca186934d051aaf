"""Delay and failure models: seeded per (seed, round), load-scaled, picklable, validated."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st

ONES = np.ones(6)


@pytest.mark.parametrize("model", [
    st.ShiftedExponential(1.0, 0.5, seed=3), st.Exponential(0.5, seed=3), st.Pareto(2.5, 1.0, 3),
    st.Failures([0.1] * 6, base=st.Exponential(1.0, 1), seed=3),
    st.PersistentSlow(st.ShiftedExponential(1, 1, 2), [1, 4], 10.0),
    st.Markov(0.2, 0.3, 10.0, seed=3), st.Constant(0.5), st.NoDelay(),
])
def test_same_draws_for_same_seed_and_round_in_any_order(model):
    a = [model.sample(t, ONES) for t in (0, 5, 2)]
    clone = pickle.loads(pickle.dumps(model))
    b = [clone.sample(t, ONES) for t in (2, 5, 0)][::-1]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert all(np.all(x >= 0) for x in a)


def test_delay_scales_with_load_and_draws_do_not_depend_on_it():
    m = st.ShiftedExponential(shift=1.0, mean=2.0, seed=7)
    d1 = m.sample(4, ONES)
    d3 = m.sample(4, 3 * ONES)
    np.testing.assert_allclose(d3, 3 * d1, rtol=1e-15)
    assert np.all(d1 >= 1.0)
    assert np.any(m.sample(5, ONES) != d1)
    # contract: draws of round t come from default_rng([seed, t])
    ref = 1.0 + 2.0 * np.random.default_rng([7, 4]).standard_exponential(6)
    np.testing.assert_allclose(d1, ref, rtol=1e-15)


def test_shifted_exponential_mean_matches():
    m = st.ShiftedExponential(shift=0.5, mean=1.5, seed=0)
    draws = np.concatenate([m.sample(t, np.ones(200)) for t in range(200)])
    assert abs(draws.mean() - 2.0) < 0.05


def test_failures_rate_and_permanent():
    m = st.Failures([0.0, 0.5, 1.0], seed=1)
    draws = np.stack([m.sample(t, np.ones(3)) for t in range(400)])
    assert np.all(np.isfinite(draws[:, 0])) and np.all(np.isinf(draws[:, 2]))
    assert 0.4 < np.isinf(draws[:, 1]).mean() < 0.6
    perm = st.Failures(0.2, seed=2, permanent=True)
    dead = [np.isinf(perm.sample(t, np.ones(20))) for t in range(10)]
    for before, after in zip(dead, dead[1:]):
        assert np.all(after[before])


def test_persistent_slow_multiplies():
    base = st.ShiftedExponential(1, 1, seed=0)
    m = st.PersistentSlow(base, [0, 2], factor=10)
    np.testing.assert_allclose(m.sample(3, ONES)[[0, 2]], 10 * base.sample(3, ONES)[[0, 2]])
    np.testing.assert_allclose(m.sample(3, ONES)[[1, 3]], base.sample(3, ONES)[[1, 3]])


def test_markov_states_persist():
    m = st.Markov(p_slow=0.1, p_recover=0.1, factor=5.0, seed=0)
    s = np.stack([m.states(t, 50) for t in range(100)])
    flips = np.mean(s[1:] != s[:-1])
    assert flips < 0.2                              # sticky chain
    assert 0.2 < s.mean() < 0.8                     # stationary law 0.5


def test_trace_replay(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("round,worker,seconds\n0,0,0.1\n0,1,0.2\n1,0,inf\n1,1,0.3\n")
    m = st.Trace(path)
    m.validate(2)
    np.testing.assert_array_equal(m.sample(0, np.ones(2)), [0.1, 0.2])
    np.testing.assert_array_equal(m.sample(1, np.ones(2)), [np.inf, 0.3])
    np.testing.assert_array_equal(m.sample(2, np.ones(2)), [0.1, 0.2])   # cycles
    with pytest.raises(ValueError, match="beyond"):
        st.Trace(path, cycle=False).sample(2, np.ones(2))


def test_trace_missing_worker(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0,0,0.1\n0,1,0.2\n1,0,0.1\n")
    with pytest.raises(ValueError, match="missing worker 1 in round 1"):
        st.Trace(path).validate(2)
    with pytest.raises(ValueError, match="no records for workers"):
        st.Trace(path).validate(3)


def test_trace_bad_files(tmp_path):
    with pytest.raises(ValueError, match="cannot read trace file"):
        st.Trace(tmp_path / "missing.csv")
    bad = tmp_path / "neg.csv"
    bad.write_text("0,0,-1\n")
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        st.Trace(bad)


def test_negative_parameters_rejected():
    with pytest.raises(ValueError, match="shift=-1.0 must be >= 0"):
        st.ShiftedExponential(-1.0, 1.0)
    with pytest.raises(ValueError, match="mean"):
        st.Exponential(-0.5)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        st.Constant([-1.0, 1.0])
    with pytest.raises(ValueError, match="p must lie in"):
        st.Failures(1.5)
    with pytest.raises(ValueError, match="must be >= 0 seconds"):
        st.check_delays(object(), np.array([0.1, -0.2]), 2)


def test_validate_against_n():
    with pytest.raises(ValueError, match="len\\(p\\)=3 must be 1 or n=4"):
        st.Failures([0.1, 0.1, 0.1]).validate(4)
    with pytest.raises(ValueError, match="worker 9 does not exist"):
        st.PersistentSlow(st.NoDelay(), [9]).validate(4)
    assert isinstance(st.as_delay_model(None), st.NoDelay)
    with pytest.raises(TypeError, match="delay model"):
        st.as_delay_model(3.0)
    assert gc.stragglers is st
