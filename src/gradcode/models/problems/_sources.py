"""Where a partition's samples come from: arrays sliced once, or a map-style dataset
read item by item in the process that computes the gradient.

* :class:`ArrayRows` holds partition j's rows of X and y (numpy arrays or torch tensors):
  pickling it ships only those rows.
* :class:`DatasetRows` holds a map-style dataset (``len`` and ``dataset[i] -> (x, y)``)
  and partition j's indices; ``take`` reads only the requested items and collates them.
  The dataset object itself is pickled, so it should be cheap to pickle (file paths, a
  memory map, a lazily opened archive): each worker then loads only its partitions'
  items, as a ``torch.utils.data.DataLoader`` worker would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...core.validate import check_int, check_real

__all__ = ["ArrayRows", "DatasetRows", "RowSource", "check_data_args", "check_model_args",
           "check_same_rows", "numpy_collate"]


def numpy_collate(items: list[Any]) -> tuple[np.ndarray, ...]:
    """Stack a list of ``(x, y, ...)`` samples field by field into numpy arrays."""
    return tuple(np.stack([np.asarray(v) for v in field]) for field in zip(*items))


class ArrayRows:
    """Rows ``index`` of ``(X, y)`` (numpy arrays or torch tensors), sliced at once."""

    def __init__(self, X: Any, y: Any, index: np.ndarray | None = None) -> None:
        if index is None:
            self.X, self.y = X, y
        else:
            self.X, self.y = X[index], y[index]

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def take(self, rows: np.ndarray | None) -> tuple[Any, Any]:
        """(X, y) of the local ``rows`` (None: all)."""
        if rows is None:
            return self.X, self.y
        return self.X[rows], self.y[rows]

    def chunks(self, size: int) -> Iterator[tuple[Any, Any]]:
        for lo in range(0, len(self), size):
            yield self.X[lo:lo + size], self.y[lo:lo + size]


class DatasetRows:
    """Items ``index`` of a map-style dataset, read (and collated) when asked for.

    With ``cache=True`` the full partition, once read, is kept (full-batch rounds read
    the dataset once per worker; minibatch rounds read only each round's rows).
    """

    def __init__(self, dataset: Any, index: np.ndarray, collate: Callable[[list], Any],
                 cache: bool = True) -> None:
        self.dataset, self.index, self.collate = dataset, np.asarray(index, np.int64), collate
        self.cache = cache
        self._all: Any = None

    def __len__(self) -> int:
        return int(self.index.size)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_all"] = None
        return state

    def _read(self, idx: np.ndarray) -> tuple[Any, Any]:
        batch = self.collate([self.dataset[int(i)] for i in idx])
        return batch[0], batch[1]

    def take(self, rows: np.ndarray | None) -> tuple[Any, Any]:
        """(X, y) of the local ``rows`` (None: all), read from the dataset."""
        if rows is None:
            if self._all is None:
                full = self._read(self.index)
                if not self.cache:
                    return full
                self._all = full
            return self._all
        if self._all is not None:
            return self._all[0][rows], self._all[1][rows]
        return self._read(self.index[rows])

    def chunks(self, size: int) -> Iterator[tuple[Any, Any]]:
        for lo in range(0, len(self), size):
            yield self._read(self.index[lo:lo + size])


class RowSource:
    """Makes the source of a set of rows: :class:`ArrayRows` of (X, y), or
    :class:`DatasetRows` of a map-style dataset read with ``collate`` (default
    :func:`numpy_collate`); picklable, unlike a closure."""

    def __init__(self, X: Any, y: Any, dataset: Any = None,
                 collate: Callable[[list[Any]], Any] | None = None) -> None:
        self.X, self.y, self.dataset = X, y, dataset
        self.collate = numpy_collate if collate is None else collate

    def __call__(self, index: np.ndarray | None) -> Any:
        if self.dataset is None:
            return ArrayRows(self.X, self.y, index)
        idx = np.arange(len(self.dataset)) if index is None else index
        return DatasetRows(self.dataset, idx, self.collate, cache=index is not None)


def check_model_args(where: str, loss_fn: Any, loss_form: str, k: Any, l2: float,
                     batch_size: int | None, batch_seed: int) -> float:
    """The arguments every model problem shares, checked before any data is touched;
    returns ``l2`` as a float. ``loss_form`` names the call the loss must accept."""
    if not callable(loss_fn):
        raise TypeError(f"{where}: loss_fn must be callable {loss_form} -> loss")
    if k is None:
        raise ValueError(f"{where}: k (the number of partitions, or index arrays) is required")
    l2 = check_real(where, "l2", l2, low=0.0)
    if batch_size is not None:
        check_int(where, "batch_size", batch_size, low=1)
    check_int(where, "batch_seed", batch_seed, low=0)
    return l2


def check_data_args(where: str, X: Any, y: Any, dataset: Any) -> None:
    """The data of a model problem is either ``X`` and ``y`` or a map-style ``dataset``
    (``__len__`` and ``__getitem__`` returning ``(x, y)``), never both or neither."""
    if dataset is not None:
        if X is not None or y is not None:
            raise ValueError(f"{where}: give either X and y or dataset, not both")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"{where}: dataset must be map-style (__len__ and __getitem__ "
                            f"returning (x, y)), got {type(dataset).__name__}")
    elif X is None or y is None:
        raise ValueError(f"{where}: give X and y, or dataset=")


def check_same_rows(where: str, X: Any, y: Any) -> int:
    """The number of rows of X, which y must share."""
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    return int(X.shape[0])
