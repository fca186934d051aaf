"""Graph-based codes: expander codes [1] and graph schemes with optimal decoding [2].

References:
    [1] N. Raviv, I. Tamo, R. Tandon, A. G. Dimakis, "Gradient coding from cyclic MDS
        codes and expander graphs", ICML 2018, arXiv:1707.03858.
    [2] M. Glasgow, M. Wootters, "Approximate gradient coding with optimal decoding",
        IEEE JSAIT 2021, arXiv:2006.09638.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from ..core.code import Code
from ..core.validate import as_rng, check_entries, check_int
from ._common import csr_from_coords, fmt_name, seed_param

__all__ = ["MAX_GRAPH_EDGES", "expander", "graph_scheme", "random_regular_graph"]

MAX_GRAPH_EDGES = 1_000_000
"""Most edges of a random regular graph drawn here (networkx keeps a Python dict per
vertex: about 0.5 KB per edge and seconds per 10^5 edges); checked before drawing."""


def random_regular_graph(n: int, d: int, seed: Any = None, *, where: str = "random_regular_graph",
                         n_name: str = "n") -> nx.Graph:
    """A uniformly-drawn simple d-regular graph on n vertices (networkx), seeded.

    ``n_name`` is how the caller calls the vertex count in error messages (e.g. ``k``).
    """
    n = check_int(where, n_name, n, low=1)
    d = check_int(where, "d", d, low=0)
    if d >= n:
        raise ValueError(f"{where}: d={d} must be < {n_name}={n} for a simple d-regular graph")
    if (n * d) % 2:
        raise ValueError(f"{where}: {n_name}*d={n * d} must be even for a d-regular graph "
                         f"({n_name}={n}, d={d})")
    if n * d // 2 > MAX_GRAPH_EDGES:
        raise ValueError(f"{where}: {n_name}={n}, d={d} is too large: the graph would have "
                         f"{n_name}*d/2 = {n * d // 2:,} edges, more than the limit of "
                         f"{MAX_GRAPH_EDGES:,} (gradcode.codes.graphs.MAX_GRAPH_EDGES)")
    rng = as_rng(where, seed)
    return nx.random_regular_graph(d, n, seed=int(rng.integers(2**31 - 1)))


def _check_graph(where: str, graph: Any) -> nx.Graph:
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise TypeError(f"{where}: graph must be a simple undirected networkx.Graph, got "
                        f"{type(graph).__name__}")
    if graph.number_of_nodes() == 0:
        raise ValueError(f"{where}: graph must have at least one vertex")
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise ValueError(f"{where}: graph must have no self-loops, found {loops[:3]}")
    return graph


def _edge_array(graph: nx.Graph) -> tuple[np.ndarray, np.ndarray, int]:
    nodes = list(graph.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in graph.edges], dtype=np.int64).reshape(-1, 2)
    return edges[:, 0], edges[:, 1], len(nodes)


def expander(n: int | None = None, d: int | None = None, seed: Any = None, *,
             graph: nx.Graph | None = None) -> Code:
    """Expander code: B = Adj(G) / d for a d-regular graph G on n = k vertices [1].

    Worker i computes the partitions of its d neighbours, each with coefficient 1/d.
    One-step decoding u_i = n / (n - s) on the responders satisfies, for EVERY straggler
    set of size s, ||u^T B - 1||_2 <= (lambda / d) sqrt(n s / (n - s)) with
    lambda = max(|lambda_2|, |lambda_min|) of Adj(G) (see
    ``gc.analysis.expander_bound``). Random d-regular graphs are near-Ramanujan.

    Args:
        n, d, seed: draw a random d-regular graph on n vertices (networkx, seeded).
        graph: or pass your own d-regular graph (then n, d, seed must be omitted).

    Raises:
        ValueError: n*d odd, d >= n, or the graph is not regular.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.expander(n=10, d=3, seed=0)
        >>> code.load, code.replication, float(code.B.sum(axis=0).max())
        (3, 3, 1.0)

    References:
        [1] Raviv, Tamo, Tandon, Dimakis, arXiv:1707.03858, 2018, Section 5.
    """
    where = "expander"
    if graph is None:
        if n is None or d is None:
            raise TypeError(f"{where}: pass n and d (and optionally seed), or graph=")
        graph = random_regular_graph(n, d, seed, where=where)
        name = fmt_name(where, n=n, d=d, seed=seed_param(seed))
    else:
        if n is not None or d is not None or seed is not None:
            raise TypeError(f"{where}: pass either graph= or n, d, seed, not both")
        graph = _check_graph(where, graph)
        name = f"expander(graph={graph.number_of_nodes()} vertices)"
    degrees = {deg for _, deg in graph.degree}
    if len(degrees) != 1 or 0 in degrees:
        raise ValueError(f"{where}: graph must be d-regular with d >= 1, found degrees "
                         f"{sorted(degrees)[:5]}")
    deg = degrees.pop()
    u, v, nv = _edge_array(graph)
    B = csr_from_coords(np.r_[u, v], np.r_[v, u], 1.0 / deg, (nv, nv))
    return Code(B, name=name, params={"n": nv, "d": deg}, tolerates=0)


def graph_scheme(graph: nx.Graph | None = None, *, k: int | None = None, d: int | None = None,
                 seed: Any = None) -> Code:
    """Graph scheme: machines are the EDGES of a graph on the k data blocks [2].

    Each of the m edges {u, v} is a worker holding blocks u and v with coefficient 1, so
    n = m, load = 2 and a block's replication is its degree. Decode with the closed-form
    optimal decoder ``"graph"`` (O(n + m), see :func:`gradcode.decoders.graph`). With a
    d-regular graph, m = d k / 2; random-straggler error decays exponentially in d.

    Args:
        graph: any simple undirected graph without isolated vertices ...
        k, d, seed: ... or a random d-regular graph on k vertices.

    Example:
        >>> import gradcode as gc
        >>> code = gc.codes.graph_scheme(k=8, d=3, seed=1)
        >>> code.n, code.k, code.load, code.replication
        (12, 8, 2, 3)

    References:
        [2] Glasgow, Wootters, arXiv:2006.09638, 2021.
    """
    where = "graph_scheme"
    if graph is None:
        if k is None or d is None:
            raise TypeError(f"{where}: pass graph=, or k and d (and optionally seed)")
        k = check_int(where, "k", k, low=1)
        d = check_int(where, "d", d, low=1)
        graph = random_regular_graph(k, d, seed, where=where, n_name="k")
        name = fmt_name(where, k=k, d=d, seed=seed_param(seed))
        params: dict[str, Any] = {"k": k, "d": d, "seed": seed_param(seed)}
    else:
        if k is not None or d is not None or seed is not None:
            raise TypeError(f"{where}: pass either graph= or k, d, seed, not both")
        graph = _check_graph(where, graph)
        name = (f"graph_scheme(graph={graph.number_of_nodes()} vertices, "
                f"{graph.number_of_edges()} edges)")
        params = {}
    isolated = [v for v, deg in graph.degree if deg == 0]
    if isolated:
        raise ValueError(f"{where}: every data block needs an edge; isolated vertices "
                         f"{isolated[:5]}")
    u, v, nv = _edge_array(graph)
    m = u.size
    rows = np.repeat(np.arange(m), 2)
    cols = np.column_stack([u, v]).ravel()
    B = csr_from_coords(rows, cols, 1.0, (m, nv))
    return Code(B, name=name, params=params, tolerates=0)
