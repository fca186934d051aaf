"""Product (Kronecker) gradient codes and their slice-wise ``product`` decoder [1].

References:
    [1] A. Sakorikar, L. Wang, "Soft BIBD and product gradient codes", arXiv:2105.05231,
        2021.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.code import Code, CodeMeta
from ..core.decoders import _EXACT_TOL, Decoding, _check_code, _finish, _responders, resolve
from ..core.validate import check_entries

__all__ = ["ProductMeta", "kronecker", "product_decoder"]


@dataclass(frozen=True, eq=False)
class ProductMeta(CodeMeta):
    """``code.meta`` of a :func:`kronecker` product code.

    Attributes:
        factors: (code1, code2), B = B1 (x) B2.
        factor_decoders: the decoders (names or callables) the ``"product"`` decoder
            applies to code1 and code2.
    """

    factors: tuple[Code, Code]
    factor_decoders: tuple[Any, Any]


def kronecker(code1: Code, code2: Code, decoder1: str | Callable | None = None,
              decoder2: str | Callable | None = None) -> Code:
    """The product code B = B1 (x) B2 of two gradient codes [1].

    Construction: worker (i1, i2) is row i1 n2 + i2 and partition (j1, j2) is column
    j1 k2 + j2; B[(i1, i2), (j1, j2)] = B1[i1, j1] B2[i2, j2]. Load and replication
    multiply, and B B^T = (B1 B1^T) (x) (B2 B2^T).

    Exact tolerance [derived, docs/theory.md, T21; proved below and checked exhaustively
    in the tests]: if code t (t = 1, 2) tolerates exactly s_t stragglers, the product
    tolerates exactly (s1 + 1)(s2 + 1) - 1.
    * At least: with at most (s1 + 1)(s2 + 1) - 1 stragglers, at most s1 slices
      {i1} x [n2] contain more than s2 stragglers. Every other slice decodes 1_{k2} with
      code 2 (weights a2^(i1)), and code 1 decodes 1_{k1} from those n1 - s1 slices
      (weights a1); the weights a1(i1) a2^(i1)(i2) give alpha = 1 (x) 1. The
      second-factor weights are chosen per slice; a single a1 (x) a2 is only guaranteed
      when the responders form a product set F1 x F2.
    * At most: straggle S1 x S2 where code 1 fails on S1 (|S1| = s1 + 1) and code 2 on S2
      (|S2| = s2 + 1). The surviving rows span V1 (x) W2 + W1 (x) V2 (V_t the span of the
      factor's survivors, W_t its full row space), and the all-ones vector has a non-zero
      component c1 (x) c2 outside it.
    The recorded tolerance uses ``code1.tolerates`` and ``code2.tolerates``; when those
    are lower bounds the product value is a lower bound too.

    Args:
        code1, code2: the factor codes.
        decoder1, decoder2: decoders the ``"product"`` decoder applies to the factors
            (default ``"optimal"``).

    Returns:
        The code; its ``meta`` is a :class:`ProductMeta` (``factors`` = (code1, code2),
        ``factor_decoders``).

    Raises:
        TypeError: a factor is not a :class:`gradcode.Code`.
        ValueError: an unknown factor decoder name.

    Example:
        >>> import gradcode as gc
        >>> c = gc.codes.kronecker(gc.codes.fractional_repetition(4, 1),
        ...                        gc.codes.fractional_repetition(3, 2))
        >>> c.n, c.k, c.load, c.replication, c.tolerates
        (12, 12, 6, 6, 5)

    References:
        [1] Sakorikar, Wang, arXiv:2105.05231, 2021.
    """
    code1 = _check_code("kronecker", code1)
    code2 = _check_code("kronecker", code2)
    dec1 = "optimal" if decoder1 is None else decoder1
    dec2 = "optimal" if decoder2 is None else decoder2
    resolve(dec1, "kronecker")
    resolve(dec2, "kronecker")
    check_entries("kronecker", f"code1 ({code1.B.nnz} non-zeros), code2 ({code2.B.nnz} "
                  f"non-zeros)", "nnz(B1)*nnz(B2)", code1.B.nnz * code2.B.nnz)
    B = sp.csr_array(sp.kron(code1.B, code2.B, format="csr"))
    t1, t2 = code1.tolerates, code2.tolerates
    tolerates = (t1 + 1) * (t2 + 1) - 1
    return Code(B, name=f"kronecker({code1.name}, {code2.name})",
                params={"code1": code1.name, "code2": code2.name},
                tolerates=min(tolerates, code1.n * code2.n - 1),
                meta=ProductMeta(factors=(code1, code2), factor_decoders=(dec1, dec2)),
                verify=False)


def _factors(code: Code) -> tuple[Code, Code, Any, Any]:
    meta = code.meta
    if not isinstance(meta, ProductMeta):
        raise ValueError(f"product: {code.name} is not a product code; build it with "
                         f"gradcode.codes.kronecker(code1, code2)")
    return meta.factors[0], meta.factors[1], meta.factor_decoders[0], meta.factor_decoders[1]


def _slice_decodes(inner: Code, dec_in: Callable,
                   grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inner decode of every slice grid[i] with a responder: (weights per slice, whether
    each slice decoded exactly)."""
    inner_w = np.zeros(grid.shape, dtype=inner.B.dtype)
    exact = np.zeros(grid.shape[0], dtype=bool)
    tol = _EXACT_TOL * max(inner.k, 1)
    for i in np.flatnonzero(grid.any(axis=1)):
        d = dec_in(inner, grid[i])
        inner_w[i] = d.weights
        exact[i] = d.error <= tol
    return inner_w, exact


def _outer_decode(outer: Code, dec_out: Callable, inner_w: np.ndarray,
                  present: np.ndarray) -> np.ndarray:
    """Outer decode over the slices deemed present; weight = a_out(i) a_in^(i)(j)."""
    if not present.any():
        return np.zeros(inner_w.shape, dtype=np.result_type(outer.B.dtype, inner_w.dtype))
    return dec_out(outer, present).weights[:, None] * inner_w


def product_decoder(code: Code, responders: Any) -> Decoding:
    """Slice-wise decoding of a product code from its factors' decoders.

    Rule [derived, docs/theory.md, T22; the exactness argument is in :func:`kronecker`]:
    view the responders
    as an n1 x n2 grid. Rows first: decode code 2 on each row slice {i1} x [n2] with its
    decoder (weights a2^(i1)), call a slice present, decode code 1 on the present slices
    (weights a1), and use a(i1, i2) = a1(i1) a2^(i1)(i2). Columns first is the mirror
    image. "Present" is tried strictly (the slice decoded exactly) and loosely (the
    slice has a responder); of the four candidates the one with the smallest error is
    returned. When the responders form a product set F1 x F2 this is a1 (x) a2. With
    exact factors every straggler set of size <= (s1 + 1)(s2 + 1) - 1 decodes exactly.
    Cost: n1 + n2 factor decodes and four outer decodes.

    Args:
        code: a code built by :func:`kronecker`.
        responders: boolean mask (n,) or worker indices.

    Raises:
        ValueError: the code is not a product code.

    Example:
        >>> import gradcode as gc
        >>> frc = gc.codes.fractional_repetition(2, 1)
        >>> code = gc.codes.kronecker(frc, frc)           # tolerates (1+1)(1+1)-1 = 3
        >>> round(gc.decode(code, [2], decoder="product").error, 12)
        0.0

    References:
        [1] Sakorikar, Wang, arXiv:2105.05231, 2021.
    """
    code = _check_code("product", code)
    mask, _ = _responders("product", code, responders)
    c1, c2, d1, d2 = _factors(code)
    f1, f2 = resolve(d1, "product"), resolve(d2, "product")
    grid = mask.reshape(c1.n, c2.n)
    # inner decodes do not depend on the strictness: once per orientation
    rows_w, rows_exact = _slice_decodes(c2, f2, grid)
    cols_w, cols_exact = _slice_decodes(c1, f1, grid.T)
    best: Decoding | None = None
    for strict in (True, False):
        cands = (_outer_decode(c1, f1, rows_w,
                               rows_exact if strict else grid.any(axis=1)).ravel(),
                 _outer_decode(c2, f2, cols_w,
                               cols_exact if strict else grid.any(axis=0)).T.ravel())
        for w in cands:
            dec = _finish(code, np.where(mask, w, 0))
            if best is None or dec.error < best.error - 1e-15:
                best = dec
        assert best is not None
        if best.error <= _EXACT_TOL * max(code.k, 1):
            break
    return best
