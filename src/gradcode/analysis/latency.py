"""Latency of gradient codes with sequential tasks: exact order statistics and simulation.

Setting [design, docs/theory.md, T30]: worker i computes its partitions
one after the other; S_i(m) is the time at which it has finished m tasks. A fixed exact
code GC(n, s) (load s + 1) is decodable once n - s workers have finished s + 1 tasks:

    T_s = (n - s)-th smallest of S_1(s + 1), ..., S_n(s + 1).

A nested cyclic code with levels L decodes at the first instant some level is
decodable, so on every sample path T_nested = min_{s in L} T_s. The nested dyadic FRC
code decodes when the root block {0..n-1} is covered: a block of size 2^j (with
2^j - 1 in L) is covered once a worker inside it finished 2^j tasks, or once both its
halves are covered.

Task-time models (:class:`TaskTimes`), workers i.i.d.:

- ``per="task"``: every task takes D + Exp(b), independently: S(m) = m D + Erlang(m, b);
- ``per="worker"``: a worker has one speed Y = D + Exp(b) and S(m) = m Y, for which
  E[T_s] = (s + 1)(D + b (H_n - H_s)) in closed form;
- optionally a worker is slow (all its times x ``slow_factor``) w.p. ``p_slow`` and dead
  (never finishes anything) w.p. ``p_dead``.

Exact expectations integrate the tail, E[T] = int_0^inf P(T > t) dt, by adaptive
quadrature with breakpoints at the shifts. The tail of a fixed code is a binomial tail;
the nested cyclic tail is the multinomial dynamic program over tasks-finished counts
([derived, docs/theory.md, T31]): with C_m = #{i : N_i(t) >= m} (N_i(t) = tasks
finished by t, capped at s_max + 1), C_{s_max+1} ~ Bin(n, G_{s_max+1}) and
C_m = C_{m+1} + Bin(n - C_{m+1},
(G_m - G_{m+1}) / (1 - G_{m+1})) with G_m = P(S(m) <= t); T > t iff C_{s+1} < n - s for
every level s, enforced by zeroing the forbidden counts as the chain descends. The
nested dyadic tail is an exact recursion over blocks ([derived]): conditioned on all
workers of a block having finished fewer than c tasks, its workers stay i.i.d., so
P(block of size z covered | N < c) = 1 - u + u P(half covered | N < z)^2 with
u = P(no worker inside has N >= z | N < c) = (1 - (G_z - G_c) / (1 - G_c))^z.

References:
    [1] L. Massny, C. Hofmeister, M. Egger, R. Bitar, A. Wachter-Zeh, "Nested gradient
        codes for straggler mitigation in distributed machine learning",
        arXiv:2212.08580, 2022 (the setting; the formulas here are [derived]).
    [2] R. Tandon, Q. Lei, A. G. Dimakis, N. Karampatziakis, "Gradient coding",
        arXiv:1612.03301, 2017.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate, stats

from ..codes.nested import check_levels
from ..core.validate import as_rng, check_int, check_probability, check_real

__all__ = [
    "LatencyEstimate",
    "LatencySimulation",
    "TaskTimes",
    "fixed_latency",
    "fixed_path_latency",
    "inject_stragglers",
    "latency_tail",
    "nested_latency",
    "nested_path_latency",
    "per_worker_fixed_latency",
    "sample_task_times",
    "simulate_latency",
    "tasks_finished",
]

_FAMILIES = ("cyclic", "dyadic_frc")


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class TaskTimes:
    """I.i.d. per-worker sequential task times: shifted exponential, slow and dead workers.

    Args:
        shift: D >= 0, the deterministic part of one task.
        mean: b >= 0, the mean of the exponential part.
        per: ``"task"`` (each task D + Exp(b), independent: S(m) = m D + Erlang(m, b)) or
            ``"worker"`` (one speed per worker Y = D + Exp(b): S(m) = m Y).
        p_slow: probability that a worker is slow: all its times are multiplied by
            ``slow_factor``.
        slow_factor: >= 1.
        p_dead: probability that a worker is dead (finishes nothing; S(m) = inf).

    Raises:
        ValueError: a negative shift or mean, shift = mean = 0, unknown ``per``,
            probabilities outside [0, 1] or summing above 1, slow_factor < 1.

    Example:
        >>> from gradcode.latency import TaskTimes
        >>> model = TaskTimes(shift=1.0, mean=0.5, per="worker")
        >>> float(model.cdf(2, 2.0))      # P(2 Y <= 2) = P(Y <= 1) = 0
        0.0
    """

    shift: float = 1.0
    mean: float = 1.0
    per: str = "task"
    p_slow: float = 0.0
    slow_factor: float = 1.0
    p_dead: float = 0.0

    def __post_init__(self) -> None:
        where = "TaskTimes"
        check_real(where, "shift", self.shift, low=0.0)
        check_real(where, "mean", self.mean, low=0.0)
        if self.shift == 0 and self.mean == 0:
            raise ValueError(f"{where}: shift and mean must not both be 0 (tasks take no time)")
        if self.per not in ("task", "worker"):
            raise ValueError(f"{where}: per={self.per!r} must be 'task' or 'worker'")
        check_probability(where, "p_slow", self.p_slow)
        check_probability(where, "p_dead", self.p_dead)
        check_real(where, "slow_factor", self.slow_factor, low=1.0)
        if self.p_slow + self.p_dead > 1:
            raise ValueError(f"{where}: p_slow + p_dead = {self.p_slow + self.p_dead} must be "
                             f"<= 1")

    # -- distribution of S(m)
    def _base_cdf(self, m: int, t: np.ndarray) -> np.ndarray:
        D, b = float(self.shift), float(self.mean)
        if self.per == "task":
            x = t - m * D
            if b == 0:
                return (x >= 0).astype(float)
            return np.where(x > 0, stats.gamma.cdf(np.maximum(x, 0.0), a=m, scale=b), 0.0)
        y = t / m - D
        if b == 0:
            return (y >= 0).astype(float)
        return np.where(y > 0, -np.expm1(-np.maximum(y, 0.0) / b), 0.0)

    def cdf(self, m: int, t: Any) -> np.ndarray:
        """P(S(m) <= t) for one worker, vectorised over t (m >= 1 tasks)."""
        t = np.asarray(t, dtype=float)
        if np.any(np.isinf(t)):
            out = np.empty(t.shape)
            fin = np.isfinite(t)
            out[~fin] = 1.0 - self.p_dead
            out[fin] = self.cdf(m, t[fin])
            return out
        fast = 1.0 - self.p_slow - self.p_dead
        out = fast * self._base_cdf(m, t)
        if self.p_slow > 0:
            out = out + self.p_slow * self._base_cdf(m, t / self.slow_factor)
        return out

    def breakpoints(self, tasks: int) -> list[float]:
        """Kinks of the tail (multiples of the shift, slow ones included)."""
        factors = {1.0} | ({float(self.slow_factor)} if self.p_slow > 0 else set())
        pts = {m * self.shift * f for m in range(1, tasks + 1) for f in factors}
        return sorted(p for p in pts if p > 0)

    def horizon(self, tasks: int) -> float:
        """A time beyond which P(S(tasks) > t, worker alive) < ~exp(-50)."""
        f = self.slow_factor if self.p_slow > 0 else 1.0
        if self.per == "worker":
            return f * tasks * (self.shift + 60 * self.mean)
        return f * (tasks * self.shift + self.mean * (tasks + 60 + 12 * math.sqrt(tasks)))

    def sample(self, n: int, tasks: int, samples: int, rng: np.random.Generator) -> np.ndarray:
        """Cumulative finish times S_i(1..tasks), shape (samples, n, tasks); inf if dead."""
        kind = rng.random((samples, n))
        if self.per == "task":
            steps = self.shift + rng.exponential(self.mean, (samples, n, tasks)) \
                if self.mean > 0 else np.full((samples, n, tasks), float(self.shift))
            times = np.cumsum(steps, axis=-1)
        else:
            y = self.shift + (rng.exponential(self.mean, (samples, n)) if self.mean > 0
                              else np.zeros((samples, n)))
            times = y[:, :, None] * np.arange(1, tasks + 1)[None, None, :]
        slow = kind < self.p_slow
        dead = (kind >= self.p_slow) & (kind < self.p_slow + self.p_dead)
        times = np.where(slow[:, :, None], times * self.slow_factor, times)
        return np.where(dead[:, :, None], np.inf, times)


@dataclass(frozen=True)
class LatencyEstimate:
    """Expected latency of one scheme.

    Attributes:
        mean: E[T] (inf when the scheme fails to decode with positive probability).
        stderr: standard error of ``mean`` (0.0 when exact; inf when mean is inf).
        method: ``"exact"`` or ``"simulation"``.
        decode_probability: P(T < inf).
        conditional_mean: E[T | T < inf] (nan when it never decodes).
        conditional_stderr: its standard error (0.0 when exact).
        samples: sample paths used (0 when exact).
    """

    mean: float
    stderr: float
    method: str
    decode_probability: float
    conditional_mean: float
    conditional_stderr: float = 0.0
    samples: int = 0


# --------------------------------------------------------------------------- validation
def _check_model(where: str, model: Any) -> TaskTimes:
    if not isinstance(model, TaskTimes):
        raise TypeError(f"{where}: model must be a gradcode.latency.TaskTimes, got "
                        f"{type(model).__name__}")
    return model


def _check_family(where: str, family: Any, n: int, levels: tuple[int, ...]) -> str:
    if family not in _FAMILIES:
        raise ValueError(f"{where}: family={family!r} must be one of {', '.join(_FAMILIES)}")
    if family == "dyadic_frc":
        if n & (n - 1):
            raise ValueError(f"{where}: family='dyadic_frc' needs n = 2^L workers, got n={n}")
        bad = [s for s in levels if (s + 1) & s]
        if bad:
            raise ValueError(f"{where}: family='dyadic_frc' needs every s+1 to be a power of "
                             f"two, got s={bad[0]} in levels={list(levels)}")
    return family


def _levels(where: str, n: int, levels: Any) -> tuple[int, ...]:
    return check_levels(where, n, levels)


# --------------------------------------------------------------------------- exact tails
def _cyclic_tail(G: np.ndarray, n: int, levels: tuple[int, ...]) -> float:
    """P(T > t) for min over levels, given G[m] = P(N >= m), m = 0..M (G[0] = 1)."""
    M = levels[-1] + 1
    forbidden = {s + 1: n - s for s in levels}     # at m = s+1: counts >= n - s decode
    c = np.arange(n + 1)
    dist = stats.binom.pmf(c, n, G[M])
    if M in forbidden:
        dist[forbidden[M]:] = 0.0
    lowest = levels[0] + 1
    for m in range(M - 1, lowest - 1, -1):
        denom = 1.0 - G[m + 1]
        q = 0.0 if denom <= 0 else min(max((G[m] - G[m + 1]) / denom, 0.0), 1.0)
        if q > 0:
            trans = stats.binom.pmf(c[None, :] - c[:, None], n - c[:, None], q)
            dist = dist @ trans
        if m in forbidden:
            dist[forbidden[m]:] = 0.0
    return float(min(max(dist.sum(), 0.0), 1.0))


def _dyadic_tail(G: np.ndarray, n: int, levels: tuple[int, ...]) -> float:
    """P(root not covered by t) for the nested dyadic FRC, G[m] = P(N >= m), G[M+1] = 0."""
    allowed = {s + 1 for s in levels}

    def covered(size: int, cap: int | None) -> float:
        g_cap = 0.0 if cap is None else G[cap]
        if size in allowed:
            denom = 1.0 - g_cap
            r = 1.0 if denom <= 0 else min(max((G[size] - g_cap) / denom, 0.0), 1.0)
            none = (1.0 - r) ** size
            if size == 1:
                return 1.0 - none
            return 1.0 - none + none * covered(size // 2, size) ** 2
        if size == 1:
            return 0.0
        return covered(size // 2, cap) ** 2

    return float(min(max(1.0 - covered(n, None), 0.0), 1.0))


def _tail_fn(n: int, levels: tuple[int, ...], model: TaskTimes, family: str):
    M = levels[-1] + 1

    def tail(t: float) -> float:
        G = np.zeros(M + 2)
        G[0] = 1.0
        G[1:M + 1] = [float(model.cdf(m, t)) for m in range(1, M + 1)]
        if family == "dyadic_frc":
            return _dyadic_tail(G, n, levels)
        return _cyclic_tail(G, n, levels)

    return tail


def latency_tail(n: int, levels: Sequence[int], model: TaskTimes, t: Any,
                 family: str = "cyclic") -> np.ndarray:
    """Exact P(T > t) of the nested code with the given levels (one level = a fixed code).

    Args:
        n: workers.
        levels: strictly increasing tolerances in [0, n-1]; ``[s]`` gives GC(n, s).
        model: the :class:`TaskTimes` model.
        t: times (scalar or array; ``inf`` gives P(T = inf), the failure probability).
        family: ``"cyclic"`` or ``"dyadic_frc"``.

    Returns:
        Array of P(T > t), shaped like ``t``.

    Example:
        >>> from gradcode.latency import TaskTimes, latency_tail
        >>> float(latency_tail(4, [1], TaskTimes(1.0, 1.0), 1.5))    # before 2 shifts
        1.0
    """
    where = "latency_tail"
    n = check_int(where, "n", n, low=1)
    levels = _levels(where, n, levels)
    model = _check_model(where, model)
    family = _check_family(where, family, n, levels)
    tail = _tail_fn(n, levels, model, family)
    arr = np.asarray(t, dtype=float)
    return np.vectorize(tail, otypes=[float])(arr)


def _expected(n: int, levels: tuple[int, ...], model: TaskTimes, family: str
              ) -> LatencyEstimate:
    tail = _tail_fn(n, levels, model, family)
    tail_inf = tail(math.inf)
    p_ok = 1.0 - tail_inf
    M = levels[-1] + 1
    hi = model.horizon(M)
    pts = [p for p in model.breakpoints(M) if p < hi]
    val, _ = integrate.quad(lambda t: tail(t) - tail_inf, 0.0, hi, points=pts or None,
                            limit=500, epsabs=1e-11, epsrel=1e-11)
    if p_ok <= 1e-300:
        return LatencyEstimate(math.inf, math.inf, "exact", 0.0, math.nan)
    cond = val / p_ok
    if tail_inf > 1e-13:
        return LatencyEstimate(math.inf, math.inf, "exact", p_ok, cond)
    return LatencyEstimate(cond, 0.0, "exact", 1.0, cond)


def fixed_latency(n: int, s: int, model: TaskTimes) -> LatencyEstimate:
    """Exact expected latency of a fixed exact code GC(n, s) with sequential tasks.

    T_s = (n - s)-th smallest of S_i(s + 1): P(T_s > t) = P(Bin(n, G(t)) < n - s),
    G(t) = P(S(s + 1) <= t); E[T_s] = int_0^inf P(T_s > t) dt by adaptive quadrature.

    Args:
        n: workers; s: stragglers tolerated, 0 <= s < n; model: :class:`TaskTimes`.

    Returns:
        :class:`LatencyEstimate` (method ``"exact"``); mean is inf when dead workers can
        block decoding, with ``decode_probability`` and ``conditional_mean`` filled in.

    Raises:
        ValueError / TypeError: bad n, s or model.

    Example:
        >>> from gradcode.latency import TaskTimes, fixed_latency, per_worker_fixed_latency
        >>> m = TaskTimes(shift=1.0, mean=2.0, per="worker")
        >>> exact = per_worker_fixed_latency(6, 2, 1.0, 2.0)
        >>> round(fixed_latency(6, 2, m).mean, 8) == round(exact, 8)
        True

    References:
        [derived, docs/theory.md, T30-T31]; setting of Massny et al.,
        arXiv:2212.08580, 2022.
    """
    where = "fixed_latency"
    n = check_int(where, "n", n, low=1)
    s = check_int(where, "s", s, low=0)
    if s >= n:
        raise ValueError(f"{where}: s={s} must be < n={n} (at least one worker must respond)")
    return _expected(n, (s,), _check_model(where, model), "cyclic")


def nested_latency(n: int, levels: Sequence[int], model: TaskTimes,
                   family: str = "cyclic") -> LatencyEstimate:
    """Exact expected latency of the nested code (min over levels, or dyadic covering).

    Cyclic family: T = min_{s in levels} T_s, tail by the multinomial dynamic program of
    the module docstring (O(s_max n^2) per time point). Dyadic FRC family: tail by the
    exact block recursion. E[T] by adaptive quadrature of the tail.

    Args:
        n: workers.
        levels: strictly increasing tolerances in [0, n-1].
        model: :class:`TaskTimes`.
        family: ``"cyclic"`` or ``"dyadic_frc"`` (n = 2^L, each s + 1 a power of two).

    Returns:
        :class:`LatencyEstimate` with method ``"exact"``.

    Raises:
        ValueError: levels not strictly increasing, s >= n, bad family or n.

    Example:
        >>> from gradcode.latency import TaskTimes, nested_latency, fixed_latency
        >>> m = TaskTimes(shift=1.0, mean=1.0)
        >>> nested_latency(8, [0, 1, 3], m).mean <= min(fixed_latency(8, s, m).mean
        ...                                          for s in (0, 1, 3))
        True

    References:
        Massny et al., arXiv:2212.08580, 2022 (setting); the dynamic program is [derived].
    """
    where = "nested_latency"
    n = check_int(where, "n", n, low=1)
    levels = _levels(where, n, levels)
    model = _check_model(where, model)
    family = _check_family(where, family, n, levels)
    return _expected(n, levels, model, family)


def per_worker_fixed_latency(n: int, s: int, shift: float, mean: float) -> float:
    """Closed form E[T_s] = (s + 1)(D + b (H_n - H_s)) for the per-worker speed model
    S(m) = m Y, Y = D + Exp(b) [derived, docs/theory.md, T30]: T_s = (s + 1) Y_(n - s) and the
    (n - s)-th smallest of n Exp(b) has mean b (H_n - H_s).

    Example:
        >>> from gradcode.latency import per_worker_fixed_latency
        >>> per_worker_fixed_latency(2, 0, 1.0, 1.0)     # 1 + (1/1 + 1/2)
        2.5
    """
    where = "per_worker_fixed_latency"
    n = check_int(where, "n", n, low=1)
    s = check_int(where, "s", s, low=0, high=n - 1)
    shift = check_real(where, "shift", shift, low=0.0)
    mean = check_real(where, "mean", mean, low=0.0)
    h = sum(1.0 / j for j in range(s + 1, n + 1))
    return (s + 1) * (shift + mean * h)


# --------------------------------------------------------------------------- sample paths
def sample_task_times(model: TaskTimes, n: int, tasks: int, samples: int,
                      seed: Any = None) -> np.ndarray:
    """Draw cumulative finish times, shape (samples, n, tasks) (inf for dead workers).

    Example:
        >>> from gradcode.latency import TaskTimes, sample_task_times
        >>> sample_task_times(TaskTimes(1.0, 0.0), 2, 3, 1, seed=0)[0].tolist()
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    """
    where = "sample_task_times"
    model = _check_model(where, model)
    n = check_int(where, "n", n, low=1)
    tasks = check_int(where, "tasks", tasks, low=1)
    samples = check_int(where, "samples", samples, low=1)
    return model.sample(n, tasks, samples, as_rng(where, seed))


def inject_stragglers(times: np.ndarray, count: int, factor: float = math.inf,
                      seed: Any = None) -> np.ndarray:
    """Slow down exactly ``count`` uniformly chosen workers per sample path.

    Args:
        times: cumulative finish times, shape (samples, n, tasks).
        count: stragglers per path, 0 <= count <= n.
        factor: their times are multiplied by it (>= 1); ``inf`` = dead workers.
        seed: int or Generator.

    Returns:
        A new array of the same shape.
    """
    where = "inject_stragglers"
    times = np.asarray(times, dtype=float)
    if times.ndim != 3:
        raise ValueError(f"{where}: times must have shape (samples, n, tasks), got "
                         f"{times.shape}")
    samples, n, _ = times.shape
    count = check_int(where, "count", count, low=0, high=n)
    if not (isinstance(factor, (int, float)) and factor >= 1):
        raise ValueError(f"{where}: factor={factor!r} must be a number >= 1 (inf = dead)")
    rng = as_rng(where, seed)
    pick = np.argsort(rng.random((samples, n)), axis=1)[:, :count]
    mask = np.zeros((samples, n), dtype=bool)
    np.put_along_axis(mask, pick, True, axis=1)
    out = times.copy()
    if math.isinf(factor):
        out[mask] = np.inf
    else:
        out[mask] = out[mask] * factor
    return out


def _check_times(where: str, times: Any) -> np.ndarray:
    arr = np.asarray(times, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{where}: times must have shape (n, tasks) or (samples, n, tasks), "
                         f"got {np.shape(times)}")
    if np.any(np.isnan(arr)):
        raise ValueError(f"{where}: times must not contain NaN")
    return arr


def fixed_path_latency(times: Any, s: int) -> np.ndarray:
    """T_s on each sample path: the (n - s)-th smallest S_i(s + 1).

    Args:
        times: cumulative finish times (samples, n, tasks) or (n, tasks), tasks >= s + 1.
        s: stragglers tolerated.

    Returns:
        Array (samples,) of decoding times (inf when fewer than n - s workers finish).
    """
    where = "fixed_path_latency"
    arr = _check_times(where, times)
    n, tasks = arr.shape[1], arr.shape[2]
    s = check_int(where, "s", s, low=0, high=n - 1)
    if s + 1 > tasks:
        raise ValueError(f"{where}: s+1={s + 1} tasks needed but times has only {tasks}")
    return np.partition(arr[:, :, s], n - s - 1, axis=1)[:, n - s - 1]


def nested_path_latency(times: Any, levels: Sequence[int], family: str = "cyclic"
                        ) -> np.ndarray:
    """Decoding time of the nested code on each sample path.

    Cyclic: min over levels of :func:`fixed_path_latency`. Dyadic FRC: cover time of
    the root, cover(b) = min(direct(b), max(cover(left), cover(right))), direct(b) = the
    earliest S_i(|b|) over workers i in b (only when |b| - 1 is a level).

    Returns:
        Array (samples,) (inf when the code cannot decode on that path).
    """
    where = "nested_path_latency"
    arr = _check_times(where, times)
    samples, n, tasks = arr.shape
    levels = _levels(where, n, levels)
    family = _check_family(where, family, n, levels)
    if levels[-1] + 1 > tasks:
        raise ValueError(f"{where}: s_max+1={levels[-1] + 1} tasks needed but times has "
                         f"only {tasks}")
    if family == "cyclic":
        return np.min(np.stack([fixed_path_latency(arr, s) for s in levels]), axis=0)
    allowed = {s + 1 for s in levels}
    cover = None
    size = 1
    while size <= n:
        if size in allowed:
            direct = arr[:, :, size - 1].reshape(samples, n // size, size).min(axis=2)
        else:
            direct = np.full((samples, n // size), np.inf)
        if cover is None:
            cover = direct
        else:
            cover = np.minimum(direct, np.maximum(cover[:, 0::2], cover[:, 1::2]))
        size *= 2
    assert cover is not None
    return cover[:, 0]


def tasks_finished(times: Any, at: Any, load: int) -> np.ndarray:
    """Tasks each worker has finished by the decision time, capped at ``load``.

    Args:
        times: (samples, n, tasks); at: (samples,) decision times; load: the cap.

    Returns:
        Int array (samples, n).
    """
    arr = _check_times("tasks_finished", times)
    at = np.asarray(at, dtype=float).reshape(-1, 1, 1)
    return np.sum(arr[:, :, :load] <= at, axis=2)


@dataclass
class LatencySimulation:
    """Latencies of fixed codes and of the nested code on the SAME sample paths.

    Attributes:
        fixed: s -> array (samples,) of T_s.
        nested: array (samples,) of the nested code's decoding time.
        fixed_work: s -> array (samples,) of tasks finished by all workers at T_s
            (each capped at s + 1): the computation actually done.
        nested_work: the same for the nested code (capped at s_max + 1).
        times: the sample paths (samples, n, s_max + 1).
    """

    fixed: dict[int, np.ndarray]
    nested: np.ndarray
    fixed_work: dict[int, np.ndarray] = field(default_factory=dict)
    nested_work: np.ndarray | None = None
    times: np.ndarray | None = None

    @staticmethod
    def estimate(values: np.ndarray) -> LatencyEstimate:
        """Monte Carlo :class:`LatencyEstimate` of a latency sample (inf = no decode)."""
        values = np.asarray(values, dtype=float)
        ok = np.isfinite(values)
        p = float(ok.mean())
        m = values.size
        if ok.any():
            cm = float(values[ok].mean())
            cse = float(values[ok].std(ddof=1) / math.sqrt(ok.sum())) if ok.sum() > 1 else 0.0
        else:
            cm, cse = math.nan, math.nan
        if ok.all():
            return LatencyEstimate(cm, cse, "simulation", 1.0, cm, cse, m)
        return LatencyEstimate(math.inf, math.inf, "simulation", p, cm, cse, m)


def simulate_latency(n: int, levels: Sequence[int], model: TaskTimes | None = None, *,
                     family: str = "cyclic", samples: int = 10_000, seed: Any = None,
                     fixed: Sequence[int] | None = None, times: Any = None
                     ) -> LatencySimulation:
    """Monte Carlo latency of the nested code and of fixed GC(n, s) on the same paths.

    Args:
        n: workers.
        levels: the nested levels.
        model: :class:`TaskTimes` (ignored when ``times`` is given).
        family: ``"cyclic"`` or ``"dyadic_frc"``.
        samples: sample paths.
        seed: int or Generator.
        fixed: tolerances s of the fixed codes to evaluate (default: the levels).
        times: optional pre-drawn paths (samples, n, tasks) with tasks >= s_max + 1,
            e.g. from :func:`inject_stragglers`.

    Returns:
        :class:`LatencySimulation`; use ``LatencySimulation.estimate`` for mean +- stderr.

    Example:
        >>> from gradcode.latency import TaskTimes, simulate_latency
        >>> sim = simulate_latency(6, [0, 1, 2], TaskTimes(1.0, 1.0), samples=200, seed=0)
        >>> bool((sim.nested <= min(sim.fixed.values(), key=lambda a: a.mean())).all())
        True
    """
    where = "simulate_latency"
    n = check_int(where, "n", n, low=1)
    levels = _levels(where, n, levels)
    family = _check_family(where, family, n, levels)
    fixed = levels if fixed is None else tuple(
        check_int(where, "fixed[i]", s, low=0, high=n - 1) for s in fixed)
    M = max(levels[-1], max(fixed, default=0)) + 1
    if times is None:
        model = _check_model(where, model)
        samples = check_int(where, "samples", samples, low=1)
        arr = model.sample(n, M, samples, as_rng(where, seed))
    else:
        arr = _check_times(where, times)
        if arr.shape[1] != n or arr.shape[2] < M:
            raise ValueError(f"{where}: times must have shape (samples, n={n}, >= {M}), got "
                             f"{arr.shape}")
    fixed_t = {s: fixed_path_latency(arr, s) for s in fixed}
    nested_t = nested_path_latency(arr, levels, family)
    fixed_w = {s: tasks_finished(arr, fixed_t[s], s + 1).sum(axis=1) for s in fixed}
    nested_w = tasks_finished(arr, nested_t, levels[-1] + 1).sum(axis=1)
    return LatencySimulation(fixed_t, nested_t, fixed_w, nested_w, arr)
