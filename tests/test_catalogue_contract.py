"""Contract suite: every CATALOGUE entry goes through the same checks.

The entries are read from ``gc.codes.CATALOGUE`` at collection time, so families added
later (bibd, soft_bibd, kronecker, heterogeneous, nested, ...) are covered automatically.
Each entry's ``decoder`` and ``exact`` fields drive the checks.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import gradcode as gc

NAMES = sorted(gc.codes.CATALOGUE)
EXHAUSTIVE_N = 12          # exhaustive over straggler sets up to this many workers
SAMPLES = 30               # sampled straggler sets per size above it
TOL = 1e-9

# Construction facts for the families this suite knows; other entries get the generic
# checks only (shapes against the dense matrix, params n/k when given).
def _expected_facts(name: str, p: dict) -> dict:
    if name == "uncoded":
        return {"shape": (p["n"], p["n"]), "load": 1, "replication": 1, "tolerates": 0}
    if name in ("fractional_repetition", "cyclic_repetition", "cyclic_mds"):
        return {"shape": (p["n"], p["n"]), "load": p["s"] + 1, "replication": p["s"] + 1,
                "tolerates": p["s"]}
    if name == "expander":
        return {"shape": (p["n"], p["n"]), "load": p["d"], "replication": p["d"],
                "tolerates": 0}
    if name == "graph_scheme":
        return {"shape": (p["k"] * p["d"] // 2, p["k"]), "load": 2, "replication": p["d"],
                "tolerates": 0}
    if name == "regularized_bernoulli":
        return {"shape": (p["n"], p["k"]), "replication": p["d"],
                "load": math.ceil(p["k"] * p["d"] / p["n"]), "tolerates": 0}
    if name in ("bernoulli", "stochastic_block"):
        return {"shape": (p["n"], p["k"]), "tolerates": 0}
    return {}


@pytest.fixture(scope="module", params=NAMES)
def entry_code(request):
    entry = gc.codes.CATALOGUE[request.param]
    return request.param, entry, entry()


def _masks(n: int, s: int, rng: np.random.Generator, exhaustive: bool = True):
    """All masks with s stragglers when n is small, else a seeded sample."""
    if exhaustive and n <= EXHAUSTIVE_N:
        for st in itertools.combinations(range(n), s):
            mask = np.ones(n, dtype=bool)
            mask[list(st)] = False
            yield mask
    else:
        for _ in range(SAMPLES):
            mask = np.ones(n, dtype=bool)
            mask[rng.choice(n, size=s, replace=False)] = False
            yield mask


def test_catalogue_is_not_empty():
    assert len(NAMES) >= 9
    for name in NAMES:
        entry = gc.codes.CATALOGUE[name]
        assert callable(entry)
        assert isinstance(entry.exact, bool)
        assert callable(entry.decoder) or entry.decoder in gc.decoders.DECODERS, name


def test_shapes_load_replication(entry_code):
    name, entry, code = entry_code
    assert isinstance(code, gc.Code)
    dense = code.toarray()
    assert dense.shape == code.B.shape == (code.n, code.k)
    assert code.B.dtype in (np.float64, np.complex128)
    assert np.all(np.isfinite(dense))
    nz = dense != 0
    assert code.load == int(nz.sum(axis=1).max())
    assert code.replication == int(nz.sum(axis=0).max())
    np.testing.assert_array_equal(code.row_support, nz.sum(axis=1))
    np.testing.assert_array_equal(code.column_support, nz.sum(axis=0))
    params = {**entry.defaults}
    if "n" in params and name != "graph_scheme":
        assert code.n == params["n"]
    if "k" in params and name != "graph_scheme":
        assert code.k == params["k"]
    for key, value in _expected_facts(name, params).items():
        actual = code.B.shape if key == "shape" else getattr(code, key)
        assert actual == value, f"{name}: {key}={actual}, expected {value}"
    assert isinstance(code.name, str) and code.name


def test_exact_flag_matches_tolerates(entry_code):
    name, entry, code = entry_code
    assert (code.tolerates > 0) == entry.exact, (name, code.tolerates, entry.exact)
    if entry.exact:
        # necessary condition [REFERENCES #2]: every partition on >= s + 1 workers
        assert code.column_support.min() >= code.tolerates + 1


def test_reproducible_from_seed(entry_code):
    name, entry, code = entry_code
    if "seed" not in entry.defaults:
        pytest.skip(f"{name} is deterministic")
    again = entry()
    np.testing.assert_array_equal(again.toarray(), code.toarray())


def test_exact_codes_decode_every_small_straggler_set(entry_code):
    name, entry, code = entry_code
    if not entry.exact:
        pytest.skip(f"{name} is approximate")
    rng = np.random.default_rng(12345)
    decoder = gc.decoders.resolve(entry.decoder)
    checked = 0
    for s in range(code.tolerates + 1):
        for mask in _masks(code.n, s, rng):
            for dec in (decoder, gc.decoders.exact, gc.decoders.optimal):
                d = dec(code, mask)
                assert d.error < TOL, (name, np.flatnonzero(~mask), d.error)
                np.testing.assert_allclose(d.alpha, np.ones(code.k), rtol=0, atol=1e-6)
                assert np.all(d.weights[~mask] == 0)
            checked += 1
    assert checked > code.tolerates


def test_exact_fails_beyond_tolerance_somewhere(entry_code):
    """One more straggler than ``tolerates``: some set must defeat exact decoding
    (straggle every holder of the least replicated partition)."""
    name, entry, code = entry_code
    s = code.tolerates + 1
    col = int(np.argmin(code.column_support))
    holders = np.flatnonzero(code.toarray()[:, col] != 0)
    if holders.size > s or s >= code.n:
        pytest.skip(f"{name}: the least replicated partition has {holders.size} > {s} holders")
    mask = np.ones(code.n, dtype=bool)
    mask[holders] = False
    with pytest.raises(gc.NotDecodableError):
        gc.decode(code, mask, decoder="exact")


def test_optimal_beats_one_step_and_family_decoder(entry_code):
    name, entry, code = entry_code
    rng = np.random.default_rng(7)
    family = gc.decoders.resolve(entry.decoder)
    for s in range(0, min(code.n - 1, 4) + 1):
        for mask in _masks(code.n, s, rng, exhaustive=s <= 2):
            opt = gc.decoders.optimal(code, mask)
            one = gc.decoders.one_step(code, mask)
            assert opt.error <= one.error + 1e-9 * max(1.0, one.error), (name, s, opt, one)
            if s <= code.tolerates or not entry.exact:
                fam = family(code, mask)
                assert opt.error <= fam.error + 1e-9 * max(1.0, fam.error), (name, s)
                np.testing.assert_allclose(fam.alpha, code.B.T @ fam.weights, rtol=0,
                                           atol=1e-9)
                assert np.all(fam.weights[~mask] == 0)


def test_optimal_error_never_increases_when_a_responder_is_added(entry_code):
    name, _, code = entry_code
    rng = np.random.default_rng(11)
    for _ in range(25):
        mask = rng.random(code.n) < rng.uniform(0.2, 0.9)
        base = gc.decoders.optimal(code, mask).error
        for extra in np.flatnonzero(~mask)[:4]:
            more = mask.copy()
            more[extra] = True
            assert gc.decoders.optimal(code, more).error <= base + 1e-9 * max(1.0, base), name
    # all responders / none: error is that of the full code / k
    np.testing.assert_allclose(gc.decoders.optimal(code, np.zeros(code.n, bool)).error,
                               code.k, rtol=1e-12)
