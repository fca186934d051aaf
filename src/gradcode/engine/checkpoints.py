"""Training checkpoints: ``arrays.npz`` (numbers) + ``state.json`` (the rest), no pickle.

A checkpoint directory holds two files written by :func:`save_checkpoint` after a round:

* ``arrays.npz``: ``params`` (float vector of length ``dim``), ``round`` (integer scalar)
  and the optimiser's arrays ``opt.<name>``;
* ``state.json``: ``{"format": 1, "round": t, "fingerprint": {...}, "optimizer": {...},
  "history": {"meta": {...}, "rows": [...]}, "extra": {...}}``.

:func:`load_checkpoint` trusts nothing it reads: every field is checked (type, range,
finiteness, shapes, agreement between the two files) and any problem raises ONE
``ValueError`` that names the file and the field, e.g.::

    load_checkpoint: /runs/a/state.json: field 'round' must be an integer >= 0, got -1

so a truncated, edited or mixed-up checkpoint can never resume into a wrong run (a NaN
parameter vector, a negative round, a history that does not match the round ...).

Example:
    >>> import tempfile, numpy as np, gradcode as gc
    >>> from gradcode.engine.checkpoints import load_checkpoint, save_checkpoint
    >>> d = tempfile.mkdtemp()
    >>> h = gc.history.History([{"round": 0, "loss": 1.0}])
    >>> save_checkpoint(d, round=0, params=np.zeros(3), optimizer=gc.optimizers.GD(0.1),
    ...                 history=h, fingerprint={"dim": 3})
    >>> ck = load_checkpoint(d)
    >>> ck["round"], ck["params"].shape, len(ck["history"])
    (0, (3,), 1)
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from typing import Any

import numpy as np

from ..models.optimizers import Optimizer
from .history import History, _jsonable, fsync_dir, write_atomic

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = 1
"""The ``format`` value written to ``state.json`` (the only one :func:`load_checkpoint`
accepts)."""

_STATE_FILE = "state.json"
_ARRAYS_FILE = "arrays.npz"
_STATE_KEYS = ("format", "round", "fingerprint", "optimizer", "history", "extra")
# optimisers whose saved arrays are vectors shaped like the parameters
_VECTOR_STATE_OPTIMIZERS = ("nesterov", "momentum")


def save_checkpoint(directory: str | os.PathLike, *, round: int, params: np.ndarray,
                    optimizer: Optimizer, history: History, fingerprint: dict,
                    extra: dict | None = None) -> None:
    """Save training state after ``round``: arrays in ``arrays.npz``, the rest in
    ``state.json`` (no pickle).

    Both files are written in full (``*.tmp``, fsynced) before either replaces the old
    one, arrays first; a crash between the two renames leaves a complete
    ``state.json.tmp`` that :func:`load_checkpoint` uses, so a checkpoint on disk is never
    half-written or mixed."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    arrays = {"params": np.asarray(params), "round": np.asarray(round)}
    arrays.update({f"opt.{k}": np.asarray(v) for k, v in optimizer.state_arrays().items()})

    state = {"format": CHECKPOINT_FORMAT, "round": int(round), "fingerprint": fingerprint,
             "optimizer": optimizer.state_json(), "history": history.to_dict(),
             "extra": extra or {}}
    apath = os.path.join(directory, _ARRAYS_FILE)
    spath = os.path.join(directory, _STATE_FILE)
    atmp = write_atomic(apath, lambda fh: np.savez(fh, **arrays), mode="wb", replace=False)
    stmp = write_atomic(spath, lambda fh: json.dump(_jsonable(state), fh), replace=False)
    os.replace(atmp, apath)
    os.replace(stmp, spath)
    fsync_dir(directory)


def load_checkpoint(directory: str | os.PathLike) -> dict | None:
    """Load and validate a checkpoint written by :func:`save_checkpoint`.

    Returns:
        None when ``directory`` holds no ``state.json``; else a dict with ``round``,
        ``params``, ``optimizer_arrays``, ``optimizer``, ``history`` (a
        :class:`History`), ``fingerprint`` and ``extra``.

    Raises:
        ValueError: one line naming the file and the field, for anything unreadable or
            inconsistent: truncated or garbage files, a JSON document that is not an
            object, a missing key, a wrong type, a non-integer or negative round,
            non-finite or wrongly shaped parameters or optimiser arrays, a history whose
            rows do not match the round, arrays and state from different rounds.
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"load_checkpoint: directory must be a path (str or os.PathLike), "
                        f"got {directory!r} ({type(directory).__name__})")
    directory = os.fspath(directory)
    spath = os.path.join(directory, _STATE_FILE)
    apath = os.path.join(directory, _ARRAYS_FILE)
    if not os.path.lexists(spath):
        return None
    state = _read_state(spath)
    arrays = _read_arrays(apath)
    saved = _array_round(apath, arrays)
    if saved != state["round"] and os.path.isfile(spath + ".tmp"):
        # save_checkpoint was interrupted between its two renames: the new arrays are in
        # place and the matching state.json.tmp was complete before they were
        try:
            pending = _read_state(spath + ".tmp")
        except ValueError:
            pending = None
        if pending is not None and pending["round"] == saved:
            state, spath = pending, spath + ".tmp"
    if saved != state["round"]:
        raise ValueError(f"load_checkpoint: {apath}: field 'round' is {saved} but "
                         f"{spath} has round {state['round']}: the files belong to different "
                         f"saves")
    params = _check_params(apath, arrays, state["fingerprint"])
    opt_arrays = _check_optimizer_arrays(apath, arrays, params, state["fingerprint"])
    history = _check_history(spath, state["history"], state["round"])
    return {
        "round": state["round"], "params": params, "optimizer_arrays": opt_arrays,
        "optimizer": state["optimizer"], "history": history,
        "fingerprint": state["fingerprint"], "extra": state["extra"],
    }


# --------------------------------------------------------------------------- validation
def _bad(path: str, field: str, rule: str) -> ValueError:
    return ValueError(f"load_checkpoint: {path}: field {field!r} {rule}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the non-standard JSON constant {name} is not allowed")


def _read_state(path: str) -> dict[str, Any]:
    """``state.json`` parsed and checked field by field."""
    if os.path.isdir(path):
        raise ValueError(f"load_checkpoint: {path} is a directory, expected the JSON state file")
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
        state = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ValueError(f"load_checkpoint: {path}: not a text file (garbage bytes); the "
                         f"checkpoint is corrupted") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"load_checkpoint: {path}: not valid JSON ({exc}); the checkpoint "
                         f"is corrupted or truncated") from None
    except OSError as exc:
        raise ValueError(f"load_checkpoint: {path}: cannot read it ({exc.strerror})") from None
    if not isinstance(state, dict):
        raise ValueError(f"load_checkpoint: {path}: the document must be a JSON object with "
                         f"keys {', '.join(_STATE_KEYS)}, got {_short(state)}")
    for key in _STATE_KEYS:
        if key not in state:
            raise _bad(path, key, "is missing")
    if state["format"] != CHECKPOINT_FORMAT or isinstance(state["format"], bool):
        raise _bad(path, "format", f"must be {CHECKPOINT_FORMAT}, got {_short(state['format'])}")
    state["round"] = _check_round(path, "round", state["round"])
    for key in ("fingerprint", "optimizer", "history", "extra"):
        if not isinstance(state[key], dict):
            raise _bad(path, key, f"must be a JSON object, got {_short(state[key])}")
    dim = state["fingerprint"].get("dim")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise _bad(path, "fingerprint.dim", f"must be a positive integer, got {_short(dim)}")
    return state


def _check_round(path: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise _bad(path, field, f"must be an integer >= 0, got {_short(value)}")
    return int(value)


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise ValueError(f"load_checkpoint: {path} is missing (state.json is there); the "
                         f"checkpoint is incomplete")
    if os.path.isdir(path):
        raise ValueError(f"load_checkpoint: {path} is a directory, expected the npz arrays")
    try:
        _check_member_sizes(path)
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an npz archive of named arrays")
        with z:
            return {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy raise a dozen types
        # for damaged archives (BadZipFile, EOFError, NotImplementedError, zlib.error, ...)
        raise ValueError(f"load_checkpoint: {path}: not a readable npz archive "
                         f"({type(exc).__name__}: {exc}); the checkpoint is corrupted or "
                         f"truncated") from None


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}


def _check_member_sizes(path: str) -> None:
    """Every member's .npy header must declare no more bytes than the member holds, so a
    damaged header cannot make numpy allocate a huge array before failing."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version not in _NPY_HEADERS:
                    raise ValueError(f"member {info.filename}: unsupported .npy version "
                                     f"{version}")
                shape, _, dtype = _NPY_HEADERS[version](fh)
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared > info.file_size:
                raise ValueError(f"member {info.filename} declares {declared} bytes of data "
                                 f"but holds {info.file_size}")


def _array_round(path: str, arrays: dict[str, np.ndarray]) -> int:
    if "round" not in arrays:
        raise _bad(path, "round", "is missing")
    r = arrays["round"]
    if r.shape != () or r.dtype.kind not in "iu":
        raise _bad(path, "round", f"must be an integer scalar, got dtype {r.dtype} shape "
                                  f"{r.shape}")
    return _check_round(path, "round", int(r))


def _check_params(path: str, arrays: dict[str, np.ndarray], fingerprint: dict) -> np.ndarray:
    if "params" not in arrays:
        raise _bad(path, "params", "is missing")
    p = arrays["params"]
    if p.dtype.kind not in "iuf":
        raise _bad(path, "params", f"must hold real numbers, got dtype {p.dtype}")
    dim = fingerprint.get("dim")
    if p.ndim != 1 or (dim is not None and p.shape != (dim,)):
        want = f"({dim},)" if dim is not None else "a vector"
        raise _bad(path, "params", f"must have shape {want}, got {p.shape}")
    if not np.all(np.isfinite(p)):
        bad = int(np.flatnonzero(~np.isfinite(p))[0])
        raise _bad(path, "params", f"must be finite; entry {bad} is {p[bad]}")
    return p.astype(np.float64)


def _check_optimizer_arrays(path: str, arrays: dict[str, np.ndarray], params: np.ndarray,
                            fingerprint: dict) -> dict[str, np.ndarray]:
    out = {}
    unknown = sorted(set(arrays) - {"params", "round"} - {k for k in arrays
                                                            if k.startswith("opt.")})
    if unknown:
        raise _bad(path, unknown[0], "is not a checkpoint field (expected params, round, "
                                     "opt.*)")
    vector_state = fingerprint.get("optimizer") in _VECTOR_STATE_OPTIMIZERS
    for key in sorted(arrays):
        if not key.startswith("opt."):
            continue
        a = arrays[key]
        if a.dtype.kind not in "biuf":
            raise _bad(path, key, f"must hold numbers, got dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise _bad(path, key, "must be finite")
        if vector_state and a.shape != params.shape:
            raise _bad(path, key, f"must have the parameters' shape {params.shape}, got "
                                  f"{a.shape}")
        out[key[4:]] = a
    return out


def _check_history(path: str, history: dict, round_: int) -> History:
    rows = history.get("rows")
    meta = history.get("meta", {})
    if not isinstance(rows, list):
        raise _bad(path, "history.rows", f"must be a list of rows, got {_short(rows)}")
    if not isinstance(meta, dict):
        raise _bad(path, "history.meta", f"must be a JSON object, got {_short(meta)}")
    if len(rows) != round_ + 1:
        raise _bad(path, "history.rows", f"must hold one row per round 0..{round_} "
                                         f"({round_ + 1} rows), got {len(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _bad(path, f"history.rows[{i}]", f"must be a JSON object, got {_short(row)}")
        r = row.get("round")
        if isinstance(r, bool) or r != i:
            raise _bad(path, f"history.rows[{i}].round", f"must be {i}, got {_short(r)}")
    return History.from_dict(history)
