"""The simulated backend: one process, a virtual clock, deterministic.

Round t: the delay model gives every worker its finish time d_i = model.sample(t, load)
(``inf`` = no answer); arrivals are yielded in order of d_i (ties by worker index) up to
the policy's deadline. All k partition gradients are computed once per round
(``problem.partition_gradients``, vectorised for the linear problems) and every worker's
message is f = B G, so 10,000 workers cost one sparse product per round; the exact full
gradient comes for free (``round_info.true_gradient``).

Example:
    >>> import numpy as np, gradcode as gc
    >>> X, y = gc.data.synthetic_regression(60, 3, seed=0)
    >>> prob = gc.problems.least_squares(X, y, k=6)
    >>> code = gc.codes.fractional_repetition(n=6, s=1)
    >>> be = gc.backends.SimulatedBackend()
    >>> be.start(prob, code, delays=gc.stragglers.Exponential(1.0, seed=0))
    >>> st = gc.wait.first(3).start(code)
    >>> [a.worker for a in be.run_round(0, prob.init_params(), st)]
    [3, 2, 4, 0, 1, 5]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..models.problems import partition_gradients_at
from ..models.stragglers import as_delay_model
from .base import Arrival, BackendState, RoundInfo, bad_result, round_deadline, round_delays

__all__ = ["SimulatedBackend"]


class SimulatedBackend(BackendState):
    """Virtual-clock backend (see module docstring).

    Attributes:
        name: ``"simulated"``.
        clock: ``"virtual"``.
    """

    name = "simulated"
    clock = "virtual"

    def __init__(self) -> None:
        self._problem: Any = None
        self._code: Any = None
        self._info = RoundInfo()
        self._alive: np.ndarray = np.zeros(0, dtype=bool)

    def start(self, problem: Any, code: Any, *, delays: Any = None) -> None:
        """Hold the problem and the code; validate the delay model against n workers."""
        self._problem, self._code = problem, code
        self._model = as_delay_model(delays)
        self._model.validate(code.n)
        self._load = code.row_support.astype(np.float64)
        self._alive = np.ones(code.n, dtype=bool)

    def run_round(self, round: int, params: np.ndarray,
                  policy_state: Any) -> Iterator[Arrival]:
        code = self._code
        delays = self.sample_delays(round)
        deadline = round_deadline(policy_state)
        G = np.asarray(partition_gradients_at(self._problem, params, round))
        F = code.B @ G                                   # n x dim, every worker's message
        info = RoundInfo(true_gradient=G.sum(axis=0))
        self._info = info
        finite = np.isfinite(delays)
        on_time = finite if deadline is None else finite & (delays <= deadline)
        order = np.flatnonzero(on_time)
        order = order[np.argsort(delays[order], kind="stable")]
        last = 0.0
        for i in order:
            value = F[i]
            reason = bad_result(value)
            if reason is not None:
                info.dropped.append((int(i), reason))
                continue
            last = float(delays[i])
            info.end_time = last
            yield Arrival(int(i), value, last, int(round))
        if deadline is not None and order.size < code.n:
            info.end_time = float(deadline)
        else:
            info.end_time = last

    # -- hooks for schemes that run their own round protocol (nested codes:
    #    gradcode.protocols.nested_scheme); the generic loop uses run_round only.
    def sample_delays(self, round: int) -> np.ndarray:
        """This round's validated delays d_i = model.sample(round, load) (load = the row
        supports of B), exactly what :meth:`run_round` draws."""
        return round_delays(self._model, round, self._load, self._code.n)

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        """All k partition gradients at ``params`` (k x dim)."""
        return np.asarray(self._problem.partition_gradients(params))

    def set_round_info(self, info: RoundInfo) -> None:
        """Record ``info`` as :attr:`round_info` (for a round run by such a scheme)."""
        self._info = info

    def stop_round(self, message: Any = None) -> None:
        """Nothing to cancel in a simulation."""

    def close(self) -> None:
        self._problem = None
