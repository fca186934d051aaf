"""A JAX loss over a parameter pytree as a coded-training problem (see :func:`jax_problem`).

Parameters travel as ONE flat buffer in the pytree's dtype (float32 unless JAX runs with
x64), in ``jax.flatten_util.ravel_pytree`` order. Partition j's gradient in round t is
(b_j / U) times ``jax.grad`` of the mean loss on its minibatch (plus the l2 share); the
jitted gradient is compiled once per partition (its minibatch shape never changes) and
rebuilt after unpickling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...core.validate import check_int
from ._base import Minibatches, ModelProblem, Part, parts_arg
from ._sources import (
    ArrayRows,
    DatasetRows,
    RowSource,
    check_data_args,
    check_model_args,
    check_same_rows,
)

__all__ = ["JaxPart", "JaxProblem", "jax_problem"]

_EVAL_CHUNK = 8192


def _flat(params0: Any) -> tuple[np.ndarray, Callable]:
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params0)
    return np.asarray(flat), unravel


class JaxPart(Part):
    """Partition j of a :func:`jax_problem`: the loss, the pytree template and j's samples."""

    def __init__(self, loss_fn: Callable, params0: Any, source: Any, batches: Minibatches,
                 index: int, l2: float) -> None:
        self.loss_fn, self.params0, self.source = loss_fn, params0, source
        self.batches, self.index, self.l2 = batches, index, l2
        self.dtype = _flat(params0)[0].dtype
        self._grad: Callable | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_grad"] = None
        return state

    def _build(self) -> Callable:
        import jax

        unravel = _flat(self.params0)[1]
        loss_fn = self.loss_fn

        def flat_loss(flat: Any, X: Any, y: Any) -> Any:
            return loss_fn(unravel(flat), X, y)

        return jax.jit(jax.grad(flat_loss))

    def gradient(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        if self._grad is None:
            self._grad = self._build()
        p = np.asarray(params, dtype=self.dtype)
        X, y = self.source.take(self.batches.rows(round, self.index))
        weight = self.batches.count(round, self.index) / self.batches.total(round)
        g = np.asarray(self._grad(p, X, y), dtype=self.dtype) * self.dtype.type(weight)
        if self.l2:
            g = g + self.dtype.type(self.l2 * weight) * p
        return g


class JaxProblem(ModelProblem):
    """A JAX loss as a coded-training problem (see :func:`jax_problem`)."""

    def __init__(self, loss_fn: Callable, params0: Any, sources: Any, parts: list[np.ndarray],
                 l2: float, test: Any, accuracy_fn: Callable | None,
                 batch_size: int | None, batch_seed: int) -> None:
        self.loss_fn, self.params0, self._sources = loss_fn, params0, sources
        self.parts, self.l2, self.test, self.accuracy_fn = parts, l2, test, accuracy_fn
        flat, _ = _flat(params0)
        self._p0 = flat.copy()
        self.dtype = flat.dtype
        self.dim = int(self._p0.size)
        self.k = len(parts)
        self.train_rows = sources(None)
        self.m = len(self.train_rows)
        self.batches = Minibatches([p.size for p in parts], batch_size, batch_seed,
                                   "jax_problem")
        self.batch_size = self.batches.batch_size
        self.name = (f"jax_problem({getattr(loss_fn, '__name__', 'loss')}, m={self.m}, "
                     f"dim={self.dim}, k={self.k}"
                     + ("" if batch_size is None else f", batch={batch_size}") + ")")
        self._views: dict[int, JaxPart] = {}


    def unravel(self, params: np.ndarray) -> Any:
        """The parameter pytree of a flat vector."""
        return _flat(self.params0)[1](np.asarray(params, dtype=self.dtype))

    def part(self, j: int) -> JaxPart:
        j = check_int(self.name, "j", j, low=0, high=self.k - 1)
        return JaxPart(self.loss_fn, self.params0, self._sources(self.parts[j]), self.batches,
                       j, self.l2)

    def partition_gradients(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        p = self._check_params(params)
        rows = []
        for j in range(self.k):
            if j not in self._views:
                self._views[j] = self.part(j)
            rows.append(self._views[j].gradient(p, round=round))
        return np.stack(rows)

    def _mean(self, fn: Callable, tree: Any, source: Any) -> float:
        total, count = 0.0, 0
        for X, y in source.chunks(_EVAL_CHUNK):
            b = int(np.shape(X)[0])
            total += float(fn(tree, X, y)) * b
            count += b
        return total / count

    def loss(self, params: np.ndarray) -> float:
        p = self._check_params(params)
        p64 = p.astype(np.float64)
        return self._mean(self.loss_fn, self.unravel(p), self.train_rows) + \
            0.5 * self.l2 * float(p64 @ p64)

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        p = self._check_params(params)
        out = {"loss": self.loss(p)}
        tree = self.unravel(p)
        if self.accuracy_fn is not None:
            out["train_accuracy"] = self._mean(self.accuracy_fn, tree, self.train_rows)
        if self.test is not None:
            out["test_loss"] = self._mean(self.loss_fn, tree, self.test)
            if self.accuracy_fn is not None:
                out["test_accuracy"] = self._mean(self.accuracy_fn, tree, self.test)
        if self.accuracy_fn is not None:
            out["accuracy"] = out.get("test_accuracy", out["train_accuracy"])
        return out


def _data_arg(where: str, X: Any, y: Any, dataset: Any) -> tuple[int, RowSource]:
    check_data_args(where, X, y, dataset)
    if dataset is not None:
        return len(dataset), RowSource(None, None, dataset)
    X, y = np.asarray(X), np.asarray(y)
    return check_same_rows(where, X, y), RowSource(X, y)


def jax_problem(loss_fn: Callable, params0: Any, X: Any = None, y: Any = None,
                k: int | Sequence[Any] | None = None, *, dataset: Any = None,
                batch_size: int | None = None, batch_seed: int = 0, l2: float = 0.0,
                test: Any = None, accuracy_fn: Callable | None = None,
                partition_seed: Any = None) -> JaxProblem:
    """Wrap a JAX loss ``loss_fn(params, X, y) -> mean loss`` over a parameter pytree.

    Partition j's gradient is (b_j / U) * ``jax.grad`` of the mean loss on its round's
    minibatch (plus the l2 share; see :class:`Minibatches`); parameters are flattened
    with ``jax.flatten_util.ravel_pytree`` and keep its dtype. Train with an optax
    transformation: ``train(..., optimizer=gc.optimizers.OptaxOptimizer(optax.adam(1e-3),
    params0=params0))`` applies it to the pytree. ``loss_fn`` (and ``accuracy_fn``) must
    be picklable (module-level) for the local and Ray backends.

    Args:
        loss_fn: ``(params, X, y) -> scalar`` mean loss (jit-able).
        params0: the initial parameter pytree.
        X, y: arrays, or:
        dataset: a map-style dataset of ``(x, y)`` items (e.g. a torch Dataset of numpy
            arrays), split by index; each worker reads only its partitions' items.
        k: number of partitions or explicit index arrays.
        batch_size, batch_seed: minibatch rows per partition and round (None: full) and
            the seed of their draws.
        l2: weight decay coefficient. test: ``(X_test, y_test)`` or a dataset.
        accuracy_fn: optional ``(params, X, y) -> accuracy``.
        partition_seed: shuffle samples before partitioning (None: contiguous blocks).

    Raises:
        TypeError: loss_fn not callable, dataset not map-style.
        ValueError: X and y lengths differ, both or neither of (X, y) and dataset, k
            missing or > m, batch_size < 1, l2 < 0.

    Example:
        >>> import jax.numpy as jnp, numpy as np, gradcode as gc  # doctest: +SKIP
        >>> def mse(p, X, y): return jnp.mean((X @ p["w"] - y) ** 2) / 2  # doctest: +SKIP
        >>> prob = gc.problems.jax_problem(mse, {"w": np.zeros(3)}, X, y, k=4,
        ...                                batch_size=16)  # doctest: +SKIP
    """
    try:
        import jax  # noqa: F401
    except ImportError:  # pragma: no cover
        raise ImportError("jax_problem needs JAX: pip install 'gradcode[jax]'") from None
    where = "jax_problem"
    l2 = check_model_args(where, loss_fn, "(params, X, y)", k, l2, batch_size, batch_seed)
    m, sources = _data_arg(where, X, y, dataset)
    parts = parts_arg(where, m, k, partition_seed)
    test_rows = None
    if test is not None:
        if isinstance(test, (tuple, list)) and len(test) == 2:
            test_rows = _data_arg(where + " (test)", test[0], test[1], None)[1](None)
        else:
            test_rows = _data_arg(where + " (test)", None, None, test)[1](None)
    return JaxProblem(loss_fn, params0, sources, parts, l2, test_rows, accuracy_fn,
                      batch_size, batch_seed)
