"""Random sparse codes: Bernoulli (BGC), regularized Bernoulli (rBGC) [1] and stochastic
block codes (SBC) [2].

References:
    [1] Z. Charles, D. Papailiopoulos, J. Ellenberg, "Approximate gradient coding via
        sparse random graphs", arXiv:1711.06771, 2017.
    [2] Z. Charles, D. Papailiopoulos, "Gradient coding via the stochastic block model",
        arXiv:1805.10378, 2018.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.code import Code
from ..core.validate import as_rng, check_entries, check_int, check_probability
from ._common import bernoulli_coords, csr_from_coords, fmt_name, seed_param

__all__ = ["bernoulli", "regularized_bernoulli", "stochastic_block"]


def bernoulli(n: int, k: int, d: float, seed: Any = None) -> Code:
    """Bernoulli gradient code (BGC): B[i, j] ~ Bernoulli(d / k) i.i.d. [1].

    Each worker computes d partitions on average; each partition sits on n d / k workers
    on average (some on none: those are always lost). With one-step decoding
    rho = k / (d (n - s)) and k = n, E[error] = k (k - d) / (d (n - s)) over the code
    and a fixed-size responder set (``gc.analysis.bgc_one_step_expected_error``).
    Drawn sparsely: Binomial(n k, d / k) ones placed uniformly, the same law.

    Args:
        n: workers; k: partitions; d: expected load, 0 < d <= k; seed: int or Generator.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bernoulli(n=100, k=100, d=5, seed=0)
        >>> code.B.nnz
        528

    References:
        [1] Charles, Papailiopoulos, Ellenberg, arXiv:1711.06771, 2017, Section 4.
    """
    where = "bernoulli"
    n = check_int(where, "n", n, low=1)
    k = check_int(where, "k", k, low=1)
    if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: d must be a number, got {d!r}")
    if not 0 < d <= k:
        raise ValueError(f"{where}: d={d} must satisfy 0 < d <= k={k}")
    # expected n*d ones (the binomial count exceeds n*d + 10 sd with negligible chance)
    check_entries(where, f"n={n}, d={d}", "n*d (expected)", int(np.ceil(n * d)))
    rng = as_rng(where, seed)
    rows, cols = bernoulli_coords(n, k, d / k, rng)
    B = csr_from_coords(rows, cols, 1.0, (n, k))
    return Code(B, name=fmt_name(where, n=n, k=k, d=d, seed=seed_param(seed)),
                params={"n": n, "k": k, "d": d, "seed": seed_param(seed)}, tolerates=0)


def regularized_bernoulli(n: int, k: int, d: int, seed: Any = None) -> Code:
    """Regularized BGC (rBGC): every partition on exactly d distinct workers, row loads
    balanced to within one [1; the exact rule was not recovered: this is our design].

    [design, docs/theory.md, T12] Deal the k d (partition, copy) slots to workers from a
    sequence of independent random permutations of the workers, d consecutive workers per
    partition; a permutation whose first entries would repeat a worker of the partition
    straddling the boundary is redrawn (up to 1000 times, then the clashing entries are
    swapped with random later ones). Column weights are exactly d (the regularisation the paper
    aims at: no partition left on zero or one worker) and row loads are floor or ceil of
    k d / n.

    Args:
        n: workers; k: partitions; d: replication, 1 <= d <= n; seed: int or Generator.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.regularized_bernoulli(n=12, k=12, d=3, seed=0)
        >>> sorted(set(code.column_support.tolist())), sorted(set(code.row_support.tolist()))
        ([3], [3])

    References:
        [1] Charles, Papailiopoulos, Ellenberg, arXiv:1711.06771, 2017, Section 4.
    """
    where = "regularized_bernoulli"
    n = check_int(where, "n", n, low=1)
    k = check_int(where, "k", k, low=1)
    d = check_int(where, "d", d, low=1)
    if d > n:
        raise ValueError(f"{where}: d={d} must be <= n={n} (d distinct workers per partition)")
    check_entries(where, f"n={n}, k={k}, d={d}", "k*d + n", k * d + n)
    rng = as_rng(where, seed)
    total = k * d
    seq = np.empty(total + n, dtype=np.int64)
    filled = 0
    while filled < total:
        perm = rng.permutation(n)
        # positions filled..filled+n-1; a partition straddling the boundary must not repeat
        start_slot = filled % d
        if filled and start_slot:
            prev = seq[filled - start_slot:filled]
            head = perm[: d - start_slot]
            tries = 0
            while np.intersect1d(prev, head).size and tries < 1000:
                perm = rng.permutation(n)
                head = perm[: d - start_slot]
                tries += 1
            clash = np.flatnonzero(np.isin(head, prev))
            if clash.size:
                # redraws rarely succeed when d is close to n: swap each clashing head
                # entry with a random tail entry outside prev (n - d + |clash| of them)
                tail = np.flatnonzero(~np.isin(perm[d - start_slot:], prev)) + d - start_slot
                pick = rng.choice(tail, size=clash.size, replace=False)
                perm[clash], perm[pick] = perm[pick], perm[clash].copy()
        seq[filled:filled + n] = perm
        filled += n
    workers = seq[:total]
    cols = np.repeat(np.arange(k), d)
    B = csr_from_coords(workers, cols, 1.0, (n, k))
    return Code(B, name=fmt_name(where, n=n, k=k, d=d, seed=seed_param(seed)),
                params={"n": n, "k": k, "d": d, "seed": seed_param(seed)}, tolerates=0)


def _split(total: int, parts: int) -> np.ndarray:
    """Boundaries of ``parts`` contiguous near-equal blocks of range(total)."""
    return np.linspace(0, total, parts + 1).round().astype(np.int64)


def stochastic_block(n: int, k: int, communities: int, p: float, q: float,
                     seed: Any = None) -> Code:
    """Stochastic block code (SBC) [2; details from memory].

    Workers and partitions are split into c contiguous near-equal communities;
    B[i, j] ~ Bernoulli(p) when worker i and partition j are in the same community and
    Bernoulli(q) otherwise, independently. p = 1, q = 0 with k = n gives an FRC; p = q is
    a BGC. Below the community-detection threshold a polynomial-time adversary cannot
    find the blocks.

    Args:
        n, k: workers and partitions, each >= communities.
        communities: c >= 1.
        p, q: in-community and cross-community probabilities in [0, 1].
        seed: int or Generator.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.stochastic_block(n=6, k=6, communities=2, p=1.0, q=0.0, seed=0)
        >>> code.toarray().astype(int).tolist()[0]
        [1, 1, 1, 0, 0, 0]

    References:
        [2] Charles, Papailiopoulos, arXiv:1805.10378, 2018.
    """
    where = "stochastic_block"
    n = check_int(where, "n", n, low=1)
    k = check_int(where, "k", k, low=1)
    c = check_int(where, "communities", communities, low=1)
    if c > min(n, k):
        raise ValueError(f"{where}: communities={c} must be <= min(n, k)={min(n, k)}")
    p = check_probability(where, "p", p)
    q = check_probability(where, "q", q)
    check_entries(where, f"n={n}, k={k}, p={p}, q={q}", "n*k*max(p, q) (expected)",
                  int(np.ceil(n * k * max(p, q))))
    rng = as_rng(where, seed)
    wb, pb = _split(n, c), _split(k, c)
    all_r, all_c = [], []
    for a in range(c):
        for b in range(c):
            r, cc = bernoulli_coords(wb[a + 1] - wb[a], pb[b + 1] - pb[b], p if a == b else q, rng)
            all_r.append(r + wb[a])
            all_c.append(cc + pb[b])
    B = csr_from_coords(np.concatenate(all_r), np.concatenate(all_c), 1.0, (n, k))
    params = {"n": n, "k": k, "communities": c, "p": p, "q": q, "seed": seed_param(seed)}
    return Code(B, name=fmt_name(where, **params), params=params, tolerates=0)
