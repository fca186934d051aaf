"""Repetition codes: uncoded, fractional repetition and cyclic repetition [1].

References:
    [1] R. Tandon, Q. Lei, A. G. Dimakis, N. Karampatziakis, "Gradient coding: avoiding
        stragglers in distributed learning", ICML 2017, arXiv:1612.03301.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.code import Code
from ..core.validate import as_rng, check_entries, check_int
from ._common import check_n_s, csr_from_coords, fmt_name, seed_param

__all__ = ["uncoded", "fractional_repetition", "cyclic_repetition"]


def uncoded(n: int) -> Code:
    """Plain data parallelism: B = I_n, worker i computes partition i.

    Tolerates no straggler: the master must wait for all n workers.

    Example:
        >>> import gradcode as gc
        >>> gc.codes.uncoded(4).B.toarray().diagonal().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    n = check_int("uncoded", "n", n, low=1)
    check_entries("uncoded", f"n={n}", "n", n)
    return Code(sp.identity(n, format="csr"), name=fmt_name("uncoded", n=n),
                params={"n": n}, tolerates=0)


def fractional_repetition(n: int, s: int) -> Code:
    """Fractional repetition code (FRC) tolerating s stragglers [1].

    Construction: (s + 1) | n and k = n. The workers form n / (s + 1) groups of s + 1;
    every worker of group g computes the s + 1 partitions of group g with coefficient 1:
    B = blockdiag(J_{s+1}, ..., J_{s+1}). Decoding needs one responder per group (weight
    1), so any s stragglers are tolerated. load = replication = s + 1.

    Args:
        n: number of workers (and partitions), a multiple of s + 1.
        s: number of stragglers to tolerate, 0 <= s < n.

    Raises:
        ValueError: n is not a multiple of s + 1, s >= n, n < 1.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.fractional_repetition(n=6, s=2)
        >>> code.toarray().astype(int).tolist()[0], code.tolerates
        ([1, 1, 1, 0, 0, 0], 2)

    References:
        [1] Tandon et al., arXiv:1612.03301, 2017, Section 3.
    """
    n, s = check_n_s("fractional_repetition", n, s)
    d = s + 1
    if n % d:
        raise ValueError(f"fractional_repetition: n={n} must be a multiple of s+1={d}")
    check_entries("fractional_repetition", f"n={n}, s={s}", "n*(s+1)", n * d)
    worker = np.repeat(np.arange(n), d)
    group_start = (worker // d) * d
    cols = group_start + np.tile(np.arange(d), n)
    B = csr_from_coords(worker, cols, 1.0, (n, n))
    return Code(B, name=fmt_name("fractional_repetition", n=n, s=s), params={"n": n, "s": s},
                tolerates=s, verify=False)


def cyclic_repetition(n: int, s: int, seed: Any = None) -> Code:
    """Cyclic repetition code (Tandon et al.'s randomized construction) [1].

    Draw H0 ~ N(0, 1)^{s x (n-1)} and set H = [H0 | -H0 1], so H 1 = 0. Row i has support
    {i, ..., i+s} mod n with B[i, i] = 1; its other s entries x solve
    H[:, supp \\ {i}] x = -H[:, i], so every row lies in null(H). Then rowspan(B) = null(H)
    contains 1 and any n - s rows are independent with probability 1: s stragglers are
    tolerated. k = n, load = replication = s + 1.

    Args:
        n: number of workers (and partitions).
        s: stragglers to tolerate, 0 <= s < n.
        seed: int or numpy Generator for H0.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.cyclic_repetition(n=5, s=2, seed=0)
        >>> code.load, code.tolerates
        (3, 2)

    References:
        [1] Tandon et al., arXiv:1612.03301, 2017, Algorithm 2 and their released code.
    """
    n, s = check_n_s("cyclic_repetition", n, s)
    # the s x s systems solved per row dominate: n (s+1)^2 numbers
    check_entries("cyclic_repetition", f"n={n}, s={s}", "n*(s+1)^2", n * (s + 1) ** 2)
    rng = as_rng("cyclic_repetition", seed)
    name = fmt_name("cyclic_repetition", n=n, s=s, seed=seed_param(seed))
    if s == 0:
        return Code(sp.identity(n, format="csr"), name=name, params={"n": n, "s": 0},
                    tolerates=0)
    H0 = rng.standard_normal((s, n - 1))
    H = np.hstack([H0, -H0.sum(axis=1, keepdims=True)])
    rows = np.arange(n)
    support = (rows[:, None] + np.arange(s + 1)[None, :]) % n        # n x (s+1)
    others = support[:, 1:]                                          # n x s
    lhs = np.transpose(H[:, others], (1, 0, 2))                     # n x s x s
    rhs = -H[:, rows].T[:, :, None]                                  # n x s x 1
    x = np.linalg.solve(lhs, rhs)[:, :, 0]
    data = np.hstack([np.ones((n, 1)), x])
    B = csr_from_coords(np.repeat(rows, s + 1), support.ravel(), data.ravel(), (n, n))
    return Code(B, name=name, params={"n": n, "s": s, "seed": seed_param(seed)},
                tolerates=s, verify=False)
