"""Block-design codes: BIBD codes [1] and soft BIBD codes [2], with the closed-form
``bibd`` decoder.

Orientation [derived, docs/theory.md, T18]: workers are the points of the design and
partitions its blocks, B[i, j] = 1 iff point i lies in block j (B = the v x b
incidence matrix N). Then
load = r, replication = kappa and B B^T = (r - lambda) I + lambda J, so for ANY
responder set F of size m = n - s the least-squares weights are the same constant
a_i = r / (r + lambda (m - 1)) on F, and

    error(s) = b - r^2 (n - s) / (r + lambda (n - s - 1)),

identical for every straggler set of size s: an adversary gains nothing over chance.

References:
    [1] S. Kadhe, O. O. Koyluoglu, K. Ramchandran, "Gradient coding based on block
        designs for mitigating adversarial stragglers", arXiv:1904.13373, 2019.
    [2] A. Sakorikar, L. Wang, "Soft BIBD and product gradient codes", arXiv:2105.05231,
        2021.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.code import Code
from ..core.decoders import Decoding, _check_code, _finish, _memo, _responders
from ..core.validate import as_rng, check_entries, check_int
from . import _soft_bibd_walk as _walk
from . import designs
from ._common import fmt_name, seed_param
from .designs import Design, as_design

__all__ = ["bibd", "bibd_closed_form_error", "bibd_decoder", "bibd_structure", "soft_bibd"]

_GRAM_CHECK_LIMIT = 5000       # user codes: Gram structure checked only up to this many rows
_MAX_PROPOSALS = 500_000       # soft_bibd local-search cap
_GREEDY_FLOOR = 0.5            # greedy start: rows with a lower threshold use all n keys
_GREEDY_RUN = 16               # greedy start: rows sharing one candidate extraction
_BATCHED_MIN_K = 600           # soft_bibd: batched replay of the walk from this many blocks
_BATCHED_MAX_BLOCK = 16        # ... and blocks of at most this many workers
_WINDOW_DIV = 16               # batched replay: proposals per window = k / _WINDOW_DIV


def bibd(design: Design | Any, v: int | None = None) -> Code:
    """The BIBD gradient code of a design: workers = points, partitions = blocks [1].

    Construction: B = N, the v x b 0/1 incidence matrix (B[i, j] = 1 iff point i lies
    in block j): n = v workers, k = b partitions, load r, replication kappa. Since
    B B^T = (r - lambda) I + lambda J, optimal decoding of any n - s responders uses the
    constant weight r / (r + lambda (n - s - 1)) (decoder ``"bibd"``, O(1) per responder)
    and leaves error b - r^2 (n - s) / (r + lambda (n - s - 1)) for EVERY straggler set of
    size s [derived, checked exhaustively in the tests]. The code is approximate:
    tolerates = 0 unless every block is the whole point set (r = lambda, then n - 1).

    Args:
        design: a :class:`gradcode.designs.Design`, a list of blocks (lists of point
            indices), or a constructor call as text: ``"fano()"``,
            ``"projective_plane(3)"``, ``"affine_plane(4)"``, ``"singer(3)"``,
            ``"complete(5, 2)"``. It must pass :meth:`Design.verify`.
        v: number of points when ``design`` is a block list (default: max point + 1).

    Returns:
        The code; ``meta["design"]`` is the design, ``meta["bibd"]`` its parameters.

    Raises:
        TypeError: design is neither a Design nor a block list.
        ValueError: the blocks do not form a BIBD (the message names the pair, point or
            block that breaks balance).

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bibd(gc.designs.projective_plane(2))
        >>> code.n, code.k, code.load, code.replication
        (7, 7, 3, 3)
        >>> round(gc.decode(code, [0, 1, 2, 3, 4, 5], decoder="bibd").error, 12)  # 7 - 9*6/8
        0.25

    References:
        [1] Kadhe, Koyluoglu, Ramchandran, arXiv:1904.13373, 2019.
    """
    d = _named_design(design) if isinstance(design, str) else as_design("bibd", design, v)
    try:
        d.verify()
    except ValueError as exc:
        raise ValueError(f"bibd: design must be a BIBD: {exc}") from None
    params = d.params()
    r, lam = int(params["r"]), int(params["lambda"])
    tolerates = d.v - 1 if r == lam else 0
    return Code(d.incidence().copy(), name=f"bibd({d.name})", params={"design": d.name},
                tolerates=tolerates, meta={"design": d, "bibd": params})


_NAMED = re.compile(r"^\s*(fano|projective_plane|affine_plane|singer|complete)\s*"
                    r"\(\s*((?:[a-z_]+\s*=\s*)?\d+(?:\s*,\s*(?:[a-z_]+\s*=\s*)?\d+)*)?\s*\)\s*$")


def _named_design(text: str) -> Design:
    """Build a design from ``"projective_plane(3)"``-style text (no eval)."""
    match = _NAMED.match(text)
    if not match:
        raise ValueError(f"bibd: design={text!r} must be a Design, a block list, or one of "
                         f"'fano()', 'projective_plane(q)', 'affine_plane(q)', 'singer(q)', "
                         f"'singer(q, m)', 'complete(v, kappa)'")

    args, kwargs = [], {}
    for part in filter(None, (match.group(2) or "").split(",")):
        if "=" in part:
            key, val = part.split("=")
            kwargs[key.strip()] = int(val)
        else:
            args.append(int(part))
    try:
        return getattr(designs, match.group(1))(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"bibd: design={text!r}: {exc}") from None


def _greedy_row(u: np.ndarray, remaining: np.ndarray, level_count: np.ndarray, size: int
                ) -> np.ndarray:
    """One block of the greedy start from its n uniforms (the reference rule).

    The block takes the ``size`` workers with the largest key remaining_i + u_i / 2. The
    winners are almost always among the workers of the top degree whose u exceeds a
    threshold keeping about 4 size + 32 of them: those few keys decide; when they cannot
    (too few above the threshold, or a tie at the boundary) all n keys do.
    """
    top = int(np.flatnonzero(level_count)[-1])
    if level_count[top] > size:
        thresh = 1.0 - min(1.0, (4 * size + 32) / level_count[top])
        cand = np.flatnonzero(u > thresh)
        cand = cand[remaining[cand] == top]
        if cand.size > size:
            key = top + u[cand] * 0.5
            part = np.argpartition(-key, size)
            kth, nxt = key[part[size - 1]], key[part[size]]
            best = key[part[:size]].min()
            if best > nxt and best > top + thresh * 0.5 and kth == best:
                chosen = cand[part[:size]]
                level_count[top] -= size
                level_count[top - 1] += size
                remaining[chosen] -= 1
                return chosen
    key = remaining + u * 0.5
    chosen = np.argpartition(-key, size - 1)[:size]
    np.subtract.at(level_count, remaining[chosen], 1)
    np.add.at(level_count, remaining[chosen] - 1, 1)
    remaining[chosen] -= 1
    return chosen


def _greedy_blocks(rng: np.random.Generator, n: int, r: int, sizes: np.ndarray
                   ) -> list[list[int]]:
    """Greedy realisation of the bipartite degree sequence (Gale-Ryser: always feasible).

    Blocks in order of decreasing size (stable); block j takes the sizes[j] workers with
    the largest key remaining_i + u_i / 2, u ~ U[0, 1) drawn afresh for all n workers
    (:func:`_greedy_row`). The uniforms are drawn in chunks of rows, which consumes the
    generator exactly as one draw of n per block does. For a run of rows, the entries of
    workers at the top degree above the lowest threshold those rows can use are extracted
    and sorted at once; a row whose candidates (minus workers taken earlier in the run) are
    strictly separated at its boundary takes the top ``size`` directly (the unique answer
    of the reference rule); any other row runs the reference rule on its n uniforms. The
    result is the same.
    """
    k = sizes.size
    remaining = np.full(n, r, dtype=np.int64)
    rem = remaining.tolist()                       # Python mirror for scalar reads
    counts = [0] * r + [n]                         # workers per remaining degree
    order = np.argsort(-sizes, kind="stable")
    size_of = sizes.tolist()
    widest = max(size_of)
    rows_per_draw = max(1, min(k, (1 << 21) // n))
    lists: list[list[int]] = []
    top = r
    for start in range(0, k, rows_per_draw):
        uniforms = rng.random((min(rows_per_draw, k - start), n))
        blocks = order[start:start + rows_per_draw].tolist()
        row = 0
        while row < len(blocks):
            while counts[top] == 0:
                top -= 1
            run_top, stop = top, min(len(blocks), row + _GREEDY_RUN)
            span = counts[top] - (stop - row) * widest
            floor = _GREEDY_FLOOR if span <= 0 else max(1.0 - (4 * widest + 32) / span,
                                                        _GREEDY_FLOOR)
            flat = np.flatnonzero(uniforms[row:stop] > floor)
            cols = flat % n
            flat, cols = flat[remaining[cols] == top], cols[remaining[cols] == top]
            vals = uniforms[row:stop].ravel()[flat]
            by = np.lexsort((-vals, flat // n))       # per row, decreasing u
            bounds = np.searchsorted(flat[by] // n, np.arange(stop - row + 1)).tolist()
            cols_l, vals_l = cols[by].tolist(), vals[by].tolist()
            taken: list[int] = []                     # chosen in this run, not in `remaining`
            first = row
            for at in range(row, stop):
                size = size_of[blocks[at]]
                while counts[top] == 0:
                    top -= 1
                if top != run_top:
                    break                             # new top degree: extract again
                chosen = None
                if counts[top] > size:
                    thresh = 1.0 - min(1.0, (4 * size + 32) / counts[top])
                    if thresh >= floor:
                        got = []
                        for idx in range(bounds[at - first], bounds[at - first + 1]):
                            if vals_l[idx] <= thresh:
                                break
                            if rem[cols_l[idx]] == top:
                                got.append(idx)
                                if len(got) > size:
                                    break
                        if len(got) > size:
                            best = top + vals_l[got[size - 1]] * 0.5
                            if best > top + vals_l[got[size]] * 0.5 and best > top + thresh * 0.5:
                                chosen = [cols_l[idx] for idx in got[:size]]
                                counts[top] -= size
                                counts[top - 1] += size
                                taken += chosen
                if chosen is None:
                    np.subtract.at(remaining, taken, 1)
                    taken = []
                    level_count = np.array(counts)
                    chosen = _greedy_row(uniforms[at], remaining, level_count, size).tolist()
                    counts = level_count.tolist()
                for c in chosen:
                    rem[c] -= 1
                lists.append(sorted(chosen))
                row = at + 1
            np.subtract.at(remaining, taken, 1)
    return lists


def soft_bibd(n: int, k: int, r: int, seed: Any = None, sweeps: int = 100) -> Code:
    """A soft BIBD code: a 0/1 code with load r whose pairs are as balanced as possible [2].

    Construction [design, docs/theory.md, T20; Sakorikar-Wang's exact sampling rule
    was not recovered]:

    1. Column sizes kappa_j in {floor(n r / k), ceil(n r / k)} summing to n r, every
       worker in exactly r partitions (a bipartite degree sequence realised greedily,
       largest remaining degree first, ties broken at random).
    2. Degree-preserving local search: repeatedly pick two incidences (i, j), (i', j')
       with i not in j' and i' not in j at random and swap them to (i, j'), (i', j),
       annealing the objective sum_{i < i'} G[i, i']^2, G = B B^T (pair co-occurrences):
       a move that raises it by delta is accepted with probability exp(-delta / T),
       T falling linearly from 1.5 to 0; the best state seen late in the walk is kept and
       the walk stops early once every pair count is floor or ceil of lambda_bar. With
       many small blocks the same walk is replayed exactly in vectorised batches
       (``gradcode.codes._soft_bibd_walk``): n = k = 10,000, r = 3 builds in about a
       second instead of several.

    Why: with row and column sums fixed, sum_{i<i'} G[i, i'] is fixed, so minimising the
    sum of squares drives every off-diagonal Gram entry towards the mean
    lambda_bar = r (kappa - 1) / (n - 1), i.e. minimises ||G - ((r - lambda_bar) I +
    lambda_bar J)||_F: the Gram structure behind the BIBD closed form (error the same
    for every straggler set). When a BIBD with these parameters exists it is a global
    minimiser; otherwise the result has every pair count within a small band around
    lambda_bar. Unlike a BIBD it exists for every (n, k, r) with 1 <= r <= k <= n r.

    Args:
        n: number of workers (points), >= 2.
        k: number of partitions (blocks), 1 <= k <= n r.
        r: load (partitions per worker), 1 <= r <= k.
        seed: int or numpy Generator (reproducible).
        sweeps: local-search effort, in proposals per incidence (>= 0; at most 500,000
            proposals in all).

    Returns:
        The code; ``meta["pair_counts"]`` = (min, max) off-diagonal Gram entry,
        ``meta["lambda_bar"]`` the target mean.

    Raises:
        ValueError: r > k, k > n r (some partition would be on no worker), n < 2.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.soft_bibd(n=13, k=13, r=4, seed=0)
        >>> code.load, code.replication, code.meta["pair_counts"]
        (4, 4, (1, 1))

    References:
        [2] Sakorikar, Wang, arXiv:2105.05231, 2021.
    """
    where = "soft_bibd"
    n = check_int(where, "n", n, low=2)
    k = check_int(where, "k", k, low=1)
    r = check_int(where, "r", r, low=1)
    sweeps = check_int(where, "sweeps", sweeps, low=0)
    if r > k:
        raise ValueError(f"{where}: r={r} must be <= k={k} (a worker holds distinct partitions)")
    if k > n * r:
        raise ValueError(f"{where}: k={k} must be <= n*r={n * r} so that every partition is "
                         f"held by at least one worker")
    # the local search counts the worker pairs inside every partition: ~ (n r)^2 / k
    check_entries(where, f"n={n}, k={k}, r={r}", "(n*r)^2/k + k", (n * r) ** 2 // k + k)
    rng = as_rng(where, seed)
    total = n * r
    sizes = np.full(k, total // k, dtype=np.int64)
    sizes[rng.permutation(k)[: total % k]] += 1
    lists = _greedy_blocks(rng, n, r, sizes)
    lens = sizes[np.argsort(-sizes, kind="stable")]      # the greedy's block order
    smax = int(lens[0])
    slot = np.full((k, smax), -1, dtype=np.int64)        # block j's workers, -1 pads
    slot[np.arange(smax) < lens[:, None]] = np.fromiter(
        itertools.chain.from_iterable(lists), dtype=np.int64, count=total)
    ej = np.repeat(np.arange(k), lens)                    # incidence e = (block, position)
    ep = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    proposals = min(sweeps * total, _MAX_PROPOSALS)
    lam_bar = r * (total / k - 1) / (n - 1)
    lo, hi = int(np.floor(lam_bar)), int(np.ceil(lam_bar))
    picks = rng.integers(0, total, size=(proposals, 2)) if proposals else np.zeros((0, 2), int)
    coins = rng.random(proposals) if proposals else np.zeros(0)
    objective = int(np.sum(_walk.pair_counts(slot, n) ** 2))
    if k >= _BATCHED_MIN_K and smax <= _BATCHED_MAX_BLOCK:
        moves = _walk.walk_batched(slot, n, r, ej, ep, picks, coins, 2 * total, lo, hi,
                                   window=max(64, k // _WINDOW_DIV))
    else:
        moves = _walk.walk_sequential(slot, n, ej, ep, picks, coins, 2 * total, lo, hi)
    _walk.best_state(slot, moves, objective, proposals)
    vals = _walk.pair_counts(slot, n)
    full = vals.size == n * (n - 1) // 2
    counts = (int(vals.min()) if full else 0, int(vals.max(initial=0)))
    cols, pos = np.nonzero(slot >= 0)
    rows = slot[cols, pos]
    B = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(n, k))
    name = fmt_name(where, n=n, k=k, r=r, seed=seed_param(seed))
    return Code(B, name=name, params={"n": n, "k": k, "r": r, "seed": seed_param(seed),
                                      "sweeps": sweeps},
                tolerates=n - 1 if r == k else None,
                meta={"pair_counts": counts,
                      "lambda_bar": float(lam_bar)})


# --------------------------------------------------------------------------- decoding
def bibd_structure(code: Code) -> tuple[int, int] | None:
    """(r, lambda) when B is a 0/1 matrix with B B^T = (r - lambda) I + lambda J, else None.

    Codes built by :func:`bibd` answer from their metadata; any other code is checked
    directly (0/1 entries, constant Gram diagonal r and off-diagonal lambda) when
    n <= 5000, and reported as not a BIBD code above that size. Memoised per code.
    """
    def compute() -> tuple[int, int] | None:
        info = code.meta.get("bibd")
        if isinstance(info, dict) and info.get("r") is not None:
            return int(info["r"]), int(info["lambda"])
        B = code.B
        if code.is_complex or code.n > _GRAM_CHECK_LIMIT or not np.all(B.data == 1.0):
            return None
        gram = (B @ B.T).toarray()
        r = gram[0, 0]
        if r == 0 or not np.all(np.diag(gram) == r):
            return None                 # r = 0: B = 0, no closed form (0 / 0 weights)
        if code.n == 1:
            return int(r), 0
        lam = gram[0, 1]
        off = gram[~np.eye(code.n, dtype=bool)]
        if not np.all(off == lam):
            return None
        return int(r), int(lam)

    return _memo(code, ("bibd_structure",), compute)


def bibd_closed_form_error(n: int, k: int, r: int, lam: int, s: int) -> float:
    """b - r^2 (n - s) / (r + lambda (n - s - 1)) with b = k: the optimal error of a
    BIBD code with s stragglers (k when s = n)."""
    m = n - s
    if m <= 0:
        return float(k)
    return float(k - r * r * m / (r + lam * (m - 1)))


def bibd_decoder(code: Code, responders: Any) -> Decoding:
    """Closed-form optimal decoding of a BIBD code: a_i = r / (r + lambda (m - 1)) on F.

    With m = |F| responders, B_F B_F^T = (r - lambda) I_m + lambda J_m and B_F 1 = r 1, so
    the normal equations are solved by the constant vector above (the minimum-norm
    least-squares solution; unique when r > lambda). The weights cost O(1) per
    responder; alpha = B^T a costs one sparse product.

    Args:
        code: a BIBD code (from :func:`bibd`, or any 0/1 code with the BIBD Gram
            structure).
        responders: boolean mask (n,) or worker indices.

    Raises:
        ValueError: the code is not a BIBD code.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bibd(gc.designs.fano())
        >>> gc.decode(code, [0, 2, 4, 6], decoder="bibd").weights[:3].tolist()
        [0.5, 0.0, 0.5]

    References:
        [1] Kadhe, Koyluoglu, Ramchandran, arXiv:1904.13373, 2019.
    """
    code = _check_code("bibd", code)
    mask, _ = _responders("bibd", code, responders)
    st = bibd_structure(code)
    if st is None:
        raise ValueError(f"bibd: {code.name} is not a BIBD code (B must be 0/1 with "
                         f"B B^T = (r - lambda) I + lambda J); use decoder='optimal'")
    r, lam = st
    m = int(mask.sum())
    c = r / (r + lam * (m - 1)) if m > 0 else 0.0
    weights = np.where(mask, c, 0.0)
    return _finish(code, weights)
