"""Worst-case search against exhaustive search, and the adversarial threshold."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradcode as gc
from gradcode import analysis as A


def _small_codes():
    return {
        "frc": gc.codes.fractional_repetition(12, 2),
        "rbgc": gc.codes.regularized_bernoulli(12, 12, 3, seed=0),
        "bgc": gc.codes.bernoulli(10, 10, 3, seed=2),
        "expander": gc.codes.expander(12, 3, seed=1),
        "graph": gc.codes.graph_scheme(k=8, d=3, seed=0),
        "soft_bibd": gc.codes.soft_bibd(12, 12, 3, seed=1),
        "cyclic": gc.codes.cyclic_repetition(9, 2, seed=0),
        "product": gc.codes.kronecker(gc.codes.bibd(gc.designs.affine_plane(2)),
                                      gc.codes.uncoded(3)),
        "sbc": gc.codes.stochastic_block(12, 12, 3, 0.8, 0.1, seed=3),
    }


@pytest.mark.parametrize("name", list(_small_codes()))
def test_search_equals_exhaustive_on_small_codes(name: str) -> None:
    code = _small_codes()[name]
    for s in range(1, code.n // 2 + 2):
        ex = A.worst_case(code, s)
        se = A.worst_case(code, s, exhaustive_limit=0, seed=s)
        assert ex.method == "exhaustive" and se.method == "search"
        np.testing.assert_allclose(se.error, ex.error, rtol=0, atol=1e-7, err_msg=f"s={s}")
        np.testing.assert_allclose(A.error(code, np.setdiff1d(np.arange(code.n),
                                                              se.stragglers)),
                                   se.error, atol=1e-9)


def test_search_other_decoder_equals_exhaustive() -> None:
    code = gc.codes.regularized_bernoulli(9, 9, 3, seed=4)
    for s in (2, 4):
        ex = A.worst_case(code, s, "one_step")
        se = A.worst_case(code, s, "one_step", exhaustive_limit=0)
        np.testing.assert_allclose(se.error, ex.error, atol=1e-9)


def _greedy(code, s):
    cur: list[int] = []
    for _ in range(s):
        cands = [(A.error(code, np.setdiff1d(np.arange(code.n), cur + [w])), w)
                 for w in range(code.n) if w not in cur]
        cur.append(max(cands)[1])
    return A.error(code, np.setdiff1d(np.arange(code.n), cur))


@pytest.mark.parametrize("which", ["rbgc"])
def test_search_beats_random_and_greedy_at_n_100(which: str) -> None:
    n, s = 100, 8
    code = (gc.codes.regularized_bernoulli(n, n, 4, seed=0) if which == "rbgc"
            else gc.codes.expander(n, 4, seed=0))
    wc = A.worst_case(code, s, seed=0)
    assert wc.method == "search"
    rng = np.random.default_rng(1)
    rand = max(A.error(code, np.setdiff1d(np.arange(n), rng.choice(n, s, replace=False)))
               for _ in range(1000))
    assert wc.error >= rand - 1e-9
    assert wc.error >= _greedy(code, s) - 1e-9


def _brute_threshold(code, eps, decoder):
    n = code.n
    for s in range(n):
        worst = max(A.error(code, np.setdiff1d(np.arange(n), st), decoder)
                    for st in itertools.combinations(range(n), s))
        if worst >= eps - 1e-9:
            return s
    return n


def test_threshold_bibd_closed_form_matches_brute_force() -> None:
    code = gc.codes.bibd(gc.designs.affine_plane(3))
    forced = gc.Code(code.B)          # same matrix, decoded through the generic path
    for eps in (0.1, 0.5, 1.0, 2.0, 5.0, 11.9, 12.0):
        t = A.adversarial_threshold(code, eps)
        assert t == _brute_threshold(forced, eps, gc.decoders.optimal)
        assert t == A.adversarial_threshold(code, eps, decoder="bibd")
        if t < code.n:
            assert A.bibd_error(code, t) >= eps - 1e-9
        if t > 0:
            assert A.bibd_error(code, t - 1) < eps


def test_threshold_other_codes() -> None:
    frc = gc.codes.fractional_repetition(12, 2)          # exact up to 2, then d floor(s/d)
    assert A.adversarial_threshold(frc, 0.5) == 3
    assert A.adversarial_threshold(frc, 3.0) == 3
    assert A.adversarial_threshold(frc, 3.5) == 6
    code = gc.codes.regularized_bernoulli(8, 8, 2, seed=1)
    for eps in (0.3, 1.0, 2.5):
        assert A.adversarial_threshold(code, eps) == _brute_threshold(code, eps, "optimal")
        assert (A.adversarial_threshold(code, eps, "one_step")
                == _brute_threshold(code, eps, "one_step"))


def test_threshold_bad_eps() -> None:
    code = gc.codes.bibd(gc.designs.fano())
    with pytest.raises(ValueError, match="eps=0.0 must be > 0"):
        A.adversarial_threshold(code, 0.0)
    with pytest.raises(ValueError, match="eps=8.0 must be <= 7"):
        A.adversarial_threshold(code, 8.0)
    with pytest.raises(TypeError, match="eps must be a real number"):
        A.adversarial_threshold(code, "1")
