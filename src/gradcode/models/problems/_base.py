"""Problem and Part base classes, the partition argument, and seeded minibatches.

Minibatch rule (gradient coding with minibatches): in round t every worker that holds
partition j must use the SAME rows of j, or the coded combinations f_i = sum_j B[i, j] g_j
no longer decode to the gradient of one batch. :class:`Minibatches` draws the rows of
partition j in round t from ``numpy.random.default_rng([seed, t, j])``: the draw depends on
(seed, t, j) only, so every replica of j, in any process, draws the same rows.

With b = ``batch_size`` rows per partition, b_j = min(b, m_j) and the union size
U = sum_j b_j (the same every round), partition j's round-t gradient is

    g_j^t(w) = (1/U) sum_{i in S_j^t} grad l_i(w) + l2 (b_j / U) w,

so g^t = sum_j g_j^t is exactly the gradient of the mean loss (plus l2) over the union of
the round's minibatches S_1^t, ..., S_k^t. ``batch_size=None`` (or ``round=None``) is the
full partition, S_j = P_j and U = m: the gradient of the full objective.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core.validate import check_int
from ..data import partition

__all__ = ["Minibatches", "ModelProblem", "Part", "Problem", "gradient_at",
           "partition_gradients_at"]


def parts_arg(where: str, m: int, k: Any, partition_seed: Any) -> list[np.ndarray]:
    """k (an int: ``data.partition``) or explicit index arrays splitting 0..m-1 once each."""
    if isinstance(k, (list, tuple)):
        parts = [np.asarray(p, dtype=np.int64) for p in k]
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if (flat.size != m or np.unique(flat).size != m or flat.min(initial=0) < 0
                or flat.max(initial=0) >= m):
            raise ValueError(f"{where}: the given parts must split the {m} samples exactly "
                             f"once each")
        if any(p.size == 0 for p in parts):
            raise ValueError(f"{where}: every given part must hold at least one sample")
        return parts
    k = check_int(where, "k", k, low=1)
    if k > m:
        raise ValueError(f"{where}: k={k} must be <= the number of samples {m} (no empty parts)")
    return partition(m, k, seed=partition_seed)


class Minibatches:
    """Which rows of each partition a round uses (see the module docstring).

    Args:
        sizes: m_j, the number of samples of each partition.
        batch_size: rows per partition and round (None: the full partition).
        seed: the seed of the draws (an int >= 0).

    Example:
        >>> mb = Minibatches([5, 3], batch_size=2, seed=0)
        >>> mb.total(0), mb.count(0, 1)
        (4, 2)
        >>> bool(np.array_equal(mb.rows(3, 0), Minibatches([5, 3], 2, 0).rows(3, 0)))
        True
        >>> Minibatches([5, 3], None, 0).rows(3, 0) is None
        True
    """

    def __init__(self, sizes: Sequence[int], batch_size: int | None, seed: int = 0,
                 where: str = "Minibatches") -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.batch_size = None if batch_size is None else check_int(where, "batch_size",
                                                                    batch_size, low=1)
        self.seed = check_int(where, "batch_seed", seed, low=0)
        self.m = int(self.sizes.sum())
        self.union = self.m if self.batch_size is None else \
            int(np.minimum(self.sizes, self.batch_size).sum())

    def active(self, round: int | None) -> bool:
        """True when round ``round`` uses minibatches (batch_size set and round given)."""
        return self.batch_size is not None and round is not None

    def total(self, round: int | None) -> int:
        """U: the number of samples the round's gradient averages over."""
        return self.union if self.active(round) else self.m

    def count(self, round: int | None, j: int) -> int:
        """b_j: the rows partition j uses in round ``round``."""
        m_j = int(self.sizes[j])
        return min(m_j, self.batch_size) if self.active(round) else m_j

    def rows(self, round: int | None, j: int) -> np.ndarray | None:
        """Sorted local row indices of partition j in round ``round`` (None: all rows)."""
        if not self.active(round):
            return None
        m_j = int(self.sizes[j])
        if self.batch_size >= m_j:
            return None
        rng = np.random.default_rng([self.seed, check_int("Minibatches.rows", "round", round,
                                                          low=0), int(j)])
        return np.sort(rng.choice(m_j, size=self.batch_size, replace=False))


class Part:
    """One partition's data; ``gradient(params, round=None)`` returns g_j (round t's
    minibatch of j when the problem has a ``batch_size``; the full partition for None)."""

    def gradient(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        raise NotImplementedError


class Problem:
    """Base class of training problems (see :mod:`gradcode.problems`).

    Attributes:
        dim: number of parameters (flat vector length).
        k: number of partitions.
        name: short description.
        dtype: dtype of the flat parameter and gradient vectors (float64 for the NumPy
            problems, the model's dtype for torch and JAX models).
        batch_size: rows per partition and round (None: full partitions).
    """

    dim: int
    k: int
    name: str = "problem"
    dtype: np.dtype = np.dtype(np.float64)
    batch_size: int | None = None

    def init_params(self) -> np.ndarray:
        return np.zeros(self.dim, dtype=self.dtype)

    def part(self, j: int) -> Part:
        raise NotImplementedError

    def partition_gradients(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        """All k partition gradients of round ``round`` as a (k, dim) array (row j = g_j)."""
        return np.stack([self.part(j).gradient(params, round=round) for j in range(self.k)])

    def full_gradient(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        """g = sum_j g_j: grad F(params) for ``round=None``, else the gradient over the
        union of round ``round``'s minibatches."""
        return self.partition_gradients(params, round=round).sum(axis=0)

    def loss(self, params: np.ndarray) -> float:
        raise NotImplementedError

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        return {"loss": self.loss(params)}

    def lipschitz(self) -> float | None:
        """An upper bound L on the gradient's Lipschitz constant (lr = 1/L), if known."""
        return None

    def _check_params(self, params: Any) -> np.ndarray:
        p = np.asarray(params, dtype=self.dtype)
        if p.shape != (self.dim,):
            raise ValueError(f"{self.name}: params must have shape ({self.dim},), got {p.shape}")
        return p

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, dim={self.dim}, k={self.k})"


class ModelProblem(Problem):
    """Base of the torch and JAX problems: initial parameters kept as one flat vector
    ``_p0``, and per-partition views (``_views``, built in-process for evaluation) left
    out when the problem is pickled for a worker."""

    _p0: np.ndarray
    _views: dict

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_views"] = {}
        return state

    def init_params(self) -> np.ndarray:
        return self._p0.copy()


@functools.lru_cache(maxsize=256)
def _takes_round(cls: type, method: str) -> bool:
    try:
        params = inspect.signature(getattr(cls, method)).parameters
    except (TypeError, ValueError):
        return False
    return "round" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                    for p in params.values())


def gradient_at(part: Any, params: np.ndarray, round: int | None) -> np.ndarray:
    """``part.gradient(params, round=round)``; a part whose ``gradient`` takes no
    ``round`` (written before minibatches) is called as ``part.gradient(params)``."""
    if round is not None and _takes_round(type(part), "gradient"):
        return part.gradient(params, round=round)
    return part.gradient(params)


def partition_gradients_at(problem: Any, params: np.ndarray, round: int | None) -> np.ndarray:
    """``problem.partition_gradients(params, round=round)``, or without ``round`` for a
    problem whose method does not take it."""
    if round is not None and _takes_round(type(problem), "partition_gradients"):
        return problem.partition_gradients(params, round=round)
    return problem.partition_gradients(params)
