"""The coded-gradient worker task (gradcode.backends.tasks): f_i = sum_j B[i, j] g_j, with
no pass over the vector for a coefficient of 1 and never writing into a part's array."""

from __future__ import annotations

import numpy as np
import pytest

from gradcode.backends.tasks import CodedGradientTask, TaskContext, run_task


class _Context(TaskContext):
    def _pump(self, timeout):
        pass

    def _send(self, kind, payload):
        pass


class CachedPart:
    """Returns the same internal array every call (a part may reuse its buffer)."""

    def __init__(self, scale):
        self.scale, self.buf = scale, None

    def gradient(self, params):
        self.buf = np.multiply(params, self.scale, out=self.buf)
        return self.buf


@pytest.mark.parametrize("coefs", [(1.0,), (1.0, 1.0), (1.0, -0.5, 1.0), (2.0, 1.0),
                                   (1.0, 3.0), ()])
def test_coded_gradient_sums_without_touching_the_parts(coefs):
    rng = np.random.default_rng(0)
    params = rng.standard_normal(7)
    scales = [float(j + 2) for j in range(len(coefs))]
    parts = [(j, c, CachedPart(s)) for j, (c, s) in enumerate(zip(coefs, scales))]
    runner = CodedGradientTask().bind(0, parts)
    ctx = _Context(0)
    for t in range(2):                      # twice: a reused buffer must not leak into f_i
        ctx.begin(t, 0.0)
        value = run_task(runner, params, ctx)
        expected = sum((c * s * params for c, s in zip(coefs, scales)), np.zeros(7))
        np.testing.assert_allclose(value, expected, rtol=1e-15, atol=1e-15)
        for (_, _, part), s in zip(parts, scales):
            np.testing.assert_array_equal(part.buf, params * s)   # never written to
