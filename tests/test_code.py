"""gc.Code: facts, conversions, tolerates search, repr."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import gradcode as gc


def test_facts_of_a_hand_matrix():
    B = np.array([[1.0, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 2]])
    code = gc.Code(B, name="mine", params={"a": 1})
    assert (code.n, code.k, code.load, code.replication) == (3, 4, 3, 2)
    np.testing.assert_array_equal(code.row_support, [2, 3, 1])
    np.testing.assert_array_equal(code.column_support, [1, 2, 1, 2])
    np.testing.assert_array_equal(code.toarray(), B)
    assert isinstance(code.B, sp.csr_array) and code.B.dtype == np.float64
    assert code.name == "mine" and code.params == {"a": 1}
    assert code.tolerates == 0
    assert repr(code) == ("Code(mine: n=3, k=4, load=3, replication=2, tolerates=0, real)")


def test_conversions_duplicates_and_explicit_zeros():
    coo = sp.coo_array((np.array([1, 2, 0, 5]), (np.array([0, 0, 1, 1]), np.array([1, 1, 0, 2]))),
                       shape=(2, 3))
    code = gc.Code(coo)
    assert code.B.dtype == np.float64
    np.testing.assert_array_equal(code.toarray(), [[0, 3, 0], [0, 0, 5]])
    assert code.B.nnz == 2                               # duplicates summed, zero dropped
    assert code.load == 1 and code.replication == 1
    c = gc.Code(np.array([[1 + 1j, 0], [0, 2]], dtype=np.complex64))
    assert c.B.dtype == np.complex128 and c.is_complex
    assert gc.Code(np.array([[True, False]])).B.dtype == np.float64
    assert gc.Code(code).B is code.B


@pytest.mark.parametrize("builder, expected", [
    (lambda: gc.codes.fractional_repetition(n=6, s=2).toarray(), 2),
    (lambda: gc.codes.fractional_repetition(n=8, s=1).toarray(), 1),
    (lambda: gc.codes.cyclic_repetition(n=7, s=3, seed=1).toarray(), 3),
    (lambda: gc.codes.cyclic_mds(n=7, s=2).toarray(), 2),
    (lambda: np.eye(5), 0),
    (lambda: np.ones((4, 3)), 3),
    (lambda: np.array([[1.0, 0], [1, 0]]), 0),         # partition 1 on no worker
])
def test_tolerates_search_on_user_matrices(builder, expected):
    assert gc.Code(builder()).tolerates == expected


def test_explicit_tolerates_is_kept_and_code_is_frozen():
    code = gc.Code(np.ones((4, 2)), tolerates=1)
    assert code.tolerates == 1
    with pytest.raises(AttributeError):
        code.name = "other"


def test_meta_is_a_typed_record_readable_by_key():
    """Family records are frozen dataclasses that also read like the old dicts; a user's
    mapping is copied into a plain dict; anything else is refused."""
    code = gc.codes.nested(6, levels=[0, 2], seed=0)
    meta = code.meta
    assert isinstance(meta, gc.codes.NestedMeta) and isinstance(meta, gc.core.CodeMeta)
    assert dict(meta) == {"levels": meta.levels, "level_codes": meta.level_codes,
                          "order": meta.order, "family": "cyclic"}
    assert meta["levels"] == (0, 2) and meta.get("nothing") is None and "order" in meta
    with pytest.raises(KeyError):
        meta["groups"]
    with pytest.raises(AttributeError):
        meta.levels = (0,)
    prod = gc.codes.kronecker(gc.codes.uncoded(2), gc.codes.uncoded(3))
    assert prod.meta.factor_decoders == ("optimal", "optimal") and len(prod.meta) == 2
    facts = {"mine": 1}
    user = gc.Code(np.eye(2), meta=facts)
    facts["mine"] = 2
    assert user.meta == {"mine": 1}
    assert gc.Code(np.eye(2)).meta == {} and gc.codes.uncoded(2).meta == {}
    with pytest.raises(TypeError, match="Code: meta must be a CodeMeta record, a mapping"):
        gc.Code(np.eye(2), meta=[("mine", 1)])


def test_family_codes_have_names_and_params():
    code = gc.codes.fractional_repetition(n=6, s=2)
    assert code.name == "fractional_repetition(n=6, s=2)"
    assert code.params == {"n": 6, "s": 2}
    assert code.tolerates == 2
    assert repr(code).startswith("Code(fractional_repetition(n=6, s=2): n=6, k=6")
