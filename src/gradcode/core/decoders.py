"""Decoders: turn the responders of a round into weights a (zero on stragglers).

Every decoder is a plain callable ``decoder(code, responders) -> Decoding``; ``responders``
is a boolean mask of length n or a sequence of worker indices (in arrival order, which
only :func:`frc_group` uses). :func:`decode` accepts the callable or its name.

Identity used throughout [derived, docs/theory.md, T1]: the optimal alpha* = P_F 1 (the
projection of the all-ones vector onto the row space of B_F) is unique even when the
weights are not, and error_opt(F) = ||alpha* - 1||^2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.sparse.linalg import lsmr

from .cgls import cgls
from .code import Code
from .errors import NotDecodableError
from .tolerance import EXACT_TOL

__all__ = [
    "Decoding", "decode", "optimal", "one_step", "exact", "frc_group", "graph", "fixed",
    "DECODERS", "resolve", "responder_mask",
]

_CACHE_SIZE = 256
_DENSE_LIMIT = 400          # responder sets up to this many rows and columns: one dense solve
_BATCH_LIMIT = 32           # components up to this size are solved in batched stacks
_EXACT_TOL = EXACT_TOL      # exact decoding: error must be below this times max(k, 1)
_OPTIMALITY_TOL = 1e-10     # sparse solves: ||A^T r|| <= this * ||A||_F * max(||r||, 1)


@dataclass(frozen=True, eq=False)
class Decoding:
    """Result of decoding one round.

    Attributes:
        weights: length n, zero on stragglers; estimate = sum_i weights[i] f_i.
        alpha: B^T weights, length k: the coefficient each partition ends up with.
        error: squared decoding error ||alpha - 1||^2.
    """

    weights: np.ndarray
    alpha: np.ndarray
    error: float

    def __repr__(self) -> str:
        nz = int(np.count_nonzero(self.weights))
        return f"Decoding(error={self.error:.6g}, nonzero_weights={nz}, k={self.alpha.size})"


def _finish(code: Code, weights: np.ndarray, alpha: np.ndarray | None = None) -> Decoding:
    if alpha is None:
        alpha = code.B.T @ weights
    err = float(np.sum(np.abs(alpha - 1.0) ** 2))
    return Decoding(weights=weights, alpha=alpha, error=err)


# --------------------------------------------------------------------------- responders
def _check_code(where: str, code: Any) -> Code:
    if not isinstance(code, Code):
        raise TypeError(f"{where}: code must be a gradcode.Code, got {type(code).__name__}")
    return code


def _responders(where: str, code: Code, responders: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``responders``; return (bool mask of length n, indices in given order)."""
    n = code.n
    arr = np.asarray(responders)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"{where}: responders mask must have shape ({n},) to match "
                             f"n={n}, got shape {arr.shape}")
        return arr.copy(), np.flatnonzero(arr)
    if arr.size == 0:
        return np.zeros(n, dtype=bool), np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"{where}: responders must be a boolean mask of length n={n} or a "
                        f"1-d sequence of worker indices, got {arr.dtype} array of shape "
                        f"{arr.shape}")
    if arr.min() < 0 or arr.max() >= n:
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"{where}: responder index {int(bad)} must lie in [0, {n - 1}]")
    mask = np.zeros(n, dtype=bool)
    mask[arr] = True
    if mask.sum() != arr.size:
        raise ValueError(f"{where}: responder indices must be distinct, got duplicates in "
                         f"{arr.tolist()[:20]}")
    return mask, arr.astype(np.int64)


def responder_mask(code: Code, responders: Any) -> np.ndarray:
    """Validated boolean mask of length ``code.n`` for ``responders``."""
    return _responders("responder_mask", _check_code("responder_mask", code), responders)[0]


def _memo(code: Code, key: tuple, compute: Callable[[], Any]) -> Any:
    cache = code.cache()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


# --------------------------------------------------------------------------- optimal
def _optimal_alpha(code: Code, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares weights and alpha* for the responder mask (memoised per pattern)."""
    key = ("optimal", np.packbits(mask).tobytes())
    return _memo(code, key, lambda: _solve_least_squares(code, mask))


@dataclass(frozen=True)
class _Layout:
    """A code's matrix renumbered for fast sparse products (built once per code).

    ``B`` is ``code.B[workers][:, partitions]`` with 32-bit CSR indices: workers and
    partitions in reverse Cuthill-McKee order of the bipartite worker/partition graph, so
    the non-zeros of every row slice B_F, and of B_F^T, gather from nearby entries of the
    vector they multiply (rBGC n = k = 10,000: about 7% less time per CGLS iteration)."""

    B: sp.csr_array
    workers: np.ndarray          # layout row i is worker workers[i]
    partitions: np.ndarray       # layout column j is partition partitions[j]


def _layout(code: Code) -> _Layout:
    """The :class:`_Layout` of ``code`` (memoised per code)."""
    def compute() -> _Layout:
        B = code.B
        n, k = B.shape
        itype = np.int32 if B.nnz + n + k < np.iinfo(np.int32).max else np.int64
        Bt = sp.csr_array(B.T)
        # symmetric adjacency [[0, B], [B^T, 0]] straight from the two CSR structures
        adj = sp.csr_array((np.ones(2 * B.nnz),
                            np.r_[B.indices.astype(itype) + itype(n), Bt.indices.astype(itype)],
                            np.r_[B.indptr.astype(itype), Bt.indptr[1:].astype(itype) + B.nnz]),
                           shape=(n + k, n + k))
        order = csgraph.reverse_cuthill_mckee(adj, symmetric_mode=True)
        workers, partitions = order[order < n], order[order >= n] - n
        column_of = np.empty(k, dtype=itype)                 # new number of each partition
        column_of[partitions] = np.arange(k, dtype=itype)
        R = B[workers]                                       # rows in layout order
        P = sp.csr_array((R.data, column_of[R.indices], R.indptr.astype(itype)),
                         shape=R.shape)
        P.has_sorted_indices = False
        P.sort_indices()
        return _Layout(P, workers.astype(np.int64), partitions.astype(np.int64))
    return _memo(code, ("optimal_layout",), compute)


def _bipartite_graph(BF: sp.csr_array, A: sp.csr_array) -> sp.csr_array:
    """Symmetric adjacency [[0, B_F], [B_F^T, 0]] of the responder/partition graph, built
    from B_F (|F| x k) and A = B_F^T, both CSR: nodes are the |F| responders, then the k
    partitions."""
    nf, k = BF.shape
    itype = np.int32 if 2 * BF.nnz + nf + k < np.iinfo(np.int32).max else np.int64
    return sp.csr_array((np.ones(2 * BF.nnz),
                         np.r_[BF.indices.astype(itype) + itype(nf), A.indices.astype(itype)],
                         np.r_[BF.indptr.astype(itype), A.indptr[1:].astype(itype) + BF.nnz]),
                        shape=(nf + k, nf + k))


def _solve_least_squares(code: Code, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k = code.n, code.k
    dtype = code.B.dtype
    weights = np.zeros(n, dtype=dtype)
    alpha = np.zeros(k, dtype=dtype)
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return weights, alpha
    if max(rows.size, k) <= _DENSE_LIMIT:
        # small: one dense minimum-norm solve beats splitting into components
        BF = code.B[rows]
        a = _lstsq_block(BF)
        weights[rows] = a
        alpha[:] = BF.T @ a
        return weights, alpha
    lay = _layout(code)
    # rows of B_F in layout order; ``rows`` holds their worker indices, and columns are
    # partitions in layout order (alpha is mapped back at the end)
    rows_l = np.flatnonzero(mask[lay.workers])
    rows = lay.workers[rows_l]
    BF = lay.B[rows_l]                                 # |F| x k, CSR
    # Connected components of the bipartite responder/partition graph decouple the
    # least-squares problem: solve each block on its own.
    nf = rows.size
    A = sp.csr_array(BF.T)                             # k x |F|: B_F^T, CSR
    BFc = A.T                                          # B_F as CSC (no copy)
    held = np.diff(A.indptr) > 0
    graph = _bipartite_graph(BF, A)
    n_held = int(np.count_nonzero(held))
    if max(nf, n_held) > _DENSE_LIMIT and csgraph.breadth_first_order(
            graph, 0, directed=True, return_predecessors=False).size == nf + n_held:
        # one search from a responder reaches every responder and every held partition:
        # the whole pattern is one large block (the common case for random codes), so no
        # labelling is needed; unheld partitions are zero rows of A
        weights[rows] = _lstsq_block(BF, A)
        alpha[lay.partitions] = A @ weights[rows]
        return weights, alpha
    # components: the responder -> partition half of the edges with weak connectivity
    # (SciPy adds the reverse edges itself; faster than any mode on the symmetric graph)
    half = sp.csr_array((graph.data[:BF.nnz], graph.indices[:BF.nnz],
                         np.r_[graph.indptr[:nf + 1],
                               np.full(k, BF.nnz, dtype=graph.indptr.dtype)]),
                        shape=graph.shape)
    ncomp, labels = csgraph.connected_components(half, directed=True, connection="weak")
    row_lab, col_lab = labels[:nf], labels[nf:]
    order_r = np.argsort(row_lab, kind="stable")
    order_c = np.argsort(col_lab, kind="stable")
    r_bounds = np.searchsorted(row_lab[order_r], np.arange(ncomp + 1))
    c_bounds = np.searchsorted(col_lab[order_c], np.arange(ncomp + 1))
    r_size, c_size = np.diff(r_bounds), np.diff(c_bounds)
    useful = (r_size > 0) & (np.bincount(col_lab, weights=held, minlength=ncomp) > 0)
    size = np.maximum(r_size, c_size)
    small = useful & (size <= _BATCH_LIMIT)
    if np.any(small):
        # many small components (FRC groups, sparse graphs): batched pseudo-inverses,
        # one stack per power-of-two size bucket, instead of a Python loop
        local_r = np.empty(nf, dtype=np.int64)
        local_r[order_r] = np.arange(nf) - r_bounds[row_lab[order_r]]
        local_c = np.empty(k, dtype=np.int64)
        local_c[order_c] = np.arange(k) - c_bounds[col_lab[order_c]]
        coo = BF.tocoo()
        nz_comp = row_lab[coo.row]
        bucket = np.ceil(np.log2(np.maximum(size, 1))).astype(np.int64)
        for b in np.unique(bucket[small]):
            comps = np.flatnonzero(small & (bucket == b))
            slot = np.full(ncomp, -1)
            slot[comps] = np.arange(comps.size)
            width = int(2 ** b)
            stack = np.zeros((comps.size, width, width), dtype=dtype)   # [comp, col, row]
            sel = slot[nz_comp] >= 0
            stack[slot[nz_comp[sel]], local_c[coo.col[sel]], local_r[coo.row[sel]]] = \
                coo.data[sel]
            a = np.linalg.pinv(stack) @ np.ones(width, dtype=dtype)          # [comp, row]
            in_r = slot[row_lab] >= 0
            weights[rows[in_r]] = a[slot[row_lab[in_r]], local_r[in_r]]
    large = np.flatnonzero(useful & ~small)
    for comp in large:
        r = order_r[r_bounds[comp]:r_bounds[comp + 1]]
        c = order_c[c_bounds[comp]:c_bounds[comp + 1]]
        if large.size == 1:
            if r.size == nf:
                # every responder in one block: the partitions outside it are held by no
                # responder (zero rows of A), so the whole pattern is that block
                weights[rows] = _lstsq_block(BF, A)
            else:
                weights[rows[r]] = _lstsq_block(BFc[:, c][r])     # |r| x |c|
            continue
        # several large blocks: a block whose responders did not change since an earlier
        # round (its columns follow from its rows) is not solved again
        weights[rows[r]] = _memo(code, ("optimal_block", rows[r].tobytes()),
                                 lambda c=c, r=r: _lstsq_block(BFc[:, c][r]))
    alpha[lay.partitions] = A @ weights[rows]
    return weights, alpha


def _lstsq_block(block: sp.csr_array, blockT: sp.csr_array | None = None) -> np.ndarray:
    """min_a ||block^T a - 1|| (minimum-norm a for small blocks); ``blockT``, when given,
    is block^T in CSR (saves one conversion)."""
    ones = np.ones(block.shape[1], dtype=block.dtype)
    # singular values below max(shape) * eps * sigma_max are rounding, not rank (LAPACK's
    # default cutoff, eps * sigma_max, can keep one and return weights ~1e14)
    cond = max(block.shape) * np.finfo(np.float64).eps
    if max(block.shape) <= _DENSE_LIMIT or np.iscomplexobj(block.data):
        return sla.lstsq(block.T.toarray(), ones, cond=cond, lapack_driver="gelsd")[0]
    A = sp.csr_array(block.T) if blockT is None else blockT          # columns x rows
    At = sp.csr_array(block)
    scale = float(np.sqrt(np.dot(A.data, A.data)))                   # ||A||_F, real A

    def optimal_enough(x: np.ndarray) -> bool:
        # first-order optimality: the residual must be orthogonal to the range of A
        r = ones - A @ x
        return bool(np.linalg.norm(At @ r) <= _OPTIMALITY_TOL * scale
                    * max(np.linalg.norm(r), 1.0))

    # CGLS (cheap iterations), then LSMR, then a dense minimum-norm lstsq, each only when
    # the previous one is not optimal enough on the true residual
    maxiter = 20 * max(A.shape)
    sol, converged, _ = cgls(A, At, ones, _OPTIMALITY_TOL, scale, maxiter)
    if optimal_enough(sol):
        return sol
    if converged:
        # CGLS stops on its recursively updated residual, which can drift from the true
        # one by about the tolerance: restart once from sol on the true residual (the
        # correction solve sees the same residual, so the same stopping test) before
        # switching method
        sol = sol + cgls(A, At, ones - A @ sol, _OPTIMALITY_TOL, scale, maxiter)[0]
        if optimal_enough(sol):
            return sol
    sol = lsmr(A, ones, atol=1e-15, btol=1e-15, conlim=1e15, maxiter=20 * max(A.shape))[0]
    if not optimal_enough(sol):
        sol = sla.lstsq(A.toarray(), ones, cond=cond, lapack_driver="gelsd")[0]
    return sol


def optimal(code: Code, responders: Any) -> Decoding:
    """Least-squares decoding: a* = argmin ||B_F^T a - 1|| over a supported on F.

    The problem splits over connected components of the bipartite graph between
    responders and the partitions they hold (one breadth-first search settles the usual
    one-block case); small components are solved densely (LAPACK ``gelsd``), large ones
    with CGLS (conjugate gradients on the normal equations) stopped by the first-order
    optimality test ||B_F r|| <= 1e-10 ||B_F||_F max(||r||, 1), r = 1 - B_F^T a, then
    re-checked on the true residual (one CGLS restart on the true residual, then LSMR and
    a dense solve are the fallbacks). The products run on a copy of B renumbered once per
    code (reverse Cuthill-McKee order, 32-bit indices) [docs/theory.md, T2].
    Guarantee: with g = B_F r the checked gradient and sigma the smallest non-zero
    singular value of the block, the least-squares alpha* obeys
    ||alpha - alpha*||_2 <= ||g|| / sigma <= 1e-10 ||B_F||_F max(||r||, 1) / sigma (since
    B_F B_F^T (a* - a) = g); in practice alpha agrees with a dense least-squares solve to
    about 1e-8 (rBGC n = k = 10,000: 6e-9; the tests demand 1e-7 and check the bound).
    Results are memoised per responder pattern, and, when a pattern has several large
    blocks, per block, so a block whose responders did not change since an earlier round
    is not solved again.

    Args:
        code: the code.
        responders: boolean mask (n,) or worker indices.

    Returns:
        The :class:`Decoding`; its ``error`` equals k - 1^T alpha* for real codes.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.fractional_repetition(n=6, s=2)
        >>> round(gc.decoders.optimal(code, [0, 3]).error, 12)
        0.0
    """
    code = _check_code("optimal", code)
    mask, _ = _responders("optimal", code, responders)
    weights, alpha = _optimal_alpha(code, mask)
    return _finish(code, weights.copy(), alpha.copy())


def exact(code: Code, responders: Any) -> Decoding:
    """Exact decoding: weights with B_F^T a = 1, or :class:`NotDecodableError`.

    Solves the least-squares problem and accepts it when ||alpha - 1||^2 <= 1e-9 k.

    Raises:
        NotDecodableError: the responders do not span the all-ones vector; the message
            says how many responded and how many stragglers the code tolerates.
    """
    code = _check_code("exact", code)
    mask, _ = _responders("exact", code, responders)
    weights, alpha = _optimal_alpha(code, mask)
    dec = _finish(code, weights.copy(), alpha.copy())
    if dec.error > _EXACT_TOL * max(code.k, 1):
        responded = int(mask.sum())
        raise NotDecodableError(
            f"exact: {responded} of {code.n} workers responded ({code.n - responded} "
            f"stragglers) but {code.name} tolerates {code.tolerates} stragglers "
            f"(needs at least {code.n - code.tolerates} responders); the best "
            f"approximation leaves error {dec.error:.3g}")
    return dec


# --------------------------------------------------------------------------- one-step
def one_step_constant(code: Code, stragglers: int) -> complex | float:
    """The constant c with E[alpha] = 1 under a uniformly random responder set of size
    n - s: c = n k / ((n - s) sum_ij B_ij). For a 0/1 code with replication d this is
    n / (d (n - s)) [docs/theory.md, T5]; for B = Adj/d it is n / (n - s)."""
    total = code.B.sum()
    responders = code.n - stragglers
    if responders <= 0 or total == 0:
        return 0.0
    c = code.n * code.k / (responders * total)
    return complex(c) if np.iscomplexobj(c) else float(c)


def one_step(code: Code, responders: Any) -> Decoding:
    """One-step (constant) decoding: a_i = c on every responder.

    c = n k / ((n - s) sum B) makes E[alpha] = 1 under uniformly random stragglers
    (the constant n / (d (n - s)) of Charles et al. 2017 for d-replicated 0/1 codes).

    References:
        [1] Z. Charles, D. Papailiopoulos, J. Ellenberg, "Approximate gradient coding via
            sparse random graphs", arXiv:1711.06771, 2017.
    """
    code = _check_code("one_step", code)
    mask, _ = _responders("one_step", code, responders)
    c = one_step_constant(code, code.n - int(mask.sum()))
    weights = np.where(mask, c, 0).astype(code.B.dtype)
    return _finish(code, weights)


# --------------------------------------------------------------------------- FRC groups
def frc_groups(code: Code) -> np.ndarray:
    """Group label of each worker for a fractional-repetition-shaped code.

    Workers with identical rows form a group; distinct groups must hold disjoint
    partitions. Raises ``ValueError`` for other codes.
    """
    def compute() -> np.ndarray:
        B = code.B
        n, width = code.n, max(code.load, 1)
        lengths = np.diff(B.indptr)
        # row i as a fixed-width key: its length, column indices and coefficients (padded)
        slot = np.arange(B.nnz) - np.repeat(B.indptr[:-1], lengths)
        rows = np.repeat(np.arange(n), lengths)
        cols = np.full((n, width), -1, dtype=np.int64)
        cols[rows, slot] = B.indices
        vals = np.zeros((n, width), dtype=B.dtype)
        vals[rows, slot] = B.data
        key = np.hstack([lengths[:, None], cols,
                         np.ascontiguousarray(vals).view(np.int64).reshape(n, -1)])
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        # number the groups by first appearance (worker order), as a dict lookup would
        labels = np.argsort(np.argsort(first, kind="stable"), kind="stable")[inverse.ravel()]
        # distinct groups must hold disjoint partitions: one group label per column
        low = np.full(code.k, n, dtype=np.int64)
        high = np.full(code.k, -1, dtype=np.int64)
        np.minimum.at(low, B.indices, labels[rows])
        np.maximum.at(high, B.indices, labels[rows])
        clash = np.flatnonzero((high >= 0) & (low != high))
        if clash.size:
            raise ValueError(
                f"frc_group: {code.name} is not a fractional-repetition code: partition "
                f"{int(clash[0])} is held by two different groups of identical rows")
        return labels

    return _memo(code, ("frc_groups",), compute)


def frc_group(code: Code, responders: Any) -> Decoding:
    """ErasureHead decoding: the FIRST responder of each group gets weight 1 (1/c for a
    row whose coefficients all equal c).

    Groups are workers with identical rows (disjoint supports). The first responder of a
    group gets the weight w = sum_j conj(c_j) / sum_j |c_j|^2 of its row's coefficients c,
    the least-squares scalar that brings its partitions' alpha closest to 1 (exactly 1
    when the row's coefficients are equal: w = 1 for 0/1 codes). Uncovered groups are
    dropped with no rescaling, so the estimate is biased: E[g_hat] = (1 - P_erase) g.
    Pass ``responders`` as indices in arrival order; a mask counts lowest index first.

    References:
        [1] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead: distributed gradient
            descent without delays using approximate gradient coding", arXiv:1901.09671, 2019.
    """
    code = _check_code("frc_group", code)
    mask, order = _responders("frc_group", code, responders)
    perm, starts = _frc_layout(code)
    n = code.n
    rank = np.full(n, n, dtype=np.int64)          # arrival rank; n = did not respond
    rank[order] = np.arange(order.size)
    first_rank = np.minimum.reduceat(rank[perm], starts)
    first_rank = first_rank[first_rank < n]
    weights = np.zeros(n, dtype=code.B.dtype)
    chosen = order[first_rank]
    weights[chosen] = _frc_row_weights(code)[chosen]
    return _finish(code, weights)


def _frc_row_weights(code: Code) -> np.ndarray:
    """Per row, sum_j conj(c_j) / sum_j |c_j|^2 over its coefficients c (cached; 0 for an
    empty row)."""
    def compute() -> np.ndarray:
        B = code.B
        total = np.asarray(B.sum(axis=1)).ravel()
        squares = np.asarray(abs(B).power(2).sum(axis=1)).ravel()
        safe = np.where(squares > 0, squares, 1.0)
        return np.where(squares > 0, np.conj(total) / safe, 0.0).astype(B.dtype)

    return _memo(code, ("frc_row_weights",), compute)


def _frc_layout(code: Code) -> tuple[np.ndarray, np.ndarray]:
    """Workers sorted by FRC group, and where each group starts in that order (cached)."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        labels = frc_groups(code)
        perm = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[perm]) != 0])
        return perm, starts

    return _memo(code, ("frc_layout",), compute)


# --------------------------------------------------------------------------- graph
def _graph_edges(code: Code) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, c): worker e holds partitions u[e] != v[e] with the same coefficient c[e]."""
    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B = code.B
        support = np.diff(B.indptr)
        if code.is_complex or np.any(support != 2):
            raise ValueError(f"graph: {code.name} is not a graph scheme: every row must hold "
                             f"exactly two partitions (row supports found: "
                             f"{sorted(set(support.tolist()))[:5]})")
        data = B.data.reshape(-1, 2)
        if not np.allclose(data[:, 0], data[:, 1], rtol=1e-12, atol=0):
            raise ValueError(f"graph: {code.name} is not a graph scheme: the two coefficients "
                             f"of each row must be equal")
        idx = B.indices.reshape(-1, 2)
        return idx[:, 0].copy(), idx[:, 1].copy(), data[:, 0].copy()

    return _memo(code, ("graph_edges",), compute)


def _graph_structure(code: Code) -> dict[str, Any]:
    """Cached CSR adjacency of the full graph: data = edge id, rows sorted, plus keys."""
    def compute() -> dict[str, Any]:
        u, v, c = _graph_edges(code)
        k, m = code.k, u.size
        # both directions of every edge, sorted by (row, column); parallel edges (two
        # workers holding the same pair) stay separate entries
        rows = np.r_[u, v].astype(np.int64)
        cols = np.r_[v, u].astype(np.int64)
        keys = rows * k + cols
        order = np.argsort(keys, kind="stable")
        indptr = np.searchsorted(rows[order], np.arange(k + 1)).astype(np.int64)
        # int32 copies halve the bytes every round's masking moves
        return {"u": u, "v": v, "c": c, "indptr": indptr,
                "indices": cols[order].astype(np.int32), "rows": rows[order].astype(np.int32),
                "eid": np.r_[np.arange(m), np.arange(m)][order].astype(np.int32),
                "ones": np.ones(2 * m + k),
                "parallel": bool(np.any(np.diff(keys[order]) == 0)),
                "unit": bool(np.all(c == 1.0))}

    return _memo(code, ("graph_structure",), compute)


def graph(code: Code, responders: Any) -> Decoding:
    """Optimal decoding of a graph scheme in closed form, O(n + m) [Glasgow-Wootters;
    docs/theory.md, T15-T16].

    Machines are edges of a graph on the k data blocks. On each connected component of
    the surviving-edge graph: non-bipartite -> alpha = 1; bipartite with sides L, R
    (|L| >= |R|) -> alpha_R = 1 + delta, alpha_L = 1 - delta, delta = (|L|-|R|)/(|L|+|R|);
    a block with no surviving edge -> alpha = 0. Edge weights reproducing alpha are found
    on a BFS spanning forest (leaves up, level by level), with one extra odd-cycle edge per
    non-bipartite component whose weight is fixed in closed form beforehand.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.graph_scheme(k=8, d=3, seed=1)
        >>> abs(gc.decode(code, list(range(10)), decoder="graph").error
        ...     - gc.decode(code, list(range(10)), decoder="optimal").error) < 1e-9
        True

    References:
        [1] M. Glasgow, M. Wootters, "Approximate gradient coding with optimal decoding",
            arXiv:2006.09638, 2021.
    """
    code = _check_code("graph", code)
    mask, _ = _responders("graph", code, responders)
    st = _graph_structure(code)
    weights, alpha = _graph_solve(code.k, st, mask)
    if not st["unit"]:
        weights[mask] /= st["c"][mask]
    return _finish(code, weights, alpha)


def _graph_forest(k: int, ext_indices: np.ndarray, ext_indptr: np.ndarray,
                  ones: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Components and BFS spanning forest of the surviving graph (rows 0..k-1 of the
    buffers; row k is the super-root): (count, label per vertex, BFS order from the
    super-root, predecessors). Every component is rooted at its largest vertex.

    One BFS from vertex k - 1 (the largest vertex, so the root of its component), or from
    the super-root pointing at k - 1 and at the isolated vertices, usually reaches
    everything; otherwise the unreached vertices form closed components that are
    labelled on their own small subgraph, and only then one more BFS from the super-root,
    pointing at each component's largest vertex, spans the forest. Within a component the
    BFS tree and the order of its vertices do not depend on the other components.
    """
    nnz = int(ext_indptr[k])
    isolated = np.flatnonzero(ext_indptr[1:k + 1] == ext_indptr[:k])
    if isolated.size and isolated[-1] != k - 1:
        # vertices without surviving edges are components of their own: the super-root
        # points at them and at k - 1, and one BFS usually spans everything
        ext_indices[nnz:nnz + isolated.size + 1] = np.r_[k - 1, isolated]
        ext_indptr[k + 1] = nnz + isolated.size + 1
        ext = sp.csr_array((ones[:nnz + isolated.size + 1],
                            ext_indices[:nnz + isolated.size + 1], ext_indptr),
                           shape=(k + 1, k + 1))
        order, pred = csgraph.breadth_first_order(ext, k, directed=True,
                                                  return_predecessors=True)
        if order.size == k + 1:
            lab = np.zeros(k, dtype=np.int64)
            lab[isolated] = np.arange(1, isolated.size + 1)
            return isolated.size + 1, lab, order, pred
    ext_indptr[k + 1] = nnz
    graph_ = sp.csr_array((ones[:nnz], ext_indices[:nnz], ext_indptr), shape=(k + 1, k + 1))
    order, pred = csgraph.breadth_first_order(graph_, k - 1, directed=True,
                                              return_predecessors=True)
    if order.size == k:
        pred[k - 1] = k
        return 1, np.zeros(k, dtype=np.int64), np.r_[k, order], pred
    reached = np.zeros(k, dtype=bool)
    reached[order] = True
    rest = np.flatnonzero(~reached)
    # the rows of unreached vertices hold only unreached vertices (components are closed)
    local = np.empty(k, dtype=np.int64)
    local[rest] = np.arange(rest.size)
    starts = ext_indptr[rest].astype(np.int64)
    counts = ext_indptr[rest + 1] - starts
    sub_indptr = np.zeros(rest.size + 1, dtype=np.int64)
    np.cumsum(counts, out=sub_indptr[1:])
    entries = np.repeat(starts - sub_indptr[:-1], counts) + np.arange(sub_indptr[-1])
    sub = sp.csr_array((ones[:entries.size], local[ext_indices[entries]], sub_indptr),
                       shape=(rest.size, rest.size))
    nsub, sub_lab = csgraph.connected_components(sub, directed=True, connection="strong")
    ncomp = nsub + 1
    first = np.full(ncomp, -1, dtype=np.int64)       # largest vertex of each component
    first[0] = k - 1
    np.maximum.at(first, sub_lab + 1, rest)
    lab = np.zeros(k, dtype=np.int64)
    lab[rest] = sub_lab + 1
    ext_indices[nnz:nnz + ncomp] = first
    ext_indptr[k + 1] = nnz + ncomp
    ext = sp.csr_array((ones[:nnz + ncomp], ext_indices[:nnz + ncomp], ext_indptr),
                       shape=(k + 1, k + 1))
    order, pred = csgraph.breadth_first_order(ext, k, directed=True, return_predecessors=True)
    return ncomp, lab, order, pred


def _graph_solve(k: int, st: dict[str, Any], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal weights and alpha of a graph code for the surviving edges ``mask``, by
    phase: the surviving adjacency, a BFS forest with its levels, the closed-form alpha
    per component (docs/theory.md, T15), and the edge weights that realise it (T16)."""
    n = mask.size
    sel = np.flatnonzero(mask[st["eid"]])      # surviving adjacency entries, row-sorted
    if sel.size == 0:
        return np.zeros(n), np.zeros(k)
    adj = _surviving_adjacency(k, st, sel)
    forest = _bfs_levels(k, adj, st)
    eids = np.flatnonzero(mask)
    u, v = st["u"][eids], st["v"][eids]
    alpha, same, parity = _component_alpha(forest, adj["deg"], u, v)
    weights = _graph_weights(n, k, st, adj, forest, alpha, same, parity, eids, u, v)
    return weights, alpha


def _surviving_adjacency(k: int, st: dict[str, Any], sel: np.ndarray) -> dict[str, Any]:
    """The adjacency of the surviving edges (CSR over the k vertices), and a de-duplicated
    copy for the traversal when the graph has parallel edges."""
    indptr = np.searchsorted(sel, st["indptr"])
    indices = st["indices"][sel]
    row_of = st["rows"][sel]
    if st["parallel"]:
        # parallel edges: csgraph's strong-components routine does not terminate on
        # duplicate CSR entries, so the traversal uses a de-duplicated copy
        keys = row_of.astype(np.int64) * k + indices
        uniq = np.r_[True, keys[1:] != keys[:-1]]
        g_indices = indices[uniq]
        g_indptr = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_of[uniq], minlength=k), out=g_indptr[1:])
    else:
        g_indices, g_indptr = indices, indptr
    return {"indices": indices, "eid": st["eid"][sel], "deg": np.diff(indptr),
            "row_of": row_of, "g_indices": g_indices, "g_indptr": g_indptr}


def _bfs_levels(k: int, adj: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
    """A BFS forest of the surviving graph: components, order, parents, BFS positions,
    level boundaries and depths."""
    g_indices, g_indptr = adj["g_indices"], adj["g_indptr"]
    nnz = g_indices.size
    # one buffer for the graph plus a super-root row k (pointing at one vertex per
    # component when there are several, so that one BFS spans the forest)
    ext_indices = np.empty(nnz + k, dtype=np.int32)
    ext_indices[:nnz] = g_indices
    ext_indptr = np.empty(k + 2, dtype=np.int32)
    ext_indptr[:k + 1] = g_indptr
    ext_indptr[k + 1] = nnz
    ncomp, lab, order, pred = _graph_forest(k, ext_indices, ext_indptr, st["ones"])
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
    depth[order] = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    return {"ncomp": ncomp, "lab": lab, "order": order, "pred": pred, "pos": pos,
            "ppos": ppos, "bounds": bounds, "depth": depth[:k]}


def _component_alpha(forest: dict[str, Any], deg: np.ndarray, u: np.ndarray,
                     v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form alpha per component: 1 on a component with an odd cycle, 1 -/+ delta
    on the larger/smaller side of a bipartite one, 0 on isolated vertices. Also returns
    which surviving edges join equal BFS parities (odd cycles) and the parities."""
    ncomp, lab = forest["ncomp"], forest["lab"]
    parity = forest["depth"] & 1
    same = parity[u] == parity[v]              # joins equal BFS parities: an odd cycle
    isolated = deg == 0
    n_isolated = int(np.count_nonzero(isolated))
    if ncomp == 1 + n_isolated and not isolated[-1]:
        # the common case: one component (rooted at k - 1) and isolated vertices, whose
        # alpha is 0; the same arithmetic as below without the per-component gathers
        if same.any():
            alpha = np.ones(parity.size)
        else:
            size1 = float(np.count_nonzero(parity & ~isolated))
            size0 = float(parity.size - n_isolated) - size1
            delta = abs(size0 - size1) / max(size0 + size1, 1.0)
            big = np.where(parity == 1, size1 >= size0, size0 >= size1)
            alpha = np.where(big, 1.0 - delta, 1.0 + delta)
        alpha[isolated] = 0.0
        return alpha, same, parity
    odd_comp = np.zeros(ncomp, dtype=bool)
    odd_comp[lab[u[same]]] = True
    size1 = np.bincount(lab, weights=parity, minlength=ncomp)
    size0 = np.bincount(lab, minlength=ncomp) - size1
    delta = np.abs(size0 - size1) / np.maximum(size0 + size1, 1)
    on_big_side = np.where(parity == 1, (size1 >= size0)[lab], (size0 >= size1)[lab])
    alpha = np.where(odd_comp[lab], 1.0,
                     np.where(on_big_side, 1.0 - delta[lab], 1.0 + delta[lab]))
    alpha[deg == 0] = 0.0
    return alpha, same, parity


def _graph_weights(n: int, k: int, st: dict[str, Any], adj: dict[str, Any],
                   forest: dict[str, Any], alpha: np.ndarray, same: np.ndarray,
                   parity: np.ndarray, eids: np.ndarray, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """Edge weights that realise ``alpha``: one odd-cycle edge per non-bipartite component
    absorbs the root residual, then a leaves-up sweep over the BFS levels."""
    lab, order, pos, ppos = forest["lab"], forest["order"], forest["pos"], forest["ppos"]
    bounds, depth, pred = forest["bounds"], forest["depth"], forest["pred"]
    # The root residual of a leaves-up solve is sum_v sign_v (alpha_v - extra_v) with
    # sign = (-1)^depth; an extra weight t on one odd edge (both ends of sign sigma)
    # changes it by -2 sigma t, so t = r0 / (2 sigma) makes it vanish.
    sign = 1.0 - 2.0 * parity
    r0 = np.bincount(lab, weights=sign * alpha, minlength=forest["ncomp"])
    odd_edges = np.flatnonzero(same)
    odd_edge_of = np.full(forest["ncomp"], -1)
    odd_edge_of[lab[u[odd_edges]][::-1]] = odd_edges[::-1]
    oe = odd_edge_of[odd_edge_of >= 0]
    t = r0[lab[u[oe]]] / (2.0 * sign[u[oe]])
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
    weights = np.zeros(n)
    row_of, indices = adj["row_of"], adj["indices"]
    parent_of = np.where(depth >= 2, pred[:k], -1)
    hit = np.flatnonzero(indices == parent_of[row_of])
    if hit.size:
        hit_row = row_of[hit]
        if st["parallel"]:
            hit = hit[np.r_[True, hit_row[1:] != hit_row[:-1]]]
            hit_row = row_of[hit]
        weights[adj["eid"][hit]] = wpos[pos[hit_row]]
    weights[eids[oe]] += t
    return weights


# --------------------------------------------------------------------------- fixed
def fixed(weights: Any) -> Callable[[Code, Any], Decoding]:
    """A decoder that uses the given weights on responders and zero on stragglers.

    Args:
        weights: length-n real or complex vector, chosen before the round (e.g. the
            unbiased weights 1 / (1 - p_i) for independent straggling).

    Returns:
        A decoder ``(code, responders) -> Decoding``; it raises ``ValueError`` when the
        code's n differs from ``len(weights)``.

    Example:
        >>> import numpy as np, gradcode as gc
        >>> code = gc.codes.uncoded(4)
        >>> dec = gc.decode(code, [0, 1, 2], decoder=gc.decoders.fixed(np.full(4, 4 / 3)))
        >>> round(dec.error, 12)   # 3 (1/3)^2 for the responders + 1 for the lost partition
        1.333333333333
    """
    w = np.asarray(weights)
    if w.ndim != 1 or w.size == 0 or w.dtype.kind not in "biufc":
        raise TypeError(f"fixed: weights must be a non-empty 1-d numeric vector, got "
                        f"{w.dtype} array of shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("fixed: weights must be finite, got "
                         f"{w[~np.isfinite(w)][:3].tolist()}")
    w = w.astype(np.complex128 if w.dtype.kind == "c" else np.float64)

    def fixed_decoder(code: Code, responders: Any) -> Decoding:
        code = _check_code("fixed", code)
        if code.n != w.size:
            raise ValueError(f"fixed: len(weights)={w.size} must equal the code's n={code.n}")
        mask, _ = _responders("fixed", code, responders)
        dtype = np.result_type(w.dtype, code.B.dtype)
        return _finish(code, np.where(mask, w, 0).astype(dtype))

    fixed_decoder.__name__ = "fixed"
    return fixed_decoder


# --------------------------------------------------------------------------- registry
DECODERS: dict[str, Callable[[Code, Any], Decoding]] = {
    "optimal": optimal,
    "one_step": one_step,
    "exact": exact,
    "frc_group": frc_group,
    "graph": graph,
}
"""The core decoders by name. The full registry, with the decoders that code families
bring (``bibd``, ``product``, ``unbiased``), is :data:`gradcode.codes.catalogue.DECODERS`."""


def resolve(decoder: str | Callable[[Code, Any], Decoding], where: str = "decode",
            registry: dict[str, Callable[[Code, Any], Decoding]] | None = None,
            ) -> Callable[[Code, Any], Decoding]:
    """Return the decoder callable for a name (looked up in ``registry``, by default the
    core :data:`DECODERS`) or a callable (returned as is)."""
    names = DECODERS if registry is None else registry
    if callable(decoder):
        return decoder
    if isinstance(decoder, str) and decoder in names:
        return names[decoder]
    raise ValueError(f"{where}: decoder={decoder!r} is not a known decoder; valid names: "
                     f"{', '.join(sorted(names))} (or pass a callable)")


def decode(code: Code, responders: Sequence[int] | np.ndarray,
           decoder: str | Callable[[Code, Any], Decoding] = "optimal") -> Decoding:
    """Decode one round: weights on the responders, alpha = B^T weights, and the error.

    Args:
        code: a :class:`gradcode.Code`.
        responders: boolean mask of length n, or worker indices (arrival order).
        decoder: a name from ``DECODERS`` or a callable ``(code, responders) -> Decoding``.

    Returns:
        :class:`Decoding` with ``weights``, ``alpha`` and ``error`` = ||alpha - 1||^2.

    Raises:
        ValueError: unknown decoder name or malformed responders.
        NotDecodableError: ``decoder="exact"`` with too many stragglers.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.fractional_repetition(n=6, s=2)
        >>> round(gc.decode(code, [0, 1, 2, 3], decoder="exact").error, 12)
        0.0
    """
    _check_code("decode", code)
    return resolve(decoder)(code, responders)
