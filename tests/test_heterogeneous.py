"""Heterogeneous-straggler codes (Song & Choi 2025): closed form, allocations, decoder."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.optimize import LinearConstraint, minimize

import gradcode as gc
from gradcode.codes.heterogeneous import (
    ALLOCATIONS,
    EPS,
    allocation_change,
    heterogeneous,
    optimal_row_sums,
    relaxed_error,
    relaxed_objective,
    unbiased,
    unbiased_bias,
    unbiased_expected_error,
    unbiased_for,
    unbiased_weights,
)


def _solve_relaxed(p: np.ndarray, k: int, nonneg: bool) -> tuple[float, np.ndarray]:
    """min sum_i delta_i (sum_j alpha_ij)^2 s.t. column sums 1, numerically.

    Free-sign alpha: trust-constr with the exact Hessian; alpha >= 0: SLSQP with bounds.
    """
    n = p.size
    delta = p / (1 - p)
    A = np.zeros((k, n * k))                   # column sums
    for j in range(k):
        A[j, j::k] = 1.0
    S = np.kron(np.eye(n), np.ones((1, k)))    # row sums
    H = 2 * S.T @ np.diag(delta) @ S

    def f(x: np.ndarray) -> float:
        return float(delta @ (S @ x) ** 2)

    def g(x: np.ndarray) -> np.ndarray:
        return H @ x

    x0 = np.full(n * k, 1.0 / n)
    if nonneg:
        res = minimize(f, x0, jac=g, method="SLSQP", bounds=[(0, None)] * (n * k),
                       constraints=[{"type": "eq", "fun": lambda x: A @ x - 1,
                                     "jac": lambda x: A}],
                       options={"ftol": 1e-16, "maxiter": 1000})
    else:
        res = minimize(f, x0, jac=g, hess=lambda x: H, method="trust-constr",
                       constraints=[LinearConstraint(A, 1, 1)],
                       options={"gtol": 1e-14, "xtol": 1e-14, "maxiter": 2000})
    assert res.success or res.status == 2, res.message   # 2: xtol reached (converged)
    return float(res.fun), S @ res.x


def test_closed_form_matches_numerical_convex_solve() -> None:
    rng = np.random.default_rng(2025)
    for inst in range(50):
        n, k = int(rng.integers(2, 9)), int(rng.integers(1, 7))
        p = rng.uniform(0.02, 0.95, n)
        value, Y_num = _solve_relaxed(p, k, nonneg=bool(inst % 2))
        closed = relaxed_error(p, k)
        np.testing.assert_allclose(value, closed, rtol=1e-6, atol=0)
        Y = optimal_row_sums(p, k)
        np.testing.assert_allclose(Y_num, Y, rtol=1e-6, atol=1e-6 * Y.max())
        delta = p / (1 - p)
        np.testing.assert_allclose(closed, k**2 / np.sum(1 / delta), rtol=1e-12)
        for allocation in ALLOCATIONS:           # every allocation attains the optimum
            code = heterogeneous(p, k, allocation)
            np.testing.assert_allclose(relaxed_objective(code), closed, rtol=1e-10)


def test_random_feasible_alpha_is_never_better() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.6, 9)
    best = relaxed_error(p, 7)
    for _ in range(200):
        alpha = rng.exponential(size=(9, 7))
        alpha /= alpha.sum(0)
        Y = alpha.sum(1)
        assert float(np.sum(p / (1 - p) * Y**2)) >= best * (1 - 1e-12)


@pytest.mark.parametrize("allocation", ALLOCATIONS)
def test_row_column_sums_and_sparsity_on_random_p(allocation: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 80))
        p = rng.uniform(0.0, 1.0, n)
        p[rng.random(n) < 0.1] = 1.0               # some dead workers
        if np.all(p == 1.0):
            p[0] = 0.3
        code = heterogeneous(p, k, allocation)
        B = code.toarray()
        assert B.shape == (n, k)
        np.testing.assert_allclose(B.sum(0), np.ones(k), rtol=0, atol=1e-9)
        np.testing.assert_allclose(B.sum(1), optimal_row_sums(p, k), rtol=0, atol=1e-9)
        np.testing.assert_allclose(B.sum(1), code.meta["row_sums"], rtol=0, atol=1e-9)
        assert code.B.nnz <= n + k - 1
        assert np.all(B[p == 1.0] == 0)
        if allocation == "northwest":
            assert np.all(B >= 0)
            # each worker's partitions are contiguous
            for i in range(n):
                cols = np.flatnonzero(B[i])
                if cols.size:
                    assert cols[-1] - cols[0] + 1 == cols.size
        np.testing.assert_allclose(unbiased_bias(code), np.zeros(k), rtol=0, atol=1e-9)


def test_row_sums_follow_reliability_and_weights() -> None:
    p = np.array([0.05, 0.2, 0.4, 0.6])
    code = heterogeneous(p, 10)
    Y = code.meta["row_sums"]
    ratio = (1 - p) / p
    np.testing.assert_allclose(Y / Y[0], ratio / ratio[0], rtol=1e-12)
    np.testing.assert_allclose(code.meta["weights"], 1 / (1 - p), rtol=1e-15)
    np.testing.assert_allclose(code.meta["p"], p)
    assert code.params["allocation"] == "northwest"
    # typed record: attribute and key access agree, and it holds only what is read
    assert isinstance(code.meta, gc.codes.HeterogeneousMeta)
    assert sorted(code.meta) == ["p", "row_sums", "weights"] and code.meta.p is code.meta["p"]
    assert np.all(np.diff(code.row_support) <= 0)      # reliable workers hold more


def test_monte_carlo_unbiased_and_expected_error() -> None:
    rng = np.random.default_rng(11)
    p = np.linspace(0.05, 0.6, 10)
    trials = 40_000
    for allocation in ALLOCATIONS:
        code = heterogeneous(p, 8, allocation)
        B, w = code.toarray(), code.meta["weights"]
        X = rng.random((trials, p.size)) >= p                # present w.p. 1 - p_i
        alpha = (X * w) @ B
        mean = alpha.mean(0)
        se = alpha.std(0, ddof=1) / np.sqrt(trials)
        assert np.all(np.abs(mean - 1.0) <= 3 * se), (allocation, mean, se)
        errs = np.sum((alpha - 1.0) ** 2, axis=1)
        exact = unbiased_expected_error(code)
        se_err = errs.std(ddof=1) / np.sqrt(trials)
        assert abs(errs.mean() - exact) <= 3 * se_err, (allocation, errs.mean(), exact, se_err)
        # identity 6 reduces to sum_i delta_i ||alpha_i||^2 for the code's own weights
        np.testing.assert_allclose(exact, np.sum(p / (1 - p) * (B**2).sum(1)), rtol=1e-12)
    # the decoder gives the same alpha as the formula above
    code = heterogeneous(p, 8)
    mask = rng.random(p.size) >= p
    np.testing.assert_allclose(gc.decode(code, mask, decoder="unbiased").alpha,
                               code.toarray().T @ (mask * code.meta["weights"]), rtol=1e-12)


def test_bias_when_true_p_differs() -> None:
    p_hat = np.array([0.1, 0.3, 0.5])
    p_true = np.array([0.2, 0.3, 0.4])
    code = heterogeneous(p_hat, 6)
    bias = unbiased_bias(code, p_true)
    B = code.toarray()
    np.testing.assert_allclose(bias, B.T @ ((1 - p_true) / (1 - p_hat)) - 1, rtol=1e-12)
    assert np.max(np.abs(bias)) > 0.01
    rng = np.random.default_rng(3)
    X = rng.random((40_000, 3)) >= p_true
    alpha = (X * code.meta["weights"]) @ B
    se = alpha.std(0, ddof=1) / np.sqrt(X.shape[0])
    assert np.all(np.abs(alpha.mean(0) - 1 - bias) <= 3 * se)
    errs = np.sum((alpha - 1) ** 2, axis=1)
    np.testing.assert_allclose(errs.mean(), unbiased_expected_error(code, p_true),
                               atol=3 * errs.std() / np.sqrt(X.shape[0]))


def test_edge_case_p_one_worker_gets_nothing() -> None:
    p = np.array([0.2, 1.0, 0.4, 1.0])
    code = heterogeneous(p, 5)
    B = code.toarray()
    assert np.all(B[[1, 3]] == 0)
    assert code.meta["weights"][1] == 0 and code.meta["weights"][3] == 0
    np.testing.assert_allclose(B.sum(0), 1)
    # decoders cope with the all-zero rows
    for decoder in ("optimal", "one_step", "unbiased"):
        d = gc.decode(code, [0, 1, 2], decoder=decoder)
        assert np.all(np.isfinite(d.alpha)) and np.isfinite(d.error)
    assert gc.decode(code, [0, 2], decoder="optimal").error < 1e-18
    assert np.isfinite(unbiased_expected_error(code))
    assert code.tolerates == 0


def test_edge_case_p_zero_workers_take_everything() -> None:
    p = np.array([0.3, 0.0, 0.5, 0.0, 0.2])
    for allocation in ALLOCATIONS:
        code = heterogeneous(p, 6, allocation)
        B = code.toarray()
        np.testing.assert_allclose(B.sum(1), [0, 3, 0, 3, 0], atol=1e-12)
        np.testing.assert_allclose(B.sum(0), 1, atol=1e-12)
        assert code.meta["weights"][1] == 1 and code.meta["weights"][3] == 1
        assert unbiased_expected_error(code) == pytest.approx(0, abs=1e-20)
    assert relaxed_error(p, 6) == 0.0
    # within EPS of 0 or 1 counts as 0 or 1
    np.testing.assert_allclose(optimal_row_sums([EPS / 2, 0.5, 1 - EPS / 2], 2), [2, 0, 0])


def test_edge_case_all_equal_and_single_worker() -> None:
    code = heterogeneous([0.3] * 4, 6)
    np.testing.assert_allclose(code.meta["row_sums"], [1.5] * 4, rtol=0, atol=0)
    np.testing.assert_allclose(code.toarray().sum(1), 1.5, atol=1e-12)
    one = heterogeneous([0.4], 3)
    np.testing.assert_allclose(one.toarray(), [[1, 1, 1]])
    assert relaxed_error([0.4], 3) == pytest.approx(9 * 0.4 / 0.6)
    code = heterogeneous([0.3, 0.3], 4, "chain")
    np.testing.assert_allclose(code.toarray().sum(0), 1, atol=1e-12)


def test_chain_support_is_independent_of_p() -> None:
    rng = np.random.default_rng(5)
    a = heterogeneous(rng.uniform(0.05, 0.6, 12), 20, "chain")
    b = heterogeneous(rng.uniform(0.05, 0.6, 12), 20, "chain")
    change = allocation_change(a, b)
    assert change.moved_partitions == change.new_copies == change.dropped_copies == 0
    assert change.coefficient_changes > 0
    assert a.B.nnz == 12 + 20 - 1 and a.load <= 20 // 12 + 2


def test_allocation_change_counts() -> None:
    a = heterogeneous([0.1, 0.3, 0.5], 4)
    assert allocation_change(a, a) == gc.codes.allocation_change(a, a)
    assert allocation_change(a, a).moved_partitions == 0
    b = heterogeneous([0.3, 0.3, 0.3], 4)
    sa, sb = a.toarray() != 0, b.toarray() != 0
    change = allocation_change(a, b)
    assert change.moved_partitions == int(np.sum(np.any(sa != sb, axis=0)))
    assert change.new_copies == int(np.sum(sb & ~sa))
    assert change.dropped_copies == int(np.sum(sa & ~sb))
    with pytest.raises(ValueError, match="same shape"):
        allocation_change(a, heterogeneous([0.1, 0.3], 4))


def test_bad_input_errors() -> None:
    with pytest.raises(ValueError, match=r"p\[1\]=1.5"):
        heterogeneous([0.1, 1.5], 3)
    with pytest.raises(ValueError, match=r"p\[0\]=-0.1"):
        heterogeneous([-0.1, 0.5], 3)
    with pytest.raises(ValueError, match=r"finite.*p\[1\]=nan"):
        heterogeneous([0.1, float("nan")], 3)
    with pytest.raises(ValueError, match=r"len\(p\)=2 must equal n=3"):
        heterogeneous([0.1, 0.2], 3, n=3)
    with pytest.raises(ValueError, match="one-dimensional"):
        heterogeneous([[0.1, 0.2]], 3)
    with pytest.raises(ValueError, match="at least one entry"):
        heterogeneous([], 3)
    with pytest.raises(TypeError, match="p must"):
        heterogeneous(0.3, 3)
    with pytest.raises(TypeError, match="p must hold real numbers"):
        heterogeneous(["a", "b"], 3)
    with pytest.raises(ValueError, match="k=0 must be >= 1"):
        heterogeneous([0.1, 0.2], 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        heterogeneous([0.1, 0.2], 2.5)
    with pytest.raises(ValueError, match="allocation='diagonal' must be one of"):
        heterogeneous([0.1, 0.2], 2, "diagonal")
    with pytest.raises(ValueError, match="at least one p_i must be < 1"):
        heterogeneous([1.0, 1.0], 2)
    with pytest.raises(ValueError, match="no decoding weights in code.meta.weights"):
        unbiased(gc.codes.uncoded(3), [0, 1])
    with pytest.raises(ValueError, match=r"len\(p\)=2 must equal the code's n=3"):
        gc.decode(gc.codes.uncoded(3), [0], decoder=unbiased_for([0.1, 0.2]))
    with pytest.raises(ValueError, match="len\\(p\\)=2 must equal the number of workers n=3"):
        unbiased_expected_error(heterogeneous([0.1, 0.2, 0.3], 2), [0.1, 0.2])
    with pytest.raises(ValueError, match="pass p"):
        unbiased_bias(gc.codes.uncoded(3))


def test_unbiased_for_matches_meta_weights_and_registry() -> None:
    p = [0.0, 0.25, 0.5, 1.0]
    code = heterogeneous(p, 3)
    np.testing.assert_allclose(unbiased_weights(p), [1, 4 / 3, 2, 0])
    mask = np.array([True, False, True, True])
    np.testing.assert_allclose(gc.decode(code, mask, decoder=unbiased_for(p)).weights,
                               gc.decode(code, mask, decoder="unbiased").weights)
    assert gc.decoders.DECODERS["unbiased"] is unbiased
    entry = gc.codes.CATALOGUE["heterogeneous"]
    assert entry.decoder == "unbiased"
    built = entry()
    assert built.n == 12 and built.k == 12 and "p" in built.meta


def test_large_n_is_cheap() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, 10_000)
    start = time.perf_counter()
    for allocation in ALLOCATIONS:
        code = heterogeneous(p, 10_000, allocation)
        assert code.B.nnz <= 19_999
    assert time.perf_counter() - start < 5.0
