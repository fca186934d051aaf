"""``[problem] kind = "torch"``: a PyTorch model, loss and data named in a config, built
into a :func:`gradcode.problems.torch_problem`.

The config names callables (``"module:callable"``, see :mod:`gradcode.app.references`):

* ``model``: returns a ``torch.nn.Module``, or a pair ``(module, loss)``; it is called
  once, after ``torch.manual_seed(seed)``, so every scheme of a comparison starts from the
  same weights (each scheme's problem holds its own copy of the module);
* ``loss``: a ``torch.nn.functional`` name (``"cross_entropy"``) or a reference to a
  loss function, or to a ``torch.nn`` loss class built without arguments;
* ``dataset`` / ``test``: return a map-style ``torch.utils.data.Dataset`` of ``(x, y)``
  items, or a tuple ``(X, y)`` of tensors or arrays.

The optimiser names ``adam``, ``adamw``, ``sgd``, ``rmsprop`` and ``adagrad`` are the
``torch.optim`` classes; they step on the master with the decoded gradient
(:class:`gradcode.optimizers.TorchOptimizer`).

Example (needs torch and scikit-learn, so not run here)::

    [problem]
    kind = "torch"
    model = "cnn_digits:digits_cnn"
    loss = "cross_entropy"
    dataset = "cnn_digits:train_set"
    test = "cnn_digits:test_set"
    batch_size = 16
    accuracy = true
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.problems import torch_problem
from .references import resolve_reference

__all__ = ["TORCH_OPTIMIZERS", "TorchData", "load_torch_data", "torch_loss", "torch_optimizer"]

TORCH_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop",
                    "adagrad": "Adagrad"}
"""Config ``optimizer`` names of ``torch.optim`` classes (stepped on the master)."""


def torch_optimizer(name: str) -> type:
    """The ``torch.optim`` class of an optimiser name (``"adam"`` -> ``torch.optim.Adam``).

    Raises:
        ValueError: not one of the names.
    """
    import torch

    if name not in TORCH_OPTIMIZERS:
        raise ValueError(f"torch_optimizer: {name!r} is not a torch.optim optimiser name; "
                         f"allowed: {', '.join(TORCH_OPTIMIZERS)}")
    return getattr(torch.optim, TORCH_OPTIMIZERS[name])


def torch_loss(where: str, text: str, folder: str | None = None) -> Callable:
    """The loss a config names: a ``torch.nn.functional`` function by name
    (``"cross_entropy"``), or ``"module:callable"``; a ``torch.nn.Module`` class is built
    without arguments (``"torch.nn:CrossEntropyLoss"``).

    Raises:
        ValueError: naming ``where``: not a function of ``torch.nn.functional``, a
            reference that cannot be resolved, or a class that is no ``torch.nn.Module`` or
            cannot be built without arguments.
    """
    import torch

    if ":" not in text:
        fn = getattr(torch.nn.functional, text, None) if text.isidentifier() \
            and not text.startswith("_") else None
        if fn is None or not callable(fn) or isinstance(fn, type):
            raise ValueError(f"{where}: {text!r} is not a function of torch.nn.functional "
                             f"(e.g. 'cross_entropy', 'mse_loss', 'nll_loss'); or give "
                             f"'module:callable'")
        return fn
    obj = resolve_reference(where, text, folder)
    if isinstance(obj, type):
        if not issubclass(obj, torch.nn.Module):
            raise ValueError(f"{where}: {text!r} is a class but not a torch.nn.Module loss")
        try:
            return obj()
        except Exception as exc:  # noqa: BLE001 - user code
            raise ValueError(f"{where}: {text}() cannot be built without arguments: "
                             f"{type(exc).__name__}: {exc}") from None
    return obj


def _call(where: str, text: str, folder: str | None, kwargs: dict[str, Any]) -> Any:
    fn = resolve_reference(where, text, folder)
    try:
        return fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - user code: one message naming the key
        raise ValueError(f"{where}: {text}(**{kwargs!r}) raised {type(exc).__name__}: "
                         f"{exc}") from None


def _rows(where: str, text: str, value: Any) -> int:
    """The number of samples of a dataset value: a map-style Dataset or a tuple (X, y)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise TypeError(f"{where}: {text} returned a tuple of {len(value)} items; expected "
                            f"(X, y) or a map-style torch Dataset")
        X, y = value
        for name, a in (("X", X), ("y", y)):
            if not hasattr(a, "shape") or len(a.shape) == 0:
                raise TypeError(f"{where}: {text} returned (X, y) whose {name} is a "
                                f"{type(a).__name__}; expected a tensor or an array")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{where}: {text} returned X with {X.shape[0]} rows but y with "
                             f"{y.shape[0]}")
        return int(X.shape[0])
    if not hasattr(value, "__getitem__") or not hasattr(value, "__len__"):
        raise TypeError(f"{where}: {text} returned a {type(value).__name__}; expected a "
                        f"map-style torch Dataset (__len__, __getitem__ -> (x, y)) or a "
                        f"tuple (X, y)")
    return len(value)


def _nbytes(value: Any) -> int | None:
    """Bytes of in-memory data ((X, y) or a TensorDataset); None for other datasets."""
    arrays = value if isinstance(value, tuple) else getattr(value, "tensors", None)
    if arrays is None:
        return None
    total = 0
    for a in arrays:
        if hasattr(a, "element_size"):
            total += int(a.element_size() * a.numel())
        else:
            total += int(np.asarray(a).nbytes)
    return total


@dataclass
class TorchData:
    """A config's torch model, loss and data, built once (see the module docstring)."""

    module: Any
    loss: Callable
    train: Any
    test: Any
    samples: int

    @property
    def nbytes(self) -> int | None:
        """Bytes of the training data when it lies in memory, else None."""
        return _nbytes(self.train)

    def problem(self, k: int, *, batch_size: int | None, seed: int, l2: float,
                accuracy: bool) -> Any:
        """The :func:`gradcode.problems.torch_problem` in k partitions, on a copy of the
        module (minibatches, dropout and the sample shuffle seeded with ``seed``)."""
        data: dict[str, Any] = ({"X": self.train[0], "y": self.train[1]}
                                if isinstance(self.train, tuple) else {"dataset": self.train})
        return torch_problem(copy.deepcopy(self.module), self.loss, k=k, batch_size=batch_size,
                             batch_seed=seed, l2=l2, test=self.test, accuracy=accuracy,
                             partition_seed=seed, **data)


def load_torch_data(problem: Any, seed: int) -> TorchData:
    """Call the config's model, dataset and test callables and check what they return.

    Args:
        problem: a :class:`gradcode.app.config.ProblemConfig` with ``kind = "torch"``.
        seed: ``torch.manual_seed(seed)`` before the model is built.

    Raises:
        ValueError / TypeError: naming the key (``problem.model`` ...), the callable and
            what it returned or raised.
    """
    import torch

    folder = problem.folder
    torch.manual_seed(seed)
    out = _call("problem.model", problem.model, folder, problem.model_args)
    module, loss = out, None
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise TypeError(f"problem.model: {problem.model} returned {len(out)} items; "
                            f"expected a torch.nn.Module or (module, loss)")
        module, loss = out
        if not callable(loss):
            raise TypeError(f"problem.model: {problem.model} returned (module, loss) with a "
                            f"loss that is not callable ({type(loss).__name__})")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"problem.model: {problem.model} returned a {type(module).__name__}; "
                        f"expected a torch.nn.Module or (module, loss)")
    if next(module.parameters(), None) is None:
        raise ValueError(f"problem.model: {problem.model} returned a module without "
                         f"parameters to train")
    if loss is not None and problem.loss is not None:
        raise ValueError(f"problem.loss={problem.loss!r} is given but problem.model "
                         f"({problem.model}) also returns a loss; give the loss once")
    if loss is None:
        if problem.loss is None:
            raise ValueError(f"problem.loss is required: problem.model ({problem.model}) "
                             f"returns a module without a loss")
        loss = torch_loss("problem.loss", problem.loss, folder)
    train = _call("problem.dataset", problem.dataset, folder, problem.dataset_args)
    samples = _rows("problem.dataset", problem.dataset, train)
    test = None
    if problem.test is not None:
        test = _call("problem.test", problem.test, folder, problem.test_args)
        _rows("problem.test", problem.test, test)
    return TorchData(module, loss, train, test, samples)
