"""Straggler models: how long each worker takes in each round (seeded, picklable).

A delay model answers one question: ``model.sample(round, load) -> seconds`` (one entry
per worker, ``np.inf`` for a worker that fails or is dead this round). Every random draw
for round t comes from its own generator ``np.random.default_rng([seed, t])`` (models
that need a second stream use ``[seed, t, stream]``), and the draws do not depend on the
load: a worker's delay is ``load_i * (unit draw)``. Hence

* every scheme run with the same model and seed sees the SAME draws (fair comparisons),
* a run resumed at round t sees the same delays as an uninterrupted run.

Models compose: ``PersistentSlow(ShiftedExponential(...), workers=[3, 7], factor=10)``,
``Failures(0.05, base=Exponential(0.5))``.

Example:
    >>> import numpy as np, gradcode as gc
    >>> m = gc.stragglers.ShiftedExponential(shift=1.0, mean=0.5, seed=0)
    >>> d1 = m.sample(3, np.ones(4)); d2 = m.sample(3, 2 * np.ones(4))
    >>> bool(np.allclose(d2, 2 * d1))
    True

References:
    [1] K. Lee, M. Lam, R. Pedarsani, D. Papailiopoulos, K. Ramchandran, "Speeding up
        distributed machine learning using codes", arXiv:1512.02673, 2016 (shifted
        exponential run times).
    [2] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead", arXiv:1901.09671, 2019
        (exponential delays, mean 0.5 s).
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from typing import Any

import numpy as np

from ..core.validate import check_int, check_real

__all__ = [
    "Constant",
    "DelayModel",
    "Exponential",
    "Failures",
    "Markov",
    "NoDelay",
    "Pareto",
    "PersistentSlow",
    "ShiftedExponential",
    "Trace",
    "as_delay_model",
    "check_delays",
]


def _seed(where: str, seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"{where}: seed must be a non-negative integer, a numpy Generator or "
                        f"None, got {seed!r}")
    return int(seed)


def _load(where: str, load: Any) -> np.ndarray:
    arr = np.asarray(load, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{where}: load must be a 1-d array (one entry per worker), got "
                         f"shape {arr.shape}")
    return arr


class DelayModel:
    """Base class: ``sample(round, load)`` -> seconds per worker (``inf`` = failed).

    Subclasses implement :meth:`sample`; :meth:`validate` checks that the model fits n
    workers (called by :func:`gradcode.training.train` before any worker starts).
    """

    def sample(self, round: int, load: Any) -> np.ndarray:
        raise NotImplementedError

    def validate(self, n: int) -> None:
        """Raise ``ValueError`` if the model cannot describe ``n`` workers."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                           if not k.startswith("_") and not isinstance(v, np.ndarray))
        return f"{type(self).__name__}({fields})"


def check_delays(model: Any, delays: Any, n: int) -> np.ndarray:
    """Validate one round of delays from ``model``: shape (n,), no NaN, none negative."""
    arr = np.asarray(delays, dtype=np.float64)
    name = type(model).__name__
    if arr.shape != (n,):
        raise ValueError(f"delays: {name}.sample must return one delay per worker, shape "
                         f"({n},), got {arr.shape}")
    if np.any(np.isnan(arr)):
        raise ValueError(f"delays: {name}.sample returned NaN for worker "
                         f"{int(np.flatnonzero(np.isnan(arr))[0])}")
    if np.any(arr < 0):
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"delays: delays must be >= 0 seconds; {name} gave {arr[i]} for "
                         f"worker {i}")
    return arr


def as_delay_model(delays: Any) -> DelayModel:
    """``None`` -> :class:`NoDelay`; a model passes through; anything else is an error."""
    if delays is None:
        return NoDelay()
    if hasattr(delays, "sample") and callable(delays.sample):
        return delays
    raise TypeError(f"delays must be a gradcode.stragglers delay model (with .sample(round, "
                    f"load)) or None, got {type(delays).__name__}")


class NoDelay(DelayModel):
    """No injected delay: every worker answers at time 0 (simulated) / at once (local)."""

    def sample(self, round: int, load: Any) -> np.ndarray:
        return np.zeros(_load("NoDelay", load).size)


class Constant(DelayModel):
    """Fixed per-worker delays in seconds per unit of load: delay_i = load_i * seconds_i.

    Args:
        seconds: a scalar or one value per worker (``inf`` = always failed), all >= 0.
    """

    def __init__(self, seconds: Any) -> None:
        arr = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
        if arr.ndim != 1 or np.any(np.isnan(arr)) or np.any(arr < 0):
            raise ValueError(f"Constant: seconds must be >= 0 (scalar or 1-d), got {seconds!r}")
        self.seconds = arr

    def validate(self, n: int) -> None:
        if self.seconds.size not in (1, n):
            raise ValueError(f"Constant: len(seconds)={self.seconds.size} must be 1 or n={n}")

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("Constant", load)
        self.validate(load.size)
        with np.errstate(invalid="ignore"):
            out = load * self.seconds
        return np.where(load == 0, 0.0, out)


class ShiftedExponential(DelayModel):
    """Shifted-exponential time per unit of load: delay_i = load_i (shift + E_i), E_i ~ Exp(mean).

    The draws E_i come from ``default_rng([seed, round])`` and do not depend on the load.

    Args:
        shift: deterministic part, seconds per partition, >= 0.
        mean: mean of the exponential part, seconds per partition, >= 0.
        seed: non-negative int (or None for a fresh random one, then fixed).

    Raises:
        ValueError: negative shift or mean.
    """

    def __init__(self, shift: float = 1.0, mean: float = 1.0, seed: Any = 0) -> None:
        self.shift = check_real("ShiftedExponential", "shift", shift, low=0.0)
        self.mean = check_real("ShiftedExponential", "mean", mean, low=0.0)
        self.seed = _seed("ShiftedExponential", seed)

    def unit(self, round: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(round)])
        return self.shift + self.mean * rng.standard_exponential(n)

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load(type(self).__name__, load)
        return load * self.unit(round, load.size)


class Exponential(ShiftedExponential):
    """Exponential time per unit of load: delay_i = load_i E_i, E_i ~ Exp(mean) (ErasureHead:
    mean 0.5 s)."""

    def __init__(self, mean: float = 1.0, seed: Any = 0) -> None:
        super().__init__(shift=0.0, mean=mean, seed=seed)

    def __repr__(self) -> str:
        return f"Exponential(mean={self.mean!r}, seed={self.seed!r})"


class Pareto(DelayModel):
    """Heavy-tailed time per unit of load: delay_i = load_i * scale * P_i, P_i ~ Pareto(shape) >= 1.

    P = 1 + Lomax(shape) (classical Pareto with minimum 1); shape > 1 for a finite mean
    scale * shape / (shape - 1).
    """

    def __init__(self, shape: float = 2.0, scale: float = 1.0, seed: Any = 0) -> None:
        self.shape = check_real("Pareto", "shape", shape, low=0.0, low_open=True)
        self.scale = check_real("Pareto", "scale", scale, low=0.0)
        self.seed = _seed("Pareto", seed)

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("Pareto", load)
        rng = np.random.default_rng([self.seed, int(round)])
        return load * self.scale * (1.0 + rng.pareto(self.shape, load.size))


def _per_worker(where: str, name: str, value: Any, *, low: float, high: float) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{where}: {name} must be a scalar or a 1-d per-worker array, got "
                         f"shape {np.shape(value)}")
    bad = ~((arr >= low) & (arr <= high))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: {name} must lie in [{low}, {high}]; entry {i} is {arr[i]}")
    return arr


class Failures(DelayModel):
    """Independent failures: worker i fails in a round with probability p_i (delay = inf).

    Args:
        p: failure probability, a scalar or one per worker, in [0, 1].
        base: the delay model of workers that do not fail (default :class:`NoDelay`).
        seed: seed of the failure draws (stream ``[seed, round, 1]``).
        permanent: if True a failed worker stays dead for every later round.
    """

    def __init__(self, p: Any, base: DelayModel | None = None, seed: Any = 0, *,
                 permanent: bool = False) -> None:
        self.p = _per_worker("Failures", "p", p, low=0.0, high=1.0)
        self.base = as_delay_model(base)
        self.seed = _seed("Failures", seed)
        self.permanent = bool(permanent)

    def validate(self, n: int) -> None:
        if self.p.size not in (1, n):
            raise ValueError(f"Failures: len(p)={self.p.size} must be 1 or n={n}")
        self.base.validate(n)

    def _fails(self, round: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(round), 1])
        return rng.random(n) < np.broadcast_to(self.p, (n,))

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("Failures", load)
        self.validate(load.size)
        out = np.array(self.base.sample(round, load), dtype=np.float64)
        if self.permanent:
            dead = np.zeros(load.size, dtype=bool)
            for t in range(int(round) + 1):
                dead |= self._fails(t, load.size)
        else:
            dead = self._fails(round, load.size)
        out[dead] = np.inf
        return out


class PersistentSlow(DelayModel):
    """Some workers are always ``factor`` times slower than ``base`` says.

    Args:
        base: the underlying model.
        workers: indices of the slow workers.
        factor: slowdown, >= 1 (``inf`` = permanently dead).
    """

    def __init__(self, base: DelayModel, workers: Any, factor: float = 10.0) -> None:
        self.base = as_delay_model(base)
        w = np.asarray(workers, dtype=np.int64).ravel()
        if np.any(w < 0):
            raise ValueError(f"PersistentSlow: workers must be >= 0, got {w.tolist()}")
        self.workers = w
        self.factor = check_real("PersistentSlow", "factor", factor, low=1.0)

    def validate(self, n: int) -> None:
        if self.workers.size and self.workers.max() >= n:
            raise ValueError(f"PersistentSlow: worker {int(self.workers.max())} does not exist "
                             f"with n={n} workers")
        self.base.validate(n)

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("PersistentSlow", load)
        self.validate(load.size)
        out = np.array(self.base.sample(round, load), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out[self.workers] = out[self.workers] * self.factor
        out[np.isnan(out)] = 0.0          # 0 * inf: a zero-load worker answers at once
        return out

    def __repr__(self) -> str:
        return (f"PersistentSlow(base={self.base!r}, workers={self.workers.tolist()}, "
                f"factor={self.factor})")


class Markov(DelayModel):
    """Two-state (fast/slow) Markov chain per worker; slow workers take ``factor`` x longer.

    Each worker flips fast -> slow with probability ``p_slow`` and slow -> fast with
    ``p_recover`` between rounds, independently. Round 0 starts from the stationary law
    P(slow) = p_slow / (p_slow + p_recover). The chain is replayed from round 0 (stream
    ``[seed, t, 2]``) so any round can be sampled in any order with the same answer.

    Args:
        p_slow, p_recover: transition probabilities in [0, 1].
        factor: slowdown in the slow state, >= 1 (``inf`` = unavailable while slow).
        base: delay model of the fast state (default ``ShiftedExponential(1, 0.1, seed)``).
        seed: seed of the state chain.
    """

    def __init__(self, p_slow: float = 0.05, p_recover: float = 0.3, factor: float = 10.0,
                 base: DelayModel | None = None, seed: Any = 0) -> None:
        self.p_slow = check_real("Markov", "p_slow", p_slow, low=0.0, high=1.0)
        self.p_recover = check_real("Markov", "p_recover", p_recover, low=0.0, high=1.0)
        self.factor = check_real("Markov", "factor", factor, low=1.0)
        self.seed = _seed("Markov", seed)
        self.base = base if base is not None else ShiftedExponential(1.0, 0.1, self.seed)
        self._cache: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def states(self, round: int, n: int) -> np.ndarray:
        """Boolean vector: which workers are slow in ``round``."""
        round = check_int("Markov", "round", round, low=0)
        if self._cache is not None and self._cache[0] <= round and self._cache[1].size == n:
            t, state = self._cache
            state = state.copy()
        else:
            total = self.p_slow + self.p_recover
            pi = self.p_slow / total if total > 0 else 0.0
            state = np.random.default_rng([self.seed, 0, 2]).random(n) < pi
            t = 0
        while t < round:
            t += 1
            u = np.random.default_rng([self.seed, t, 2]).random(n)
            state = np.where(state, u >= self.p_recover, u < self.p_slow)
        self._cache = (round, state.copy())
        return state

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("Markov", load)
        out = np.array(self.base.sample(round, load), dtype=np.float64)
        slow = self.states(round, load.size)
        with np.errstate(invalid="ignore"):
            out[slow] = out[slow] * self.factor
        out[np.isnan(out)] = 0.0
        return out


class Trace(DelayModel):
    """Replay recorded delays from a CSV file with columns ``round, worker, seconds``.

    A header row is optional. ``seconds`` may be ``inf`` (failed). Rounds beyond the
    recording wrap around (``cycle=True``) or raise. Recorded seconds are used as is
    (``scale_by_load=False``: they were measured with the recorded run's load) or
    multiplied by the current worker's load.

    Args:
        path: the CSV file.
        cycle: replay the trace again from its first round when it runs out.
        scale: multiply every recorded delay (e.g. 0.01 to replay a trace fast).
        scale_by_load: multiply by each worker's load.

    Raises:
        ValueError: unreadable or malformed file, negative seconds, a round that misses
            some workers (checked against n by :meth:`validate`).
    """

    def __init__(self, path: str | os.PathLike, *, cycle: bool = True, scale: float = 1.0,
                 scale_by_load: bool = False) -> None:
        self.path = os.fspath(path)
        self.cycle = bool(cycle)
        self.scale = check_real("Trace", "scale", scale, low=0.0)
        self.scale_by_load = bool(scale_by_load)
        self._table = self._read(self.path)

    @staticmethod
    def _read(path: str) -> np.ndarray:
        try:
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
        except OSError as exc:
            raise ValueError(f"Trace: cannot read trace file {path!r}: {exc.strerror}") from None
        records = []
        for lineno, row in enumerate(rows, start=1):
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 3:
                raise ValueError(f"Trace: {path!r} line {lineno}: expected 3 columns "
                                 f"(round, worker, seconds), got {len(row)}")
            try:
                r, w, s = int(row[0]), int(row[1]), float(row[2])
            except ValueError:
                if lineno == 1 and not records:
                    continue                   # header
                raise ValueError(f"Trace: {path!r} line {lineno}: cannot parse {row!r} as "
                                 f"(int round, int worker, float seconds)") from None
            if r < 0 or w < 0:
                raise ValueError(f"Trace: {path!r} line {lineno}: round and worker must be "
                                 f">= 0, got {row!r}")
            if math.isnan(s) or s < 0:
                raise ValueError(f"Trace: {path!r} line {lineno}: seconds must be >= 0, got "
                                 f"{row[2]!r}")
            records.append((r, w, s))
        if not records:
            raise ValueError(f"Trace: {path!r} holds no (round, worker, seconds) records")
        rec = np.array(records, dtype=np.float64)
        rounds = int(rec[:, 0].max()) + 1
        workers = int(rec[:, 1].max()) + 1
        table = np.full((rounds, workers), np.nan)
        table[rec[:, 0].astype(int), rec[:, 1].astype(int)] = rec[:, 2]
        return table

    @property
    def rounds(self) -> int:
        return int(self._table.shape[0])

    def validate(self, n: int) -> None:
        table = self._table
        if table.shape[1] > n:
            raise ValueError(f"Trace: {self.path!r} names worker {table.shape[1] - 1} but the "
                             f"code has only n={n} workers")
        if table.shape[1] < n:
            raise ValueError(f"Trace: {self.path!r} has no records for workers "
                             f"{list(range(table.shape[1], n))[:10]} (n={n} workers needed)")
        missing = np.argwhere(np.isnan(table))
        if missing.size:
            r, w = missing[0]
            raise ValueError(f"Trace: {self.path!r} is missing worker {int(w)} in round {int(r)} "
                             f"({len(missing)} (round, worker) records missing in all)")

    def sample(self, round: int, load: Any) -> np.ndarray:
        load = _load("Trace", load)
        self.validate(load.size)
        t = int(round)
        if t >= self.rounds:
            if not self.cycle:
                raise ValueError(f"Trace: round {t} is beyond the {self.rounds} recorded rounds "
                                 f"of {self.path!r} (pass cycle=True to wrap around)")
            t %= self.rounds
        out = self._table[t] * self.scale
        if self.scale_by_load:
            with np.errstate(invalid="ignore"):
                out = np.where(load == 0, 0.0, out * load)
        return np.array(out, dtype=np.float64)
