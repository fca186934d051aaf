"""Online estimation of straggling probabilities, and a code that follows them.

The heterogeneous code of Song & Choi [1] (:func:`gradcode.codes.heterogeneous`) needs
each worker's straggling probability p_i = P(worker i misses the round's deadline). The
paper assumes p known; this module estimates it from what the master sees anyway
(beyond the paper; [design], docs/theory.md, T27):

- :class:`StragglerEstimator` - per-worker Beta-Bernoulli counts of "missed the
  deadline", optionally over a sliding window of rounds (to follow drift), plus a
  censored maximum-likelihood fit of a shifted-exponential delay per worker, which
  predicts p_i for any deadline tau: p_i(tau) = exp(-(tau - shift_i) / mean_i)
  (the paper's delay model).
- :class:`AdaptiveCode` - every K rounds re-derives the optimal code from the current
  estimate and reports what the new allocation costs in moved data.

References:
    [1] Song & Choi, Approximate Gradient Coding for Distributed Learning with
        Heterogeneous Stragglers, arXiv:2510.22539, 2025.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codes.heterogeneous import AllocationChange, allocation_change, check_p, heterogeneous
from ..core.code import Code
from ..core.validate import check_int, check_real
from .schemes import Scheme
from .wait import WaitPolicy

__all__ = ["StragglerEstimator", "AdaptiveCode", "AdaptiveScheme", "Rederivation"]


def _as_pair(where: str, name: str, value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a pair (misses, responses) of pseudo-counts, "
                        f"got {value!r}") from None
    out = []
    for label, v in (("misses", a), ("responses", b)):
        try:
            arr = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
        except (TypeError, ValueError):
            arr = np.array([np.nan])
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{where}: {name} {label} must be positive and finite (a scalar "
                             f"or one per worker, n={n}), got {v!r}")
        out.append(arr)
    return out[0], out[1]


class StragglerEstimator:
    """Estimate each worker's straggling probability from the rounds it is fed.

    Bernoulli estimate (property :attr:`p`): with m_i the rounds worker i missed the
    deadline and N the rounds observed (all of them, or the last ``window``), and
    pseudo-counts (a_i, b_i) = ``prior``,

        p_i = (a_i + m_i) / (a_i + b_i + N)           (posterior mean of a Beta prior),

    never exactly 0 or 1, so the code never hands a worker everything on thin evidence.
    Its standard error is about sqrt(p_i (1 - p_i) / N).

    Delay fit (:meth:`p_at`): each worker's response time is modelled as
    shift_i + Exp(mean_i); arrivals after the round's stop time are right-censored.
    With r_i observed times t and c_i censored rounds stopped at tau_t, the maximum
    likelihood estimates are shift_i = min t and
    mean_i = (sum (t - shift_i) + sum (tau_t - shift_i)) / r_i, giving
    p_i(tau) = exp(-(tau - shift_i) / mean_i) for tau >= shift_i (1 below it). It uses the
    arrival times as well as the indicators, and extrapolates to other deadlines.

    Args:
        n: number of workers.
        prior: pseudo-counts (misses, responses), scalars or one per worker; default
            (1, 1), the uniform prior (Laplace's rule).
        window: use only the last ``window`` rounds (to track drifting p), or ``None``
            for all rounds.

    Raises:
        TypeError / ValueError: bad n, prior or window.

    Example:
        >>> import numpy as np
        >>> from gradcode.estimation import StragglerEstimator
        >>> est = StragglerEstimator(3)
        >>> est.update(np.array([True, True, False]))
        >>> est.update(np.array([0.5, 2.0, np.inf]), deadline=1.0)   # arrival times
        >>> est.p.round(3).tolist()
        [0.25, 0.5, 0.75]

    References:
        [1] Song & Choi, Approximate Gradient Coding for Distributed Learning with
            Heterogeneous Stragglers, arXiv:2510.22539, 2025 (delay model p = exp(-psi (tau - 1))).
    """

    def __init__(self, n: int, *, prior: Any = (1.0, 1.0), window: int | None = None) -> None:
        self.n = check_int("StragglerEstimator", "n", n, low=1)
        self._a, self._b = _as_pair("StragglerEstimator", "prior", prior, self.n)
        if window is not None:
            window = check_int("StragglerEstimator", "window", window, low=1)
        self.window = window
        self.rounds = 0
        self._buffer: deque[tuple[np.ndarray, np.ndarray | None, float, np.ndarray]] = \
            deque(maxlen=window)
        self._reset_sums()

    def _reset_sums(self) -> None:
        n = self.n
        self._misses = np.zeros(n)
        self._seen = np.zeros(n)          # rounds each worker was observed
        self._r = np.zeros(n)             # observed arrivals
        self._tsum = np.zeros(n)          # sum of observed arrival times
        self._tmin = np.full(n, np.inf)   # earliest observed arrival
        self._c = np.zeros(n)             # censored rounds
        self._csum = np.zeros(n)          # sum of their stop times
        self._censored: list[tuple[float, np.ndarray]] = []   # (stop time, who missed it)

    # ------------------------------------------------------------------ feeding
    def _parse(self, observation: Any, deadline: Any) -> tuple[np.ndarray, np.ndarray | None,
                                                               float]:
        where = "StragglerEstimator.update"
        arr = np.asarray(observation)
        if arr.dtype == bool:
            if arr.shape != (self.n,):
                raise ValueError(f"{where}: responders mask must have shape ({self.n},), got "
                                 f"{arr.shape}")
            return arr.copy(), None, np.nan
        if arr.dtype.kind in "iu":
            if arr.ndim != 1 or (arr.size and (arr.min() < 0 or arr.max() >= self.n)):
                raise ValueError(f"{where}: responder indices must be a 1-d array in "
                                 f"[0, {self.n - 1}], got {arr.tolist()[:10]}")
            mask = np.zeros(self.n, dtype=bool)
            mask[arr] = True
            return mask, None, np.nan
        if arr.dtype.kind == "f":
            if arr.shape != (self.n,):
                raise ValueError(f"{where}: arrival times must have shape ({self.n},), got "
                                 f"{arr.shape}")
            if deadline is None:
                raise ValueError(f"{where}: deadline is required with arrival times (the "
                                 f"time the master stopped waiting this round)")
            tau = check_real(where, "deadline", deadline, low=0.0)
            if np.any(np.isnan(arr)) or np.any(arr < 0):
                raise ValueError(f"{where}: arrival times must be >= 0 or inf (no arrival), "
                                 f"got {arr[np.isnan(arr) | (arr < 0)][:3].tolist()}")
            mask = arr <= tau
            return mask, np.where(mask, arr, np.inf), tau
        raise TypeError(f"{where}: observation must be a boolean responders mask, responder "
                        f"indices, or float arrival times, got dtype {arr.dtype}")

    def update(self, observation: Any, deadline: float | None = None, *,
               observed: Any = None) -> None:
        """Feed one round.

        Args:
            observation: a boolean mask of length n (True = answered in time), an int
                array of responder indices, or a float array of arrival times (``inf``
                for none; anything after ``deadline`` counts as a miss and is treated as
                censored, i.e. its value is not used).
            deadline: the time the master stopped waiting; required with arrival times.
                For the Bernoulli estimate keep it fixed across rounds (p is "missed
                THIS deadline"); the delay fit handles varying stop times.
            observed: optional boolean mask of the workers this round says something
                about (default: all). Leave out workers that had no work (an empty row
                answers at once and would look perfectly reliable).
        """
        mask, times, tau = self._parse(observation, deadline)
        if observed is None:
            seen = np.ones(self.n, dtype=bool)
        else:
            seen = np.asarray(observed)
            if seen.dtype != bool or seen.shape != (self.n,):
                raise ValueError(f"StragglerEstimator.update: observed must be a boolean mask "
                                 f"of shape ({self.n},), got {seen.dtype} {seen.shape}")
            seen = seen.copy()
        if self.window is None:
            self._add(mask, times, tau, seen)
        else:
            full = len(self._buffer) == self.window
            self._buffer.append((mask, times, tau, seen))   # evicts the oldest when full
            if full:
                self._recompute()
            else:
                self._add(mask, times, tau, seen)
        self.rounds += 1

    def _add(self, mask: np.ndarray, times: np.ndarray | None, tau: float,
             seen: np.ndarray) -> None:
        hit, miss = mask & seen, ~mask & seen
        self._misses += miss
        self._seen += seen
        if times is not None:
            self._r += hit
            self._tsum += np.where(hit, times, 0.0)
            self._tmin = np.minimum(self._tmin, np.where(hit, times, np.inf))
            self._c += miss
            self._csum += np.where(miss, tau, 0.0)
            if np.any(miss):
                self._censored.append((tau, np.flatnonzero(miss)))

    def _recompute(self) -> None:
        self._reset_sums()
        for mask, times, tau, seen in self._buffer:
            self._add(mask, times, tau, seen)

    def reset(self) -> None:
        """Forget every round (keeps the prior)."""
        self._buffer.clear()
        self.rounds = 0
        self._reset_sums()

    # ------------------------------------------------------------------ estimates
    @property
    def observed(self) -> np.ndarray:
        """Rounds in the current estimate, per worker (at most ``window``)."""
        return self._seen.astype(np.int64)

    @property
    def p(self) -> np.ndarray:
        """Posterior-mean straggling probabilities, length n, inside (0, 1)."""
        return (self._a + self._misses) / (self._a + self._b + self._seen)

    @property
    def stderr(self) -> np.ndarray:
        """Posterior standard deviation of each p_i (Beta posterior)."""
        a = self._a + self._misses
        b = self._b + self._seen - self._misses
        return np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    def delay_fit(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-worker (shift, mean) of the censored shifted-exponential fit.

        Workers with no observed arrival get shift = inf and mean = nan.
        """
        shift = self._tmin.copy()
        ok = self._r > 0
        mean = np.full(self.n, np.nan)
        s = shift[ok]
        # a censored round adds max(tau - shift, 0): a miss of a deadline below the shift
        # says nothing about the exponential part (docs/theory.md, T27)
        below = np.zeros(self.n)
        for tau, who in self._censored:
            np.add.at(below, who, np.maximum(shift[who] - tau, 0.0))
        censored = self._csum[ok] - self._c[ok] * s + below[ok]
        total = (self._tsum[ok] - self._r[ok] * s) + censored
        mean[ok] = np.maximum(total, 0.0) / self._r[ok]
        return shift, mean

    def p_at(self, deadline: float) -> np.ndarray:
        """Straggling probabilities for a deadline, from the delay fit.

        p_i(tau) = exp(-(tau - shift_i) / mean_i) (1 below the shift; 1 for a worker
        never seen to arrive), then clipped into [1 / (N + 2), 1 - 1 / (N + 2)] with N the
        rounds observed, so that no worker looks perfectly reliable on finite evidence.

        Raises:
            ValueError: no arrival times were fed (only masks), or a bad deadline.
        """
        tau = check_real("StragglerEstimator.p_at", "deadline", deadline, low=0.0)
        if not np.any(self._r + self._c):
            raise ValueError("StragglerEstimator.p_at: no arrival times observed; feed "
                             "update(times, deadline) to use the delay fit")
        shift, mean = self.delay_fit()
        p = np.ones(self.n)
        ok = np.isfinite(shift)
        with np.errstate(divide="ignore", invalid="ignore"):
            tail = np.exp(-np.maximum(tau - shift[ok], 0.0) / mean[ok])
        tail = np.where(mean[ok] == 0, np.where(tau >= shift[ok], 0.0, 1.0), tail)
        p[ok] = tail
        floor = 1.0 / (self._seen + 2)          # per worker
        return np.clip(p, floor, 1 - floor)

    def __repr__(self) -> str:
        return (f"StragglerEstimator(n={self.n}, window={self.window}, rounds={self.rounds}, "
                f"p=[{self.p.min():.3g}..{self.p.max():.3g}])")


# --------------------------------------------------------------------------- adaptive code
@dataclass(frozen=True)
class Rederivation:
    """One re-derivation of the adaptive code.

    Attributes:
        round: rounds observed when the code was re-derived.
        p: the estimate it used.
        change: data movement against the previous code (see
            :class:`gradcode.codes.heterogeneous.AllocationChange`).
    """

    round: int
    p: np.ndarray
    change: AllocationChange


class AdaptiveCode:
    """A heterogeneous code re-derived from a :class:`StragglerEstimator` every K rounds.

    Feed it each round's responders (or arrival times and deadline) through
    :meth:`observe`; after every ``every`` rounds it rebuilds
    ``gc.codes.heterogeneous(estimator.p, k, allocation)`` and returns the new code (else
    ``None``). Data moves only where the holder sets changed: each re-derivation is
    logged with its :class:`AllocationChange` (moved partitions = partitions whose holder
    set changed; new copies = partitions shipped to a worker). ``"northwest"`` keeps
    every worker's partitions contiguous in index order, so a small change of p only
    shifts the boundaries between neighbours; ``"chain"`` never moves data (fixed
    support) but its coefficients may be negative.

    Args:
        k: number of partitions.
        estimator: the estimator to read (it is fed by :meth:`observe`).
        every: re-derive every K rounds (K >= 1).
        allocation: passed to :func:`gradcode.codes.heterogeneous`.
        p0: probabilities for the initial code (default: the estimator's current p).
        tolerance: skip a re-derivation when no p_i moved by more than this since the
            last code (saves data movement on noise); 0 re-derives every time.

    Example:
        >>> import numpy as np
        >>> from gradcode.estimation import AdaptiveCode, StragglerEstimator
        >>> ada = AdaptiveCode(4, StragglerEstimator(2), every=2, p0=[0.5, 0.5])
        >>> ada.observe(np.array([True, False])) is None
        True
        >>> ada.observe(np.array([True, False])).meta["row_sums"].round(3).tolist()
        [3.6, 0.4]
        >>> ada.log[-1].change.moved_partitions   # partitions 2 and 3 changed holders
        2
    """

    def __init__(self, k: int, estimator: StragglerEstimator, *, every: int,
                 allocation: str = "northwest", p0: Any = None, tolerance: float = 0.0) -> None:
        if not isinstance(estimator, StragglerEstimator):
            raise TypeError(f"AdaptiveCode: estimator must be a StragglerEstimator, got "
                            f"{type(estimator).__name__}")
        self.k = check_int("AdaptiveCode", "k", k, low=1)
        self.every = check_int("AdaptiveCode", "every", every, low=1)
        self.tolerance = check_real("AdaptiveCode", "tolerance", tolerance, low=0.0, high=1.0)
        self.estimator = estimator
        self.allocation = allocation
        p = estimator.p if p0 is None else check_p("AdaptiveCode", p0, estimator.n, name="p0")
        self.code: Code = heterogeneous(p, self.k, allocation)
        self._p_code = np.asarray(p, dtype=float).copy()
        self.log: list[Rederivation] = []
        self._since = 0

    @property
    def moved_partitions(self) -> int:
        """Total moved partitions over all re-derivations."""
        return sum(r.change.moved_partitions for r in self.log)

    @property
    def new_copies(self) -> int:
        """Total (worker, partition) copies shipped over all re-derivations."""
        return sum(r.change.new_copies for r in self.log)

    def observe(self, observation: Any, deadline: float | None = None, *,
                observed: Any = None) -> Code | None:
        """Feed one round to the estimator; return the new code when it was re-derived.

        ``observed`` defaults to the workers with a non-empty row in the current code
        (see :meth:`StragglerEstimator.update`).
        """
        if observed is None:
            observed = self.code.row_support > 0
        self.estimator.update(observation, deadline, observed=observed)
        self._since += 1
        if self._since < self.every:
            return None
        self._since = 0
        return self.rederive()

    def rederive(self, p: Any = None) -> Code | None:
        """Rebuild the code now from ``p`` (default: the estimate); ``None`` if skipped."""
        p = self.estimator.p if p is None else check_p("AdaptiveCode.rederive", p,
                                                       self.estimator.n)
        if self.tolerance > 0 and np.max(np.abs(p - self._p_code)) <= self.tolerance:
            return None
        new = heterogeneous(p, self.k, self.allocation)
        change = allocation_change(self.code, new)
        self.log.append(Rederivation(self.estimator.rounds, np.asarray(p).copy(), change))
        self.code = new
        self._p_code = np.asarray(p, dtype=float).copy()
        return new

    def __repr__(self) -> str:
        return (f"AdaptiveCode(k={self.k}, every={self.every}, allocation={self.allocation!r}, "
                f"rederivations={len(self.log)}, moved_partitions={self.moved_partitions})")


class AdaptiveScheme:
    """Train with an :class:`AdaptiveCode` through :func:`gradcode.training.train`.

    Pass :attr:`scheme` as the scheme and the object itself as the callback: after each
    round it feeds the round's responders to the estimator (only workers with a
    non-empty row count as observed), and every ``every`` rounds it returns a new
    :class:`gradcode.schemes.Scheme` with the re-derived code, decoder ``"unbiased"`` and
    ``wait(code)``; ``train`` then re-assigns the partitions and goes on.

    The responders are read as "answered before the deadline", so ``wait`` should be a
    deadline policy (``gc.wait.deadline(tau)``); with "first r" policies a non-responder is
    not a straggler in the p_i sense.

    Args:
        adaptive: the :class:`AdaptiveCode` (holds the estimator and the current code).
        wait: a wait policy, or a function code -> wait policy (e.g. a deadline that grows
            with the code's load).
        then: optional further callback (row -> True stops training).

    Example:
        >>> import numpy as np, gradcode as gc
        >>> from gradcode.estimation import AdaptiveCode, AdaptiveScheme, StragglerEstimator
        >>> X, y = gc.data.synthetic_classification(200, 4, seed=0)
        >>> prob = gc.problems.logistic_regression(X, y, k=6)
        >>> p = np.array([0.1, 0.2, 0.3, 0.5])
        >>> ada = AdaptiveScheme(AdaptiveCode(6, StragglerEstimator(4), every=10, p0=[0.3] * 4),
        ...                      gc.wait.deadline(10.0))
        >>> h = gc.training.train(prob, ada.scheme, rounds=30, callback=ada,
        ...                       delays=gc.stragglers.Failures(p, seed=1))
        >>> len(ada.adaptive.log), ada.scheme.code.meta["p"].round(2).tolist()
        (3, [0.09, 0.25, 0.25, 0.47])
    """

    def __init__(self, adaptive: AdaptiveCode, wait: Any,
                 then: Callable[[dict], Any] | None = None) -> None:
        if not isinstance(adaptive, AdaptiveCode):
            raise TypeError(f"AdaptiveScheme: adaptive must be an AdaptiveCode, got "
                            f"{type(adaptive).__name__}")
        if not (isinstance(wait, WaitPolicy) or callable(wait)):
            raise TypeError(f"AdaptiveScheme: wait must be a WaitPolicy or a function code -> "
                            f"WaitPolicy, got {type(wait).__name__}")
        self.adaptive = adaptive
        self._wait = wait
        self._then = then
        self._Scheme = Scheme
        self.scheme = self._make(adaptive.code)

    def _make(self, code: Code) -> Any:
        wait = self._wait if not callable(self._wait) or hasattr(self._wait, "start") \
            else self._wait(code)
        return self._Scheme(code, "unbiased", wait,
                            name=f"adaptive {code.name} every {self.adaptive.every}")

    def __call__(self, row: dict) -> Any:
        mask = np.zeros(self.adaptive.estimator.n, dtype=bool)
        mask[np.asarray(row["responders"], dtype=np.int64)] = True
        new = self.adaptive.observe(mask)
        if self._then is not None and self._then(row) is True:
            return True
        if new is None:
            return None
        self.scheme = self._make(new)
        return self.scheme
