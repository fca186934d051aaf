"""Training problems for coded gradient descent: data split into k parts, a flat
parameter vector, and per-partition gradients that add up to the full gradient.

Objective (every problem): F(w) = (1/m) sum_i l_i(w) + (l2 / 2) ||w||^2 over the m
training samples. Partition j (samples P_j, m_j = |P_j|) contributes

    g_j(w) = (1/m) sum_{i in P_j} grad l_i(w) + l2 * (m_j / m) * w,

so g = g_1 + ... + g_k = grad F exactly. Linear models compute all k partition
gradients with one sparse indicator product (no Python loop over samples).

Minibatches: with ``batch_size=b`` every problem's round t uses b rows of each partition
(all of it when m_j <= b), drawn from ``default_rng([batch_seed, t, j])``, so every worker
holding partition j uses the same rows; ``partition_gradients(w, round=t)`` and
``part(j).gradient(w, round=t)`` then sum to the gradient of the mean loss over the union
of the round's minibatches (:class:`Minibatches`). ``round=None`` is the full data.

Problems:
    * :func:`least_squares`: l_i = (x_i^T w - y_i)^2 / 2.
    * :func:`logistic_regression`: labels {0, 1} (or {-1, +1}, mapped),
      l_i = log(1 + exp(z_i)) - y_i z_i, z_i = x_i^T w.
    * :func:`softmax_regression`: C classes, W is dim x C (flattened row-major),
      l_i = logsumexp(x_i^T W) - x_i^T W[:, y_i].
    * :func:`torch_problem`: any ``torch.nn.Module`` and loss, data as tensors or a
      ``torch.utils.data.Dataset``; one flat parameter buffer in the model's dtype.
    * :func:`jax_problem`: a loss ``loss_fn(params, X, y)`` over a pytree; ``jax.grad``;
      one flat buffer in the pytree's dtype.

Example:
    >>> import numpy as np, gradcode as gc
    >>> X, y = gc.data.synthetic_classification(120, 4, seed=0)
    >>> prob = gc.problems.logistic_regression(X, y, k=6)
    >>> w = prob.init_params()
    >>> G = np.stack([prob.part(j).gradient(w) for j in range(prob.k)])
    >>> bool(np.allclose(G.sum(axis=0), prob.full_gradient(w)))
    True
    >>> mb = gc.problems.logistic_regression(X, y, k=6, batch_size=5, batch_seed=1)
    >>> mb.partition_gradients(w, round=3).shape
    (6, 4)

References:
    [1] R. Tandon et al., "Gradient coding", arXiv:1612.03301, 2017 (logistic regression
        experiments, g = sum of partition gradients).
"""

from ._base import Minibatches, Part, Problem, gradient_at, partition_gradients_at
from ._jax import JaxPart, JaxProblem, jax_problem
from ._linear import (
    LinearPart,
    LinearProblem,
    _sigmoid,  # noqa: F401  (benchmarks/training.py imports it)
    least_squares,
    logistic_regression,
    softmax_regression,
)
from ._sources import ArrayRows, DatasetRows
from ._torch import TorchPart, TorchProblem, torch_problem

__all__ = [
    "ArrayRows",
    "DatasetRows",
    "JaxPart",
    "JaxProblem",
    "LinearPart",
    "LinearProblem",
    "Minibatches",
    "Part",
    "Problem",
    "TorchPart",
    "TorchProblem",
    "gradient_at",
    "jax_problem",
    "least_squares",
    "logistic_regression",
    "partition_gradients_at",
    "softmax_regression",
    "torch_problem",
]
