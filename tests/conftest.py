"""Test-session settings shared by every test module."""

import multiprocessing as mp
import os
import time

import pytest

# BLAS thread pools oversubscribe a small machine when several test processes (and the
# workers they start) run at once; the suite's matrices are small, so one thread each.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def no_leftover_processes():
    """After the test, no multiprocessing child may remain (5 s grace to exit)."""
    yield
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mp.active_children() == []
