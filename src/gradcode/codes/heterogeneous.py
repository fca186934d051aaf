"""Heterogeneous stragglers: the optimal unbiased approximate code for known p_i [1].

Worker i straggles independently with probability p_i. The code is an n x k matrix
alpha (``Code.B``); worker i returns f_i = sum_j alpha[i, j] g_j and the master uses the
fixed weights w_i = 1 / (1 - p_i) on whoever responded:

    g_hat = sum_{i responded} w_i f_i,    E[g_hat] = sum_j (sum_i alpha[i, j]) g_j = g

when every column of alpha sums to 1 (the estimate is unbiased). With delta_i = p_i / (1 - p_i)
its residual is [derived, docs/theory.md, T24]

    E||g_hat - g||^2 = sum_i delta_i ||sum_j alpha[i, j] g_j||^2.

The paper minimises the relaxation sum_i delta_i Y_i^2 (Y_i = sum_j alpha[i, j], the row
sums; exact when all partial gradients are equal) subject to the column sums being 1.
Its optimum is Y_i = k (1 / delta_i) / sum_l (1 / delta_l) with value k^2 / sum_l (1 / delta_l),
and every alpha with these row and column sums attains it, so the data allocation is free:
this module offers three (see :func:`heterogeneous`), the default one non-negative, which
also makes sum_i delta_i Y_i^2 max_j ||g_j||^2 an upper bound on the true residual for any
gradients [derived, docs/theory.md, T25-T26].

Decoder ``"unbiased"`` (:func:`unbiased`) applies the weights stored in ``code.meta``
(a :class:`HeterogeneousMeta`);
:func:`unbiased_expected_error` and :func:`unbiased_bias` give its exact expected squared
error ||alpha_hat - 1||^2 (docs/theory.md, T7) and its bias under any true p.

References:
    [1] H. Song, W. Choi, "Approximate Gradient Coding for Distributed Learning with
        Heterogeneous Stragglers", arXiv:2510.22539, 2025.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.code import Code, CodeMeta
from ..core.decoders import Decoding, _check_code, _finish, _responders
from ..core.fixed_weights import fixed_weights_expected_error
from ..core.validate import check_entries, check_int
from ._common import csr_from_coords

__all__ = [
    "EPS", "ALLOCATIONS", "HeterogeneousMeta", "heterogeneous", "optimal_row_sums", "relaxed_error",
    "relaxed_objective", "unbiased_weights", "unbiased", "unbiased_for",
    "unbiased_expected_error", "unbiased_bias", "AllocationChange", "allocation_change",
    "moved_partitions", "check_p",
]

EPS = 1e-9
"""Straggling probabilities within EPS of 0 are treated as exactly 0 (the worker never
fails), within EPS of 1 as exactly 1 (it always fails). This is the clip of p into
[EPS, 1 - EPS] that the closed form needs (delta_i = p_i / (1 - p_i) must be positive
and finite), made explicit: clipping 0 to EPS would give every other worker a share of
order EPS, i.e. n - 1 useless non-zeros, where the limit EPS -> 0 gives them nothing."""

ALLOCATIONS = ("northwest", "chain", "shared")
"""The data allocations :func:`heterogeneous` can build (all attain the same optimum)."""

_SNAP = 1e-12       # cumulative row sums this close to an integer are snapped onto it


# --------------------------------------------------------------------------- validation
def check_p(where: str, p: Any, n: int | None = None, *, name: str = "p") -> np.ndarray:
    """Validate a vector of straggling probabilities and return it as float64.

    Raises:
        TypeError: ``p`` is not a 1-d vector of real numbers.
        ValueError: ``p`` is empty, has the wrong length (when ``n`` is given), contains
            NaN or infinity, or has an entry outside [0, 1].
    """
    if isinstance(p, (str, bytes, numbers.Number)):
        raise TypeError(f"{where}: {name} must be a 1-d sequence of probabilities, got "
                        f"{type(p).__name__} {p!r}")
    try:
        arr = np.asarray(p)
    except (TypeError, ValueError):  # ragged or exotic input
        raise TypeError(f"{where}: {name} must be a 1-d sequence of probabilities, got "
                        f"{type(p).__name__}") from None
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{where}: {name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{where}: {name} must be one-dimensional (one probability per "
                         f"worker), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{where}: {name} must have at least one entry (one per worker)")
    if n is not None and arr.size != n:
        raise ValueError(f"{where}: len({name})={arr.size} must equal the number of "
                         f"workers n={n}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: every {name}_i must be a finite probability in [0, 1]; "
                         f"{name}[{i}]={arr[i]}")
    bad = (arr < 0) | (arr > 1)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: every {name}_i must lie in [0, 1]; {name}[{i}]={arr[i]}")
    return arr


def _classes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(never-failing mask, always-failing mask) after the EPS threshold."""
    return p <= EPS, p >= 1.0 - EPS


# --------------------------------------------------------------------------- closed form
def optimal_row_sums(p: Any, k: int) -> np.ndarray:
    """Optimal row sums Y_i = k (1 / delta_i) / sum_l (1 / delta_l), delta_i = p_i / (1 - p_i).

    This minimises the relaxed residual sum_i delta_i Y_i^2 subject to sum_i Y_i = k (the
    column sums of alpha are 1) [1]. Edge cases, after the :data:`EPS` threshold: workers
    with p_i = 1 get Y_i = 0; if some workers have p_i = 0 they share everything equally
    (Y = k / #{p_i = 0}) and the others get 0; equal p_i give Y_i = k / n exactly.

    Args:
        p: straggling probabilities, one per worker, in [0, 1].
        k: number of partitions, >= 1.

    Returns:
        Y, length n, non-negative, summing to k.

    Raises:
        TypeError / ValueError: bad ``p`` or ``k``; every p_i = 1 (nobody ever responds).

    Example:
        >>> from gradcode.codes.heterogeneous import optimal_row_sums
        >>> optimal_row_sums([0.5, 0.5, 0.75], 5).round(6).tolist()
        [2.142857, 2.142857, 0.714286]

    References:
        [1] Song & Choi, Approximate Gradient Coding for Distributed Learning with
            Heterogeneous Stragglers, arXiv:2510.22539, 2025.
    """
    prob = check_p("heterogeneous", p)
    k = check_int("heterogeneous", "k", k, low=1)
    check_entries("heterogeneous", f"k={k}, len(p)={prob.size}", "k + len(p)", k + prob.size)
    return _row_sums(prob, k)


def _row_sums(p: np.ndarray, k: int) -> np.ndarray:
    n = p.size
    zero, one = _classes(p)
    if np.all(one):
        raise ValueError(f"heterogeneous: at least one p_i must be < 1 (some worker must be "
                         f"able to respond); got p={_short(p)} (p_i >= 1 - EPS counts as 1, "
                         f"EPS={EPS:g})")
    Y = np.zeros(n)
    if np.any(zero):
        Y[zero] = k / int(zero.sum())
        return Y
    alive = ~one
    if np.ptp(p[alive]) == 0:
        Y[alive] = k / int(alive.sum())
        return Y
    inv = (1.0 - p[alive]) / p[alive]             # 1 / delta_i
    Y[alive] = k * inv / inv.sum()
    return Y


def relaxed_error(p: Any, k: int) -> float:
    """Minimum of the relaxed residual: k^2 / sum_l (1 - p_l) / p_l (0 if some p_l = 0).

    This is E||g_hat - g||^2 of the optimal code when all k partial gradients are the
    same unit vector, and an upper bound (times max_j ||g_j||^2) on it for any gradients
    when alpha >= 0 (the ``"northwest"`` allocation) [derived].

    Example:
        >>> from gradcode.codes.heterogeneous import relaxed_error
        >>> round(relaxed_error([0.5, 0.5, 0.75], 5), 6)
        10.714286
    """
    prob = check_p("relaxed_error", p)
    k = check_int("relaxed_error", "k", k, low=1)
    zero, one = _classes(prob)
    if np.all(one):
        raise ValueError("relaxed_error: at least one p_i must be < 1")
    if np.any(zero):
        return 0.0
    alive = ~one
    return float(k * k / np.sum((1.0 - prob[alive]) / prob[alive]))


def relaxed_objective(code: Code, p: Any = None) -> float:
    """The relaxed residual sum_i delta_i Y_i^2 of a code (Y = row sums of B).

    Workers with Y_i = 0 contribute 0 whatever their p_i; a worker with p_i = 1 and
    Y_i != 0 gives ``inf``. ``p`` defaults to ``code.meta.p`` (codes from
    :func:`heterogeneous`).
    """
    code = _check_code("relaxed_objective", code)
    prob = _p_of(code, p, "relaxed_objective")
    Y = np.asarray(code.B.sum(axis=1)).ravel()
    _, one = _classes(prob)
    used = Y != 0
    if np.any(used & one):
        return float("inf")
    q = prob[used]
    return float(np.sum(q / (1.0 - q) * Y[used] ** 2))


# --------------------------------------------------------------------------- allocations
def _northwest(Y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """North-west-corner fill: rows in index order, each takes min(row left, column left).

    Row i owns the interval [R_{i-1}, R_i) of [0, k) (R = cumulative row sums) and column
    j the interval [j, j + 1); alpha[i, j] is the length of their overlap. The cut points
    {R_i} and {0..k} split [0, k) into at most n + k - 1 pieces, one non-zero each.
    """
    R = np.concatenate([[0.0], np.cumsum(Y)])
    R[-1] = float(k)
    near = np.abs(R - np.round(R)) <= _SNAP * max(k, 1)
    R[near] = np.round(R[near])
    R = np.maximum.accumulate(np.clip(R, 0.0, float(k)))
    points = np.unique(np.concatenate([R, np.arange(k + 1, dtype=float)]))
    lengths = np.diff(points)
    mids = points[:-1] + lengths / 2
    keep = lengths > 0
    mids, lengths = mids[keep], lengths[keep]
    rows = np.searchsorted(R, mids, side="right") - 1
    cols = np.minimum(np.floor(mids).astype(np.int64), k - 1)
    return rows.astype(np.int64), cols, lengths


def _chain(Y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed staircase support, coefficients from the row sums (may be negative).

    The t-th of the m workers with Y > 0 holds partitions floor(t k / m) .. floor((t+1) k / m)
    (the last one stops at k - 1): consecutive workers share exactly one partition and the
    support is a path-like tree with m + k - 1 edges, the same for every p. Sweeping the
    rows in order, every partition but a row's last gets what its column still lacks and
    the last gets what the row still lacks; tree structure makes this the unique solution.
    """
    active = np.flatnonzero(Y > 0)
    m = active.size
    rows, cols, vals = [], [], []
    col_left = np.ones(k)
    for t, i in enumerate(active):
        start = (t * k) // m
        end = min(((t + 1) * k) // m, k - 1)
        row_left = float(Y[i])
        for c in range(start, end):
            v = col_left[c]
            col_left[c] = 0.0
            row_left -= v
            rows.append(i), cols.append(c), vals.append(v)
        col_left[end] -= row_left
        rows.append(i), cols.append(end), vals.append(row_left)
    return np.array(rows, np.int64), np.array(cols, np.int64), np.array(vals)


def _shared(Y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One partition shared by every worker, the others owned (may be negative).

    Partitions 0 .. k - 2 are split into contiguous blocks, one block per worker with
    Y > 0 (coefficient 1); partition k - 1 is held by all of them with coefficient
    Y_i - (size of i's block), which makes the row sums Y and the shared column sum
    k - (k - 1) = 1. Non-zeros: (k - 1) + m.
    """
    active = np.flatnonzero(Y > 0)
    m = active.size
    t = np.arange(m)
    lo, hi = (t * (k - 1)) // m, ((t + 1) * (k - 1)) // m
    own = hi - lo
    rows = np.concatenate([np.repeat(active, own), active])
    cols = np.concatenate([np.arange(k - 1), np.full(m, k - 1)])
    vals = np.concatenate([np.ones(k - 1), Y[active] - own])
    return rows, cols, vals


_BUILDERS: dict[str, Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "northwest": _northwest, "chain": _chain, "shared": _shared,
}


def _short(p: np.ndarray) -> str:
    if p.size <= 6:
        return "[" + ", ".join(f"{x:.4g}" for x in p) + "]"
    return f"[{p.min():.4g}..{p.max():.4g}]"


def unbiased_weights(p: Any) -> np.ndarray:
    """Decoding weights w_i = 1 / (1 - p_i); 0 for p_i = 1 (that worker holds nothing).

    After the :data:`EPS` threshold (p_i <= EPS counts as 0, p_i >= 1 - EPS as 1).

    Example:
        >>> from gradcode.codes.heterogeneous import unbiased_weights
        >>> unbiased_weights([0.0, 0.5, 1.0]).tolist()
        [1.0, 2.0, 0.0]
    """
    prob = check_p("unbiased_weights", p)
    zero, one = _classes(prob)
    q = np.where(zero, 0.0, prob)
    return np.where(one, 0.0, 1.0 / np.where(one, 1.0, 1.0 - q))


@dataclass(frozen=True, eq=False)
class HeterogeneousMeta(CodeMeta):
    """``code.meta`` of a :func:`heterogeneous` code (arrays of length n).

    Attributes:
        p: the straggling probabilities the code was built for.
        weights: the unbiased decoding weights 1 / (1 - p_i) (0 where p_i = 1), read by
            decoder ``"unbiased"``.
        row_sums: Y_i = sum_j alpha[i, j], the optimal row sums of the relaxation.
    """

    p: np.ndarray
    weights: np.ndarray
    row_sums: np.ndarray


def heterogeneous(p: Any, k: int, allocation: str = "northwest", *, n: int | None = None) -> Code:
    """Optimal unbiased approximate gradient code for independent heterogeneous stragglers [1].

    Worker i straggles independently with probability p_i; delta_i = p_i / (1 - p_i).
    The code B = alpha has column sums 1 and row sums

        Y_i = k (1 / delta_i) / sum_l (1 / delta_l),

    which minimises the relaxed residual sum_i delta_i Y_i^2 (value
    k^2 / sum_l (1 - p_l) / p_l); decoding with the fixed weights w_i = 1 / (1 - p_i) on
    the responders (decoder ``"unbiased"``) gives E[alpha_hat] = 1. Reliable workers get
    more data. The allocation (which alpha with these sums) is free [1]:

    - ``"northwest"`` (default) [design, docs/theory.md, T26]: north-west-corner fill,
      rows in index order, each entry min(row left, column left). alpha >= 0, at most
      n + k - 1 non-zeros, contiguous partitions per worker (small p changes move little
      data).
    - ``"chain"`` [1, generalised; design]: a fixed staircase support (worker t of m holds
      partitions floor(t k / m) .. floor((t + 1) k / m)), n + k - 1 non-zeros, load about
      k / n + 1 for every worker and the SAME support for every p in general position
      (re-deriving the code moves no data; when a cumulative row sum hits an integer,
      e.g. equal p with m | k, a linking coefficient is exactly 0 and drops out of B),
      but entries may be negative.
    - ``"shared"`` [1, generalised; design]: partition k - 1 is held by everyone, the
      others are owned in contiguous blocks with coefficient 1; entries may be negative.

    Negative entries make the relaxation (and so the optimality) hold only for equal
    partial gradients; with differing ones they can inflate the true residual
    sum_i delta_i ||sum_j alpha[i, j] g_j||^2 above the non-negative fill's.

    Edge cases (p is thresholded at :data:`EPS` = 1e-9): a worker with p_i = 1 gets an
    all-zero row and weight 0; if any p_i = 0 those workers share everything
    (Y = k / #{p_i = 0}, weight 1, zero error) and the rest get nothing; equal p_i give
    Y_i = k / n; all p_i = 1 is an error.

    Args:
        p: straggling probabilities, one per worker (n = len(p)), each in [0, 1].
        k: number of data partitions, >= 1.
        allocation: ``"northwest"``, ``"chain"`` or ``"shared"``.
        n: optional number of workers; if given, len(p) must equal it.

    Returns:
        A :class:`gradcode.Code` whose ``meta`` is a :class:`HeterogeneousMeta` (``p``,
        ``weights`` = 1 / (1 - p), ``row_sums`` = Y; also readable as ``meta["p"]``) and
        ``tolerates`` computed (0 whenever some partition has a single holder,
        docs/theory.md, T3).

    Raises:
        TypeError: p is not a numeric vector, k or n not an integer, allocation not a str.
        ValueError: p has NaN / an entry outside [0, 1] / the wrong length / all ones;
            k < 1; unknown allocation.

    Example:
        >>> import numpy as np, gradcode as gc
        >>> code = gc.codes.heterogeneous([0.1, 0.3, 0.5], k=4)
        >>> code.toarray().round(3).tolist()
        [[1.0, 1.0, 0.919, 0.0], [0.0, 0.0, 0.081, 0.676], [0.0, 0.0, 0.0, 0.324]]
        >>> gc.decode(code, [0, 1], decoder="unbiased").weights.round(3).tolist()
        [1.111, 1.429, 0.0]

    References:
        [1] Song & Choi, Approximate Gradient Coding for Distributed Learning with
            Heterogeneous Stragglers, arXiv:2510.22539, 2025.
    """
    prob = check_p("heterogeneous", p)
    k = check_int("heterogeneous", "k", k, low=1)
    check_entries("heterogeneous", f"k={k}, len(p)={prob.size}", "k + len(p)", k + prob.size)
    if n is not None:
        n = check_int("heterogeneous", "n", n, low=1)
        if prob.size != n:
            raise ValueError(f"heterogeneous: len(p)={prob.size} must equal n={n}")
    if not isinstance(allocation, str):
        raise TypeError(f"heterogeneous: allocation must be a str, got "
                        f"{type(allocation).__name__}")
    if allocation not in _BUILDERS:
        raise ValueError(f"heterogeneous: allocation={allocation!r} must be one of "
                         f"{', '.join(ALLOCATIONS)}")
    Y = _row_sums(prob, k)
    rows, cols, vals = _BUILDERS[allocation](Y, k)
    nonzero = vals != 0
    B = csr_from_coords(rows[nonzero], cols[nonzero], vals[nonzero], (prob.size, k))
    single = np.bincount(B.indices, minlength=k).min() <= 1
    name = (f"heterogeneous(n={prob.size}, k={k}, allocation={allocation!r}, "
            f"p={_short(prob)})")
    return Code(B, name=name,
                params={"p": tuple(prob.tolist()), "k": k, "allocation": allocation},
                tolerates=0 if single else None,
                meta=HeterogeneousMeta(p=prob.copy(), weights=unbiased_weights(prob),
                                       row_sums=Y))


# --------------------------------------------------------------------------- decoder
def _meta_weights(where: str, code: Code) -> np.ndarray:
    if not isinstance(code.meta, HeterogeneousMeta):
        raise ValueError(f"{where}: {code.name} has no decoding weights in code.meta.weights"
                         f"; build it with gc.codes.heterogeneous(p, k) or use "
                         f"gc.codes.unbiased_for(p)")
    w = np.asarray(code.meta.weights, dtype=float)
    if w.shape != (code.n,):
        raise ValueError(f"{where}: code.meta.weights must have length n={code.n}, got "
                         f"shape {w.shape}")
    return w


def unbiased(code: Code, responders: Any) -> Decoding:
    """Fixed unbiased decoding: weight w_i = 1 / (1 - p_i) on each responder, 0 elsewhere.

    The weights are read from ``code.meta.weights`` (set by :func:`heterogeneous`).
    If worker i responds independently with probability 1 - p_i and B's columns sum to
    1, E[alpha] = E[B^T (w o X)] = 1: the gradient estimate is unbiased. Its expected
    error is :func:`unbiased_expected_error`.

    Args:
        code: a code built by :func:`heterogeneous` (``meta.weights``).
        responders: boolean mask (n,) or worker indices.

    Returns:
        The :class:`gradcode.Decoding`.

    Raises:
        ValueError: the code has no (or wrongly sized) ``meta.weights``; bad responders.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.heterogeneous([0.2, 0.2, 0.6], k=3)
        >>> gc.decode(code, [0, 1, 2], decoder="unbiased").alpha.round(3).tolist()
        [1.25, 1.25, 1.538]

    References:
        [1] Song & Choi, Approximate Gradient Coding for Distributed Learning with
            Heterogeneous Stragglers, arXiv:2510.22539, 2025.
    """
    code = _check_code("unbiased", code)
    w = _meta_weights("unbiased", code)
    mask, _ = _responders("unbiased", code, responders)
    return _finish(code, np.where(mask, w, 0.0).astype(code.B.dtype))


def unbiased_for(p: Any) -> Callable[[Code, Any], Decoding]:
    """A decoder with the unbiased weights 1 / (1 - p_i) for explicit p (any code).

    Unbiased only if the code's columns sum to 1; use it to decode a code built for
    other (e.g. estimated) probabilities, or a code without ``meta``.

    Raises:
        ValueError: bad p; at decode time, len(p) != code.n.

    Example:
        >>> import gradcode as gc
        >>> dec = gc.codes.unbiased_for([0.5, 0.5])
        >>> gc.decode(gc.codes.uncoded(2), [0], decoder=dec).weights.tolist()
        [2.0, 0.0]
    """
    prob = check_p("unbiased_for", p)
    w = unbiased_weights(prob)

    def unbiased_decoder(code: Code, responders: Any) -> Decoding:
        code = _check_code("unbiased", code)
        if code.n != w.size:
            raise ValueError(f"unbiased: len(p)={w.size} must equal the code's n={code.n}")
        mask, _ = _responders("unbiased", code, responders)
        return _finish(code, np.where(mask, w, 0.0).astype(code.B.dtype))

    unbiased_decoder.__name__ = "unbiased"
    return unbiased_decoder


# --------------------------------------------------------------------------- analysis
def _p_of(code: Code, p: Any, where: str) -> np.ndarray:
    if p is None:
        if not isinstance(code.meta, HeterogeneousMeta):
            raise ValueError(f"{where}: pass p (the true straggling probabilities); "
                             f"{code.name} has no code.meta.p")
        p = code.meta.p
    return check_p(where, p, code.n)


def _weights_of(code: Code, weights: Any, where: str) -> np.ndarray:
    if weights is None:
        return _meta_weights(where, code)
    w = np.asarray(weights, dtype=float)
    if w.shape != (code.n,) or not np.all(np.isfinite(w)):
        raise ValueError(f"{where}: weights must be a finite vector of length n={code.n}, "
                         f"got shape {w.shape}")
    return w


def unbiased_bias(code: Code, p: Any = None, weights: Any = None) -> np.ndarray:
    """E[alpha_hat] - 1 = B^T ((1 - p) o w) - 1 under independent straggling with true p.

    Zero (to rounding) for a :func:`heterogeneous` code decoded with its own p; non-zero
    when the true p differs from the one the code was built for (estimation error or
    drift), which is what the online re-derivation corrects.

    Args:
        code: the code.
        p: true straggling probabilities (default ``code.meta.p``).
        weights: decoding weights (default ``code.meta.weights``).

    Returns:
        Length-k vector; the estimate's bias is sum_j bias_j g_j.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.heterogeneous([0.1, 0.3, 0.5], k=4)
        >>> float(abs(gc.codes.unbiased_bias(code)).max()) < 1e-12
        True
    """
    code = _check_code("unbiased_bias", code)
    prob = _p_of(code, p, "unbiased_bias")
    w = _weights_of(code, weights, "unbiased_bias")
    return np.real_if_close(code.B.T @ ((1.0 - prob) * w) - 1.0)


def unbiased_expected_error(code: Code, p: Any = None, weights: Any = None) -> float:
    """Exact E||alpha_hat - 1||^2 of fixed-weight decoding (docs/theory.md, T7).

    E||B^T (w o X) - 1||^2 = sum_i p_i (1 - p_i) w_i^2 ||b_i||^2 + ||B^T ((1 - p) o w) - 1||^2,
    X_i ~ Bernoulli(1 - p_i) independent. For a :func:`heterogeneous` code with its own
    weights this is sum_i delta_i ||alpha_i||^2 (the error for orthonormal partial
    gradients; the relaxed objective sum_i delta_i Y_i^2 is the aligned-gradient one).

    Args:
        code: the code.
        p: true straggling probabilities (default ``code.meta.p``).
        weights: decoding weights (default ``code.meta.weights``).

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.heterogeneous([0.5, 0.5], k=2)
        >>> gc.codes.unbiased_expected_error(code)   # two disjoint halves, delta = 1
        2.0
    """
    code = _check_code("unbiased_expected_error", code)
    prob = _p_of(code, p, "unbiased_expected_error")
    w = _weights_of(code, weights, "unbiased_expected_error")
    return fixed_weights_expected_error(code, w, prob)


# --------------------------------------------------------------------------- data movement
@dataclass(frozen=True)
class AllocationChange:
    """What re-deriving a code costs in data movement.

    Attributes:
        moved_partitions: partitions whose holder set changed (the issue's count).
        new_copies: (worker, partition) pairs the new code needs that the old did not
            have: partitions that must be shipped to a worker.
        dropped_copies: (worker, partition) pairs no longer needed (freed, no traffic).
        coefficient_changes: pairs held by both codes whose coefficient changed (no
            data moves, only the encoding).
    """

    moved_partitions: int
    new_copies: int
    dropped_copies: int
    coefficient_changes: int


def allocation_change(old: Code, new: Code, *, rtol: float = 1e-12) -> AllocationChange:
    """Compare the supports of two codes of the same shape (see :class:`AllocationChange`).

    Example:
        >>> import gradcode as gc
        >>> a = gc.codes.heterogeneous([0.1, 0.3, 0.5], k=4)
        >>> b = gc.codes.heterogeneous([0.3, 0.3, 0.3], k=4)
        >>> gc.codes.allocation_change(a, b).moved_partitions
        3
    """
    old = _check_code("allocation_change", old)
    new = _check_code("allocation_change", new)
    if old.B.shape != new.B.shape:
        raise ValueError(f"allocation_change: codes must have the same shape (n, k), got "
                         f"{old.B.shape} and {new.B.shape}")
    so = (old.B != 0).astype(np.int8)
    sn = (new.B != 0).astype(np.int8)
    diff = sp.csr_array(sn - so)
    added = int((diff.data > 0).sum())
    dropped = int((diff.data < 0).sum())
    changed_cols = np.unique(diff.tocoo().col[diff.tocoo().data != 0])
    both = so.multiply(sn)
    r, c = both.nonzero()
    a = np.asarray(old.B[r, c]).ravel()
    b = np.asarray(new.B[r, c]).ravel()
    coef = int(np.sum(np.abs(a - b) > rtol * np.maximum(np.abs(a), np.abs(b))))
    return AllocationChange(int(changed_cols.size), added, dropped, coef)


def moved_partitions(old: Code, new: Code) -> int:
    """Number of partitions whose holder set differs between two codes."""
    return allocation_change(old, new).moved_partitions
