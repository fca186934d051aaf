"""check_backend: the contract of a host (:class:`gradcode.backends.base.Host`).

Every case starts the same host again with a small least-squares problem and a known
delay model, runs rounds through the host's methods (or the round driver) and compares
what comes back with an independent computation (B G with NumPy, least squares for the
nested fallback). Cases: the plain coded round, failed workers (infinite delay), the
deadline timer, a NaN partition, results of an old round, cancellation that interrupts
a long injected delay, a reassigned code, a worker killed by ``kill(host, worker)``
(when given), the nested protocol (exact, and its fallback when more workers fail than
the top level tolerates) and a round bounded by ``round_timeout`` in ``train``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..codes import cyclic_repetition, fractional_repetition
from ..codes import nested as nested_code
from ..engine.rounds import run_round
from ..engine.schemes import uncoded
from ..engine.training import train
from ..models.data import synthetic_regression
from ..models.problems import least_squares
from ..models.stragglers import DelayModel
from ..protocols.nested_scheme import nested
from .problems import PoisonedProblem

__all__ = ["ScriptedDelays", "check_backend"]

_SLOW = 1e4          # "stuck": far beyond any deadline of the checks (in delay units)


class ScriptedDelays(DelayModel):
    """Delays per round from a table: round t uses row t mod len(table) (seconds, not
    scaled by load; ``inf``: failed)."""

    def __init__(self, table: Any) -> None:
        self.table = np.atleast_2d(np.asarray(table, dtype=np.float64))

    def sample(self, round: int, load: Any) -> np.ndarray:
        return self.table[int(round) % self.table.shape[0]].copy()

    def validate(self, n: int) -> None:
        if self.table.shape[1] != n:
            raise ValueError(f"ScriptedDelays: {self.table.shape[1]} columns for n={n}")

    def __repr__(self) -> str:
        return f"ScriptedDelays({self.table.tolist()})"


def _problem(k: int) -> Any:
    X, y = synthetic_regression(20 * k, 3, seed=0)
    return least_squares(X, y, k=k)


def _drain(host: Any, deadline: float) -> list:
    return list(host.events(deadline))


def _results(events: list) -> dict[int, np.ndarray]:
    return {e.worker: np.asarray(e.value, dtype=np.float64) for e in events
            if e.kind == "result"}


def _expect(where: str, got: dict[int, np.ndarray], workers: list[int], code: Any,
            G: np.ndarray) -> None:
    assert sorted(got) == sorted(workers), \
        f"{where}: results from workers {sorted(got)}, expected {sorted(workers)}"
    F = code.B.toarray() @ G
    for w, value in got.items():
        assert np.allclose(value, F[w], rtol=1e-10, atol=1e-12), \
            f"{where}: worker {w}'s result differs from B[{w}] G"


def _check_plain(host: Any, unit: float, limit: float) -> None:
    where = "check_backend: plain round"
    prob, code = _problem(5), cyclic_repetition(n=5, s=1, seed=0)
    delays = ScriptedDelays([[unit, 2 * unit, 3 * unit, 4 * unit, np.inf]])
    host.start(prob, code, delays=delays)
    params = np.array([0.5, -1.0, 2.0])
    asked = np.asarray(host.broadcast(3, params))
    assert asked.tolist() == [0, 1, 2, 3], f"{where}: asked {asked.tolist()}, expected " \
        f"[0, 1, 2, 3] (worker 4 has an infinite delay: it fails the round)"
    events = _drain(host, limit)
    host.cancel()
    assert all(e.round == 3 for e in events), f"{where}: an event of another round"
    times = [e.time for e in events]
    assert times == sorted(times), f"{where}: events not in time order: {times}"
    assert [e.kind for e in events] == ["result"] * 4, \
        f"{where}: kinds {[e.kind for e in events]}, expected four results and no timer"
    _expect(where, _results(events), [0, 1, 2, 3], code, prob.partition_gradients(params))
    if host.clock == "virtual":
        assert [e.worker for e in events] == [0, 1, 2, 3] and np.allclose(
            times, [unit * i for i in (1, 2, 3, 4)]), f"{where}: virtual times {times}"
    assert host.round_info.asked.tolist() == [0, 1, 2, 3], f"{where}: round_info.asked"


def _check_timer_late_cancel(host: Any, unit: float, limit: float) -> None:
    where = "check_backend: deadline, late results, cancel"
    prob, code = _problem(4), fractional_repetition(n=4, s=1)
    table = [[unit, unit, unit, _SLOW], [unit, unit, unit, _SLOW], [unit] * 4]
    host.start(prob, code, delays=ScriptedDelays(table))
    G = {t: prob.partition_gradients(np.full(3, float(t))) for t in range(3)}
    host.broadcast(0, np.full(3, 0.0))
    events = _drain(host, limit)
    assert events and events[-1].kind == "timer" and events[-1].worker == -1, \
        f"{where}: a worker is still busy at the deadline but no timer event ends the stream"
    assert sorted(_results(events)) == [0, 1, 2], f"{where}: results {sorted(_results(events))}"
    # round 1 starts while round 0's slow worker is busy: nothing of round 0 may surface
    host.broadcast(1, np.full(3, 1.0))
    events = _drain(host, limit)
    assert all(e.round == 1 for e in events), f"{where}: an event of round 0 in round 1"
    _expect(where, _results(events), [0, 1, 2], code, G[1])
    host.cancel()
    host.cancel()                                       # idempotent
    assert [e for e in host.events(limit) if e.kind != "timer"] == [], \
        f"{where}: events after cancel()"
    # the cancel ended worker 3's long delay: in round 2 it answers like the others
    host.broadcast(2, np.full(3, 2.0))
    events = _drain(host, limit)
    host.cancel()
    assert "timer" not in [e.kind for e in events], \
        f"{where}: round 2 hit the deadline: cancel() did not interrupt a delay"
    _expect(where, _results(events), [0, 1, 2, 3], code, G[2])


def _check_nan_and_reassign(host: Any, unit: float, limit: float) -> None:
    where = "check_backend: NaN partition"
    base, code = _problem(4), fractional_repetition(n=4, s=1)
    host.start(PoisonedProblem(base, 1), code, delays=ScriptedDelays([[unit] * 4]))
    params = np.ones(3)
    host.broadcast(0, params)
    events = _drain(host, limit)
    host.cancel()
    dropped = sorted(e.worker for e in events if e.kind == "dropped")
    holders = sorted(np.flatnonzero(code.B.toarray()[:, 1]).tolist())
    assert dropped == holders, f"{where}: dropped {dropped}, expected the holders {holders}"
    assert sorted(w for w, _ in host.round_info.dropped) == holders, \
        f"{where}: round_info.dropped {host.round_info.dropped}"
    good = [w for w in range(4) if w not in holders]
    _expect(where, _results(events), good, code, base.partition_gradients(params))
    where = "check_backend: reassign"
    other = cyclic_repetition(n=4, s=1, seed=1)
    host.reassign(base, other)
    host.broadcast(1, params)
    events = _drain(host, limit)
    host.cancel()
    _expect(where, _results(events), [0, 1, 2, 3], other, base.partition_gradients(params))


def _check_dead(host: Any, unit: float, limit: float,
                kill: Callable[[Any, int], None]) -> None:
    where = "check_backend: dead worker"
    prob, code = _problem(4), fractional_repetition(n=4, s=1)
    host.start(prob, code, delays=ScriptedDelays([[unit] * 4]))
    kill(host, 2)
    params = np.ones(3)
    asked = host.broadcast(0, params).tolist()
    events = _drain(host, limit)
    host.cancel()
    assert 2 not in _results(events), f"{where}: a result from the killed worker"
    assert 2 not in asked or any(e.kind == "dead" and e.worker == 2 for e in events), \
        f"{where}: the killed worker was asked but no 'dead' event came"
    assert not host.alive[2], f"{where}: alive[2] is still True"
    _expect(where, _results(events), [0, 1, 3], code, prob.partition_gradients(params))


def _check_nested(host: Any, unit: float, limit: float,
                  kill: Callable[[Any, int], None] | None) -> None:
    where = "check_backend: nested protocol"
    prob = _problem(6)
    code = nested_code(6, (0, 1, 2), seed=0)
    scheme = nested(code)
    params = np.array([0.3, -0.2, 1.0])
    G = prob.partition_gradients(params)
    host.start(prob, code, delays=ScriptedDelays([[unit] * 6, [unit, np.inf, np.inf,
                                                               np.inf, unit, unit]]),
               task=scheme.task)
    res = run_round(host, scheme.round_protocol(host, 0, params), 0, params,
                    round_timeout=limit)
    assert res.ended == "decided" and res.extra["nested_level"] in (0, 1, 2), \
        f"{where}: round ended {res.ended!r} at level {res.extra['nested_level']}"
    assert np.allclose(res.g_hat, G.sum(axis=0), rtol=1e-9), f"{where}: not exact"
    where = "check_backend: nested fallback (3 failed > s_max = 2)"
    res = run_round(host, scheme.round_protocol(host, 1, params), 1, params,
                    round_timeout=limit)
    assert res.ended == "decided" and res.fallback, \
        f"{where}: ended {res.ended!r}, fallback {res.fallback}: the round must end by " \
        f"itself with the fallback decision"
    C = code.meta["level_codes"][2].B.toarray()[[0, 4, 5]]
    a = np.linalg.lstsq(C.T, np.ones(6), rcond=None)[0]
    assert sorted(res.responders) == [0, 4, 5], f"{where}: responders {res.responders}"
    assert np.allclose(res.g_hat, a @ (C @ G), rtol=1e-9, atol=1e-12), \
        f"{where}: g_hat is not the optimal combination of the level vectors"
    if kill is None:
        return
    where = "check_backend: nested protocol with a killed worker"
    kill(host, 3)
    res = run_round(host, scheme.round_protocol(host, 2, params), 2, params,
                    round_timeout=limit)
    assert 3 not in res.responders and np.allclose(res.g_hat, G.sum(axis=0), rtol=1e-9), \
        f"{where}: not exact without worker 3 (ended {res.ended!r})"


def _check_train_bounded(factory: Callable[[], Any], unit: float) -> None:
    where = "check_backend: train with a stuck worker and round_timeout"
    prob = _problem(4)
    stuck = ScriptedDelays([[unit, unit, unit, _SLOW]])
    hist = train(prob, uncoded(4), rounds=2, backend=factory(), delays=stuck,
                 round_timeout=40 * unit, grad_error=False)
    assert [r["n_responders"] for r in hist] == [3, 3], \
        f"{where}: responders {[r['n_responders'] for r in hist]}, expected 3 per round"


def check_backend(factory: Callable[[], Any], *, kill: Callable[[Any, int], None] | None = None,
                  unit: float = 0.02, limit: float = 2.0) -> None:
    """Check that ``factory()`` builds a host that follows the Host contract.

    Args:
        factory: builds a fresh, unstarted host (e.g. ``gc.backends.SimulatedBackend``
            or ``lambda: LocalBackend(start_method="spawn")``).
        kill: ``kill(host, worker)`` kills a started worker for good (a process, an
            actor); None skips the dead-worker cases.
        unit: injected delay unit in seconds of the host's clock (small, so wall-clock
            hosts run the checks in seconds).
        limit: the deadline (seconds) given to each round of the checks; a correct
            host never reaches it except where a case expects the timer.

    Raises:
        AssertionError: the host broke a rule (the message names the case and rule).

    Example:
        >>> import gradcode as gc
        >>> from gradcode.testing import check_backend
        >>> check_backend(gc.backends.SimulatedBackend)
    """
    host = factory()
    try:
        _check_plain(host, unit, limit)
        _check_timer_late_cancel(host, unit, limit)
        _check_nan_and_reassign(host, unit, limit)
        if kill is not None:
            _check_dead(host, unit, limit, kill)
        _check_nested(host, unit, limit, kill)
    finally:
        host.close()
    _check_train_bounded(factory, unit)
