"""The local backend's shared-memory transport (gradcode.backends._shared): results read
from shared memory are the workers' vectors bit for bit, a result held by the caller is
never overwritten, a late result of an old round is never read as the current one, and
the shared block is gone after close, after a worker is killed and after the master is
killed (nothing is ever created under /dev/shm)."""

from __future__ import annotations

import gc as pygc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import gradcode as gc
from gradcode.backends import _shared
from gradcode.backends._shared import SLOTS, SharedBlock
from gradcode.backends.local import LocalBackend

pytestmark = [pytest.mark.skipif(not _shared.available(), reason="needs os.memfd_create"),
              *([pytest.mark.timeout(180)] if hasattr(pytest.mark, "timeout") else [])]

NAME = "gradcode-local"                       # the memfd's name in /proc/<pid>/maps


@pytest.fixture(autouse=True)
def _no_leftover_processes(no_leftover_processes):
    """No worker process outlives a test (tests/conftest.py)."""


class AffinePart:
    """g_j(w) = (j + 1) w + j, elementwise in the problem's dtype (bit-exact anywhere);
    optionally sleeps first (a slow worker that does not poll for a cancel)."""

    def __init__(self, j, dtype, sleep=0.0):
        self.j, self.dtype, self.sleep = j, np.dtype(dtype), sleep

    def gradient(self, params):
        if self.sleep:
            time.sleep(self.sleep)
        t = self.dtype.type
        return params * t(self.j + 1) + t(self.j)


class AffineProblem:
    """The minimal problem a host needs: dim, k, dtype and part(j)."""

    def __init__(self, dim, k, dtype, slow=None, sleep=0.0):
        self.dim, self.k, self.dtype = dim, k, np.dtype(dtype)
        self.slow, self.sleep = slow, sleep

    def part(self, j):
        return AffinePart(j, self.dtype, self.sleep if j == self.slow else 0.0)

    def expected(self, j, w):
        return AffinePart(j, self.dtype).gradient(np.asarray(w, dtype=self.dtype))


def _results(host, deadline=None):
    return {e.worker: e.value for e in host.events(deadline) if e.kind == "result"}


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _in_block(host, value):
    """True when ``value`` lies in the host's shared block (a result read in place)."""
    return np.may_share_memory(value, host._block._vecs)


def _maps(pid):
    """Mappings and descriptors of process ``pid`` that refer to a backend's block."""
    try:
        with open(f"/proc/{pid}/maps") as fh:
            maps = sum(NAME in line for line in fh)
        fds = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                fds += NAME in os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return maps, fds


def _gone(pid):
    """True when ``pid`` has exited (no such process, or a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


# ---------------------------------------------------------------------------- the block
def test_block_params_and_slot_tags():
    rng = np.random.default_rng(0)
    block = SharedBlock.create(1000, np.float32, 3)
    try:
        a, b = rng.standard_normal((2, 1000)).astype(np.float32)
        block.write_params(1, a)
        assert _same_bits(block.read_params(1), a)
        block.write_params(2, b)
        assert block.read_params(1) is None                  # superseded: never used
        got = block.read_params(2)
        assert _same_bits(got, b) and got.flags.owndata       # a private copy
        block.write_result(1, 0, 5, a)
        assert block.read_result(1, 0, 6) is None             # the slot holds round 5
        assert block.read_result(2, 0, 5) is None             # another worker's slot
        assert block.read_result(1, 1, 5) is None             # never written
        assert _same_bits(block.read_result(1, 0, 5), a)
    finally:
        block.close()


def test_slot_is_leased_while_any_view_of_it_lives():
    torch = pytest.importorskip("torch")
    block = SharedBlock.create(64, np.float64, 1)
    try:
        assert block.pick_slot(0) == 0
        block.write_result(0, 0, 1, np.arange(64.0))
        value = block.read_result(0, 0, 1)
        assert block.pick_slot(0) == 1
        view = value[3:9].view(np.int64)
        tensor = torch.from_numpy(value[10:])
        del value
        assert block.pick_slot(0) == 1                        # views still alive
        del view
        assert block.pick_slot(0) == 1                        # the tensor still is
        block.write_result(0, 1, 2, np.ones(64))
        other = block.read_result(0, 1, 2)
        assert block.pick_slot(0) == -1                       # both leased
        del tensor
        assert block.pick_slot(0) == 0
        del other
        assert block.pick_slot(0) == 0 and SLOTS == 2
    finally:
        block.close()


# ---------------------------------------------------------------------------- the backend
@pytest.mark.parametrize("dtype, start_method", [("float32", "forkserver"),
                                                 ("float64", "forkserver"),
                                                 ("float32", "spawn")])
def test_results_from_shared_memory_are_the_workers_vectors_bit_for_bit(dtype, start_method):
    prob = AffineProblem(20_000, 3, dtype)                    # >= 80 KB: shared by default
    rng = np.random.default_rng(1)
    with LocalBackend(start_method=start_method) as be:
        be.start(prob, gc.codes.uncoded(3))
        assert be.shared
        for t in range(3):
            w = rng.standard_normal(prob.dim).astype(dtype)
            be.broadcast(t, w)
            got = _results(be)
            be.cancel()
            assert sorted(got) == [0, 1, 2]
            for i, value in got.items():
                assert _same_bits(value, prob.expected(i, w)), (t, i)
                assert _in_block(be, value)                    # read in place, no copy
            assert be.round_info.dropped == []


def test_small_vectors_use_pipes_unless_asked():
    small = AffineProblem(100, 2, "float64")
    with LocalBackend() as be:
        be.start(small, gc.codes.uncoded(2))
        assert not be.shared
        be.broadcast(0, np.ones(100))
        assert all(_same_bits(v, small.expected(i, np.ones(100)))
                   for i, v in _results(be).items())
    with LocalBackend(shared_memory=True) as be:
        be.start(small, gc.codes.uncoded(2))
        assert be.shared
        be.broadcast(0, np.ones(100))
        got = _results(be)
        assert sorted(got) == [0, 1]
        assert all(_same_bits(v, small.expected(i, np.ones(100))) and _in_block(be, v)
                   for i, v in got.items())
    big = AffineProblem(20_000, 2, "float32")
    with LocalBackend(shared_memory=False) as be:
        be.start(big, gc.codes.uncoded(2))
        assert not be.shared
        w = np.full(20_000, 0.5, np.float32)
        be.broadcast(0, w)
        assert all(_same_bits(v, big.expected(i, w)) for i, v in _results(be).items())


def test_no_shared_memory_falls_back_to_pipes(monkeypatch, caplog):
    """When the block cannot be made (e.g. out of memory) the default falls back to the
    pipes and says so; ``shared_memory=True`` raises instead."""
    def refuse(*args):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(SharedBlock, "create", refuse)
    prob = AffineProblem(20_000, 2, "float32")
    w = np.full(prob.dim, 2.0, np.float32)
    with caplog.at_level("WARNING", logger="gradcode.backends.local"):
        with LocalBackend() as be:
            be.start(prob, gc.codes.uncoded(2))
            assert not be.shared
            be.broadcast(0, w)
            got = _results(be)
            assert sorted(got) == [0, 1]
            assert all(_same_bits(v, prob.expected(i, w)) for i, v in got.items())
    assert "no shared memory" in caplog.text and "Cannot allocate memory" in caplog.text
    with LocalBackend(shared_memory=True) as be, pytest.raises(OSError, match="allocate"):
        be.start(prob, gc.codes.uncoded(2))


def test_bad_shared_memory_option():
    with pytest.raises(TypeError, match="LocalBackend: shared_memory must be True, False or "
                                        "None, got 'yes'"):
        LocalBackend(shared_memory="yes")


def test_a_held_result_is_never_overwritten():
    """Results kept across rounds stay intact: their slots are not given out again; when
    all of a worker's slots are held, its result comes through the pipe."""
    prob = AffineProblem(10_000, 2, "float64")
    ws = np.random.default_rng(2).standard_normal((5, prob.dim))
    with LocalBackend(shared_memory=True) as be:
        be.start(prob, gc.codes.uncoded(2))
        held = []
        for t in range(SLOTS + 1):                 # SLOTS rounds fill the slots, one more
            be.broadcast(t, ws[t])
            got = _results(be)
            assert all(_same_bits(got[i], prob.expected(i, ws[t])) for i in (0, 1))
            assert all(_in_block(be, v) == (t < SLOTS) for v in got.values())
            held.append(got)
        for t, got in enumerate(held):             # nothing changed under our feet
            assert all(_same_bits(got[i], prob.expected(i, ws[t])) for i in (0, 1)), t
        del held[0]                                # frees one slot of each worker
        be.broadcast(SLOTS + 1, ws[SLOTS + 1])
        got = _results(be)
        assert all(_in_block(be, v) and _same_bits(v, prob.expected(i, ws[SLOTS + 1]))
                   for i, v in got.items())
        for t, old in enumerate(held, start=1):
            assert all(_same_bits(old[i], prob.expected(i, ws[t])) for i in (0, 1)), t


def test_a_late_result_is_never_read_as_the_current_round():
    """Worker 0 computes for 1.5 s without polling, so its result of round 0 is written
    into its slot (the same slot as round 1's) and announced after round 1 started: it is
    counted late, and round 1 yields round 1's vector."""
    prob = AffineProblem(10_000, 2, "float32", slow=0, sleep=1.5)
    w0 = np.full(prob.dim, 1.0, np.float32)
    w1 = np.full(prob.dim, -3.0, np.float32)
    with LocalBackend(shared_memory=True) as be:
        be.start(prob, gc.codes.uncoded(2))
        be.broadcast(0, w0)
        first = next(be.events())                  # round 0 ends at the first result
        be.cancel()
        assert first.kind == "result" and first.worker == 1
        assert be._slots[0] == 0
        be.broadcast(1, w1)
        assert be._slots[0] == 0                   # the slot worker 0 is writing round 0 to
        got = _results(be)
        assert sorted(got) == [0, 1]
        assert be.round_info.late == 1
        assert _same_bits(got[0], prob.expected(0, w1))
        assert not _same_bits(got[0], prob.expected(0, w0))


def test_block_is_gone_after_a_kill_and_after_close():
    before = sorted(os.listdir("/dev/shm"))
    me = os.getpid()
    base = _maps(me)
    prob = AffineProblem(20_000, 3, "float32")
    w = np.ones(prob.dim, np.float32)
    be = LocalBackend()
    be.start(prob, gc.codes.uncoded(3))
    pids = list(be.pids)
    try:
        assert be.shared
        assert all(_maps(pid) == (1, 1) for pid in pids)     # every worker maps the block
        assert _maps(me) == (base[0] + 1, base[1] + 1)
        os.kill(pids[1], signal.SIGKILL)
        be.processes[1].join(10)
        assert _gone(pids[1])
        be.broadcast(0, w)
        events = list(be.events(10.0))
        be.cancel()
        kinds = {e.worker: e.kind for e in events}
        assert kinds == {0: "result", 1: "dead", 2: "result"}
        value = next(e.value for e in events if e.worker == 2)
        assert _same_bits(value, prob.expected(2, w))
        del events
    finally:
        be.close()
    assert all(_gone(pid) for pid in pids)
    assert _maps(me) == (base[0] + 1, base[1] + 1)  # only the result we still hold keeps it
    assert _same_bits(value, prob.expected(2, w))
    del value
    pygc.collect()
    assert _maps(me) == base
    assert sorted(os.listdir("/dev/shm")) == before


def test_block_is_gone_when_the_master_is_killed(tmp_path):
    before = sorted(os.listdir("/dev/shm"))
    script = textwrap.dedent("""
        import sys, time
        import numpy as np
        import gradcode as gc
        from multiprocessing import forkserver
        from gradcode.backends.local import LocalBackend
        from test_backend_shared import AffineProblem

        if __name__ == "__main__":
            be = LocalBackend()
            prob = AffineProblem(20_000, 3, "float32")
            be.start(prob, gc.codes.uncoded(3))
            be.broadcast(0, np.ones(prob.dim, np.float32))
            assert len([e for e in be.events(30.0) if e.kind == "result"]) == 3
            print(be.shared, forkserver._forkserver._forkserver_pid, *be.pids, flush=True)
            time.sleep(60)
    """)
    path = tmp_path / "master.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(__file__), *sys.path]))
    child = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        line = child.stdout.readline().split()
        assert line and line[0] == "True", line
        pids = [int(p) for p in line[1:]]
        assert all(_maps(pid)[0] == 1 for pid in pids[1:])     # workers map the block
        assert _maps(pids[0]) == (0, 0)                         # the forkserver does not
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    deadline = time.monotonic() + 15
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)       # workers and forkserver exited: no holder
    assert sorted(os.listdir("/dev/shm")) == before
