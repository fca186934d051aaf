"""SIGTERM under the CLI: raised as Terminated (a KeyboardInterrupt) in the main thread,
remembered even when a library re-raises it as a plain KeyboardInterrupt, and the
previous handler restored afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest

from gradcode.app.signals import (
    EXIT_TERMINATED,
    Terminated,
    sigterm_as_interrupt,
    sigterm_received,
)


def _wait_for_signal():
    for _ in range(200):          # the handler runs between bytecodes of this loop
        time.sleep(0.01)
    pytest.fail("SIGTERM was not delivered")


def test_sigterm_becomes_terminated_and_is_remembered():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        assert not sigterm_received()
        with pytest.raises(Terminated, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        assert sigterm_received()
    assert signal.getsignal(signal.SIGTERM) is before
    assert EXIT_TERMINATED == 143


def test_a_converted_interrupt_is_still_known_as_sigterm():
    with sigterm_as_interrupt():
        try:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                _wait_for_signal()
            except Terminated:
                raise KeyboardInterrupt from None      # what ray.get does with it
        except KeyboardInterrupt as exc:
            assert not isinstance(exc, Terminated) and sigterm_received()
    with sigterm_as_interrupt():
        assert not sigterm_received()                  # reset for the next command
