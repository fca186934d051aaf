"""Expected error of fixed decoding weights when workers straggle independently.

Worker i is absent with probability p_i, independently (X_i ~ Bernoulli(1 - p_i) is its
presence); the master applies fixed weights a to whoever is present, so the estimate's
coefficients are alpha_hat = B^T (a o X). Expanding E||alpha_hat - 1||^2 into variance
and squared bias gives the closed form below (docs/theory.md, T7).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .code import Code
from .decoders import _check_code

__all__ = ["fixed_weights_expected_error"]


def fixed_weights_expected_error(code: Code, weights: Any, p: Any) -> float:
    """Exact E||B^T (a o X) - 1||^2 when worker i is absent independently w.p. p_i
    [derived, docs/theory.md, T7]:
    sum_i p_i (1 - p_i) a_i^2 ||b_i||^2 + ||B^T ((1 - p) o a) - 1||^2.

    Example:
        >>> import gradcode as gc
        >>> gc.analysis.fixed_weights_expected_error(gc.codes.uncoded(2), [1.0, 1.0], 0.5)
        1.0
    """
    code = _check_code("fixed_weights_expected_error", code)
    a = np.asarray(weights, dtype=float)
    prob = np.asarray(p, dtype=float)
    if prob.ndim == 0:
        prob = np.full(code.n, float(prob))
    for name, vec in (("weights", a), ("p", prob)):
        if vec.shape != (code.n,):
            raise ValueError(f"fixed_weights_expected_error: {name} must have length "
                             f"n={code.n}, got shape {vec.shape}")
        if not np.all(np.isfinite(vec)):
            raise ValueError(f"fixed_weights_expected_error: {name} must be finite")
    if np.any((prob < 0) | (prob > 1)):
        raise ValueError("fixed_weights_expected_error: every p_i must lie in [0, 1], got "
                         f"{prob[(prob < 0) | (prob > 1)][:3].tolist()}")
    row_sq = np.asarray(abs(code.B).power(2).sum(axis=1)).ravel()
    variance = float(np.sum(prob * (1 - prob) * a**2 * row_sq))
    bias = code.B.T @ ((1 - prob) * a) - 1.0
    return variance + float(np.sum(np.abs(bias) ** 2))
