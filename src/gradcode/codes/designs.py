"""Block designs: BIBDs from finite geometries, difference sets and complete designs.

A (v, kappa, lambda)-BIBD is a collection of b blocks (kappa-subsets of v points) such
that every point lies in r blocks and every pair of distinct points lies in exactly
lambda blocks; counting gives b kappa = v r and lambda (v - 1) = r (kappa - 1). Its
v x b incidence matrix N satisfies N N^T = (r - lambda) I + lambda J, which is what
makes the codes of :func:`gradcode.codes.bibd` behave identically under every
straggler pattern of a given size [1].

Finite-field arithmetic (GF(q) for prime powers q) comes from the ``galois`` package.

References:
    [1] S. Kadhe, O. O. Koyluoglu, K. Ramchandran, "Gradient coding based on block
        designs for mitigating adversarial stragglers", arXiv:1904.13373, 2019.
    [2] J. Singer, "A theorem in finite projective geometry and some applications to
        number theory", Trans. AMS 43, 1938.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.validate import check_int

__all__ = [
    "Design",
    "affine_plane",
    "check_prime_power",
    "complement",
    "complete",
    "fano",
    "from_difference_set",
    "projective_plane",
    "singer",
]

_MAX_BLOCKS = 200_000          # complete designs above this many blocks are refused
_MAX_FIELD = 2**24             # Singer designs need GF(q^(m+1)); keep it tractable


@dataclass(frozen=True, eq=False, repr=False)
class Design:
    """A block design on the points 0, ..., v - 1 (not necessarily balanced).

    Building a ``Design`` only checks the *form* of the blocks (integers in [0, v),
    distinct inside a block, at least one block). Whether it is a BIBD is checked by
    :meth:`verify`, which every code constructor calls.

    Attributes:
        v: number of points.
        blocks: tuple of blocks, each a sorted tuple of point indices.
        name: how the design was built.
        labels: optional human-readable label per point (e.g. homogeneous coordinates).

    Args:
        v: number of points (>= 1).
        blocks: iterable of blocks, each an iterable of point indices.
        name: how the design was built.
        labels: optional sequence of v point labels.

    Raises:
        TypeError: blocks is not an iterable of integer collections.
        ValueError: a point outside [0, v), a repeated point inside a block, an empty
            block or no blocks at all.

    Example:
        >>> import gradcode as gc
        >>> d = gc.designs.Design(4, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])
        >>> (d.v, d.b, d.r, d.kappa, d.lambda_), d.verify() is d
        ((4, 6, 3, 2, 1), True)
    """

    v: int
    blocks: tuple[tuple[int, ...], ...]
    name: str = "design"
    labels: tuple[Any, ...] | None = None
    _incidence: list = field(default_factory=list)

    def __init__(self, v: int, blocks: Iterable[Iterable[int]], name: str = "design",
                 labels: Sequence[Any] | None = None) -> None:
        v = check_int("Design", "v", v, low=1)
        if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
            raise TypeError(f"Design: blocks must be an iterable of point collections, got "
                            f"{type(blocks).__name__}")
        out = []
        for idx, block in enumerate(blocks):
            if isinstance(block, (str, bytes)) or not isinstance(block, Iterable):
                raise TypeError(f"Design: block {idx} must be a collection of point indices, "
                                f"got {block!r}")
            pts = []
            for p in block:
                if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
                    raise TypeError(f"Design: block {idx} must hold integer points, got {p!r}")
                if not 0 <= int(p) < v:
                    raise ValueError(f"Design: block {idx} holds point {int(p)}, which must "
                                     f"lie in [0, {v - 1}] for v={v}")
                pts.append(int(p))
            if not pts:
                raise ValueError(f"Design: block {idx} is empty; blocks must hold >= 1 point")
            if len(set(pts)) != len(pts):
                dup = next(p for p in pts if pts.count(p) > 1)
                raise ValueError(f"Design: block {idx} repeats point {dup}; a block is a set")
            out.append(tuple(sorted(pts)))
        if not out:
            raise ValueError("Design: blocks must hold at least one block, got none")
        if labels is not None:
            labels = tuple(labels)
            if len(labels) != v:
                raise ValueError(f"Design: labels must have v={v} entries, got {len(labels)}")
        if not isinstance(name, str):
            raise TypeError(f"Design: name must be a str, got {name!r}")
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "blocks", tuple(out))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_incidence", [])

    # ------------------------------------------------------------------ parameters
    @property
    def points(self) -> range:
        """The points 0, ..., v - 1."""
        return range(self.v)

    @property
    def b(self) -> int:
        """Number of blocks."""
        return len(self.blocks)

    @property
    def kappa(self) -> int | None:
        """Common block size, or ``None`` when block sizes differ."""
        sizes = {len(blk) for blk in self.blocks}
        return sizes.pop() if len(sizes) == 1 else None

    @property
    def r(self) -> int | None:
        """Common number of blocks through a point, or ``None`` when it varies."""
        deg = np.asarray(self.incidence().sum(axis=1)).ravel()
        return int(deg[0]) if np.all(deg == deg[0]) else None

    @property
    def lambda_(self) -> int | None:
        """Common number of blocks through a pair of points, or ``None`` when it varies
        (0 for v = 1, where there are no pairs)."""
        gram = self._gram()
        if self.v == 1:
            return 0
        off = gram[~np.eye(self.v, dtype=bool)]
        return int(off[0]) if np.all(off == off[0]) else None

    lam = lambda_

    @property
    def is_symmetric(self) -> bool:
        """b = v (then the dual of a BIBD is a BIBD with the same parameters)."""
        return self.b == self.v

    def incidence(self) -> sp.csr_array:
        """The v x b 0/1 incidence matrix N (N[p, j] = 1 iff point p is in block j)."""
        if not self._incidence:
            rows = np.fromiter(itertools.chain.from_iterable(self.blocks), dtype=np.int64)
            cols = np.repeat(np.arange(self.b), [len(blk) for blk in self.blocks])
            N = sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(self.v, self.b))
            self._incidence.append(N)
        return self._incidence[0]

    def _gram(self) -> np.ndarray:
        N = self.incidence()
        return np.rint((N @ N.T).toarray()).astype(np.int64)

    def params(self) -> dict[str, int | None]:
        """``{"v", "b", "r", "kappa", "lambda"}`` (``None`` for an unbalanced parameter)."""
        return {"v": self.v, "b": self.b, "r": self.r, "kappa": self.kappa,
                "lambda": self.lambda_}

    # ------------------------------------------------------------------ checking
    def verify(self) -> Design:
        """Check that this is a BIBD; return ``self`` so calls can be chained.

        Checks, in order: all blocks have the same size kappa; every point lies in the
        same number r of blocks; every pair of distinct points lies in the same number
        lambda of blocks; and the counting identities b kappa = v r,
        lambda (v - 1) = r (kappa - 1).

        Raises:
            ValueError: naming the first block, point or pair that breaks balance, e.g.
                "pair (0, 3) lies in 0 blocks but pair (0, 1) lies in 1".
        """
        where = f"Design.verify({self.name})"
        size0 = len(self.blocks[0])
        for j, blk in enumerate(self.blocks):
            if len(blk) != size0:
                raise ValueError(f"{where}: block {j} has {len(blk)} points but block 0 has "
                                 f"{size0}; a BIBD needs every block of the same size kappa")
        gram = self._gram()
        deg = np.diag(gram)
        bad = np.flatnonzero(deg != deg[0])
        if bad.size:
            p = int(bad[0])
            raise ValueError(f"{where}: point {p} lies in {int(deg[p])} blocks but point 0 "
                             f"lies in {int(deg[0])}; a BIBD needs every point in r blocks")
        if self.v > 1:
            ref = int(gram[0, 1])
            iu = np.triu_indices(self.v, 1)
            off = gram[iu]
            wrong = np.flatnonzero(off != ref)
            if wrong.size:
                p, q = int(iu[0][wrong[0]]), int(iu[1][wrong[0]])
                raise ValueError(f"{where}: pair ({p}, {q}) lies in {int(gram[p, q])} blocks "
                                 f"but pair (0, 1) lies in {ref}; a BIBD needs every pair of "
                                 f"points in the same number lambda of blocks")
            lam = ref
        else:
            lam = 0
        r = int(deg[0])
        if self.b * size0 != self.v * r or lam * (self.v - 1) != r * (size0 - 1):
            raise ValueError(f"{where}: counting identities fail (b kappa = {self.b * size0}, "
                             f"v r = {self.v * r}, lambda (v-1) = {lam * (self.v - 1)}, "
                             f"r (kappa-1) = {r * (size0 - 1)})")
        return self

    def is_bibd(self) -> bool:
        """True when :meth:`verify` passes."""
        try:
            self.verify()
        except ValueError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Design):
            return NotImplemented
        return self.v == other.v and sorted(self.blocks) == sorted(other.blocks)

    def __hash__(self) -> int:
        return hash((self.v, tuple(sorted(self.blocks))))

    def __repr__(self) -> str:
        p = self.params()
        return (f"Design({self.name}: v={p['v']}, b={p['b']}, r={p['r']}, "
                f"kappa={p['kappa']}, lambda={p['lambda']})")


def as_design(where: str, design: Any, v: int | None = None) -> Design:
    """Accept a :class:`Design` or a block list (``v`` inferred as max point + 1)."""
    if isinstance(design, Design):
        return design
    if isinstance(design, (str, bytes)) or not isinstance(design, Iterable):
        raise TypeError(f"{where}: design must be a gradcode.designs.Design or a list of "
                        f"blocks, got {type(design).__name__}")
    blocks = [list(blk) if isinstance(blk, Iterable) and not isinstance(blk, (str, bytes))
              else blk for blk in design]
    if v is None:
        try:
            v = 1 + max(int(p) for blk in blocks for p in blk)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: design must be a list of blocks of integer points, "
                            f"got {design!r:.80}") from None
    try:
        return Design(v, blocks, name="blocks")
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- fields
def check_prime_power(where: str, q: Any) -> int:
    """``q`` as an int after checking it is a prime power >= 2 (else ``ValueError``)."""
    import galois

    q = check_int(where, "q", q, low=2)
    if not galois.is_prime_power(q):
        near = [x for x in range(2, max(q + 6, 12)) if galois.is_prime_power(x)][:8]
        raise ValueError(f"{where}: q={q} must be a prime power (no field GF({q}) exists); "
                         f"valid orders include {', '.join(map(str, near))}, ...")
    return q


def _field(q: int) -> Any:
    """galois.GF(q) in pure-Python calculation mode.

    Designs need a few thousand field operations at most; numba compilation of the
    JIT modes costs seconds per characteristic, so the prime field and then the
    extension are created with ``compile="python-calculate"`` (results are identical).
    """
    import galois

    char = int(galois.factors(q)[0][0])
    galois.GF(char, compile="python-calculate")
    return galois.GF(q, compile="python-calculate")


def _projective_points(GF: Any, q: int, dim: int) -> np.ndarray:
    """Normalised homogeneous coordinates of PG(dim, q): first non-zero entry = 1,
    as an integer array of shape ((q^(dim+1) - 1)/(q - 1), dim + 1)."""
    rows = []
    for lead in range(dim + 1):
        tail = dim - lead
        rest = np.array(list(itertools.product(range(q), repeat=tail)), dtype=np.int64)
        rest = rest.reshape(q**tail, tail)
        block = np.zeros((q**tail, dim + 1), dtype=np.int64)
        block[:, lead] = 1
        block[:, lead + 1:] = rest
        rows.append(block)
    return np.vstack(rows)


# --------------------------------------------------------------------------- constructors
def fano() -> Design:
    """The Fano plane PG(2, 2): the (7, 3, 1)-BIBD with 7 lines {i, i+1, i+3} mod 7.

    It is the development of the Singer difference set {0, 1, 3} modulo 7 [2].

    Example:
        >>> import gradcode as gc
        >>> gc.designs.fano().params()
        {'v': 7, 'b': 7, 'r': 3, 'kappa': 3, 'lambda': 1}
    """
    return from_difference_set([0, 1, 3], 7, name="fano()")


def projective_plane(q: int) -> Design:
    """The projective plane PG(2, q): a symmetric (q^2 + q + 1, q + 1, 1)-BIBD.

    Construction: points are the 1-dimensional subspaces of GF(q)^3 (normalised
    homogeneous coordinates, first non-zero coordinate 1), lines are the 2-dimensional
    subspaces, each given by a normal vector u; point x lies on line u iff u . x = 0 in
    GF(q). v = b = q^2 + q + 1, r = kappa = q + 1, lambda = 1.

    Args:
        q: a prime power (2, 3, 4, 5, 7, 8, 9, ...).

    Returns:
        The design, with ``labels`` = the homogeneous coordinates of each point.

    Raises:
        ValueError: q is not a prime power (e.g. q = 6: no field GF(6); no projective
            plane of order 6 exists at all, by Bruck-Ryser).

    Example:
        >>> import gradcode as gc
        >>> gc.designs.projective_plane(3).params()
        {'v': 13, 'b': 13, 'r': 4, 'kappa': 4, 'lambda': 1}

    References:
        [1] Kadhe, Koyluoglu, Ramchandran, arXiv:1904.13373, 2019.
    """
    q = check_prime_power("projective_plane", q)
    GF = _field(q)
    pts = _projective_points(GF, q, 2)
    on = (GF(pts) @ GF(pts).T) == 0                  # on[line u, point x]; self-dual labels
    blocks = [tuple(np.flatnonzero(row).tolist()) for row in np.asarray(on)]
    return Design(len(pts), blocks, name=f"projective_plane(q={q})",
                  labels=[tuple(p) for p in pts.tolist()])


def affine_plane(q: int) -> Design:
    """The affine plane AG(2, q): a (q^2, q, 1)-BIBD with q^2 + q lines.

    Construction: points are GF(q)^2, point (x, y) gets index x q + y (field elements
    by their integer representation); lines are y = m x + c (q^2 of them) and x = c
    (q vertical lines), all arithmetic in GF(q). v = q^2, b = q^2 + q, r = q + 1,
    kappa = q, lambda = 1. The lines fall into q + 1 parallel classes (resolvable).

    Args:
        q: a prime power.

    Raises:
        ValueError: q is not a prime power.

    Example:
        >>> import gradcode as gc
        >>> gc.designs.affine_plane(4).params()
        {'v': 16, 'b': 20, 'r': 5, 'kappa': 4, 'lambda': 1}

    References:
        [1] Kadhe, Koyluoglu, Ramchandran, arXiv:1904.13373, 2019.
    """
    q = check_prime_power("affine_plane", q)
    GF = _field(q)
    xs = GF(np.arange(q))
    blocks = []
    for m in range(q):
        for c in range(q):
            ys = np.asarray(GF(m) * xs + GF(c), dtype=np.int64)
            blocks.append(tuple((np.arange(q) * q + ys).tolist()))
    for c in range(q):
        blocks.append(tuple((c * q + np.arange(q)).tolist()))
    labels = [(x, y) for x in range(q) for y in range(q)]
    return Design(q * q, blocks, name=f"affine_plane(q={q})", labels=labels)


def singer(q: int, m: int = 2) -> Design:
    """Singer difference-set design: points vs hyperplanes of PG(m, q), cyclically.

    Construction [2]: let alpha be a primitive element of GF(q^(m+1)) and
    v = (q^(m+1) - 1) / (q - 1). The set D = {i in Z_v : Tr(alpha^i) = 0}, with
    Tr(x) = x + x^q + ... + x^(q^m) the trace to GF(q), is a
    (v, (q^m - 1)/(q - 1), (q^(m-1) - 1)/(q - 1)) cyclic difference set; the blocks are
    its translates D + j (mod v). For m = 2 this is a cyclic model of PG(2, q).

    Args:
        q: a prime power.
        m: projective dimension (>= 2).

    Raises:
        ValueError: q is not a prime power, m < 2, or q^(m+1) > 2^24.

    Example:
        >>> import gradcode as gc
        >>> gc.designs.singer(2).params()
        {'v': 7, 'b': 7, 'r': 3, 'kappa': 3, 'lambda': 1}
    """
    q = check_prime_power("singer", q)
    m = check_int("singer", "m", m, low=2)
    if q ** (m + 1) > _MAX_FIELD:
        raise ValueError(f"singer: q^(m+1)={q ** (m + 1)} must be <= {_MAX_FIELD} "
                         f"(q={q}, m={m})")
    big = _field(q ** (m + 1))
    v = (q ** (m + 1) - 1) // (q - 1)
    powers = big.primitive_element ** np.arange(v)
    trace = powers.copy()
    term = powers.copy()
    for _ in range(m):
        term = term ** q
        trace = trace + term
    base = np.flatnonzero(np.asarray(trace) == 0).tolist()
    return from_difference_set(base, v, name=f"singer(q={q}, m={m})")


def from_difference_set(base: Iterable[int], v: int, name: str | None = None) -> Design:
    """Development of a cyclic difference set: blocks D + j (mod v), j = 0, ..., v - 1.

    D is a (v, kappa, lambda) difference set when every non-zero residue mod v arises
    exactly lambda times as a difference d - d' of elements of D; its development is then
    a symmetric (v, kappa, lambda)-BIBD.

    Args:
        base: the difference set D (distinct residues mod v).
        v: the modulus (>= 2).
        name: optional name.

    Raises:
        ValueError: D is empty, has repeated residues, or is not a difference set (the
            message names a residue whose count differs).

    Example:
        >>> import gradcode as gc
        >>> gc.designs.from_difference_set([0, 1, 3], 7).params()['lambda']
        1
    """
    v = check_int("from_difference_set", "v", v, low=2)
    if isinstance(base, (str, bytes)) or not isinstance(base, Iterable):
        raise TypeError(f"from_difference_set: base must be an iterable of integers, got "
                        f"{type(base).__name__}")
    D = [check_int("from_difference_set", "base element", x) % v for x in base]
    if not D or len(set(D)) != len(D):
        raise ValueError(f"from_difference_set: base={D} must be a non-empty set of distinct "
                         f"residues mod v={v}")
    counts = np.zeros(v, dtype=np.int64)
    for a, c in itertools.permutations(D, 2):
        counts[(a - c) % v] += 1
    if np.any(counts[1:] != counts[1]):
        bad = 1 + int(np.flatnonzero(counts[1:] != counts[1])[0])
        raise ValueError(f"from_difference_set: base={D} is not a difference set mod {v}: "
                         f"residue {bad} arises {int(counts[bad])} times but residue 1 arises "
                         f"{int(counts[1])} times")
    blocks = [tuple((x + j) % v for x in D) for j in range(v)]
    return Design(v, blocks, name=name or f"from_difference_set({sorted(D)}, v={v})")


def complete(v: int, kappa: int) -> Design:
    """The complete design: all C(v, kappa) kappa-subsets of v points.

    Parameters: b = C(v, kappa), r = C(v - 1, kappa - 1), lambda = C(v - 2, kappa - 2).

    Args:
        v: number of points (>= 1).
        kappa: block size, 1 <= kappa <= v.

    Raises:
        ValueError: kappa > v, kappa < 1, or more than 200,000 blocks.

    Example:
        >>> import gradcode as gc
        >>> gc.designs.complete(5, 2).params()
        {'v': 5, 'b': 10, 'r': 4, 'kappa': 2, 'lambda': 1}
    """
    v = check_int("complete", "v", v, low=1)
    kappa = check_int("complete", "kappa", kappa, low=1)
    if kappa > v:
        raise ValueError(f"complete: kappa={kappa} must be <= v={v} (a block is a subset of "
                         f"the points)")
    b = math.comb(v, kappa)
    if b > _MAX_BLOCKS:
        raise ValueError(f"complete: C(v={v}, kappa={kappa})={b} blocks must be <= "
                         f"{_MAX_BLOCKS}")
    return Design(v, itertools.combinations(range(v), kappa),
                  name=f"complete(v={v}, kappa={kappa})")


def complement(design: Design) -> Design:
    """The complementary design: every block B replaced by its complement P \\ B.

    For a (v, kappa, lambda)-BIBD with b blocks and replication r the complement is a
    (v, v - kappa, b - 2 r + lambda)-BIBD with replication b - r.

    Raises:
        TypeError: design is not a :class:`Design`.
        ValueError: some block is the whole point set (its complement would be empty).

    Example:
        >>> import gradcode as gc
        >>> gc.designs.complement(gc.designs.fano()).params()
        {'v': 7, 'b': 7, 'r': 4, 'kappa': 4, 'lambda': 2}
    """
    if not isinstance(design, Design):
        raise TypeError(f"complement: design must be a gradcode.designs.Design, got "
                        f"{type(design).__name__}")
    full = set(range(design.v))
    blocks = []
    for j, blk in enumerate(design.blocks):
        rest = sorted(full - set(blk))
        if not rest:
            raise ValueError(f"complement: block {j} of {design.name} holds all v={design.v} "
                             f"points, so its complement is empty")
        blocks.append(rest)
    return Design(design.v, blocks, name=f"complement({design.name})", labels=design.labels)
