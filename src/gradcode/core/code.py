"""The :class:`Code` type: an encoding matrix B (n workers x k partitions) and its facts."""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from .tolerance import EXACT_TOL

__all__ = ["Code", "CodeMeta"]

# Exhaustive search for ``tolerates`` of a user matrix stops after this many patterns.
_TOLERATES_SEARCH_LIMIT = 20_000
# ... and only for matrices of at most this many entries (the search works on a dense copy).
_TOLERATES_DENSE_LIMIT = 1_000_000


class CodeMeta(Mapping[str, Any]):
    """Base of the typed structure records a code family attaches to ``Code.meta``.

    A family whose decoder or protocol needs more than B (the nested codes' levels, the
    heterogeneous codes' probabilities and weights, a product code's factors) defines a
    frozen dataclass deriving from this class, one field per fact, and reads the facts as
    attributes (``code.meta.levels``). The record is also a read-only mapping of its
    field names, so ``code.meta["levels"]``, ``"p" in code.meta`` and
    ``code.meta.get("weights")`` keep working.

    Example:
        >>> import gradcode as gc
        >>> meta = gc.codes.nested(4, levels=[0, 1], seed=0).meta
        >>> meta.levels, meta["levels"], sorted(meta)
        ((0, 1), (0, 1), ['family', 'level_codes', 'levels', 'order'])
    """

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False, repr=False)
class Code:
    """A gradient code: worker i returns f_i = sum_j B[i, j] g_j.

    Args:
        B: the n x k encoding matrix (anything ``scipy.sparse.csr_array`` accepts,
            dense arrays included). Stored as CSR, float64, or complex128 when complex.
        name: how the code was built, e.g. ``"fractional_repetition(n=6, s=2)"``.
        params: the constructor's parameters (for listing and re-building).
        tolerates: number of stragglers that are *always* decodable exactly. Family
            constructors pass the proven value. For a user matrix leave it ``None``: it
            is then found by exhaustive search when that takes at most 20,000 rank
            checks of a matrix with at most 10^6 entries, else reported as 0 (pass it
            explicitly if you know better). A value you pass is checked: every
            partition must be held by at least ``tolerates + 1`` workers (always, O(nnz)),
            and, within the same search budget, every set of ``tolerates`` stragglers
            must leave responders whose rows span the all-ones vector; a claim that
            fails is refused (ValueError), never silently believed.
        meta: structural facts some decoders or protocols read: a :class:`CodeMeta`
            record of the family that built the code (e.g. ``NestedMeta``), kept as
            given, or any mapping (copied into a dict) for a user's own facts.
        verify: run the exhaustive check of a given ``tolerates`` (default True);
            family constructors whose value is proven pass False.

    Raises:
        ValueError: B is empty, ragged, not two-dimensional, has a non-finite entry,
            or ``tolerates`` does not hold. (A B with all-zero columns is a valid code,
            see :attr:`uncovered`; ``gradcode run``/``compare`` refuse to train with one
            unless the scheme sets ``allow_uncovered = true``.)

    Example:
        >>> import numpy as np, gradcode as gc
        >>> code = gc.Code(np.array([[1.0, 1, 0], [0, 1, 1], [1, 0, 1]]), name="mine")
        >>> code.n, code.k, code.load, code.replication
        (3, 3, 2, 2)
    """

    B: sp.csr_array
    name: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)
    _tolerates: int | None = None
    meta: CodeMeta | dict[str, Any] = field(default_factory=dict)

    def __init__(self, B: Any, name: str = "custom", *, params: dict[str, Any] | None = None,
                 tolerates: int | None = None,
                 meta: CodeMeta | Mapping[str, Any] | None = None,
                 verify: bool = True) -> None:
        matrix = _as_csr(B)
        if not isinstance(name, str):
            raise TypeError(f"Code: name must be a str, got {name!r}")
        if not isinstance(verify, bool):
            raise TypeError(f"Code: verify must be True or False, got {verify!r}")
        if tolerates is not None:
            if isinstance(tolerates, bool) or not isinstance(tolerates, (int, np.integer)):
                raise TypeError(f"Code: tolerates must be an int or None, got {tolerates!r}")
            if not 0 <= tolerates < matrix.shape[0]:
                raise ValueError(f"Code: tolerates={tolerates} must lie in [0, n-1] "
                                 f"with n={matrix.shape[0]}")
            if tolerates > 0:
                support = np.bincount(matrix.indices, minlength=matrix.shape[1])
                _check_tolerates(matrix, support, int(tolerates), verify)
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"Code: meta must be a CodeMeta record, a mapping or None, got "
                            f"{type(meta).__name__}")
        object.__setattr__(self, "B", matrix)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", dict(params or {}))
        object.__setattr__(self, "_tolerates", None if tolerates is None else int(tolerates))
        object.__setattr__(self, "meta", meta if isinstance(meta, CodeMeta) else dict(meta or {}))
        object.__setattr__(self, "_cache", OrderedDict())

    # ------------------------------------------------------------------ facts
    @property
    def n(self) -> int:
        """Number of workers (rows of B)."""
        return int(self.B.shape[0])

    @property
    def k(self) -> int:
        """Number of data partitions (columns of B)."""
        return int(self.B.shape[1])

    @property
    def row_support(self) -> np.ndarray:
        """Partitions each worker computes (non-zeros per row)."""
        return np.diff(self.B.indptr).astype(np.int64)

    @property
    def column_support(self) -> np.ndarray:
        """Workers holding each partition (non-zeros per column)."""
        return np.bincount(self.B.indices, minlength=self.k).astype(np.int64)

    @property
    def load(self) -> int:
        """Most partitions any worker computes (max row support)."""
        return int(self.row_support.max(initial=0))

    @property
    def replication(self) -> int:
        """Most workers holding any partition (max column support)."""
        return int(self.column_support.max(initial=0))

    @property
    def uncovered(self) -> np.ndarray:
        """Partitions no worker holds (all-zero columns of B): their gradients can never
        be recovered. Every column for an all-zero B."""
        return np.flatnonzero(self.column_support == 0)

    @property
    def is_complex(self) -> bool:
        return bool(np.iscomplexobj(self.B.data))

    @property
    def tolerates(self) -> int:
        """Stragglers that are always decodable exactly (0 for approximate codes)."""
        if self._tolerates is None:
            object.__setattr__(self, "_tolerates", _search_tolerates(self))
        return int(self._tolerates)

    @property
    def tolerates_if_known(self) -> int | None:
        """``tolerates`` when already known (given or searched), else None: lets callers
        skip the exhaustive search a user matrix's ``tolerates`` may trigger."""
        return self._tolerates

    def toarray(self) -> np.ndarray:
        """Dense copy of B."""
        return self.B.toarray()

    def __repr__(self) -> str:
        dtype = "complex" if self.is_complex else "real"
        return (f"Code({self.name}: n={self.n}, k={self.k}, load={self.load}, "
                f"replication={self.replication}, tolerates={self.tolerates}, {dtype})")

    def cache(self) -> OrderedDict:
        """Per-code memo used by decoders (keyed by decoder and responder pattern)."""
        return self.__dict__["_cache"]


def _check_tolerates(m: sp.csr_array, support: np.ndarray, tolerates: int,
                     verify: bool) -> None:
    """Refuse a ``tolerates`` claim that fails: a partition on <= tolerates workers is
    lost when exactly those straggle (always checked); and, within the search budget, an
    exhaustive check of every straggler set of that size."""
    weakest = int(np.argmin(support))
    if support[weakest] <= tolerates:
        raise ValueError(f"Code: tolerates={tolerates} does not hold: partition {weakest} is "
                         f"held by only {int(support[weakest])} worker(s), so {tolerates} "
                         f"stragglers can remove it (a code tolerating s stragglers needs "
                         f"every partition on at least s+1 workers)")
    n, k = m.shape
    if not verify or n * k > _TOLERATES_DENSE_LIMIT or math.comb(n, tolerates) > \
            _TOLERATES_SEARCH_LIMIT:
        return
    dense = m.toarray()
    for stragglers in itertools.combinations(range(n), tolerates):
        mask = np.ones(n, dtype=bool)
        mask[list(stragglers)] = False
        if not _spans_ones(dense[mask]):
            raise ValueError(f"Code: tolerates={tolerates} does not hold: with stragglers "
                             f"{list(stragglers)} the responders' rows do not span the "
                             f"all-ones vector (exact decoding impossible)")


def _as_csr(B: Any) -> sp.csr_array:
    if isinstance(B, Code):
        return B.B
    try:
        if sp.issparse(B):
            m = sp.csr_array(B)
        else:
            try:
                arr = np.asarray(B)
            except ValueError:
                raise TypeError("Code: B must be a rectangular numeric matrix (every row of "
                                "the same length); got a ragged sequence") from None
            if arr.dtype == object:
                raise TypeError
            if arr.dtype.kind not in "biufc":
                raise TypeError(f"Code: B must hold real or complex numbers, got dtype "
                                f"{arr.dtype}")
            if arr.ndim != 2:
                raise ValueError(f"Code: B must be two-dimensional (n x k), got shape {arr.shape}")
            m = sp.csr_array(arr)
    except TypeError as exc:
        if str(exc).startswith("Code:"):
            raise
        raise TypeError(f"Code: B must be a numeric matrix, got {type(B).__name__}") from None
    if m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"Code: B must have at least one row and one column, got shape {m.shape}")
    if m.dtype.kind == "c":
        m = m.astype(np.complex128)
    elif m.dtype.kind in "biuf":
        m = m.astype(np.float64)
    else:
        raise TypeError(f"Code: B must hold real or complex numbers, got dtype {m.dtype}")
    m.sum_duplicates()
    if not np.all(np.isfinite(m.data)):
        bad = np.flatnonzero(~np.isfinite(m.data))[0]
        row = np.searchsorted(m.indptr, bad, side="right") - 1
        raise ValueError(f"Code: B must be finite; entry ({row}, {m.indices[bad]}) is "
                         f"{m.data[bad]}")
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _spans_ones(rows: np.ndarray) -> bool:
    """Whether the all-ones vector lies in the row space of ``rows`` (dense, F x k), up to
    :data:`EXACT_TOL`: the least-squares residual of rows^T a = 1 is (numerically) zero."""
    k = rows.shape[1]
    a = np.linalg.lstsq(rows.T, np.ones(k, dtype=rows.dtype), rcond=None)[0]
    return float(np.sum(np.abs(rows.T @ a - 1.0) ** 2)) <= EXACT_TOL * max(k, 1)


def _search_tolerates(code: Code) -> int:
    """Largest s such that every (n - s)-subset of rows spans the all-ones vector (small
    codes only: dense least squares per pattern, at most ``_TOLERATES_SEARCH_LIMIT``)."""
    n, k = code.n, code.k
    if np.any(code.column_support == 0):
        return 0
    if n * k > _TOLERATES_DENSE_LIMIT:
        return 0
    budget = _TOLERATES_SEARCH_LIMIT
    dense = code.toarray()
    best = 0
    for s in range(0, n):
        count = math.comb(n, s)
        if count > budget:
            break
        budget -= count
        for stragglers in itertools.combinations(range(n), s):
            mask = np.ones(n, dtype=bool)
            mask[list(stragglers)] = False
            if not _spans_ones(dense[mask]):
                return best if s > 0 else 0
        best = s
    return best
