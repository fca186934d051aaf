"""Error analysis: exact enumeration, Monte Carlo, worst-case search and closed forms.

All errors are squared decoding errors ||alpha - 1||^2 (the papers' convention).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codes.bibd import bibd_closed_form_error, bibd_decoder, bibd_structure
from ..codes.catalogue import resolve
from ..core.code import Code
from ..core.decoders import Decoding, _check_code, _optimal_alpha, optimal
from ..core.fixed_weights import fixed_weights_expected_error
from ..core.validate import as_rng, check_int, check_real
from .worst_case_search import FAST_LIMIT, search_optimal

__all__ = [
    "ErrorEstimate", "WorstCase", "error", "expected_error", "worst_case", "worst_condition",
    "adversarial_threshold", "bibd_error",
    "frc_expected_error", "frc_worst_case_error", "bgc_one_step_expected_error",
    "expander_bound", "spectral_bound", "graph_fixed_lower_bound", "fixed_weights_expected_error",
    "erasure_probability", "expected_wait_exponential", "harmonic",
]

Decoder = str | Callable[[Code, Any], Decoding]


@dataclass(frozen=True)
class ErrorEstimate:
    """Expected decoding error over uniformly random straggler sets of size s.

    Attributes:
        mean: the expected error (exact, or the Monte Carlo mean).
        stderr: standard error of ``mean`` (0.0 when exact).
        method: ``"exact"`` (every straggler set enumerated) or ``"monte_carlo"``.
        samples: number of straggler sets evaluated.
        s: number of stragglers.
    """

    mean: float
    stderr: float
    method: str
    samples: int
    s: int


@dataclass(frozen=True)
class WorstCase:
    """The worst straggler set found for a code.

    Attributes:
        error: its decoding error.
        stragglers: sorted worker indices of the set.
        method: ``"exhaustive"`` (the true worst case), ``"closed_form"`` (a BIBD code
            under optimal decoding: every set of size s is a worst case) or ``"search"``
            (greedy plus swap local search with restarts: a lower bound on the true worst).
        evaluated: number of straggler sets decoded.
    """

    error: float
    stragglers: tuple[int, ...]
    method: str
    evaluated: int


def _mask_without(n: int, stragglers: Any) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[list(stragglers)] = False
    return mask


def _error_fn(code: Code, decoder: Decoder, where: str) -> Callable[[np.ndarray], float]:
    if _is_optimal(decoder):
        def fast(mask: np.ndarray) -> float:
            alpha = _optimal_alpha(code, mask)[1]
            return float(np.sum(np.abs(alpha - 1.0) ** 2))
        return fast
    fn = resolve(decoder, where)
    return lambda mask: fn(code, mask).error


def error(code: Code, responders: Any, decoder: Decoder = "optimal") -> float:
    """Decoding error ||alpha - 1||^2 for one responder set (mask or indices)."""
    code = _check_code("error", code)
    return resolve(decoder, "error")(code, responders).error


def _check_s(where: str, code: Code, s: Any) -> int:
    return check_int(where, "s", s, low=0, high=code.n - 1)


def expected_error(code: Code, s: int, decoder: Decoder = "optimal", trials: int = 1000,
                   seed: Any = None, exact_limit: int = 100_000) -> ErrorEstimate:
    """Expected error over a uniformly random straggler set of size s.

    Exact enumeration of all C(n, s) sets when that is at most ``exact_limit``; otherwise
    the Monte Carlo mean of ``trials`` independent sets with its standard error.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.fractional_repetition(n=6, s=1)
        >>> est = gc.analysis.expected_error(code, s=2)
        >>> est.method, round(est.mean, 12)   # k C(s, d) / C(n, d) = 6 * 1 / 15
        ('exact', 0.4)
    """
    code = _check_code("expected_error", code)
    s = _check_s("expected_error", code, s)
    trials = check_int("expected_error", "trials", trials, low=2)
    err = _error_fn(code, decoder, "expected_error")
    n = code.n
    total = math.comb(n, s)
    if total <= exact_limit:
        values = np.array([err(_mask_without(n, st))
                           for st in itertools.combinations(range(n), s)])
        return ErrorEstimate(float(values.mean()), 0.0, "exact", total, s)
    rng = as_rng("expected_error", seed)
    values = np.array([err(_mask_without(n, rng.choice(n, size=s, replace=False)))
                       for _ in range(trials)])
    return ErrorEstimate(float(values.mean()), float(values.std(ddof=1) / math.sqrt(trials)),
                         "monte_carlo", trials, s)


def worst_case(code: Code, s: int, decoder: Decoder = "optimal", *,
               exhaustive_limit: int = 100_000, restarts: int = 4,
               seed: Any = 0) -> WorstCase:
    """The straggler set of size s with the largest decoding error.

    BIBD codes (0/1, B B^T = (r - lambda) I + lambda J) under optimal or ``"bibd"``
    decoding: the closed form :func:`bibd_error`, the same for every set [Kadhe 2019].
    Otherwise exhaustive over all C(n, s) sets when that is at most ``exhaustive_limit``
    (the true worst case). Otherwise a search, a lower bound on the true worst:

    * optimal decoding of a real code with n <= 3000: greedy under a tiny and two large
      ridge surrogates, best-improvement swap local search over the whole
      s (n - s) neighbourhood (O(m^2 s) per sweep by bordered-inverse updates), iterated
      local search (kicks of ~s/4 swaps) and ``restarts`` random restarts; every
      candidate is scored with the true least-squares decoder (see
      ``gradcode._worst_case``);
    * any other decoder: greedy (add the straggler that raises the error most), then
      first-improvement swap local search, repeated from ``restarts`` random starts.

    Args:
        code: the code.
        s: number of stragglers, 0 <= s < n.
        decoder: decoder name or callable.
        exhaustive_limit: enumerate when C(n, s) is at most this.
        restarts: random restarts (and iterated-local-search kicks) of the search.
        seed: int or Generator for the search.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.fractional_repetition(n=6, s=1)
        >>> gc.analysis.worst_case(code, 2).error   # d floor(s / d) = 2
        2.0
    """
    code = _check_code("worst_case", code)
    s = _check_s("worst_case", code, s)
    exhaustive_limit = check_int("worst_case", "exhaustive_limit", exhaustive_limit, low=0)
    restarts = check_int("worst_case", "restarts", restarts, low=0)
    err = _error_fn(code, decoder, "worst_case")
    n = code.n
    bibd_rl = _bibd_optimal(code, decoder)
    if bibd_rl is not None:
        return WorstCase(bibd_error(code, s), tuple(range(s)), "closed_form", 0)
    if math.comb(n, s) <= exhaustive_limit:
        best, best_set = -1.0, ()
        count = 0
        for st in itertools.combinations(range(n), s):
            e = err(_mask_without(n, st))
            count += 1
            if e > best + 1e-12:
                best, best_set = e, st
        return WorstCase(best, tuple(best_set), "exhaustive", count)
    rng = as_rng("worst_case", seed)
    if _is_optimal(decoder) and not code.is_complex and n <= FAST_LIMIT:
        val, found, scored = search_optimal(code.toarray(), s,
                                            lambda st: err(_mask_without(n, st)), rng, restarts)
        return WorstCase(val, found, "search", scored)
    evaluated = 0

    def value(st: set[int]) -> float:
        nonlocal evaluated
        evaluated += 1
        return err(_mask_without(n, st))

    greedy: set[int] = set()
    for _ in range(s):
        cand = [(value(greedy | {w}), w) for w in range(n) if w not in greedy]
        greedy.add(max(cand)[1])
    starts = [greedy] + [set(rng.choice(n, size=s, replace=False).tolist())
                         for _ in range(restarts)]
    best, best_set = -1.0, set()
    for start in starts:
        cur, cur_val = set(start), value(start)
        improved = True
        while improved:
            improved = False
            for out in list(cur):
                for inn in rng.permutation(n):
                    if inn in cur:
                        continue
                    trial = (cur - {out}) | {int(inn)}
                    v = value(trial)
                    if v > cur_val + 1e-12:
                        cur, cur_val, improved = trial, v, True
                        break
                if improved:
                    break
        if cur_val > best:
            best, best_set = cur_val, cur
    return WorstCase(best, tuple(sorted(int(x) for x in best_set)), "search", evaluated)


def _is_optimal(decoder: Decoder) -> bool:
    return decoder == "optimal" if isinstance(decoder, str) else decoder is optimal


def _bibd_optimal(code: Code, decoder: Decoder) -> tuple[int, int] | None:
    """(r, lambda) when the code is a BIBD code and the decoder is optimal or ``bibd``."""
    if not (_is_optimal(decoder) or decoder == "bibd" or decoder is bibd_decoder):
        return None
    return bibd_structure(code)


def bibd_error(code: Code, s: int) -> float:
    """Optimal error of a BIBD code with ANY s stragglers [Kadhe 2019; derived,
    docs/theory.md, T18]: b - r^2 (n - s) / (r + lambda (n - s - 1)), b = k partitions
    (blocks), n = v workers.

    Raises:
        ValueError: the code is not a BIBD code (0/1 with B B^T = (r - lambda) I + lambda J).

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bibd(gc.designs.fano())
        >>> gc.analysis.bibd_error(code, 1)     # 7 - 9 * 6 / (3 + 5)
        0.25
    """
    code = _check_code("bibd_error", code)
    s = check_int("bibd_error", "s", s, low=0, high=code.n)
    st = bibd_structure(code)
    if st is None:
        raise ValueError(f"bibd_error: {code.name} is not a BIBD code (B must be 0/1 with "
                         f"B B^T = (r - lambda) I + lambda J)")
    return bibd_closed_form_error(code.n, code.k, st[0], st[1], s)


def adversarial_threshold(code: Code, eps: float, decoder: Decoder = "optimal", *,
                          exhaustive_limit: int = 100_000, restarts: int = 4,
                          seed: Any = 0) -> int:
    """Fewest stragglers an adversary needs to push the error to at least eps.

    s*(eps) = min{s : max_{|S| = s} error(S) >= eps}; s = n (everyone straggles, every
    weight zero, error k) always qualifies, so the answer lies in [0, n].

    * BIBD codes with optimal or ``"bibd"`` decoding: closed form, the first s with
      b - r^2 (n - s) / (r + lambda (n - s - 1)) >= eps [Kadhe 2019], O(n).
    * Optimal decoding otherwise: the worst-case error is non-decreasing in s (removing
      a responder shrinks the row space), so binary search over s with
      :func:`worst_case`. Exact when every probed size is enumerated; otherwise the
      search's worst cases are lower bounds, and the answer an upper bound on s*.
    * Other decoders (not monotone in general): a linear scan s = 0, 1, ... with
      :func:`worst_case` (same caveat).

    Args:
        code: the code.
        eps: error level, 0 < eps <= k.
        decoder: decoder name or callable.
        exhaustive_limit, restarts, seed: passed to :func:`worst_case`.

    Returns:
        s*(eps) as an int in [0, n].

    Raises:
        ValueError: eps outside (0, k].

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.bibd(gc.designs.fano())
        >>> threshold = gc.analysis.adversarial_threshold
        >>> threshold(code, 0.25), threshold(code, 1.0)
        (1, 3)

    References:
        [1] S. Kadhe, O. O. Koyluoglu, K. Ramchandran, "Gradient coding based on block
            designs for mitigating adversarial stragglers", arXiv:1904.13373, 2019.
    """
    code = _check_code("adversarial_threshold", code)
    eps = check_real("adversarial_threshold", "eps", eps, low=0.0, high=float(code.k),
                     low_open=True)
    n = code.n
    tol = 1e-9 * max(1.0, eps)
    if _bibd_optimal(code, decoder) is not None:
        for s in range(n):
            if bibd_error(code, s) >= eps - tol:
                return s
        return n

    def reaches(s: int) -> bool:
        wc = worst_case(code, s, decoder, exhaustive_limit=exhaustive_limit,
                        restarts=restarts, seed=seed)
        return wc.error >= eps - tol

    if _is_optimal(decoder):
        lo, hi = 0, n                      # reaches(hi) holds (s = n); find the first True
        while lo < hi:
            mid = (lo + hi) // 2
            if reaches(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo
    for s in range(n):
        if reaches(s):
            return s
    return n


def worst_condition(code: Code, s: int, exhaustive_limit: int = 100_000) -> float:
    """Largest 2-norm condition number of B_F over all responder sets of size n - s
    (exhaustive; ``ValueError`` when C(n, s) exceeds ``exhaustive_limit``)."""
    code = _check_code("worst_condition", code)
    s = _check_s("worst_condition", code, s)
    total = math.comb(code.n, s)
    if total > exhaustive_limit:
        raise ValueError(f"worst_condition: C(n={code.n}, s={s})={total} straggler sets must "
                         f"be <= exhaustive_limit={exhaustive_limit}")
    dense = code.toarray()
    return max(float(np.linalg.cond(dense[_mask_without(code.n, st)]))
               for st in itertools.combinations(range(code.n), s))


# --------------------------------------------------------------------------- closed forms
def harmonic(m: int) -> float:
    """H_m = 1 + 1/2 + ... + 1/m (H_0 = 0)."""
    m = check_int("harmonic", "m", m, low=0)
    return float(sum(1.0 / i for i in range(1, m + 1)))


def frc_expected_error(n: int, d: int, s: int) -> float:
    """FRC (k = n, groups of d) with s uniformly random stragglers, optimal decoding:
    E[error] = k C(s, d) / C(n, d) [derived, docs/theory.md, T8]."""
    n = check_int("frc_expected_error", "n", n, low=1)
    d = check_int("frc_expected_error", "d", d, low=1, high=n)
    s = check_int("frc_expected_error", "s", s, low=0, high=n)
    return n * math.comb(s, d) / math.comb(n, d)


def frc_worst_case_error(d: int, s: int) -> float:
    """FRC with groups of d, adversarial s stragglers: error = d floor(s / d)."""
    d = check_int("frc_worst_case_error", "d", d, low=1)
    s = check_int("frc_worst_case_error", "s", s, low=0)
    return float(d * (s // d))


def bgc_one_step_expected_error(n: int, d: float, s: int) -> float:
    """BGC with k = n, one-step rho = k / (d (n - s)), expectation over the code and a
    fixed-size responder set: E[error] = k (k - d) / (d (n - s))
    [derived, docs/theory.md, T11]."""
    n = check_int("bgc_one_step_expected_error", "n", n, low=1)
    d = check_real("bgc_one_step_expected_error", "d", d, low=0, high=n, low_open=True)
    s = check_int("bgc_one_step_expected_error", "s", s, low=0, high=n - 1)
    return n * (n - d) / (d * (n - s))


def _one_step_bound(where: str, code: Code, s: int) -> float:
    """(||P B||_2 / c)^2 n s / (n - s) for a code with equal column sums c, P = I - J / n.

    [derived, docs/theory.md, T6] With u = c_1 1_F (the one-step constant n / (c (n - s))) and
    1_S = (s / n) 1 + z, z orthogonal to 1: alpha - 1 = -c_1 B^T z = -c_1 (P B)^T z and
    ||z||^2 = s (n - s) / n, which gives the bound. For a non-negative biregular B, 1 is
    B's top left singular vector, so ||P B||_2 is its second singular value sigma_2.
    """
    n = code.n
    rows = np.asarray(code.B.sum(axis=1)).ravel()
    cols = np.asarray(code.B.sum(axis=0)).ravel()
    if not (np.allclose(rows, rows[0]) and np.allclose(cols, cols[0])) or cols[0] == 0:
        raise ValueError(f"{where}: {code.name} must be biregular (equal row sums and "
                         f"equal non-zero column sums)")
    dense = code.toarray()
    sigma2 = float(np.linalg.norm(dense - dense.mean(axis=0), 2)) if n > 1 else 0.0
    return float((sigma2 / abs(cols[0])) ** 2 * n * s / (n - s))


def expander_bound(code: Code, s: int) -> float:
    """Squared one-step error bound of an expander code for EVERY straggler set of size
    s: error <= (lambda / d)^2 n s / (n - s), lambda = max(|lambda_2|, |lambda_min|) of
    the adjacency matrix (B = Adj / d) [Raviv et al. 2018].

    Raises:
        ValueError: B is not symmetric with equal row sums (not Adj / d of a regular graph).
    """
    code = _check_code("expander_bound", code)
    s = _check_s("expander_bound", code, s)
    if code.n != code.k or abs(code.B - code.B.T).max() > 1e-12 * abs(code.B).max():
        raise ValueError(f"expander_bound: {code.name} must be square and symmetric "
                         f"(B = Adj / d of a d-regular graph)")
    # B symmetric with row sums 1: ||P B||_2 = max(|lambda_2|, |lambda_min|) / d
    return _one_step_bound("expander_bound", code, s)


def spectral_bound(code: Code, s: int) -> float:
    """One-step bound for a biregular code, for EVERY straggler set of size s
    [derived, docs/theory.md, T6]: error <= (sigma_2 / c)^2 n s / (n - s), where sigma_2 is
    B's second singular value and c its common column sum (c = d for a 0/1 code with
    replication d, giving sigma_2^2 n s / ((n - s) d^2)). Computed as ||(I - J/n) B||_2,
    which equals sigma_2 for non-negative B and keeps the bound valid for signed B."""
    code = _check_code("spectral_bound", code)
    s = _check_s("spectral_bound", code, s)
    return _one_step_bound("spectral_bound", code, s)


def graph_fixed_lower_bound(n: int, d: int, p: float) -> float:
    """Lower bound p n / (d (1 - p)) on E||alpha - 1||^2 for any fixed unbiased decoding
    of a graph scheme with n blocks of degree d, machines failing w.p. p
    [Glasgow-Wootters 2021; proof in docs/theory.md, T16]."""
    n = check_int("graph_fixed_lower_bound", "n", n, low=1)
    d = check_int("graph_fixed_lower_bound", "d", d, low=1)
    p = check_real("graph_fixed_lower_bound", "p", p, low=0.0, high=1.0, high_open=True)
    return p * n / (d * (1 - p))


def erasure_probability(n: int, d: int, w: int) -> float:
    """ErasureHead: P(a given FRC group of d is erased) when the first w of n workers
    form a uniformly random w-set: C(n - d, w) / C(n, w) [derived, docs/theory.md, T23]."""
    n = check_int("erasure_probability", "n", n, low=1)
    d = check_int("erasure_probability", "d", d, low=1, high=n)
    w = check_int("erasure_probability", "w", w, low=0, high=n)
    return math.comb(n - d, w) / math.comb(n, w)


def expected_wait_exponential(n: int, w: int, mean: float) -> float:
    """Expected time until the first w of n i.i.d. Exp(mean) delays have arrived:
    mean (H_n - H_{n-w}); w = n gives mean H_n."""
    n = check_int("expected_wait_exponential", "n", n, low=1)
    w = check_int("expected_wait_exponential", "w", w, low=0, high=n)
    mean = check_real("expected_wait_exponential", "mean", mean, low=0.0)
    return mean * (harmonic(n) - harmonic(n - w))



# Latency of sequential-task codes (fixed GC(n, s) and nested codes) lives in
# gradcode.latency; re-exported here [issue 7], imported on first use (scipy.stats is slow
# to import and most users of gradcode.analysis never need it).
