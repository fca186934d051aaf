"""Contract suites for gradcode's plug-ins, in the style of scikit-learn's
``check_estimator``: plain functions that raise ``AssertionError`` with a message naming
the broken rule, usable on your own backends, decoders and wait policies.

* :func:`check_backend`: a host (:class:`gradcode.backends.base.Host`) runs the plain
  coded round and the nested protocol correctly, with failed, dead and slow workers,
  NaN results, results of an old round and cancellation.
* :func:`check_decoder`: a decoder returns consistent weights, alpha and error.
* :func:`check_wait_policy`: a wait policy's per-round state behaves as the master loop
  expects.

Example:
    >>> import gradcode as gc
    >>> from gradcode.testing import check_backend, check_decoder, check_wait_policy
    >>> check_backend(gc.backends.SimulatedBackend)
    >>> check_decoder(gc.decoders.optimal)
    >>> check_wait_policy(gc.wait.first(2))
"""

from __future__ import annotations

from .backends import ScriptedDelays, check_backend
from .decoders import check_decoder
from .problems import PoisonedProblem
from .wait import check_wait_policy

__all__ = ["PoisonedProblem", "ScriptedDelays", "check_backend", "check_decoder",
           "check_wait_policy"]
