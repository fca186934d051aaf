"""Training history: one row per round, saved as CSV or JSON.

Columns of every row:
    round, wall_time (s since training started, real), sim_time (cumulative round times
    on the backend's clock: virtual for ``simulated``), round_time, n_responders,
    responders (arrival order), error (||alpha - 1||^2), grad_rel_error
    (||g_hat - g|| / ||g||, NaN when not computed), decoder (the one actually used),
    fallback (True when the scheme's decoder fell back), dropped (``"worker: reason"``
    entries), dead (workers dead so far), loss, and the problem's other metrics
    (accuracy, test_loss, ...). Schemes with their own round protocol add columns
    (``RoundResult.extra``; nested codes: ``nested_level``, ``nested_extra_messages``,
    ``nested_extra_bytes``, ... see :mod:`gradcode.protocols.nested_scheme`).

Example:
    >>> import gradcode as gc
    >>> h = gc.history.History([{"round": 0, "loss": 1.0}, {"round": 1, "loss": 0.5}])
    >>> h.column("loss").tolist(), h.time_to_loss(0.7, clock="round")
    ([1.0, 0.5], 1)
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np

__all__ = ["History"]


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], *,
                 mode: str = "w", replace: bool = True) -> str:
    """Write a file so that readers see the old or the new content, never half of it.

    ``write(fh)`` fills ``path + ".tmp"`` (opened as text for ``mode="w"``, binary for
    ``"wb"``), which is flushed and fsynced; then (with
    ``replace``) it is renamed over ``path`` and the directory is fsynced. Returns the
    temporary path (``replace=False`` leaves it for the caller to ``os.replace``).
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with (open(tmp, "wb") if mode == "wb" else open(tmp, "w", newline="")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
    except BaseException:                      # a failed write or rename leaves no .tmp
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    if replace:
        fsync_dir(os.path.dirname(path) or ".")
    return tmp


def fsync_dir(directory: str) -> None:
    """fsync a directory so that a rename in it survives a power loss (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _unjson(value: Any) -> Any:
    if value is None:
        return math.nan
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


class History:
    """Per-round records of a training run.

    Attributes:
        rows: list of dicts (one per round, see module docstring).
        meta: run description (scheme, backend, optimizer, lr, seed, initial loss, ...).
    """

    def __init__(self, rows: Iterable[dict] | None = None, meta: dict | None = None) -> None:
        self.rows: list[dict] = [dict(r) for r in rows or []]
        self.meta: dict = dict(meta or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else {}
        return (f"History({len(self.rows)} rounds, scheme={self.meta.get('scheme')!r}, "
                f"final loss={last.get('loss')}, sim_time={last.get('sim_time')})")

    def append(self, row: dict) -> None:
        self.rows.append(row)

    def column(self, name: str) -> np.ndarray:
        """Values of one column across rounds (NaN where a row lacks it)."""
        vals = [r.get(name, math.nan) for r in self.rows]
        try:
            return np.asarray(vals, dtype=np.float64)
        except (TypeError, ValueError):
            return np.asarray(vals, dtype=object)

    def time_to_loss(self, target: float, clock: str = "sim_time") -> float:
        """First ``clock`` value (``"sim_time"``, ``"wall_time"`` or ``"round"``) at which
        loss <= target; ``inf`` if never reached."""
        for r in self.rows:
            loss = r.get("loss", math.nan)
            if loss is not None and loss <= target:
                return r[clock]
        return math.inf

    @property
    def final(self) -> dict:
        """The last row (empty dict before the first round)."""
        return self.rows[-1] if self.rows else {}

    # ------------------------------------------------------------------ files
    def to_json(self, path: str | os.PathLike) -> None:
        """Write ``{"meta": ..., "rows": [...]}`` (NaN -> null, inf -> "inf"); the file
        is replaced atomically."""
        write_atomic(path, lambda fh: json.dump(self.to_dict(), fh, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        with open(path) as fh:
            data = json.load(fh)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        rows = [{k: (_unjson(v) if not isinstance(v, list) else v) for k, v in r.items()}
                for r in data.get("rows", [])]
        return cls(rows, data.get("meta", {}))

    def to_dict(self) -> dict:
        return {"meta": _jsonable(self.meta), "rows": _jsonable(self.rows)}

    def to_csv(self, path: str | os.PathLike) -> None:
        """One line per round; list columns are space-separated (dropped: ``;``-separated).
        The file is replaced atomically."""
        columns: list[str] = []
        for r in self.rows:
            for key in r:
                if key not in columns:
                    columns.append(key)

        def write(fh: IO) -> None:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in self.rows:
                line = []
                for c in columns:
                    v = r.get(c, "")
                    if isinstance(v, (list, tuple, np.ndarray)):
                        sep = ";" if c == "dropped" else " "
                        v = sep.join(str(x) for x in v)
                    elif isinstance(v, float):
                        v = repr(v)
                    line.append(v)
                writer.writerow(line)

        write_atomic(path, write)
