"""Corrupted checkpoints: every corruption gives ONE ValueError naming the file and the
field (never BadZipFile, EOFError, KeyError, ...), and resuming never starts from it."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

import gradcode as gc
from gradcode import training as tr


@pytest.fixture(scope="module")
def run_setup():
    X, y = gc.data.synthetic_classification(200, 4, seed=0)
    prob = gc.problems.logistic_regression(X, y, 4)
    scheme = tr.exact(gc.codes.fractional_repetition(4, 1), decoder="frc_group")
    return prob, scheme


@pytest.fixture
def ckdir(run_setup, tmp_path):
    prob, scheme = run_setup
    tr.train(prob, scheme, rounds=3, optimizer="nesterov", lr=0.5, checkpoint=tmp_path)
    return tmp_path


def _state(d):
    return json.loads((d / "state.json").read_text())


def _set_state(d, **changes):
    s = _state(d)
    for key, value in changes.items():
        if value is _DROP:
            del s[key]
        else:
            s[key] = value
    (d / "state.json").write_text(json.dumps(s))


def _arrays(d):
    with np.load(d / "arrays.npz") as z:
        return {k: z[k] for k in z.files}


def _set_arrays(d, drop=(), **changes):
    a = {k: v for k, v in _arrays(d).items() if k not in drop}
    a.update(changes)
    with open(d / "arrays.npz", "wb") as fh:
        np.savez(fh, **a)


_DROP = object()


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _history(d, fn):
    s = _state(d)
    fn(s["history"])
    (d / "state.json").write_text(json.dumps(s))


def _pickled_params(d):
    a = _arrays(d)
    a["params"] = np.array([object(), 1], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in a.items()})
    (d / "arrays.npz").write_bytes(buf.getvalue())


def _huge_header(d):
    """params.npy claims 10^12 float64 (8 TB) but holds 4: refused before numpy allocates."""
    a = _arrays(d)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    with zipfile.ZipFile(d / "arrays.npz", "w") as z:
        for key, value in a.items():
            if key == "params":
                continue
            buf = io.BytesIO()
            np.save(buf, value)
            z.writestr(f"{key}.npy", buf.getvalue())
        z.writestr("params.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(32))


def _zip_version(d):
    """'version needed to extract' of the first member set to 19.2: zipfile raises
    NotImplementedError (found by benchmarks/faults.py)."""
    data = bytearray((d / "arrays.npz").read_bytes())
    central = data.index(b"PK\x01\x02")              # the first central directory record
    data[central + 6:central + 8] = (192).to_bytes(2, "little")
    (d / "arrays.npz").write_bytes(bytes(data))


def _rows_drop_one(h):
    h["rows"].pop()


def _rows_shift(h):
    h["rows"][1]["round"] = 7


CORRUPTIONS = [
    # (id, corrupt(dir), file named in the message, field or phrase expected)
    ("state truncated", lambda d: _truncate(d / "state.json"), "state.json", "not valid JSON"),
    ("state garbage bytes", lambda d: (d / "state.json").write_bytes(os.urandom(64) + b"\xff"),
     "state.json", "not"),
    ("state empty", lambda d: (d / "state.json").write_text(""), "state.json", "not valid JSON"),
    ("state is []", lambda d: (d / "state.json").write_text("[]"), "state.json", "JSON object"),
    ("state is null", lambda d: (d / "state.json").write_text("null"), "state.json",
     "JSON object"),
    ("state is a string", lambda d: (d / "state.json").write_text('"x"'), "state.json",
     "JSON object"),
    ("round null", lambda d: _set_state(d, round=None), "state.json", "'round'"),
    ("round string", lambda d: _set_state(d, round="2"), "state.json", "'round'"),
    ("round negative", lambda d: _set_state(d, round=-1), "state.json", "'round'"),
    ("round fractional", lambda d: _set_state(d, round=1.5), "state.json", "'round'"),
    ("round bool", lambda d: _set_state(d, round=True), "state.json", "'round'"),
    ("round Infinity", lambda d: (d / "state.json").write_text(
        (d / "state.json").read_text().replace('"round": 2', '"round": Infinity')),
     "state.json", "Infinity"),
    ("round NaN", lambda d: (d / "state.json").write_text(
        (d / "state.json").read_text().replace('"round": 2', '"round": NaN')),
     "state.json", "NaN"),
    ("round from another save", lambda d: _set_state(d, round=1), "arrays.npz", "'round'"),
    ("missing round", lambda d: _set_state(d, round=_DROP), "state.json", "'round' is missing"),
    ("missing history", lambda d: _set_state(d, history=_DROP), "state.json", "'history'"),
    ("missing fingerprint", lambda d: _set_state(d, fingerprint=_DROP), "state.json",
     "'fingerprint'"),
    ("format 2", lambda d: _set_state(d, format=2), "state.json", "'format'"),
    ("fingerprint null", lambda d: _set_state(d, fingerprint=None), "state.json",
     "'fingerprint'"),
    ("fingerprint.dim string", lambda d: _set_state(d, fingerprint={"dim": "x"}), "state.json",
     "'fingerprint.dim'"),
    ("optimizer string", lambda d: _set_state(d, optimizer="x"), "state.json", "'optimizer'"),
    ("extra list", lambda d: _set_state(d, extra=[]), "state.json", "'extra'"),
    ("history is []", lambda d: _set_state(d, history=[]), "state.json", "'history'"),
    ("history rows null", lambda d: _history(d, lambda h: h.update(rows=None)), "state.json",
     "'history.rows'"),
    ("history rows not objects", lambda d: _history(d, lambda h: h.update(rows=[1, 2, 3])),
     "state.json", "'history.rows[0]'"),
    ("history row missing", lambda d: _history(d, _rows_drop_one), "state.json",
     "'history.rows'"),
    ("history row renumbered", lambda d: _history(d, _rows_shift), "state.json",
     "'history.rows[1].round'"),
    ("history meta list", lambda d: _history(d, lambda h: h.update(meta=[])), "state.json",
     "'history.meta'"),
    ("state is a directory", lambda d: ((d / "state.json").unlink(),
                                        (d / "state.json").mkdir()), "state.json", "directory"),
    ("arrays missing", lambda d: (d / "arrays.npz").unlink(), "arrays.npz", "missing"),
    ("arrays truncated", lambda d: _truncate(d / "arrays.npz"), "arrays.npz", "npz"),
    ("arrays garbage", lambda d: (d / "arrays.npz").write_bytes(os.urandom(300)), "arrays.npz",
     "npz"),
    ("arrays empty", lambda d: (d / "arrays.npz").write_bytes(b""), "arrays.npz", "npz"),
    ("arrays is one .npy", lambda d: np.save(open(d / "arrays.npz", "wb"), np.zeros(3)),
     "arrays.npz", "npz"),
    ("arrays pickled object", _pickled_params, "arrays.npz", "npz"),
    ("arrays header claims 8 TB", _huge_header, "arrays.npz", "declares"),
    ("arrays zip version 19.2", _zip_version, "arrays.npz", "npz"),
    ("params missing", lambda d: _set_arrays(d, drop=("params",)), "arrays.npz", "'params'"),
    ("params NaN", lambda d: _set_arrays(d, params=np.full(4, np.nan)), "arrays.npz",
     "'params'"),
    ("params Inf", lambda d: _set_arrays(d, params=np.array([0, np.inf, 0, 0])), "arrays.npz",
     "'params'"),
    ("params wrong length", lambda d: _set_arrays(d, params=np.zeros(7)), "arrays.npz",
     "'params'"),
    ("params 2-D", lambda d: _set_arrays(d, params=np.zeros((2, 2))), "arrays.npz", "'params'"),
    ("params strings", lambda d: _set_arrays(d, params=np.array(["a", "b", "c", "d"])),
     "arrays.npz", "'params'"),
    ("round array float", lambda d: _set_arrays(d, round=np.array(2.0)), "arrays.npz",
     "'round'"),
    ("round array missing", lambda d: _set_arrays(d, drop=("round",)), "arrays.npz",
     "'round'"),
    ("optimizer array wrong shape", lambda d: _set_arrays(d, **{"opt.u": np.zeros(9)}),
     "arrays.npz", "'opt.u'"),
    ("optimizer array NaN", lambda d: _set_arrays(d, **{"opt.u": np.full(4, np.nan)}),
     "arrays.npz", "'opt.u'"),
    ("unknown array", lambda d: _set_arrays(d, junk=np.zeros(1)), "arrays.npz", "'junk'"),
]


def test_the_table_covers_at_least_32_corruptions():
    assert len(CORRUPTIONS) >= 32
    assert len({c[0] for c in CORRUPTIONS}) == len(CORRUPTIONS)


def test_intact_checkpoint_loads(ckdir, run_setup):
    ck = tr.load_checkpoint(ckdir)
    assert ck["round"] == 2 and ck["params"].shape == (run_setup[0].dim,)
    assert np.all(np.isfinite(ck["params"])) and len(ck["history"]) == 3


@pytest.mark.parametrize("case", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corruption_gives_one_clear_error(ckdir, run_setup, case):
    _, corrupt, filename, phrase = case
    corrupt(ckdir)
    with pytest.raises(ValueError) as info:
        tr.load_checkpoint(ckdir)
    msg = str(info.value)
    assert type(info.value) is ValueError
    assert "\n" not in msg and msg.startswith("load_checkpoint: ")
    assert filename in msg and phrase in msg, msg
    # and training refuses to resume from it (nothing is overwritten silently)
    prob, scheme = run_setup
    with pytest.raises(ValueError, match="load_checkpoint"):
        tr.train(prob, scheme, rounds=5, optimizer="nesterov", lr=0.5, checkpoint=ckdir,
                 resume=True)


def test_zip_with_a_damaged_member_is_reported(ckdir):
    """A valid zip directory whose member bytes were flipped (CRC mismatch)."""
    path = ckdir / "arrays.npz"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("params.npy")
    start = info.header_offset + 30 + len(info.filename) + 100
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"arrays\.npz"):
        tr.load_checkpoint(ckdir)


def test_no_state_file_means_no_checkpoint(tmp_path):
    assert tr.load_checkpoint(tmp_path) is None
    with pytest.raises(TypeError, match="directory must be a path"):
        tr.load_checkpoint(3)
