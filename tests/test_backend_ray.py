"""The ``ray`` backend on a one-machine Ray cluster (one session for the whole module).

Checks: argument errors, an unreachable cluster fails fast, decoded gradients equal the
simulated backend's for exact codes, delays are cancellable, deadlines hold, failed /
killed / restarted workers are stragglers (never a hang), and no Ray process is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from _processes import descendants, wait_gone  # noqa: E402

import gradcode as gc  # noqa: E402
import gradcode.data  # noqa: E402,F401
import gradcode.problems  # noqa: E402,F401
import gradcode.schemes  # noqa: E402,F401
import gradcode.stragglers  # noqa: E402,F401
import gradcode.training  # noqa: E402,F401
import gradcode.wait  # noqa: E402,F401
from gradcode.backends.ray import RayBackend, connect, parse_address  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

N = 4


# ---------------------------------------------------------------------------- helpers
class Schedule(gc.stragglers.DelayModel):
    """Delays given per round: ``table[t]`` (a list of n seconds), else zeros."""

    def __init__(self, table: dict[int, list[float]]) -> None:
        self.table = table

    def sample(self, round: int, load):  # noqa: A002
        return np.array(self.table.get(round, [0.0] * len(load)), dtype=np.float64)


def problem(k: int = N, seed: int = 0):
    X, y = gc.data.synthetic_regression(40 * k, 6, seed=seed)
    return gc.problems.least_squares(X, y, k=k)


def run(be, t, params, policy, code):
    """One round as the training loop drives it; returns (arrivals, seconds)."""
    state = policy.start(code)
    got = []
    t0 = time.monotonic()
    stream = be.run_round(t, params, state)
    for arr in stream:
        got.append(arr)
        if state.add(arr.worker, arr.time):
            break
    stream.close()
    be.stop_round()
    return got, time.monotonic() - t0


@pytest.fixture(scope="module")
def session():
    """One local Ray for the module; shut down and checked for leftovers at the end."""
    assert not ray.is_initialized(), "another test left Ray running"
    before = set(descendants())
    assert connect("local", num_cpus=2) is True
    try:
        yield
    finally:
        ray.shutdown()
        started = {p: n for p, n in descendants().items() if p not in before}
        left = wait_gone(started)
        for pid in left:                               # ours: clean up, then fail
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not left, f"Ray processes left behind: {left}"


# ---------------------------------------------------------------------------- arguments
def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="address must be a str"):
        RayBackend(address=6379)
    with pytest.raises(ValueError, match="address='nohost'"):
        RayBackend(address="nohost")
    with pytest.raises(ValueError, match="port 70000"):
        RayBackend(address="10.0.0.1:70000")
    with pytest.raises(ValueError, match="num_cpus=0 must be >= 1"):
        RayBackend(num_cpus=0)
    with pytest.raises(TypeError, match="num_cpus must be an integer"):
        RayBackend(num_cpus=1.5)
    with pytest.raises(ValueError, match="num_cpus=2 sizes a local cluster"):
        RayBackend(address="10.0.0.1:6379", num_cpus=2)
    with pytest.raises(ValueError, match="placement='pack'"):
        RayBackend(placement="pack")
    with pytest.raises(ValueError, match="probe_timeout=60.0 must be <= 30"):
        RayBackend(probe_timeout=60)
    with pytest.raises(ValueError, match="max_restarts=-2 must be >= -1"):
        RayBackend(max_restarts=-2)
    assert parse_address("ray://head:10001") == ("ray", "head", 10001)
    assert parse_address("[::1]:6379") == ("gcs", "::1", 6379)


def test_docstring_examples():
    import doctest

    import gradcode.backends._ray_actor as actor_module
    import gradcode.backends.ray as ray_module

    for module in (ray_module, actor_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_import_gradcode_does_not_import_ray():
    script = "import sys, gradcode, gradcode.backends; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unreachable_cluster_fails_within_30_seconds():
    """Refused port and a black-holed / non-Ray address: ConnectionError naming it."""
    script = textwrap.dedent("""
        import time, numpy as np, gradcode as gc
        from gradcode.backends.ray import RayBackend
        for address in ("127.0.0.1:1", "10.255.255.1:6379"):
            t0 = time.monotonic()
            try:
                RayBackend(address=address).start(None, gc.codes.uncoded(2))
            except ConnectionError as err:
                print("OK", address, round(time.monotonic() - t0, 2), err)
            else:
                print("NO ERROR", address)
    """)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=90, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("OK", "NO"))]
    assert len(lines) == 2, out.stdout + out.stderr
    for line, address in zip(lines, ("127.0.0.1:1", "10.255.255.1:6379")):
        assert line.startswith(f"OK {address} "), line
        assert float(line.split()[2]) < 30.0, line
        assert f"no Ray cluster at {address}" in line
    assert time.monotonic() - t0 < 80


# ---------------------------------------------------------------------------- training
EXACT_SCHEMES = {
    "frc": lambda: gc.schemes.exact(gc.codes.fractional_repetition(n=N, s=1)),
    "mds": lambda: gc.schemes.exact(gc.codes.cyclic_mds(n=N, s=1)),      # complex B
}


@pytest.mark.parametrize("name", list(EXACT_SCHEMES))
def test_train_gives_the_same_gradients_as_simulated(session, name):
    scheme = EXACT_SCHEMES[name]()
    prob = problem(scheme.code.k)
    delays = Schedule({1: [0.0, 0.0, 0.0, 0.3], 2: [0.3, 0.0, 0.0, 0.0]})
    kwargs = dict(rounds=4, lr=0.05, delays=delays, seed=1, grad_error=True)
    ref = gc.training.train(prob, scheme, backend="simulated", **kwargs)
    got = gc.training.train(prob, scheme, backend="ray", **kwargs)
    assert got.meta["backend"] == "ray"
    for a, b in zip(ref.rows, got.rows, strict=True):
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-9)
        assert b["grad_rel_error"] < 1e-9          # decoded == true full gradient
        assert b["dead"] == 0


def test_arrivals_and_decoded_gradients_for_several_codes(session):
    """One backend, codes switched with reassign(); decoded = full gradient (rtol 1e-9)."""
    prob = problem()
    codes = [gc.codes.uncoded(N), gc.codes.cyclic_repetition(n=N, s=1, seed=3)]
    be = gc.backends.get_backend("ray", placement="default")
    assert isinstance(be, RayBackend)
    with be:
        be.start(prob, codes[0])
        params = np.linspace(-1, 1, prob.dim)
        g = prob.full_gradient(params)
        for t, code in enumerate(codes):
            if t:
                be.reassign(prob, code)
            assert be.alive.all() and len(set(be.pids)) == N
            policy = gc.wait.wait_all() if t == 0 else gc.wait.until_decodable()
            got, _ = run(be, t, params, policy, code)
            F = code.B @ prob.partition_gradients(params)
            for a in got:
                assert a.round == t and a.kind == "result"
                np.testing.assert_allclose(a.value, F[a.worker], rtol=1e-12)
            scheme = gc.schemes.Scheme(code, "exact", policy)
            g_hat, dec, _ = gc.training.decode_round(scheme, [a.worker for a in got],
                                                     {a.worker: a.value for a in got},
                                                     prob.dim)
            np.testing.assert_allclose(g_hat, g, rtol=1e-9)
        with pytest.raises(ValueError, match="params must have shape"):
            list(be.run_round(9, np.zeros(3), gc.wait.wait_all().start(code)))


def test_injected_delay_is_cancelled_and_deadline_holds(session):
    prob, code = problem(), gc.codes.fractional_repetition(n=N, s=1)
    table = {0: [0, 0, 0, 60.0], 1: [0, 0, 0, 5.0], 2: [0, 0, np.inf, 0]}
    with RayBackend() as be:
        be.start(prob, code, delays=Schedule(table))
        p = prob.init_params()
        # round 0: first 3 answers, then stop: the 60 s sleep of worker 3 is cancelled
        state = gc.wait.first(N - 1).start(code)
        stream = be.run_round(0, p, state)
        for arr in stream:
            if state.add(arr.worker, arr.time):
                break
        stream.close()
        pending = list(be._pending)
        assert len(pending) == 1
        t0 = time.monotonic()
        be.stop_round()
        ready, _ = ray.wait(pending, num_returns=1, timeout=10)
        assert ready and time.monotonic() - t0 < 5
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ready[0])
        # round 1: a deadline of 0.5 s ends the round without the 5 s worker
        got, secs = run(be, 1, p, gc.wait.wait_all(deadline=0.5), code)
        assert sorted(a.worker for a in got) == [0, 1, 2]
        assert secs < 3 and be.round_info.end_time == 0.5
        # round 2: an infinite delay is a failure: wait_all ends without it, no hang
        got, secs = run(be, 2, p, gc.wait.wait_all(), code)
        assert sorted(a.worker for a in got) == [0, 1, 3] and secs < 5
        # round 3: everyone answers again (no backlog from the cancelled rounds)
        got, secs = run(be, 3, p, gc.wait.wait_all(), code)
        assert sorted(a.worker for a in got) == list(range(N)) and secs < 5
        assert be.alive.all()


def test_killed_actor_is_a_permanent_straggler(session):
    prob = problem()
    scheme = gc.schemes.Scheme(gc.codes.fractional_repetition(n=N, s=1), "exact",
                               gc.wait.wait_all())
    be = RayBackend()
    rows = []

    def kill_one(row):
        rows.append(row)
        if row["round"] == 1:
            ray.kill(be._actors[2], no_restart=True)

    t0 = time.monotonic()
    hist = gc.training.train(prob, scheme, backend=be, rounds=5, lr=0.05, callback=kill_one,
                             delays=gc.stragglers.Constant(0.05), grad_error=True)
    assert time.monotonic() - t0 < 60
    assert [r["n_responders"] for r in hist.rows] == [4, 4, 3, 3, 3]
    assert [r["dead"] for r in hist.rows] == [0, 0, 1, 1, 1]
    assert all(2 not in r["responders"] for r in hist.rows[2:])
    assert max(r["grad_rel_error"] for r in hist.rows) < 1e-9
    assert be.lost == {2: "actor died"}


def test_restarted_actor_rejoins(session):
    prob, code = problem(), gc.codes.fractional_repetition(n=N, s=1)
    with RayBackend(max_restarts=1) as be:
        be.start(prob, code, delays=gc.stragglers.Constant(0.1))
        p = prob.init_params()
        old_pid = be.pids[1]
        os.kill(old_pid, signal.SIGKILL)               # the actor's process crashes
        seen = []
        for t in range(8):
            got, secs = run(be, t, p, gc.wait.wait_all(), code)
            seen.append(sorted(a.worker for a in got))
            assert secs < 30
            if t > 0 and 1 in seen[-1]:
                break
        assert 1 not in seen[0]                         # a straggler while it was down
        assert 1 in seen[-1], seen                      # then back, rebuilt from its args
        assert be.restarts[1] == 1 and be.pids[1] != old_pid
        assert be.alive.all()
        F = code.B @ prob.partition_gradients(p)
        np.testing.assert_allclose([a.value for a in got if a.worker == 1][0], F[1],
                                   rtol=1e-12)


def test_worker_error_is_dropped_not_fatal(session):
    class Broken:
        def gradient(self, params):
            raise RuntimeError("boom")

    class Flaky:
        dim, k = 3, 2

        def part(self, j):
            return Broken() if j == 1 else type("Ok", (), {
                "gradient": lambda self, params: np.ones(3)})()

    code = gc.codes.uncoded(2)
    with RayBackend() as be:
        be.start(Flaky(), code)
        got, _ = run(be, 0, np.zeros(3), gc.wait.wait_all(), code)
        assert [a.worker for a in got] == [0]
        (worker, reason), = be.round_info.dropped
        assert worker == 1 and "RuntimeError" in reason and "boom" in reason
        assert be.alive.all()


def test_check_backend_contract(session):
    """The host contract (gradcode.testing.check_backend) on Ray, nested protocol included."""
    from gradcode.testing import check_backend

    def kill(host, worker):
        ray.kill(host._actors[worker], no_restart=True)

    check_backend(RayBackend, kill=kill, unit=0.05, limit=5.0)
