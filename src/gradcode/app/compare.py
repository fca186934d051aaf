"""Run several schemes on the same problem and the SAME delay draws; gather the results.

This is what ``gradcode compare`` and ``gradcode run`` do, as a library::

    >>> import gradcode as gc                                   # doctest: +SKIP
    >>> from gradcode.compare import compare
    >>> result = compare(backend="simulated", rounds=20)        # doctest: +SKIP
    >>> result.summary["schemes"][0]["name"]                    # doctest: +SKIP
    'uncoded GD'

Fairness: every scheme trains the same model on the same data (split into the k
partitions its code needs, in the same sample order), from the same starting point, with
the same optimizer, and every worker i in round t is delayed by ``load_i * u[t, i]`` where
``u`` is drawn from ``default_rng([seed, t])`` (see :mod:`gradcode.stragglers`), so a
worker that is slow for one scheme is slow for all of them.

Failures stay per scheme: a scheme whose code, decoder or wait policy does not fit
(checked by :func:`prepare`, before any worker starts) or whose training raises (a worker
lost while starting, every worker dead, ...) is reported in the summary with
``status = "failed"`` and its ``error``; the other schemes run and are written as usual.
``ComparisonResult.failed`` maps each failed scheme to its reason.

The summary's numbers are rounded to 4 significant digits; the table shows exactly them.
The target loss is kept exact, so ``rounds_to_target`` and ``time_to_target`` can be
recomputed from history.csv and summary.json.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from rich.console import Console

from .._version import __version__
from ..codes import CATALOGUE
from ..codes.catalogue import decode
from ..core.errors import NotDecodableError
from ..engine import schemes as sch
from ..engine import wait as wt
from ..engine.autopilot import auto
from ..engine.training import train
from ..models import data, problems
from ..models import stragglers as st
from ..models.optimizers import make_optimizer
from ..protocols.nested_scheme import nested as nested_scheme
from .config import TORCH_OPTIMIZERS, ExperimentConfig, MissingExtraError, SchemeConfig, load_config
from .signals import Terminated, sigterm_received
from .torch_model import TorchData, load_torch_data, torch_optimizer

__all__ = [
    "ComparisonResult",
    "MissingExtraError",
    "Plan",
    "compare",
    "default_lineup",
    "prepare",
    "run",
    "summarize",
]

DEFAULT_S = 2          # stragglers the default exact codes tolerate
DEFAULT_D = 3          # replication of the default approximate codes


@dataclass
class Plan:
    """Everything validated and built, nothing run yet."""

    config: ExperimentConfig
    data: tuple[Any, np.ndarray, Any, np.ndarray | None] | TorchData  # X, y, X_test, y_test
    schemes: list[Any]                                       # gc.schemes.Scheme
    delays: Any                                              # gc.stragglers.DelayModel
    notes: list[str] = field(default_factory=list)      # printed before the run
    remarks: list[str] = field(default_factory=list)    # only in summary.json / report
    failed: dict[str, str] = field(default_factory=dict)  # scheme name -> why it cannot run
    _problems: dict[int, Any] = field(default_factory=dict)

    def problem(self, k: int) -> Any:
        """The training problem split into k partitions (same data, same order)."""
        if k not in self._problems:
            self._problems[k] = _make_problem(self.config, self.data, k)
        return self._problems[k]


@dataclass
class ComparisonResult:
    """What a comparison produced: one history per scheme and the summary dict."""

    summary: dict[str, Any]
    histories: dict[str, list[dict[str, Any]]]
    interrupted: bool = False
    failed: dict[str, str] = field(default_factory=dict)   # scheme name -> reason


# --------------------------------------------------------------------------- building
def _load_data(cfg: ExperimentConfig, notes: list[str]):
    pc = cfg.problem
    if pc.kind == "torch":
        return load_torch_data(pc, cfg.seed)
    if pc.path is not None:
        X, y = data.load_svmlight(pc.path, binary_labels=pc.kind == "logistic_regression")
    elif pc.dataset == "synthetic":
        if pc.kind == "least_squares":
            X, y = data.synthetic_regression(pc.samples, pc.dim, seed=cfg.seed)
        elif pc.kind == "softmax_regression":
            X, y = data.synthetic_multiclass(pc.samples, pc.dim, seed=cfg.seed)
        else:
            X, y = data.synthetic_classification(pc.samples, pc.dim, seed=cfg.seed)
    else:
        try:
            X, y = data.sklearn_dataset(pc.dataset)
        except ImportError:
            if pc.dataset_explicit:
                raise MissingExtraError(
                    f"problem.dataset={pc.dataset!r} needs scikit-learn: "
                    "pip install 'gradcode[data]'") from None
            notes.append("scikit-learn is not installed, so the built-in dataset is replaced "
                         "by a synthetic one (pip install 'gradcode[data]')")
            X, y = data.synthetic_classification(pc.samples, pc.dim, seed=cfg.seed)
    if pc.test_fraction > 0:
        X, y, Xt, yt = data.train_test_split(X, y, pc.test_fraction, seed=cfg.seed)
        return X, y, Xt, yt
    return X, y, None, None


def _samples(data: tuple | TorchData) -> int:
    """Training samples of the loaded data."""
    return data.samples if isinstance(data, TorchData) else int(data[0].shape[0])


def _make_problem(cfg: ExperimentConfig, d: tuple | TorchData, k: int):
    if isinstance(d, TorchData):
        pc = cfg.problem
        return d.problem(k, batch_size=pc.batch_size, seed=cfg.seed, l2=pc.l2,
                         accuracy=pc.accuracy)
    X, y, Xt, yt = d
    test = None if Xt is None else (Xt, yt)
    build = {"logistic_regression": problems.logistic_regression,
             "least_squares": problems.least_squares,
             "softmax_regression": problems.softmax_regression}[cfg.problem.kind]
    return build(X, y, k, l2=cfg.problem.l2, test=test, partition_seed=cfg.seed,
                 batch_size=cfg.problem.batch_size, batch_seed=cfg.seed)


def make_delays(cfg: ExperimentConfig):
    """The delay model of a config (seeded with the experiment seed)."""
    dc, seed = cfg.delays, cfg.seed
    base = {"none": lambda: st.NoDelay(),
            "exponential": lambda: st.Exponential(mean=dc.mean, seed=seed),
            "shifted_exponential": lambda: st.ShiftedExponential(shift=dc.shift, mean=dc.mean,
                                                                 seed=seed),
            "pareto": lambda: st.Pareto(shape=dc.shape, scale=dc.mean, seed=seed)}[dc.model]()
    if dc.slow_workers and dc.slow_factor > 1:
        base = st.PersistentSlow(base, list(dc.slow_workers), dc.slow_factor)
    if dc.fail_prob > 0:
        base = st.Failures(dc.fail_prob, base=base, seed=seed + 1)
    base.validate(cfg.workers)
    return base


def _straggle_probabilities(cfg: ExperimentConfig) -> tuple[float, ...]:
    """Per-worker straggling probabilities implied by the delay model (heterogeneous code).

    Persistently slow workers almost always miss the first n - 2 (p = 0.95); the others
    straggle with the chance that random ones fill the remaining slots (at least 0.05).
    """
    n = cfg.workers
    dc = cfg.delays
    slow = list(dc.slow_workers) if dc.slow_factor > 1 else []
    s = min(DEFAULT_S, n - 1)
    free = max(s - len(slow), 0)
    p = np.full(n, max(0.05, free / max(n - len(slow), 1)))
    p[slow] = 0.95
    return tuple(float(x) for x in np.clip(p + dc.fail_prob, 0.0, 0.99))


def _code_kwargs(entry: Any, sc: SchemeConfig, cfg: ExperimentConfig) -> dict[str, Any]:
    sig = inspect.signature(entry.constructor).parameters
    kwargs = {**entry.defaults, **sc.params}
    n = cfg.workers
    if "n" in sig and "n" not in sc.params:
        kwargs["n"] = n
    if "seed" in sig and "seed" not in sc.params:
        kwargs["seed"] = cfg.seed
    if "k" in kwargs and "k" not in sc.params and "n" in sig:
        kwargs["k"] = n
    if sc.code == "graph_scheme" and "k" not in sc.params and "graph" not in sc.params:
        d = int(sc.params.get("d", kwargs.get("d", DEFAULT_D)))
        if (2 * n) % d:
            raise ValueError(f"graph_scheme: workers={n} must equal the number of edges "
                             f"k*d/2 of a d-regular graph; 2*workers={2 * n} is not a "
                             f"multiple of d={d}")
        kwargs["k"] = 2 * n // d
    if sc.code == "heterogeneous" and "p" not in sc.params:
        kwargs["p"] = _straggle_probabilities(cfg)
        if "k" not in sc.params:
            kwargs["k"] = n
    for key in list(kwargs):
        if key not in sig:
            raise ValueError(f"params.{key}: not a parameter of {sc.code}; allowed: "
                             f"{', '.join(sig)}")
    return kwargs


def _default_r(n: int) -> int:
    return n - min(DEFAULT_S, n - 1)


def _data_bytes(data: tuple | TorchData) -> int | None:
    """Bytes of the training data (dense or sparse features and the labels; a torch
    dataset that does not lie in memory: None)."""
    if isinstance(data, TorchData):
        return data.nbytes
    X, y = data[0], data[1]
    if sp.issparse(X):
        size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    else:
        size = np.asarray(X).nbytes
    return int(size + np.asarray(y).nbytes)


def _auto_scheme(sc: SchemeConfig, cfg: ExperimentConfig, data: tuple | None) -> Any:
    """``gc.schemes.auto`` for ``code = "auto"``: it picks its own code, decoder and wait;
    ``params`` are its keyword options (e.g. ``window``, ``hysteresis``)."""
    if sc.decoder is not None or sc.wait is not None:
        raise ValueError("code='auto' chooses its own decoder and wait policy; remove "
                         "decoder/wait from this scheme")
    allowed = set(inspect.signature(auto).parameters) - {"n", "k", "seed"}
    extra = set(sc.params) - allowed
    if extra:
        raise ValueError(f"params.{min(extra)} is not an option of auto; allowed: "
                         f"{', '.join(sorted(allowed))}")
    options = dict(sc.params)
    size = None if data is None else _data_bytes(data)
    if size is not None and "partition_bytes" not in options:
        options["partition_bytes"] = size / cfg.workers
    return auto(cfg.workers, seed=cfg.seed, **options)


def build_scheme(sc: SchemeConfig, cfg: ExperimentConfig, where: str = "scheme",
                 data: tuple | None = None):
    """A :class:`gradcode.schemes.Scheme` from one scheme config (``data``: the training
    data, for the autopilot's data-movement charge).

    Raises:
        ValueError: naming ``where`` (e.g. ``schemes[2]``) and the rule broken.
    """
    n = cfg.workers
    try:
        if sc.code == "auto":
            scheme = _auto_scheme(sc, cfg, data)
            return replace(scheme, name=sc.name) if sc.name else scheme
        if sc.code == "ignore_stragglers":
            s = sc.params.get("s", min(DEFAULT_S, n - 1))
            extra = set(sc.params) - {"s"}
            if extra:
                raise ValueError(f"params.{min(extra)}: ignore_stragglers takes only s")
            base = sch.ignore_stragglers(n, s)
        elif sc.code == "erasurehead":
            extra = set(sc.params) - {"d", "w"}
            if extra:
                raise ValueError(f"params.{min(extra)}: erasurehead takes only d and w")
            d = sc.params.get("d", DEFAULT_D)
            w = sc.w or sc.params.get("w", _default_r(n))
            base = sch.erasurehead(n, d, w)
        else:
            entry = CATALOGUE[sc.code]
            code = entry(**_code_kwargs(entry, sc, cfg))
            if code.n != n:
                raise ValueError(f"the code has n={code.n} workers but workers={n}; set "
                                 f"params so that the code has {n} rows")
            decoder = sc.decoder or entry.decoder
            if sc.code == "uncoded":
                base = sch.uncoded(n)
            elif sc.code == "nested" and sc.decoder is None and sc.wait is None \
                    and nested_protocol_available(cfg.backend):
                base = nested_scheme(code)         # with its adaptive-load protocol
            elif entry.exact:
                base = sch.exact(code, decoder=decoder)
            else:
                base = sch.approximate(code, r=_default_r(n), decoder=decoder)
        name = sc.name or base.name
        _check_coverage(base.code, sc)
        if sc.decoder is None and sc.wait is None:
            return _check_decoder_fits(replace(base, name=name))  # keeps a Scheme subclass
        decoder = sc.decoder or base.decoder
        policy = base.wait
        if sc.wait is not None:
            policy = {"all": lambda: wt.wait_all(),
                      "first": lambda: wt.first(sc.r),
                      "deadline": lambda: wt.deadline(sc.deadline),
                      "until_decodable": lambda: wt.until_decodable(),
                      "until_error": lambda: wt.until_error(sc.eps),
                      "erasurehead": lambda: wt.erasurehead(sc.w or _default_r(n)),
                      }[sc.wait]()
        return _check_decoder_fits(sch.Scheme(base.code, decoder, policy, name=name))
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _check_coverage(code: Any, sc: SchemeConfig) -> None:
    """A code that leaves partitions on no worker can never recover their gradients:
    refused unless the scheme sets ``allow_uncovered = true``."""
    missing = code.uncovered
    if missing.size and not sc.allow_uncovered:
        what = "is all zeros" if missing.size == code.k else \
            f"leaves {missing.size} of {code.k} partitions on no worker (partitions " \
            f"{missing[:5].tolist()}{' ...' if missing.size > 5 else ''})"
        raise ValueError(f"the code {code.name} {what}: their gradients can never be "
                         f"recovered; set allow_uncovered = true in the scheme to run it anyway")


def _check_decoder_fits(scheme: Any) -> Any:
    """Decode once with every worker responding: a decoder that needs a structure the code
    lacks (frc_group, graph, bibd, product, unbiased on a cyclic code ...) fails here, before
    any worker starts, instead of in the first round."""
    if getattr(scheme, "run_round", None) is not None:
        return scheme                    # its own round protocol decodes per level
    try:
        decode(scheme.code, np.ones(scheme.code.n, dtype=bool), scheme.decoder)
    except (ValueError, TypeError, NotDecodableError) as exc:
        label = scheme.decoder if isinstance(scheme.decoder, str) else "custom"
        raise ValueError(f"decoder {label!r} does not fit the code {scheme.code.name}: "
                         f"{exc}") from None
    return scheme


def nested_protocol_available(backend: str) -> bool:
    """Whether nested codes can run with their adaptive protocol through ``train`` here:
    the protocol is a plug-in that every built-in backend hosts."""
    return backend in ("simulated", "local", "ray")


def _bibd_design(n: int) -> str | None:
    """A BIBD with n points and small blocks, when one of the built-in families has it."""
    for q in (2, 3, 4, 5, 7):
        if n == q * q + q + 1:
            return f"projective_plane({q})"
        if n == q * q:
            return f"affine_plane({q})"
    return None


def default_lineup(cfg: ExperimentConfig) -> list[tuple[str, SchemeConfig]]:
    """Every scheme that exists, with parameters that fit ``cfg.workers`` workers.

    Uncoded GD, ignore-stragglers, exact FRC and cyclic codes, ErasureHead, BIBD (when
    present), expander and graph codes with optimal decoding, heterogeneous and nested
    codes (when present). Approximate codes wait for the first n - 2 workers.
    """
    n = cfg.workers
    s = min(DEFAULT_S, n - 1)
    r = _default_r(n)
    lineup = [
        ("uncoded GD", SchemeConfig("uncoded")),
        (f"ignore {s} slowest", SchemeConfig("ignore_stragglers", {"s": s})),
        (f"FRC s={s}", SchemeConfig("fractional_repetition", {"s": s})),
        (f"cyclic s={s}", SchemeConfig("cyclic_repetition", {"s": s})),
        (f"ErasureHead d={s + 1}", SchemeConfig("erasurehead", {"d": s + 1, "w": r})),
    ]
    bibd = _bibd_design(n)
    if bibd is not None and "bibd" in CATALOGUE:
        lineup.append((f"BIBD {bibd}",
                       SchemeConfig("bibd", {"design": bibd}, decoder="optimal", wait="first",
                                    r=r)))
    elif "soft_bibd" in CATALOGUE:
        lineup.append((f"soft BIBD r={DEFAULT_D}",
                       SchemeConfig("soft_bibd", {"r": DEFAULT_D}, decoder="optimal",
                                    wait="first", r=r)))
    lineup += [
        (f"expander d={DEFAULT_D}",
         SchemeConfig("expander", {"d": DEFAULT_D}, decoder="optimal", wait="first", r=r)),
        (f"graph d={DEFAULT_D}",
         SchemeConfig("graph_scheme", {"d": DEFAULT_D}, wait="first", r=r)),
    ]
    if "heterogeneous" in CATALOGUE:
        # Its own decoder, "unbiased" (fixed weights 1/(1-p_i)), is unbiased only when each
        # worker answers independently with probability 1-p_i, i.e. under a deadline; the
        # first-r responders here are not such a draw, so it decodes optimally like the others.
        lineup.append(("heterogeneous", SchemeConfig("heterogeneous", decoder="optimal",
                                                     wait="first", r=r)))
    if "nested" in CATALOGUE:
        label = "nested" if nested_protocol_available(cfg.backend) else "nested (fixed)"
        lineup.append((label, SchemeConfig("nested")))
    lineup.append(("auto", SchemeConfig("auto")))    # the autopilot picks for itself
    return [(name, SchemeConfig(**{**sc.__dict__, "name": name})) for name, sc in lineup]


def prepare(cfg: ExperimentConfig) -> Plan:
    """Validate everything that can be checked without running: data, schemes, delays.

    Raises:
        ValueError / TypeError: naming the key (e.g. ``schemes[1]: ...``).
        MissingExtraError: the backend or the dataset needs an extra that is missing.
    """
    notes: list[str] = []
    if cfg.backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MissingExtraError("backend='ray' needs Ray: pip install 'gradcode[ray]'") \
                from None
    delays = make_delays(cfg)
    data = _load_data(cfg, notes)     # cheap, and bounds the sizes before any code is built
    samples = _samples(data)
    _check_optimizer(cfg)
    if cfg.workers > samples:
        raise ValueError(f"workers={cfg.workers} must be <= the {samples} training samples of "
                         f"the problem: every worker computes on at least one sample (uncoded "
                         f"GD splits the data into n partitions)")
    built = []
    failed: dict[str, str] = {}
    if cfg.schemes:
        for i, sc in enumerate(cfg.schemes):
            try:
                built.append(build_scheme(sc, cfg, cfg.scheme_key(i), data))
            except (ValueError, TypeError) as exc:
                if len(cfg.schemes) == 1:
                    raise                    # gradcode run: one line, exit 2
                failed[sc.name or f"{cfg.scheme_key(i)} ({sc.code})"] = str(exc)
    else:
        for name, sc in default_lineup(cfg):
            try:
                built.append(build_scheme(sc, cfg, name, data))
            except (ValueError, TypeError) as exc:
                notes.append(f"skipped {exc}")
    seen: dict[str, int] = {}
    for i, scheme in enumerate(built):           # unnamed twins get "#2", "#3", ...
        seen[scheme.name] = seen.get(scheme.name, 0) + 1
        if seen[scheme.name] > 1:
            built[i] = replace(scheme, name=f"{scheme.name} #{seen[scheme.name]}")
    for scheme in built:
        if scheme.decoder == "unbiased" and getattr(scheme.wait, "deadline", None) is None:
            notes.append(f"{scheme.name}: decoder 'unbiased' is unbiased only when workers "
                         f"answer independently by a deadline; with {scheme.wait.name} it is "
                         "biased (set wait = \"deadline\" or decoder = \"optimal\")")
    if not built and failed:
        first = next(iter(failed.values()))
        more = f" (and {len(failed) - 1} more failed scheme(s))" if len(failed) > 1 else ""
        raise ValueError(f"no scheme can run: {first}{more}")
    if not built:
        raise ValueError(f"workers={cfg.workers}: no scheme of the default line-up fits; "
                         f"give [[schemes]] in a config")
    remarks = []
    if any(s.code.name.startswith("nested") and type(s) is sch.Scheme for s in built):
        remarks.append("nested codes without their protocol run as fixed exact codes")
    if samples < max(s.code.k for s in built):
        raise ValueError(f"problem: {samples} training samples cannot fill "
                         f"k={max(s.code.k for s in built)} partitions")
    if not cfg.schemes:
        s = min(DEFAULT_S, cfg.workers - 1)
        remarks.append(f"approximate codes wait for the first n - {s} workers and decode "
                       "optimally (least squares)")
    remarks.append("decoding error is ||alpha - 1||^2 per round, alpha = B^T a")
    plan = Plan(cfg, data, built, delays, notes, remarks, failed)
    for scheme in built:
        plan.problem(scheme.code.k)
    return plan


def _optimizer(cfg: ExperimentConfig) -> Any:
    """``train``'s optimizer argument: a built-in name or a ``torch.optim`` class."""
    if cfg.optimizer in TORCH_OPTIMIZERS:
        return torch_optimizer(cfg.optimizer)
    return cfg.optimizer


def _check_optimizer(cfg: ExperimentConfig) -> None:
    """Build the optimiser once on a dummy vector, so that a bad option value
    (``optimizer_options``) stops the run before any worker starts."""
    if not cfg.optimizer_options:
        return
    lr = cfg.lr if isinstance(cfg.lr, float) else (
        None if cfg.optimizer in TORCH_OPTIMIZERS else 1.0)
    try:
        make_optimizer(_optimizer(cfg), lr, **cfg.optimizer_options).reset(
            np.zeros(1, dtype=np.float32))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"optimizer_options={cfg.optimizer_options!r} do not fit "
                         f"optimizer={cfg.optimizer!r}: {exc}") from None


# --------------------------------------------------------------------------- running
def _train_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    kw = {"rounds": cfg.rounds, "backend": cfg.backend, "lr": cfg.lr,
          "optimizer": _optimizer(cfg), "seed": cfg.seed}
    if cfg.optimizer_options:
        kw["optimizer_options"] = dict(cfg.optimizer_options)
    if cfg.round_timeout is not None:
        kw["round_timeout"] = None if cfg.round_timeout == "none" else cfg.round_timeout
    return kw


def reference_target(plan: Plan) -> float:
    """The loss exact GD reaches after 75% of the rounds (no stragglers, same optimizer)."""
    cfg = plan.config
    scheme = sch.uncoded(cfg.workers)
    kw = _train_kwargs(cfg)
    kw.update(backend="simulated")
    hist = train(plan.problem(cfg.workers), scheme, delays=st.NoDelay(), **kw)
    rows = _rows(hist)
    idx = max(0, math.ceil(0.75 * len(rows)) - 1)
    return float(rows[idx]["loss"])


def _rows(hist: Any) -> list[dict[str, Any]]:
    rows = hist.rows if hasattr(hist, "rows") else hist
    return [dict(r) for r in rows]


def run(plan: Plan, *, progress: bool = True, console: Any = None) -> ComparisonResult:
    """Train every scheme of the plan in turn; Ctrl-C keeps what finished (and the rows
    of the scheme that was running) and marks the result ``interrupted``."""
    cfg = plan.config
    histories: dict[str, list[dict[str, Any]]] = {}
    failed: dict[str, str] = {}
    interrupted: str | bool = False
    started = time.perf_counter()
    target = cfg.target_loss
    live = _Progress(plan, console, enabled=progress)
    try:
        with live:
            if target is None:
                try:
                    target = reference_target(plan)
                except Exception as exc:  # noqa: BLE001 - the schemes still run
                    plan.notes.append(f"no target loss: the reference run failed ({exc})")
            for scheme in plan.schemes:
                rows: list[dict[str, Any]] = []
                histories[scheme.name] = rows
                live.begin(scheme)

                def callback(row: Any, _rows=rows, _scheme=scheme) -> None:
                    _rows.append(dict(row))
                    live.update(_scheme, _rows[-1])

                try:
                    hist = train(plan.problem(scheme.code.k), scheme, delays=plan.delays,
                                 callback=callback, **_train_kwargs(cfg))
                except Exception as exc:  # noqa: BLE001 - one scheme's failure is reported
                    failed[scheme.name] = _reason(exc)   # and the others still run
                    live.fail(scheme, failed[scheme.name])
                    continue
                final = _rows(hist)
                if len(final) >= len(rows):
                    histories[scheme.name] = final
                live.end(scheme, histories[scheme.name])
    except KeyboardInterrupt as exc:          # Ctrl-C, or SIGTERM under the CLI
        interrupted = "SIGTERM" if isinstance(exc, Terminated) or sigterm_received() \
            else "SIGINT"
    elapsed = time.perf_counter() - started
    for rows in histories.values():
        _add_time(rows, cfg.backend)
    summary = summarize(plan, histories, target, elapsed=elapsed, interrupted=bool(interrupted),
                        failed=failed)
    summary["signal"] = interrupted or None
    return ComparisonResult(summary, histories, bool(interrupted), {**plan.failed, **failed})


def _reason(exc: BaseException) -> str:
    """One line: the exception type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _add_time(rows: list[dict[str, Any]], backend: str) -> None:
    """Add ``time``: the clock the comparison uses.

    simulated: the virtual clock (``sim_time``). local/ray: wall-clock seconds since the
    first round started, i.e. ``wall_time`` minus the worker start-up (which is the same
    for every scheme and not part of training); it includes waiting, decoding and the
    optimizer step.
    """
    if not rows:
        return
    if backend == "simulated":
        for r in rows:
            r["time"] = float(r.get("sim_time", 0.0))
        return
    first = rows[0]
    offset = float(first.get("wall_time", 0.0)) - float(first.get("round_time", 0.0))
    for r in rows:
        r["time"] = max(0.0, float(r.get("wall_time", 0.0)) - offset)


def _error_value(errors: list[float]) -> float | None:
    """Mean decoding error; below 1e-12 it is floating-point round-off and reported as 0."""
    if not errors:
        return None
    m = float(np.mean(errors))
    return 0.0 if m < 1e-12 else _sig(m)


def _sig(x: float | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _problem_label(cfg: ExperimentConfig) -> str:
    pc = cfg.problem
    if pc.kind == "torch":
        return f"torch model {pc.model} on {pc.dataset}"
    return f"{pc.kind} on {pc.path or pc.dataset}"


def summarize(plan: Plan, histories: dict[str, list[dict[str, Any]]], target: float | None,
              *, elapsed: float, interrupted: bool,
              failed: dict[str, str] | None = None) -> dict[str, Any]:
    """The summary dict written to summary.json (and shown as the table).

    Every scheme gets a ``status``: ``"ok"``, ``"failed"`` (with ``error``: why; the rows
    it finished are kept), or ``"interrupted"`` (the one running at Ctrl-C / SIGTERM).
    Schemes refused before the run (:attr:`Plan.failed`) are listed last, failed, 0 rounds.
    """
    failed = dict(failed or {})
    last_started = next(reversed(histories), None)
    cfg = plan.config
    by_name = {s.name: s for s in plan.schemes}
    entries = []
    for name, rows in histories.items():
        scheme = by_name[name]
        losses = [r.get("loss") for r in rows]
        # reached = at or below the target, up to float round-off (exact decoders reproduce
        # uncoded GD's losses only to ~1e-16)
        reach = next((i for i, v in enumerate(losses) if v is not None and target is not None
                      and v <= target + 1e-9 * max(abs(target), 1.0)), None)
        errors = [float(r["error"]) for r in rows if r.get("error") is not None
                  and math.isfinite(float(r["error"]))]
        last = rows[-1] if rows else {}
        acc = last.get("test_accuracy", last.get("accuracy"))
        status = "failed" if name in failed else \
            "interrupted" if interrupted and name == last_started else "ok"
        entries.append({
            "name": name,
            "status": status,
            "error": failed.get(name),
            "code": scheme.code.name,
            "decoder": scheme.decoder if isinstance(scheme.decoder, str) else "custom",
            "wait": scheme.wait.name,
            "load": scheme.code.load,
            "rounds": len(rows),
            "rounds_to_target": None if reach is None else reach + 1,
            "time_to_target": None if reach is None else _sig(rows[reach]["time"]),
            "final_loss": _sig(last.get("loss")),
            "final_accuracy": _sig(acc),
            "mean_error": _error_value(errors),
            "mean_responders": _sig(float(np.mean([r.get("n_responders", math.nan)
                                                 for r in rows]))) if rows else None,
            "total_time": _sig(last.get("time")),
        })
    for name, reason in plan.failed.items():
        entries.append({"name": name, "status": "failed", "error": reason, "code": None,
                        "decoder": None, "wait": None, "load": None, "rounds": 0,
                        "rounds_to_target": None, "time_to_target": None, "final_loss": None,
                        "final_accuracy": None, "mean_error": None, "mean_responders": None,
                        "total_time": None})
    base = next((e for e in entries if e["status"] == "ok" and e["code"].startswith("uncoded")
                 and e["wait"].startswith("wait_all")), None)
    for e in entries:
        if base and base["time_to_target"] and e["time_to_target"]:
            e["speedup"] = _sig(base["time_to_target"] / e["time_to_target"], 3)
        else:
            e["speedup"] = None
    clock = ("simulated seconds (virtual clock)" if cfg.backend == "simulated" else
             "wall-clock seconds since the first round started (worker start-up excluded)")
    return {
        "title": f"gradcode {cfg.name}: {_problem_label(cfg)}, n={cfg.workers}, "
                 f"{cfg.backend}",
        "version": __version__,
        "backend": cfg.backend,
        "time_axis": clock,
        "time_key": "time",
        "target_loss": None if target is None else float(target),   # exact: reach uses it
        "interrupted": interrupted,
        "failed": sorted(e["name"] for e in entries if e["status"] == "failed"),
        "elapsed": _sig(elapsed),
        "notes": list(plan.notes) + list(plan.remarks),
        "config": cfg.to_dict(),
        "schemes": entries,
    }


class _Progress:
    """Live progress with rich on a terminal; one line per finished scheme otherwise."""

    def __init__(self, plan: Plan, console: Any, enabled: bool) -> None:
        self.plan = plan
        self.console = console
        self.enabled = enabled
        self.bar = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Self:
        if not self.enabled:
            return self
        self.console = self.console or Console()
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description:<18}"), BarColumn(bar_width=16),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.fields[info]}"), console=self.console)
            for s in self.plan.schemes:
                self.tasks[s.name] = self.bar.add_task(s.name[:18], total=self.plan.config
                                                       .rounds, info="waiting")
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def begin(self, scheme: Any) -> None:
        self._t0 = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.tasks[scheme.name], info="starting workers")

    def update(self, scheme: Any, row: dict[str, Any]) -> None:
        if self.bar is not None:
            loss = row.get("loss")
            err = row.get("error")
            info = f"loss {loss:.4f}" if loss is not None else ""
            if err is not None:
                info += f" err {float(err):.2g}"
            self.bar.update(self.tasks[scheme.name], advance=1, info=info)

    def fail(self, scheme: Any, reason: str) -> None:
        if self.bar is not None:
            self.bar.update(self.tasks[scheme.name], info=f"FAILED: {reason}"[:60])
        elif self.enabled and self.console is not None:
            self.console.print(f"FAILED {scheme.name}: {reason}", markup=False)

    def end(self, scheme: Any, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        if self.bar is None and self.console is not None:
            last = rows[-1] if rows else {}
            loss = last.get("loss")
            took = time.perf_counter() - getattr(self, "_t0", time.perf_counter())
            self.console.print(f"done {scheme.name}: {len(rows)} rounds"
                               + (f", loss {loss:.4f}" if loss is not None else "")
                               + f" ({took:.1f} s with start-up)")


def compare(config: str | None = None, **overrides: Any) -> ComparisonResult:
    """Python entry point: ``compare()`` is ``gradcode compare``; ``compare("x.toml",
    backend="simulated")`` is ``gradcode compare --config x.toml --backend simulated``."""
    cfg = load_config(config, overrides=overrides)
    return run(prepare(cfg), progress=False)
