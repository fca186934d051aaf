"""The ``ray`` backend on a 3-node Ray cluster on loopback (``ray.cluster_utils.Cluster``).

One node is killed in the middle of a round: training completes, the workers on that
node are stragglers from then on, nothing hangs, the result equals the simulated run
(exact code), and no Ray process is left behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from _processes import descendants  # noqa: E402

import gradcode as gc  # noqa: E402
import gradcode.data  # noqa: E402,F401
import gradcode.problems  # noqa: E402,F401
import gradcode.schemes  # noqa: E402,F401
import gradcode.stragglers  # noqa: E402,F401
import gradcode.training  # noqa: E402,F401
import gradcode.wait  # noqa: E402,F401
from gradcode.backends.ray import RayBackend  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def node_pids(node) -> list[int]:
    return [info.process.pid for infos in node.all_processes.values() for info in infos]


@pytest.fixture(scope="module")
def cluster():
    """Head + 2 worker nodes, 1 CPU each; always shut down, leftovers checked."""
    assert not ray.is_initialized(), "another test left Ray running"
    before = set(descendants())
    # fast node-failure detection (default: ~15 s of missed health checks)
    system_config = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    c = cluster_utils.Cluster(initialize_head=True, connect=False,
                              head_node_args={"num_cpus": 1, "include_dashboard": False,
                                              "_system_config": system_config})
    nodes = [c.head_node]
    try:
        nodes += [c.add_node(num_cpus=1) for _ in range(2)]
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        all_pids = {p for node in nodes for p in node_pids(node)}
        c.shutdown()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            left = {p: n for p, n in descendants().items() if p not in before}
            if not left:
                break
            time.sleep(0.2)
        for pid in left:                               # started here: clean up, then fail
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not left, f"Ray processes left behind: {left}"
        assert not all_pids & set(descendants()), "a node process survived"


def test_node_lost_mid_training_workers_become_stragglers(cluster):
    n = 6
    X, y = gc.data.synthetic_regression(240, 5, seed=0)
    prob = gc.problems.least_squares(X, y, k=n)
    # FRC with groups of 3: any 2 lost workers (one per group) still decode exactly
    scheme = gc.schemes.Scheme(gc.codes.fractional_repetition(n=n, s=2), "exact",
                               gc.wait.wait_all())
    kill_round = 2
    be = RayBackend(address=cluster.address)
    killed: dict[str, object] = {}

    def kill_node_mid_round():
        # a non-head node hosting workers (node ids are random, so the head may sort
        # anywhere in the spread order: do not assume it is not worker 1's node)
        victim = next(node for node in cluster.worker_nodes if node.node_id in be.nodes)
        victim_id = victim.node_id
        killed["workers"] = sorted(i for i, nid in enumerate(be.nodes) if nid == victim_id)
        killed["at"] = time.monotonic()
        cluster.remove_node(victim, allow_graceful=False)

    def callback(row):
        if row["round"] == kill_round - 1:
            # placement spreads workers over the 3 nodes (worker i on node i mod 3)
            assert len(set(be.nodes)) == 3
            assert be.nodes[1] != be.nodes[0]
            threading.Timer(0.2, kill_node_mid_round).start()   # during round kill_round

    kwargs = dict(rounds=8, lr=0.05, seed=0, grad_error=True,
                  delays=gc.stragglers.Constant(0.4))
    t0 = time.monotonic()
    hist = gc.training.train(prob, scheme, backend=be, callback=callback, **kwargs)
    assert time.monotonic() - t0 < 120
    lost = killed["workers"]
    assert len(lost) == 2 and lost[0] % 3 == lost[1] % 3
    assert len(hist.rows) == 8
    for row in hist.rows[:kill_round]:
        assert row["n_responders"] == n and row["dead"] == 0
    for row in hist.rows[kill_round:]:
        assert not set(lost) & set(row["responders"])     # lost workers: stragglers
        assert row["n_responders"] == n - len(lost)
    assert set(be.lost) == set(lost)
    assert hist.rows[-1]["dead"] == len(lost)         # declared dead once Ray knows
    assert max(r["grad_rel_error"] for r in hist.rows) < 1e-9
    ref = gc.training.train(prob, scheme, backend="simulated", **kwargs)
    np.testing.assert_allclose([r["loss"] for r in hist.rows],
                               [r["loss"] for r in ref.rows], rtol=1e-9)
