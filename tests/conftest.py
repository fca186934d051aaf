"""Test-session settings shared by every test module."""

import os

# BLAS thread pools oversubscribe a small machine when several test processes (and the
# workers they start) run at once; the suite's matrices are small, so one thread each.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
