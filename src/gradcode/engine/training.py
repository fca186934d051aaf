"""Coded distributed training: the master loop, schemes, wait policies, checkpoints.

One round t (docs/theory.md, T33):

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

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends import get_backend
from ..backends.base import WorkersLostError
from ..backends.tasks import wire_dtype
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
from .rounds import RoundResult, decode_round, run_round
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


def _switch_scheme(host: Any, problem: Any, new: Scheme, model: DelayModel, t: int,
                   n: int) -> Scheme:
    """Hook for adaptive codes: continue with ``new`` after round ``t``; the host
    re-assigns the partitions (and the new scheme's worker task)."""
    new.check(k=int(problem.k), n=n)
    model.validate(new.code.n)
    log.info("round %d: switching to scheme %s", t, new.name)
    host.reassign(problem, new.code, new.task)
    return new


def coded_round(backend: Any, scheme: Scheme, round: int, params: np.ndarray, *,
                round_timeout: float | None = None) -> RoundResult:
    """One round of ``scheme``'s protocol on a started host (see
    :func:`gradcode.engine.rounds.run_round`).

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
    protocol = scheme.round_protocol(backend, round, params)
    return run_round(backend, protocol, round, params, round_timeout=round_timeout)


_NONFINITE = ("stop", "continue")


def _check_train_args(problem: Any, scheme: Any, rounds: Any, checkpoint_every: Any,
                      eval_every: Any, target_loss: Any, seed: Any, grad_error: Any,
                      callback: Any, checkpoint: Any, resume: Any,
                      on_nonfinite: Any) -> tuple[int, int, int, float | None, int]:
    """Validate train's arguments (before any worker starts)."""
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
    if on_nonfinite not in _NONFINITE:
        raise ValueError(f"train: on_nonfinite must be 'stop' or 'continue', got "
                         f"{on_nonfinite!r}")
    return rounds, checkpoint_every, eval_every, target_loss, seed


def _round_timeout_arg(value: Any, host: Any) -> float | None:
    if isinstance(value, str) and value == "backend":
        return host.round_timeout
    if value is None:
        return None
    return check_real("train", "round_timeout", value, low=0.0, low_open=True)


def _learning_rate(problem: Any, lr: Any, optimizer: Any) -> float | None:
    if lr == "auto":
        L = problem.lipschitz() if hasattr(problem, "lipschitz") else None
        if L is None or not L > 0:
            if isinstance(optimizer, str):
                raise ValueError(f"train: lr='auto' needs problem.lipschitz(); "
                                 f"{getattr(problem, 'name', problem)} has none, pass lr=")
            return None
        return 1.0 / L
    if lr is None:
        return None
    return check_real("train", "lr", lr, low=0.0, low_open=True)


class _Run:
    """State of one training run: the loop of :func:`train`, split by phase."""

    def __init__(self, problem: Any, scheme: Scheme, host: Any, model: DelayModel,
                 opt: Optimizer, fingerprint: dict, settings: dict) -> None:
        self.problem, self.scheme, self.host, self.model = problem, scheme, host, model
        self.opt, self.fingerprint, self.cfg = opt, fingerprint, settings
        init = np.asarray(problem.init_params())
        # the model's dtype: float32 for torch/JAX models (parameters travel, and the
        # optimiser steps, in float32), float64 for everything else
        self.dtype = wire_dtype(init.dtype)
        self.params = np.array(init, dtype=self.dtype)
        if self.params.shape != (int(problem.dim),):
            raise ValueError(f"train: problem.init_params() has shape {self.params.shape}, "
                             f"expected ({problem.dim},)")
        self.history = History(meta={**fingerprint, "backend": host.name,
                                     "initial_loss": float(problem.loss(self.params)),
                                     "rounds": settings["rounds"]})
        opt.reset(self.params)
        self.start_round, self.sim_time, self.wall_offset = 0, 0.0, 0.0
        self.fallbacks = 0
        self.nonfinite_warned = False

    def resume(self, checkpoint: Any) -> None:
        """Continue from ``checkpoint`` when it exists (same run, checked)."""
        ck = load_checkpoint(checkpoint)
        if ck is None:
            return
        diff = {k: (ck["fingerprint"].get(k), v) for k, v in self.fingerprint.items()
                if _jsonable(ck["fingerprint"].get(k)) != _jsonable(v)}
        if diff:
            raise ValueError(f"train: the checkpoint in {os.fspath(checkpoint)!r} belongs to "
                             f"a different run; mismatches (saved, now): {diff}")
        self.params = np.array(ck["params"], dtype=self.dtype)
        self.opt.load_state(ck["optimizer_arrays"], ck["optimizer"])
        self.history = ck["history"]
        self.history.meta["rounds"] = self.cfg["rounds"]
        self.start_round = ck["round"] + 1
        last = self.history.final
        self.sim_time = float(last.get("sim_time", 0.0)) if last else 0.0
        self.wall_offset = float(last.get("wall_time", 0.0)) if last else 0.0
        self.fallbacks = int(self.history.meta.get("fallback_rounds", 0))
        if "scheme_state" in ck["extra"]:          # self-driving schemes: what they learned
            self.scheme = self.scheme.restore(ck["extra"]["scheme_state"])
            self.scheme.check(k=int(self.problem.k), n=self.scheme.code.n)
        log.info("resuming %s at round %d", self.scheme.name, self.start_round)

    def checkpoint(self, done_round: int) -> None:
        path = self.cfg["checkpoint"]
        if path is not None and done_round >= 0:
            state = self.scheme.checkpoint_state()
            save_checkpoint(path, round=done_round, params=self.params, optimizer=self.opt,
                            history=self.history, fingerprint=self.fingerprint,
                            extra=None if state is None else {"scheme_state": state})

    def step(self, t: int) -> dict:
        """One round: run the protocol, log what happened, step, return the row."""
        res = coded_round(self.host, self.scheme, t, self.params,
                          round_timeout=self.cfg["round_timeout"])
        self._report(t, res)
        self.sim_time += res.round_time
        g_hat = res.g_hat
        rel = self._grad_error(res.info, g_hat)
        if res.responders:
            self.params = np.asarray(self.opt.step(self.params, g_hat, t), dtype=self.dtype)
        info = res.info
        row: dict[str, Any] = {
            "round": t, "wall_time": self.wall_offset + time.perf_counter() - self.t_start,
            "sim_time": self.sim_time, "round_time": res.round_time,
            "n_responders": len(res.responders), "responders": res.responders,
            "error": float(res.decoding.error) if res.decoding is not None else
            float(self.scheme.code.k),
            "grad_rel_error": rel, "decoder": res.decoder, "fallback": bool(res.fallback),
            "dropped": [f"{w}: {r}" for w, r in info.dropped],
            "dead": int(np.count_nonzero(~self.host.alive)),
            "moved_bytes": 0.0, "move_time": 0.0,
        }
        row.update(res.extra)                       # protocol-specific columns, if any
        row.update(self._metrics(t))
        return row

    def _report(self, t: int, res: RoundResult) -> None:
        """Log the round's drops, deaths, fallbacks and empty rounds (true lines only;
        after a non-finite warning with on_nonfinite='continue' the per-round lines
        go to DEBUG so that a diverged run does not flood the log)."""
        info = res.info
        say = log.debug if self.nonfinite_warned else log.warning
        if info.dropped:
            say("round %d: dropped %d result(s), treated as stragglers: %s", t,
                len(info.dropped), "; ".join(f"worker {w}: {r}" for w, r in info.dropped))
        for w in info.dead:
            log.warning("round %d: worker %d is dead; it is a permanent straggler", t, w)
        if res.fallback:
            self.fallbacks += 1
            self.history.meta["fallback_rounds"] = self.fallbacks
            if self.fallbacks == 1:
                log.warning("round %d: the scheme's decoder could not decode (more workers "
                            "lost than it tolerates); decoded with %s instead. Later "
                            "fallbacks are not logged: see the history's 'fallback' column",
                            t, res.decoder)
        if res.ended == "timeout":
            log.warning("round %d: round_timeout=%g s passed; the round ended with %d "
                        "responders", t, self.cfg["round_timeout"], len(res.responders))
        if res.responders:
            return
        if not np.any(self.host.alive):
            ck = self.cfg["checkpoint"]
            raise WorkersLostError(
                f"train: all {self.scheme.code.n} workers are dead at round {t}; nothing can "
                f"be computed" + (f" (last checkpoint: round {self.last_done} in "
                                  f"{os.fspath(ck)!r})" if ck else ""))
        if res.ended == "deadline":
            say("round %d: no worker answered within the deadline (%g s); no step",
                t, self.scheme.wait.deadline)
        elif res.ended != "timeout":
            say("round %d: nothing could be decoded (%d live workers); no step", t,
                int(np.count_nonzero(self.host.alive)))

    def _grad_error(self, info: Any, g_hat: np.ndarray) -> float:
        mode = self.cfg["grad_error"]
        if not (mode is True or (mode == "auto" and info.true_gradient is not None)):
            return math.nan
        g = info.true_gradient if info.true_gradient is not None else \
            np.asarray(self.problem.full_gradient(self.params))
        gn = float(np.linalg.norm(g))
        return float(np.linalg.norm(g_hat - g)) / gn if gn > 0 else float(np.linalg.norm(g_hat))

    def _metrics(self, t: int) -> dict:
        """The problem's metrics every eval_every rounds counted from round 0 (and at the
        last round), NaN loss between."""
        if t % self.cfg["eval_every"] and t != self.cfg["rounds"] - 1:
            return {"loss": math.nan}
        problem = self.problem
        metrics = problem.metrics(self.params) if hasattr(problem, "metrics") else \
            {"loss": problem.loss(self.params)}
        return {k: float(v) for k, v in metrics.items()}

    def nonfinite(self, t: int, row: dict) -> bool:
        """True when training must stop: the loss or the parameters are not finite."""
        evaluated = t % self.cfg["eval_every"] == 0 or t == self.cfg["rounds"] - 1
        finite_params = bool(np.all(np.isfinite(self.params)))
        if finite_params and not (evaluated and not math.isfinite(row["loss"])):
            return False
        what = "the loss" if finite_params else "the parameters"
        if self.cfg["on_nonfinite"] == "stop":
            msg = (f"round {t}: {what} became non-finite (NaN or inf); training stopped "
                   f"(lower the learning rate, or pass on_nonfinite='continue')")
            log.error("%s", msg)
            self.history.meta["stopped"] = msg
            return True
        if not self.nonfinite_warned:
            self.nonfinite_warned = True
            log.warning("round %d: %s became non-finite (NaN or inf); continuing as "
                        "on_nonfinite='continue' asks (logged once)", t, what)
            self.history.meta["nonfinite_from_round"] = t
        return False

    def loop(self, callback: Any, target_loss: float | None) -> None:
        """Rounds start_round..rounds-1, with callbacks, checkpoints and stop rules."""
        cfg, n = self.cfg, self.scheme.code.n
        self.t_start = time.perf_counter()
        self.last_done = saved = self.start_round - 1
        try:
            for t in range(self.start_round, cfg["rounds"]):
                row = self.step(t)
                self.history.append(row)
                self.last_done = t
                reply = callback(row) if callback is not None else None
                if reply is None:                       # self-driving schemes (auto)
                    reply = self.scheme.after_round(row, self.history)
                stop = reply is True or self.nonfinite(t, row)
                if isinstance(reply, Scheme) and reply is not self.scheme:
                    self.scheme = _switch_scheme(self.host, self.problem, reply, self.model,
                                                 t, n)
                    # shipping the data for the switch happens on the clock, before round
                    # t + 1: sim_time of the later rows includes it
                    self.sim_time += float(row.get("move_time") or 0.0)
                if target_loss is not None and row["loss"] <= target_loss:
                    stop = True
                if (t + 1) % cfg["checkpoint_every"] == 0 or stop or t == cfg["rounds"] - 1:
                    self.checkpoint(t)
                    saved = t
                if stop:
                    break
        except BaseException:
            if saved != self.last_done:
                try:
                    self.checkpoint(self.last_done)
                except Exception:
                    log.exception("could not write the checkpoint after a failure")
            raise


def train(problem: Any, scheme: Scheme, *, rounds: int, backend: Any = "simulated",
          delays: Any = None, optimizer: Any = "gd", lr: float | str | None = "auto",
          seed: int = 0, checkpoint: str | os.PathLike | None = None, resume: bool = False,
          target_loss: float | None = None, callback: Callable[[dict], Any] | None = None,
          checkpoint_every: int = 10, eval_every: int = 1, grad_error: bool | str = "auto",
          backend_options: dict | None = None, optimizer_options: dict | None = None,
          round_timeout: float | str | None = "backend",
          on_nonfinite: str = "stop") -> History:
    """Run coded gradient descent for ``rounds`` rounds and return the :class:`History`.

    Every round runs the scheme's round protocol on the backend
    (:func:`gradcode.engine.rounds.run_round`): the plain coded round for codes with a
    wait policy and a decoder, the nested protocol for nested codes.

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
        eval_every: evaluate the problem's metrics at the rounds that are multiples of
            this (counted from round 0, also after a resume) and at the last round; the
            loss is NaN in between.
        grad_error: log ||g_hat - g|| / ||g||: True, False, or ``"auto"`` (only when the
            backend has g for free, i.e. simulated).
        backend_options: keyword options for a backend given by name.
        optimizer_options: extra options of a built-in optimiser (e.g. ``beta``).
        round_timeout: the longest a round may last, in seconds on the backend's clock,
            whatever the wait policy (a live but stuck worker cannot stall training);
            ``"backend"`` (default) uses the backend's own ``round_timeout`` (300 s on
            local and Ray, none on the virtual clock); None: no limit.
        on_nonfinite: ``"stop"`` (default): stop, with one error line and
            ``history.meta["stopped"]``, when the loss or the parameters become NaN/inf;
            ``"continue"``: go on (one warning line).

    Returns:
        :class:`History` with one row per round and ``meta`` describing the run. The
        ``fallback`` column is True in rounds whose decoder fell back (an exact scheme
        that lost more workers than it tolerates); ``meta["fallback_rounds"]`` counts
        them and the first one is logged once. ``moved_bytes`` and ``move_time`` are the
        data a self-driving scheme shipped after that round to switch plans and the
        seconds charged for it (0 otherwise); ``move_time`` is on the clock: ``sim_time``
        of every later row includes it. A scheme's :meth:`Scheme.checkpoint_state` is
        saved with each checkpoint and restored on ``resume``.

    Raises:
        ValueError / TypeError: bad arguments, a code that does not match the problem's
            partitions, delays that do not fit n workers or are negative; all raised
            before any worker starts.
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
    rounds, checkpoint_every, eval_every, target_loss, seed = _check_train_args(
        problem, scheme, rounds, checkpoint_every, eval_every, target_loss, seed, grad_error,
        callback, checkpoint, resume, on_nonfinite)
    code = scheme.code
    scheme.check(k=int(problem.k))
    model = _delays_arg(delays, seed)
    model.validate(code.n)
    host = get_backend(backend, **(backend_options or {}))
    lr_value = _learning_rate(problem, lr, optimizer)
    opt = make_optimizer(optimizer, lr_value, **(optimizer_options or {}))
    fingerprint = {
        "scheme": scheme.name, "code": code.name, "n": code.n, "k": code.k,
        "problem": getattr(problem, "name", type(problem).__name__), "dim": int(problem.dim),
        "optimizer": opt.name if isinstance(optimizer, str) else str(getattr(
            optimizer, "__name__", type(optimizer).__name__)),
        "lr": lr_value, "delays": repr(model), "seed": seed,
    }
    settings = {"rounds": rounds, "checkpoint_every": checkpoint_every,
                "eval_every": eval_every, "grad_error": grad_error, "checkpoint": checkpoint,
                "round_timeout": _round_timeout_arg(round_timeout, host),
                "on_nonfinite": on_nonfinite}
    run = _Run(problem, scheme, host, model, opt, fingerprint, settings)
    if resume:
        run.resume(checkpoint)
    if run.start_round >= rounds:
        return run.history
    code = run.scheme.code                      # a resumed self-driving scheme may differ
    # negative or malformed delays fail here, before any worker starts
    check_delays(model, model.sample(run.start_round, code.row_support.astype(np.float64)),
                 code.n)
    host.start(problem, code, delays=model, task=run.scheme.task)
    try:
        run.loop(callback, target_loss)
    finally:
        host.close()
    return run.history
