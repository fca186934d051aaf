"""Fast worst-case straggler search for optimal (least-squares) decoding (private).

Used by :func:`gradcode.analysis.worst_case` when the decoder is ``"optimal"`` and the
code is real with n <= 3000.

Math [derived, docs/theory.md, T19]. For responders F let G = B_F B_F^T, y = B_F 1. The
ridge surrogate
E_delta(F) = min_a ||B_F^T a - 1||^2 + delta ||a||^2 = k - y^T (G + delta I)^{-1} y
tends to the optimal error as delta -> 0. With H = (G + delta I)^{-1} and x = H y:

* dropping responder i raises E_delta by x_i^2 / H_ii (dropping a regressor);
* adding worker j lowers it by t_j^2 sigma_j, with g = B_F b_j, u = H g,
  sigma_j = ||b_j||^2 + delta - g^T u, t_j = (y_j - g^T x) / sigma_j;
* swapping (drop i, add j) gives E - t_j^2 sigma_j + (x_i - u_i t_j)^2 / (H_ii + u_i^2 / sigma_j)
  (block inverse of the bordered Gram, then the drop formula).

So a greedy step costs O(m) after an O(m^2) Schur downdate, and the whole swap
neighbourhood (s (n - s) sets) costs O(m^2 s). Search: greedy under three ridges
(a tiny one ~ the true error, and two large ones whose smoother objective groups
stragglers that share partitions, which plain greedy cannot see when single removals
cost nothing), best-improvement swap local search, then iterated local search (random
kicks of about s/4 swaps from the best set) and random restarts. Every candidate is
finally scored with the true least-squares decoder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["search_optimal"]

FAST_LIMIT = 3000


class _Surrogate:
    def __init__(self, B: np.ndarray, delta_rel: float) -> None:
        self.G = B @ B.T
        self.y = B.sum(axis=1)
        self.k = B.shape[1]
        scale = max(float(np.mean(np.diag(self.G))), 1e-300)
        self.delta = delta_rel * scale
        self.n = B.shape[0]

    def state(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        GF = self.G[np.ix_(F, F)] + self.delta * np.eye(F.size)
        H = np.linalg.inv(GF) if F.size else np.zeros((0, 0))
        H = 0.5 * (H + H.T)
        x = H @ self.y[F]
        return H, x, float(self.k - self.y[F] @ x)

    def greedy(self, s: int, rng: np.random.Generator) -> np.ndarray:
        """Stragglers chosen one at a time, each raising E_delta the most."""
        F = np.arange(self.n)
        H, x, _ = self.state(F)
        out = []
        for _ in range(s):
            gain = x**2 / np.diag(H)
            top = np.flatnonzero(gain >= gain.max() - 1e-12 * max(1.0, abs(gain.max())))
            pos = int(rng.choice(top))
            out.append(int(F[pos]))
            h = H[:, pos].copy()
            H = H - np.outer(h, h) / h[pos]
            x = x - h * (x[pos] / h[pos])
            keep = np.ones(F.size, dtype=bool)
            keep[pos] = False
            F, H, x = F[keep], H[np.ix_(keep, keep)], x[keep]
        return np.array(sorted(out), dtype=np.int64)

    def local_search(self, S: np.ndarray, max_moves: int) -> tuple[np.ndarray, int]:
        """Best-improvement swaps while E_delta rises; returns (stragglers, sets scored)."""
        S = np.array(sorted(S), dtype=np.int64)
        scored = 0
        if S.size == 0 or S.size == self.n:
            return S, scored
        for _ in range(max_moves):
            mask = np.ones(self.n, dtype=bool)
            mask[S] = False
            F = np.flatnonzero(mask)
            H, x, val = self.state(F)
            Gfs = self.G[np.ix_(F, S)]
            U = H @ Gfs                                           # m x s
            sigma = np.diag(self.G)[S] + self.delta - np.einsum("ms,ms->s", Gfs, U)
            sigma = np.maximum(sigma, self.delta)        # Schur complement of Gram + delta I
            t = (self.y[S] - Gfs.T @ x) / sigma
            dec = t**2 * sigma
            hd = np.diag(H)[:, None]
            new = val - dec[None, :] + (x[:, None] - U * t[None, :])**2 / (hd + U**2 / sigma)
            new = np.where(np.isfinite(new), new, -np.inf)
            scored += new.size
            i, j = np.unravel_index(int(np.argmax(new)), new.shape)
            if new[i, j] <= val + 1e-10 * max(1.0, abs(val)):
                break
            S = np.array(sorted(set(S.tolist()) - {int(S[j])} | {int(F[i])}), dtype=np.int64)
        return S, scored


def search_optimal(B: np.ndarray, s: int, exact_error: Callable[[np.ndarray], float],
                   rng: np.random.Generator, restarts: int,
                   extra_starts: list[np.ndarray] | None = None
                   ) -> tuple[float, tuple[int, ...], int]:
    """Best straggler set found for optimal decoding: (error, stragglers, sets scored).

    ``exact_error(stragglers)`` scores a candidate with the true decoder.
    """
    n = B.shape[0]
    exact = _Surrogate(B, 1e-9)
    scored = 0
    seen: dict[tuple[int, ...], float] = {}

    def score(S: np.ndarray) -> float:
        key = tuple(int(v) for v in sorted(S))
        if key not in seen:
            seen[key] = exact_error(np.array(key, dtype=np.int64))
        return seen[key]

    max_moves = 4 * s + 20
    starts = [exact.greedy(s, rng)]
    for rel in (0.1, 1.0):
        starts.append(_Surrogate(B, rel).greedy(s, rng))
    starts.extend(extra_starts or [])
    best_val, best_set = -np.inf, starts[0]
    for S0 in starts:
        score(S0)                                  # greedy alone is always a candidate
        S, c = exact.local_search(S0, max_moves)
        scored += c + 1
        v = score(S)
        if v > best_val:
            best_val, best_set = v, S
    # iterated local search from the best set, plus random restarts
    kick = max(1, s // 4)
    for rep in range(2 * restarts):
        if rep % 2 == 0:
            S0 = best_set.copy()
            out = rng.choice(S0.size, size=min(kick, S0.size), replace=False)
            pool = np.setdiff1d(np.arange(n), S0)
            inn = rng.choice(pool, size=min(out.size, pool.size), replace=False)
            S0[out[:inn.size]] = inn
        else:
            S0 = rng.choice(n, size=s, replace=False)
        S, c = exact.local_search(S0, max_moves)
        scored += c
        v = score(S)
        if v > best_val:
            best_val, best_set = v, S
    # the exact scores decide among every candidate ever scored
    key, val = max(seen.items(), key=lambda kv: kv[1])
    scored += len(seen)
    return float(val), key, scored
