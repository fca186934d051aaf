"""Problems for the contract suites (module-level, so worker processes can unpickle them)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PoisonedProblem"]


class _PoisonedPart:
    def __init__(self, part: Any) -> None:
        self.part = part

    def gradient(self, params: np.ndarray) -> np.ndarray:
        return np.full(np.shape(self.part.gradient(params)), np.nan)


class PoisonedProblem:
    """A problem whose partition ``bad`` has a NaN gradient (everything else delegated).

    Args:
        base: a :mod:`gradcode.problems` problem.
        bad: the poisoned partition.
    """

    def __init__(self, base: Any, bad: int) -> None:
        self.base, self.bad = base, int(bad)
        self.dim, self.k, self.name = base.dim, base.k, f"poisoned({base.name})"

    def part(self, j: int) -> Any:
        part = self.base.part(j)
        return _PoisonedPart(part) if j == self.bad else part

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        G = np.array(self.base.partition_gradients(params), dtype=np.float64)
        G[self.bad] = np.nan
        return G

    def init_params(self) -> np.ndarray:
        return self.base.init_params()

    def loss(self, params: np.ndarray) -> float:
        return self.base.loss(params)

    def full_gradient(self, params: np.ndarray) -> np.ndarray:
        return self.partition_gradients(params).sum(axis=0)
