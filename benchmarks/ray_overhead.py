"""Overhead of gradcode's ``ray`` backend against a bare ``ray.wait`` loop (same run).

Part 1: per-round latency of ``gc.training.train(..., backend=RayBackend())`` against a
hand-written loop over plain Ray actors that do the same work (same partitions, same
coded sums, one ``ray.put`` of the parameters, ``ray.wait`` until all answered, the
weighted sum and a gradient step). Blocks of rounds alternate between the two so that
both see the same machine load; the ratio of medians is reported (target <= 1.2).

Part 2: many workers (default 128) and a 1e6-float model: per-round latency of both, the
megabytes moved per round (one broadcast of the parameters, n results back), and the
master's time split into decoding vs everything else (broadcast, compute, receiving). The
memory one actor takes is measured first (8 probe actors); when the requested number of
workers would not fit in the available memory minus a safety margin, part 2 runs the
largest multiple of 8 that fits and the report says why, with the numbers.

Run:  python benchmarks/ray_overhead.py [--quick] [--part {1,2}] [--workers N]
Writes benchmarks/results/ray_overhead.md (``--part N`` reruns one part and keeps the
other part's section of the existing file).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

import gradcode as gc  # noqa: E402
import gradcode.data  # noqa: E402,F401
import gradcode.problems  # noqa: E402,F401
import gradcode.schemes  # noqa: E402,F401
import gradcode.training  # noqa: E402,F401
import gradcode.wait  # noqa: E402,F401
from gradcode.backends.ray import RayBackend, connect  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "ray_overhead.md")


# ---------------------------------------------------------------------------- baseline
class BareWorker:
    """Plain (synchronous) Ray actor: the coded sum over its partitions, nothing else."""

    def __init__(self, coefs, parts):
        self.coefs = coefs
        self.parts = parts

    def compute(self, params):
        out = None
        for c, p in zip(self.coefs, self.parts):
            term = c * p.gradient(params)
            out = term if out is None else out + term
        return out


def bare_rounds(actors, weights, params, lr, rounds, split=None):
    """The bare loop: put, submit, ray.wait until all, weighted sum, step. Seconds/round.
    ``split`` (a dict), when given, accumulates seconds spent receiving (wait + get) and
    combining (the weighted sum)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ref = ray.put(params)
        pending = [a.compute.remote(ref) for a in actors]
        index = {r: i for i, r in enumerate(pending)}
        g = np.zeros_like(params)
        while pending:
            t1 = time.perf_counter()
            ready, pending = ray.wait(pending, num_returns=1)
            got = [(r, ray.get(r)) for r in ready]
            t2 = time.perf_counter()
            for r, value in got:
                g += weights[index[r]] * value
            if split is not None:
                split["receive"] = split.get("receive", 0.0) + t2 - t1
                split["combine"] = split.get("combine", 0.0) + time.perf_counter() - t2
        params = params - lr * g
        times.append(time.perf_counter() - t0)
    return times, params


def start_bare(problem, code, cpus):
    cls = ray.remote(BareWorker).options(num_cpus=cpus)
    B = code.B
    refs = {j: ray.put(problem.part(j)) for j in range(code.k)}
    actors = []
    for i in range(code.n):
        lo, hi = B.indptr[i], B.indptr[i + 1]
        parts = ray.get([refs[int(j)] for j in B.indices[lo:hi]])
        actors.append(cls.remote(B.data[lo:hi].copy(), parts))
    ray.get([a.compute.remote(np.zeros(problem.dim)) for a in actors])   # warm
    return actors


def gradcode_rounds(problem, scheme, rounds, lr, cpus):
    """Per-round seconds of train() (wall_time differences, evaluation rounds excluded)."""
    be = RayBackend(worker_cpus=cpus, start_timeout=1800)   # many actors start slowly
    hist = gc.training.train(problem, scheme, rounds=rounds + 2, backend=be, lr=lr,
                             eval_every=10**6, grad_error=False)
    wall = [r["wall_time"] for r in hist.rows]
    # row 0 includes starting the actors; the last row includes the final evaluation
    return list(np.diff(wall)[:-1]), be


def timed_decoder(name, seconds):
    """The named decoder, appending the seconds of every call to ``seconds``."""
    inner = gc.decoders.resolve(name)

    def decoder(code, responders):
        t0 = time.perf_counter()
        try:
            return inner(code, responders)
        finally:
            seconds.append(time.perf_counter() - t0)

    decoder.__name__ = name
    return decoder


# ---------------------------------------------------------------------------- problems
class VectorPart(gc.problems.Part):
    """g_j(w) = (j + 1) * w: cheap to compute, the size of the model (part 2)."""

    def __init__(self, j):
        self.j = j

    def gradient(self, params):
        return (self.j + 1.0) * params


class VectorProblem(gc.problems.Problem):
    """A problem whose cost is all communication: dim floats, k trivial partitions."""

    def __init__(self, dim, k):
        self.dim, self.k = dim, k

    def init_params(self):
        return np.zeros(self.dim)

    def part(self, j):
        return VectorPart(j)

    def full_gradient(self, params):
        return sum((j + 1.0) for j in range(self.k)) * params

    def loss(self, params):
        return 0.0

    def metrics(self, params):
        return {"loss": 0.0}


def rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# ---------------------------------------------------------------------------- main
def part1(blocks, rounds):
    n, dim = 8, 2000
    X, y = gc.data.synthetic_regression(8 * 1000, dim, seed=0)
    prob = gc.problems.least_squares(X, y, k=n)
    code = gc.codes.fractional_repetition(n=n, s=1)
    scheme = gc.schemes.Scheme(code, "optimal", gc.wait.wait_all())
    weights = gc.decode(code, np.ones(n, dtype=bool)).weights
    cpus = round(ray.cluster_resources()["CPU"] / (2 * n), 4)   # both sets of actors fit
    actors = start_bare(prob, code, cpus)
    ours, bare = [], []
    for _ in range(blocks):
        t, _ = gradcode_rounds(prob, scheme, rounds, 1e-3, cpus)
        ours += t
        t, _ = bare_rounds(actors, weights, prob.init_params(), 1e-3, rounds)
        bare += t
    for a in actors:
        ray.kill(a)
    return dict(n=n, dim=dim, rounds=len(ours), ours=statistics.median(ours),
                bare=statistics.median(bare), ours_mean=statistics.fmean(ours),
                bare_mean=statistics.fmean(bare))


SAFETY_MB = 6144          # memory part 2 leaves to the rest of the (shared) machine


def mem_available_mb():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def probe_actor_mb(prob, cpus, count=8):
    """Resident MB of one bare actor holding its partitions (mean over ``count``)."""
    code = gc.codes.fractional_repetition(n=count, s=1)
    actors = start_bare(prob, code, cpus)
    pids = ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in actors])
    per = rss_mb(pids) / count
    for a in actors:
        ray.kill(a)
    return per


def part2(rounds, want):
    dim = 1_000_000
    cpus = round(ray.cluster_resources()["CPU"] / want, 4)
    per_actor = probe_actor_mb(VectorProblem(dim, 8), cpus)
    avail = mem_available_mb()
    result_mb = dim * 8 / 1e6                  # one returned gradient, held by the master

    def need(n):                               # gradcode's and the bare actors never coexist
        return n * (per_actor + result_mb)

    n = want
    while n > 8 and need(n) > avail - SAFETY_MB:
        n -= 8
    why = None
    if n < want:
        why = (f"{want} workers need about {need(want) / 1024:.1f} GiB ({per_actor:.0f} MB "
               f"measured per actor + {result_mb:.0f} MB per returned gradient), but "
               f"{avail / 1024:.1f} GiB were available and {SAFETY_MB / 1024:.0f} GiB are left "
               f"to the shared machine: ran n = {n}, the largest multiple of 8 that fits")
        print(f"part 2: {why}", flush=True)
    prob = VectorProblem(dim, n)
    code = gc.codes.fractional_repetition(n=n, s=1)
    decode_s: list[float] = []
    scheme = gc.schemes.Scheme(code, timed_decoder("optimal", decode_s), gc.wait.wait_all())
    weights = gc.decode(code, np.ones(n, dtype=bool)).weights
    cpus = round(ray.cluster_resources()["CPU"] / n, 4)
    t_start = time.perf_counter()
    ours, be = gradcode_rounds(prob, scheme, rounds, 1e-9, cpus)
    total_ours = time.perf_counter() - t_start
    sent = be.bytes_broadcast / (rounds + 2)
    back = be.bytes_returned / (rounds + 2)
    actors = start_bare(prob, code, cpus)
    rss = rss_mb([pid for pid in ray.get([a.__ray_call__.remote(
        lambda self: os.getpid()) for a in actors])])
    split: dict = {}
    bare, _ = bare_rounds(actors, weights, prob.init_params(), 1e-9, rounds, split)
    for a in actors:
        ray.kill(a)
    return dict(n=n, want=want, why=why, dim=dim, rounds=rounds,
                ours=statistics.median(ours), bare=statistics.median(bare),
                sent_mb=sent / 1e6, back_mb=back / 1e6, actors_rss_mb=rss,
                per_actor_mb=per_actor, avail_mb=avail, total_ours=total_ours,
                decode_ms=statistics.median(decode_s) * 1e3,
                bare_receive_ms=split.get("receive", 0.0) / rounds * 1e3,
                bare_combine_ms=split.get("combine", 0.0) / rounds * 1e3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--workers", type=int, default=128,
                    help="part 2: workers wanted (fewer when memory does not allow)")
    ap.add_argument("--part", type=int, choices=(1, 2), default=None,
                    help="run only this part; the other part's section of the existing "
                         "results file is kept")
    args = ap.parse_args(argv)
    blocks, rounds1, rounds2 = (2, 10, 3) if args.quick else (4, 25, 5)
    r1 = r2 = None
    connect("local", num_cpus=args.num_cpus)
    try:
        if args.part in (None, 1):
            r1 = part1(blocks, rounds1)
            print(f"part 1: n={r1['n']} dim={r1['dim']}: gradcode {r1['ours'] * 1e3:.2f} ms, "
                  f"bare {r1['bare'] * 1e3:.2f} ms, ratio {r1['ours'] / r1['bare']:.2f}",
                  flush=True)
        if args.part in (None, 2):
            r2 = part2(rounds2, args.workers)
            print(f"part 2: n={r2['n']} dim={r2['dim']}: gradcode {r2['ours']:.3f} s, bare "
                  f"{r2['bare']:.3f} s, ratio {r2['ours'] / r2['bare']:.2f}; MB per round: "
                  f"{r2['sent_mb']:.1f} broadcast + {r2['back_mb']:.1f} returned", flush=True)
    finally:
        ray.shutdown()
    write_results(args, blocks, r1, r2)
    return 0


def _old_sections(path):
    """The '## 1.' and '## 2.' sections of an existing results file (text or None)."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return None, None
    i1, i2 = text.find("\n## 1."), text.find("\n## 2.")
    s1 = text[i1 + 1:i2 if i2 > i1 else len(text)] if i1 >= 0 else None
    s2 = text[i2 + 1:] if i2 >= 0 else None
    return s1, s2


def write_results(args, blocks, r1, r2):
    old1, old2 = _old_sections(RESULTS)
    load = os.getloadavg()
    cmd = "python benchmarks/ray_overhead.py" + (" --quick" if args.quick else "") + \
        (f" --part {args.part}" if args.part else "") + \
        (f" --workers {args.workers}" if args.part != 1 else "")
    kept = ""
    if args.part is not None:
        kept = (f" Only part {args.part} was rerun by this command; the other part's "
                f"section is kept from the previous full run.")
    head = f"""# Ray backend overhead

Command: `{cmd}` on one
machine ({platform.machine()}, {os.cpu_count()} CPUs, Ray {ray.__version__}, Python
{platform.python_version()}), a local Ray cluster with {args.num_cpus} CPUs. Load average
during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min; the machine is
shared, so absolute times are noisy; both sides are measured in alternating blocks of
the same run, and the ratio is what to read).{kept}

"""
    sec1 = old1 if r1 is None else f"""## 1. Per-round latency: gradcode on Ray vs a bare `ray.wait` loop

n = {r1['n']} workers, FRC(s=1), least squares with {r1['dim']} parameters, wait for all,
{r1['rounds']} rounds per side in {blocks} alternating blocks.
gradcode = `gc.training.train(..., backend=RayBackend())` (async actors, round tags,
cancellation, decoding, optimizer step, history row); bare = plain actors, one
`ray.put`, `ray.wait(num_returns=1)` until all answered, the weighted sum and the step.

| | median s/round | mean s/round |
| --- | ---: | ---: |
| gradcode (ray backend) | {r1['ours']:.4f} | {r1['ours_mean']:.4f} |
| bare ray.wait loop | {r1['bare']:.4f} | {r1['bare_mean']:.4f} |
| **ratio** | **{r1['ours'] / r1['bare']:.2f}** | {r1['ours_mean'] / r1['bare_mean']:.2f} |

Target: ratio <= 1.2.

"""
    sec2 = old2 if r2 is None else f"""## 2. {r2['n']} workers, a 1e6-float model

n = {r2['n']} workers (FRC, s=1, load 2; {r2['want']} requested), {r2['dim']:,} float64
parameters (8 MB), {r2['rounds']} rounds, trivial gradients, so the round is all
communication.{'' if not r2['why'] else ' Not the requested size: ' + r2['why'] + '.'}

| | median s/round |
| --- | ---: |
| gradcode (ray backend) | {r2['ours']:.3f} |
| bare ray.wait loop | {r2['bare']:.3f} |
| ratio | {r2['ours'] / r2['bare']:.2f} |

Data moved per round (counted by the backend): {r2['sent_mb']:.1f} MB broadcast (one
`ray.put` of the parameters; every worker on a node reads the same shared-memory copy,
and on a multi-node cluster it crosses the network once per node) + {r2['back_mb']:.1f} MB
of results returned to the master (n x 8 MB) = {r2['sent_mb'] + r2['back_mb']:.1f} MB.

Master time per round: decoding {r2['decode_ms']:.2f} ms (median of the decoder calls,
`optimal` on the n responders) against {r2['ours'] * 1e3:.0f} ms for the whole round, so
about {r2['ours'] * 1e3 - r2['decode_ms']:.0f} ms is broadcasting, computing and receiving.
In the bare loop: {r2['bare_receive_ms']:.0f} ms per round in `ray.wait` + `ray.get`
(receiving) and {r2['bare_combine_ms']:.0f} ms in the weighted sum (combining n x 8 MB).

Memory: one actor took {r2['per_actor_mb']:.0f} MB resident (probe of 8), MemAvailable
was {r2['avail_mb'] / 1024:.1f} GiB at the start of part 2; the {r2['n']} bare actors held
{r2['actors_rss_mb']:.0f} MB in all. Whole gradcode run including starting {r2['n']}
actors: {r2['total_ours']:.1f} s.
"""
    body = "".join(sec.rstrip("\n") + "\n\n" for sec in (sec1, sec2) if sec)
    text = head + body.rstrip("\n") + "\n"
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
