"""SIGTERM handled like Ctrl-C by the long-running commands (``gradcode compare``/``run``).

A scheduler (Slurm, Kubernetes, systemd) stops a job with SIGTERM and, after a grace
period, SIGKILL. Inside :func:`sigterm_as_interrupt` the first SIGTERM raises
:class:`Terminated`, a ``KeyboardInterrupt``: every ``finally`` and ``except
KeyboardInterrupt`` that Ctrl-C goes through runs (workers closed, checkpoint written,
partial results saved). A second SIGTERM during that clean-up is not caught (the default
action: the process ends at once). Some libraries turn any exception raised by a signal
handler during a blocking call into a plain ``KeyboardInterrupt`` (Ray's ``ray.get`` and
``ray.wait`` do), so :func:`sigterm_received` tells the two apart by the signal, not by
the exception type.

Example:
    >>> from gradcode.app.signals import Terminated, sigterm_as_interrupt
    >>> with sigterm_as_interrupt():
    ...     pass
    >>> issubclass(Terminated, KeyboardInterrupt)
    True
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["EXIT_TERMINATED", "Terminated", "sigterm_as_interrupt", "sigterm_received"]

EXIT_TERMINATED = 128 + signal.SIGTERM
"""Exit status after a SIGTERM (143), the shell's convention for "ended by signal 15"."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the first SIGTERM inside :func:`sigterm_as_interrupt`."""


_received = threading.Event()


def sigterm_received() -> bool:
    """Whether a SIGTERM arrived inside the current (or last) :func:`sigterm_as_interrupt`
    block; True also when a library re-raised it as a plain ``KeyboardInterrupt``."""
    return _received.is_set()


def _raise_terminated(signum: int, frame: Any) -> None:
    _received.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)       # a second SIGTERM ends the process
    raise Terminated(f"received signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` for the duration of the block (main thread
    only; elsewhere the block runs unchanged). The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
