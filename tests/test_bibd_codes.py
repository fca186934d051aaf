"""BIBD and soft BIBD codes: pattern invariance, the closed form, the bibd decoder."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest

import gradcode as gc
from gradcode import designs
from gradcode.codes.bibd import bibd_structure

# Exhaustive over straggler sets where C(n, s) is at most this (raise it, up to the
# 100,000 of the acceptance criterion, with GRADCODE_EXHAUSTIVE_LIMIT); sampled otherwise.
LIMIT = int(os.environ.get("GRADCODE_EXHAUSTIVE_LIMIT", "400"))
SAMPLES = 12
QS = [2, 3, 4, 5, 7, 8, 9]


def closed_form(v: int, b: int, r: int, lam: int, s: int) -> float:
    m = v - s
    return b - r * r * m / (r + lam * (m - 1))


def straggler_sets(n: int, s: int, rng: np.random.Generator):
    if math.comb(n, s) <= LIMIT:
        yield from itertools.combinations(range(n), s)
    else:
        for _ in range(SAMPLES):
            yield tuple(rng.choice(n, size=s, replace=False).tolist())


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("kind", ["projective_plane", "affine_plane", "singer"])
def test_error_is_pattern_invariant_and_closed_form(kind: str, q: int) -> None:
    d = getattr(designs, kind)(q)
    code = gc.codes.bibd(d)
    p = d.params()
    assert (code.n, code.k, code.load, code.replication) == (p["v"], p["b"], p["r"],
                                                              p["kappa"])
    rng = np.random.default_rng(q)
    n = code.n
    for s in sorted({1, 2, 3, n // 4, n // 2, n - 2, n - 1}):
        expected = closed_form(p["v"], p["b"], p["r"], p["lambda"], s)
        np.testing.assert_allclose(gc.analysis.bibd_error(code, s), expected, rtol=0, atol=1e-9)
        for st in straggler_sets(n, s, rng):
            mask = np.ones(n, dtype=bool)
            mask[list(st)] = False
            opt = gc.decode(code, mask, decoder="optimal")
            np.testing.assert_allclose(opt.error, expected, rtol=0, atol=1e-9)
            fast = gc.decode(code, mask, decoder="bibd")
            np.testing.assert_allclose(fast.weights, opt.weights, rtol=0, atol=1e-9)
            np.testing.assert_allclose(fast.error, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("design", [designs.fano(), designs.affine_plane(3),
                                    designs.complement(designs.fano()), designs.complete(6, 3)])
def test_exhaustive_small_designs_every_size(design) -> None:
    code = gc.codes.bibd(design)
    p = design.params()
    for s in range(code.n):
        expected = closed_form(p["v"], p["b"], p["r"], p["lambda"], s)
        errs = [gc.decode(code, [i for i in range(code.n) if i not in st]).error
                for st in itertools.combinations(range(code.n), s)]
        np.testing.assert_allclose(errs, expected, rtol=0, atol=1e-9)
    wc = gc.analysis.worst_case(code, 2)
    assert wc.method == "closed_form"
    np.testing.assert_allclose(wc.error, closed_form(p["v"], p["b"], p["r"], p["lambda"], 2),
                               atol=1e-12)


def test_bibd_weights_are_min_norm_least_squares() -> None:
    code = gc.codes.bibd(designs.projective_plane(5))
    rng = np.random.default_rng(0)
    B = code.toarray()
    for s in (0, 4, 17, 30):
        F = np.sort(rng.choice(code.n, size=code.n - s, replace=False))
        ls = np.linalg.lstsq(B[F].T, np.ones(code.k), rcond=None)[0]
        w = gc.decode(code, F, decoder="bibd").weights
        np.testing.assert_allclose(w[F], ls, rtol=0, atol=1e-10)
        r, lam = 6, 1
        np.testing.assert_allclose(w[F], r / (r + lam * (F.size - 1)), rtol=0, atol=1e-14)
        assert np.all(w[np.setdiff1d(np.arange(code.n), F)] == 0)


def test_tolerance_and_structure_detection() -> None:
    assert gc.codes.bibd(designs.fano()).tolerates == 0
    trivial = gc.codes.bibd(designs.complete(4, 4))          # r = lambda: one block of all
    assert trivial.tolerates == 3 and gc.decode(trivial, [2], decoder="bibd").error < 1e-12
    user = gc.Code(designs.projective_plane(2).incidence())  # detected from the Gram
    assert bibd_structure(user) == (3, 1)
    assert gc.analysis.worst_case(user, 3).method == "closed_form"
    assert bibd_structure(gc.codes.fractional_repetition(6, 1)) is None


def test_bad_input_is_a_clear_error_never_a_code() -> None:
    with pytest.raises(ValueError, match=r"bibd: design must be a BIBD.*pair \(0, 2\)"):
        gc.codes.bibd([[0, 1], [1, 2], [2, 3], [0, 3]])
    with pytest.raises(ValueError, match="q=6 must be a prime power"):
        gc.codes.bibd("projective_plane(6)")
    with pytest.raises(ValueError, match="kappa=5 must be <= v=4"):
        gc.codes.bibd("complete(4, 5)")
    with pytest.raises(ValueError, match="must be a Design"):
        gc.codes.bibd("not a design")
    with pytest.raises(TypeError, match="bibd: design must be"):
        gc.codes.bibd(42)
    with pytest.raises(ValueError, match="is not a BIBD code"):
        gc.decode(gc.codes.fractional_repetition(6, 1), [0, 1], decoder="bibd")
    with pytest.raises(ValueError, match="is not a BIBD code"):
        gc.analysis.bibd_error(gc.codes.fractional_repetition(4, 1), 1)


def test_named_designs_and_catalogue() -> None:
    assert gc.codes.bibd("affine_plane(3)").n == 9
    assert gc.codes.bibd("singer(q=2, m=3)").n == 15
    code = gc.codes.CATALOGUE["bibd"]()
    assert code.n == 13 and "bibd" in gc.decoders.DECODERS
    assert gc.codes.CATALOGUE["soft_bibd"]().load == 3


# ----------------------------------------------------------------------------- soft BIBD
@pytest.mark.parametrize("n,k,r", [(12, 12, 3), (16, 20, 5), (30, 45, 6), (10, 25, 5)])
def test_soft_bibd_shape_balance_and_seed(n: int, k: int, r: int) -> None:
    a = gc.codes.soft_bibd(n, k, r, seed=3)
    b = gc.codes.soft_bibd(n, k, r, seed=3)
    assert (a.B != b.B).nnz == 0
    np.testing.assert_array_equal(a.row_support, r)
    cols = a.column_support
    assert cols.sum() == n * r and cols.max() - cols.min() <= 1
    assert set(np.unique(a.B.data)) == {1.0}
    G = (a.B @ a.B.T).toarray()
    off = G[~np.eye(n, dtype=bool)]
    assert (off.min(), off.max()) == a.meta["pair_counts"]
    lam_bar = a.meta["lambda_bar"]
    np.testing.assert_allclose(off.mean(), lam_bar, rtol=1e-12)
    assert off.max() - off.min() <= 3


@pytest.mark.parametrize("n,r", [(7, 3), (13, 4)])
def test_soft_bibd_finds_the_plane_when_it_exists(n: int, r: int) -> None:
    code = gc.codes.soft_bibd(n, n, r, seed=0)
    assert code.meta["pair_counts"] == (1, 1)
    assert bibd_structure(code) == (r, 1)


def test_soft_bibd_bad_arguments() -> None:
    with pytest.raises(ValueError, match="r=5 must be <= k=4"):
        gc.codes.soft_bibd(6, 4, 5, seed=0)
    with pytest.raises(ValueError, match="k=20 must be <= n\\*r=12"):
        gc.codes.soft_bibd(6, 20, 2, seed=0)
    with pytest.raises(TypeError, match="seed"):
        gc.codes.soft_bibd(6, 6, 2, seed="x")
    with pytest.raises(ValueError, match="n=1 must be >= 2"):
        gc.codes.soft_bibd(1, 1, 1, seed=0)
