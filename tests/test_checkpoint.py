"""Checkpoint and resume: a run stopped at round t and resumed gives the same history as
an uninterrupted run on the simulated backend (everything except wall time)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import gradcode as gc
from gradcode import stragglers as st
from gradcode import training as tr


@pytest.fixture(scope="module")
def setup():
    X, y = gc.data.synthetic_classification(300, 5, seed=0)
    prob = gc.problems.logistic_regression(X, y, 6)
    code = gc.codes.regularized_bernoulli(n=6, k=6, d=2, seed=0)
    scheme = tr.approximate(code, r=4)
    delays = st.Markov(0.2, 0.3, 10.0, base=st.ShiftedExponential(1, 0.5, seed=1), seed=2)
    return prob, scheme, delays


def _strip(h):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in h]


@pytest.mark.parametrize("optimizer", ["gd", "nesterov", "momentum"])
def test_stop_and_resume_equals_uninterrupted(setup, tmp_path, optimizer):
    prob, scheme, delays = setup
    kw = dict(delays=delays, optimizer=optimizer, lr=0.5)
    full = tr.train(prob, scheme, rounds=10, **kw)
    part = tr.train(prob, scheme, rounds=4, checkpoint=tmp_path, **kw)
    assert len(part) == 4
    resumed = tr.train(prob, scheme, rounds=10, checkpoint=tmp_path, resume=True, **kw)
    assert _strip(resumed) == _strip(full)


def test_crash_then_resume(setup, tmp_path):
    prob, scheme, delays = setup

    def crash(row):
        if row["round"] == 6:
            raise KeyboardInterrupt

    full = tr.train(prob, scheme, rounds=9, delays=delays, optimizer="nesterov", lr=0.5)
    with pytest.raises(KeyboardInterrupt):
        tr.train(prob, scheme, rounds=9, delays=delays, optimizer="nesterov", lr=0.5,
                 checkpoint=tmp_path, checkpoint_every=4, callback=crash)
    ck = tr.load_checkpoint(tmp_path)
    assert ck["round"] == 6                  # saved on the way out, not only at round 3
    resumed = tr.train(prob, scheme, rounds=9, delays=delays, optimizer="nesterov", lr=0.5,
                       checkpoint=tmp_path, resume=True)
    assert _strip(resumed) == _strip(full)


def test_files_hold_no_pickle(setup, tmp_path):
    prob, scheme, delays = setup
    tr.train(prob, scheme, rounds=2, delays=delays, optimizer="nesterov", lr=0.5,
             checkpoint=tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["round"] == 1 and len(state["history"]["rows"]) == 2
    with zipfile.ZipFile(tmp_path / "arrays.npz") as z:
        assert sorted(z.namelist()) == ["opt.u.npy", "params.npy", "round.npy"]
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as z:
        assert z["params"].shape == (prob.dim,)


def test_resume_refuses_a_different_run(setup, tmp_path):
    prob, scheme, delays = setup
    tr.train(prob, scheme, rounds=2, delays=delays, lr=0.5, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="belongs to a different run.*lr"):
        tr.train(prob, scheme, rounds=4, delays=delays, lr=0.1, checkpoint=tmp_path,
                 resume=True)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        tr.train(prob, scheme, rounds=4, resume=True)
    # resume without a checkpoint on disk starts fresh
    h = tr.train(prob, scheme, rounds=2, delays=delays, lr=0.5, checkpoint=tmp_path / "new",
                 resume=True)
    assert len(h) == 2


def test_torch_optimizer_state_resumes(setup, tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    prob, scheme, delays = setup
    kw = dict(delays=delays, optimizer=torch.optim.Adam, lr=0.05)
    full = tr.train(prob, scheme, rounds=6, **kw)
    tr.train(prob, scheme, rounds=3, checkpoint=tmp_path, **kw)
    resumed = tr.train(prob, scheme, rounds=6, checkpoint=tmp_path, resume=True, **kw)
    np.testing.assert_allclose(resumed.column("loss"), full.column("loss"), rtol=1e-12)


def test_checkpoint_write_is_never_half_done(setup, tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint intact (no *.tmp left); a
    crash between the two renames (arrays replaced, state not yet) is recovered."""
    import os

    prob, scheme, delays = setup
    tr.train(prob, scheme, rounds=2, delays=delays, lr=0.5, checkpoint=tmp_path)
    before = tr.load_checkpoint(tmp_path)
    assert before["round"] == 1

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        tr.train(prob, scheme, rounds=3, delays=delays, lr=0.5, checkpoint=tmp_path,
                 resume=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz", "state.json"]
    again = tr.load_checkpoint(tmp_path)
    assert again["round"] == 1
    np.testing.assert_array_equal(again["params"], before["params"])

    real_replace = os.replace
    calls = []

    def crash_on_second_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith("state.json"):
            raise KeyboardInterrupt("power loss")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_replace)
    with pytest.raises(KeyboardInterrupt):
        tr.train(prob, scheme, rounds=3, delays=delays, lr=0.5, checkpoint=tmp_path,
                 resume=True)
    monkeypatch.undo()
    ck = tr.load_checkpoint(tmp_path)
    assert ck["round"] == 2 and len(ck["history"]) == 3
    full = tr.train(prob, scheme, rounds=3, delays=delays, lr=0.5)
    np.testing.assert_array_equal(ck["history"].column("loss"), full.column("loss"))


def test_history_files_are_replaced_atomically(setup, tmp_path, monkeypatch):
    h = gc.history.History([{"round": 0, "loss": 1.0}])
    h.to_json(tmp_path / "h.json")
    h.to_csv(tmp_path / "h.csv")
    old_json, old_csv = (tmp_path / "h.json").read_text(), (tmp_path / "h.csv").read_text()
    h.append({"round": 1, "loss": float("nan"), "bad": object()})   # not serialisable
    with pytest.raises(TypeError):
        h.to_json(tmp_path / "h.json")
    assert (tmp_path / "h.json").read_text() == old_json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "h.json"]
    assert (tmp_path / "h.csv").read_text() == old_csv
