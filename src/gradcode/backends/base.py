"""The Backend protocol shared by the simulated, local and Ray backends.

A backend owns the workers. The master loop (:func:`gradcode.training.train`) is generic:

.. code-block:: python

    backend.start(problem, code, delays=model)        # workers hold their partitions
    for t in rounds:
        state = scheme.wait.start(code, decoder)      # RoundWait, carries .deadline
        for arrival in backend.run_round(t, params, state):
            if state.add(arrival.worker, arrival.time):
                break                                 # the wait policy is satisfied
        backend.stop_round()                          # cancel the rest of the round
        info = backend.round_info                     # end time, dropped results, deaths
    backend.close()

Rules every backend follows:

* ``run_round`` yields :class:`Arrival` objects in arrival order and ends by itself when
  no live worker is still pending or when ``policy_state.deadline`` (seconds after the
  round start) has passed. Results of an older round are never yielded.
* A worker that dies is a permanent straggler (listed in ``round_info.dead``), never a
  hang. A result that is not a finite vector of the right shape is dropped and logged in
  ``round_info.dropped``.
* ``Arrival.time`` is seconds since the round started, on the backend's clock (virtual
  for ``simulated``, wall-clock for ``local``/``ray``).

Extension points (for nested codes and custom worker protocols): ``Arrival.kind`` is
``"result"`` for a coded gradient; other kinds (e.g. ``"progress"`` beacons) are passed to
``policy_state.on_message(arrival)`` when the state defines it, and
``stop_round(message)`` forwards ``message`` to the workers still busy. On the local
backend (used by the nested-code protocol, :mod:`gradcode.protocols.nested_scheme`) the handler is
also told ``"dead"`` (a worker died) and ``"dropped"`` (value: the reason) events, a
handler returning True ends the round's stream, and ``stop_round(message)`` with a
message keeps the workers busy (the round goes on until a plain ``stop_round()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..models.stragglers import check_delays

__all__ = ["Arrival", "Backend", "RoundInfo", "WorkersLostError"]

# helpers shared by the simulated, local and Ray backends (not part of the protocol)


class WorkersLostError(RuntimeError):
    """Every worker is dead (or no worker answered and none can): training cannot go on."""


@dataclass(frozen=True)
class Arrival:
    """One message from a worker.

    Attributes:
        worker: worker index (row of B).
        value: f_i = sum_j B[i, j] g_j (or a kind-specific payload).
        time: seconds since the round started (backend clock).
        round: the round the message belongs to.
        kind: ``"result"`` for a coded gradient; anything else is protocol-specific.
    """

    worker: int
    value: Any
    time: float
    round: int = 0
    kind: str = "result"


@dataclass
class RoundInfo:
    """What happened in the last round besides the arrivals.

    Attributes:
        end_time: when the master stopped waiting (seconds since the round start): the
            time of the arrival that satisfied the policy, else the deadline, else the
            last arrival.
        dropped: ``(worker, reason)`` for results that were discarded (non-finite, wrong
            shape, worker error).
        dead: workers found dead during this round.
        late: results of older rounds that were discarded.
        true_gradient: the exact full gradient when the backend has it for free
            (simulated), else None.
    """

    end_time: float = 0.0
    dropped: list[tuple[int, str]] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    late: int = 0
    true_gradient: np.ndarray | None = None


@runtime_checkable
class Backend(Protocol):
    """Protocol of a training backend (see the module docstring for the rules)."""

    name: str
    clock: str                      # "virtual" or "wall"

    def start(self, problem: Any, code: Any, *, delays: Any = None) -> None: ...

    def run_round(self, round: int, params: np.ndarray,
                  policy_state: Any) -> Iterator[Arrival]: ...

    def stop_round(self, message: Any = None) -> None: ...

    def close(self) -> None: ...

    @property
    def round_info(self) -> RoundInfo: ...

    @property
    def alive(self) -> np.ndarray: ...


class BackendState:
    """Mixin of the built-in backends: ``round_info`` and ``alive`` read ``self._info``
    (a :class:`RoundInfo`) and ``self._alive`` (bool mask), which the backend keeps."""

    _info: RoundInfo
    _alive: np.ndarray

    @property
    def round_info(self) -> RoundInfo:
        """What happened in the last round besides the arrivals (see :class:`RoundInfo`)."""
        return self._info

    @property
    def alive(self) -> np.ndarray:
        """Boolean mask of the workers not known to be dead for good (a copy)."""
        return self._alive.copy()


def round_delays(model: Any, round: int, load: np.ndarray, n: int,
                 time_scale: float = 1.0) -> np.ndarray:
    """This round's validated injected delays ``model.sample(round, load) * time_scale``
    (``inf``: the worker fails this round)."""
    return check_delays(model, model.sample(round, load), n) * time_scale


def round_deadline(policy_state: Any, fallback: float | None = None) -> float | None:
    """The round's deadline in seconds after its start: the wait state's ``deadline``,
    else ``fallback`` (a backend's ``round_timeout``); None: no limit."""
    deadline = getattr(policy_state, "deadline", None)
    return fallback if deadline is None else deadline


def bad_result(value: Any, dim: int | None = None) -> str | None:
    """Why a worker's result must be dropped (wrong type or shape, NaN/inf), else None."""
    if dim is not None and (not isinstance(value, np.ndarray) or value.shape != (dim,)):
        return f"result of shape {getattr(value, 'shape', None)}, expected ({dim},)"
    if not np.all(np.isfinite(value)):
        return "non-finite result (NaN or inf)"
    return None
