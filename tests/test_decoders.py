"""Decoders: structured decoders against optimal, the sparse path, arrival order, memo."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import gradcode as gc
from gradcode.core import decoders as D


def _random_mask(n, frac, rng):
    m = np.ones(n, dtype=bool)
    m[rng.choice(n, size=int(frac * n), replace=False)] = False
    return m


@pytest.mark.parametrize("k, d, frac", [(400, 3, 0.1), (400, 3, 0.6), (300, 4, 0.9),
                                        (200, 2, 0.3)])
def test_graph_decoder_equals_optimal_at_scale(k, d, frac):
    code = gc.codes.graph_scheme(k=k, d=d, seed=k + d)
    rng = np.random.default_rng(5)
    for _ in range(3):
        mask = _random_mask(code.n, frac, rng)
        g = gc.decode(code, mask, "graph")
        o = gc.decode(code, mask, "optimal")
        np.testing.assert_allclose(g.alpha, o.alpha, rtol=0, atol=1e-8)
        np.testing.assert_allclose(g.error, o.error, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(code.B.T @ g.weights, g.alpha, rtol=0, atol=1e-9)
        assert np.all(g.weights[~mask] == 0)


def test_graph_decoder_parallel_edges_and_coefficients():
    """Two workers on the same pair (parallel edges) and coefficients other than 1."""
    pairs = [(0, 1), (0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 3), (3, 4)]
    B = np.zeros((len(pairs), 6))
    for i, (a, b) in enumerate(pairs):
        B[i, [a, b]] = 2.5 if i % 2 else 1.0
    code = gc.Code(B)
    rng = np.random.default_rng(0)
    for _ in range(60):
        mask = rng.random(code.n) < 0.6
        g = gc.decode(code, mask, "graph")
        o = gc.decode(code, mask, "optimal")
        np.testing.assert_allclose(g.alpha, o.alpha, rtol=0, atol=1e-9)
        np.testing.assert_allclose(B.T @ g.weights, g.alpha, rtol=0, atol=1e-9)
        assert np.all(g.weights[~mask] == 0)


def test_graph_decoder_all_and_none():
    code = gc.codes.graph_scheme(k=10, d=3, seed=0)
    none = gc.decode(code, np.zeros(code.n, bool), "graph")
    np.testing.assert_allclose(none.alpha, np.zeros(10), atol=0)
    assert none.error == 10.0
    full = gc.decode(code, np.ones(code.n, bool), "graph")
    opt = gc.decode(code, np.ones(code.n, bool), "optimal")
    np.testing.assert_allclose(full.alpha, opt.alpha, rtol=0, atol=1e-9)


def test_frc_group_uses_first_arrival_per_group():
    code = gc.codes.fractional_repetition(n=6, s=2)          # groups {0,1,2}, {3,4,5}
    d = gc.decode(code, [4, 2, 5, 0], "frc_group")
    np.testing.assert_array_equal(d.weights, [0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(d.alpha, np.ones(6), atol=0)
    # only group 1 covered: group 0's partitions dropped, no rescaling (biased)
    d = gc.decode(code, [5, 3], "frc_group")
    np.testing.assert_array_equal(d.weights, [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(d.alpha, [0, 0, 0, 1, 1, 1], atol=0)
    assert d.error == 3.0
    # a mask counts the lowest index first
    mask = np.array([False, True, True, True, False, True])
    np.testing.assert_array_equal(gc.decode(code, mask, "frc_group").weights, [0, 1, 0, 1, 0, 0])


def test_frc_group_on_user_matrix_with_permuted_rows():
    base = gc.codes.fractional_repetition(n=12, s=3).toarray()
    perm = np.random.default_rng(1).permutation(12)
    code = gc.Code(base[perm])
    rng = np.random.default_rng(2)
    for _ in range(20):
        order = rng.permutation(12)[: rng.integers(0, 13)]
        d = gc.decode(code, order, "frc_group")
        covered = {tuple(np.flatnonzero(base[perm][w])) for w in order}
        assert np.count_nonzero(d.weights) == len(covered)
        assert np.isclose(d.error, 12 - 4 * len(covered))
        if order.size:
            assert d.weights[order[0]] == 1.0


def test_optimal_sparse_path_matches_dense_lstsq(monkeypatch):
    """Blocks above the dense limit go through CGLS; compare with dense lstsq."""
    calls = []
    real_cgls = D.cgls
    monkeypatch.setattr(D, "cgls", lambda *a, **kw: calls.append(1) or real_cgls(*a, **kw))
    code = gc.codes.regularized_bernoulli(n=600, k=600, d=3, seed=3)
    rng = np.random.default_rng(4)
    dense = code.toarray()
    for frac in (0.1, 0.3):
        mask = _random_mask(code.n, frac, rng)
        d = gc.decode(code, mask, "optimal")
        a_ref = np.linalg.lstsq(dense[mask].T, np.ones(code.k), rcond=None)[0]
        alpha_ref = dense[mask].T @ a_ref
        np.testing.assert_allclose(d.alpha, alpha_ref, rtol=0, atol=1e-7)
        np.testing.assert_allclose(d.error, np.sum((alpha_ref - 1) ** 2), rtol=1e-8)
        np.testing.assert_allclose(code.B.T @ d.weights, d.alpha, rtol=0, atol=1e-9)
    assert len(calls) == 2


def test_optimal_many_components_matches_dense():
    """Above the dense limit with many components (FRC): per-component solves."""
    code = gc.codes.fractional_repetition(n=600, s=4)
    rng = np.random.default_rng(8)
    mask = _random_mask(600, 0.5, rng)
    d = gc.decode(code, mask, "optimal")
    dense = code.toarray()[mask]
    alpha_ref = dense.T @ np.linalg.lstsq(dense.T, np.ones(600), rcond=None)[0]
    np.testing.assert_allclose(d.alpha, alpha_ref, rtol=0, atol=1e-9)


def test_results_are_copies_of_the_memo():
    code = gc.codes.cyclic_repetition(n=8, s=2, seed=0)
    mask = np.ones(8, bool)
    mask[[1, 5]] = False
    first = gc.decode(code, mask)
    first.weights[:] = 99.0
    first.alpha[:] = 99.0
    again = gc.decode(code, mask)
    np.testing.assert_allclose(again.alpha, np.ones(8), atol=1e-9)


def test_memo_is_bounded():
    code = gc.codes.uncoded(12)
    rng = np.random.default_rng(0)
    for _ in range(D._CACHE_SIZE + 50):
        gc.decode(code, rng.random(12) < 0.5)
    assert len(code.cache()) <= D._CACHE_SIZE


def test_one_step_weights_and_complex_code():
    code = gc.codes.fractional_repetition(n=6, s=1)          # d = 2
    mask = np.array([True, True, True, False, True, True])
    d = gc.decode(code, mask, "one_step")
    np.testing.assert_allclose(d.weights, np.where(mask, 6 / (2 * 5), 0), rtol=1e-12)
    mds = gc.codes.cyclic_mds(n=8, s=2)
    assert mds.is_complex
    d = gc.decode(mds, np.r_[np.ones(6, bool), False, False], "one_step")
    assert d.weights.dtype == np.complex128
    np.testing.assert_allclose(d.alpha, mds.B.T @ d.weights, atol=1e-12)


def test_exact_on_complex_mds_recovers_ones():
    code = gc.codes.cyclic_mds(n=10, s=4)
    rng = np.random.default_rng(0)
    for _ in range(10):
        d = gc.decode(code, _random_mask(10, 0.4, rng), "exact")
        np.testing.assert_allclose(d.alpha, np.ones(10), rtol=0, atol=1e-9)


def test_fixed_decoder_values():
    code = gc.codes.uncoded(4)
    dec = gc.decode(code, [0, 1, 2], gc.decoders.fixed(np.full(4, 4 / 3)))
    np.testing.assert_allclose(dec.weights, [4 / 3, 4 / 3, 4 / 3, 0], rtol=1e-15)
    np.testing.assert_allclose(dec.error, 3 * (1 / 3) ** 2 + 1, rtol=1e-12)


def test_decode_accepts_callables_and_sparse_user_codes():
    code = gc.Code(sp.random_array((30, 20), density=0.2, rng=np.random.default_rng(1)))
    mask = np.random.default_rng(2).random(30) < 0.7
    a = gc.decode(code, mask, D.optimal)
    b = gc.decode(code, mask, "optimal")
    np.testing.assert_allclose(a.alpha, b.alpha, rtol=0, atol=0)
    assert "error=" in repr(a)


def test_optimal_many_components_matches_dense_projection():
    """Above the dense limit the responder matrix is split into components; components
    of every size bucket (batched pseudo-inverses) and large ones (sparse LSMR) must give
    the same alpha as one dense projection."""
    import scipy.linalg as sla
    import scipy.sparse as sp

    rng = np.random.default_rng(7)
    blocks = []
    for size in [1, 2, 3, 5, 8, 13, 21, 30, 33, 60] * 6:          # 2,2.. up to 60 x 60
        rows = max(1, size + int(rng.integers(-1, 2)))
        block = rng.standard_normal((rows, size)) * (rng.random((rows, size)) < 0.6)
        blocks.append(sp.csr_array(block))
    code = gc.Code(sp.block_diag(blocks, format="csr"), name="blocks", tolerates=0)
    assert max(code.n, code.k) > 400
    dense = code.toarray()
    for _ in range(3):
        mask = rng.random(code.n) < 0.8
        dec = gc.decode(code, mask, decoder="optimal")
        BF = dense[mask]
        alpha_ref = BF.T @ (sla.pinv(BF.T) @ np.ones(code.k))
        np.testing.assert_allclose(dec.alpha, alpha_ref, atol=1e-8)
        np.testing.assert_allclose(dec.error, np.sum((alpha_ref - 1) ** 2), rtol=1e-9, atol=1e-8)
        np.testing.assert_array_equal(dec.weights[~mask], 0.0)


def test_optimal_large_frc_equals_group_decoder():
    code = gc.codes.fractional_repetition(n=1200, s=2)
    rng = np.random.default_rng(3)
    mask = rng.random(code.n) < 0.6
    np.testing.assert_allclose(gc.decode(code, mask, "optimal").alpha,
                               gc.decode(code, mask, "frc_group").alpha, atol=1e-12)


def _reference_frc_groups(code):
    """The dict-based grouping of 0.1.0 (labels by first appearance of identical rows)."""
    B = code.B
    keys = [(B.indices[B.indptr[i]:B.indptr[i + 1]].tobytes(),
             B.data[B.indptr[i]:B.indptr[i + 1]].tobytes()) for i in range(code.n)]
    lookup: dict = {}
    return np.array([lookup.setdefault(key, len(lookup)) for key in keys])


@pytest.mark.parametrize("seed", range(6))
def test_frc_groups_matches_the_reference_on_shuffled_and_scaled_codes(seed):
    rng = np.random.default_rng(seed)
    base = gc.codes.fractional_repetition(n=12, s=int(rng.integers(1, 4)) if seed % 2 else 2)
    rows = rng.permutation(base.n)
    scale = np.repeat(rng.uniform(0.5, 2.0, size=base.n // (base.replication)),
                      base.replication)[rows][:, None]
    for B in (base.toarray()[rows], base.toarray()[rows] * scale):
        code = gc.Code(B)
        np.testing.assert_array_equal(D.frc_groups(code), _reference_frc_groups(code))


def test_frc_group_rescales_rows_with_equal_coefficients():
    """2 x FRC: the first responder of each group gets weight 1/2, so decoding is exact;
    rows with unequal coefficients get the least-squares scalar."""
    frc = gc.codes.fractional_repetition(n=6, s=1)
    doubled = gc.Code(2.0 * frc.toarray())
    dec = gc.decode(doubled, [1, 2, 5], decoder="frc_group")
    np.testing.assert_allclose(dec.alpha, np.ones(6), rtol=0, atol=1e-15)
    np.testing.assert_allclose(dec.weights[[1, 2, 5]], 0.5)
    uneven = gc.Code(np.array([[1.0, 3.0], [1.0, 3.0]]))
    w = gc.decode(uneven, [0], decoder="frc_group").weights[0]
    np.testing.assert_allclose(w, 4.0 / 10.0)                  # (1 + 3) / (1 + 9)
    grid = np.linspace(0, 1, 2001)
    best = grid[np.argmin([(1 * x - 1) ** 2 + (3 * x - 1) ** 2 for x in grid])]
    assert abs(best - w) <= 1e-3
