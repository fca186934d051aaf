"""Closed forms of REFERENCES.md checked against exhaustive enumeration / Monte Carlo."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest

import gradcode as gc
from gradcode import analysis as A


def _mask(n, stragglers):
    m = np.ones(n, dtype=bool)
    m[list(stragglers)] = False
    return m


@pytest.mark.parametrize("n, s_code", [(12, 2), (8, 1), (9, 2)])
def test_frc_expected_error_matches_enumeration(n, s_code):
    code = gc.codes.fractional_repetition(n=n, s=s_code)
    d = s_code + 1
    for s in range(n):
        est = A.expected_error(code, s)
        assert est.method == "exact" and est.samples == math.comb(n, s)
        np.testing.assert_allclose(est.mean, A.frc_expected_error(n, d, s), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n, s_code", [(12, 2), (8, 1)])
def test_frc_worst_case_matches_enumeration(n, s_code):
    code = gc.codes.fractional_repetition(n=n, s=s_code)
    d = s_code + 1
    for s in range(n):
        wc = A.worst_case(code, s)
        assert wc.method == "exhaustive"
        np.testing.assert_allclose(wc.error, A.frc_worst_case_error(d, s), rtol=0, atol=1e-9)


def test_bgc_one_step_expected_error_monte_carlo():
    n, d, s = 20, 3, 5
    rho = n / (d * (n - s))            # k / (d (n - s)) with k = n
    rng = np.random.default_rng(2024)
    values = []
    for _ in range(600):
        code = gc.codes.bernoulli(n=n, k=n, d=d, seed=rng)
        mask = _mask(n, rng.choice(n, size=s, replace=False))
        values.append(gc.decode(code, mask, gc.decoders.fixed(np.full(n, rho))).error)
    values = np.array(values)
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
    target = A.bgc_one_step_expected_error(n, d, s)
    assert abs(mean - target) <= 4 * se, (mean, se, target)
    # and the check can fail: a wrong constant (rho for d+1) is far off
    wrong = n * (n - d - 1) / ((d + 1) * (n - s))
    assert abs(mean - wrong) > 4 * se


@pytest.mark.parametrize("n, d, seed", [(12, 3, 0), (10, 4, 1)])
def test_expander_bound_holds_for_every_straggler_set(n, d, seed):
    code = gc.codes.expander(n=n, d=d, seed=seed)
    for s in range(1, 4):
        bound = A.expander_bound(code, s)
        worst = A.worst_case(code, s, decoder="one_step")
        assert worst.method == "exhaustive"
        assert worst.error <= bound + 1e-9, (s, worst.error, bound)
    # one-step weights are n/(n-s) for B = Adj/d
    dec = gc.decode(code, _mask(n, [0, 1]), "one_step")
    np.testing.assert_allclose(dec.weights[2:], n / (n - 2), rtol=1e-12)


@pytest.mark.parametrize("code", [gc.codes.regularized_bernoulli(n=12, k=12, d=3, seed=0),
                                  gc.codes.fractional_repetition(n=12, s=2),
                                  gc.codes.expander(n=10, d=3, seed=2)],
                         ids=["rbgc", "frc", "expander"])
def test_spectral_bound_holds_for_every_straggler_set(code):
    for s in range(1, 4):
        bound = A.spectral_bound(code, s)
        worst = A.worst_case(code, s, decoder="one_step")
        assert worst.error <= bound + 1e-9, (s, worst.error, bound)


def test_spectral_bound_is_the_second_singular_value_for_0_1_codes():
    """REFERENCES #5 literally: sigma_2^2 n s / ((n - s) d^2), sigma_2 from a full SVD."""
    code = gc.codes.regularized_bernoulli(n=12, k=12, d=3, seed=0)
    sigma2 = np.linalg.svd(code.toarray(), compute_uv=False)[1]
    for s in (1, 4, 11):
        np.testing.assert_allclose(A.spectral_bound(code, s), sigma2**2 * 12 * s / ((12 - s) * 9),
                                   rtol=1e-10)


def test_spectral_bound_holds_for_a_signed_biregular_code():
    """Signed B = [[2, -1], [-1, 2]]: singular values 3 (on [1, -1]) and 1 (on 1), so
    sigma_2 = 1 would claim 2 for s = 1; one-step weight 2 on worker 0 gives alpha =
    [4, -2], error 18, which the bound must (and does, tightly) cover."""
    code = gc.Code(np.array([[2.0, -1], [-1, 2]]))
    worst = A.worst_case(code, 1, decoder="one_step")
    np.testing.assert_allclose(worst.error, 18.0, rtol=1e-12)
    np.testing.assert_allclose(A.spectral_bound(code, 1), 18.0, rtol=1e-12)


def test_spectral_bound_rejects_irregular_codes():
    with pytest.raises(ValueError, match="must be biregular"):
        A.spectral_bound(gc.Code(np.array([[1.0, 1], [0, 1]])), 1)


GRAPHS = {
    "petersen": nx.petersen_graph(),
    "even_cycle": nx.cycle_graph(6),                  # bipartite
    "odd_cycle": nx.cycle_graph(5),
    "path": nx.path_graph(5),                          # tree, unbalanced sides 3/2
    "star": nx.star_graph(4),
    "two_parts": nx.disjoint_union(nx.complete_graph(3), nx.path_graph(4)),
    "k33": nx.complete_bipartite_graph(3, 3),
    "random3": gc.codes.graphs.random_regular_graph(8, 3, seed=5),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_closed_form_equals_optimal_on_every_pattern(name):
    code = gc.codes.graph_scheme(GRAPHS[name])
    n = code.n
    rng = np.random.default_rng(3)
    masks = (itertools.product([False, True], repeat=n) if n <= 10 else
             (rng.random(n) < rng.uniform(0.1, 1.0) for _ in range(300)))
    for bits in masks:
        mask = np.array(bits, dtype=bool)
        g = gc.decode(code, mask, "graph")
        o = gc.decode(code, mask, "optimal")
        np.testing.assert_allclose(g.alpha, o.alpha, rtol=0, atol=1e-9)
        np.testing.assert_allclose(g.alpha, code.B.T @ g.weights, rtol=0, atol=1e-9)
        np.testing.assert_allclose(g.error, o.error, rtol=0, atol=1e-9)
        assert np.all(g.weights[~mask] == 0)


def test_graph_component_error_formula():
    """Path on 5 vertices (sides 3 and 2), all edges up: error (3-2)^2/5 = 0.2,
    alpha = 1 -+ 1/5 on the big/small side."""
    code = gc.codes.graph_scheme(nx.path_graph(5))
    d = gc.decode(code, np.ones(code.n, bool), "graph")
    np.testing.assert_allclose(d.alpha, [0.8, 1.2, 0.8, 1.2, 0.8], rtol=0, atol=1e-12)
    np.testing.assert_allclose(d.error, 0.2, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_weights_expected_error_matches_all_presence_patterns(seed):
    rng = np.random.default_rng(seed)
    n, k = 8, 6
    B = rng.normal(size=(n, k)) * (rng.random((n, k)) < 0.5)
    B[0, 0] = 1.0
    code = gc.Code(B)
    weights = rng.normal(size=n)
    p = rng.uniform(0, 1, size=n)
    p[0], p[1] = 0.0, 1.0                              # edge cases included
    total = 0.0
    for bits in itertools.product([False, True], repeat=n):
        present = np.array(bits)
        prob = np.prod(np.where(present, 1 - p, p))
        total += prob * np.sum((B.T @ (weights * present) - 1.0) ** 2)
    np.testing.assert_allclose(A.fixed_weights_expected_error(code, weights, p), total,
                               rtol=1e-10)


@pytest.mark.parametrize("n, d", [(8, 2), (9, 3), (6, 1)])
def test_erasure_probability_matches_enumeration(n, d):
    for w in range(n + 1):
        sets = list(itertools.combinations(range(n), w))
        erased = sum(1 for st in sets if not set(st) & set(range(d)))   # group 0 = {0..d-1}
        np.testing.assert_allclose(A.erasure_probability(n, d, w), erased / len(sets),
                                   rtol=1e-12)


def test_expected_wait_exponential_monte_carlo():
    rng = np.random.default_rng(99)
    n, mean = 30, 0.5
    delays = np.sort(rng.exponential(mean, size=(20_000, n)), axis=1)
    for w in (1, 15, 30):
        sample = delays[:, w - 1]
        se = sample.std(ddof=1) / math.sqrt(sample.size)
        target = A.expected_wait_exponential(n, w, mean)
        assert abs(sample.mean() - target) <= 4 * se, (w, sample.mean(), target)
    np.testing.assert_allclose(A.expected_wait_exponential(n, n, mean), mean * A.harmonic(n))
    assert A.expected_wait_exponential(n, 0, mean) == 0.0


@pytest.mark.parametrize("code", [gc.codes.fractional_repetition(n=9, s=2),
                                  gc.codes.regularized_bernoulli(n=10, k=10, d=3, seed=4),
                                  gc.codes.expander(n=10, d=3, seed=0),
                                  gc.codes.regularized_bernoulli(n=8, k=12, d=2, seed=1)],
                         ids=["frc", "rbgc", "expander", "rbgc_rect"])
def test_one_step_is_unbiased_by_exact_enumeration(code):
    """E[alpha] = 1 element-wise over every straggler set of size s (regular codes)."""
    n = code.n
    for s in (1, 2, 3):
        alphas = [gc.decode(code, _mask(n, st), "one_step").alpha
                  for st in itertools.combinations(range(n), s)]
        np.testing.assert_allclose(np.mean(alphas, axis=0), np.ones(code.k), rtol=1e-12)
    d = code.replication
    if np.all(code.B.data == 1):
        np.testing.assert_allclose(gc.decoders.one_step_constant(code, 2),
                                   n / (d * (n - 2)), rtol=1e-12)   # REFERENCES #4


def test_one_step_irregular_code_is_unbiased_on_average_over_partitions():
    code = gc.codes.bernoulli(n=9, k=9, d=3, seed=3)
    alphas = [gc.decode(code, _mask(9, st), "one_step").alpha
              for st in itertools.combinations(range(9), 2)]
    np.testing.assert_allclose(np.mean(alphas), 1.0, rtol=1e-12)


@pytest.mark.parametrize("n, s, expected", [
    (4, 1, [1.0, 1.0]),
    (5, 2, [1.0, (1 + math.sqrt(5)) / 2, 1.0]),
    (6, 3, [1.0, 2.0, 2.0, 1.0]),
])
def test_cyclic_mds_real_generators(n, s, expected):
    g = gc.codes.mds.cyclic_mds_generator(n, s)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, expected, rtol=0, atol=1e-12)
    code = gc.codes.cyclic_mds(n, s)
    assert not code.is_complex
    np.testing.assert_allclose(code.toarray()[1], np.roll(np.r_[expected, np.zeros(n - s - 1)], 1),
                               atol=1e-12)
    for st in itertools.combinations(range(n), s):
        assert gc.decode(code, _mask(n, st), "exact").error < 1e-9


def test_graph_fixed_lower_bound_below_an_unbiased_fixed_decoder():
    """Edge weight 1/(d(1-p)) is unbiased; its exact expected error obeys the bound."""
    k, d, p = 10, 3, 0.2
    code = gc.codes.graph_scheme(k=k, d=d, seed=0)
    w = np.full(code.n, 1 / (d * (1 - p)))
    exact = A.fixed_weights_expected_error(code, w, p)
    assert exact >= A.graph_fixed_lower_bound(k, d, p) - 1e-12
    np.testing.assert_allclose(exact, k * p / (d * (1 - p)), rtol=1e-12)   # equality here
