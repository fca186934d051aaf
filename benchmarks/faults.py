"""Fault injection, the long version: every scenario of tests/faults/scenarios.py run many
times on the local backend and on Ray; writes benchmarks/results/faults.md.

Per scenario: trials, outcomes (``ok`` = ended as the failure semantics promise), seconds
to finish (median and max; a run longer than the bound counts as a hang), and the number
of processes the runs left behind (alive 10 s after they ended).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/faults.py            # >= 10 trials
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/faults.py --trials 2 --no-ray
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "faults"))

import scenarios as sc  # noqa: E402

import gradcode  # noqa: E402

# (name, backend, function, trials multiplier, what it checks)
SCENARIOS = [
    ("kill -9 a worker mid-training", "local", sc.local_kill_mid_training, 1,
     "exact code: losses equal an undisturbed run; the worker is a permanent straggler"),
    ("kill -9 a worker while compare starts a scheme", "local",
     sc.compare_kill_while_workers_start, 1,
     "the hit scheme recovers or is reported failed with its reason; the other is "
     "written in full; exit 0 (none failed) or 3; no traceback"),
    ("every worker killed", "local", sc.local_all_dead, 1,
     "WorkersLostError; checkpoint of the last finished round"),
    ("NaN results", "local", lambda t: sc.local_bad_values(t, math.nan), 1,
     "results dropped and logged; finite losses"),
    ("inf results", "local", lambda t: sc.local_bad_values(t, math.inf), 1,
     "results dropped and logged; finite losses"),
    ("hung worker, deadline policy", "local", sc.local_hung_worker_with_deadline, 1,
     "every round ends at its deadline"),
    ("corrupted checkpoint", "-", sc.corrupted_checkpoint, 5,
     "one ValueError naming the file, or a still-valid checkpoint"),
    ("SIGINT to gradcode compare", "local", lambda t: sc.cli_signal(t, signal.SIGINT), 1,
     "exit 130, partial results written"),
    ("SIGTERM to gradcode compare", "local", lambda t: sc.cli_signal(t, signal.SIGTERM), 1,
     "exit 143, partial results written"),
    ("stuck worker, wait-all, round timeout", "local",
     lambda t: sc.round_timeout_case(t, "stuck"), 1,
     "every round ends by train(round_timeout=...); training finishes; no hang"),
    ("nested code, more failures than tolerated", "local",
     lambda t: sc.round_timeout_case(t, "nested"), 1,
     "every round finishes (fallback to the completed levels); no hang"),
]
RAY_SCENARIOS = [
    ("kill -9 a Ray actor mid-training", "ray", sc.ray_actor_kill, 1,
     "exact code decodes exactly; the actor is a permanent straggler"),
    ("SIGTERM to gradcode compare", "ray", lambda t: sc.cli_signal(t, signal.SIGTERM, "ray"),
     1, "exit 143, partial results written, no Ray process left"),
    ("driver exits normally", "ray", lambda t: sc.ray_driver_exit(t, "exit"), 1,
     "no Ray process left; listened on loopback only"),
    ("SIGINT to the driver", "ray", lambda t: sc.ray_driver_exit(t, "sigint"), 1,
     "no Ray process left; listened on loopback only"),
    ("SIGTERM to the driver", "ray", lambda t: sc.ray_driver_exit(t, "sigterm"), 1,
     "no Ray process left; listened on loopback only"),
]


def run(trials: int, with_ray: bool, only: str | None) -> list[dict]:
    rows = []
    todo = SCENARIOS + (RAY_SCENARIOS if with_ray else [])
    for name, backend, fn, mult, checks in todo:
        if only and only not in name:
            continue
        results = []
        for t in range(trials * mult):
            try:
                results.append(fn(t))
            except Exception as exc:  # noqa: BLE001 - a broken harness is an outcome too
                results.append({"outcome": f"harness error {type(exc).__name__}: {exc}",
                                "seconds": math.nan, "left": 0, "detail": ""})
            r = results[-1]
            print(f"{name} [{backend}] #{t}: {r['outcome']} in {r['seconds']:.1f} s, "
                  f"left {r['left']}  {r['detail']}", flush=True)
        outcomes = collections.Counter(
            "hang" if r["seconds"] > sc.HANG_S else r["outcome"] for r in results)
        secs = [r["seconds"] for r in results if math.isfinite(r["seconds"])]
        rows.append({"name": name, "backend": backend, "checks": checks,
                     "trials": len(results), "ok": outcomes.get("ok", 0),
                     "outcomes": outcomes, "median_s": statistics.median(secs) if secs else
                     math.nan, "max_s": max(secs) if secs else math.nan,
                     "left": sum(r["left"] for r in results)})
    return rows


def write(rows: list[dict], path: Path, trials: int, elapsed: float) -> None:
    ray_version = "not installed"
    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        pass
    lines = [
        "# Fault injection (benchmarks/faults.py)",
        "",
        f"gradcode {gradcode.__version__}, Python {platform.python_version()}, Ray "
        f"{ray_version}, {platform.machine()}; {trials} trials per scenario (5x for the "
        f"cheap checkpoint corruptions); bound {sc.HANG_S:.0f} s per run (longer = hang); "
        f"processes counted as left when alive {sc.GRACE_S:.0f} s after the run; total "
        f"{elapsed / 60:.1f} min.",
        "",
        "Command: `OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/faults.py`",
        "",
        "| scenario | backend | trials | ok | other outcomes | median s | max s | "
        "processes left | what ok means |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        other = "; ".join(f"{k} x{v}" for k, v in r["outcomes"].items() if k != "ok") or "-"
        lines.append(f"| {r['name']} | {r['backend']} | {r['trials']} | {r['ok']} | "
                     f"{other.replace('|', '/')} | {r['median_s']:.1f} | {r['max_s']:.1f} | "
                     f"{r['left']} | {r['checks']} |")
    hangs = sum(r["outcomes"].get("hang", 0) for r in rows)
    lost = sum(v for r in rows for k, v in r["outcomes"].items() if "lost" in k)
    left = sum(r["left"] for r in rows)
    lines += ["", f"Hangs: {hangs}. Lost results: {lost}. Processes left: {left}.", ""]
    pending = [r for r in rows if "runtime work" in r["checks"] and r["ok"] < r["trials"]]
    if pending:
        lines += ["The round-timeout scenarios call `train(..., round_timeout=...)`, which "
                  "this branch does not have yet (the runtime work adds it); until then they "
                  "end with a TypeError, never a hang (each runs in a subprocess bounded by "
                  f"{sc.HANG_S:.0f} s).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per scenario (>= 1)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray scenarios")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "faults.md")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials={args.trials} must be >= 1")
    with_ray = not args.no_ray
    if with_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("note: Ray is not installed; its scenarios are skipped", file=sys.stderr)
            with_ray = False
    logging.getLogger("gradcode").setLevel(logging.ERROR)    # the drops are expected here
    t0 = time.monotonic()
    rows = run(args.trials, with_ray, args.only)
    write(rows, args.out, args.trials, time.monotonic() - t0)


if __name__ == "__main__":
    main()
