"""Decoders: turn the responders of a round into weights a (zero on stragglers).

Every decoder is a plain callable ``decoder(code, responders) -> Decoding``; ``responders``
is a boolean mask of length n or a sequence of worker indices (in arrival order, which
only :func:`frc_group` uses). :func:`decode` accepts the callable or its name.

Identity used throughout [derived, REFERENCES.md #1]: the optimal alpha* = P_F 1 (the
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

from .code import Code
from .errors import NotDecodableError

__all__ = [
    "Decoding", "decode", "optimal", "one_step", "exact", "frc_group", "graph", "fixed",
    "DECODERS", "resolve", "responder_mask",
]

_CACHE_SIZE = 256
_DENSE_LIMIT = 400          # components up to this many rows or columns use dense lstsq
_EXACT_TOL = 1e-9           # exact decoding: error must be below this times max(k, 1)


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


def _solve_least_squares(code: Code, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k = code.n, code.k
    dtype = code.B.dtype
    weights = np.zeros(n, dtype=dtype)
    alpha = np.zeros(k, dtype=dtype)
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return weights, alpha
    BF = code.B[rows]                                  # |F| x k, CSR
    # Connected components of the bipartite responder/partition graph decouple the
    # least-squares problem: solve each block on its own.
    nf = rows.size
    adj = sp.block_array([[None, BF], [BF.T, None]], format="csr")
    ncomp, labels = csgraph.connected_components(adj, directed=False)
    row_lab, col_lab = labels[:nf], labels[nf:]
    held = np.bincount(BF.indices, minlength=k) > 0
    order_r = np.argsort(row_lab, kind="stable")
    order_c = np.argsort(col_lab, kind="stable")
    r_bounds = np.searchsorted(row_lab[order_r], np.arange(ncomp + 1))
    c_bounds = np.searchsorted(col_lab[order_c], np.arange(ncomp + 1))
    BFc = BF.tocsc()
    for comp in range(ncomp):
        r = order_r[r_bounds[comp]:r_bounds[comp + 1]]
        c = order_c[c_bounds[comp]:c_bounds[comp + 1]]
        if r.size == 0 or not np.any(held[c]):
            continue
        block = BFc[:, c][r]                           # |r| x |c|
        a = _lstsq_block(block)
        weights[rows[r]] = a
        alpha[c] = block.T @ a
    return weights, alpha


def _lstsq_block(block: sp.csr_array) -> np.ndarray:
    """min_a ||block^T a - 1|| (minimum-norm a for small blocks)."""
    A = block.T                                        # columns x rows
    ones = np.ones(A.shape[0], dtype=block.dtype)
    if max(A.shape) <= _DENSE_LIMIT or np.iscomplexobj(block.data):
        sol = sla.lstsq(A.toarray(), ones, lapack_driver="gelsd")[0]
        return sol
    A = sp.csr_array(A)
    res = lsmr(A, ones, atol=1e-15, btol=1e-15, conlim=1e15, maxiter=20 * max(A.shape))
    sol = res[0]
    # Optimality check: the residual must be orthogonal to the range of A.
    r = ones - A @ sol
    grad = A.T @ r
    scale = sp.linalg.norm(A) * max(np.linalg.norm(r), 1.0)
    if np.linalg.norm(grad) > 1e-10 * scale:
        sol = sla.lstsq(A.toarray(), ones, lapack_driver="gelsd")[0]
    return sol


def optimal(code: Code, responders: Any) -> Decoding:
    """Least-squares decoding: a* = argmin ||B_F^T a - 1|| over a supported on F.

    The problem splits over connected components of the bipartite graph between
    responders and the partitions they hold; small components are solved densely
    (LAPACK ``gelsd``), large ones with sparse LSMR and a first-order optimality check
    that falls back to a dense solve. Results are memoised per responder pattern.

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
    n / (d (n - s)) [REFERENCES.md #4]; for B = Adj/d it is n / (n - s)."""
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
        keys = [(B.indices[B.indptr[i]:B.indptr[i + 1]].tobytes(),
                 B.data[B.indptr[i]:B.indptr[i + 1]].tobytes()) for i in range(code.n)]
        lookup: dict[tuple, int] = {}
        labels = np.array([lookup.setdefault(key, len(lookup)) for key in keys])
        owner = np.full(code.k, -1)
        for i in range(code.n):
            cols = B.indices[B.indptr[i]:B.indptr[i + 1]]
            clash = (owner[cols] != -1) & (owner[cols] != labels[i])
            if np.any(clash):
                raise ValueError(
                    f"frc_group: {code.name} is not a fractional-repetition code: partition "
                    f"{int(cols[clash][0])} is held by two different groups of identical rows")
            owner[cols] = labels[i]
        return labels

    return _memo(code, ("frc_groups",), compute)


def frc_group(code: Code, responders: Any) -> Decoding:
    """ErasureHead decoding: the FIRST responder of each group gets weight 1.

    Groups are workers with identical rows (disjoint supports). Uncovered groups are
    dropped with no rescaling, so the estimate is biased: E[g_hat] = (1 - P_erase) g.
    Pass ``responders`` as indices in arrival order; a mask counts lowest index first.

    References:
        [1] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead: distributed gradient
            descent without delays using approximate gradient coding", arXiv:1901.09671, 2019.
    """
    code = _check_code("frc_group", code)
    mask, order = _responders("frc_group", code, responders)
    labels = frc_groups(code)
    _, first = np.unique(labels[order], return_index=True)
    weights = np.zeros(code.n, dtype=code.B.dtype)
    weights[order[first]] = 1.0
    return _finish(code, weights)


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


def graph(code: Code, responders: Any) -> Decoding:
    """Optimal decoding of a graph scheme in closed form, O(n + m) [Glasgow-Wootters].

    Machines are edges of a graph on the k data blocks. On each connected component of
    the surviving-edge graph: non-bipartite -> alpha = 1; bipartite with sides L, R
    (|L| >= |R|) -> alpha_R = 1 + delta, alpha_L = 1 - delta, delta = (|L|-|R|)/(|L|+|R|);
    a block with no surviving edge -> alpha = 0. Edge weights reproducing alpha are found
    on a BFS spanning forest (leaves up, one extra odd-cycle edge per non-bipartite
    component), vectorised level by level.

    References:
        [1] M. Glasgow, M. Wootters, "Approximate gradient coding with optimal decoding",
            arXiv:2006.09638, 2021.
    """
    code = _check_code("graph", code)
    mask, _ = _responders("graph", code, responders)
    u_all, v_all, c_all = _graph_edges(code)
    weights, alpha = _graph_solve(code.k, u_all, v_all, mask)
    weights = np.where(mask, weights / np.where(mask, c_all, 1.0), 0.0)
    return _finish(code, weights, alpha)


def _graph_solve(k: int, u_all: np.ndarray, v_all: np.ndarray,
                 mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eids = np.flatnonzero(mask)
    u, v = u_all[eids], v_all[eids]
    m = eids.size
    weights = np.zeros(mask.size)
    alpha = np.zeros(k)
    if m == 0:
        return weights, alpha
    root = k                                   # virtual super-root joined to one vertex per component
    adj = sp.coo_array((np.ones(2 * m), (np.r_[u, v], np.r_[v, u])), shape=(k, k)).tocsr()
    ncomp, lab = csgraph.connected_components(adj, directed=False)
    first = np.unique(lab, return_index=True)[1]
    ext = sp.block_array([[adj, sp.csr_array((np.ones(ncomp), (first, np.zeros(ncomp, int))),
                                             shape=(k, 1))],
                          [sp.csr_array((np.ones(ncomp), (np.zeros(ncomp, int), first)),
                                        shape=(1, k)), None]], format="csr")
    _, pred = csgraph.breadth_first_order(ext, root, directed=False, return_predecessors=True)
    parent = np.where(pred[:k] == root, -1, pred[:k])
    depth = _depths(parent)
    parity = depth & 1
    deg = np.bincount(np.r_[u, v], minlength=k)
    # bipartiteness: an edge joining two vertices of equal BFS parity closes an odd cycle
    same = parity[u] == parity[v]
    odd_comp = np.zeros(ncomp, dtype=bool)
    odd_comp[lab[u[same]]] = True
    size1 = np.bincount(lab, weights=parity, minlength=ncomp)
    size0 = np.bincount(lab, minlength=ncomp) - size1
    delta = np.abs(size0 - size1) / np.maximum(size0 + size1, 1)
    on_big_side = np.where(parity == 1, (size1 >= size0)[lab], (size0 >= size1)[lab])
    alpha = np.where(odd_comp[lab], 1.0,
                     np.where(on_big_side, 1.0 - delta[lab], 1.0 + delta[lab]))
    alpha[deg == 0] = 0.0
    # tree edge of each non-root vertex: look the (vertex, parent) pair up among survivors
    keys = np.minimum(u, v) * k + np.maximum(u, v)
    order = np.argsort(keys, kind="stable")
    child = np.flatnonzero(parent >= 0)
    ckeys = np.minimum(child, parent[child]) * k + np.maximum(child, parent[child])
    tree_edge = order[np.searchsorted(keys[order], ckeys)]
    # one odd (same-parity) edge per non-bipartite component carries a free weight t
    odd_edges = np.flatnonzero(same)
    odd_edge_of = np.full(ncomp, -1)
    odd_edge_of[lab[u[odd_edges]][::-1]] = odd_edges[::-1]
    has_odd = odd_edge_of >= 0
    oe = odd_edge_of[has_odd]
    levels = [np.flatnonzero(depth[child] == t) for t in range(int(depth.max()), 0, -1)]

    def sweep(t_extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Leaves-up solve; returns edge weights and each component root's residual."""
        w = np.zeros(m)
        acc = np.zeros(k)
        w[oe] = t_extra
        np.add.at(acc, u[oe], t_extra)
        np.add.at(acc, v[oe], t_extra)
        for idx in levels:
            verts = child[idx]
            val = alpha[verts] - acc[verts]
            w[tree_edge[idx]] = val
            np.add.at(acc, parent[verts], val)
        return w, alpha[first] - acc[first]

    w, r0 = sweep(np.zeros(oe.size))
    if oe.size:
        # the root residual is affine in t: solve r(t) = 0 per non-bipartite component
        _, r1 = sweep(np.ones(oe.size))
        slope = (r1 - r0)[lab[u[oe]]]
        t = -r0[lab[u[oe]]] / slope
        w, _ = sweep(t)
    weights[eids] = w
    return weights, alpha


def _depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each vertex in a forest given parent pointers (-1 for roots)."""
    depth = np.zeros(parent.size, dtype=np.int64)
    anc = parent.copy()
    while True:
        has = np.flatnonzero(anc >= 0)
        if has.size == 0:
            return depth
        depth[has] += 1
        anc[has] = parent[anc[has]]


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
        >>> gc.decode(code, [0, 1, 2], decoder=gc.decoders.fixed(np.full(4, 4 / 3))).error
        0.7777777777777779
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
"""Decoders by name. Families that bring their own decoder register it here."""


def resolve(decoder: str | Callable[[Code, Any], Decoding],
            where: str = "decode") -> Callable[[Code, Any], Decoding]:
    """Return the decoder callable for a name or a callable."""
    if callable(decoder):
        return decoder
    if isinstance(decoder, str) and decoder in DECODERS:
        return DECODERS[decoder]
    raise ValueError(f"{where}: decoder={decoder!r} is not a known decoder; valid names: "
                     f"{', '.join(sorted(DECODERS))} (or pass a callable)")


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
        >>> gc.decode(code, [0, 1, 2, 3], decoder="exact").error
        0.0
    """
    _check_code("decode", code)
    return resolve(decoder)(code, responders)
