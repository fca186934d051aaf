"""Helpers shared by the code families (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.validate import check_int


def fmt_name(family: str, **params: Any) -> str:
    """``family(a=1, b=2)`` for Code.name."""
    inner = ", ".join(f"{key}={value!r}" for key, value in params.items() if value is not None)
    return f"{family}({inner})"


def seed_param(seed: Any) -> int | None:
    """An integer seed as recorded in Code.name / params; None for a Generator or None."""
    return int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None


def check_n_s(where: str, n: Any, s: Any) -> tuple[int, int]:
    """n >= 1 workers and 0 <= s < n stragglers."""
    n = check_int(where, "n", n, low=1)
    s = check_int(where, "s", s, low=0)
    if s >= n:
        raise ValueError(f"{where}: s={s} must be < n={n} (at least one worker must respond)")
    return n, s


def csr_from_coords(rows: np.ndarray, cols: np.ndarray, data: np.ndarray | float,
                    shape: tuple[int, int]) -> sp.csr_array:
    data = np.broadcast_to(np.asarray(data), rows.shape)
    return sp.csr_array(sp.coo_array((data, (rows, cols)), shape=shape))


def bernoulli_coords(rows: int, cols: int, prob: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of an i.i.d. Bernoulli(prob) rows x cols 0/1 matrix, drawn sparsely.

    The number of ones is Binomial(rows * cols, prob) and, given the count, the set of
    ones is uniform: exactly the law of i.i.d. Bernoulli entries, without a dense draw.
    """
    total = rows * cols
    if total == 0 or prob <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    count = int(rng.binomial(total, prob))
    flat = np.sort(rng.choice(total, size=count, replace=False))
    return flat // cols, flat % cols
