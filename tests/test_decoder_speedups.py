"""Speed-ups of the decoders and of soft_bibd must not change their results.

- ``graph``: the new traversal against a frozen copy of the previous algorithm, on random
  graph schemes and user graph codes (parallel edges, many components, heavy stragglers).
- ``soft_bibd``: hashes of B recorded with the previous implementation, and the new greedy
  start against a frozen copy of the previous loop.
- ``optimal``: CGLS blocks against dense least squares (hypothesis and fixed seeds), and
  the per-block memo re-solves only blocks whose responders changed.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.sparse import csgraph

import gradcode as gc
from gradcode.core import decoders as D

bibd_module = sys.modules["gradcode.codes.bibd"]


# --------------------------------------------------------------------------- graph
def _reference_graph_solve(k, st, mask):
    """The graph decoder before the speed-up (frozen copy, strong-components labelling)."""
    n = mask.size
    weights = np.zeros(n)
    alpha = np.zeros(k)
    keep = mask[st["eid"]]
    if not keep.any():
        return weights, alpha
    u_all, v_all = st["u"], st["v"]
    csum = np.zeros(keep.size + 1, dtype=np.int64)
    np.cumsum(keep, out=csum[1:])
    indptr = csum[st["indptr"]]
    indices = st["indices"][keep].astype(np.int64)
    eid = st["eid"][keep].astype(np.int64)
    deg = np.diff(indptr)
    row_of = np.repeat(np.arange(k), deg)
    if st["parallel"]:
        # parallel edges: csgraph's strong-components routine does not terminate on
        # duplicate CSR entries, so the traversal uses a de-duplicated copy
        keys = row_of * k + indices
        uniq = np.r_[True, keys[1:] != keys[:-1]]
        g_indices = indices[uniq]
        g_indptr = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of[uniq], minlength=k), out=g_indptr[1:])
    else:
        g_indices, g_indptr = indices, indptr
    nnz = g_indices.size
    # one buffer for the graph plus a super-root row k (empty while finding components,
    # then pointing at one vertex per component so that one BFS spans the forest)
    ext_indices = np.empty(nnz + k, dtype=np.int32)
    ext_indices[:nnz] = g_indices
    ext_indptr = np.empty(k + 2, dtype=np.int32)
    ext_indptr[:k + 1] = g_indptr
    ext_indptr[k + 1] = nnz
    ones = st["ones"][:nnz + k]
    ncomp, lab = csgraph.connected_components(
        sp.csr_array((ones[:nnz], ext_indices[:nnz], ext_indptr), shape=(k + 1, k + 1)),
        directed=True, connection="strong")
    ncomp -= 1                                    # drop the (isolated) super-root's label
    root_lab = lab[k]
    lab = lab[:k].astype(np.int64)
    lab -= lab > root_lab
    first = np.empty(ncomp, dtype=np.int64)       # any one vertex of each component
    first[lab] = np.arange(k)
    ext_indices[nnz:nnz + ncomp] = first
    ext_indptr[k + 1] = nnz + ncomp
    ext = sp.csr_array((ones[:nnz + ncomp], ext_indices[:nnz + ncomp], ext_indptr),
                       shape=(k + 1, k + 1))
    order, pred = csgraph.breadth_first_order(ext, k, directed=True, return_predecessors=True)
    pos = np.empty(k + 1, dtype=np.int64)
    pos[order] = np.arange(k + 1)
    ppos = pos[pred[order[1:]]]                # parent position of order[1:], non-decreasing
    # level boundaries in BFS order: level t+1 = children of level t
    bounds = [0, 1]
    while bounds[-1] < k + 1:
        nxt = int(np.searchsorted(ppos, bounds[-1] - 1, side="right")) + 1
        if nxt <= bounds[-1]:
            raise RuntimeError("graph: internal error, BFS forest does not span the graph")
        bounds.append(nxt)
    depth = np.empty(k + 1, dtype=np.int64)
    for t in range(len(bounds) - 1):
        depth[order[bounds[t]:bounds[t + 1]]] = t
    depth = depth[:k]
    parity = depth & 1
    eids = np.flatnonzero(mask)
    u, v = u_all[eids], v_all[eids]
    same = parity[u] == parity[v]              # joins equal BFS parities: an odd cycle
    odd_comp = np.zeros(ncomp, dtype=bool)
    odd_comp[lab[u[same]]] = True
    size1 = np.bincount(lab, weights=parity, minlength=ncomp)
    size0 = np.bincount(lab, minlength=ncomp) - size1
    delta = np.abs(size0 - size1) / np.maximum(size0 + size1, 1)
    on_big_side = np.where(parity == 1, (size1 >= size0)[lab], (size0 >= size1)[lab])
    alpha = np.where(odd_comp[lab], 1.0,
                     np.where(on_big_side, 1.0 - delta[lab], 1.0 + delta[lab]))
    alpha[deg == 0] = 0.0
    # The root residual of a leaves-up solve is sum_v sign_v (alpha_v - extra_v) with
    # sign = (-1)^depth; an extra weight t on one odd edge (both ends of sign sigma)
    # changes it by -2 sigma t, so t = r0 / (2 sigma) makes it vanish.
    sign = 1.0 - 2.0 * parity
    r0 = np.bincount(lab, weights=sign * alpha, minlength=ncomp)
    odd_edges = np.flatnonzero(same)
    odd_edge_of = np.full(ncomp, -1)
    odd_edge_of[lab[u[odd_edges]][::-1]] = odd_edges[::-1]
    oe = odd_edge_of[odd_edge_of >= 0]
    comp_oe = lab[u[oe]]
    t = r0[comp_oe] / (2.0 * sign[u[oe]])
    w = np.zeros(u.size)
    w[oe] = t
    s_val = alpha.copy()
    s_val[u[oe]] -= t
    s_val[v[oe]] -= t
    # leaves up over BFS levels (positions >= 2 are non-root vertices)
    s_pos = np.r_[0.0, s_val[order[1:]]]
    acc = np.zeros(k + 1)
    wpos = np.zeros(k + 1)
    for lev in range(len(bounds) - 2, 1, -1):
        a, b = bounds[lev], bounds[lev + 1]
        val = s_pos[a:b] - acc[a:b]
        wpos[a:b] = val
        pa = ppos[a - 1:b - 1]
        lo = bounds[lev - 1]
        acc[lo:a] += np.bincount(pa - lo, weights=val, minlength=a - lo)
    # tree edge (child, parent) of every vertex below level 1
    # (vertex, parent) entries of the surviving adjacency; parallel edges: first one only
    parent_of = np.where(depth >= 2, pred[:k], -1)
    hit = np.flatnonzero(indices == np.repeat(parent_of, deg))
    if hit.size:
        hit_row = row_of[hit]
        hit = hit[np.r_[True, hit_row[1:] != hit_row[:-1]]]
        weights[eid[hit]] = wpos[pos[row_of[hit]]]
    weights[eids[oe]] += t
    return weights, alpha


def _graph_code(k, m, rng, parallel=False):
    u = rng.integers(0, k, size=m)
    v = (u + rng.integers(1, k, size=m)) % k                # u != v
    if parallel and m > 1:
        u[-1], v[-1] = u[0], v[0]
    B = sp.csr_array((np.repeat(rng.uniform(0.5, 2.0, size=m), 2),
                      (np.repeat(np.arange(m), 2), np.c_[u, v].ravel())), shape=(m, k))
    return gc.Code(B, name="random_graph", tolerates=0)


def _compare_graph(code, mask):
    new = gc.decode(code, mask, "graph")
    st = D._graph_structure(code)
    weights, alpha = _reference_graph_solve(code.k, st, mask)
    weights[mask] /= st["c"][mask]
    np.testing.assert_array_equal(new.alpha, alpha)
    np.testing.assert_array_equal(new.weights, weights)


@pytest.mark.parametrize("seed", range(6))
def test_graph_decoder_matches_previous_algorithm_on_graph_schemes(seed):
    rng = np.random.default_rng(seed)
    for k, d in [(50, 3), (400, 4), (2000, 3)]:
        code = gc.codes.graph_scheme(k=k, d=d, seed=seed)
        for frac in (0.0, 0.1, 0.4, 0.7, 0.95):
            mask = rng.random(code.n) >= frac
            _compare_graph(code, mask)


@settings(max_examples=60, deadline=None)
@given(k=hst.integers(2, 60), m=hst.integers(1, 120), frac=hst.floats(0.0, 1.0),
       parallel=hst.booleans(), seed=hst.integers(0, 2**31 - 1))
def test_graph_decoder_matches_previous_algorithm_on_random_graphs(k, m, frac, parallel, seed):
    rng = np.random.default_rng(seed)
    code = _graph_code(k, m, rng, parallel)
    _compare_graph(code, rng.random(m) >= frac)


def test_graph_decoder_many_components_matches_optimal():
    """Sparse graph, most edges lost: many components, all labelled on the side path."""
    rng = np.random.default_rng(11)
    code = _graph_code(3000, 3000, rng)
    mask = rng.random(3000) < 0.3
    _compare_graph(code, mask)
    np.testing.assert_allclose(gc.decode(code, mask, "graph").alpha,
                               gc.decode(code, mask, "optimal").alpha, rtol=0, atol=1e-8)


@pytest.mark.parametrize("k", [9, 10])
def test_graph_decoder_one_component_and_isolated_vertices(k):
    """The one-component fast path, bipartite (even cycle) and not (odd cycle): a cycle on
    vertices 0..k-3 plus two pendant edges to k-2 and k-1 (so the root k-1 is in the
    component); losing the pendant edge of k-2 isolates it. Equal to the previous
    algorithm bit for bit and to optimal decoding."""
    ring = k - 2
    u = np.r_[np.arange(ring), 0, 1]
    v = np.r_[(np.arange(ring) + 1) % ring, k - 2, k - 1]
    m = u.size
    B = sp.csr_array((np.ones(2 * m), (np.repeat(np.arange(m), 2), np.c_[u, v].ravel())),
                     shape=(m, k))
    code = gc.Code(B, name="ring", tolerates=0)
    for lost in ([], [m - 2], [m - 2, 3]):
        mask = np.ones(m, dtype=bool)
        mask[lost] = False
        _compare_graph(code, mask)
        dec = gc.decode(code, mask, "graph")
        np.testing.assert_allclose(dec.alpha, gc.decode(code, mask, "optimal").alpha,
                                   rtol=0, atol=1e-9)
        if m - 2 in lost:
            assert dec.alpha[k - 2] == 0.0
        if ring % 2 == 1 and not lost:
            np.testing.assert_array_equal(dec.alpha, np.ones(k))


# --------------------------------------------------------------------------- soft_bibd
# sha256 of (indptr, indices) of the sorted CSR B, and meta["pair_counts"], produced by
# the implementation before the speed-up (n, k, r, seed, sweeps)
SOFT_BIBD_BEFORE = {
    (13, 13, 4, 0, 100): ("b77e0a291b63e60791029dfaea414849411b5c215098ee08165136d5929577b7", (1, 1)),
    (12, 12, 3, 0, 100): ("d1751b66c02bc4f1f0e6bee8050c73cc1d667d117438a2e4486ceefde0cae8e5", (0, 1)),
    (30, 20, 3, 1, 100): ("22b5719e39a796148bd7ad8998353531fefcd172870f5d676b00fab30e0a13b8", (0, 1)),
    (50, 60, 4, 2, 100): ("3a5b7877203e0921321825b0161d83705d72e551d053d207b2b05c82c0949f43", (0, 1)),
    (100, 100, 3, 3, 100): ("12cc8da99265f0abbdee93bfd6f2acfc62feeb40989b563e5a1b4ddc283c9d45", (0, 1)),
    (200, 150, 5, 4, 100): ("3b85c04c94763049f15334c599c51ed13bb48d54daff44b36ba5105065e09494", (0, 1)),
    (400, 400, 3, 5, 100): ("7e915c3267b73e0596408c180c464e731d275bbf487a7a97fab80901ca63a6ea", (0, 1)),
    (40, 40, 5, 6, 20): ("004f22408277079db0f9d11605d2d3db19704f3df39e52bd118ef2120814daa0", (0, 2)),
    (1000, 1000, 3, 7, 100): ("79215c3a7e4c75b042b6437d8258ca6402e51374e6d654a487fbea8c644dfc0f", (0, 1)),
    (25, 30, 6, 8, 0): ("07a00e0dcb5794a28a0f88addb322b7a5285e1731f7ee4d5fbef6f19029e382a", (0, 4)),
}


def _b_hash(code):
    B = sp.csr_array(code.B)
    B.sort_indices()
    return hashlib.sha256(B.indptr.astype(np.int64).tobytes()
                          + B.indices.astype(np.int64).tobytes()).hexdigest()


@pytest.mark.parametrize("params", sorted(SOFT_BIBD_BEFORE))
def test_soft_bibd_same_matrix_as_before(params):
    n, k, r, seed, sweeps = params
    code = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=sweeps)
    digest, counts = SOFT_BIBD_BEFORE[params]
    assert _b_hash(code) == digest
    assert code.meta["pair_counts"] == counts


@settings(max_examples=25, deadline=None)
@given(n=hst.integers(4, 90), r=hst.integers(1, 5), seed=hst.integers(0, 2**31 - 1),
       sweeps=hst.integers(0, 30), window_div=hst.sampled_from([1, 4, 16, 10**6]),
       data=hst.data())
def test_soft_bibd_batched_walk_matches_sequential_walk(n, r, seed, sweeps, window_div, data):
    """The batched replay of the annealing walk (windows of level-scheduled steps, rolled
    back on pair conflicts) gives the same code as the one-proposal-at-a-time loop."""
    k = data.draw(hst.integers(r, min(n * r, 120)))
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(bibd_module, "_BATCHED_MAX_BLOCK", 10**9)
        mp.setattr(bibd_module, "_WINDOW_DIV", window_div)
        mp.setattr(bibd_module, "_BATCHED_MIN_K", 10**9)
        seq = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=sweeps)
        mp.setattr(bibd_module, "_BATCHED_MIN_K", 0)
        bat = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=sweeps)
    finally:
        mp.undo()
    assert _b_hash(bat) == _b_hash(seq)
    assert bat.meta == seq.meta


@pytest.mark.parametrize("n, k, r, seed", [(700, 700, 3, 0), (900, 600, 4, 1),
                                           (1200, 1500, 2, 2)])
def test_soft_bibd_batched_walk_matches_sequential_walk_at_scale(monkeypatch, n, k, r, seed):
    monkeypatch.setattr(bibd_module, "_BATCHED_MIN_K", 10**9)
    seq = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=20)
    monkeypatch.setattr(bibd_module, "_BATCHED_MIN_K", 0)
    bat = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=20)
    assert _b_hash(bat) == _b_hash(seq)
    assert bat.meta == seq.meta


def _pair_objective(code):
    """sum over i < i' of G[i, i']^2, G = B B^T: the quantity the walk minimises."""
    B = code.toarray()
    return int(np.sum(np.triu(B @ B.T, 1) ** 2))


@settings(max_examples=30, deadline=None)
@given(n=hst.integers(4, 40), r=hst.integers(2, 5), seed=hst.integers(0, 10**6),
       sweeps=hst.integers(1, 15), data=hst.data())
def test_soft_bibd_never_returns_a_state_worse_than_the_end_of_the_walk(n, r, seed, sweeps,
                                                                        data):
    """The kept state is restored only when its own objective beats the final one (the
    walk used to compare with the best objective seen anywhere but restore the state
    saved in the second half, which could be worse)."""
    k = data.draw(hst.integers(r, min(n * r, 40)))
    kept = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=sweeps)
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(bibd_module._walk, "best_state", lambda *args: None)
        end = gc.codes.soft_bibd(n=n, k=k, r=r, seed=seed, sweeps=sweeps)
    finally:
        mp.undo()
    assert _pair_objective(kept) <= _pair_objective(end)


def test_soft_bibd_restore_keeps_the_better_state():
    """(9, 12, 4, seed 3, 10 sweeps): the walk ends at objective 44; the previous
    restore brought back an older state of objective 70."""
    code = gc.codes.soft_bibd(n=9, k=12, r=4, seed=3, sweeps=10)
    assert _pair_objective(code) == 44


def _reference_greedy(rng, n, r, sizes):
    """The greedy start before the speed-up (frozen copy): one draw and one O(n)
    selection per block."""
    remaining = np.full(n, r, dtype=np.int64)
    blocks = []
    for j in np.argsort(-sizes, kind="stable"):
        key = remaining + rng.random(n) * 0.5
        chosen = np.argpartition(-key, sizes[j] - 1)[: sizes[j]]
        remaining[chosen] -= 1
        blocks.append(np.sort(chosen).tolist())
    return blocks


def _block_sizes(rng, k, total):
    """k block sizes as equal as possible summing to total, the larger ones at random."""
    sizes = np.full(k, total // k, dtype=np.int64)
    sizes[rng.permutation(k)[: total % k]] += 1
    return sizes


@settings(max_examples=40, deadline=None)
@given(n=hst.integers(2, 400), r=hst.integers(1, 6), seed=hst.integers(0, 2**31 - 1),
       data=hst.data())
def test_soft_bibd_greedy_start_matches_previous_loop(n, r, seed, data):
    k = data.draw(hst.integers(r, min(n * r, 500)))
    rng = np.random.default_rng(seed)
    sizes = _block_sizes(rng, k, n * r)
    state = rng.bit_generator.state
    new = bibd_module._greedy_blocks(rng, n, r, sizes)
    after_new = rng.bit_generator.state
    rng.bit_generator.state = state
    old = _reference_greedy(rng, n, r, sizes)
    assert new == old
    assert rng.bit_generator.state == after_new          # the generator advanced alike


@pytest.mark.parametrize("n, k, r, seed", [(3000, 3000, 3, 0), (2500, 1800, 4, 1),
                                           (5000, 2000, 2, 2)])
def test_soft_bibd_greedy_start_matches_previous_loop_over_many_chunks(n, k, r, seed):
    """Several draws of rows and many runs per draw, degrees exhausted mid-run."""
    rng = np.random.default_rng(seed)
    sizes = _block_sizes(rng, k, n * r)
    state = rng.bit_generator.state
    new = bibd_module._greedy_blocks(rng, n, r, sizes)
    rng.bit_generator.state = state
    assert new == _reference_greedy(rng, n, r, sizes)


# --------------------------------------------------------------------------- optimal
def _dense_alpha(code, mask):
    BF = code.toarray()[mask]
    a = np.linalg.lstsq(BF.T, np.ones(code.k), rcond=None)[0]
    return BF.T @ a


@settings(max_examples=12, deadline=None)
@given(n=hst.integers(401, 700), d=hst.integers(2, 6), frac=hst.floats(0.0, 0.5),
       seed=hst.integers(0, 2**31 - 1))
def test_optimal_cgls_matches_dense_lstsq(n, d, frac, seed):
    rng = np.random.default_rng(seed)
    code = gc.codes.regularized_bernoulli(n=n, k=n, d=d, seed=seed % 1000)
    mask = rng.random(n) >= frac
    dec = gc.decode(code, mask, "optimal")
    alpha_ref = _dense_alpha(code, mask)
    np.testing.assert_allclose(dec.alpha, alpha_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(dec.error, np.sum((alpha_ref - 1) ** 2), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(code.B.T @ dec.weights, dec.alpha, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(dec.weights[~mask], 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_consecutive_patterns_match_dense_lstsq(seed):
    """Rounds whose patterns differ in 10% of the responders, as in training."""
    rng = np.random.default_rng(seed)
    n = 900
    code = gc.codes.regularized_bernoulli(n=n, k=n, d=5, seed=seed)
    mask = rng.random(n) >= 0.1
    for _ in range(3):
        on, off = np.flatnonzero(mask), np.flatnonzero(~mask)
        swap = min(on.size // 10, off.size)
        mask[rng.choice(on, swap, replace=False)] = False
        mask[rng.choice(off, swap, replace=False)] = True
        dec = gc.decode(code, mask, "optimal")
        np.testing.assert_allclose(dec.alpha, _dense_alpha(code, mask), rtol=0, atol=1e-7)


def test_optimal_reuses_unchanged_large_blocks(monkeypatch):
    """Two large diagonal blocks: changing responders in one block re-solves only it."""
    one = gc.codes.regularized_bernoulli(n=500, k=500, d=4, seed=5).B
    code = gc.Code(sp.block_diag([one, one], format="csr"), name="two_blocks", tolerates=0)
    calls = []
    real = D._lstsq_block
    monkeypatch.setattr(D, "_lstsq_block", lambda b: calls.append(b.shape) or real(b))
    rng = np.random.default_rng(3)
    mask = rng.random(1000) >= 0.1
    first = gc.decode(code, mask, "optimal")
    assert len(calls) == 2
    mask2 = mask.copy()
    mask2[np.flatnonzero(mask[:500])[:20]] = False            # change the first block only
    second = gc.decode(code, mask2, "optimal")
    assert len(calls) == 3
    for m, dec in ((mask, first), (mask2, second)):
        np.testing.assert_allclose(dec.alpha, _dense_alpha(code, m), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(second.weights[500:], first.weights[500:])


def test_cgls_direct_kernel_matches_scipy_products(monkeypatch):
    """The direct CSR kernel and ``A @ x`` give the same iterates, so the same solution."""
    from gradcode.core import cgls as cgls_module

    code = gc.codes.regularized_bernoulli(n=800, k=800, d=4, seed=4)
    mask = np.random.default_rng(4).random(800) >= 0.1
    BF = code.B[np.flatnonzero(mask)]
    A, At = sp.csr_array(BF.T), sp.csr_array(BF)
    args = (A, At, np.ones(800), 1e-10, float(sp.linalg.norm(A)), 10_000)
    fast = cgls_module.cgls(*args)
    monkeypatch.setattr(cgls_module, "_csr_matvec", None)
    slow = cgls_module.cgls(*args)
    np.testing.assert_array_equal(fast[0], slow[0])
    assert fast[1:] == slow[1:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_alpha_within_the_documented_bound(seed):
    """||alpha - alpha*|| <= ||B_F r|| / sigma_min <= 1e-10 ||B_F||_F max(||r||, 1) / sigma_min
    (sigma_min: smallest non-zero singular value), alpha* from a dense SVD solve."""
    rng = np.random.default_rng(seed)
    code = gc.codes.regularized_bernoulli(n=600, k=600, d=4, seed=seed)
    mask = rng.random(600) >= 0.1
    dec = gc.decode(code, mask, "optimal")
    BF = code.toarray()[mask]
    sv = np.linalg.svd(BF, compute_uv=False)
    sigma = sv[sv > sv[0] * 1e-12].min()
    alpha_star = BF.T @ np.linalg.lstsq(BF.T, np.ones(600), rcond=None)[0]
    r = 1.0 - dec.alpha
    grad = np.linalg.norm(BF @ r)
    bound = 1e-10 * np.linalg.norm(BF) * max(np.linalg.norm(r), 1.0) / sigma
    assert grad <= 1e-10 * np.linalg.norm(BF) * max(np.linalg.norm(r), 1.0) * (1 + 1e-9)
    assert np.linalg.norm(dec.alpha - alpha_star) <= grad / sigma + 1e-12 <= bound + 1e-12
