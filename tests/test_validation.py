"""Bad arguments raise ValueError/TypeError naming the argument, the rule and the value."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import gradcode as gc

C = gc.codes

# (constructor call, exception, message pattern)
BAD_CONSTRUCTOR_CALLS = [
    (lambda: C.uncoded(0), ValueError, r"uncoded: n=0 must be >= 1"),
    (lambda: C.uncoded(2.5), TypeError, r"uncoded: n must be an integer, got 2\.5"),
    (lambda: C.uncoded(True), TypeError, r"uncoded: n must be an integer, got True"),
    (lambda: C.uncoded("4"), TypeError, r"uncoded: n must be an integer, got '4'"),
    (lambda: C.fractional_repetition(0, 0), ValueError, r"fractional_repetition: n=0 must be >= 1"),
    (lambda: C.fractional_repetition(7, 2), ValueError,
     r"fractional_repetition: n=7 must be a multiple of s\+1=3"),
    (lambda: C.fractional_repetition(6, 6), ValueError, r"fractional_repetition: s=6 must be < n=6"),
    (lambda: C.fractional_repetition(6, -1), ValueError, r"fractional_repetition: s=-1 must be >= 0"),
    (lambda: C.fractional_repetition(6.0, 1), TypeError,
     r"fractional_repetition: n must be an integer, got 6\.0"),
    (lambda: C.fractional_repetition(False, 0), TypeError,
     r"fractional_repetition: n must be an integer, got False"),
    (lambda: C.cyclic_repetition(5, 5, seed=0), ValueError, r"cyclic_repetition: s=5 must be < n=5"),
    (lambda: C.cyclic_repetition(0, 0), ValueError, r"cyclic_repetition: n=0 must be >= 1"),
    (lambda: C.cyclic_repetition(5, 1, seed=-3), TypeError, r"cyclic_repetition: seed .*-3"),
    (lambda: C.cyclic_repetition(5, 1, seed=1.5), TypeError, r"cyclic_repetition: seed .*1\.5"),
    (lambda: C.cyclic_mds(4, 4), ValueError, r"cyclic_mds: s=4 must be < n=4"),
    (lambda: C.cyclic_mds(0, 0), ValueError, r"cyclic_mds: n=0 must be >= 1"),
    (lambda: C.cyclic_mds(4, 1.0), TypeError, r"cyclic_mds: s must be an integer, got 1\.0"),
    (lambda: C.expander(n=7, d=3, seed=0), ValueError, r"expander: n\*d=21 must be even"),
    (lambda: C.expander(n=4, d=4, seed=0), ValueError, r"expander: d=4 must be < n=4"),
    (lambda: C.expander(n=0, d=1), ValueError, r"expander: n=0 must be >= 1"),
    (lambda: C.expander(n=6, d=-1), ValueError, r"expander: d=-1 must be >= 0"),
    (lambda: C.expander(n=6), TypeError, r"expander: pass n and d"),
    (lambda: C.graph_scheme(k=5, d=3, seed=0), ValueError, r"graph_scheme: k\*d=15 must be even"),
    (lambda: C.graph_scheme(k=6, d=0, seed=0), ValueError, r"graph_scheme: d=0 must be >= 1"),
    (lambda: C.graph_scheme(k=6, d=2.0), TypeError, r"graph_scheme: d must be an integer, got 2\.0"),
    (lambda: C.bernoulli(4, 4, 5, seed=0), ValueError, r"bernoulli: d=5 must satisfy 0 < d <= k=4"),
    (lambda: C.bernoulli(4, 4, 0, seed=0), ValueError, r"bernoulli: d=0 must satisfy 0 < d <= k=4"),
    (lambda: C.bernoulli(0, 4, 1), ValueError, r"bernoulli: n=0 must be >= 1"),
    (lambda: C.bernoulli(4, 4, True), TypeError, r"bernoulli: d must be a number, got True"),
    (lambda: C.regularized_bernoulli(4, 4, 5, seed=0), ValueError,
     r"regularized_bernoulli: d=5 must be <= n=4"),
    (lambda: C.regularized_bernoulli(4, 0, 1), ValueError, r"regularized_bernoulli: k=0 must be >= 1"),
    (lambda: C.regularized_bernoulli(4, 4, 0), ValueError, r"regularized_bernoulli: d=0 must be >= 1"),
    (lambda: C.stochastic_block(6, 6, 2, 1.5, 0.0), ValueError,
     r"stochastic_block: p=1\.5 must be <= 1\.0"),
    (lambda: C.stochastic_block(6, 6, 2, 0.5, -0.1), ValueError,
     r"stochastic_block: q=-0\.1 must be >= 0\.0"),
    (lambda: C.stochastic_block(6, 6, 2, float("nan"), 0.0), ValueError,
     r"stochastic_block: p=nan must be finite"),
    (lambda: C.stochastic_block(6, 6, 7, 0.5, 0.1), ValueError,
     r"stochastic_block: communities=7 must be <= min\(n, k\)=6"),
    (lambda: C.stochastic_block(6, 6, 2, "a", 0.1), TypeError,
     r"stochastic_block: p must be a real number, got 'a'"),
]


@pytest.mark.parametrize("call, exc, pattern", BAD_CONSTRUCTOR_CALLS)
def test_constructors_reject_bad_parameters(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("name", sorted(gc.codes.CATALOGUE))
def test_every_catalogue_entry_rejects_bool_and_fractional_integers(name):
    """For every integer parameter of every entry: bool and non-integral floats fail with
    a message naming the argument."""
    entry = gc.codes.CATALOGUE[name]
    real_valued = {("bernoulli", "d")}          # BGC's d is an expected load: any real
    int_params = [key for key, value in entry.defaults.items()
                  if isinstance(value, int) and not isinstance(value, bool) and key != "seed"
                  and (name, key) not in real_valued]
    if not int_params:
        pytest.skip(f"{name} has no integer parameters")
    for key in int_params:
        for bad in (True, entry.defaults[key] + 0.5):
            with pytest.raises((TypeError, ValueError), match=re.escape(key)):
                entry(**{key: bad})


# ------------------------------------------------------------------ Code
@pytest.mark.parametrize("B, exc, pattern", [
    (np.array([[1.0, np.nan]]), ValueError, r"Code: B must be finite; entry \(0, 1\) is nan"),
    (np.array([[1.0, 0], [0, np.inf]]), ValueError, r"Code: B must be finite; entry \(1, 1\) is inf"),
    (np.zeros((0, 3)), ValueError, r"Code: B must have at least one row and one column, got "
                                   r"shape \(0, 3\)"),
    (np.zeros((3, 0)), ValueError, r"at least one row and one column, got shape \(3, 0\)"),
    (np.ones((2, 2, 2)), ValueError, r"Code: B must be two-dimensional \(n x k\), got shape "
                                     r"\(2, 2, 2\)"),
    (np.ones(3), ValueError, r"two-dimensional .* got shape \(3,\)"),
    (np.array([["a", "b"]]), TypeError, r"Code: B must hold real or complex numbers"),
    (np.array([[object()]]), TypeError, r"Code: B must be a numeric matrix"),
])
def test_code_rejects_bad_matrices(B, exc, pattern):
    with pytest.raises(exc, match=pattern):
        gc.Code(B)


def test_code_rejects_nonfinite_sparse_and_bad_tolerates():
    with pytest.raises(ValueError, match=r"must be finite; entry \(1, 0\) is nan"):
        gc.Code(sp.csr_array(np.array([[0.0, 1], [np.nan, 0]])))
    with pytest.raises(ValueError, match=r"Code: tolerates=3 must lie in \[0, n-1\] with n=3"):
        gc.Code(np.eye(3), tolerates=3)
    with pytest.raises(TypeError, match=r"Code: tolerates must be an int or None, got True"):
        gc.Code(np.eye(3), tolerates=True)
    with pytest.raises(TypeError, match=r"Code: name must be a str, got 5"):
        gc.Code(np.eye(3), name=5)


# ------------------------------------------------------------------ decode
@pytest.fixture
def frc():
    return gc.codes.fractional_repetition(n=6, s=2)


@pytest.mark.parametrize("responders, exc, pattern", [
    (np.ones(5, dtype=bool), ValueError,
     r"optimal: responders mask must have shape \(6,\) to match n=6, got shape \(5,\)"),
    (np.ones((6, 1), dtype=bool), ValueError, r"mask must have shape \(6,\).*\(6, 1\)"),
    ([0, 6], ValueError, r"optimal: responder index 6 must lie in \[0, 5\]"),
    ([-1, 2], ValueError, r"optimal: responder index -1 must lie in \[0, 5\]"),
    ([1, 2, 1], ValueError, r"optimal: responder indices must be distinct, got duplicates in "
                            r"\[1, 2, 1\]"),
    ([0.0, 1.0], TypeError, r"optimal: responders must be a boolean mask of length n=6 or a 1-d "
                            r"sequence of worker indices"),
    ([[0, 1]], TypeError, r"1-d sequence of worker indices, got int64 array of shape \(1, 2\)"),
])
def test_decode_rejects_bad_responders(frc, responders, exc, pattern):
    with pytest.raises(exc, match=pattern):
        gc.decode(frc, responders, decoder="optimal")


@pytest.mark.parametrize("decoder", ["one_step", "exact", "frc_group"])
def test_every_decoder_validates_responders(frc, decoder):
    with pytest.raises(ValueError, match=rf"{decoder}: responder index 9 must lie in \[0, 5\]"):
        gc.decode(frc, [9], decoder=decoder)


def test_unknown_decoder_lists_valid_names(frc):
    with pytest.raises(ValueError, match=r"decode: decoder='nope' is not a known decoder; valid "
                                         r"names: .*exact, frc_group, graph, .*one_step, optimal"):
        gc.decode(frc, [0, 3], decoder="nope")
    with pytest.raises(ValueError, match=r"decoder=3 is not a known decoder"):
        gc.decode(frc, [0, 3], decoder=3)
    with pytest.raises(TypeError, match=r"decode: code must be a gradcode.Code, got ndarray"):
        gc.decode(np.eye(3), [0])


def test_exact_names_responders_and_tolerance(frc):
    with pytest.raises(gc.NotDecodableError,
                       match=r"exact: 3 of 6 workers responded \(3 stragglers\) but "
                             r"fractional_repetition\(n=6, s=2\) tolerates 2 stragglers "
                             r"\(needs at least 4 responders\)"):
        gc.decode(frc, [3, 4, 5], decoder="exact")
    assert issubclass(gc.NotDecodableError, ArithmeticError)


def test_structured_decoders_reject_other_codes():
    code = gc.codes.cyclic_mds(n=5, s=2)
    with pytest.raises(ValueError, match=r"frc_group: cyclic_mds\(n=5, s=2\) is not a "
                                         r"fractional-repetition code"):
        gc.decode(code, [0, 1, 2], decoder="frc_group")
    with pytest.raises(ValueError, match=r"graph: cyclic_mds\(n=5, s=2\) is not a graph scheme: "
                                         r"every row must hold exactly two partitions"):
        gc.decode(code, [0, 1, 2], decoder="graph")
    with pytest.raises(ValueError, match=r"fixed: len\(weights\)=3 must equal the code's n=5"):
        gc.decode(code, [0, 1], decoder=gc.decoders.fixed(np.ones(3)))
    with pytest.raises(ValueError, match=r"fixed: weights must be finite"):
        gc.decoders.fixed(np.array([1.0, np.inf]))
    with pytest.raises(TypeError, match=r"fixed: weights must be a non-empty 1-d numeric vector"):
        gc.decoders.fixed(np.ones((2, 2)))


# ------------------------------------------------------------------ analysis
@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: gc.analysis.frc_expected_error(6, 7, 1), ValueError,
     r"frc_expected_error: d=7 must be <= 6"),
    (lambda: gc.analysis.erasure_probability(6, 2, 7), ValueError,
     r"erasure_probability: w=7 must be <= 6"),
    (lambda: gc.analysis.expected_wait_exponential(6, 2, -1.0), ValueError,
     r"expected_wait_exponential: mean=-1\.0 must be >= 0\.0"),
    (lambda: gc.analysis.graph_fixed_lower_bound(6, 2, 1.0), ValueError,
     r"graph_fixed_lower_bound: p=1\.0 must be < 1\.0"),
    (lambda: gc.analysis.expected_error(gc.codes.uncoded(4), 4), ValueError,
     r"expected_error: s=4 must be <= 3"),
    (lambda: gc.analysis.fixed_weights_expected_error(gc.codes.uncoded(3), np.ones(3), 1.5),
     ValueError, r"every p_i must lie in \[0, 1\], got \[1\.5"),
    (lambda: gc.analysis.fixed_weights_expected_error(gc.codes.uncoded(3), np.ones(2), 0.1),
     ValueError, r"weights must have length n=3, got shape \(2,\)"),
    (lambda: gc.analysis.expander_bound(gc.Code(np.array([[0.0, 1], [0, 0]])), 1), ValueError,
     r"expander_bound: custom must be square and symmetric"),
    (lambda: gc.analysis.spectral_bound(gc.Code(np.array([[1.0, 1], [0, 1]])), 1), ValueError,
     r"spectral_bound: custom must be biregular"),
])
def test_analysis_rejects_bad_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_bibd_paths_refuse_the_zero_code():
    """B = 0 has a constant (zero) Gram matrix but no BIBD closed form (0 / 0)."""
    zero = gc.Code(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"bibd: custom is not a BIBD code"):
        gc.decode(zero, [0, 1], decoder="bibd")
    wc = gc.analysis.worst_case(zero, 1)
    assert wc.method == "exhaustive" and wc.error == 3.0
    assert gc.analysis.adversarial_threshold(zero, 1.0) == 0
