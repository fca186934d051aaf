"""Training backends: who runs the workers (see :mod:`gradcode.backends.base`).

* ``simulated``: one process, virtual clock, deterministic; scales to 10,000 workers.
* ``local``: one OS process per worker (stdlib multiprocessing), the default for real runs.
* ``ray``: Ray actors (provided by :mod:`gradcode.backends.ray` when installed).

Example:
    >>> import gradcode as gc
    >>> gc.backends.get_backend("simulated").name
    'simulated'
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Arrival, Backend, RoundInfo, WorkersLostError
from .local import LocalBackend
from .simulated import SimulatedBackend

__all__ = [
    "BACKENDS",
    "Arrival",
    "Backend",
    "LocalBackend",
    "RoundInfo",
    "SimulatedBackend",
    "WorkersLostError",
    "get_backend",
]

BACKENDS: dict[str, str] = {
    "simulated": "gradcode.backends.simulated:SimulatedBackend",
    "local": "gradcode.backends.local:LocalBackend",
    "ray": "gradcode.backends.ray:RayBackend",
}
"""Backend name -> "module:Class" (imported lazily)."""


def get_backend(name: str | Any = "simulated", **options: Any) -> Any:
    """Build a backend by name (``"simulated"``, ``"local"``, ``"ray"``) with its options,
    or return a backend instance unchanged (options must then be empty).

    Raises:
        ValueError: unknown name (valid names listed) or options given with an instance.
        ImportError: the backend's optional dependency is missing.
    """
    if not isinstance(name, str):
        if options:
            raise ValueError("get_backend: options cannot be given with a backend instance")
        for attr in ("start", "run_round", "stop_round", "close"):
            if not callable(getattr(name, attr, None)):
                raise TypeError(f"get_backend: backend must be a name ({', '.join(BACKENDS)}) "
                                f"or an object with start/run_round/stop_round/close, got "
                                f"{type(name).__name__}")
        return name
    if name not in BACKENDS:
        raise ValueError(f"get_backend: backend={name!r} is not known; valid: "
                         f"{', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("gradcode"):
            raise ImportError(f"get_backend: the {name!r} backend is not available in this "
                              f"installation") from None
        raise
    return getattr(mod, cls)(**options)

