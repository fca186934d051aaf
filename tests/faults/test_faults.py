"""Fault injection, one trial per scenario (the long version: benchmarks/faults.py).

Each scenario (tests/faults/scenarios.py) injects a real fault (kill -9, NaN/inf results,
a worker that never answers, every worker killed, a corrupted checkpoint, SIGINT/SIGTERM
to the CLI, a Ray actor killed) and checks the promised outcome, that it did not hang,
and that no process it started is left behind.
"""

from __future__ import annotations

import math
import signal

import pytest
import scenarios as sc

pytestmark = pytest.mark.timeout(180) if hasattr(pytest.mark, "timeout") else []


def check(result):
    assert result["outcome"] == "ok", result
    assert result["left"] == 0, result
    assert result["seconds"] < sc.HANG_S, result


def test_kill_minus_9_a_local_worker_mid_training():
    check(sc.local_kill_mid_training(0))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_garbage_results_are_dropped(value):
    check(sc.local_bad_values(0, value))


def test_hung_worker_under_a_deadline():
    check(sc.local_hung_worker_with_deadline(0))


def test_all_workers_dead():
    check(sc.local_all_dead(0))


@pytest.mark.parametrize("trial", range(4))
def test_corrupted_checkpoint(trial):
    check(sc.corrupted_checkpoint(trial))


def test_kill_a_worker_while_compare_starts_the_next_scheme():
    check(sc.compare_kill_while_workers_start(0))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_cli_writes_partial_results(sig):
    check(sc.cli_signal(0, sig))


@pytest.mark.parametrize("case", sc.NEEDS_ROUND_TIMEOUT)
def test_round_timeout_bounds_every_wait(case):
    check(sc.round_timeout_case(0, case))


# --------------------------------------------------------------------------- Ray
@pytest.mark.ray
def test_kill_a_ray_actor_mid_training():
    pytest.importorskip("ray")
    check(sc.ray_actor_kill(0))


@pytest.mark.ray
def test_sigterm_to_compare_on_ray():
    pytest.importorskip("ray")
    check(sc.cli_signal(3, signal.SIGTERM, "ray"))


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["exit", "sigint", "sigterm"])
def test_no_ray_process_survives_the_driver(mode):
    pytest.importorskip("ray")
    check(sc.ray_driver_exit(0, mode))
