"""Training problems for coded gradient descent: data split into k parts, a flat
parameter vector, and per-partition gradients that add up to the full gradient.

Objective (every problem): F(w) = (1/m) sum_i l_i(w) + (l2 / 2) ||w||^2 over the m
training samples. Partition j (samples P_j, m_j = |P_j|) contributes

    g_j(w) = (1/m) sum_{i in P_j} grad l_i(w) + l2 * (m_j / m) * w,

so g = g_1 + ... + g_k = grad F exactly. Linear models compute all k partition
gradients with one sparse indicator product (no Python loop over samples).

Problems:
    * :func:`least_squares`: l_i = (x_i^T w - y_i)^2 / 2.
    * :func:`logistic_regression`: labels {0, 1} (or {-1, +1}, mapped),
      l_i = log(1 + exp(z_i)) - y_i z_i, z_i = x_i^T w.
    * :func:`softmax_regression`: C classes, W is dim x C (flattened row-major),
      l_i = logsumexp(x_i^T W) - x_i^T W[:, y_i].
    * :func:`torch_problem`: any ``torch.nn.Module`` and loss; parameters flattened.
    * :func:`jax_problem`: a loss ``loss_fn(params, X, y)`` over a pytree; ``jax.grad``.

Example:
    >>> import numpy as np, gradcode as gc
    >>> X, y = gc.data.synthetic_classification(120, 4, seed=0)
    >>> prob = gc.problems.logistic_regression(X, y, k=6)
    >>> w = prob.init_params()
    >>> G = np.stack([prob.part(j).gradient(w) for j in range(prob.k)])
    >>> bool(np.allclose(G.sum(axis=0), prob.full_gradient(w)))
    True

References:
    [1] R. Tandon et al., "Gradient coding", arXiv:1612.03301, 2017 (logistic regression
        experiments, g = sum of partition gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validate import check_int, check_real
from .data import as_features, partition

__all__ = [
    "LinearPart",
    "LinearProblem",
    "Part",
    "Problem",
    "jax_problem",
    "least_squares",
    "logistic_regression",
    "softmax_regression",
    "torch_problem",
]


def _parts_arg(where: str, m: int, k: Any, partition_seed: Any) -> list[np.ndarray]:
    if isinstance(k, (list, tuple)):
        parts = [np.asarray(p, dtype=np.int64) for p in k]
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if (flat.size != m or np.unique(flat).size != m or flat.min(initial=0) < 0
                or flat.max(initial=0) >= m):
            raise ValueError(f"{where}: the given parts must split the {m} samples exactly "
                             f"once each")
        return parts
    k = check_int(where, "k", k, low=1)
    if k > m:
        raise ValueError(f"{where}: k={k} must be <= the number of samples {m} (no empty parts)")
    return partition(m, k, seed=partition_seed)


class Part:
    """One partition's data; ``gradient(params)`` returns g_j (see module docstring)."""

    def gradient(self, params: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Problem:
    """Base class of training problems (see :mod:`gradcode.problems`).

    Attributes:
        dim: number of parameters (flat vector length).
        k: number of partitions.
        name: short description.
    """

    dim: int
    k: int
    name: str = "problem"

    def init_params(self) -> np.ndarray:
        return np.zeros(self.dim)

    def part(self, j: int) -> Part:
        raise NotImplementedError

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        """All k partition gradients as a (k, dim) array (row j = g_j)."""
        return np.stack([self.part(j).gradient(params) for j in range(self.k)])

    def full_gradient(self, params: np.ndarray) -> np.ndarray:
        """g = sum_j g_j = grad F(params)."""
        return self.partition_gradients(params).sum(axis=0)

    def loss(self, params: np.ndarray) -> float:
        raise NotImplementedError

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        return {"loss": self.loss(params)}

    def lipschitz(self) -> float | None:
        """An upper bound L on the gradient's Lipschitz constant (lr = 1/L), if known."""
        return None

    def _check_params(self, params: Any) -> np.ndarray:
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.dim,):
            raise ValueError(f"{self.name}: params must have shape ({self.dim},), got {p.shape}")
        return p

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, dim={self.dim}, k={self.k})"


# --------------------------------------------------------------------------- linear models
def _sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _logsumexp(Z: np.ndarray) -> np.ndarray:
    mx = Z.max(axis=1)
    return mx + np.log(np.exp(Z - mx[:, None]).sum(axis=1))


def _residual(kind: str, X: Any, y: np.ndarray, w: np.ndarray, classes: int) -> np.ndarray:
    """d l_i / d z_i for each sample (m,) or (m, C)."""
    if kind == "softmax":
        Z = np.asarray(X @ w.reshape(-1, classes))
        R = _softmax(Z)
        R[np.arange(y.size), y.astype(np.int64)] -= 1.0
        return R
    z = np.asarray(X @ w).ravel()
    if kind == "least_squares":
        return z - y
    return _sigmoid(z) - y


def _losses(kind: str, X: Any, y: np.ndarray, w: np.ndarray, classes: int) -> np.ndarray:
    if kind == "softmax":
        Z = np.asarray(X @ w.reshape(-1, classes))
        return _logsumexp(Z) - Z[np.arange(y.size), y.astype(np.int64)]
    z = np.asarray(X @ w).ravel()
    if kind == "least_squares":
        return 0.5 * (z - y) ** 2
    return np.logaddexp(0.0, z) - y * z


def _predict_accuracy(kind: str, X: Any, y: np.ndarray, w: np.ndarray, classes: int) -> float:
    if kind == "softmax":
        pred = np.asarray(X @ w.reshape(-1, classes)).argmax(axis=1)
        return float(np.mean(pred == y))
    z = np.asarray(X @ w).ravel()
    return float(np.mean((z > 0) == (y > 0.5)))


class LinearPart(Part):
    """Partition j of a linear model: its rows of X and y, and the global scaling."""

    def __init__(self, kind: str, X: Any, y: np.ndarray, m_total: int, l2: float,
                 classes: int, index: int) -> None:
        self.kind, self.X, self.y = kind, X, y
        self.m_total, self.l2, self.classes, self.index = m_total, l2, classes, index

    def gradient(self, params: np.ndarray) -> np.ndarray:
        w = np.asarray(params, dtype=np.float64)
        R = _residual(self.kind, self.X, self.y, w, self.classes)
        G = np.asarray(self.X.T @ R).reshape(-1) / self.m_total
        return G + self.l2 * (self.y.size / self.m_total) * w


class LinearProblem(Problem):
    """Least squares, logistic or softmax regression on dense or sparse X.

    Built by :func:`least_squares`, :func:`logistic_regression`, :func:`softmax_regression`.
    """

    def __init__(self, kind: str, X: Any, y: np.ndarray, parts: list[np.ndarray], l2: float,
                 test: tuple[Any, np.ndarray] | None, classes: int, name: str) -> None:
        self.kind, self.X, self.y, self.parts, self.l2 = kind, X, y, parts, l2
        self.test, self.classes, self.name = test, classes, name
        self.m = X.shape[0]
        self.k = len(parts)
        self.dim = X.shape[1] * (classes if kind == "softmax" else 1)
        owner = np.empty(self.m, dtype=np.int64)
        for j, p in enumerate(parts):
            owner[p] = j
        # S[j, i] = 1 iff sample i lies in partition j: all partition sums in one product
        self._S = sp.csr_matrix((np.ones(self.m), (owner, np.arange(self.m))),
                                shape=(self.k, self.m))
        self._frac = np.array([p.size for p in parts], dtype=np.float64) / self.m

    def part(self, j: int) -> LinearPart:
        j = check_int(self.name, "j", j, low=0, high=self.k - 1)
        idx = self.parts[j]
        return LinearPart(self.kind, self.X[idx], self.y[idx], self.m, self.l2, self.classes, j)

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        w = self._check_params(params)
        R = _residual(self.kind, self.X, self.y, w, self.classes)
        if self.kind == "softmax":
            G = np.stack([np.asarray(self.X[p].T @ R[p]).reshape(-1) for p in self.parts])
        elif sp.issparse(self.X):
            G = (self._S @ sp.diags(R) @ self.X).toarray()
        else:
            G = self._S @ (R[:, None] * self.X)
        return np.asarray(G) / self.m + self.l2 * self._frac[:, None] * w[None, :]

    def full_gradient(self, params: np.ndarray) -> np.ndarray:
        w = self._check_params(params)
        R = _residual(self.kind, self.X, self.y, w, self.classes)
        return np.asarray(self.X.T @ R).reshape(-1) / self.m + self.l2 * w

    def loss(self, params: np.ndarray) -> float:
        w = self._check_params(params)
        return float(np.mean(_losses(self.kind, self.X, self.y, w, self.classes))
                     + 0.5 * self.l2 * w @ w)

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        w = self._check_params(params)
        out = {"loss": self.loss(w)}
        classify = self.kind != "least_squares"
        if classify:
            out["train_accuracy"] = _predict_accuracy(self.kind, self.X, self.y, w, self.classes)
        if self.test is not None:
            Xt, yt = self.test
            out["test_loss"] = float(np.mean(_losses(self.kind, Xt, yt, w, self.classes)))
            if classify:
                out["test_accuracy"] = _predict_accuracy(self.kind, Xt, yt, w, self.classes)
        if classify:
            out["accuracy"] = out.get("test_accuracy", out["train_accuracy"])
        return out

    def lipschitz(self) -> float:
        """L = sigma_max(X)^2 / m * c + l2 with c = 1 (least squares), 1/4 (logistic),
        1/2 (softmax)."""
        if sp.issparse(self.X):
            from scipy.sparse.linalg import svds
            try:
                smax = float(svds(self.X, k=1, return_singular_vectors=False,
                                  random_state=0)[0])
            except Exception:  # noqa: BLE001 - tiny matrices: fall back to dense
                smax = float(np.linalg.norm(self.X.toarray(), 2))
        else:
            smax = float(np.linalg.norm(self.X, 2))
        c = {"least_squares": 1.0, "logistic": 0.25, "softmax": 0.5}[self.kind]
        return c * smax ** 2 / self.m + self.l2


def _test_arg(where: str, test: Any, dim: int) -> tuple[Any, np.ndarray] | None:
    if test is None:
        return None
    if not isinstance(test, (tuple, list)) or len(test) != 2:
        raise TypeError(f"{where}: test must be a pair (X_test, y_test), got "
                        f"{type(test).__name__}")
    Xt, yt = as_features(where + " (test)", test[0], test[1])
    if Xt.shape[1] != dim:
        raise ValueError(f"{where}: X_test has {Xt.shape[1]} features but X has {dim}")
    return Xt, yt


def _binary_labels(where: str, y: np.ndarray) -> np.ndarray:
    values = np.unique(y)
    if np.all(np.isin(values, [0.0, 1.0])):
        return y.astype(np.float64)
    if np.all(np.isin(values, [-1.0, 1.0])):
        return (y > 0).astype(np.float64)
    raise ValueError(f"{where}: y must hold binary labels in {{0, 1}} or {{-1, +1}}, got "
                     f"values {values[:5].tolist()}")


def least_squares(X: Any, y: Any, k: int | Sequence[Any], *, l2: float = 0.0,
                  test: tuple[Any, Any] | None = None,
                  partition_seed: Any = None) -> LinearProblem:
    """Least squares F(w) = (1/2m) ||X w - y||^2 + (l2/2) ||w||^2, split into k parts.

    Args:
        X: features, dense array or scipy.sparse matrix (m x dim).
        y: targets, length m.
        k: number of partitions, or an explicit list of index arrays.
        l2: ridge coefficient >= 0.
        test: optional held-out ``(X_test, y_test)`` for ``test_loss``.
        partition_seed: shuffle samples before partitioning (None: contiguous blocks).

    Raises:
        ValueError: shapes disagree, non-finite data, k > m, l2 < 0.
    """
    X, y = as_features("least_squares", X, y)
    l2 = check_real("least_squares", "l2", l2, low=0.0)
    parts = _parts_arg("least_squares", X.shape[0], k, partition_seed)
    return LinearProblem("least_squares", X, y.astype(np.float64), parts, l2,
                         _test_arg("least_squares", test, X.shape[1]), 1,
                         f"least_squares(m={X.shape[0]}, dim={X.shape[1]}, k={len(parts)})")


def logistic_regression(X: Any, y: Any, k: int | Sequence[Any], *, l2: float = 1e-4,
                        test: tuple[Any, Any] | None = None,
                        partition_seed: Any = None) -> LinearProblem:
    """L2-regularised logistic regression, labels {0, 1} or {-1, +1}, split into k parts.

    F(w) = (1/m) sum_i [log(1 + exp(x_i^T w)) - y_i x_i^T w] + (l2/2) ||w||^2.

    Args: as :func:`least_squares`; ``l2`` defaults to 1e-4.

    Example:
        >>> import gradcode as gc
        >>> X, y = gc.data.synthetic_classification(100, 3, seed=1)
        >>> p = gc.problems.logistic_regression(X, y, 4)
        >>> round(p.loss(p.init_params()), 6)
        0.693147
    """
    X, y = as_features("logistic_regression", X, y)
    y = _binary_labels("logistic_regression", y)
    l2 = check_real("logistic_regression", "l2", l2, low=0.0)
    parts = _parts_arg("logistic_regression", X.shape[0], k, partition_seed)
    test_pair = _test_arg("logistic_regression", test, X.shape[1])
    if test_pair is not None:
        test_pair = (test_pair[0], _binary_labels("logistic_regression (test)", test_pair[1]))
    return LinearProblem("logistic", X, y, parts, l2, test_pair, 1,
                         f"logistic_regression(m={X.shape[0]}, dim={X.shape[1]}, k={len(parts)})")


def softmax_regression(X: Any, y: Any, k: int | Sequence[Any], *, classes: int | None = None,
                       l2: float = 1e-4, test: tuple[Any, Any] | None = None,
                       partition_seed: Any = None) -> LinearProblem:
    """Multinomial logistic regression with C classes; params = W (dim x C) row-major.

    F(W) = (1/m) sum_i [logsumexp(x_i^T W) - x_i^T W[:, y_i]] + (l2/2) ||W||_F^2.
    The other arguments are as for :func:`least_squares`.

    Args:
        y: integer labels 0..C-1.
        classes: C (default: max label + 1).
    """
    X, y = as_features("softmax_regression", X, y)
    if not np.all(y == np.round(y)) or y.min() < 0:
        raise ValueError("softmax_regression: y must hold integer class labels >= 0")
    y = y.astype(np.int64)
    C = int(y.max()) + 1 if classes is None else check_int("softmax_regression", "classes",
                                                           classes, low=2)
    if y.max() >= C:
        raise ValueError(f"softmax_regression: label {int(y.max())} must be < classes={C}")
    l2 = check_real("softmax_regression", "l2", l2, low=0.0)
    parts = _parts_arg("softmax_regression", X.shape[0], k, partition_seed)
    test_pair = _test_arg("softmax_regression", test, X.shape[1])
    if test_pair is not None:
        test_pair = (test_pair[0], test_pair[1].astype(np.int64))
    return LinearProblem("softmax", X, y, parts, l2, test_pair, max(C, 2),
                         f"softmax_regression(m={X.shape[0]}, dim={X.shape[1]}, C={C}, "
                         f"k={len(parts)})")


# --------------------------------------------------------------------------- torch
class TorchPart(Part):
    """Partition j of a :func:`torch_problem`: a module copy and its rows of X, y."""

    def __init__(self, module: Any, loss_fn: Callable, X: Any, y: Any, weight: float,
                 l2: float) -> None:
        self.module, self.loss_fn, self.X, self.y = module, loss_fn, X, y
        self.weight, self.l2 = weight, l2

    def gradient(self, params: np.ndarray) -> np.ndarray:
        import torch
        from torch.nn.utils import parameters_to_vector, vector_to_parameters

        mod = self.module
        p0 = parameters_to_vector(mod.parameters())
        flat = torch.as_tensor(np.asarray(params), dtype=p0.dtype)
        vector_to_parameters(flat, mod.parameters())
        mod.zero_grad(set_to_none=True)
        loss = self.loss_fn(mod(self.X), self.y) * self.weight
        grads = torch.autograd.grad(loss, list(mod.parameters()), allow_unused=True)
        g = torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1)
                       for gr, p in zip(grads, mod.parameters())])
        return g.detach().cpu().numpy().astype(np.float64) + self.l2 * self.weight * \
            np.asarray(params, dtype=np.float64)


class TorchProblem(Problem):
    """A PyTorch model as a coded-training problem (see :func:`torch_problem`)."""

    def __init__(self, module: Any, loss_fn: Callable, X: Any, y: Any,
                 parts: list[np.ndarray], l2: float, test: Any, accuracy: bool) -> None:
        import torch
        from torch.nn.utils import parameters_to_vector

        self.module, self.loss_fn, self.X, self.y = module, loss_fn, X, y
        self.parts, self.l2, self.test, self.accuracy = parts, l2, test, accuracy
        self.k = len(parts)
        self.m = int(X.shape[0])
        self._p0 = parameters_to_vector(module.parameters()).detach().cpu().numpy().astype(
            np.float64)
        self.dim = int(self._p0.size)
        self.name = f"torch_problem({type(module).__name__}, m={self.m}, dim={self.dim}, k={self.k})"
        self._torch = torch

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_torch", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def init_params(self) -> np.ndarray:
        return self._p0.copy()

    def part(self, j: int) -> TorchPart:
        import copy
        j = check_int(self.name, "j", j, low=0, high=self.k - 1)
        idx = self.parts[j]
        return TorchPart(copy.deepcopy(self.module), self.loss_fn, self.X[idx], self.y[idx],
                         idx.size / self.m, self.l2)

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        params = self._check_params(params)
        return np.stack([self._part_view(j).gradient(params) for j in range(self.k)])

    def _part_view(self, j: int) -> TorchPart:
        idx = self.parts[j]
        return TorchPart(self.module, self.loss_fn, self.X[idx], self.y[idx],
                         idx.size / self.m, self.l2)

    def _eval(self, params: np.ndarray, X: Any, y: Any) -> tuple[float, float | None]:
        import torch
        from torch.nn.utils import parameters_to_vector, vector_to_parameters

        p0 = parameters_to_vector(self.module.parameters())
        vector_to_parameters(torch.as_tensor(params, dtype=p0.dtype), self.module.parameters())
        with torch.no_grad():
            out = self.module(X)
            loss = float(self.loss_fn(out, y))
            acc = None
            if self.accuracy and out.ndim == 2 and out.shape[1] > 1:
                acc = float((out.argmax(dim=1) == y).double().mean())
            elif self.accuracy:
                acc = float(((out.reshape(-1) > 0).double() == y.reshape(-1).double())
                            .double().mean())
        return loss, acc

    def loss(self, params: np.ndarray) -> float:
        p = self._check_params(params)
        return self._eval(p, self.X, self.y)[0] + 0.5 * self.l2 * float(p @ p)

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        p = self._check_params(params)
        out: dict[str, float] = {"loss": self.loss(p)}
        _, acc = self._eval(p, self.X, self.y)
        if acc is not None:
            out["train_accuracy"] = acc
        if self.test is not None:
            tl, tacc = self._eval(p, *self.test)
            out["test_loss"] = tl
            if tacc is not None:
                out["test_accuracy"] = tacc
        if acc is not None:
            out["accuracy"] = out.get("test_accuracy", acc)
        return out


def torch_problem(module: Any, loss_fn: Callable, X: Any, y: Any, k: int | Sequence[Any], *,
                  l2: float = 0.0, test: tuple[Any, Any] | None = None, accuracy: bool = False,
                  partition_seed: Any = None) -> TorchProblem:
    """Wrap a ``torch.nn.Module`` and a loss into a problem with flat numpy parameters.

    ``loss_fn(module(X_j), y_j)`` must return the MEAN loss over the batch; partition j's
    gradient is (m_j / m) * grad of that mean (plus the l2 share), so the k gradients add
    up to the gradient of the full mean loss. Parameters are flattened in
    ``module.parameters()`` order (``torch.nn.utils.parameters_to_vector``).

    Args:
        module: the model (its current parameters are ``init_params()``).
        loss_fn: e.g. ``torch.nn.functional.cross_entropy``; must be picklable (a
            module-level function or ``torch.nn`` loss object) for the local backend.
        X, y: tensors or arrays (converted with ``torch.as_tensor``; X to the module's dtype).
        k: number of partitions or explicit index arrays.
        l2: weight decay coefficient added to the objective.
        test: held-out ``(X_test, y_test)``.
        accuracy: report classification accuracy (argmax of outputs, or sign for 1 output).

    Example:
        >>> import torch, gradcode as gc  # doctest: +SKIP
        >>> prob = gc.problems.torch_problem(torch.nn.Linear(4, 3),
        ...     torch.nn.functional.cross_entropy, X, y, k=8, accuracy=True)  # doctest: +SKIP
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        raise ImportError("torch_problem needs PyTorch: pip install 'gradcode[torch]'") from None
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"torch_problem: module must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    if not callable(loss_fn):
        raise TypeError("torch_problem: loss_fn must be callable (output, target) -> loss")
    dtype = next(module.parameters()).dtype
    Xt = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X).to(dtype)
    yt = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
    if Xt.shape[0] != yt.shape[0]:
        raise ValueError(f"torch_problem: X has {Xt.shape[0]} rows but y has {yt.shape[0]}")
    l2 = check_real("torch_problem", "l2", l2, low=0.0)
    parts = _parts_arg("torch_problem", int(Xt.shape[0]), k, partition_seed)
    test_pair = None
    if test is not None:
        test_pair = (torch.as_tensor(np.asarray(test[0]) if not torch.is_tensor(test[0])
                                     else test[0]).to(dtype),
                     torch.as_tensor(np.asarray(test[1]) if not torch.is_tensor(test[1])
                                     else test[1]))
    return TorchProblem(module, loss_fn, Xt, yt, parts, l2, test_pair, accuracy)


# --------------------------------------------------------------------------- jax
class JaxPart(Part):
    """Partition j of a :func:`jax_problem` (the jitted gradient is rebuilt after unpickling)."""

    def __init__(self, loss_fn: Callable, params0: Any, X: Any, y: Any, weight: float,
                 l2: float) -> None:
        self.loss_fn, self.params0, self.X, self.y = loss_fn, params0, X, y
        self.weight, self.l2 = weight, l2
        self._grad: Callable | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_grad"] = None
        return state

    def _build(self) -> Callable:
        import jax
        from jax.flatten_util import ravel_pytree

        _, unravel = ravel_pytree(self.params0)
        loss_fn = self.loss_fn

        def flat_loss(flat: Any, X: Any, y: Any) -> Any:
            return loss_fn(unravel(flat), X, y)

        return jax.jit(jax.grad(flat_loss))

    def gradient(self, params: np.ndarray) -> np.ndarray:
        if self._grad is None:
            self._grad = self._build()
        p = np.asarray(params, dtype=np.float64)
        g = np.asarray(self._grad(p.astype(_jax_dtype(self.params0)), self.X, self.y),
                       dtype=np.float64)
        return self.weight * g + self.l2 * self.weight * p


def _jax_dtype(params0: Any) -> Any:
    from jax.flatten_util import ravel_pytree
    flat, _ = ravel_pytree(params0)
    return np.dtype(flat.dtype)


class JaxProblem(Problem):
    """A JAX loss as a coded-training problem (see :func:`jax_problem`)."""

    def __init__(self, loss_fn: Callable, params0: Any, X: Any, y: Any,
                 parts: list[np.ndarray], l2: float, test: Any,
                 accuracy_fn: Callable | None) -> None:
        from jax.flatten_util import ravel_pytree

        self.loss_fn, self.params0, self.X, self.y = loss_fn, params0, X, y
        self.parts, self.l2, self.test, self.accuracy_fn = parts, l2, test, accuracy_fn
        flat, _ = ravel_pytree(params0)
        self._p0 = np.asarray(flat, dtype=np.float64)
        self.dim = int(self._p0.size)
        self.k = len(parts)
        self.m = int(np.shape(X)[0])
        self.name = f"jax_problem({getattr(loss_fn, '__name__', 'loss')}, m={self.m}, " \
                    f"dim={self.dim}, k={self.k})"
        self._views: dict[int, JaxPart] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_views"] = {}
        return state

    def init_params(self) -> np.ndarray:
        return self._p0.copy()

    def part(self, j: int) -> JaxPart:
        j = check_int(self.name, "j", j, low=0, high=self.k - 1)
        idx = self.parts[j]
        return JaxPart(self.loss_fn, self.params0, self.X[idx], self.y[idx],
                       idx.size / self.m, self.l2)

    def partition_gradients(self, params: np.ndarray) -> np.ndarray:
        p = self._check_params(params)
        rows = []
        for j in range(self.k):
            if j not in self._views:
                self._views[j] = self.part(j)
            rows.append(self._views[j].gradient(p))
        return np.stack(rows)

    def _unravel(self, params: np.ndarray) -> Any:
        from jax.flatten_util import ravel_pytree
        _, unravel = ravel_pytree(self.params0)
        return unravel(np.asarray(params).astype(_jax_dtype(self.params0)))

    def loss(self, params: np.ndarray) -> float:
        p = self._check_params(params)
        return float(self.loss_fn(self._unravel(p), self.X, self.y)) + 0.5 * self.l2 * float(p @ p)

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        p = self._check_params(params)
        out = {"loss": self.loss(p)}
        tree = self._unravel(p)
        if self.accuracy_fn is not None:
            out["train_accuracy"] = float(self.accuracy_fn(tree, self.X, self.y))
        if self.test is not None:
            out["test_loss"] = float(self.loss_fn(tree, *self.test))
            if self.accuracy_fn is not None:
                out["test_accuracy"] = float(self.accuracy_fn(tree, *self.test))
        if self.accuracy_fn is not None:
            out["accuracy"] = out.get("test_accuracy", out["train_accuracy"])
        return out


def jax_problem(loss_fn: Callable, params0: Any, X: Any, y: Any, k: int | Sequence[Any], *,
                l2: float = 0.0, test: tuple[Any, Any] | None = None,
                accuracy_fn: Callable | None = None, partition_seed: Any = None) -> JaxProblem:
    """Wrap a JAX loss ``loss_fn(params, X, y) -> mean loss`` over a parameter pytree.

    Partition j's gradient is (m_j / m) * ``jax.grad`` of the mean loss on its rows (plus
    the l2 share); parameters are flattened with ``jax.flatten_util.ravel_pytree``.
    ``loss_fn`` (and ``accuracy_fn``) must be picklable (module-level) for the local backend.

    Example:
        >>> import jax.numpy as jnp, numpy as np, gradcode as gc  # doctest: +SKIP
        >>> def mse(p, X, y): return jnp.mean((X @ p["w"] - y) ** 2) / 2  # doctest: +SKIP
        >>> prob = gc.problems.jax_problem(mse, {"w": np.zeros(3)}, X, y, k=4)  # doctest: +SKIP
    """
    try:
        import jax  # noqa: F401
    except ImportError:  # pragma: no cover
        raise ImportError("jax_problem needs JAX: pip install 'gradcode[jax]'") from None
    if not callable(loss_fn):
        raise TypeError("jax_problem: loss_fn must be callable (params, X, y) -> loss")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"jax_problem: X has {X.shape[0]} rows but y has {y.shape[0]}")
    l2 = check_real("jax_problem", "l2", l2, low=0.0)
    parts = _parts_arg("jax_problem", X.shape[0], k, partition_seed)
    test_pair = None if test is None else (np.asarray(test[0]), np.asarray(test[1]))
    return JaxProblem(loss_fn, params0, X, y, parts, l2, test_pair, accuracy_fn)
