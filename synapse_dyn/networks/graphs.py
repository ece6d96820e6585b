"""Graphs for resistor, flow and spring networks: lattices, random (Delaunay) graphs, layered
graphs and conversion from networkx. Structure is static (NumPy), built once in Python."""

import equinox as eqx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay


class Graph(eqx.Module):
    """An undirected graph: edge e joins ``senders[e]`` and ``receivers[e]``; optional 2D
    node ``positions`` (needed by spring networks)."""

    n_nodes: int = eqx.field(static=True)
    senders: np.ndarray
    receivers: np.ndarray
    positions: np.ndarray | None = None

    def __init__(self, n_nodes, senders, receivers, positions=None):
        senders = np.asarray(senders, dtype=np.int32).ravel()
        receivers = np.asarray(receivers, dtype=np.int32).ravel()
        if senders.shape != receivers.shape:
            raise ValueError(
                f"senders and receivers must have the same length, got {senders.size} and "
                f"{receivers.size}; pass one (sender, receiver) pair per edge."
            )
        if senders.size == 0:
            raise ValueError("the graph has no edges; pass at least one edge.")
        for name, nodes in (("senders", senders), ("receivers", receivers)):
            bad = nodes[(nodes < 0) | (nodes >= n_nodes)]
            if bad.size:
                raise ValueError(
                    f"{name} contains node indices {bad[:10].tolist()} outside [0, {n_nodes}); "
                    "number the nodes 0 .. n_nodes - 1."
                )
        loops = np.flatnonzero(senders == receivers)
        if loops.size:
            raise ValueError(f"edges {loops[:10].tolist()} are self-loops; remove them.")
        if positions is not None:
            positions = np.asarray(positions, dtype=float)
            if positions.shape != (n_nodes, 2):
                raise ValueError(
                    f"positions must have shape ({n_nodes}, 2), got {positions.shape}."
                )
        self.n_nodes = int(n_nodes)
        self.senders = senders
        self.receivers = receivers
        self.positions = positions

    @property
    def n_edges(self) -> int:
        return self.senders.size

    def laplacian(self, weights) -> sp.csr_matrix:
        """The weighted graph Laplacian L = sum_e w_e (e_i - e_j)(e_i - e_j)^T as a SciPy
        sparse matrix (for reference solves and SPICE-free checks)."""
        s, r, g = self.senders, self.receivers, np.asarray(weights, dtype=float)
        rows, cols = np.concatenate([s, r, s, r]), np.concatenate([r, s, s, r])
        values = np.concatenate([-g, -g, g, g])
        return sp.coo_matrix((values, (rows, cols)), shape=(self.n_nodes, self.n_nodes)).tocsr()

    def components_without(self, anchors, active=None) -> np.ndarray:
        """Nodes whose connected component (over the ``active`` edges) contains no node of
        ``anchors``: the floating nodes."""
        keep = np.ones(self.n_edges, bool) if active is None else np.asarray(active, bool)
        adjacency = sp.coo_matrix(
            (np.ones(int(keep.sum())), (self.senders[keep], self.receivers[keep])),
            shape=(self.n_nodes, self.n_nodes),
        )
        _, labels = connected_components(adjacency, directed=False)
        anchored = np.isin(labels, labels[np.asarray(anchors, dtype=int)])
        return np.flatnonzero(~anchored)


def lattice(rows: int, cols: int) -> Graph:
    """A rows x cols square lattice with nearest-neighbour edges; node r * cols + c sits at
    (c, r)."""
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError(f"lattice needs at least 2 nodes, got rows={rows}, cols={cols}.")
    index = np.arange(rows * cols).reshape(rows, cols)
    senders = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    receivers = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    return Graph(rows * cols, senders, receivers, np.stack([c.ravel(), r.ravel()], -1))


def random_graph(n_nodes: int, seed: int = 0) -> Graph:
    """Delaunay triangulation of ``n_nodes`` uniform random points in the unit square: a
    connected, planar, rigid random network."""
    if n_nodes < 3:
        raise ValueError(f"random_graph needs n_nodes >= 3, got {n_nodes}.")
    return _delaunay(np.random.default_rng(seed).uniform(size=(n_nodes, 2)))


def triangular_lattice(rows: int, cols: int, jitter: float = 0.0, seed: int = 0) -> Graph:
    """A rows x cols triangular lattice of unit spacing (rows offset by half a spacing),
    nodes displaced by uniform noise of amplitude ``jitter``: a rigid, well-conditioned
    spring network (Delaunay triangulation of the points)."""
    if rows < 2 or cols < 2:
        raise ValueError(f"triangular_lattice needs rows, cols >= 2, got rows={rows}, cols={cols}.")
    if not 0 <= jitter < 0.5:
        raise ValueError(f"jitter must lie in [0, 0.5) so triangles stay valid, got {jitter}.")
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    points = np.stack([c + 0.5 * (r % 2), r * np.sqrt(3) / 2], -1).reshape(-1, 2).astype(float)
    points += np.random.default_rng(seed).uniform(-jitter, jitter, size=points.shape)
    return _delaunay(points)


def _delaunay(points) -> Graph:
    simplices = Delaunay(points).simplices
    pairs = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return Graph(len(points), pairs[:, 0], pairs[:, 1], points)


def layered_graph(sizes) -> Graph:
    """Layers of ``sizes`` nodes, numbered layer by layer, with every node joined to every
    node of the next layer (a crossbar between consecutive layers)."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layered_graph needs >= 2 non-empty layers, got sizes={sizes}.")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    senders, receivers = [], []
    for k in range(len(sizes) - 1):
        lower, upper = np.meshgrid(
            np.arange(offsets[k], offsets[k + 1]), np.arange(offsets[k + 1], offsets[k + 2])
        )
        senders.append(lower.ravel())
        receivers.append(upper.ravel())
    return Graph(int(offsets[-1]), np.concatenate(senders), np.concatenate(receivers))


def from_networkx(graph) -> Graph:
    """Convert a networkx graph; nodes are renumbered in iteration order and a ``pos`` node
    attribute (2D), when every node has one, becomes the positions."""
    nodes = list(graph.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in graph.edges], dtype=int).reshape(-1, 2)
    positions = None
    if nodes and all("pos" in graph.nodes[n] for n in nodes):
        positions = np.array([graph.nodes[n]["pos"] for n in nodes], dtype=float)
    return Graph(len(nodes), edges[:, 0], edges[:, 1], positions)
