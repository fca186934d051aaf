"""Optimisers for coded training, with checkpointable state (arrays + JSON, no pickle).

* :class:`GD`: w <- w - lr g.
* :class:`Nesterov`: the accelerated update of the gradient-coding papers' code
  (Tandon et al.; ErasureHead), gradient taken at the broadcast point w_t:
  theta_t = 2 / (t + 2);  y = (1 - theta_t) w_t + theta_t u_t;  w_{t+1} = y - lr g(w_t);
  u_{t+1} = w_t + (w_{t+1} - w_t) / theta_t.  (u_0 = w_0; their code starts u_0 = 0 = w_0.)
* :class:`Momentum`: heavy ball, v <- beta v + g, w <- w - lr v.
* :class:`TorchOptimizer`: any ``torch.optim`` optimiser (an instance on the model's
  parameters, a class or a factory); its state stays on the master.
* :class:`OptaxOptimizer`: any optax ``GradientTransformation`` (``init``/``update``),
  on the parameter pytree when given its template.

Example:
    >>> import numpy as np, gradcode as gc
    >>> opt = gc.optimizers.make_optimizer("gd", lr=0.5)
    >>> opt.step(np.array([1.0]), np.array([2.0]), 0)
    array([0.])

References:
    [1] R. Tandon et al., arXiv:1612.03301 (their released code's AGD update).
    [2] H. Wang, Z. Charles, D. Papailiopoulos, arXiv:1901.09671 (theta_t = 2/(t+2)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.validate import check_real

__all__ = [
    "GD",
    "OPTIMIZERS",
    "Momentum",
    "Nesterov",
    "OptaxOptimizer",
    "Optimizer",
    "TorchOptimizer",
    "make_optimizer",
]


class Optimizer:
    """Base class: ``step(params, grad, t) -> new params`` plus state for checkpoints."""

    name = "optimizer"

    def reset(self, params: np.ndarray) -> None:
        """Initialise the state for a run starting at ``params``."""

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def state_json(self) -> dict[str, Any]:
        return {}

    def load_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Restore what :meth:`state_arrays` / :meth:`state_json` saved."""


class GD(Optimizer):
    """Plain gradient descent w <- w - lr g."""

    name = "gd"

    def __init__(self, lr: float) -> None:
        self.lr = check_real("GD", "lr", lr, low=0.0, low_open=True)

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        return params - self.lr * grad


class _VectorStateOptimizer(Optimizer):
    """An optimiser whose state is one float64 vector, the attribute named ``_slot``
    (None before :meth:`reset`); saved in checkpoints under that name."""

    _slot = ""

    def state_arrays(self) -> dict[str, np.ndarray]:
        value = getattr(self, self._slot)
        return {} if value is None else {self._slot: value}

    def load_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        if self._slot in arrays:
            setattr(self, self._slot, np.array(arrays[self._slot], dtype=np.float64))


class Nesterov(_VectorStateOptimizer):
    """Accelerated GD exactly as in the gradient-coding papers' code (module docstring)."""

    name = "nesterov"
    _slot = "u"

    def __init__(self, lr: float) -> None:
        self.lr = check_real("Nesterov", "lr", lr, low=0.0, low_open=True)
        self.u: np.ndarray | None = None

    def reset(self, params: np.ndarray) -> None:
        self.u = np.array(params, dtype=np.float64, copy=True)

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        if self.u is None:
            self.reset(params)
        theta = 2.0 / (t + 2.0)
        y = (1.0 - theta) * params + theta * self.u
        new = y - self.lr * grad
        self.u = params + (new - params) / theta
        return new


class Momentum(_VectorStateOptimizer):
    """Heavy-ball momentum: v <- beta v + g; w <- w - lr v."""

    name = "momentum"
    _slot = "v"

    def __init__(self, lr: float, beta: float = 0.9) -> None:
        self.lr = check_real("Momentum", "lr", lr, low=0.0, low_open=True)
        self.beta = check_real("Momentum", "beta", beta, low=0.0, high=1.0, high_open=True)
        self.v: np.ndarray | None = None

    def reset(self, params: np.ndarray) -> None:
        self.v = np.zeros_like(np.asarray(params, dtype=np.float64))

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        if self.v is None:
            self.reset(params)
        self.v = self.beta * self.v + grad
        return params - self.lr * self.v


class TorchOptimizer(Optimizer):
    """A ``torch.optim`` optimiser on the flat parameter vector; its state stays here,
    on the master.

    Three ways to give it:

    * a ``torch.optim.Optimizer`` INSTANCE, as written for plain PyTorch, e.g.
      ``torch.optim.Adam(model.parameters(), lr=1e-3)`` (any parameter groups): each
      step writes the flat parameters into those tensors (in ``module.parameters()``
      order when ``module`` is given, else in the order of the optimiser's groups), sets
      their ``.grad`` from the decoded gradient, calls ``step()`` and reads them back;
    * a ``torch.optim.Optimizer`` subclass, built with ``lr`` on one flat tensor;
    * a callable ``[tensor] -> optimizer``.

    The flat tensor keeps the dtype of the parameters it is given (float32 for a default
    :func:`gradcode.problems.torch_problem`); an instance uses its tensors' dtype.

    Args:
        factory: an optimiser instance, class or factory (see above).
        lr: learning rate for a class ``factory``.
        module: with an instance: the ``torch.nn.Module`` whose ``parameters()`` order
            the flat vector follows (the :func:`torch_problem`'s module).
        options: with a class: its keyword arguments besides ``lr`` (e.g. ``betas``).

    Raises:
        ValueError: the instance's parameters do not add up to the vector's length.
        TypeError: ``options`` with an instance or a factory (they take none).
    """

    name = "torch"

    def __init__(self, factory: Any, lr: float | None = None, *, module: Any = None,
                 options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        if self.options and not isinstance(factory, type):
            raise TypeError(f"TorchOptimizer: options {sorted(self.options)} apply only to a "
                            f"torch.optim class, not to a {type(factory).__name__}")
        self.factory, self.lr, self.module = factory, lr, module
        self.opt: Any = None
        self.tensors: list[Any] = []

    def reset(self, params: np.ndarray) -> None:
        import torch
        params = np.asarray(params)
        if hasattr(self.factory, "param_groups"):          # an optimiser instance
            self.opt = self.factory
            self.tensors = list(self.module.parameters()) if self.module is not None else \
                [p for g in self.opt.param_groups for p in g["params"]]
            size = sum(int(p.numel()) for p in self.tensors)
            if size != params.size:
                raise ValueError(f"TorchOptimizer: the optimiser's parameters hold {size} "
                                 f"numbers but the parameter vector has {params.size}; build "
                                 f"it on the problem's module.parameters()")
        else:
            p = torch.nn.Parameter(torch.tensor(params))
            self.tensors = [p]
            if isinstance(self.factory, type):
                kwargs = {} if self.lr is None else {"lr": self.lr}
                self.opt = self.factory([p], **kwargs, **self.options)
            else:
                self.opt = self.factory([p])
        self.name = f"torch:{type(self.opt).__name__}"

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        import torch
        from torch.nn.utils import parameters_to_vector
        if self.opt is None:
            self.reset(params)
        grad = np.asarray(grad)
        first = self.tensors[0]
        dtype = first.dtype
        src = torch.as_tensor(np.asarray(params))
        flat = torch.as_tensor(grad).to(device=first.device, dtype=dtype)
        with torch.no_grad():
            # copied INTO the tensors: vector_to_parameters would make them views of the
            # caller's array, and the step would then overwrite the caller's parameters
            offset = 0
            for p in self.tensors:
                size = int(p.numel())
                p.copy_(src[offset:offset + size].view_as(p))
                p.grad = flat[offset:offset + size].view_as(p).clone()
                offset += size
        self.opt.step()
        if first.device.type != "cpu":
            return parameters_to_vector(self.tensors).detach().cpu().numpy()
        out = np.empty(int(grad.size), dtype=torch.empty((), dtype=dtype).numpy().dtype)
        with torch.no_grad():                  # one copy, straight into the returned array
            torch.cat([p.detach().reshape(-1) for p in self.tensors], out=torch.from_numpy(out))
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        import torch
        out: dict[str, np.ndarray] = {}
        for pid, st in self.opt.state_dict()["state"].items():
            for key, val in st.items():
                if torch.is_tensor(val):
                    out[f"{pid}.{key}"] = val.detach().cpu().numpy()
        return out

    def state_json(self) -> dict[str, Any]:
        import torch
        sd = self.opt.state_dict()
        scalars = {f"{pid}.{key}": float(val) for pid, st in sd["state"].items()
                   for key, val in st.items() if not torch.is_tensor(val)}
        groups = [{k: v for k, v in g.items() if isinstance(v, (int, float, bool, str, list,
                                                               tuple, type(None)))}
                  for g in sd["param_groups"]]
        return {"scalars": scalars, "param_groups": groups}

    def load_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        import torch
        state: dict[int, dict[str, Any]] = {}
        for key, val in arrays.items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = torch.as_tensor(val)
        for key, val in info.get("scalars", {}).items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = val
        groups = [dict(g) for g in info.get("param_groups", [])]
        if groups:
            self.opt.load_state_dict({"state": state, "param_groups": groups})


class OptaxOptimizer(Optimizer):
    """An optax ``GradientTransformation`` (anything with ``init`` and ``update``).

    With ``params0`` (the parameter pytree of a :func:`gradcode.problems.jax_problem`) the
    transformation sees the pytree, as in plain JAX code (per-leaf masks, labels and
    clipping work); without it, the flat vector. The result keeps the parameters' dtype.
    """

    name = "optax"

    def __init__(self, tx: Any, params0: Any = None) -> None:
        self.tx = tx
        self.params0 = params0
        self.state: Any = None
        self._unravel: Any = None

    def _tree(self, flat: np.ndarray) -> Any:
        import jax.numpy as jnp
        return jnp.asarray(flat) if self._unravel is None else self._unravel(jnp.asarray(flat))

    def reset(self, params: np.ndarray) -> None:
        if self.params0 is not None:
            from jax.flatten_util import ravel_pytree
            self._unravel = ravel_pytree(self.params0)[1]
        self.state = self.tx.init(self._tree(np.asarray(params)))

    def step(self, params: np.ndarray, grad: np.ndarray, t: int) -> np.ndarray:
        import jax
        from jax.flatten_util import ravel_pytree
        params = np.asarray(params)
        if self.state is None:
            self.reset(params)
        tree = self._tree(params)
        updates, self.state = self.tx.update(self._tree(np.asarray(grad, params.dtype)),
                                             self.state, tree)
        new = jax.tree_util.tree_map(lambda p, u: p + u, tree, updates)  # apply_updates
        return np.asarray(ravel_pytree(new)[0], dtype=params.dtype)

    def state_arrays(self) -> dict[str, np.ndarray]:
        import jax
        leaves = jax.tree_util.tree_leaves(self.state)
        return {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}

    def load_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        import jax
        import jax.numpy as jnp
        treedef = jax.tree_util.tree_structure(self.state)
        leaves = [jnp.asarray(arrays[f"leaf{i}"]) for i in range(len(arrays))]
        self.state = jax.tree_util.tree_unflatten(treedef, leaves)


OPTIMIZERS = {"gd": GD, "nesterov": Nesterov, "momentum": Momentum}
"""Built-in optimisers by name."""


def make_optimizer(optimizer: Any, lr: float | None, **options: Any) -> Optimizer:
    """Build an optimiser from a name (``"gd"``, ``"nesterov"``, ``"momentum"``), an
    :class:`Optimizer`, a ``torch.optim`` optimiser (instance, class or factory), or an
    optax transformation. ``options`` go to a built-in's or a ``torch.optim`` class's
    constructor.

    Raises:
        ValueError: unknown name (valid ones listed), or a built-in without ``lr``.
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not known; valid names: "
                             f"{', '.join(OPTIMIZERS)} (or pass a torch.optim class, an optax "
                             f"transformation or a gradcode Optimizer)")
        if lr is None:
            raise ValueError(f"optimizer={optimizer!r} needs a learning rate lr")
        return OPTIMIZERS[optimizer](lr, **options)
    if hasattr(optimizer, "init") and hasattr(optimizer, "update"):
        return OptaxOptimizer(optimizer)
    if hasattr(optimizer, "param_groups") and hasattr(optimizer, "step"):
        return TorchOptimizer(optimizer)             # a torch.optim.Optimizer instance
    if callable(optimizer):
        return TorchOptimizer(optimizer, lr, options=options)
    raise TypeError(f"optimizer must be a name, a gradcode Optimizer, a torch.optim class or "
                    f"factory, or an optax transformation; got {type(optimizer).__name__}")
