"""The degree-preserving annealing walk of :func:`gradcode.codes.soft_bibd` (private).

State: ``slot`` (k x smax int64), the workers of every block in fixed positions (-1 pads
blocks one shorter than smax); ``wb`` (n x r int64), the blocks of every worker. Proposal
t swaps the incidences (j1, p1) and (j2, p2) drawn in ``picks[t]``; its objective change
is

    delta = sum_{x in o1} 2 + 2 (G[i2, x] - G[i1, x]) + sum_{x in o2} 2 + 2 (G[i1, x] - G[i2, x])

with o1 (o2) the other members of block j1 (j2) that are not in the other block, and
G[a, b] = |wb[a] & wb[b]| the pair co-occurrence count. The walk accepts a proposal with
delta <= 0, or with probability exp(-delta / T), T = T0 (1 - t / proposals), using
``coins[t]``. It stops at the first multiple of ``check_every`` where every pair count
is within [lo, hi].

Two engines replay the SAME walk:

- :func:`walk_sequential`, one proposal at a time (fast when blocks are few or large).
- :func:`walk_batched`, exact batched replay for many small blocks. A window of
  proposals is scheduled in *levels*: a proposal's level is one more than the highest
  level of the earlier proposals of the window that use one of its blocks, so proposals
  sharing a block run in time order and one level shares no block. Each level is
  evaluated and applied in one vectorised step. Proposals that share no block interact
  only through pair counts: a proposal reads exactly the pairs (i1, x), (i2, x),
  x in o1 | o2, and, if accepted, writes those same pairs. After a window, any two
  proposals run out of time order (a before b in time, level(a) >= level(b)) with a
  common pair and at least one of them accepted would break serial equivalence; the
  window is then rolled back and replayed up to b. Otherwise every conflicting pair of
  operations ran in time order, so the window equals the serial walk (conflict
  serialisability). Acceptance uses ``np.exp``; comparisons within 1e-12 of the
  threshold are redone with ``math.exp`` as the serial loop does.

Both return the accepted moves in time order; :func:`best_state` picks the state to keep.
"""

from __future__ import annotations

import math

import numpy as np

T0 = 1.5                       # annealing start temperature
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)   # Fibonacci hashing of pair keys


class Moves:
    """Accepted moves in time order: time, delta, (j1, p1, j2, p2) and the moved i1, i2."""

    __slots__ = ("t", "delta", "j1", "p1", "j2", "p2", "i1", "i2")

    def __init__(self, *cols: np.ndarray) -> None:
        for name, col in zip(self.__slots__, cols):
            setattr(self, name, np.asarray(col, dtype=np.int64))


def pair_keys(slot: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys min * n + max of the pairs sharing a block in ``slot``, and how many
    blocks each pair shares (the non-zero off-diagonal Gram entries)."""
    smax = slot.shape[1]
    keys = [np.zeros(0, dtype=np.int64)]
    for p in range(smax):
        for q in range(p + 1, smax):
            a, b = slot[:, p], slot[:, q]
            ok = (a >= 0) & (b >= 0)
            a, b = a[ok], b[ok]
            keys.append(np.minimum(a, b) * n + np.maximum(a, b))
    return np.unique(np.concatenate(keys), return_counts=True)


def pair_counts(slot: np.ndarray, n: int) -> np.ndarray:
    """The non-zero off-diagonal Gram entries of the blocks in ``slot`` (one per pair)."""
    return pair_keys(slot, n)[1]


def is_balanced(slot: np.ndarray, n: int, lo: int, hi: int) -> bool:
    """Every pair count within [lo, hi] (pairs never together count 0)."""
    vals = pair_counts(slot, n)
    if lo >= 1 and vals.size < n * (n - 1) // 2:
        return False
    return vals.size == 0 or (int(vals.min()) >= lo and int(vals.max()) <= hi)


def walk_sequential(slot: np.ndarray, n: int, ej: np.ndarray, ep: np.ndarray,
                    picks: np.ndarray, coins: np.ndarray, check_every: int, lo: int,
                    hi: int) -> Moves:
    """The walk one proposal at a time; ``slot`` is updated in place."""
    proposals = picks.shape[0]
    lists = slot.tolist()
    members = [set(x for x in blk if x >= 0) for blk in lists]
    pairs: dict[int, int] = {}
    for blk in lists:
        blk = [x for x in blk if x >= 0]
        for a_idx, a in enumerate(blk):
            for c in blk[a_idx + 1:]:
                key = a * n + c if a < c else c * n + a
                pairs[key] = pairs.get(key, 0) + 1

    def change(i: int, others: list[int], sign: int) -> int:
        """sum over l of (g + sign)^2 - g^2 = 1 + 2 sign g for the pairs (i, l)."""
        tot = 0
        for x in others:
            tot += 1 + 2 * sign * pairs.get(i * n + x if i < x else x * n + i, 0)
        return tot

    def apply(i: int, others: list[int], sign: int) -> None:
        for x in others:
            key = i * n + x if i < x else x * n + i
            pairs[key] = pairs.get(key, 0) + sign

    ejl, epl, coin = ej.tolist(), ep.tolist(), coins.tolist()
    log: list[tuple[int, ...]] = []
    for t, (e1, e2) in enumerate(picks.tolist()):
        if t % check_every == 0 and is_balanced(np.array(lists), n, lo, hi):
            break
        j1, p1, j2, p2 = ejl[e1], epl[e1], ejl[e2], epl[e2]
        if j1 == j2:
            continue
        i1, i2 = lists[j1][p1], lists[j2][p2]
        if i1 in members[j2] or i2 in members[j1]:
            continue
        # i1 moves j1 -> j2 and i2 moves j2 -> j1; shared members of both blocks cancel
        o1 = [x for x in lists[j1] if x >= 0 and x != i1 and x not in members[j2]]
        o2 = [x for x in lists[j2] if x >= 0 and x != i2 and x not in members[j1]]
        delta = change(i1, o1, -1) + change(i2, o1, +1) + change(i2, o2, -1) + change(i1, o2, +1)
        if delta > 0:
            temp = T0 * (1.0 - t / proposals)
            if temp <= 0 or coin[t] >= math.exp(-delta / temp):
                continue
        apply(i1, o1, -1)
        apply(i2, o1, +1)
        apply(i2, o2, -1)
        apply(i1, o2, +1)
        lists[j1][p1], lists[j2][p2] = i2, i1
        members[j1].discard(i1)
        members[j1].add(i2)
        members[j2].discard(i2)
        members[j2].add(i1)
        log.append((t, delta, j1, p1, j2, p2, i1, i2))
    slot[:] = lists
    cols = np.array(log, dtype=np.int64).reshape(-1, 8).T
    return Moves(*cols)


def _levels(j1: np.ndarray, j2: np.ndarray) -> np.ndarray:
    """Level of each proposal: 1 + max level of the earlier ones sharing a block, else 0."""
    m = j1.size
    blocks = np.concatenate([j1, j2])
    who = np.concatenate([np.arange(m), np.arange(m)])
    order = np.argsort(blocks * m + who)
    b_sorted, w_sorted = blocks[order], who[order]
    has_prev = np.r_[False, b_sorted[1:] == b_sorted[:-1]]
    prev_sorted = np.where(has_prev, np.r_[-1, w_sorted[:-1]], -1)
    prev = np.empty(2 * m, dtype=np.int64)
    prev[order] = prev_sorted
    prev1, prev2 = prev[:m], prev[m:]
    level = np.zeros(m, dtype=np.int64)
    ext = np.empty(m + 1, dtype=np.int64)          # ext[-1] = -1: "no earlier proposal"
    ext[m] = -1
    while True:
        ext[:m] = level
        new = np.maximum(ext[prev1], ext[prev2]) + 1
        if np.array_equal(new, level):
            return level
        level = new


def _first_violation(rd: np.ndarray, b: int) -> int:
    """Earliest time of a proposal run out of order with an earlier one reading a common
    pair, one of the two accepted (rows of ``rd``: pair key, time, level, accepted);
    ``b`` when there is none."""
    # only pairs read more than once matter: a hash of the pair keys into 2^16 buckets
    # keeps the entries of shared buckets (every repeated pair and a few collisions)
    bucket = ((rd[0].astype(np.uint64) * _HASH_MUL) >> np.uint64(48)).astype(np.intp)
    rd = rd[:, np.bincount(bucket, minlength=1 << 16)[bucket] > 1]
    if rd.shape[1] == 0:
        return b
    first = int(rd[1].min())
    order = np.argsort(rd[0] * (int(rd[1].max()) - first + 1) + (rd[1] - first))  # pair, time
    key, who, level, acc = rd[0][order], rd[1][order], rd[2][order], rd[3][order] > 0
    group = np.cumsum(np.r_[0, key[1:] != key[:-1]])
    span = int(level.max()) + 2                           # levels per pair group
    # highest level among the EARLIER entries of the same pair (all / accepted only)
    base = group * span
    run_all = np.maximum.accumulate(base + level)
    run_acc = np.maximum.accumulate(base + np.where(acc, level, -1))
    same = np.r_[False, group[1:] == group[:-1]]
    prev_all = np.where(same, np.r_[0, run_all[:-1]] - base, -1)
    prev_acc = np.where(same, np.r_[0, run_acc[:-1]] - base, -1)
    bad = same & (((prev_all >= level) & acc) | (prev_acc >= level))
    return int(who[bad].min()) if bad.any() else b


def _accept(delta: np.ndarray, t: np.ndarray, coins: np.ndarray, proposals: int) -> np.ndarray:
    """delta <= 0, or coin < exp(-delta / T) with T = T0 (1 - t / proposals) > 0."""
    acc = delta <= 0
    up = np.flatnonzero(~acc)
    if up.size:
        temp = T0 * (1.0 - t[up] / proposals)
        hot = temp > 0
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            thr = np.exp(-delta[up] / np.where(hot, temp, 1.0))
        coin = coins[t[up]]
        ok = hot & (coin < thr)
        close = np.flatnonzero(hot & (np.abs(coin - thr) <= 1e-12))
        for c in close.tolist():                   # same libm call as the serial loop
            ok[c] = coins[t[up[c]]] < math.exp(-int(delta[up[c]]) / float(temp[c]))
        acc[up] = ok
    return acc


def _worker_blocks(slot: np.ndarray, n: int, r: int) -> np.ndarray:
    """wb[i] = the r blocks holding worker i (any order)."""
    j_of = np.repeat(np.arange(slot.shape[0]), slot.shape[1])
    flat = slot.ravel()
    ok = flat >= 0
    order = np.argsort(flat[ok], kind="stable")
    return j_of[ok][order].reshape(n, r)


def _gram_gap(wb: np.ndarray, i1: np.ndarray, i2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """G[i2, x] - G[i1, x] per row, with G[a, b] = |wb[a] & wb[b]| (r^2 comparisons)."""
    m = i1.size
    wx = np.concatenate([wb[x], wb[x]])                     # 2m x cols x r
    wa = wb[np.concatenate([i2, i1])]                       # 2m x r
    g = np.zeros(wx.shape[:2], dtype=np.int8)
    for u in range(wb.shape[1]):
        col = wa[:, u, None]
        for v in range(wb.shape[1]):
            g += wx[:, :, v] == col
    return g[:m].astype(np.int64) - g[m:]


def walk_batched(slot: np.ndarray, n: int, r: int, ej: np.ndarray, ep: np.ndarray,
                 picks: np.ndarray, coins: np.ndarray, check_every: int, lo: int, hi: int,
                 window: int) -> Moves:
    """The same walk replayed in windows of level-scheduled vectorised steps (see module
    docstring); ``slot`` is updated in place."""
    proposals = picks.shape[0]
    out_slot, slot = slot, slot.astype(np.int32)            # int32 halves memory traffic
    ej, ep = ej.astype(np.int32), ep.astype(np.int32)
    wb = _worker_blocks(slot, n, r).astype(np.int32)
    smax = slot.shape[1]
    sign = np.r_[np.ones(smax, np.int64), -np.ones(smax, np.int64)]
    logs: list[np.ndarray] = []
    slot_save, wb_save = np.empty_like(slot), np.empty_like(wb)

    def run(a: int, b: int) -> tuple[np.ndarray, int]:
        """Process proposals [a, b); return (accepted moves, first violating time or b)."""
        e1, e2 = picks[a:b, 0], picks[a:b, 1]
        j1, j2 = ej[e1], ej[e2]
        t = np.flatnonzero(j1 != j2)
        level = _levels(j1[t], j2[t])
        order = np.argsort(level, kind="stable")             # by level, then time
        bounds = np.searchsorted(level[order], np.arange(int(level.max(initial=-1)) + 2))
        t = t[order]
        e1, e2, level = e1[t], e2[t], level[order]
        j1, j2, p1, p2 = ej[e1], ej[e2], ep[e1], ep[e2]
        t += a
        moves, reads = [], []
        for lev in range(bounds.size - 1):
            lv = slice(bounds[lev], bounds[lev + 1])
            qj1, qj2, qp1, qp2 = j1[lv], j2[lv], p1[lv], p2[lv]
            s1, s2 = slot[qj1], slot[qj2]
            i1, i2 = s1[np.arange(qj1.size), qp1], s2[np.arange(qj1.size), qp2]
            x = np.concatenate([s1, s2], axis=1)
            same = x[:, :, None] == x[:, None, :]             # m x 2 smax x 2 smax
            clash = same[:, :smax, smax:].any(2)              # member of j1 also in j2
            in_other = np.concatenate([clash, same[:, smax:, :smax].any(2)], axis=1)
            # a swap is void when i1 is already in j2 or i2 already in j1
            void = in_other[np.arange(qj1.size), qp1] | in_other[np.arange(qj1.size), smax + qp2]
            use = ~in_other & (x >= 0) & (x != np.where(sign > 0, i1[:, None], i2[:, None]))
            use &= ~void[:, None]
            delta = (use * (2 + 2 * sign * _gram_gap(wb, i1, i2, x))).sum(1)
            tl = t[lv]
            acc = _accept(delta, tl, coins, proposals) & ~void
            # pairs read (and written when accepted): (i1, x), (i2, x) for x in o1 | o2
            xs = x[use]
            row = np.repeat(np.arange(qj1.size), use.sum(1))
            a1, a2, xs = i1[row].astype(np.int64), i2[row].astype(np.int64), xs.astype(np.int64)
            reads.append(np.stack([np.concatenate([np.minimum(a1, xs) * n + np.maximum(a1, xs),
                                                   np.minimum(a2, xs) * n + np.maximum(a2, xs)]),
                                   np.tile(tl[row], 2), np.full(2 * row.size, lev),
                                   np.tile(acc[row], 2)]))
            if acc.any():
                c = np.flatnonzero(acc)
                cj1, cj2, ci1, ci2 = qj1[c], qj2[c], i1[c], i2[c]
                slot[cj1, qp1[c]] = ci2
                slot[cj2, qp2[c]] = ci1
                pos1 = np.argmax(wb[ci1] == cj1[:, None], axis=1)
                pos2 = np.argmax(wb[ci2] == cj2[:, None], axis=1)
                wb[ci1, pos1] = cj2
                wb[ci2, pos2] = cj1
                moves.append(np.stack([tl[c], delta[c], cj1, qp1[c], cj2, qp2[c], ci1, ci2]))
        bad = b
        if reads:
            bad = _first_violation(np.concatenate(reads, axis=1), b)
        out = np.concatenate(moves, axis=1) if moves else np.zeros((8, 0), np.int64)
        return out, bad

    t0 = 0
    while t0 < proposals:
        if t0 % check_every == 0 and is_balanced(slot, n, lo, hi):
            break
        b = min(proposals, (t0 // check_every + 1) * check_every, t0 + window)
        np.copyto(slot_save, slot)
        np.copyto(wb_save, wb)
        while True:
            moves, bad = run(t0, b)
            if bad == b:
                break
            np.copyto(slot, slot_save)                     # replay the window up to bad
            np.copyto(wb, wb_save)
            b = bad
        logs.append(moves[:, np.argsort(moves[0], kind="stable")])
        t0 = b
    cols = np.concatenate(logs, axis=1) if logs else np.zeros((8, 0), np.int64)
    out_slot[:] = slot
    return Moves(*cols)


def best_state(slot: np.ndarray, moves: Moves, objective: int, proposals: int) -> int:
    """Restore in ``slot`` the state to keep; return its objective.

    The walk keeps a saved state, at first the start: in its second half
    (t > proposals // 2) every state whose objective is below the saved state's own
    objective replaces it. The saved state is restored when its objective is below the
    final one, so the result is never worse than the end of the walk.
    """
    obj = objective + np.cumsum(moves.delta)
    final = int(obj[-1]) if obj.size else objective
    late = np.flatnonzero(moves.t > proposals // 2)
    saved_obj, keep = objective, 0                             # moves kept: [0, keep)
    if late.size:
        run_min = np.minimum.accumulate(np.r_[objective, obj[late]])
        better = np.flatnonzero(obj[late] < run_min[:-1])
        if better.size:
            keep = int(late[better[-1]]) + 1
            saved_obj = int(obj[keep - 1])
    if not saved_obj < final:
        return final
    undo = slice(keep, None)
    j = np.concatenate([moves.j1[undo], moves.j2[undo]])
    p = np.concatenate([moves.p1[undo], moves.p2[undo]])
    old = np.concatenate([moves.i1[undo], moves.i2[undo]])
    when = np.concatenate([np.arange(j.size // 2)] * 2)
    key = j * slot.shape[1] + p
    order = np.lexsort((when, key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    pick = order[first]                                        # earliest undone move per slot
    slot[j[pick], p[pick]] = old[pick]
    return saved_obj
