"""``[problem] kind = "torch"`` in a config: examples/cnn_digits.toml through ``gradcode
run``, the same training as examples/cnn_digits.py, a model class from the config's
folder on worker processes, and one precise error per mistake, before any work."""

from __future__ import annotations

import csv
import importlib.util
import json
import pathlib
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradcode as gc  # noqa: E402
from gradcode.app.cli import app  # noqa: E402
from gradcode.app.compare import prepare, run  # noqa: E402
from gradcode.app.config import ConfigError, MissingExtraError, load_config, parse_config  # noqa: E402,E501

pytestmark = pytest.mark.torch
ROOT = pathlib.Path(__file__).resolve().parents[1]
TOML = ROOT / "examples" / "cnn_digits.toml"

TOY = textwrap.dedent('''
    import numpy as np
    import torch

    CONST = 3


    class Tiny(torch.nn.Module):
        """A model class that worker processes can only unpickle by importing this file."""

        def __init__(self, width=8):
            super().__init__()
            self.a = torch.nn.Linear(4, width)
            self.b = torch.nn.Linear(width, 3)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))


    def tiny(width: int = 8):
        return Tiny(width)


    def tiny_with_loss():
        return Tiny(), torch.nn.functional.cross_entropy


    def not_a_model():
        return 3


    def frozen():
        return torch.nn.ReLU()


    def arrays(m: int = 96, seed: int = 0):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(m, 4)).astype(np.float32)
        return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0).astype(np.int64)


    def three():
        return 1, 2, 3


    def mismatched():
        return np.zeros((5, 4), np.float32), np.zeros(4, np.int64)
''')


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "gc_toy_models.py").write_text(TOY)
    (folder / "gc_toy_broken.py").write_text("x = 1 / 0\n")
    yield str(folder)
    for name in ("gc_toy_models", "gc_toy_broken"):
        sys.modules.pop(name, None)
    while str(folder) in sys.path:
        sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("cnn_digits_script",
                                                  ROOT / "examples" / "cnn_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("cnn_digits", None)          # imported by the TOML's references
    while str(ROOT / "examples") in sys.path:
        sys.path.remove(str(ROOT / "examples"))


def _toy(problem=None, **top):
    """A config dict on the toy module; a key set to None in ``problem`` is left out."""
    table = {"kind": "torch", "model": "gc_toy_models:tiny", "loss": "cross_entropy",
             "dataset": "gc_toy_models:arrays", **(problem or {})}
    return {"workers": 4, "rounds": 3, "backend": "simulated", "optimizer": "adam",
            "lr": 1e-2, "target_loss": 0.1, "scheme": {"code": "uncoded"},
            "problem": {k: v for k, v in table.items() if v is not None}, **top}


def _history(out: pathlib.Path) -> list[dict]:
    with open(out / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ the example's TOML
def test_cnn_digits_toml_via_gradcode_run(tmp_path, example):
    pytest.importorskip("sklearn")
    from typer.testing import CliRunner
    torch.set_num_threads(1)
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["run", str(TOML), "--backend", "simulated", "--rounds",
                                      "40", "--out", str(out), "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["schemes"]
    assert entry["status"] == "ok" and entry["rounds"] == 40 and entry["mean_error"] == 0
    assert summary["config"]["problem"]["model"] == "cnn_digits:digits_cnn"
    assert summary["config"]["optimizer"] == "adam"
    losses = [float(r["loss"]) for r in _history(out)]
    assert len(losses) == 40
    initial = float(np.log(10.0))         # ten balanced classes, small initial logits
    assert abs(losses[0] - initial) < 0.05 and losses[-1] < 0.8 * losses[0]


def test_cnn_digits_toml_trains_exactly_like_the_script(example):
    """Same initial weights, minibatches, delays and Adam: the TOML run and
    ``train_one`` of examples/cnn_digits.py give the same losses round by round."""
    pytest.importorskip("sklearn")
    torch.set_num_threads(1)
    cfg = load_config(TOML, overrides={"backend": "simulated", "rounds": 4})
    plan = prepare(cfg)
    torch.manual_seed(0)
    reference = torch.nn.utils.parameters_to_vector(example.digits_cnn().parameters())
    np.testing.assert_array_equal(plan.problem(8).init_params(), reference.detach().numpy())
    ours = run(plan, progress=False).histories["FRC s=1"]
    scheme = example.schemes(8)["FRC s=1"]
    theirs = example.train_one(scheme, "simulated", rounds=4, workers=8, batch_size=16,
                               lr=3e-3, subset=None, seed=0, eval_every=1, stop_at=None)
    np.testing.assert_allclose([r["loss"] for r in ours], [r["loss"] for r in theirs.rows],
                               rtol=1e-5)
    np.testing.assert_allclose([r["sim_time"] for r in ours],
                               [r["sim_time"] for r in theirs.rows], rtol=1e-12)


# ------------------------------------------------------------------ any model, any host
def test_model_class_from_the_config_folder_runs_on_worker_processes(toy_folder, tmp_path,
                                                                   no_leftover_processes):
    cfg = parse_config(_toy({"model_args": {"width": 6}, "batch_size": 8, "accuracy": True,
                             "test": "gc_toy_models:arrays", "test_args": {"seed": 1}},
                            backend="local", rounds=6, out=str(tmp_path)),
                       single=True, folder=toy_folder)
    result = run(prepare(cfg), progress=False)
    assert not result.failed, result.failed
    (rows,) = result.histories.values()
    assert len(rows) == 6 and rows[-1]["loss"] < rows[0]["loss"]
    assert 0.0 <= rows[-1]["test_accuracy"] <= 1.0


def test_model_returning_its_loss_and_optimizer_options(toy_folder):
    cfg = parse_config(_toy({"model": "gc_toy_models:tiny_with_loss", "loss": None},
                            optimizer="sgd", lr=0.5, optimizer_options={"momentum": 0.9}),
                       folder=toy_folder)
    assert cfg.problem.loss is None and cfg.optimizer_options == {"momentum": 0.9}
    plan = prepare(cfg)
    (rows,) = run(plan, progress=False).histories.values()
    assert rows[-1]["loss"] < rows[0]["loss"]


# ------------------------------------------------------------------ errors, before any work
@pytest.mark.parametrize("problem, top, needles", [
    ({"model": "foo"}, {}, ["problem.model: expected 'module:callable'", "got 'foo'"]),
    ({"model": "gc_no_such_module_xyz:f"}, {},
     ["problem.model: cannot import module 'gc_no_such_module_xyz'", "ModuleNotFoundError"]),
    ({"model": "gc_toy_broken:f"}, {},
     ["cannot import module 'gc_toy_broken'", "ZeroDivisionError"]),
    ({"model": "gc_toy_models:missing"}, {}, ["'gc_toy_models' has no attribute 'missing'"]),
    ({"model": "gc_toy_models:CONST"}, {}, ["'gc_toy_models:CONST' is not callable", "int"]),
    ({"model_args": {"widht": 3}}, {},
     ["problem.model_args={'widht': 3} does not fit gc_toy_models:tiny", "widht"]),
    ({"dataset": "gc_toy_models:arrays", "dataset_args": {"n": 3}}, {},
     ["problem.dataset_args", "'n'"]),
    ({"loss": "crossentropy"}, {},
     ["problem.loss: 'crossentropy' is not a function of torch.nn.functional"]),
    ({"loss": "torch.nn:Linear"}, {}, ["problem.loss: torch.nn:Linear() cannot be built"]),
    ({"loss": "numpy:ndarray"}, {}, ["'numpy:ndarray' is a class but not a torch.nn.Module"]),
    ({"samples": 100}, {}, ["problem.samples does not apply to problem.kind='torch'"]),
    ({"test_fraction": 0.2}, {}, ["problem.test_fraction does not apply", "problem.test"]),
    ({"dataset": None}, {}, ["problem.dataset is required"]),
    ({"accuracy": "yes"}, {}, ["problem.accuracy must be true or false"]),
    ({}, {"lr": "auto", "optimizer": "gd"}, ["lr='auto'", "problem.kind='torch'"]),
    ({}, {"optimizer": "adamm"}, ["optimizer='adamm' is not allowed", "adam, adamw"]),
    ({}, {"optimizer_options": {"beta": 0.9}},
     ["optimizer_options.beta is not an option of torch.optim.Adam", "betas"]),
    ({}, {"optimizer": "momentum", "optimizer_options": {"betas": 0.9}},
     ["optimizer_options.betas is not an option of optimizer='momentum'", "beta"]),
])
def test_config_errors_name_key_rule_and_value(toy_folder, problem, top, needles):
    with pytest.raises(ConfigError) as info:
        parse_config(_toy(problem, **top), folder=toy_folder)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_torch_keys_refused_for_linear_problems():
    with pytest.raises(ConfigError, match=r"problem.model only applies to "
                                          r"problem.kind='torch', but problem.kind='least_sq"):
        parse_config({"problem": {"kind": "least_squares", "model": "a:b"}})


@pytest.mark.parametrize("problem, needles", [
    ({"model": "gc_toy_models:not_a_model"},
     ["problem.model: gc_toy_models:not_a_model returned a int", "torch.nn.Module"]),
    ({"model": "gc_toy_models:frozen"}, ["without parameters"]),
    ({"model": "gc_toy_models:tiny_with_loss"}, ["give the loss once"]),
    ({"loss": None}, ["problem.loss is required"]),
    ({"dataset": "gc_toy_models:three"}, ["tuple of 3 items", "(X, y)"]),
    ({"dataset": "gc_toy_models:mismatched"}, ["X with 5 rows but y with 4"]),
    ({"dataset": "gc_toy_models:not_a_model"}, ["returned a int", "map-style"]),
    ({"dataset_args": {"m": -1}}, ["problem.dataset: gc_toy_models:arrays(**{'m': -1}) raised"]),
])
def test_prepare_errors_name_the_key_and_what_came_back(toy_folder, problem, needles):
    cfg = parse_config(_toy(problem), folder=toy_folder)
    with pytest.raises((ValueError, TypeError)) as info:
        prepare(cfg)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_bad_optimizer_option_value_stops_before_training(toy_folder):
    cfg = parse_config(_toy(optimizer_options={"betas": [2.0, 0.9]}), folder=toy_folder)
    with pytest.raises(ValueError, match=r"optimizer_options=\{'betas': \[2.0, 0.9\]\} do not "
                                         r"fit optimizer='adam'"):
        prepare(cfg)


def test_missing_torch_is_a_missing_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MissingExtraError, match="problem.kind='torch' needs PyTorch"):
        parse_config({"problem": {"kind": "torch"}})
    with pytest.raises(MissingExtraError, match="optimizer='adam' needs PyTorch"):
        parse_config({"optimizer": "adam"})


def test_torch_optimizer_options_reach_the_optimiser():
    opt = gc.optimizers.make_optimizer(torch.optim.SGD, 0.1, momentum=0.5)
    opt.reset(np.zeros(2, np.float32))
    assert opt.opt.param_groups[0]["momentum"] == 0.5
    with pytest.raises(TypeError, match="apply only to a torch.optim class"):
        gc.optimizers.make_optimizer(lambda ps: torch.optim.SGD(ps, lr=0.1), None, momentum=0.5)
