"""Fault-injection scenarios shared by ``tests/faults/`` (one trial each, in CI) and
``benchmarks/faults.py`` (many trials, written to ``benchmarks/results/faults.md``).

Every scenario takes a trial number (it seeds where the fault hits) and returns a dict:

* ``outcome``: ``"ok"`` when the run ended the way the failure semantics promise, else a
  short description of what went wrong (``"hang"``, ``"lost results"``, ...);
* ``seconds``: wall-clock time from the start of the run to its end;
* ``left``: processes the run started that were still alive 10 s after it ended;
* ``detail``: one line for the report.

Scenarios that need the round timeout of the training loop (``train(...,
round_timeout=...)``) are listed in :data:`NEEDS_ROUND_TIMEOUT`.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from _processes import descendants, wait_gone  # noqa: E402

import gradcode as gc  # noqa: E402
from gradcode import stragglers as st  # noqa: E402
from gradcode import training as tr  # noqa: E402
from gradcode.backends.local import LocalBackend  # noqa: E402

HANG_S = 60.0          # a scenario that takes longer than this is reported as a hang
GRACE_S = 10.0         # processes still alive this long after the run are "left"


# --------------------------------------------------------------------------- helpers
def _problem(k: int = 4):
    X, y = gc.data.synthetic_classification(60 * k, 5, seed=0)
    return gc.problems.logistic_regression(X, y, k, l2=1e-3)


def _result(outcome: str, t0: float, before: set[int], detail: str = "",
            seen: Any = ()) -> dict[str, Any]:
    """The scenario's record. ``left`` counts the processes started since ``before`` that
    are still our descendants, plus those of ``seen`` (PIDs a subprocess started: they are
    re-parented when it ends) still alive, after :data:`GRACE_S` seconds."""
    seconds = time.monotonic() - t0
    started = {p: n for p, n in descendants().items() if p not in before
               and not _multiprocessing_helper(p)}
    left = set(wait_gone(started, timeout=GRACE_S))
    end = time.monotonic() + GRACE_S
    others = {p for p in seen if _alive(p)}
    while others and time.monotonic() < end:
        time.sleep(0.2)
        others = {p for p in others if _alive(p)}
    left |= others
    for pid in left:                                  # ours: clean up after counting
        _kill(pid)
    return {"outcome": outcome, "seconds": seconds, "left": len(left), "detail": detail}


def _multiprocessing_helper(pid: int) -> bool:
    """The forkserver and resource tracker multiprocessing starts once per interpreter
    and reuses for every later pool: they belong to this process, not to one run."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read()
    except OSError:
        return False
    return b"multiprocessing.forkserver" in cmd or b"multiprocessing.resource_tracker" in cmd


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def gradcode_cmd() -> list[str]:
    script = Path(sys.executable).parent / "gradcode"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gradcode.cli import main; main()"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class _BadPart(gc.problems.Part):
    """Returns ``value`` everywhere (NaN, inf) or never returns (``"hang"``)."""

    def __init__(self, part: Any, value: Any) -> None:
        self.part, self.value = part, value

    def gradient(self, params: np.ndarray) -> np.ndarray:
        if self.value == "hang":
            time.sleep(3600)                          # a live worker that never answers
        return np.full_like(self.part.gradient(params), self.value)


class FaultyProblem(gc.problems.LinearProblem):
    """Partition ``bad`` misbehaves in the workers (the master's own copy is fine)."""

    bad = 3
    value: Any = math.nan

    def part(self, j: int):
        p = super().part(j)
        return _BadPart(p, self.value) if j == self.bad else p


def faulty(value: Any) -> FaultyProblem:
    base = _problem()
    prob = FaultyProblem("logistic", base.X, base.y, base.parts, base.l2, None, 1, "faulty")
    prob.value = value
    return prob


# --------------------------------------------------------------------------- scenarios
def local_kill_mid_training(trial: int) -> dict[str, Any]:
    """kill -9 one local worker at a random round; the exact code still decodes every
    round exactly, so the losses equal an undisturbed simulated run's."""
    rng = random.Random(trial)
    at, victim, rounds = rng.randrange(0, 6), rng.randrange(4), 8
    prob = _problem()
    scheme = tr.exact(gc.codes.fractional_repetition(4, 1), decoder="frc_group")
    delays = st.Exponential(0.5, seed=trial)
    be = LocalBackend(time_scale=0.01)
    before, t0 = set(descendants()), time.monotonic()

    def kill(row):
        if row["round"] == at:
            _kill(be.pids[victim])

    try:
        hist = tr.train(prob, scheme, rounds=rounds, backend=be, callback=kill, delays=delays,
                        lr=0.5)
    except Exception as exc:  # noqa: BLE001 - reported as the outcome
        return _result(f"raised {type(exc).__name__}: {exc}", t0, before)
    reference = tr.train(prob, scheme, rounds=rounds, delays=delays, lr=0.5)
    same = np.allclose(hist.column("loss"), reference.column("loss"), rtol=1e-9)
    outcome = "ok" if len(hist) == rounds and same and hist.final["dead"] == 1 else \
        f"wrong result (rows {len(hist)}, same loss {same}, dead {hist.final['dead']})"
    return _result(outcome, t0, before, f"worker {victim} killed after round {at}")


def local_bad_values(trial: int, value: Any = math.nan) -> dict[str, Any]:
    """A worker returns NaN / inf: its result is dropped and logged, training goes on."""
    prob = faulty(value)
    code = gc.codes.cyclic_repetition(4, 1, seed=trial)
    before, t0 = set(descendants()), time.monotonic()
    try:
        hist = tr.train(prob, tr.exact(code), rounds=4, backend="local", lr=0.5,
                        backend_options={"time_scale": 0.01},
                        delays=st.Exponential(1.0, seed=trial))
    except Exception as exc:  # noqa: BLE001
        return _result(f"raised {type(exc).__name__}: {exc}", t0, before)
    holders = set(np.flatnonzero(code.toarray()[:, FaultyProblem.bad]).tolist())
    dropped = all(not holders & set(r["responders"]) for r in hist)
    finite = bool(np.all(np.isfinite(hist.column("loss"))))
    outcome = "ok" if dropped and finite and len(hist) == 4 else \
        f"garbage used (dropped {dropped}, finite {finite})"
    return _result(outcome, t0, before, f"partition {FaultyProblem.bad} returns {value}")


def local_hung_worker_with_deadline(trial: int) -> dict[str, Any]:
    """A live worker that never answers, under a deadline policy: every round ends at
    its deadline and training finishes."""
    prob = faulty("hang")
    code = gc.codes.fractional_repetition(4, 1)
    scheme = gc.schemes.Scheme(code, "optimal", gc.wait.deadline(0.5))
    before, t0 = set(descendants()), time.monotonic()
    try:
        hist = tr.train(prob, scheme, rounds=4, backend="local", lr=0.5,
                        backend_options={"time_scale": 0.01})
    except Exception as exc:  # noqa: BLE001
        return _result(f"raised {type(exc).__name__}: {exc}", t0, before)
    ok = len(hist) == 4 and all(r["round_time"] < 5.0 for r in hist)
    return _result("ok" if ok else "slow rounds", t0, before, "deadline 0.5 s")


def local_all_dead(trial: int) -> dict[str, Any]:
    """Every worker killed: WorkersLostError, and the checkpoint of the last round."""
    rng = random.Random(trial)
    at = rng.randrange(0, 3)
    prob = _problem()
    be = LocalBackend()
    ck = Path(tempfile.mkdtemp(prefix="gradcode-faults-"))

    def kill_all(row):
        if row["round"] == at:
            for pid in be.pids:
                _kill(pid)

    before, t0 = set(descendants()), time.monotonic()
    try:
        tr.train(prob, tr.uncoded(4, deadline=5.0), rounds=10, backend=be, callback=kill_all,
                 checkpoint=ck, checkpoint_every=100)
    except gc.backends.WorkersLostError:
        saved = tr.load_checkpoint(ck)
        ok = saved is not None and saved["round"] == at
        return _result("ok" if ok else "checkpoint lost", t0, before, f"all killed at {at}")
    except Exception as exc:  # noqa: BLE001
        return _result(f"raised {type(exc).__name__}: {exc}", t0, before)
    return _result("no error", t0, before)


def corrupted_checkpoint(trial: int) -> dict[str, Any]:
    """A checkpoint cut at a random byte or with random bytes flipped: resuming raises
    one ValueError naming the file, never another exception, never a silent resume."""
    rng = random.Random(trial)
    prob = _problem()
    scheme = tr.exact(gc.codes.fractional_repetition(4, 1), decoder="frc_group")
    ck = Path(tempfile.mkdtemp(prefix="gradcode-faults-"))
    tr.train(prob, scheme, rounds=3, optimizer="nesterov", lr=0.5, checkpoint=ck)
    target = ck / rng.choice(["state.json", "arrays.npz"])
    data = bytearray(target.read_bytes())
    if rng.random() < 0.5:
        data = data[: rng.randrange(len(data))]
        how = f"{target.name} cut at byte {len(data)}"
    else:
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        how = f"{target.name} with bytes flipped"
    target.write_bytes(bytes(data))
    t0 = time.monotonic()
    try:
        tr.train(prob, scheme, rounds=5, optimizer="nesterov", lr=0.5, checkpoint=ck,
                 resume=True)
    except ValueError as exc:
        ok = str(exc).startswith("load_checkpoint: ") and "\n" not in str(exc)
        return _result("ok" if ok else f"unclear error: {exc}", t0, set(descendants()), how)
    except Exception as exc:  # noqa: BLE001
        return _result(f"raised {type(exc).__name__}: {exc}", t0, set(descendants()), how)
    # flipped bytes inside a JSON string or a row value can leave a valid checkpoint
    loaded = tr.load_checkpoint(ck)
    return _result("ok" if loaded is not None else "silently resumed", t0,
                   set(descendants()), how + " (still a valid checkpoint)")


_SLOW_CONFIG = """
workers = 4
rounds = {rounds}
backend = "{backend}"
[problem]
dataset = "synthetic"
samples = 200
dim = 4
[delays]
model = "shifted_exponential"
shift = 0.01
mean = 0.01
slow_workers = []
[[schemes]]
code = "uncoded"
name = "first"
[[schemes]]
code = "fractional_repetition"
params = {{ s = 1 }}
name = "second"
"""


def _start_compare(tmp: Path, rounds: int, backend: str = "local") -> subprocess.Popen:
    cfg = tmp / "faults.toml"
    cfg.write_text(_SLOW_CONFIG.format(rounds=rounds, backend=backend))
    return subprocess.Popen(gradcode_cmd() + ["compare", "--config", str(cfg), "--out",
                                              str(tmp / "out"), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp, env=_env(), start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = HANG_S) -> tuple[int | None, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out + err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out + err


def _summary(tmp: Path) -> dict[str, Any] | None:
    path = tmp / "out" / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def compare_kill_while_workers_start(trial: int) -> dict[str, Any]:
    """kill -9 a worker as soon as a new one appears after the first few (while the
    workers of a scheme start, or in its first rounds): the hit scheme either recovers or
    is reported failed with its reason, the other one's results are written in full, and
    the exit code says whether something failed (3) or not (0)."""
    rng = random.Random(trial)
    tmp = Path(tempfile.mkdtemp(prefix="gradcode-faults-"))
    t0 = time.monotonic()
    proc = _start_compare(tmp, rounds=40)
    first_workers: set[int] = set()
    killed = None
    delay = rng.uniform(0.0, 0.5)
    while time.monotonic() - t0 < HANG_S and proc.poll() is None:
        kids = descendants(proc.pid)
        if not first_workers and len(kids) >= 4:
            first_workers = set(kids)
        new = [p for p in kids if p not in first_workers]
        if first_workers and new and killed is None:
            time.sleep(delay)
            killed = rng.choice(new)
            _kill(killed)
        time.sleep(0.02)
    seen = set(descendants(proc.pid)) | first_workers | ({killed} if killed else set())
    code, text = _finish(proc)
    result = _result("", t0, set(descendants()), seen=seen)
    summary = _summary(tmp)
    if code is None:
        result["outcome"] = "hang"
    elif summary is None:
        result["outcome"] = f"lost results (exit {code})"
    else:
        entries = {s["name"]: s for s in summary["schemes"]}
        failed = [s for s in entries.values() if s["status"] == "failed"]
        if set(entries) != {"first", "second"}:
            result["outcome"] = f"lost results (schemes {sorted(entries)})"
        elif len(failed) > 1 or any(not s["error"] for s in failed):
            result["outcome"] = "more than the hit scheme failed, or no reason given"
        elif any(s["rounds"] != 40 for s in entries.values() if s["status"] == "ok"):
            result["outcome"] = "lost rounds"
        elif code != (3 if failed else 0) or "Traceback" in text:
            result["outcome"] = f"exit {code}"
        else:
            result["outcome"] = "ok"
        status = {s["name"]: s["status"] + (f" ({s['error']})" if s["error"] else "")
                  for s in summary["schemes"]}
        result["detail"] = f"killed {killed} after {delay:.2f} s; exit {code}; {status}"
    return result


def cli_signal(trial: int, sig: int = signal.SIGTERM, backend: str = "local") -> dict[str, Any]:
    """SIGINT or SIGTERM to the driver's PID mid-run: partial results written, exit 130 /
    143, no worker (local) or Ray process left."""
    rng = random.Random(trial)
    tmp = Path(tempfile.mkdtemp(prefix="gradcode-faults-"))
    t0 = time.monotonic()
    proc = _start_compare(tmp, rounds=2000, backend=backend)
    seen: set[int] = set()
    wait_for = 4 if backend == "local" else 6
    while time.monotonic() - t0 < HANG_S and len(seen) < wait_for and proc.poll() is None:
        seen |= set(descendants(proc.pid))
        time.sleep(0.05)
    # local: mid-training; Ray: from its start-up (held until ray.init returns) to training
    time.sleep(rng.uniform(1.0, 3.0) if backend == "local" else rng.uniform(0.5, 12.0))
    seen |= set(descendants(proc.pid))
    _kill(proc.pid, sig)
    code, text = _finish(proc)
    result = _result("", t0, set(descendants()), seen=seen)
    summary = _summary(tmp)
    want = 143 if sig == signal.SIGTERM else 130
    if code is None:
        result["outcome"] = "hang"
    elif code != want or summary is None or not summary["interrupted"]:
        result["outcome"] = f"exit {code}, summary {'written' if summary else 'missing'}"
    elif "Traceback" in text:
        result["outcome"] = "traceback"
    else:
        result["outcome"] = "ok"
    if summary is not None:
        result["detail"] = f"{signal.Signals(sig).name}: rounds " + ", ".join(
            f"{s['name']}={s['rounds']}" for s in summary["schemes"])
    return result


# --------------------------------------------------------------------------- Ray
def ray_actor_kill(trial: int) -> dict[str, Any]:
    """kill -9 a Ray actor's process mid-run: it becomes a permanent straggler and the
    exact code still decodes exactly."""
    import ray

    from gradcode.backends.ray import RayBackend

    rng = random.Random(trial)
    at, victim = rng.randrange(0, 3), rng.randrange(4)
    prob = _problem()
    scheme = tr.exact(gc.codes.fractional_repetition(4, 1), decoder="frc_group")
    be = RayBackend(num_cpus=2)
    before, t0 = set(descendants()), time.monotonic()

    def kill(row):
        if row["round"] == at:
            _kill(be.pids[victim])

    try:
        hist = tr.train(prob, scheme, rounds=6, backend=be, callback=kill, lr=0.5,
                        delays=st.Constant(0.02), grad_error=True)
    except Exception as exc:  # noqa: BLE001
        ray.shutdown()
        return _result(f"raised {type(exc).__name__}: {exc}", t0, before)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    ok = len(hist) == 6 and max(r["grad_rel_error"] for r in hist) < 1e-9
    return _result("ok" if ok else "wrong result", t0, before,
                   f"actor {victim} killed after round {at}")


RAY_DRIVER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import ray
    from _processes import descendants, listening_sockets
    from gradcode.backends.ray import connect
    connect("local", num_cpus=1)

    @ray.remote
    class Actor:
        def ping(self):
            return os.getpid()

    a = Actor.remote()
    ray.get(a.ping.remote())
    kids = descendants()
    socks = listening_sockets(list(kids) + [os.getpid()])
    print("ready", sorted({{ip for ip, _, _ in socks}}), flush=True)
    if {mode!r} == "exit":
        ray.shutdown()
        sys.exit(0)
    time.sleep(300)
""")


def ray_driver_exit(trial: int, mode: str = "exit") -> dict[str, Any]:
    """A driver that started a private Ray cluster exits (normally, SIGINT or SIGTERM):
    none of the cluster's processes survives it, and it only ever listened on loopback."""
    script = RAY_DRIVER.format(tests=str(TESTS), mode=mode)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    line = proc.stdout.readline().strip()
    seen = descendants(proc.pid)
    if not line.startswith("ready"):
        _finish(proc)
        return _result(f"driver did not start: {line!r}", t0, set(descendants()), seen=seen)
    addresses = json.loads(line[len("ready "):].replace("'", '"'))
    if mode != "exit":
        _kill(proc.pid, {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}[mode])
    code, _ = _finish(proc)
    # the cluster's processes were the driver's descendants; re-parented ones are not
    # descendants of this process any more, so they are checked by PID
    result = _result("", t0, set(descendants()), seen=seen)
    left = result["left"]
    loopback = all(a in ("127.0.0.1", "::1") for a in addresses)
    if code is None:
        result["outcome"] = "hang"
    elif left:
        result["outcome"] = "Ray processes left"
    elif not loopback:
        result["outcome"] = f"listened on {addresses}"
    else:
        result["outcome"] = "ok"
    result["detail"] = f"{mode}: {len(seen)} Ray processes, listening on {addresses}"
    return result


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


# --------------------------------------------------------------------------- runtime
# These need train(..., round_timeout=...) from the runtime's round protocol work.
ROUND_TIMEOUT_SCRIPT = textwrap.dedent("""
    import sys, math
    sys.path.insert(0, {tests!r})
    sys.path.insert(0, {faults!r})
    import numpy as np
    import gradcode as gc
    from gradcode import stragglers as st, training as tr
    from scenarios import faulty, _problem

    class Dead(st.DelayModel):
        def __init__(self, dead, n):
            self.dead, self.n = dead, n
        def sample(self, round, load):
            d = np.zeros(self.n)
            d[list(self.dead)] = math.inf
            return d

    if {case!r} == "stuck":
        prob = faulty("hang")
        scheme = tr.exact(gc.codes.fractional_repetition(4, 1), decoder="frc_group")
        scheme = gc.schemes.Scheme(scheme.code, "optimal", gc.wait.wait_all())
        hist = tr.train(prob, scheme, rounds=3, backend="local", lr=0.5, round_timeout=2.0)
    else:
        prob = _problem(6)
        scheme = gc.schemes.nested(gc.codes.nested(6, (0, 1), seed=0))
        hist = tr.train(prob, scheme, rounds=3, backend="local", lr=0.5, round_timeout=2.0,
                        delays=Dead((0, 1, 2), 6))
    print("rows", len(hist))
""")

NEEDS_ROUND_TIMEOUT = ("stuck", "nested")


def round_timeout_case(trial: int, case: str = "stuck") -> dict[str, Any]:
    """A live but stuck worker under wait-all (``stuck``), and a nested code with more
    failed workers than its top level tolerates (``nested``): with a round timeout both
    finish every round."""
    script = ROUND_TIMEOUT_SCRIPT.format(tests=str(TESTS), faults=str(Path(__file__).parent),
                                         case=case)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    seen: set[int] = set()
    code, text = None, ""
    while time.monotonic() - t0 < HANG_S:
        seen |= set(descendants(proc.pid))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    code, text = _finish(proc, timeout=1.0)
    result = _result("", t0, set(descendants()), seen=seen)
    if code is None:
        result["outcome"] = "hang"
    elif code != 0 or "rows 3" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else ""
        result["outcome"] = f"exit {code}: {last[:120]}"
    else:
        result["outcome"] = "ok"
    result["detail"] = case
    return result
