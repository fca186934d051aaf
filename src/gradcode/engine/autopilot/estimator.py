"""What the autopilot knows about the cluster: per-worker speed, the shared delay law,
the cost of load, failures and drift, learned from the rounds it runs.

Model (fitted online, over a sliding window of rounds). The time worker i takes in a
round where it holds L partitions is

    T_i = loc_i * (g(L) + h(L) (R - 1)),   g(L) = 1 + kappa (L - 1),
                                            h(L) = 1 + lam (L - 1),   R >= 1 i.i.d.,

* ``loc_i``: the worker's own speed (seconds for one partition at its best): the fastest
  load-normalised time it showed in the window. Persistent slowness and heterogeneous
  speeds live here.
* ``R``: a residual shared by all workers (queueing noise, i.i.d. slow rounds, heavy
  tails, bursts), estimated from the pooled residuals T / (loc_i g(L)), with the workers
  the master stopped waiting for as RIGHT-CENSORED observations (T_i > stop time):
  Kaplan-Meier for the body, and above its 60% point an exponential or a Pareto tail,
  whichever fits the censored exceedances better (:class:`ResidualLaw`). The tail
  matters: the master rarely waits for the slowest answers, yet plans that wait for
  everyone are judged by them.
* ``kappa``: how much one more partition costs relative to the fixed per-round cost
  (0: latency dominated, 1: time proportional to the load). Learned by a least-squares
  fit of log g (over a grid) to the 10% quantiles (Kaplan-Meier, censored) of the times
  at each load level seen at least 8 times; before two levels, ``prior_load_cost``.
* ``lam``: the same for the spread (median - 10% quantile) of the times: 0 when the
  noise is a fixed latency jitter, kappa when it scales with the work (gradcode's
  delay models); before two levels, equal to kappa.

Workers the master never saw answer within the window are ``silent``: their speed is
only bounded below by their censoring times, and the planner treats them as twice that
bound. A worker that answered before and has since missed at least ``fail_rounds``
rounds, whose misses would have had probability below ``fail_level`` if it were alive
(the product over those rounds of P(R > stop time / (loc_i g(L)))), is ``failed``
(dead or suddenly much slower: the master cannot tell them apart without waiting) and
predicted as never answering until it answers again. Both rules also track drift: the
window forgets, and a worker that answers again is reinstated at once.

Example:
    >>> import numpy as np
    >>> from gradcode.engine.autopilot.estimator import ClusterEstimator
    >>> est = ClusterEstimator(4, load_cost=0.0)
    >>> for t in range(6):
    ...     est.update(np.ones(4), np.array([1.0, 1.1, 1.2, np.inf]), stop_time=1.5)
    >>> est.loc.round(2).tolist(), est.silent.tolist()
    ([1.0, 1.1, 1.2, 3.0], [False, False, False, True])

References:
    [1] E. L. Kaplan, P. Meier, "Nonparametric estimation from incomplete observations",
        J. Amer. Statist. Assoc. 53, 1958 (the censored residual law).
    [2] K. Lee et al., "Speeding up distributed machine learning using codes",
        arXiv:1512.02673, 2016 (shifted-exponential run times, fixed + per-load cost).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from ...core.validate import check_int, check_real

__all__ = ["ClusterEstimator", "ResidualLaw", "kaplan_meier"]

_KAPPA_GRID = np.linspace(0.0, 2.0, 201)


def kaplan_meier(values: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate of a law from right-censored data.

    Returns ``(x, w)``: the distinct uncensored values (sorted) and the probability mass
    at each; ``1 - w.sum()`` is the mass beyond the data (after the last censoring).
    Ties: events before censorings at the same value.
    """
    values = np.asarray(values, dtype=float)
    censored = np.asarray(censored, dtype=bool)
    order = np.lexsort((censored, values))
    v, c = values[order], censored[order]
    at_risk = v.size - np.arange(v.size)
    factors = np.where(c, 1.0, 1.0 - 1.0 / at_risk)
    surv = np.cumprod(factors)
    prev = np.r_[1.0, surv[:-1]]
    mass = np.where(c, 0.0, prev - surv)
    keep = ~c
    return v[keep], mass[keep]


class ResidualLaw:
    """A law on [1, inf): Kaplan-Meier below a threshold u, a fitted tail above it.

    The tail is whichever of an exponential (R = u + Exp(mean)) or a Pareto
    (R = u (1 + Lomax(alpha)), i.e. log(R / u) ~ Exp(1 / alpha)) has the larger censored
    log-likelihood on the observations above u (censored maximum likelihood:
    mean = (sum of excesses, observed and censored) / observed count; alpha = observed
    count / sum of log-excesses). u is the 60% point of the pooled values, so the tail
    is fitted on enough data while the body needs no shape assumption.
    """

    def __init__(self, values: np.ndarray, censored: np.ndarray) -> None:
        v = np.maximum(np.asarray(values, dtype=float), 1.0)
        c = np.asarray(censored, dtype=bool)
        self.largest_event = float(v[~c].max()) if np.any(~c) else 1.0
        if v.size == 0 or not np.any(~c):
            self.x, self.w = np.array([1.0]), np.array([1.0])
            self.u, self.s_u, self.kind, self.param = 1.0, 0.0, "none", 0.0
            if v.size:
                self.x, self.w, self.u, self.s_u = np.array([1.0]), np.array([0.0]), \
                    float(v.max()), 1.0
                self.kind, self.param = "exponential", float(v.max())
            return
        self.u = float(np.quantile(v, 0.6))
        x, w = kaplan_meier(v, c)
        body = x <= self.u
        self.x, self.w = x[body], w[body]
        self.s_u = float(max(0.0, 1.0 - self.w.sum()))
        over = v > self.u
        ev = over & ~c
        r = int(ev.sum())
        if r == 0 or self.s_u <= 0:
            self.kind, self.param = "exponential", float(max(self.u, 1.0))
            if self.s_u <= 0:
                self.kind = "none"
            return
        ex = v[over] - self.u
        mean = max(float(ex.sum()) / r, 1e-9)
        lx = np.log(v[over] / self.u)
        alpha = r / max(float(lx.sum()), 1e-12)
        ll_exp = -r * math.log(mean) - float(ex.sum()) / mean
        ll_par = r * math.log(alpha) - float(np.log(v[ev]).sum()) - alpha * float(lx.sum())
        if ll_par > ll_exp:
            self.kind, self.param = "pareto", alpha
        else:
            self.kind, self.param = "exponential", mean

    def _tail_quantile(self, q: np.ndarray) -> np.ndarray:
        q = np.clip(q, 0.0, 1.0 - 1e-12)
        if self.kind == "pareto":
            return self.u * (1.0 - q) ** (-1.0 / self.param)
        if self.kind == "exponential":
            return self.u - self.param * np.log1p(-q)
        return np.full_like(q, self.u)

    def quantile(self, q: Any) -> np.ndarray:
        """Inverse CDF at ``q``."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        body = 1.0 - self.s_u
        cdf = np.cumsum(self.w)
        out = np.empty_like(q)
        low = q <= body
        idx = np.searchsorted(cdf, q[low] - 1e-12)
        out[low] = self.x[np.minimum(idx, self.x.size - 1)] if self.x.size else self.u
        if np.any(~low):
            out[~low] = self._tail_quantile((q[~low] - body) / max(self.s_u, 1e-300))
        return out

    def sample(self, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """i.i.d. draws (inverse CDF of uniforms)."""
        return self.quantile(rng.random(size).ravel()).reshape(size)

    def survival(self, v: Any) -> np.ndarray:
        """P(R > v)."""
        v = np.atleast_1d(np.asarray(v, dtype=float))
        cdf = np.cumsum(self.w)
        idx = np.searchsorted(self.x, v, side="right")
        out = 1.0 - np.where(idx > 0, cdf[np.maximum(idx - 1, 0)] if cdf.size else 0.0, 0.0)
        hi = v > self.u
        if np.any(hi):
            if self.kind == "pareto":
                t = (v[hi] / self.u) ** (-self.param)
            elif self.kind == "exponential":
                t = np.exp(-(v[hi] - self.u) / self.param)
            else:
                t = np.zeros(int(hi.sum()))
            out[hi] = self.s_u * t
        return out


class ClusterEstimator:
    """Online estimate of every worker's delay law (see the module docstring).

    Args:
        n: number of workers.
        window: rounds kept (older rounds are forgotten; drift).
        load_cost: kappa if known (then not learned); ``None`` learns it, starting from
            ``prior_load_cost``.
        prior_load_cost: kappa before two load levels have been seen.
        fail_rounds: misses (at least) before a worker that answered before can be
            declared failed.
        fail_level: declare it failed when its misses since its last answer have, alive,
            a probability below this (product of the residual survival at each miss).
        slow_factor: a worker is ``slow`` when loc_i >= slow_factor * median loc.
        rare_slowdown: the slowdown of the not-yet-seen rare event in the simulations
            (see :meth:`residuals`).

    Raises:
        ValueError / TypeError: bad arguments.
    """

    def __init__(self, n: int, *, window: int = 40, load_cost: float | None = None,
                 prior_load_cost: float = 0.25, fail_rounds: int = 3,
                 slow_factor: float = 2.0, fail_level: float = 1e-3,
                 rare_slowdown: float = 10.0) -> None:
        where = "ClusterEstimator"
        self.n = check_int(where, "n", n, low=1)
        self.window = check_int(where, "window", window, low=2)
        self.fixed_load_cost = None if load_cost is None else \
            check_real(where, "load_cost", load_cost, low=0.0)
        self.prior_load_cost = check_real(where, "prior_load_cost", prior_load_cost, low=0.0)
        self.fail_rounds = check_int(where, "fail_rounds", fail_rounds, low=1)
        self.slow_factor = check_real(where, "slow_factor", slow_factor, low=1.0)
        self.rare_slowdown = check_real(where, "rare_slowdown", rare_slowdown, low=1.0)
        self.fail_level = check_real(where, "fail_level", fail_level, low=0.0, high=1.0,
                                     low_open=True)
        self.rounds = 0
        self._buf: deque[tuple[np.ndarray, np.ndarray, float, np.ndarray]] = \
            deque(maxlen=self.window)
        self._cache: dict[str, Any] | None = None

    # ------------------------------------------------------------------ feeding
    def update(self, load: Any, times: Any, stop_time: float, *,
               observed: Any = None) -> None:
        """Feed one round.

        Args:
            load: partitions each worker held (length n).
            times: each worker's arrival time in seconds since the round start, ``inf``
                for a worker the master did not hear from (censored at ``stop_time``).
            stop_time: when the master stopped waiting.
            observed: mask of the workers this round says something about (default:
                every worker with a non-zero load).
        """
        where = "ClusterEstimator.update"
        load = np.asarray(load, dtype=float)
        times = np.asarray(times, dtype=float)
        if load.shape != (self.n,) or times.shape != (self.n,):
            raise ValueError(f"{where}: load and times must have shape ({self.n},), got "
                             f"{load.shape} and {times.shape}")
        if np.any(np.isnan(times)) or np.any(times < 0) or np.any(load < 0):
            raise ValueError(f"{where}: times must be >= 0 or inf and loads >= 0")
        tau = check_real(where, "stop_time", stop_time, low=0.0)
        seen = load > 0 if observed is None else np.asarray(observed, dtype=bool)
        if seen.shape != (self.n,):
            raise ValueError(f"{where}: observed must have shape ({self.n},)")
        # an arrival after the stop time was not used: it is a censoring at stop_time
        times = np.where(times <= tau, times, np.inf)
        self._buf.append((load.copy(), times, float(tau), seen.copy()))
        self.rounds += 1
        self._cache = None

    def reset(self) -> None:
        """Forget every round."""
        self._buf.clear()
        self.rounds = 0
        self._cache = None

    # ------------------------------------------------------------------ fitting
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        L = np.array([b[0] for b in self._buf])
        T = np.array([b[1] for b in self._buf])
        tau = np.array([b[2] for b in self._buf])
        seen = np.array([b[3] for b in self._buf])
        return L, T, tau, seen

    def _taus(self) -> np.ndarray:
        return np.array([b[2] for b in self._buf])

    @staticmethod
    def _grid_fit(levels: np.ndarray, values: np.ndarray) -> float:
        """The slope s of the grid minimising the spread of log v - log(1 + s (L - 1))."""
        g = np.log(np.maximum(1.0 + _KAPPA_GRID[:, None] * (levels[None, :] - 1.0), 1e-9))
        resid = np.log(values)[None, :] - g
        resid -= resid.mean(axis=1, keepdims=True)
        return float(_KAPPA_GRID[np.argmin(np.sum(resid ** 2, axis=1))])

    def _fit_load(self, L: np.ndarray, T: np.ndarray, seen: np.ndarray) -> tuple[float, float]:
        """(kappa, lam): the load curves of the time's floor and of its spread."""
        prior = self.fixed_load_cost if self.fixed_load_cost is not None \
            else self.prior_load_cost
        levels, q10, spread = [], [], []
        seen = seen & np.any(seen & np.isfinite(T), axis=0)[None, :]   # no silent workers
        for lv in np.unique(L[seen]):
            at = seen & (L == lv)
            hit = at & np.isfinite(T)
            if hit.sum() < 8:
                continue
            bounds = np.broadcast_to(self._taus()[:, None], T.shape)
            x, w = kaplan_meier(np.where(hit, T, bounds)[at], ~hit[at])
            cdf = np.cumsum(w)
            if cdf.size == 0 or cdf[-1] < 0.5:
                continue
            lo, mid = x[np.searchsorted(cdf, 0.1)], x[np.searchsorted(cdf, 0.5)]
            levels.append(lv)
            q10.append(float(lo))
            spread.append(float(max(mid - lo, 1e-9)))
        if len(levels) < 2:
            return prior, prior
        lv = np.asarray(levels)
        kappa = self.fixed_load_cost if self.fixed_load_cost is not None else \
            self._grid_fit(lv, np.asarray(q10))
        return kappa, self._grid_fit(lv, np.asarray(spread))

    @staticmethod
    def _residual(T: np.ndarray, tau: np.ndarray, g: np.ndarray, h: np.ndarray,
                  arrived: np.ndarray, censor: np.ndarray, loc: np.ndarray,
                  ok: np.ndarray) -> ResidualLaw:
        """The law of the pooled residuals R = 1 + (T / loc - g(L)) / h(L) of the workers
        in ``ok`` (censored at the stop times)."""
        vals, cens = [np.zeros(0)], [np.zeros(0, bool)]
        for i in np.flatnonzero(ok):
            a, c = arrived[:, i], censor[:, i]
            vals += [1.0 + (T[a, i] / loc[i] - g[a, i]) / h[a, i],
                     1.0 + (tau[c] / loc[i] - g[c, i]) / h[c, i]]
            cens += [np.zeros(a.sum(), bool), np.ones(c.sum(), bool)]
        return ResidualLaw(np.concatenate(vals), np.concatenate(cens))

    def _fit(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        n = self.n
        out: dict[str, Any] = {}
        if not self._buf:
            k0 = self.fixed_load_cost if self.fixed_load_cost is not None \
                else self.prior_load_cost
            out.update(answers=0, kappa=k0, lam=k0, loc=np.ones(n), silent=np.ones(n, bool),
                       failed=np.zeros(n, bool), law=ResidualLaw(np.ones(1), np.zeros(1, bool)),
                       rate=np.zeros(n))
            self._cache = out
            return out
        L, T, tau, seen = self._arrays()
        kappa, lam = self._fit_load(L, T, seen)
        g = np.maximum(1.0 + kappa * (L - 1.0), 1e-9)
        h = np.maximum(1.0 + lam * (L - 1.0), 1e-9)
        U = T / g                                          # load-normalised (inf: censored)
        Ub = tau[:, None] / g                              # censoring bounds
        arrived = seen & np.isfinite(T)
        censor = seen & ~np.isfinite(T)
        loc = np.full(n, np.nan)
        silent = ~np.any(arrived, axis=0)
        for i in range(n):
            rows = np.flatnonzero(seen[:, i])
            if silent[i]:
                loc[i] = 2.0 * Ub[rows, i].max() if rows.size else np.nan
            else:
                loc[i] = U[arrived[:, i], i].min()
        if np.all(np.isnan(loc)):
            loc[:] = 1.0
        loc = np.where(np.isnan(loc), np.nanmax(loc), loc)
        law = self._residual(T, tau, g, h, arrived, censor, loc, ~silent)
        # failures: the misses since the worker's last answer are unlikely if it is
        # alive: prod_t S(bound_t / loc_i) < fail_level (S = the residual's survival)
        floor = 1.0 / (arrived.sum() + 1.0)
        failed = np.zeros(n, dtype=bool)
        rate = np.zeros(n)
        for i in np.flatnonzero(~silent):
            rows = np.flatnonzero(seen[:, i])
            hits = arrived[rows, i]
            rate[i] = hits.mean()
            after = rows[np.flatnonzero(hits)[-1] + 1:]
            if after.size < self.fail_rounds:
                continue
            surv = law.survival(1.0 + (tau[after] / loc[i] - g[after, i]) / h[after, i])
            if np.sum(np.log(np.maximum(surv, floor))) < math.log(self.fail_level):
                failed[i] = True
        if np.any(failed):
            law = self._residual(T, tau, g, h, arrived, censor, loc, ~silent & ~failed)
        out.update(answers=int(arrived.sum()), kappa=kappa, lam=lam, loc=loc, silent=silent,
                   failed=failed, law=law,
                   rate=rate)
        self._cache = out
        return out

    # ------------------------------------------------------------------ estimates
    @property
    def load_cost(self) -> float:
        """kappa: relative cost of one more partition, g(L) = 1 + kappa (L - 1)."""
        return float(self._fit()["kappa"])

    @property
    def loc(self) -> np.ndarray:
        """Per-worker speed: best load-normalised time (seconds), length n."""
        return self._fit()["loc"].copy()

    @property
    def silent(self) -> np.ndarray:
        """Workers never heard from within the window (speed only bounded below)."""
        return self._fit()["silent"].copy()

    @property
    def failed(self) -> np.ndarray:
        """Workers that answered before and have stopped answering (see module doc)."""
        return self._fit()["failed"].copy()

    @property
    def slow(self) -> np.ndarray:
        """Persistently slow workers: loc_i >= slow_factor x the median loc, or silent."""
        loc = self.loc
        ok = ~self.silent & ~self.failed
        med = float(np.median(loc[ok])) if np.any(ok) else float(np.median(loc))
        return (loc >= self.slow_factor * med) | self.silent

    def g(self, load: Any) -> np.ndarray:
        """The load curve g(L) = 1 + kappa (L - 1) (floored at a tiny positive value)."""
        return np.maximum(1.0 + self.load_cost * (np.asarray(load, dtype=float) - 1.0), 1e-9)

    def residual_quantile(self, q: Any) -> np.ndarray:
        """Quantiles of the shared residual R (>= 1)."""
        return self._fit()["law"].quantile(q)

    @property
    def residual_law(self) -> ResidualLaw:
        """The fitted :class:`ResidualLaw` (body, tail kind and parameter)."""
        return self._fit()["law"]

    @property
    def tail_ratio(self) -> float:
        """q99 / q50 of the residual: about 1.5 for light noise, large for heavy tails or
        frequent slow rounds."""
        q50, q99 = self.residual_quantile([0.5, 0.99])
        return float(q99 / q50)

    def residuals(self, samples: int, rng: np.random.Generator) -> np.ndarray:
        """``samples`` x n i.i.d. draws of the residual R (reuse them for every plan of a
        decision: common random numbers make the comparison less noisy).

        A prior for what the window cannot rule out yet: with probability 1 / (r + 2),
        r the answers observed, R is ``rare_slowdown`` (Laplace's rule for an event not
        seen). It fades as answers accumulate, and keeps early decisions away from plans
        that wait for single workers before the tail is known."""
        f = self._fit()
        R = f["law"].sample((samples, self.n), rng)
        rare = rng.random((samples, self.n)) < 1.0 / (f["answers"] + 2.0)
        return np.where(rare, np.maximum(R, self.rare_slowdown), R)

    def pessimistic(self, R: np.ndarray) -> np.ndarray:
        """The draws ``R`` with everything beyond the largest residual actually observed
        replaced by ``rare_slowdown``: the tail as bad as the data allows (the master
        rarely waits for the slowest answers, so their size is mostly censored)."""
        top = self._fit()["law"].largest_event
        return np.where(R > top, np.maximum(R, self.rare_slowdown), R)

    def times(self, load: Any, R: np.ndarray) -> np.ndarray:
        """Worker times T = loc (g(load) + h(load) (R - 1)) for residual draws ``R``
        (samples x n); failed workers never answer (inf)."""
        f = self._fit()
        load = np.asarray(load, dtype=float)
        h = np.maximum(1.0 + f["lam"] * (load - 1.0), 1e-9)
        T = f["loc"][None, :] * (self.g(load)[None, :] + h[None, :] * (R - 1.0))
        T[:, f["failed"]] = np.inf
        return T

    def sample(self, load: Any, samples: int, rng: np.random.Generator) -> np.ndarray:
        """Times of ``samples`` simulated rounds (samples x n) at ``load``."""
        return self.times(load, self.residuals(samples, rng))

    @property
    def noise_load_cost(self) -> float:
        """lam: how the spread of the times grows with the load, h(L) = 1 + lam (L - 1)."""
        return float(self._fit()["lam"])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly snapshot (what the autopilot records with each decision)."""
        return {"rounds": self.rounds, "load_cost": round(self.load_cost, 4),
                "noise_load_cost": round(self.noise_load_cost, 4),
                "loc": np.round(self.loc, 4).tolist(),
                "slow": np.flatnonzero(self.slow).tolist(),
                "failed": np.flatnonzero(self.failed).tolist(),
                "tail_ratio": round(self.tail_ratio, 3)}

    def __repr__(self) -> str:
        return (f"ClusterEstimator(n={self.n}, rounds={self.rounds}, "
                f"slow={np.flatnonzero(self.slow).tolist()}, "
                f"failed={np.flatnonzero(self.failed).tolist()})")
