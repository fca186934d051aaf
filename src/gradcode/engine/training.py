"""Coded distributed training: the master loop, schemes, wait policies, checkpoints.

One round t (DESIGN.md, "The flow of one training round"):

1. the backend broadcasts w_t; worker i computes f_i = sum_j B[i, j] g_j(w_t) (plus its
   injected delay);
2. arrivals stream in; the scheme's wait policy says when to stop waiting;
3. the decoder turns the responders F into weights a (zero off F);
   g_hat = sum_{i in F} a_i f_i, alpha = B^T a, error = ||alpha - 1||^2;
4. the optimiser steps with g_hat; the problem's metrics are logged.

The estimate is unbiased/exact only as far as the decoder makes it: with exact decoding
g_hat = g; with ErasureHead's decoding E[g_hat] = (1 - P_erase) g.

Example:
    >>> import gradcode as gc
    >>> X, y = gc.data.synthetic_classification(400, 5, seed=0)
    >>> prob = gc.problems.logistic_regression(X, y, k=8)
    >>> scheme = gc.training.exact(gc.codes.fractional_repetition(n=8, s=1), decoder="frc_group")
    >>> hist = gc.training.train(prob, scheme, rounds=20,
    ...                          delays=gc.stragglers.ShiftedExponential(1.0, 0.5, seed=0))
    >>> bool(hist.final["loss"] < hist.meta["initial_loss"]), hist.final["error"]
    (True, 0.0)

References:
    [1] R. Tandon, Q. Lei, A. Dimakis, N. Karampatziakis, "Gradient coding", arXiv:1612.03301.
    [2] H. Wang, Z. Charles, D. Papailiopoulos, "ErasureHead", arXiv:1901.09671, 2019.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends import get_backend
from ..backends.base import WorkersLostError
from ..codes.catalogue import resolve
from ..core.errors import NotDecodableError
from ..core.validate import check_int, check_real
from ..models.optimizers import Optimizer, make_optimizer
from ..models.stragglers import (
    DelayModel,
    Exponential,
    Pareto,
    ShiftedExponential,
    as_delay_model,
    check_delays,
)
from .checkpoints import load_checkpoint, save_checkpoint
from .history import History, _jsonable
from .schemes import Scheme, approximate, erasurehead, exact, ignore_stragglers, uncoded
from .wait import WaitPolicy, deadline, first, until_decodable, until_error, wait_all
from .wait import erasurehead as erasurehead_wait

__all__ = [
    "History",
    "RoundResult",
    "Scheme",
    "WaitPolicy",
    "WorkersLostError",
    "approximate",
    "coded_round",
    "deadline",
    "decode_round",
    "erasurehead",
    "erasurehead_wait",
    "exact",
    "first",
    "ignore_stragglers",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "uncoded",
    "until_decodable",
    "until_error",
    "wait_all",
]

log = logging.getLogger("gradcode.training")

_NAMED_DELAYS = {"exponential": Exponential, "shifted_exponential": ShiftedExponential,
                 "pareto": Pareto}


# --------------------------------------------------------------------------- helpers
def _delays_arg(delays: Any, seed: int) -> DelayModel:
    if isinstance(delays, str):
        if delays not in _NAMED_DELAYS:
            raise ValueError(f"train: delays={delays!r} is not a known model name; valid: "
                             f"{', '.join(_NAMED_DELAYS)} (or pass a gradcode.stragglers model)")
        return _NAMED_DELAYS[delays](seed=seed)
    return as_delay_model(delays)


def _check_problem(problem: Any) -> None:
    for attr in ("dim", "k", "part", "init_params", "loss", "partition_gradients"):
        if not hasattr(problem, attr):
            raise TypeError(f"train: problem must be a gradcode.problems Problem (missing "
                            f".{attr}), got {type(problem).__name__}")


def _accumulate(total: np.ndarray, weight: Any, value: np.ndarray) -> None:
    """total += weight * value, in place (BLAS axpy for real float64 vectors: no
    temporary of the model's size per responder)."""
    value = np.asarray(value)
    if (total.dtype == np.float64 and value.dtype == np.float64 and value.ndim == 1
            and value.shape == total.shape and not np.iscomplexobj(weight)):
        from scipy.linalg.blas import daxpy

        daxpy(value, total, a=float(weight))
    else:
        total += weight * value


def decode_round(scheme: Scheme, responders: list[int],
                 values: dict[int, np.ndarray], dim: int) -> tuple[np.ndarray, Any, str]:
    """Decode one round: returns (g_hat, Decoding, name of the decoder used).

    ``responders`` are in arrival order (ErasureHead's decoder uses it). When the scheme's
    decoder raises :class:`NotDecodableError` its ``fallback`` decoder is used instead.
    """
    code = scheme.code
    order = np.asarray(responders, dtype=np.int64)
    used = scheme.decoder if isinstance(scheme.decoder, str) else \
        getattr(scheme.decoder, "__name__", "custom")
    try:
        dec = scheme.decode_fn(code, order)
    except NotDecodableError:
        if scheme.fallback is None:
            raise
        dec = resolve(scheme.fallback)(code, order)
        used = scheme.fallback if isinstance(scheme.fallback, str) else \
            getattr(scheme.fallback, "__name__", "custom")
    g_hat = np.zeros(dim, dtype=np.result_type(dec.weights.dtype, np.float64))
    for i in order[dec.weights[order] != 0]:
        _accumulate(g_hat, dec.weights[i], values[int(i)])
    if np.iscomplexobj(g_hat):
        g_hat = g_hat.real
    return np.asarray(g_hat, dtype=np.float64), dec, used


def _switch_scheme(be: Any, problem: Any, new: Scheme, model: DelayModel, t: int,
                   n: int, old: Scheme | None = None) -> Scheme:
    """Hook for adaptive codes: continue with ``new`` after round ``t``.

    The backend re-assigns the partitions: ``be.reassign(problem, code)`` when it has one,
    else it is closed and started again with the new code (workers keep nothing).
    """
    new.check(k=int(problem.k), n=n)
    model.validate(new.code.n)
    log.info("round %d: switching to scheme %s", t, new.name)
    for s in (new, old):                 # nested codes: their own round and worker protocol
        if s is not None and getattr(s, "run_round", None) is not None:
            raise ValueError(f"train: the callback cannot switch from or to {s.name!r} (a "
                             f"scheme with its own round protocol); start a new run instead")
    reassign = getattr(be, "reassign", None)
    if callable(reassign):
        reassign(problem, new.code)
    else:
        be.close()
        be.start(problem, new.code, delays=model)
    return new


@dataclass
class RoundResult:
    """Outcome of one coded round (see :func:`coded_round`).

    Attributes:
        g_hat: the decoded gradient estimate (zeros when nobody answered).
        decoding: the :class:`gradcode.Decoding` (None when nobody answered).
        decoder: name of the decoder actually used (the fallback after NotDecodableError).
        responders: workers used, in arrival order.
        round_time: when the master stopped waiting (backend clock, seconds).
        info: the backend's :class:`gradcode.backends.RoundInfo` for the round.
        extra: scheme-specific history columns (e.g. the nested codes' ``nested_level``,
            ``nested_extra_messages``; see :mod:`gradcode.protocols.nested_scheme`); empty
            otherwise.
    """

    g_hat: np.ndarray
    decoding: Any
    decoder: str
    responders: list[int]
    round_time: float
    info: Any
    extra: dict = field(default_factory=dict)


def coded_round(backend: Any, scheme: Scheme, round: int,
                params: np.ndarray) -> RoundResult:
    """One round of the generic master loop on a started backend.

    Streams the backend's arrivals into the scheme's wait policy until it is satisfied
    (or the stream ends: deadline, or no live worker pending), cancels the rest of the
    round, and decodes g_hat = sum_i a_i f_i from the responders (arrival order).

    Example:
        >>> import numpy as np, gradcode as gc
        >>> X, y = gc.data.synthetic_regression(40, 3, seed=0)
        >>> prob = gc.problems.least_squares(X, y, k=4)
        >>> scheme = gc.training.exact(gc.codes.fractional_repetition(n=4, s=1))
        >>> be = gc.backends.SimulatedBackend()
        >>> be.start(prob, scheme.code, delays=gc.stragglers.Exponential(1.0, seed=0))
        >>> res = gc.training.coded_round(be, scheme, 0, np.zeros(3))
        >>> bool(np.allclose(res.g_hat, prob.full_gradient(np.zeros(3)), rtol=1e-12))
        True
    """
    code = scheme.code
    state = scheme.wait.start(code, scheme.decoder)
    values: dict[int, np.ndarray] = {}
    stop_time: float | None = None
    stream = backend.run_round(round, params, state)
    try:
        for arr in stream:
            if arr.kind != "result":
                continue
            values[arr.worker] = arr.value
            if state.add(arr.worker, arr.time):
                stop_time = float(arr.time)
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    backend.stop_round()
    info = backend.round_info
    round_time = stop_time if stop_time is not None else float(info.end_time)
    responders = list(state.responders)
    dim = int(np.asarray(params).size)
    if not responders:
        name = scheme.decoder if isinstance(scheme.decoder, str) else "custom"
        return RoundResult(np.zeros(dim), None, name, responders, round_time, info)
    g_hat, dec, used = decode_round(scheme, responders, values, dim)
    return RoundResult(g_hat, dec, used, responders, round_time, info)


# --------------------------------------------------------------------------- train
def train(problem: Any, scheme: Scheme, *, rounds: int, backend: Any = "simulated",
          delays: Any = None, optimizer: Any = "gd", lr: float | str | None = "auto",
          seed: int = 0, checkpoint: str | os.PathLike | None = None, resume: bool = False,
          target_loss: float | None = None, callback: Callable[[dict], Any] | None = None,
          checkpoint_every: int = 10, eval_every: int = 1, grad_error: bool | str = "auto",
          backend_options: dict | None = None, optimizer_options: dict | None = None) -> History:
    """Run coded gradient descent for ``rounds`` rounds and return the :class:`History`.

    Args:
        problem: a :mod:`gradcode.problems` problem split into k = scheme.code.k parts.
        scheme: a :class:`Scheme` (code + decoder + wait policy), e.g. ``uncoded(n)``.
        rounds: number of rounds (>= 0); with ``resume`` the total, including resumed ones.
        backend: ``"simulated"`` (virtual clock), ``"local"`` (one process per worker),
            ``"ray"``, or a backend instance. ``train`` starts and closes it.
        delays: a :mod:`gradcode.stragglers` model, a name (``"exponential"``,
            ``"shifted_exponential"``, ``"pareto"``: built with ``seed``), or None (no delay).
        optimizer: ``"gd"``, ``"nesterov"`` (the papers' accelerated update),
            ``"momentum"``, a ``torch.optim`` class/factory, an optax transformation, or a
            :class:`gradcode.optimizers.Optimizer`.
        lr: learning rate; ``"auto"`` = 1 / L from ``problem.lipschitz()``.
        seed: recorded with the run and used for named delay models.
        checkpoint: a directory for ``state.json`` + ``arrays.npz``; written every
            ``checkpoint_every`` rounds, at the end, and when training fails.
        resume: continue from the checkpoint when it exists (must be the same run: scheme,
            problem, optimizer, delays and seed are checked).
        target_loss: stop as soon as the loss is <= this value.
        callback: called with each row (a dict); returning True stops training;
            returning a :class:`Scheme` (same n and k) switches to it from the next round
            on, the backend re-assigning the partitions (adaptive codes, e.g.
            :class:`gradcode.estimation.AdaptiveScheme`).
        eval_every: evaluate the problem's metrics every this many rounds (NaN between).
        grad_error: log ||g_hat - g|| / ||g||: True, False, or ``"auto"`` (only when the
            backend has g for free, i.e. simulated).
        backend_options: keyword options for a backend given by name.
        optimizer_options: extra options of a built-in optimiser (e.g. ``beta``).

    Returns:
        :class:`History` with one row per round and ``meta`` describing the run.

    Raises:
        ValueError / TypeError: bad arguments, a code that does not match the problem's
            partitions or the backend's workers, delays that do not fit n workers or are
            negative; all raised before any worker starts.
        WorkersLostError: every worker died (the last checkpoint stays on disk, updated to
            the last completed round).

    Example:
        >>> import gradcode as gc
        >>> X, y = gc.data.synthetic_regression(200, 4, seed=0)
        >>> prob = gc.problems.least_squares(X, y, k=4)
        >>> h = gc.training.train(prob, gc.training.uncoded(4), rounds=50)
        >>> bool(h.final["loss"] < 0.01)
        True
    """
    # ---------------------------------------------------------------- validate (no workers yet)
    _check_problem(problem)
    if not isinstance(scheme, Scheme):
        raise TypeError(f"train: scheme must be a gradcode.training.Scheme, got "
                        f"{type(scheme).__name__}")
    rounds = check_int("train", "rounds", rounds, low=0)
    checkpoint_every = check_int("train", "checkpoint_every", checkpoint_every, low=1)
    eval_every = check_int("train", "eval_every", eval_every, low=1)
    if target_loss is not None:
        target_loss = check_real("train", "target_loss", target_loss)
    seed = check_int("train", "seed", seed, low=0)
    if not (grad_error is True or grad_error is False or grad_error == "auto"):
        raise ValueError(f"train: grad_error must be True, False or 'auto', got {grad_error!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"train: callback must be callable or None, got {callback!r} "
                        f"({type(callback).__name__})")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"train: checkpoint must be a directory path (str or os.PathLike) or "
                        f"None, got {checkpoint!r} ({type(checkpoint).__name__})")
    if not isinstance(resume, bool):
        raise TypeError(f"train: resume must be a bool, got {resume!r} "
                        f"({type(resume).__name__})")
    if resume and checkpoint is None:
        raise ValueError("train: resume=True needs a checkpoint directory")
    code = scheme.code
    scheme.check(k=int(problem.k))
    model = _delays_arg(delays, seed)
    model.validate(code.n)
    be = get_backend(backend, **(backend_options or {}))
    backend_n = getattr(be, "n_workers", None)
    if backend_n is not None:
        scheme.check(n=int(backend_n))
    if lr == "auto":
        L = problem.lipschitz() if hasattr(problem, "lipschitz") else None
        if L is None or not L > 0:
            if isinstance(optimizer, str):
                raise ValueError(f"train: lr='auto' needs problem.lipschitz(); "
                                 f"{getattr(problem, 'name', problem)} has none, pass lr=")
            lr_value: float | None = None
        else:
            lr_value = 1.0 / L
    elif lr is None:
        lr_value = None
    else:
        lr_value = check_real("train", "lr", lr, low=0.0, low_open=True)
    opt = make_optimizer(optimizer, lr_value, **(optimizer_options or {}))
    load = code.row_support.astype(np.float64)

    fingerprint = {
        "scheme": scheme.name, "code": code.name, "n": code.n, "k": code.k,
        "problem": getattr(problem, "name", type(problem).__name__), "dim": int(problem.dim),
        "optimizer": opt.name if isinstance(optimizer, str) else str(getattr(
            optimizer, "__name__", type(optimizer).__name__)),
        "lr": lr_value, "delays": repr(model), "seed": seed,
    }

    params = np.asarray(problem.init_params(), dtype=np.float64).copy()
    if params.shape != (int(problem.dim),):
        raise ValueError(f"train: problem.init_params() has shape {params.shape}, expected "
                         f"({problem.dim},)")
    initial_loss = float(problem.loss(params))
    history = History(meta={**fingerprint, "backend": getattr(be, "name", str(backend)),
                            "initial_loss": initial_loss, "rounds": rounds})
    opt.reset(params)
    start_round = 0
    sim_time = 0.0
    wall_offset = 0.0
    if resume:
        ck = load_checkpoint(checkpoint)
        if ck is not None:
            diff = {k: (ck["fingerprint"].get(k), v) for k, v in fingerprint.items()
                    if _jsonable(ck["fingerprint"].get(k)) != _jsonable(v)}
            if diff:
                raise ValueError(f"train: the checkpoint in {os.fspath(checkpoint)!r} belongs to "
                                 f"a different run; mismatches (saved, now): {diff}")
            params = np.asarray(ck["params"], dtype=np.float64).copy()
            opt.load_state(ck["optimizer_arrays"], ck["optimizer"])
            history = ck["history"]
            history.meta["rounds"] = rounds
            start_round = ck["round"] + 1
            last = history.final
            sim_time = float(last.get("sim_time", 0.0)) if last else 0.0
            wall_offset = float(last.get("wall_time", 0.0)) if last else 0.0
            log.info("resuming %s at round %d", scheme.name, start_round)
    if start_round < rounds:
        # negative or malformed delays fail here, before any worker starts
        check_delays(model, model.sample(start_round, load), code.n)

    def checkpoint_now(done_round: int) -> None:
        if checkpoint is not None and done_round >= 0:
            save_checkpoint(checkpoint, round=done_round, params=params, optimizer=opt,
                            history=history, fingerprint=fingerprint)

    if start_round >= rounds:
        return history

    # ---------------------------------------------------------------- run
    t_start = time.perf_counter()
    last_done = start_round - 1
    saved_round = last_done
    prepare = getattr(scheme, "prepare_backend", None)  # nested codes: install worker task
    if prepare is not None:
        prepare(be)
    be.start(problem, code, delays=model)
    try:
        for t in range(start_round, rounds):
            # a scheme with its own round protocol (nested codes: gradcode.protocols.nested_scheme)
            # runs the round itself; every other scheme uses the generic loop
            own_round = getattr(scheme, "run_round", None)
            res = own_round(be, t, params) if own_round is not None else \
                coded_round(be, scheme, t, params)
            info = res.info
            round_time = res.round_time
            responders = res.responders
            for w, reason in info.dropped:
                log.warning("round %d: dropped worker %d's result (%s); treated as a straggler",
                            t, w, reason)
            for w in info.dead:
                log.warning("round %d: worker %d is dead; it is a permanent straggler", t, w)
            alive = be.alive
            if not responders:
                if not np.any(alive):
                    raise WorkersLostError(
                        f"train: all {code.n} workers are dead at round {t}; nothing can be "
                        f"computed" + (f" (last checkpoint: round {last_done} in "
                                       f"{os.fspath(checkpoint)!r})" if checkpoint else ""))
                log.warning("round %d: no worker answered within the deadline; no step", t)
            sim_time += round_time
            g_hat, used = res.g_hat, res.decoder
            err = float(res.decoding.error) if res.decoding is not None else float(code.k)
            rel = math.nan
            if grad_error is True or (grad_error == "auto" and info.true_gradient is not None):
                g = info.true_gradient if info.true_gradient is not None else \
                    np.asarray(problem.full_gradient(params))
                gn = float(np.linalg.norm(g))
                rel = float(np.linalg.norm(g_hat - g)) / gn if gn > 0 else \
                    float(np.linalg.norm(g_hat))
            if responders:
                params = np.asarray(opt.step(params, g_hat, t), dtype=np.float64)
            row: dict[str, Any] = {
                "round": t,
                "wall_time": wall_offset + time.perf_counter() - t_start,
                "sim_time": sim_time, "round_time": round_time,
                "n_responders": len(responders), "responders": responders,
                "error": err, "grad_rel_error": rel, "decoder": used,
                "dropped": [f"{w}: {r}" for w, r in info.dropped],
                "dead": int(np.count_nonzero(~alive)),
            }
            if (t - start_round) % eval_every == 0 or t == rounds - 1:
                metrics = problem.metrics(params) if hasattr(problem, "metrics") else \
                    {"loss": problem.loss(params)}
            else:
                metrics = {"loss": math.nan}
            row.update(res.extra)                       # scheme-specific columns, if any
            row.update({k: float(v) for k, v in metrics.items()})
            history.append(row)
            last_done = t
            reply = callback(row) if callback is not None else None
            stop = reply is True
            if isinstance(reply, Scheme) and reply is not scheme:
                scheme = _switch_scheme(be, problem, reply, model, t, code.n, scheme)  # adaptive
                code = scheme.code
            if target_loss is not None and row["loss"] <= target_loss:
                stop = True
            if (t + 1) % checkpoint_every == 0 or stop or t == rounds - 1:
                checkpoint_now(t)
                saved_round = t
            if stop:
                break
    except BaseException:
        if saved_round != last_done:
            try:
                checkpoint_now(last_done)
            except Exception:
                log.exception("could not write the checkpoint after a failure")
        raise
    finally:
        be.close()
    return history
