"""Online straggler-probability estimation and the adaptive heterogeneous code."""

from __future__ import annotations

import numpy as np
import pytest

import gradcode as gc
from gradcode.codes.heterogeneous import allocation_change, unbiased_expected_error
from gradcode.estimation import AdaptiveCode, StragglerEstimator


def _cluster(p: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    """rounds x n responder masks: worker i responds w.p. 1 - p_i, independently."""
    return np.random.default_rng(seed).random((rounds, p.size)) >= p


def test_converges_to_true_p_within_005_after_500_rounds() -> None:
    p = np.linspace(0.05, 0.6, 10)
    est = StragglerEstimator(p.size)
    for mask in _cluster(p, 500, seed=0):
        est.update(mask)
    assert est.rounds == 500 and np.all(est.observed == 500)
    np.testing.assert_allclose(est.p, p, atol=0.05, rtol=0)
    assert np.all(est.stderr < 0.025)
    assert np.all((est.p > 0) & (est.p < 1))


def test_convergence_is_typical_not_lucky() -> None:
    """The standard error at p = 0.6 after 500 rounds is 0.022, so 0.05 is ~2.3 sigma:
    about 99% of single estimates (and ~90% of whole 10-worker clusters) are within it."""
    p = np.linspace(0.05, 0.6, 10)
    errors = []
    for seed in range(40):
        masks = _cluster(p, 500, seed=100 + seed)
        errors.append(np.abs((1 + (~masks).sum(0)) / 502 - p))   # == StragglerEstimator.p
    errors = np.array(errors)
    assert np.mean(errors <= 0.05) >= 0.97
    assert errors.max() <= 0.1


def test_indices_and_arrival_times_are_accepted() -> None:
    est = StragglerEstimator(4)
    est.update(np.array([0, 2]))                                  # responder indices
    est.update(np.array([0.1, 3.0, 0.2, np.inf]), deadline=1.0)   # arrival times
    est.update(np.array([True, True, False, False]))
    np.testing.assert_allclose(est.p, np.array([1, 3, 2, 4]) / 5)


def test_delay_fit_recovers_p_and_extrapolates_to_other_deadlines() -> None:
    rng = np.random.default_rng(4)
    n, tau = 12, 2.0
    shift = np.full(n, 1.0)
    mean = np.linspace(0.3, 1.5, n)
    est = StragglerEstimator(n)
    for _ in range(500):
        t = shift + mean * rng.standard_exponential(n)
        est.update(np.where(t <= tau, t, np.inf), deadline=tau)    # late arrivals unseen
    true = np.exp(-(tau - shift) / mean)
    np.testing.assert_allclose(est.p_at(tau), true, atol=0.05, rtol=0)
    np.testing.assert_allclose(est.p, true, atol=0.05, rtol=0)
    tau2 = 2.5                                                    # a deadline never used
    np.testing.assert_allclose(est.p_at(tau2), np.exp(-(tau2 - shift) / mean), atol=0.05)
    fit_shift, fit_mean = est.delay_fit()
    np.testing.assert_allclose(fit_shift, shift, atol=0.05)
    np.testing.assert_allclose(fit_mean, mean, rtol=0.15)


def test_window_tracks_drift() -> None:
    n = 10
    p1 = np.linspace(0.05, 0.6, n)
    p2 = p1[::-1].copy()
    windowed = StragglerEstimator(n, window=150)
    forever = StragglerEstimator(n)
    masks = np.vstack([_cluster(p1, 300, 2), _cluster(p2, 300, 3)])
    for mask in masks:
        windowed.update(mask)
        forever.update(mask)
    assert np.all(windowed.observed == 150) and windowed.rounds == 600
    assert np.max(np.abs(windowed.p - p2)) < 0.12
    assert np.max(np.abs(forever.p - p2)) > 0.2        # the full history lags behind
    windowed.reset()
    assert windowed.rounds == 0
    np.testing.assert_allclose(windowed.p, 0.5)


def test_prior_per_worker() -> None:
    est = StragglerEstimator(2, prior=([1.0, 9.0], 1.0))
    np.testing.assert_allclose(est.p, [0.5, 0.9])
    est.update(np.array([True, True]))
    np.testing.assert_allclose(est.p, [1 / 3, 9 / 11])


def test_estimator_bad_input() -> None:
    with pytest.raises(ValueError, match="n=0 must be >= 1"):
        StragglerEstimator(0)
    with pytest.raises(ValueError, match="prior misses must be positive"):
        StragglerEstimator(3, prior=(0.0, 1.0))
    with pytest.raises(TypeError, match="prior must be a pair"):
        StragglerEstimator(3, prior=1.0)
    with pytest.raises(ValueError, match="window=0 must be >= 1"):
        StragglerEstimator(3, window=0)
    est = StragglerEstimator(3)
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\)"):
        est.update(np.array([True, False]))
    with pytest.raises(ValueError, match="deadline is required"):
        est.update(np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="arrival times must be >= 0"):
        est.update(np.array([0.1, np.nan, 0.3]), deadline=1.0)
    with pytest.raises(ValueError, match="responder indices"):
        est.update(np.array([0, 5]))
    with pytest.raises(TypeError, match="observation must be"):
        est.update(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="no arrival times observed"):
        est.p_at(1.0)


def test_adaptive_code_rederives_every_k_and_counts_moves() -> None:
    p = np.linspace(0.05, 0.6, 8)
    est = StragglerEstimator(8)
    ada = AdaptiveCode(16, est, every=50, p0=np.full(8, 0.3))
    first = ada.code
    new_codes = [ada.observe(mask) for mask in _cluster(p, 200, 5)]
    assert sum(c is not None for c in new_codes) == 4
    assert [r.round for r in ada.log] == [50, 100, 150, 200]
    assert ada.log[0].change == allocation_change(first, new_codes[49])
    assert ada.moved_partitions == sum(r.change.moved_partitions for r in ada.log)
    assert ada.moved_partitions > 0
    # later re-derivations move less than the first one (the estimate settles)
    assert ada.log[-1].change.moved_partitions <= ada.log[0].change.moved_partitions
    np.testing.assert_allclose(ada.code.meta["p"], est.p)


def test_adaptive_tolerance_and_chain() -> None:
    est = StragglerEstimator(6)
    ada = AdaptiveCode(12, est, every=10, p0=est.p, tolerance=0.5)
    for mask in _cluster(np.full(6, 0.3), 40, 6):
        assert ada.observe(mask) is None               # no estimate moved by > 0.5
    # chain: fixed support, so no data moves (p0 in general position: with all-equal p
    # and n | k the tree's linking coefficients are exactly 0 and drop out of B)
    chain = AdaptiveCode(12, StragglerEstimator(6), every=10, allocation="chain",
                         p0=np.linspace(0.2, 0.4, 6))
    for mask in _cluster(np.linspace(0.1, 0.5, 6), 40, 7):
        chain.observe(mask)
    assert len(chain.log) == 4 and chain.moved_partitions == 0 and chain.new_copies == 0
    with pytest.raises(TypeError, match="estimator must be a StragglerEstimator"):
        AdaptiveCode(4, object(), every=2)
    with pytest.raises(ValueError, match="every=0 must be >= 1"):
        AdaptiveCode(4, StragglerEstimator(2), every=0)
    with pytest.raises(ValueError, match=r"len\(p0\)=3 must equal"):
        AdaptiveCode(4, StragglerEstimator(2), every=2, p0=[0.1, 0.2, 0.3])


def test_adaptive_beats_static_when_p_drifts() -> None:
    """Expected decoding error under the TRUE p (identity 6, bias included) after a drift."""
    n, k = 10, 20
    p1 = np.linspace(0.05, 0.6, n)
    p2 = p1[::-1].copy()
    static = gc.codes.heterogeneous(p1, k)
    ada = AdaptiveCode(k, StragglerEstimator(n, window=100), every=25, p0=p1)
    masks = np.vstack([_cluster(p1, 200, 8), _cluster(p2, 400, 9)])
    err_static, err_adaptive = [], []
    for t, mask in enumerate(masks):
        if t >= 200:
            err_static.append(unbiased_expected_error(static, p2))
            err_adaptive.append(unbiased_expected_error(ada.code, p2))
        ada.observe(mask)
    late = slice(200, None)                             # after the estimator has caught up
    assert np.mean(err_adaptive[late]) < 0.5 * np.mean(err_static[late])
    assert np.mean(err_adaptive) < np.mean(err_static)


def test_unobserved_workers_do_not_count() -> None:
    est = StragglerEstimator(3)
    est.update(np.array([True, True, True]), observed=np.array([True, True, False]))
    est.update(np.array([False, True, True]), observed=np.array([True, True, False]))
    np.testing.assert_allclose(est.p, [0.5, 0.25, 0.5])
    np.testing.assert_array_equal(est.observed, [2, 2, 0])
    with pytest.raises(ValueError, match="observed must be a boolean mask"):
        est.update(np.array([True, True, True]), observed=[1, 0, 1])


def test_adaptive_scheme_switches_codes_inside_train() -> None:
    from gradcode.estimation import AdaptiveScheme

    X, y = gc.data.synthetic_classification(300, 5, seed=0)
    prob = gc.problems.logistic_regression(X, y, k=8)
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.6])
    ada = AdaptiveScheme(AdaptiveCode(8, StragglerEstimator(6), every=20, p0=np.full(6, 0.3)),
                         lambda code: gc.wait.deadline(1.0 + code.load))
    first_scheme = ada.scheme
    used = []                                  # the code in force in each round
    hist = gc.training.train(prob, ada.scheme, rounds=60,
                             callback=lambda row: used.append(ada.scheme.code) or ada(row),
                             delays=gc.stragglers.Failures(p, seed=3))
    assert len(used) == 60 and len(ada.adaptive.log) == 3 and ada.scheme is not first_scheme
    assert ada.scheme.wait.deadline == 1.0 + ada.scheme.code.load
    assert used[19] is first_scheme.code and used[20] is not used[19]
    for row, code in zip(hist.rows, used):     # each round decoded with the code in force
        mask = np.zeros(6, dtype=bool)
        mask[row["responders"]] = True
        np.testing.assert_allclose(row["error"],
                                   gc.decode(code, mask, decoder="unbiased").error)
    assert hist.final["loss"] < hist.meta["initial_loss"]
    np.testing.assert_allclose(ada.adaptive.estimator.p, p, atol=0.2)


def test_docstring_examples() -> None:
    import doctest

    import gradcode.engine.estimation as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_delay_fit_censoring_below_the_shift_adds_nothing() -> None:
    """With varying stop times, a miss of a stop time below the shift carries no information
    on the exponential part: the fit equals the closed form with (tau - shift)^+ and is
    close to the true mean (the unclipped sum is biased low)."""
    rng = np.random.default_rng(0)
    n, rounds, shift, mean = 3, 4000, 1.0, 0.5
    est = StragglerEstimator(n)
    taus = rng.choice([0.8, 1.3, 2.0], size=rounds)
    times = shift + rng.exponential(mean, size=(rounds, n))
    for t in range(rounds):
        est.update(np.where(times[t] <= taus[t], times[t], np.inf), taus[t])
    fit_shift, fit_mean = est.delay_fit()
    hit = times <= taus[:, None]
    for i in range(n):
        s = times[hit[:, i], i].min()
        expected = (np.sum(times[hit[:, i], i] - s)
                    + np.sum(np.maximum(taus[~hit[:, i]] - s, 0.0))) / hit[:, i].sum()
        np.testing.assert_allclose(fit_shift[i], s, rtol=1e-12)
        np.testing.assert_allclose(fit_mean[i], expected, rtol=1e-9)
    np.testing.assert_allclose(fit_mean, mean, rtol=0.1)
