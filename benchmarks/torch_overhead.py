"""Overhead of gradcode's coded round for a ~1M-parameter PyTorch model on 8 local worker
processes, against hand-written torch.multiprocessing data-parallel loops doing the same
arithmetic (same workers, same minibatch rows, wait for all, sum, the same Adam step).

* gradcode: ``LocalBackend`` + ``coded_round`` + ``TorchOptimizer`` (an ``Adam`` on the
  model's parameters), the uncoded scheme (B = I, wait for all 8), exactly the work of one
  ``gc.training.train`` round without the history bookkeeping. Parameters and results
  travel through shared memory (the backend's default for vectors this large: the
  parameters written once for all workers, each result written into the worker's slot
  and read there without a copy; the pipes carry only small control messages), decoding
  sums the float32 results in place (saxpy), the Adam step runs on float32.
* gradcode-pipe: the same with ``LocalBackend(shared_memory=False)``: float32 bytes
  through the worker pipes (one round message for all workers; results read straight
  into a fresh buffer).
* dp-shm: the fastest plain loop: parameters and the 8 gradient slots live in shared
  memory (``Tensor.share_memory_``), a pipe per worker only carries "go" / "done".
* dp-pipe: the plain loop most people write first: float32 parameter bytes sent down a
  pipe to each worker, float32 gradient bytes back.

The four loops alternate in blocks so that they see the same machine load; the ratio of
median round times is reported, and gradcode / dp-shm per pair of blocks (target: at most
1.3x). Then the gradcode round is broken down, each piece measured in this process: the
gradient computation of one worker, the parameters into shared memory (master) and out
of it (one worker), one result into its slot, decoding, the optimiser step; the rest of
the round is the other workers' computation on the shared cores, the copies, the control
messages and process scheduling.

Run:  OMP_NUM_THREADS=1 python benchmarks/torch_overhead.py [--quick]
Writes benchmarks/results/torch_overhead.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.multiprocessing as tmp
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import gradcode as gc
import gradcode.backends  # noqa: F401
import gradcode.optimizers  # noqa: F401
import gradcode.problems  # noqa: F401
import gradcode.schemes  # noqa: F401
import gradcode.training  # noqa: F401
from gradcode.backends._shared import SharedBlock

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "torch_overhead.md")
N = 8


def make_model(seed: int = 0) -> nn.Module:
    """784 -> 1024 -> 192 -> 10 MLP: 1,002,570 parameters (float32)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 192), nn.ReLU(),
                         nn.Linear(192, 10))


def make_data(per_part: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N * per_part, 784, generator=g)
    y = torch.randint(0, 10, (N * per_part,), generator=g)
    return X, y


# ---------------------------------------------------------------------------- baselines
def _dp_worker(j, conn, Xj, yj, batches, shm_params, shm_grads, use_pipe):
    torch.set_num_threads(1)
    model = make_model()
    plist = list(model.parameters())
    F = nn.functional
    while True:
        msg = conn.recv_bytes()
        if not msg:
            return
        t = int.from_bytes(msg[:8], "little")
        with torch.no_grad():
            flat = torch.frombuffer(bytearray(msg[8:]), dtype=torch.float32) if use_pipe \
                else shm_params
            vector_to_parameters(flat, plist)
        rows = batches.rows(t, j)
        X, y = (Xj, yj) if rows is None else (Xj[rows], yj[rows])
        w = batches.count(t, j) / batches.total(t)
        grads = torch.autograd.grad(F.cross_entropy(model(X), y) * w, plist)
        g = torch.cat([q.reshape(-1) for q in grads])
        if use_pipe:
            conn.send_bytes(g.numpy().tobytes())
        else:
            shm_grads[j].copy_(g)
            conn.send_bytes(b"d")


class DataParallel:
    """The hand-written loop (see the module docstring); ``round(t)`` = one step."""

    def __init__(self, X, y, parts, batches, lr, use_pipe):
        ctx = tmp.get_context("forkserver")
        self.model = make_model()
        self.plist = list(self.model.parameters())
        dim = sum(p.numel() for p in self.plist)
        self.params = parameters_to_vector(self.plist).detach().clone().share_memory_()
        self.grads = torch.zeros(N, dim).share_memory_()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.use_pipe = use_pipe
        self.conns, self.procs = [], []
        for j in range(N):
            a, b = ctx.Pipe()
            idx = torch.as_tensor(parts[j])
            p = ctx.Process(target=_dp_worker, args=(j, b, X[idx].clone(), y[idx].clone(),
                                                     batches, self.params, self.grads,
                                                     use_pipe), daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)

    def round(self, t: int) -> None:
        head = int(t).to_bytes(8, "little")
        msg = head + self.params.numpy().tobytes() if self.use_pipe else head
        for c in self.conns:
            c.send_bytes(msg)
        total = torch.zeros_like(self.params)
        for j, c in enumerate(self.conns):
            data = c.recv_bytes()
            total += torch.frombuffer(bytearray(data), dtype=torch.float32) if self.use_pipe \
                else self.grads[j]
        with torch.no_grad():
            vector_to_parameters(self.params, self.plist)
        off = 0
        for p in self.plist:
            p.grad = total[off:off + p.numel()].view_as(p)
            off += p.numel()
        self.opt.step()
        with torch.no_grad():
            self.params.copy_(parameters_to_vector(self.plist))

    def close(self) -> None:
        for c in self.conns:
            c.send_bytes(b"")
        for p in self.procs:
            p.join(5)


# ---------------------------------------------------------------------------- gradcode
class Gradcode:
    def __init__(self, X, y, parts, batch, lr, shared_memory=None):
        self.model = make_model()
        self.prob = gc.problems.torch_problem(self.model, nn.functional.cross_entropy, X, y,
                                              list(parts), batch_size=batch)
        self.scheme = gc.schemes.uncoded(N)
        self.be = gc.backends.LocalBackend(shared_memory=shared_memory)
        self.be.start(self.prob, self.scheme.code)
        assert self.be.shared == (shared_memory is not False)
        self.opt = gc.optimizers.make_optimizer(
            torch.optim.Adam(self.model.parameters(), lr=lr), None)
        self.params = np.array(self.prob.init_params())   # float32, as train() keeps it

    def round(self, t: int) -> None:
        res = gc.training.coded_round(self.be, self.scheme, t, self.params)
        assert len(res.responders) == N
        self.params = np.asarray(self.opt.step(self.params, res.g_hat, t),
                                 dtype=self.params.dtype)

    def close(self) -> None:
        self.be.close()


class _ZeroPart:
    """A partition that answers zeros at once: its round is pure transfer."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def gradient(self, params: np.ndarray, round: int | None = None) -> np.ndarray:
        return np.zeros(self.dim, np.float32)


class _ZeroProblem:
    dtype = np.dtype(np.float32)

    def __init__(self, dim: int) -> None:
        self.dim, self.k = dim, N

    def part(self, j: int) -> _ZeroPart:
        return _ZeroPart(self.dim)


def transfer_only(dim: int, rounds: int) -> float:
    """Median seconds of a gradcode round whose workers compute nothing."""
    scheme = gc.schemes.uncoded(N)
    be = gc.backends.LocalBackend()
    be.start(_ZeroProblem(dim), scheme.code)
    p, ts = np.zeros(dim, np.float32), []
    try:
        for t in range(rounds + 2):
            t0 = time.perf_counter()
            gc.training.coded_round(be, scheme, t, p)
            ts.append(time.perf_counter() - t0)
    finally:
        be.close()
    return statistics.median(ts[2:])


def breakdown(g: Gradcode, reps: int) -> dict[str, float]:
    """Median seconds of the pieces of one gradcode round, measured in this process."""
    part = g.prob.part(0)
    p = g.params
    values = {i: np.asarray(part.gradient(p, round=0)) for i in range(N)}   # float32
    block = SharedBlock.create(p.size, p.dtype, N)
    pieces = {
        "compute (one worker)": lambda t: part.gradient(p, round=t),
        "params into shared memory (master)": lambda t: block.write_params(t + 1, p),
        "params out of shared memory (one worker)": lambda t: block.read_params(t + 1),
        "result into its slot (one worker)": lambda t: block.write_result(0, 0, t, values[0]),
        "decode (8 answers)": lambda t: gc.training.decode_round(g.scheme, list(range(N)),
                                                                 values, p.size),
        "optimiser step": lambda t: g.opt.step(p, values[0], 1000 + t),
    }
    out: dict[str, list[float]] = {k: [] for k in pieces}
    for t in range(reps):
        for key, piece in pieces.items():
            t0 = time.perf_counter()
            piece(t)
            out[key].append(time.perf_counter() - t0)
    block.close()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=64, help="rows per worker and round")
    args = ap.parse_args()
    torch.set_num_threads(1)
    blocks, per_block, warm = (3, 5, 2) if args.quick else (6, 10, 3)
    per_part = 4 * args.batch
    X, y = make_data(per_part)
    parts = [np.arange(j * per_part, (j + 1) * per_part) for j in range(N)]
    batches = gc.problems.Minibatches([per_part] * N, args.batch, 0)
    lr = 1e-3
    loops = {"gradcode": Gradcode(X, y, parts, args.batch, lr),
             "gradcode-pipe": Gradcode(X, y, parts, args.batch, lr, shared_memory=False),
             "dp-shm": DataParallel(X, y, parts, batches, lr, use_pipe=False),
             "dp-pipe": DataParallel(X, y, parts, batches, lr, use_pipe=True)}
    times: dict[str, list[float]] = {k: [] for k in loops}
    try:
        for loop in loops.values():
            for t in range(warm):
                loop.round(t)
        t = warm
        for _ in range(blocks):
            for name, loop in loops.items():
                for i in range(per_block):
                    t0 = time.perf_counter()
                    loop.round(t + i)
                    times[name].append(time.perf_counter() - t0)
            t += per_block
        # same arithmetic: the loops took the same steps on the same batches
        w_gc = loops["gradcode"].params
        w_shm = loops["dp-shm"].params.numpy()
        drift = float(np.max(np.abs(w_gc - w_shm)) / np.max(np.abs(w_shm)))
        parts_s = breakdown(loops["gradcode"], 10 if args.quick else 20)
    finally:
        for loop in loops.values():
            loop.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    bare = transfer_only(loops["gradcode"].prob.dim, 10 if args.quick else 20)
    lines = [
        "# gradcode vs a hand-written torch data-parallel loop",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/torch_overhead.py"
        f"{' --quick' if args.quick else ''}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}; {N} worker processes.",
        f"Model: MLP 784-1024-192-10, {loops['gradcode'].prob.dim:,} float32 parameters; "
        f"{args.batch} rows per worker and round (uncoded B = I, wait for all 8); Adam on the "
        f"master. {blocks} alternating blocks of {per_block} rounds after {warm} warm-up rounds.",
        f"Same arithmetic: after every loop took the same steps, max |w_gradcode - w_dp| / "
        f"max |w| = {drift:.1e} (float32 round-off).",
        "",
        "| loop | median round (ms) | ratio to dp-shm | ratio to dp-pipe |",
        "|---|---|---|---|",
    ]
    for k in loops:
        lines.append(f"| {k} | {med[k] * 1e3:.1f} | {med[k] / med['dp-shm']:.2f} | "
                     f"{med[k] / med['dp-pipe']:.2f} |")
    block_ratios = [statistics.median(times["gradcode"][b:b + per_block]) /
                    statistics.median(times["dp-shm"][b:b + per_block])
                    for b in range(0, len(times["dp-shm"]), per_block)]
    verdict = "met" if med["gradcode"] / med["dp-shm"] <= 1.3 else "NOT met"
    lines += ["", f"gradcode / dp-shm per block (each pair of blocks ran back to back): "
              f"{[round(r, 2) for r in block_ratios]}. Target <= 1.3x: {verdict}."]
    lines += ["", "Pieces of the gradcode round (medians, measured in the master process):", "",
              "| piece | ms |", "|---|---|"]
    for k, v in parts_s.items():
        lines.append(f"| {k} | {v * 1e3:.2f} |")
    rest = med["gradcode"] - parts_s["compute (one worker)"] - parts_s["decode (8 answers)"] \
        - parts_s["optimiser step"]
    mb = loops["gradcode"].prob.dim * 4 / 1e6
    lines += [f"| rest: the other {N - 1} workers' compute on {os.cpu_count()} cores, each "
              f"worker's copy of the {mb:.0f} MB params out of and its result into shared "
              f"memory, control messages, scheduling | {rest * 1e3:.1f} |",
              f"| a gradcode round whose workers compute nothing (transfer only) | "
              f"{bare * 1e3:.1f} |",
              "", f"Load average while running: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores.", ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
