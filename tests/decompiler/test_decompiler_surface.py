"""Generated round trips over every function of ``jax.nn`` and ``jax.scipy.special``.

Each public function is called on the first sample-argument template it
accepts (see ``_api_surface.py``); its decompiled source is re-executed and
compared with the original under ``jax.jit`` (exact for integer and boolean
outputs), and so is the decompiled ``jax.grad`` of its summed output. The
gradient of the *rebuilt* forward function is compared too, which checks the
re-emitted custom JVP/VJP rules.

By default the gradient sweep runs on every third function (keeping the
suite fast); the others are marked ``slow`` (``pytest -m slow`` runs them).
The whole surface, including jax.numpy, jax.lax and jax.random, is swept by
``benchmarks/decompiler_coverage.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

sys.path.insert(0, str(Path(__file__).parent))
from _api_surface import grad_case, scalar_loss, surface_cases

from gradcode.decompiler import decompile, to_function

CASES = [c for m in ("jax.nn", "jax.scipy.special") for c in surface_cases(m)]
GRAD_CASES = [g for c in CASES for g in [grad_case(*c)] if g is not None]
#: Every third gradient case runs by default; the rest are marked slow (-m slow runs them).
GRAD_PARAMS = [pytest.param(*g, id=g[0], marks=() if i % 3 == 0 else pytest.mark.slow)
               for i, g in enumerate(GRAD_CASES)]


def _assert_match(got, want):
    gl, gt = jax.tree_util.tree_flatten(got)
    wl, wt = jax.tree_util.tree_flatten(want)
    assert gt == wt, (gt, wt)
    for g, w in zip(gl, wl):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, equal_nan=True)


def test_surface_is_swept():
    names = {c[0].split("(")[0] for c in CASES}
    for must in ("jax.nn.relu", "jax.nn.softmax", "jax.nn.gelu", "jax.nn.log_sigmoid",
                 "jax.scipy.special.gammaln", "jax.scipy.special.erfcx",
                 "jax.scipy.special.logsumexp", "jax.scipy.special.betainc"):
        assert must in names, must
    assert len(CASES) >= 80 and len(GRAD_CASES) >= 30


@pytest.mark.parametrize("case_id,fn,args", CASES, ids=[c[0] for c in CASES])
def test_surface_function(case_id, fn, args):
    rebuilt = to_function(decompile(fn, *args))
    _assert_match(jax.jit(rebuilt)(*args), jax.jit(fn)(*args))


@pytest.mark.parametrize("case_id,fn,args", GRAD_PARAMS)
def test_surface_gradient(case_id, fn, args):
    rebuilt = to_function(decompile(fn, *args))
    want = jax.jit(fn)(*args)
    _assert_match(jax.jit(rebuilt)(*args), want)
    forward = CASES[[c[0] for c in CASES].index(case_id.removeprefix("grad "))][1]
    rebuilt_forward = to_function(decompile(forward, *args))
    _assert_match(jax.jit(jax.grad(lambda *a: scalar_loss(rebuilt_forward(*a))))(*args), want)
