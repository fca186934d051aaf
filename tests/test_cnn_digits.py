"""examples/cnn_digits.py in a test-sized run: a few rounds of coded minibatch Adam on a
subset of the digits; the training loss must fall (simulated, local and Ray)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")


pytestmark = pytest.mark.torch
PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "cnn_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("cnn_digits", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _short_run(example, backend, **options):
    torch.set_num_threads(1)
    scheme = example.schemes(8)["FRC s=1"]
    hist = example.train_one(scheme, backend, rounds=20, workers=8, batch_size=8, lr=1e-2,
                             subset=320, seed=0, eval_every=19, stop_at=None, **options)
    assert len(hist.rows) == 20 and hist.meta["backend"] == backend
    assert hist.rows[-1]["loss"] < 0.8 * hist.meta["initial_loss"]
    return hist


def test_lineup_and_model(example):
    lineup = example.schemes(8)
    assert {"uncoded", "FRC s=1", "ErasureHead"} <= set(lineup)
    assert all(s.code.n == 8 for s in lineup.values())
    n_params = sum(p.numel() for p in example.digits_cnn().parameters())
    assert 30_000 < n_params < 50_000
    train, test = example.digits()
    assert len(train) + len(test) == 1797 and train.tensors[0].shape[1:] == (1, 8, 8)


def test_short_run_simulated(example):
    hist = _short_run(example, "simulated")
    # the round time is the decoding worker's delay: the two slow workers are never waited on
    assert all(r["n_responders"] < 8 for r in hist.rows)


def test_short_run_local(example, no_leftover_processes):
    _short_run(example, "local", backend_options={"time_scale": 0.2})


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_short_run_ray(example):
    ray = pytest.importorskip("ray")
    from gradcode.backends.ray import connect
    assert not ray.is_initialized()
    assert connect("local", num_cpus=2) is True
    try:
        _short_run(example, "ray", backend_options={"time_scale": 0.2})
    finally:
        ray.shutdown()
