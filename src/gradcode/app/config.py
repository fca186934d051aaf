"""Experiment configuration: a TOML file (or a dict) turned into validated dataclasses.

Everything is checked before anything runs. A bad file gives ONE message that names the
key, the rule and the allowed values, e.g.::

    config: backend='gpu' is not allowed; allowed values: local, ray, simulated

The layout (every key optional; see ``examples/*.toml``)::

    workers = 12             # n
    rounds = 30
    seed = 0
    backend = "local"        # simulated | local | ray
    out = "gradcode-results"
    lr = 0.5                 # or "auto" (1 / L); with a torch.optim optimiser, default:
                             # that optimiser's own default
    optimizer = "gd"         # gd | nesterov | momentum, or a torch.optim optimiser:
                             # adam | adamw | sgd | rmsprop | adagrad (extra torch)
    optimizer_options = { betas = [0.9, 0.99] }   # its keyword arguments (besides lr)
    target_loss = "auto"     # a number, or "auto": the loss exact GD reaches at 75% of rounds
    name = "compare"         # the title: "gradcode NAME: ..." ("run" for gradcode run)
    round_timeout = 60.0     # seconds any round may last, every wait policy; "none": no
                             # limit (default: the backend's, 300 s on local and ray)

    [problem]
    kind = "logistic_regression"    # least_squares | logistic_regression | softmax_regression
    dataset = "breast_cancer"       # a scikit-learn dataset or "synthetic"
    path = "data.svm"               # a LIBSVM file (instead of dataset)
    l2 = 1e-4
    test_fraction = 0.2
    samples = 2000                  # synthetic only
    dim = 20                        # synthetic only
    batch_size = 32                 # minibatch rows per partition and round (default: all)

    [problem]                       # or: a PyTorch model (extra torch)
    kind = "torch"
    model = "mypkg.models:make_cnn" # a callable returning a torch.nn.Module, or
                                    # (module, loss); seeded with the experiment seed
    model_args = { width = 16 }     # keyword arguments of that callable
    loss = "cross_entropy"          # a torch.nn.functional name, or "module:callable"
                                    # (a class, e.g. "torch.nn:CrossEntropyLoss", is built
                                    # without arguments); the MEAN loss over a batch
    dataset = "mypkg.data:train"    # a callable returning a map-style torch Dataset of
                                    # (x, y) items, or a pair (X, y) of tensors or arrays
    dataset_args = { subset = 300 }
    test = "mypkg.data:test"        # optional held-out set, the same kinds of value
    test_args = {}
    batch_size = 16
    l2 = 0.0                        # weight decay added to the objective (default 0)
    accuracy = true                 # report classification accuracy
    # Modules are searched in the TOML file's folder first, then on sys.path.

    [delays]
    model = "shifted_exponential"   # none | exponential | shifted_exponential | pareto
    shift = 0.004
    mean = 0.004                    # the scale for pareto
    shape = 2.5                     # pareto only
    slow_workers = [3, 8]
    slow_factor = 8.0
    fail_prob = 0.0

    [[schemes]]                     # as many as you like; none = the built-in line-up
    code = "fractional_repetition"  # a catalogue family, ignore_stragglers / erasurehead,
                                    # or auto (the autopilot: it picks code, decoder and
                                    # wait; params are its options, e.g. window = 40)
    params = { s = 2 }              # constructor arguments (n is filled in from workers)
    decoder = "frc_group"           # default: the family's decoder
    wait = "until_decodable"        # all | first | deadline | until_decodable | until_error
                                    # | erasurehead
                                    # its arguments: r = 10 (first), deadline = 0.05 (s,
                                    # deadline), eps (until_error), w (erasurehead)
    name = "FRC s=2"
    allow_uncovered = false         # true: run a code that leaves partitions on no worker

``gradcode run`` takes the same file with exactly one scheme (``[scheme]`` or one
``[[schemes]]`` entry).
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import numbers
import os
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from ..codes.catalogue import CATALOGUE, DECODERS
from ..models.optimizers import OPTIMIZERS as _BUILTIN_OPTIMIZERS
from .references import check_arguments, resolve_reference
from .torch_model import TORCH_OPTIMIZERS, torch_loss, torch_optimizer

__all__ = [
    "BACKENDS",
    "BASELINES",
    "DELAY_MODELS",
    "PROBLEM_KINDS",
    "WAITS",
    "ConfigError",
    "DelayConfig",
    "ExperimentConfig",
    "MissingExtraError",
    "ProblemConfig",
    "SchemeConfig",
    "TORCH_OPTIMIZERS",
    "load_config",
    "parse_config",
    "parse_params",
    "scheme_codes",
]

BACKENDS = ("simulated", "local", "ray")
PROBLEM_KINDS = ("logistic_regression", "least_squares", "softmax_regression", "torch")
DELAY_MODELS = ("none", "exponential", "shifted_exponential", "pareto")
WAITS = ("all", "first", "deadline", "until_decodable", "until_error", "erasurehead")
OPTIMIZERS = ("gd", "nesterov", "momentum")   # gradcode.optimizers.OPTIMIZERS
BASELINES = ("ignore_stragglers", "erasurehead", "auto")
"""Scheme ``code`` values that are not catalogue families."""


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the allowed values."""


class MissingExtraError(RuntimeError):
    """An optional dependency (ray, scikit-learn, ...) is needed but not installed."""


def _need_torch(what: str) -> None:
    if importlib.util.find_spec("torch") is None:
        raise MissingExtraError(f"{what} needs PyTorch: pip install 'gradcode[torch]'")


def scheme_codes() -> list[str]:
    """Every allowed value of a scheme's ``code`` key (catalogue families + baselines)."""
    return sorted(set(CATALOGUE) | set(BASELINES))


# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class ProblemConfig:
    """What to train: the model and the data."""

    kind: str = "logistic_regression"
    dataset: str = "breast_cancer"
    path: str | None = None
    l2: float = 1e-4
    test_fraction: float = 0.2
    samples: int = 2000
    dim: int = 20
    batch_size: int | None = None    # minibatch rows per partition and round; None: all
    dataset_explicit: bool = False   # the user named the dataset (no silent fallback)
    # kind = "torch": "module:callable" references and their keyword arguments
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None
    dataset_args: dict[str, Any] = field(default_factory=dict)
    test: str | None = None
    test_args: dict[str, Any] = field(default_factory=dict)
    accuracy: bool = False
    folder: str | None = None        # where the references' modules are searched first


@dataclass(frozen=True)
class DelayConfig:
    """The injected delay model (seconds); the same draws for every scheme."""

    model: str = "shifted_exponential"
    shift: float = 0.004
    mean: float = 0.004
    shape: float = 2.5
    slow_workers: tuple[int, ...] = (3, 8)
    slow_factor: float = 8.0
    fail_prob: float = 0.0


@dataclass(frozen=True)
class SchemeConfig:
    """One scheme: a code (catalogue family or baseline), a decoder and a wait policy."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)
    decoder: str | None = None
    wait: str | None = None
    r: int | None = None
    deadline: float | None = None
    eps: float | None = None
    w: int | None = None
    name: str | None = None
    allow_uncovered: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment: shared settings, the problem, the delays and the schemes.

    ``schemes`` empty means "the built-in line-up" (every scheme that exists).
    """

    workers: int = 12
    rounds: int = 30
    seed: int = 0
    backend: str = "local"
    out: str = "gradcode-results"
    lr: float | str | None = 0.5          # or "auto": 1 / L; None: the torch.optim default
    optimizer: str = "gd"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    target_loss: float | None = None      # None = auto
    name: str = "compare"
    round_timeout: float | str | None = None   # None: the backend's; "none": no limit
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    delays: DelayConfig = field(default_factory=DelayConfig)
    schemes: tuple[SchemeConfig, ...] = ()
    scheme_table: bool = False            # the file used [scheme] (gradcode run)

    def scheme_key(self, i: int) -> str:
        """How error messages name scheme i: ``scheme`` or ``schemes[i]``."""
        return "scheme" if self.scheme_table else f"schemes[{i}]"

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly dict (what summary.json records)."""
        d = asdict(self)
        d["target_loss"] = "auto" if self.target_loss is None else self.target_loss
        problem = d["problem"]
        for key in ("dataset_explicit", "folder") + (
                _LINEAR_ONLY if self.problem.kind == "torch" else _TORCH_ONLY):
            problem.pop(key, None)
        if not self.optimizer_options:
            d.pop("optimizer_options")
        d.pop("scheme_table", None)
        d["delays"]["slow_workers"] = list(self.delays.slow_workers)
        d["schemes"] = [{k: v for k, v in s.items() if v not in (None, {})
                         and not (k == "allow_uncovered" and v is False)}
                        for s in d["schemes"]]
        return d


# --------------------------------------------------------------------------- checks
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a table"}


def _typename(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "table"}.get(type(v), type(v).__name__)


def _err(msg: str) -> ConfigError:
    return ConfigError(f"config: {msg}")


def _check_keys(where: str, table: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    label = where or "the top level"
    if not isinstance(table, dict):
        raise _err(f"{where} must be a table, got {table!r} ({_typename(table)})")
    for key in table:
        if key not in allowed:
            full = f"{where}.{key}" if where else key
            raise _err(f"unknown key '{full}' in {label}; allowed keys: "
                       f"{', '.join(sorted(allowed))}")
    return table


def _get(table: dict, where: str, key: str, kind: type, default: Any, *,
         low: float | None = None, high: float | None = None, low_open: bool = False,
         choices: tuple[str, ...] | None = None, optional: bool = False) -> Any:
    full = f"{where}.{key}" if where else key
    if key not in table:
        return default
    v = table[key]
    if optional and v is None:
        return None
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise _err(f"{full} must be an integer, got {v!r} ({_typename(v)})")
        v = int(v)
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise _err(f"{full} must be a number, got {v!r} ({_typename(v)})")
        v = float(v)
        if not math.isfinite(v):
            raise _err(f"{full}={v} must be finite")
    elif kind is str:
        if not isinstance(v, str):
            raise _err(f"{full} must be a string, got {v!r} ({_typename(v)})")
    elif kind is bool:
        if not isinstance(v, bool):
            raise _err(f"{full} must be true or false, got {v!r} ({_typename(v)})")
    elif not isinstance(v, kind):
        raise _err(f"{full} must be {_TYPE_NAMES.get(kind, kind.__name__)}, got {v!r} "
                   f"({_typename(v)})")
    if choices is not None and v not in choices:
        raise _err(f"{full}={v!r} is not allowed; allowed values: {', '.join(choices)}")
    if low is not None and (v < low or (low_open and v == low)):
        raise _err(f"{full}={v} must be {'>' if low_open else '>='} {low}")
    if high is not None and v > high:
        raise _err(f"{full}={v} must be <= {high}")
    return v


_TOP_KEYS = ("workers", "rounds", "seed", "backend", "out", "lr", "optimizer",
             "optimizer_options", "target_loss", "name", "problem", "delays", "schemes",
             "scheme", "round_timeout")
_TORCH_ONLY = ("model", "model_args", "loss", "dataset_args", "test", "test_args", "accuracy")
_LINEAR_ONLY = ("path", "test_fraction", "samples", "dim")
_PROBLEM_KEYS = ("kind", "dataset", "l2", "batch_size") + _LINEAR_ONLY + _TORCH_ONLY
_DELAY_KEYS = ("model", "shift", "mean", "shape", "slow_workers", "slow_factor", "fail_prob")
_SCHEME_KEYS = ("code", "params", "decoder", "wait", "r", "deadline", "eps", "w", "name",
                "allow_uncovered")


def _datasets() -> tuple[str, ...]:
    return ("breast_cancer", "synthetic", "iris", "wine", "digits", "diabetes")


def _parse_problem(raw: Any, folder: str | None) -> ProblemConfig:
    t = _check_keys("problem", raw, _PROBLEM_KEYS)
    d = ProblemConfig()
    kind = _get(t, "problem", "kind", str, d.kind, choices=PROBLEM_KINDS)
    if kind == "torch":
        _need_torch("problem.kind='torch'")
        return _parse_torch_problem(t, folder)
    for key in _TORCH_ONLY:
        if key in t:
            raise _err(f"problem.{key} only applies to problem.kind='torch', but "
                       f"problem.kind={kind!r}")
    path = _get(t, "problem", "path", str, None)
    if "dataset" in t and path is not None:
        raise _err("problem.dataset and problem.path are mutually exclusive; give one "
                   f"(got dataset={t['dataset']!r}, path={path!r})")
    dataset = _get(t, "problem", "dataset", str, d.dataset, choices=_datasets())
    if path is not None and os.path.isdir(path):
        raise _err(f"problem.path={path!r} is a directory; give the LIBSVM file inside it")
    if path is not None and not os.path.isfile(path):
        raise _err(f"problem.path={path!r} is not an existing file")
    samples = _get(t, "problem", "samples", int, d.samples, low=4)
    return ProblemConfig(
        kind=kind, dataset=dataset, path=path,
        l2=_get(t, "problem", "l2", float, d.l2, low=0.0),
        test_fraction=_get(t, "problem", "test_fraction", float, d.test_fraction,
                           low=0.0, high=0.9),
        samples=samples,
        dim=_get(t, "problem", "dim", int, d.dim, low=1),
        batch_size=_get(t, "problem", "batch_size", int, d.batch_size, low=1),
        dataset_explicit="dataset" in t or path is not None,
    )


def _reference(t: dict, key: str, folder: str | None, *, required: bool) -> str | None:
    """A ``"module:callable"`` key, imported now (errors name the key and the module)."""
    if key not in t:
        if required:
            raise _err(f"problem.{key} is required for problem.kind='torch' (a "
                       f"'module:callable' reference)")
        return None
    try:
        resolve_reference(f"problem.{key}", t[key], folder)
    except ValueError as exc:
        raise _err(str(exc)) from None
    return t[key].strip()


def _arguments(t: dict, key: str, reference: str | None, folder: str | None) -> dict:
    """``problem.<key>_args``: a table of keyword arguments that the callable accepts."""
    name = f"{key}_args"
    args = dict(_get(t, "problem", name, dict, {}))
    if args and reference is None:
        raise _err(f"problem.{name} is given but problem.{key} is not")
    if reference is not None:
        try:
            check_arguments(f"problem.{name}", resolve_reference(f"problem.{key}", reference,
                                                                 folder), reference, args)
        except ValueError as exc:
            raise _err(str(exc)) from None
    return args


def _parse_torch_problem(t: dict, folder: str | None) -> ProblemConfig:
    """``kind = "torch"``: references to the model, loss and data callables, checked and
    imported (not called: that is :func:`gradcode.app.torch_model.load_torch_data`)."""
    for key in _LINEAR_ONLY:
        if key in t:
            hint = " (give problem.test for a held-out set)" if key == "test_fraction" else ""
            raise _err(f"problem.{key} does not apply to problem.kind='torch'{hint}; its "
                       f"keys: {', '.join(('kind', 'l2', 'batch_size') + _TORCH_ONLY)}, "
                       f"dataset")
    model = _reference(t, "model", folder, required=True)
    dataset = _reference(t, "dataset", folder, required=True)
    test = _reference(t, "test", folder, required=False)
    loss = None
    if "loss" in t:
        loss = _get(t, "problem", "loss", str, None)
        try:
            torch_loss("problem.loss", loss, folder)
        except ValueError as exc:
            raise _err(str(exc)) from None
    return ProblemConfig(
        kind="torch", dataset=dataset, l2=_get(t, "problem", "l2", float, 0.0, low=0.0),
        batch_size=_get(t, "problem", "batch_size", int, None, low=1), dataset_explicit=True,
        model=model, model_args=_arguments(t, "model", model, folder), loss=loss,
        dataset_args=_arguments(t, "dataset", dataset, folder), test=test,
        test_args=_arguments(t, "test", test, folder),
        accuracy=_get(t, "problem", "accuracy", bool, False), folder=folder)


def _parse_delays(raw: Any, workers: int) -> DelayConfig:
    t = _check_keys("delays", raw, _DELAY_KEYS)
    d = DelayConfig()
    model = _get(t, "delays", "model", str, d.model, choices=DELAY_MODELS)
    slow = _get(t, "delays", "slow_workers", list, None)
    if slow is None:
        slow = tuple(w for w in d.slow_workers if w < workers)
    else:
        for w in slow:
            if isinstance(w, bool) or not isinstance(w, int):
                raise _err(f"delays.slow_workers must be a list of worker indices, got {w!r} "
                           f"({_typename(w)})")
            if not 0 <= w < workers:
                raise _err(f"delays.slow_workers contains {w}; worker indices must lie in "
                           f"[0, workers-1] = [0, {workers - 1}]")
        if len(set(slow)) != len(slow):
            raise _err(f"delays.slow_workers={slow} must not repeat a worker")
        slow = tuple(slow)
    return DelayConfig(
        model=model,
        shift=_get(t, "delays", "shift", float, d.shift, low=0.0),
        mean=_get(t, "delays", "mean", float, d.mean, low=0.0, low_open=model != "none"),
        shape=_get(t, "delays", "shape", float, d.shape, low=1.0, low_open=True),
        slow_workers=slow,
        slow_factor=_get(t, "delays", "slow_factor", float, d.slow_factor, low=1.0),
        fail_prob=_get(t, "delays", "fail_prob", float, d.fail_prob, low=0.0, high=0.999),
    )


def parse_params(text: str, where: str = "--params") -> dict[str, Any]:
    """Parse ``"n=12,s=2,p=0.5,seed=0"`` into ``{"n": 12, "s": 2, "p": 0.5, "seed": 0}``.

    Values are read as int, then float, then true/false/none, else kept as strings.

    Raises:
        ValueError: an item is not ``name=value``, a name is not an identifier, or a name
            is given twice (``n=12,n=14``).
    """
    out: dict[str, Any] = {}
    if text is None or not text.strip():
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"{where}: {item!r} must look like name=value "
                             f"(e.g. n=12,s=2)")
        key, value = (p.strip() for p in item.split("=", 1))
        if not key.isidentifier():
            raise ValueError(f"{where}: {key!r} is not a valid parameter name")
        if key in out:
            raise ValueError(f"{where}: {key} is given twice ({key}={out[key]!r} and "
                             f"{item}); give each parameter once")
        out[key] = _literal(value)
    return out


def _literal(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(value)
        except ValueError:
            pass
    return value


def _parse_scheme(raw: Any, where: str) -> SchemeConfig:
    t = _check_keys(where, raw, _SCHEME_KEYS)
    if "code" not in t:
        raise _err(f"{where}.code is required; allowed values: {', '.join(scheme_codes())}")
    code = _get(t, where, "code", str, None, choices=tuple(scheme_codes()))
    params = _get(t, where, "params", dict, {})
    decoder = _get(t, where, "decoder", str, None, choices=tuple(sorted(DECODERS)))
    wait = _get(t, where, "wait", str, None, choices=WAITS)
    s = SchemeConfig(
        code=code, params=dict(params), decoder=decoder, wait=wait,
        r=_get(t, where, "r", int, None, low=1),
        deadline=_get(t, where, "deadline", float, None, low=0.0, low_open=True),
        eps=_get(t, where, "eps", float, None, low=0.0),
        w=_get(t, where, "w", int, None, low=1),
        name=_get(t, where, "name", str, None),
        allow_uncovered=_get(t, where, "allow_uncovered", bool, False),
    )
    needs = {"first": "r", "deadline": "deadline", "until_error": "eps"}
    if wait in needs and getattr(s, needs[wait]) is None:
        raise _err(f"{where}: wait={wait!r} needs {where}.{needs[wait]}")
    for key, policy in (("r", "first"), ("deadline", "deadline"), ("eps", "until_error")):
        if getattr(s, key) is not None and wait not in (policy, None):
            raise _err(f"{where}.{key} only applies to wait={policy!r}, but wait={wait!r}")
    return s


def _optimizer_options(t: dict, optimizer: str) -> dict[str, Any]:
    """``optimizer_options``: keyword arguments of the optimiser besides ``lr``."""
    options = dict(_get(t, "", "optimizer_options", dict, {}))
    if optimizer in TORCH_OPTIMIZERS:
        cls = torch_optimizer(optimizer)
        target = f"torch.optim.{cls.__name__}"
    else:
        cls, target = _BUILTIN_OPTIMIZERS[optimizer], f"optimizer={optimizer!r}"
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("self", "params", "lr")]
    for key in options:
        if key not in allowed:
            raise _err(f"optimizer_options.{key} is not an option of {target}; allowed: "
                       f"{', '.join(allowed) or 'none'} (lr is the top-level key lr)")
    return options


def parse_config(raw: dict[str, Any], *, single: bool = False,
                 folder: str | None = None) -> ExperimentConfig:
    """Validate a raw config dict (as read from TOML) into an :class:`ExperimentConfig`.

    Args:
        raw: the parsed TOML document.
        single: ``gradcode run``: exactly one scheme is required.
        folder: where ``problem.kind = "torch"`` references are searched first (the
            config file's folder; None: the current folder).

    Raises:
        ConfigError: the first problem found, naming the key and the allowed values.
        MissingExtraError: a torch problem or optimiser without PyTorch installed.
    """
    folder = os.getcwd() if folder is None else os.path.abspath(folder)
    t = _check_keys("", raw, _TOP_KEYS)
    d = ExperimentConfig()
    workers = _get(t, "", "workers", int, d.workers, low=2)
    rounds = _get(t, "", "rounds", int, d.rounds, low=1)
    seed = _get(t, "", "seed", int, d.seed, low=0)
    backend = _get(t, "", "backend", str, d.backend, choices=BACKENDS)
    out = _get(t, "", "out", str, d.out)
    if not out.strip():
        raise _err("out must be a non-empty folder path")
    optimizer = _get(t, "", "optimizer", str, d.optimizer,
                     choices=OPTIMIZERS + tuple(TORCH_OPTIMIZERS))
    on_torch = optimizer in TORCH_OPTIMIZERS
    if on_torch:
        _need_torch(f"optimizer={optimizer!r}")
    lr = "auto" if t.get("lr") == "auto" else _get(
        t, "", "lr", float, None if on_torch else d.lr, low=0.0, low_open=True)
    optimizer_options = _optimizer_options(t, optimizer)
    target = t.get("target_loss", "auto")
    if target == "auto":
        target_loss = None
    elif isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise _err(f"target_loss must be a number or \"auto\", got {target!r} "
                   f"({_typename(target)})")
    else:
        target_loss = float(target)
    name = _get(t, "", "name", str, "run" if single else d.name)
    round_timeout = "none" if t.get("round_timeout") == "none" else \
        _get(t, "", "round_timeout", float, None, low=0.0, low_open=True)
    problem = _parse_problem(t.get("problem", {}), folder)
    if problem.kind == "torch" and lr == "auto" and not on_torch:
        raise _err(f"lr='auto' needs the problem's Lipschitz constant, which "
                   f"problem.kind='torch' has not; give lr = <number> (optimizer="
                   f"{optimizer!r})")
    delays = _parse_delays(t.get("delays", {}), workers)

    if "scheme" in t and "schemes" in t:
        raise _err("give either [scheme] or [[schemes]], not both")
    if "scheme" in t:
        raw_schemes = [t["scheme"]]
        label = "scheme"
    else:
        raw_schemes = t.get("schemes", [])
        label = "schemes"
        if not isinstance(raw_schemes, list):
            raise _err(f"schemes must be an array of tables ([[schemes]]), got "
                       f"{_typename(raw_schemes)}")
    schemes = tuple(_parse_scheme(s, label if label == "scheme" else f"schemes[{i}]")
                    for i, s in enumerate(raw_schemes))
    if single and len(schemes) != 1:
        raise _err(f"`gradcode run` needs exactly one scheme ([scheme] with a code key), "
                   f"got {len(schemes)}; use `gradcode compare --config` for several")
    names = [s.name for s in schemes if s.name]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise _err(f"schemes: name {min(dup)!r} is used twice; names must be unique")
    if not problem.dataset_explicit and problem.kind not in ("logistic_regression", "torch"):
        default = {"softmax_regression": "iris", "least_squares": "diabetes"}[problem.kind]
        problem = ProblemConfig(**{**asdict(problem), "dataset": default})
    if problem.path is None and problem.kind != "torch":
        fits = {"logistic_regression": ("breast_cancer", "synthetic"),
                "softmax_regression": ("digits", "iris", "wine", "breast_cancer", "synthetic"),
                "least_squares": ("diabetes", "synthetic")}[problem.kind]
        if problem.dataset not in fits:
            raise _err(f"problem.dataset={problem.dataset!r} does not fit "
                       f"problem.kind={problem.kind!r}; allowed datasets for it: "
                       f"{', '.join(fits)}")
    return ExperimentConfig(workers=workers, rounds=rounds, seed=seed, backend=backend, out=out,
                            lr=lr, optimizer=optimizer, optimizer_options=optimizer_options,
                            target_loss=target_loss, name=name,
                            problem=problem, delays=delays, schemes=schemes,
                            scheme_table="scheme" in t, round_timeout=round_timeout)


def load_config(path: str | os.PathLike | None = None, *, overrides: dict[str, Any] | None = None,
                single: bool = False) -> ExperimentConfig:
    """Read a TOML file (or start from the defaults when ``path`` is None), apply
    command-line ``overrides`` (top-level keys; ``None`` values are ignored) and validate.

    Raises:
        ConfigError: unreadable file, TOML syntax error, or an invalid setting.
        MissingExtraError: a torch problem or optimiser without PyTorch installed.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = os.fspath(path)
        if os.path.isdir(path):
            raise _err(f"{path!r} is a directory; give the TOML file inside it")
        if not os.path.isfile(path):
            raise _err(f"file {path!r} does not exist")
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise _err(f"{path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise _err(f"{path} is not a TOML file: it is not UTF-8 text (byte "
                       f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
        except OSError as exc:
            raise _err(f"cannot read {path}: {exc.strerror}") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    folder = None if path is None else os.path.dirname(os.path.abspath(path))
    return parse_config(raw, single=single, folder=folder)
