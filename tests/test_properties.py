"""hypothesis property tests: gc.Code on random user matrices and responder masks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gradcode as gc


@st.composite
def matrix_and_mask(draw, complex_=False):
    n = draw(st.integers(1, 7))
    k = draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # small integers (exactly representable, rank deficiency exact) with ~half zeros
    B = rng.integers(-3, 4, size=(n, k)).astype(float) * (rng.random((n, k)) < 0.6)
    if complex_:
        B = B + 1j * rng.integers(-2, 3, size=(n, k)) * (rng.random((n, k)) < 0.3)
    if not B.any():
        B[0, 0] = 1.0
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return B, mask


def dense_projection_error(B, mask):
    """Independent reference: alpha* = P 1, P the projection onto rowspan(B_F)."""
    BF = B[mask]
    k = B.shape[1]
    if BF.shape[0] == 0:
        return np.zeros(k), float(k)
    M = BF.T                                         # alpha ranges over {M a} (no conjugate)
    P = M @ np.linalg.pinv(M)                        # k x k orthogonal projection onto it
    alpha = P @ np.ones(k)
    return alpha, float(np.sum(np.abs(alpha - 1) ** 2))


@settings(max_examples=120, deadline=None)
@given(matrix_and_mask())
def test_optimal_matches_dense_projection(data):
    B, mask = data
    code = gc.Code(B, name="random")
    d = gc.decode(code, mask, "optimal")
    alpha_ref, err_ref = dense_projection_error(B, mask)
    np.testing.assert_allclose(d.alpha, alpha_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d.error, err_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(d.alpha, B.T @ d.weights, rtol=0, atol=1e-9)
    assert np.all(d.weights[~mask] == 0)
    # identity #1: error = k - 1^T alpha* (real codes)
    np.testing.assert_allclose(d.error, B.shape[1] - d.alpha.sum(), rtol=0, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(matrix_and_mask(complex_=True))
def test_optimal_matches_dense_projection_complex(data):
    B, mask = data
    d = gc.decode(gc.Code(B), mask, "optimal")
    alpha_ref, err_ref = dense_projection_error(B, mask)
    np.testing.assert_allclose(d.alpha, alpha_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d.error, err_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(d.alpha, B.T @ d.weights, rtol=0, atol=1e-9)


@settings(max_examples=80, deadline=None)
@given(matrix_and_mask(), st.integers(0, 6))
def test_optimal_monotone_in_responders(data, extra):
    B, mask = data
    code = gc.Code(B)
    stragglers = np.flatnonzero(~mask)
    if stragglers.size == 0:
        return
    more = mask.copy()
    more[stragglers[extra % stragglers.size]] = True
    before = gc.decode(code, mask).error
    after = gc.decode(code, more).error
    assert after <= before + 1e-9 * max(1.0, before)


@settings(max_examples=80, deadline=None)
@given(matrix_and_mask(), st.sampled_from([1e-3, 0.5, 3.0, -2.0, 1e4]),
       st.integers(0, 2**32 - 1))
def test_error_invariant_to_rescaling(data, scale, seed):
    B, mask = data
    base = gc.decode(gc.Code(B), mask)
    scaled = gc.decode(gc.Code(scale * B), mask)
    np.testing.assert_allclose(scaled.alpha, base.alpha, rtol=0, atol=1e-8)
    np.testing.assert_allclose(scaled.error, base.error, rtol=1e-8, atol=1e-8)
    # non-zero row scalings keep every rowspan(B_F) too
    rows = np.random.default_rng(seed).uniform(0.5, 2.0, size=B.shape[0])
    row_scaled = gc.decode(gc.Code(rows[:, None] * B), mask)
    np.testing.assert_allclose(row_scaled.error, base.error, rtol=1e-8, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(matrix_and_mask())
def test_indices_and_mask_agree_and_other_decoders_are_consistent(data):
    B, mask = data
    code = gc.Code(B)
    by_mask = gc.decode(code, mask)
    by_idx = gc.decode(code, np.flatnonzero(mask).tolist())
    np.testing.assert_allclose(by_idx.weights, by_mask.weights, rtol=0, atol=0)
    for name in ("one_step", "optimal"):
        d = gc.decode(code, mask, name)
        assert np.all(d.weights[~mask] == 0)
        np.testing.assert_allclose(d.alpha, B.T @ d.weights, rtol=0, atol=1e-9)
        assert by_mask.error <= d.error + 1e-9 * max(1.0, d.error)


@settings(max_examples=40, deadline=None)
@given(matrix_and_mask())
def test_tolerates_search_is_correct(data):
    """Code.tolerates of a user matrix: every set of that many stragglers decodes exactly;
    some set of one more does not."""
    import itertools
    B, _ = data
    code = gc.Code(B)
    n, k = B.shape
    t = code.tolerates

    def ok(st_):
        m = np.ones(n, bool)
        m[list(st_)] = False
        return dense_projection_error(B, m)[1] <= 1e-9 * k

    if not ok(()):
        assert t == 0
        return
    assert all(ok(c) for c in itertools.combinations(range(n), t))
    if t + 1 < n:
        assert not all(ok(c) for c in itertools.combinations(range(n), t + 1))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24), st.integers(1, 30), st.integers(0, 2**32 - 1), st.data())
def test_regularized_bernoulli_is_regular_for_every_d(n, k, seed, data):
    """Column weights exactly d with entries 1 (no worker twice on a partition), row loads
    floor or ceil of k d / n -- also for d close to n, where redraws alone fail."""
    d = data.draw(st.integers(1, n))
    code = gc.codes.regularized_bernoulli(n=n, k=k, d=d, seed=seed)
    np.testing.assert_array_equal(code.column_support, np.full(k, d))
    np.testing.assert_array_equal(code.B.data, np.ones(code.B.nnz))
    assert code.row_support.min() == k * d // n
    assert code.row_support.max() == -(-k * d // n)
