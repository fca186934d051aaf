"""The host contract (:func:`gradcode.testing.check_backend`) on the simulated and local
backends (Ray: tests/test_backend_ray.py), and the decoder and wait-policy contracts on
the built-in decoders and policies. The suites compare every result with an independent
NumPy computation; here we also check that they catch broken hosts."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import gradcode as gc
from gradcode.backends import LocalBackend, SimulatedBackend
from gradcode.testing import check_backend, check_decoder, check_wait_policy

pytestmark = pytest.mark.timeout(240) if hasattr(pytest.mark, "timeout") else []


@pytest.fixture(autouse=True)
def _no_leftover_processes(no_leftover_processes):
    """No worker process outlives a test (tests/conftest.py)."""


def _kill_process(host, worker):
    os.kill(host.pids[worker], signal.SIGKILL)
    host.processes[worker].join(10)


def test_simulated_backend_follows_the_contract():
    check_backend(SimulatedBackend)


@pytest.mark.parametrize("shared", [False, True])
def test_local_backend_follows_the_contract(shared):
    """Both transports: pipes, and shared memory (forced here: the contract's problems are
    far below the automatic 32 KiB threshold)."""
    check_backend(lambda: LocalBackend(start_method="forkserver", shared_memory=shared),
                  kill=_kill_process)


class _LateHost(SimulatedBackend):
    """Broken on purpose: yields every result with the previous round's number."""

    def events(self, deadline=None):
        for event in super().events(deadline):
            yield type(event)(event.worker, event.value, event.time, event.round - 1,
                              event.kind, event.more)


class _WrongHost(SimulatedBackend):
    """Broken on purpose: every result is off by one."""

    def events(self, deadline=None):
        for event in super().events(deadline):
            value = np.asarray(event.value) + 1 if event.kind == "result" else event.value
            yield type(event)(event.worker, value, event.time, event.round, event.kind,
                              event.more)


@pytest.mark.parametrize("host, rule", [(_LateHost, "another round"),
                                        (_WrongHost, "differs from B")])
def test_check_backend_catches_broken_hosts(host, rule):
    with pytest.raises(AssertionError, match=rule):
        check_backend(host)


@pytest.mark.parametrize("name", ["optimal", "exact", "one_step", "frc_group"])
def test_builtin_decoders_follow_the_contract(name):
    decoder = gc.decoders.DECODERS[name]
    codes = [gc.codes.fractional_repetition(n=6, s=1)] if name == "frc_group" else None
    check_decoder(decoder, codes, exact_when_decodable=name in ("optimal", "exact"))


def test_check_decoder_catches_a_wrong_alpha():
    def liar(code, responders):
        dec = gc.decoders.optimal(code, responders)
        return type(dec)(weights=dec.weights, alpha=dec.alpha + 1, error=dec.error)

    with pytest.raises(AssertionError, match="alpha differs"):
        check_decoder(liar)


@pytest.mark.parametrize("policy", [gc.wait.wait_all(), gc.wait.first(3),
                                    gc.wait.until_decodable(), gc.wait.until_error(0.5),
                                    gc.wait.erasurehead(4), gc.wait.deadline(1.0)])
def test_builtin_wait_policies_follow_the_contract(policy):
    check_wait_policy(policy)
