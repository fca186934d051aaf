"""Block designs: balance of every constructor, parameter formulas, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradcode as gc
from gradcode import designs

QS = [2, 3, 4, 5, 7, 8, 9]


@pytest.mark.parametrize("q", QS)
def test_planes_and_singer_are_bibds(q: int) -> None:
    pg = designs.projective_plane(q).verify()
    assert pg.params() == {"v": q * q + q + 1, "b": q * q + q + 1, "r": q + 1,
                           "kappa": q + 1, "lambda": 1}
    ag = designs.affine_plane(q).verify()
    assert ag.params() == {"v": q * q, "b": q * q + q, "r": q + 1, "kappa": q, "lambda": 1}
    sg = designs.singer(q).verify()
    assert sg.params() == pg.params()
    # Singer blocks are translates of one difference set
    base = np.array(sg.blocks[0])
    assert sorted(sg.blocks) == sorted(tuple(sorted((base + j) % sg.v)) for j in range(sg.v))


def test_incidence_gram_is_bibd_gram() -> None:
    d = designs.projective_plane(4)
    N = d.incidence().toarray()
    r, lam = d.r, d.lambda_
    np.testing.assert_array_equal(N @ N.T, (r - lam) * np.eye(d.v) + lam * np.ones((d.v, d.v)))
    assert d.lam == lam and d.is_symmetric


def test_fano_complete_complement_and_higher_singer() -> None:
    assert designs.fano().verify().params() == {"v": 7, "b": 7, "r": 3, "kappa": 3, "lambda": 1}
    assert designs.fano() == designs.from_difference_set([0, 1, 3], 7)
    c = designs.complete(7, 3).verify()
    assert c.params() == {"v": 7, "b": math.comb(7, 3), "r": math.comb(6, 2), "kappa": 3,
                          "lambda": math.comb(5, 1)}
    comp = designs.complement(designs.projective_plane(3)).verify()
    v, b, r, kap, lam = 13, 13, 4, 4, 1
    assert comp.params() == {"v": v, "b": b, "r": b - r, "kappa": v - kap,
                             "lambda": b - 2 * r + lam}
    assert designs.singer(2, 3).verify().params() == {"v": 15, "b": 15, "r": 7, "kappa": 7,
                                                     "lambda": 3}
    assert designs.complete(4, 4).verify().params()["lambda"] == 1


@pytest.mark.parametrize("ctor", [designs.projective_plane, designs.affine_plane,
                                  designs.singer])
@pytest.mark.parametrize("q", [6, 10, 12])
def test_non_prime_power_is_refused(ctor, q: int) -> None:
    with pytest.raises(ValueError, match=f"q={q} must be a prime power"):
        ctor(q)


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="kappa=5 must be <= v=4"):
        designs.complete(4, 5)
    with pytest.raises(ValueError, match="q=1 must be >= 2"):
        designs.projective_plane(1)
    with pytest.raises(TypeError, match="q must be an integer"):
        designs.affine_plane(2.5)
    with pytest.raises(ValueError, match="not a difference set"):
        designs.from_difference_set([0, 1, 2], 7)
    with pytest.raises(ValueError, match="block 0 holds point 9"):
        designs.Design(4, [[0, 9]])
    with pytest.raises(ValueError, match="repeats point 1"):
        designs.Design(4, [[1, 1]])
    with pytest.raises(ValueError, match="complement is empty"):
        designs.complement(designs.complete(3, 3))
    with pytest.raises(TypeError):
        designs.complement([[0, 1]])


def test_verify_names_the_breaking_pair_point_or_block() -> None:
    cycle = designs.Design(4, [[0, 1], [1, 2], [2, 3], [0, 3]])
    with pytest.raises(ValueError, match=r"pair \(0, 2\) lies in 0 blocks but pair \(0, 1\)"):
        cycle.verify()
    assert not cycle.is_bibd() and cycle.lambda_ is None
    with pytest.raises(ValueError, match="block 1 has 3 points but block 0 has 2"):
        designs.Design(4, [[0, 1], [1, 2, 3]]).verify()
    with pytest.raises(ValueError, match="point 1 lies in 3 blocks but point 0 lies in 2"):
        designs.Design(4, [[0, 1], [0, 2], [1, 2], [1, 3]]).verify()
    # dropping a line of the Fano plane breaks balance
    fano = designs.fano()
    with pytest.raises(ValueError, match="a BIBD needs"):
        designs.Design(7, fano.blocks[1:]).verify()


def test_exported_from_package() -> None:
    assert gc.designs is designs and "designs" in gc.__all__
