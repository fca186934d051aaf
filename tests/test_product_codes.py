"""Kronecker product codes: structure, the exact tolerance (s1+1)(s2+1)-1, the decoder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradcode as gc
from gradcode.core.code import _search_tolerates

TOL = 1e-9


def _pairs():
    return [
        (gc.codes.fractional_repetition(4, 1), gc.codes.fractional_repetition(3, 2)),  # t = 5
        (gc.codes.cyclic_repetition(4, 1, seed=1), gc.codes.cyclic_mds(3, 1)),         # t = 3
        (gc.codes.fractional_repetition(2, 1), gc.codes.cyclic_repetition(5, 2, seed=0)),
    ]


def test_structure() -> None:
    c1, c2 = gc.codes.cyclic_repetition(4, 1, seed=1), gc.codes.bibd(gc.designs.fano())
    p = gc.codes.kronecker(c1, c2)
    assert (p.n, p.k) == (c1.n * c2.n, c1.k * c2.k)
    assert p.load == c1.load * c2.load and p.replication == c1.replication * c2.replication
    G = p.toarray() @ p.toarray().T
    np.testing.assert_allclose(G, np.kron(c1.toarray() @ c1.toarray().T,
                                          c2.toarray() @ c2.toarray().T), atol=1e-12)


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_tolerance_formula_exact_and_tight(idx: int) -> None:
    c1, c2 = _pairs()[idx]
    p = gc.codes.kronecker(c1, c2)
    t = (c1.tolerates + 1) * (c2.tolerates + 1) - 1
    assert p.tolerates == t
    n = p.n
    # every straggler set of size <= t decodes exactly with the product decoder
    for s in range(t + 1):
        for st in itertools.combinations(range(n), s):
            resp = np.setdiff1d(np.arange(n), st)
            assert gc.decode(p, resp, decoder="product").error <= TOL * p.k, (s, st)
    # tight: S1 x S2 with failing factor sets defeats even optimal decoding
    S1 = next(st for st in itertools.combinations(range(c1.n), c1.tolerates + 1)
              if gc.decode(c1, np.setdiff1d(np.arange(c1.n), st)).error > TOL)
    S2 = next(st for st in itertools.combinations(range(c2.n), c2.tolerates + 1)
              if gc.decode(c2, np.setdiff1d(np.arange(c2.n), st)).error > TOL)
    bad = [i1 * c2.n + i2 for i1 in S1 for i2 in S2]
    assert len(bad) == t + 1
    assert gc.decode(p, np.setdiff1d(np.arange(n), bad)).error > 1e-6
    # and the brute-force tolerance search of the plain matrix agrees
    assert _search_tolerates(gc.Code(p.B)) == t


def test_product_sets_give_a1_kron_a2() -> None:
    c1 = gc.codes.bibd(gc.designs.fano())
    c2 = gc.codes.regularized_bernoulli(5, 5, 2, seed=0)
    p = gc.codes.kronecker(c1, c2)
    F1, F2 = [0, 2, 3, 5], [1, 2, 4]
    resp = [i1 * c2.n + i2 for i1 in F1 for i2 in F2]
    d = gc.decode(p, resp, decoder="product")
    a1 = gc.decode(c1, F1).weights
    a2 = gc.decode(c2, F2).weights
    err_kron = gc.decoders.fixed(np.kron(a1, a2))(p, resp).error
    assert d.error <= err_kron + 1e-12
    assert d.error >= gc.decode(p, resp).error - 1e-12      # optimal is a lower bound


def test_errors_and_catalogue() -> None:
    with pytest.raises(ValueError, match="is not a product code"):
        gc.decode(gc.codes.fractional_repetition(4, 1), [0, 2], decoder="product")
    with pytest.raises(TypeError, match="kronecker: code must be a gradcode.Code"):
        gc.codes.kronecker(np.eye(2), gc.codes.uncoded(2))
    with pytest.raises(ValueError, match="not a known decoder"):
        gc.codes.kronecker(gc.codes.uncoded(2), gc.codes.uncoded(2), decoder1="nope")
    code = gc.codes.CATALOGUE["kronecker"]()
    assert code.tolerates == 5 and "product" in gc.decoders.DECODERS
