"""A ``torch.nn.Module`` and a loss as a coded-training problem (see :func:`torch_problem`).

Parameters travel as ONE flat buffer in the model's dtype (float32 for a default
module), in ``module.parameters()`` order (``torch.nn.utils.parameters_to_vector``).
Partition j's gradient in round t is (b_j / U) times the gradient of the mean loss on
its minibatch (plus the l2 share), so the k gradients add up to the gradient of the mean
loss over the union of the round's minibatches (:class:`Minibatches`).

Randomness inside the model (dropout) is seeded per (batch_seed, round, partition) around
each forward pass, so every replica of partition j draws the same dropout masks and the
coded combinations still decode exactly. Buffers (BatchNorm running statistics) are not
trained across workers: prefer GroupNorm or LayerNorm.
"""

from __future__ import annotations

import copy
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

__all__ = ["TorchPart", "TorchProblem", "torch_problem"]

_EVAL_CHUNK = 4096


def _np_dtype(module: Any) -> np.dtype:
    import torch

    p = next(module.parameters(), None)
    if p is None:
        raise ValueError("torch_problem: the module has no parameters to train")
    return np.dtype(torch.empty((), dtype=p.dtype).numpy().dtype)


def _round_seed(seed: int, round: int | None, j: int) -> int:
    """A 63-bit torch seed from (seed, round, j) (round None: its own stream)."""
    ss = np.random.SeedSequence([seed, 0 if round is None else 1,
                                 0 if round is None else round, j])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _inputs(batch: tuple[Any, Any], dtype: Any) -> tuple[Any, Any]:
    """(X, y) with a floating X cast to the model's dtype (datasets often yield float64)."""
    X, y = batch
    if X.is_floating_point() and X.dtype != dtype:
        X = X.to(dtype)
    return X, y


class TorchPart(Part):
    """Partition j of a :func:`torch_problem`: a module (a copy, in a worker) and j's
    samples (sliced rows, or a dataset and j's indices)."""

    def __init__(self, module: Any, loss_fn: Callable, source: Any, batches: Minibatches,
                 index: int, l2: float) -> None:
        self.module, self.loss_fn, self.source = module, loss_fn, source
        self.batches, self.index, self.l2 = batches, index, l2
        self.dtype = _np_dtype(module)

    def gradient(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        import torch
        from torch.nn.utils import vector_to_parameters

        mod = self.module
        plist = list(mod.parameters())
        p = np.ascontiguousarray(params, dtype=self.dtype)
        with torch.no_grad():
            vector_to_parameters(torch.from_numpy(p), plist)
        rows = self.batches.rows(round, self.index)
        X, y = _inputs(self.source.take(rows), plist[0].dtype)
        weight = self.batches.count(round, self.index) / self.batches.total(round)
        seed = _round_seed(self.batches.seed, round, self.index)
        on_cpu = plist[0].device.type == "cpu"
        # every replica of j draws the same dropout masks; seeding only the CPU generator
        # is ~20x cheaper than torch.manual_seed, which also queues seeding of every GPU
        with torch.random.fork_rng(devices=[] if on_cpu else [plist[0].device]):
            if on_cpu:
                torch.default_generator.manual_seed(seed)
            else:
                torch.manual_seed(seed)
            loss = self.loss_fn(mod(X), y) * weight
        grads = torch.autograd.grad(loss, plist, allow_unused=True)
        g = torch.cat([(gr if gr is not None else torch.zeros_like(q)).reshape(-1)
                       for gr, q in zip(grads, plist)]).detach().cpu().numpy()
        if self.l2:
            g = g + (self.l2 * weight) * p
        return g


class TorchProblem(ModelProblem):
    """A PyTorch model as a coded-training problem (see :func:`torch_problem`)."""

    def __init__(self, module: Any, loss_fn: Callable, train: Any, parts: list[np.ndarray],
                 make_source: Callable[[np.ndarray | None], Any], l2: float, test: Any,
                 accuracy: bool, batch_size: int | None, batch_seed: int) -> None:
        from torch.nn.utils import parameters_to_vector

        self.module, self.loss_fn, self.train_rows = module, loss_fn, train
        self.parts, self.l2, self.test, self.accuracy = parts, l2, test, accuracy
        self._make_source = make_source
        self.k = len(parts)
        self.m = len(train)
        self.dtype = _np_dtype(module)
        self.batches = Minibatches([p.size for p in parts], batch_size, batch_seed,
                                   "torch_problem")
        self.batch_size = self.batches.batch_size
        self._p0 = parameters_to_vector(module.parameters()).detach().cpu().numpy().copy()
        self.dim = int(self._p0.size)
        self.name = (f"torch_problem({type(module).__name__}, m={self.m}, dim={self.dim}, "
                     f"k={self.k}" + ("" if batch_size is None else f", batch={batch_size}")
                     + ")")
        self._views: dict[int, TorchPart] = {}


    def part(self, j: int) -> TorchPart:
        """Partition j with its own copy of the module (what a worker receives)."""
        j = check_int(self.name, "j", j, low=0, high=self.k - 1)
        return TorchPart(copy.deepcopy(self.module), self.loss_fn,
                         self._make_source(self.parts[j]), self.batches, j, self.l2)

    def partition_gradients(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        p = self._check_params(params)
        rows = []
        for j in range(self.k):
            if j not in self._views:          # in-process views share the master's module
                self._views[j] = TorchPart(self.module, self.loss_fn,
                                           self._make_source(self.parts[j]), self.batches,
                                           j, self.l2)
            rows.append(self._views[j].gradient(p, round=round))
        return np.stack(rows)

    def _torch_dtype(self) -> Any:
        return next(self.module.parameters()).dtype

    def _eval(self, params: np.ndarray, source: Any) -> tuple[float, float | None]:
        """Mean loss (and accuracy) over ``source``, in chunks, in eval mode."""
        import torch
        from torch.nn.utils import vector_to_parameters

        mod = self.module
        was_training = mod.training
        vector_to_parameters(torch.from_numpy(np.ascontiguousarray(params, self.dtype)),
                             mod.parameters())
        total = correct = 0.0
        count = 0
        mod.eval()
        try:
            with torch.no_grad():
                for batch in source.chunks(_EVAL_CHUNK):
                    X, y = _inputs(batch, self._torch_dtype())
                    out = mod(X)
                    b = int(out.shape[0])
                    total += float(self.loss_fn(out, y)) * b
                    count += b
                    if not self.accuracy:
                        continue
                    if out.ndim == 2 and out.shape[1] > 1:
                        correct += float((out.argmax(dim=1) == y).sum())
                    else:
                        correct += float(((out.reshape(-1) > 0).double()
                                          == y.reshape(-1).double()).sum())
        finally:
            mod.train(was_training)
        return total / count, (correct / count if self.accuracy else None)

    def loss(self, params: np.ndarray) -> float:
        p = self._check_params(params)
        return self._eval(p, self.train_rows)[0] + 0.5 * self.l2 * float(
            np.dot(p.astype(np.float64), p.astype(np.float64)))

    def metrics(self, params: np.ndarray) -> dict[str, float]:
        p = self._check_params(params)
        tl, acc = self._eval(p, self.train_rows)
        out: dict[str, float] = {"loss": tl + 0.5 * self.l2 * float(
            np.dot(p.astype(np.float64), p.astype(np.float64)))}
        if acc is not None:
            out["train_accuracy"] = acc
        if self.test is not None:
            tl, tacc = self._eval(p, self.test)
            out["test_loss"] = tl
            if tacc is not None:
                out["test_accuracy"] = tacc
        if acc is not None:
            out["accuracy"] = out.get("test_accuracy", acc)
        return out


def _tensor(torch: Any, a: Any, dtype: Any = None) -> Any:
    t = a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))
    return t if dtype is None else t.to(dtype)


def _data_arg(torch: Any, where: str, X: Any, y: Any, dataset: Any,
              dtype: Any) -> tuple[int, RowSource]:
    """(m, make_source): make_source(index) gives the rows ``index`` (None: all)."""
    check_data_args(where, X, y, dataset)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        tensors = dataset.tensors
        if len(tensors) != 2:
            raise ValueError(f"{where}: a TensorDataset must hold (inputs, targets), got "
                             f"{len(tensors)} tensors")
        return int(tensors[0].shape[0]), RowSource(tensors[0].to(dtype), tensors[1])
    if dataset is not None:
        return len(dataset), RowSource(None, None, dataset, torch.utils.data.default_collate)
    Xt, yt = _tensor(torch, X, dtype), _tensor(torch, y)
    return check_same_rows(where, Xt, yt), RowSource(Xt, yt)


def torch_problem(module: Any, loss_fn: Callable, X: Any = None, y: Any = None,
                  k: int | Sequence[Any] | None = None, *, dataset: Any = None,
                  batch_size: int | None = None, batch_seed: int = 0, l2: float = 0.0,
                  test: Any = None, accuracy: bool = False,
                  partition_seed: Any = None) -> TorchProblem:
    """Wrap a ``torch.nn.Module`` and a loss into a problem with one flat parameter buffer.

    ``loss_fn(module(X_b), y_b)`` must return the MEAN loss over the batch; partition j's
    gradient is (b_j / U) * grad of that mean (plus the l2 share), so the k gradients add
    up to the gradient of the mean loss over the union of the round's minibatches (the
    full data when ``batch_size`` is None). Parameters are flattened in
    ``module.parameters()`` order, in the module's dtype.

    Args:
        module: the model (its current parameters are ``init_params()``); the master keeps
            it, every worker gets a copy with its partitions.
        loss_fn: e.g. ``torch.nn.functional.cross_entropy``; must be picklable (a
            module-level function or ``torch.nn`` loss object) for the local and Ray
            backends.
        X, y: tensors or arrays (X converted to the module's dtype), or:
        dataset: a map-style ``torch.utils.data.Dataset`` of ``(x, y)`` items, split by
            index. A ``TensorDataset`` is sliced once (a worker receives only its rows);
            any other dataset is pickled as is and a worker reads only its partitions'
            items (``dataset[i]``, collated with ``default_collate``), so keep it cheap to
            pickle (paths, memory maps).
        k: number of partitions or explicit index arrays.
        batch_size: rows per partition and round (None: the full partition); round t's
            rows of partition j come from ``default_rng([batch_seed, t, j])``.
        batch_seed: seed of the minibatch draws and of the dropout masks (int >= 0).
        l2: weight decay coefficient added to the objective.
        test: held-out ``(X_test, y_test)`` or a Dataset, for ``test_loss`` /
            ``test_accuracy``.
        accuracy: report classification accuracy (argmax of outputs, or sign for 1 output).
        partition_seed: shuffle samples before partitioning (None: contiguous blocks).

    Raises:
        TypeError: module is not a ``torch.nn.Module``, loss_fn not callable, dataset not
            map-style.
        ValueError: X and y lengths differ, both or neither of (X, y) and dataset, k
            missing or > m, batch_size < 1, l2 < 0.

    Example:
        >>> import torch, gradcode as gc  # doctest: +SKIP
        >>> prob = gc.problems.torch_problem(torch.nn.Linear(4, 3),
        ...     torch.nn.functional.cross_entropy, dataset=train_set, k=8, batch_size=32,
        ...     accuracy=True)  # doctest: +SKIP
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        raise ImportError("torch_problem needs PyTorch: pip install 'gradcode[torch]'") from None
    where = "torch_problem"
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{where}: module must be a torch.nn.Module, got "
                        f"{type(module).__name__}")
    l2 = check_model_args(where, loss_fn, "(output, target)", k, l2, batch_size, batch_seed)
    dtype = next(module.parameters()).dtype
    m, make_source = _data_arg(torch, where, X, y, dataset, dtype)
    parts = parts_arg(where, m, k, partition_seed)
    test_rows = None
    if test is not None:
        if isinstance(test, (tuple, list)) and len(test) == 2:
            test_rows = _data_arg(torch, where + " (test)", test[0], test[1], None, dtype)[1](
                None)
        else:
            test_rows = _data_arg(torch, where + " (test)", None, None, test, dtype)[1](None)
    return TorchProblem(module, loss_fn, make_source(None), parts, make_source, l2,
                        test_rows, accuracy, batch_size, batch_seed)
