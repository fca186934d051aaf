"""A small CNN on scikit-learn's handwritten digits (8x8), trained with coded minibatch SGD.

8 workers, each holding the partitions its row of the code assigns it; every round each
partition contributes a minibatch drawn with the seed (seed, round, partition), so all
copies of a partition use the same images; the master decodes the coded answers and
steps a ``torch.optim.Adam`` built on the model's parameters, as in plain PyTorch.
Two workers are persistently slow (and every worker has random jitter), and the script
compares, on time to 95 % test accuracy:

* uncoded: every worker holds one partition, the master waits for all 8;
* FRC s=1: fractional repetition, every partition on 2 workers, exact decoding from the
  first worker of each pair;
* ErasureHead: the same placement, the first 6 answers, uncovered groups dropped;
* auto: :func:`gradcode.schemes.auto`, when this gradcode has it.

Run it::

    python examples/cnn_digits.py --backend ray        # or local, simulated (virtual clock)

It prints a table, and writes ``cnn_digits.png`` (test accuracy against round time) and
``cnn_digits.json`` into ``--out``. The times are the training clock: the sum of the
round times (waiting for workers), not counting the master's evaluations.

The same training, one scheme at a time, from a config file (it imports
:func:`digits_cnn`, :func:`train_set` and :func:`test_set` from this script)::

    gradcode run examples/cnn_digits.toml --backend local

Needs the torch, data and plots extras (``pip install 'gradcode[torch,data,plots]'``, and
``ray`` for ``--backend ray``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import gradcode as gc
import gradcode.codes
import gradcode.data
import gradcode.problems
import gradcode.schemes
import gradcode.stragglers
import gradcode.training

TARGET = 0.95


def digits_cnn() -> nn.Module:
    """conv(1->16, 3x3) - ReLU - conv(16->32, 3x3) - ReLU - maxpool 2 - fc(512->64) - ReLU
    - fc(64->10): about 38,000 parameters. Built from ``torch.nn`` layers only, so the
    workers (processes or Ray actors) unpickle it without importing this script."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def digits(subset: int | None = None, seed: int = 0) -> tuple[Any, Any]:
    """(train, test) ``TensorDataset``s of the 1,797 digits, pixels scaled to [0, 1],
    images 1x8x8; an 80/20 split (``subset``: keep that many training images)."""
    X, y = gc.data.sklearn_dataset("digits")
    X = np.asarray(X, dtype=np.float32) / 16.0
    Xtr, ytr, Xte, yte = gc.data.train_test_split(X, y, 0.2, seed=seed)
    if subset is not None:
        Xtr, ytr = Xtr[:subset], ytr[:subset]

    def tensors(A: np.ndarray, b: np.ndarray) -> Any:
        return torch.utils.data.TensorDataset(
            torch.tensor(A, dtype=torch.float32).reshape(-1, 1, 8, 8),
            torch.tensor(b, dtype=torch.int64))
    return tensors(Xtr, ytr), tensors(Xte, yte)


def train_set(subset: int | None = None, seed: int = 0) -> Any:
    """The training ``TensorDataset`` of :func:`digits` (``examples/cnn_digits.toml``
    names it: ``dataset = "cnn_digits:train_set"``)."""
    return digits(subset, seed)[0]


def test_set(seed: int = 0) -> Any:
    """The held-out ``TensorDataset`` of :func:`digits` (``test = "cnn_digits:test_set"``)."""
    return digits(None, seed)[1]


def delays(n: int, seed: int, slow: tuple[int, ...] = (2, 5), factor: float = 6.0,
           scale: float = 0.01) -> Any:
    """Per partition: scale * (1 + Exp(1)) seconds; workers ``slow`` are ``factor`` x slower."""
    base = gc.stragglers.ShiftedExponential(shift=scale, mean=scale, seed=seed)
    return gc.stragglers.PersistentSlow(base, [w for w in slow if w < n], factor)


def schemes(n: int) -> dict[str, Any]:
    """The line-up: uncoded, FRC s=1, ErasureHead (first 3/4 of the workers), and auto."""
    out = {"uncoded": gc.schemes.uncoded(n),
           "FRC s=1": gc.schemes.exact(gc.codes.fractional_repetition(n=n, s=1)),
           "ErasureHead": gc.schemes.erasurehead(n, 2, max(1, (3 * n) // 4))}
    auto = getattr(gc.schemes, "auto", None)
    if auto is not None:
        try:
            out["auto"] = auto(n)
        except (TypeError, ValueError) as exc:          # an autopilot with other arguments
            print(f"note: gc.schemes.auto(n={n}) could not be built ({exc}); skipped")
    return out


def time_to(rows: list[dict], target: float, clock: str = "sim_time") -> float:
    """First ``clock`` value at which the test accuracy reached ``target`` (inf: never)."""
    for r in rows:
        acc = r.get("accuracy", math.nan)
        if not math.isnan(acc) and acc >= target:
            return float(r[clock])
    return math.inf


def train_one(scheme: Any, backend: str, *, rounds: int, workers: int, batch_size: int,
              lr: float, subset: int | None, seed: int, eval_every: int,
              stop_at: float | None = TARGET, backend_options: dict | None = None) -> Any:
    """Train a fresh CNN (same initial weights for every scheme) with Adam; returns the
    gradcode History. Stops at ``stop_at`` test accuracy (None: runs every round)."""
    torch.manual_seed(seed)
    model = digits_cnn()
    train_set, test_set = digits(subset, seed)
    prob = gc.problems.torch_problem(model, nn.functional.cross_entropy, dataset=train_set,
                                     k=scheme.code.k, batch_size=batch_size, batch_seed=seed,
                                     test=test_set, accuracy=True, partition_seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def stop(row: dict) -> bool:
        return stop_at is not None and row.get("accuracy", 0.0) >= stop_at

    return gc.training.train(prob, scheme, rounds=rounds, backend=backend,
                             delays=delays(workers, seed), optimizer=opt, lr=None, seed=seed,
                             eval_every=eval_every, callback=stop, grad_error=False,
                             backend_options=backend_options)


def plot(results: dict[str, Any], path: str, backend: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, hist), style in zip(results.items(), ["-", "--", ":", "-."] * 2):
        pts = [(r["sim_time"], r["accuracy"]) for r in hist.rows
               if not math.isnan(r.get("accuracy", math.nan))]
        ax.plot(*zip(*pts), style, label=name, lw=1.5)
    ax.axhline(TARGET, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training time (s, sum of round times)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.5, 1.0)
    ax.set_title(f"CNN on digits, 8 workers, 2 slow, Adam ({backend})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("ray", "local", "simulated"), default="ray")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=400, help="at most this many rounds")
    ap.add_argument("--batch-size", type=int, default=16, help="per partition and round")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--subset", type=int, default=None, help="training images to use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--out", default="gradcode-results/cnn_digits")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.backend == "ray":
        import ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            ray.init(address="local", num_cpus=args.workers, include_dashboard=False,
                     log_to_driver=False)
    results, summary = {}, {}
    for name, scheme in schemes(args.workers).items():
        t0 = time.perf_counter()
        hist = train_one(scheme, args.backend, rounds=args.rounds, workers=args.workers,
                         batch_size=args.batch_size, lr=args.lr, subset=args.subset,
                         seed=args.seed, eval_every=args.eval_every)
        results[name] = hist
        last = hist.rows[-1]
        summary[name] = {"time_to_95": time_to(hist.rows, TARGET), "rounds": len(hist.rows),
                         "final_accuracy": last.get("accuracy"), "final_loss": last["loss"],
                         "wall_s": time.perf_counter() - t0}
        print(f"{name:12s} time to {TARGET:.0%}: {summary[name]['time_to_95']:.2f} s "
              f"({len(hist.rows)} rounds, accuracy {last.get('accuracy', math.nan):.3f}, "
              f"{summary[name]['wall_s']:.1f} s wall)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cnn_digits.json"), "w") as fh:
        json.dump({"backend": args.backend, "args": vars(args), "schemes": summary}, fh,
                  indent=2, default=str)
    if not args.no_plot:
        plot(results, os.path.join(args.out, "cnn_digits.png"), args.backend)
    return {"results": results, "summary": summary}


if __name__ == "__main__":
    main()
