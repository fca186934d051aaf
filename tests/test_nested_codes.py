"""Nested gradient codes: level structure, exact decoding of every level, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradcode as gc
from gradcode.codes.nested import dyadic_order


def _all_subsets_decode(level_code: gc.Code, s: int) -> int:
    n = level_code.n
    checked = 0
    for kept in itertools.combinations(range(n), n - s):
        dec = gc.decoders.exact(level_code, np.array(kept))
        np.testing.assert_allclose(dec.alpha, np.ones(level_code.k), rtol=0, atol=1e-9)
        assert np.all(dec.weights[np.setdiff1d(np.arange(n), kept)] == 0)
        checked += 1
    return checked


@pytest.mark.parametrize("n", range(1, 11))
def test_cyclic_every_level_decodes_from_every_n_minus_s_subset(n):
    levels = list(range(n))
    code = gc.codes.nested(n, levels, seed=n)
    assert code.meta["levels"] == tuple(levels)
    total = 0
    for s, lc in zip(levels, code.meta["level_codes"]):
        assert lc.tolerates == s and lc.load == s + 1
        total += _all_subsets_decode(lc, s)
    assert total == 2**n - 1


@pytest.mark.parametrize("L", [0, 1, 2, 3])
def test_dyadic_every_level_decodes_from_every_n_minus_s_subset(L):
    n = 2**L
    levels = [2**j - 1 for j in range(L + 1)]
    code = gc.codes.nested(n, levels, family="dyadic_frc")
    for s, lc in zip(levels, code.meta["level_codes"]):
        _all_subsets_decode(lc, s)
        np.testing.assert_array_equal(np.unique(lc.B.data), [1.0])


@pytest.mark.parametrize("family,n,levels", [("cyclic", 7, [0, 2, 3, 6]),
                                            ("cyclic", 9, [1, 4]),
                                            ("dyadic_frc", 8, [0, 1, 3, 7]),
                                            ("dyadic_frc", 16, [1, 7])])
def test_level_rows_use_only_the_first_s_plus_1_partitions_of_the_order(family, n, levels):
    code = gc.codes.nested(n, levels, family=family, seed=3)
    order = code.meta["order"]
    assert order.shape == (n, levels[-1] + 1)
    for i in range(n):
        assert len(set(order[i].tolist())) == order.shape[1]     # no partition twice
    for s, lc in zip(levels, code.meta["level_codes"]):
        dense = lc.toarray()
        for i in range(n):
            support = set(np.flatnonzero(dense[i]).tolist())
            assert support == set(order[i, : s + 1].tolist()), (s, i)
    # the code itself is the top level
    np.testing.assert_array_equal(code.toarray(), code.meta["level_codes"][-1].toarray())
    assert code.tolerates == levels[-1] and code.load == levels[-1] + 1
    assert code.n == code.k == n


def test_dyadic_order_finishes_aligned_blocks():
    n = 16
    order = dyadic_order(n, n)
    for i in range(n):
        size = 1
        while size <= n:
            block = set(range((i // size) * size, (i // size + 1) * size))
            assert set(order[i, :size].tolist()) == block
            size *= 2


def test_seeded_and_catalogued():
    a = gc.codes.nested(8, [0, 2, 5], seed=11)
    b = gc.codes.nested(8, [0, 2, 5], seed=11)
    c = gc.codes.nested(8, [0, 2, 5], seed=12)
    for x, y in zip(a.meta["level_codes"], b.meta["level_codes"]):
        np.testing.assert_array_equal(x.toarray(), y.toarray())
    assert not np.allclose(a.toarray(), c.toarray())
    assert a.name == "nested(n=8, levels=(0, 2, 5), family='cyclic', seed=11)"
    entry = gc.codes.CATALOGUE["nested"]
    assert entry.exact and entry().tolerates == entry.defaults["levels"][-1]
    gen = gc.codes.nested(5, [1, 2], seed=np.random.default_rng(0))
    assert gen.tolerates == 2


@pytest.mark.parametrize("kwargs,exc,words", [
    ({"n": 6, "levels": [2, 1]}, ValueError, ["strictly increasing", "[2, 1]"]),
    ({"n": 6, "levels": [1, 1]}, ValueError, ["strictly increasing"]),
    ({"n": 6, "levels": [0, 6]}, ValueError, ["s=6", "n=6"]),
    ({"n": 6, "levels": [-1, 2]}, ValueError, ["s=-1", ">= 0"]),
    ({"n": 6, "levels": []}, ValueError, ["at least one"]),
    ({"n": 6, "levels": [0.5]}, TypeError, ["integers", "0.5"]),
    ({"n": 6, "levels": 3}, TypeError, ["sequence"]),
    ({"n": 6, "levels": [0, 1], "family": "dyadic_frc"}, ValueError, ["2^L", "n=6"]),
    ({"n": 8, "levels": [0, 2], "family": "dyadic_frc"}, ValueError, ["power", "s=2"]),
    ({"n": 8, "levels": [0], "family": "mds"}, ValueError, ["family='mds'", "cyclic"]),
    ({"n": 0, "levels": [0]}, ValueError, ["n=0"]),
    ({"n": 4.0, "levels": [0]}, TypeError, ["n must be an integer"]),
])
def test_bad_input_names_argument_rule_and_value(kwargs, exc, words):
    with pytest.raises(exc) as info:
        gc.codes.nested(**kwargs)
    msg = str(info.value)
    assert msg.startswith("nested:")
    for w in words:
        assert w in msg, (w, msg)
