"""Elastic spring networks in 2D, for allostery: strain a source edge, control target edges.

Nodes at positions p (rest positions from the graph), springs on the edges with stiffness
k >= 0 (the learnable parameters) and rest length l = the rest distance. Energy
    E = 1/2 sum_e k_e (r_e - l_e)^2,   r_e = |p_i - p_j|,
local current dE/dk_e = 1/2 (r_e - l_e)^2. Inputs are the strains eps of the source edges:
their two end nodes are held symmetrically about the edge midpoint at distance l (1 + eps)
(this also fixes translations and rotation). The state x is the positions of all other
nodes; the outputs are the strains (r_t - l_t)/l_t of the target edges.

Equilibria solve grad F = 0 by Newton's method (optimistix; dense Jacobians, for small
networks), from the rest configuration or from ``x0``; a clamp of the target strains is solved
as the Lagrangian system grad E + J^T lambda = 0, o(x) = c by Newton on (x, lambda).
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from synapse_dyn._checks import concrete, require_finite, require_positive
from synapse_dyn._runtime_checks import poison

from ._base import AbstractNetwork, Clamp
from .graphs import Graph


class ElasticNetwork(AbstractNetwork):
    """A 2D spring network with source edges (inputs: strains) and target edges (outputs)."""

    failure: ClassVar[str] = (
        "Newton's method did not converge: strains too large for the rest configuration "
        "(lower the input strain or beta), or a floppy network."
    )
    graph: Graph
    source_edges: np.ndarray
    target_edges: np.ndarray
    free_nodes: np.ndarray
    source_nodes: np.ndarray
    rest_lengths: np.ndarray
    target_slots: np.ndarray
    min_stiffness: float = eqx.field(static=True)
    relaxation_time: float = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)

    def __init__(
        self,
        graph: Graph,
        source_edges,
        target_edges,
        min_stiffness: float = 1e-6,
        relaxation_time: float = 1.0,
        rtol: float = 1e-12,
        max_steps: int = 20,
    ):
        if graph.positions is None:
            raise ValueError(
                "an elastic network needs node positions; build the graph with positions."
            )
        source_edges = np.asarray(source_edges, dtype=np.int32).ravel()
        target_edges = np.asarray(target_edges, dtype=np.int32).ravel()
        for name, edges in (("source_edges", source_edges), ("target_edges", target_edges)):
            bad = edges[(edges < 0) | (edges >= graph.n_edges)]
            if bad.size or edges.size == 0:
                raise ValueError(
                    f"{name} must be a non-empty list of edge indices in [0, {graph.n_edges}), "
                    f"got {edges.tolist()}."
                )
        ends = lambda edges: np.concatenate([graph.senders[edges], graph.receivers[edges]])
        source_nodes = ends(source_edges)
        if np.unique(source_nodes).size != source_nodes.size:
            raise ValueError(
                f"source edges {source_edges.tolist()} share nodes; pick edges with distinct "
                "end nodes."
            )
        touching = np.intersect1d(ends(target_edges), source_nodes)
        if touching.size:
            raise ValueError(
                f"target edges touch source nodes {touching.tolist()}; targets must join free "
                "nodes."
            )
        require_positive("min_stiffness", min_stiffness)
        self.graph = graph
        self.source_edges = source_edges
        self.target_edges = target_edges
        self.source_nodes = source_nodes.astype(np.int32)
        self.free_nodes = np.setdiff1d(np.arange(graph.n_nodes), source_nodes).astype(np.int32)
        ends_t = np.stack([graph.senders[target_edges], graph.receivers[target_edges]])
        self.target_slots = np.searchsorted(self.free_nodes, ends_t).astype(np.int32)
        delta = graph.positions[graph.senders] - graph.positions[graph.receivers]
        self.rest_lengths = np.linalg.norm(delta, axis=1)
        if np.any(self.rest_lengths <= 0):
            raise ValueError("edges of zero rest length (coincident nodes); move the nodes apart.")
        self.min_stiffness = float(min_stiffness)
        self.relaxation_time = float(relaxation_time)
        self.rtol = float(rtol)
        self.max_steps = int(max_steps)
        self.n_inputs = int(source_edges.size)
        self.n_outputs = int(target_edges.size)
        self._check_rigid(np.ones(graph.n_edges))

    def _check_rigid(self, stiffness):
        """Raise if the network has a zero mode at rest (nodes free to move at no cost): the
        rest Hessian is the linear-elastic stiffness sum_e k_e n_e n_e^T on the free nodes."""
        g = self.graph
        n = g.n_nodes
        unit = (g.positions[g.senders] - g.positions[g.receivers]) / self.rest_lengths[:, None]
        blocks = stiffness[:, None, None] * unit[:, :, None] * unit[:, None, :]
        matrix = np.zeros((n, n, 2, 2))
        for i, j, sign in (
            (g.senders, g.senders, 1),
            (g.receivers, g.receivers, 1),
            (g.senders, g.receivers, -1),
            (g.receivers, g.senders, -1),
        ):
            np.add.at(matrix, (i, j), sign * blocks)
        free = self.free_nodes
        matrix = (
            matrix[np.ix_(free, free)].transpose(0, 2, 1, 3).reshape(2 * free.size, 2 * free.size)
        )
        values, vectors = np.linalg.eigh(matrix)
        if values[0] < 1e-9 * max(values[-1], 1e-300):
            weight = np.linalg.norm(vectors[:, 0].reshape(-1, 2), axis=1)
            nodes = free[np.argsort(weight)[::-1][: min(10, int((weight > 1e-6).sum()))]]
            raise ValueError(
                f"the spring network is floppy: nodes {sorted(nodes.tolist())} can move at no "
                "elastic cost "
                "(a zero mode); add springs to rigidify it or remove those nodes."
            )

    def positions(self, x, inputs):
        """All node positions: free nodes from x, source nodes strained symmetrically."""
        rest = jnp.asarray(self.graph.positions)
        a, b = self.graph.senders[self.source_edges], self.graph.receivers[self.source_edges]
        middle = 0.5 * (rest[a] + rest[b])
        half = 0.5 * (rest[a] - rest[b]) * (1.0 + inputs)[:, None]
        full = (
            jnp.zeros_like(rest, dtype=jnp.result_type(x, inputs, float)).at[self.free_nodes].set(x)
        )
        return full.at[a].set(middle + half).at[b].set(middle - half)

    def lengths(self, p):
        return jnp.linalg.norm(p[self.graph.senders] - p[self.graph.receivers], axis=-1)

    def energy(self, x, w, inputs):
        """E = 1/2 sum k (r - l)^2."""
        return 0.5 * jnp.sum(w * (self.lengths(self.positions(x, inputs)) - self.rest_lengths) ** 2)

    def synaptic_current(self, x, w, inputs):
        """dE/dk = 1/2 (r - l)^2."""
        del w
        return 0.5 * (self.lengths(self.positions(x, inputs)) - self.rest_lengths) ** 2

    def output(self, x):
        """Target edge strains (r - l)/l (target edges join free nodes only)."""
        r = jnp.linalg.norm(x[self.target_slots[0]] - x[self.target_slots[1]], axis=-1)
        rest = jnp.asarray(self.rest_lengths)[self.target_edges]
        return (r - rest) / rest

    def clamp(self, x, values):
        raise NotImplementedError(
            "the outputs of an elastic network are edge strains, not state coordinates; clamp them "
            "through equilibrium(w, inputs, Clamp(values)) (a constrained Newton solve)."
        )

    def solve(self, w, inputs, nudge=None, x0=None):
        x0 = self.initial_state() if x0 is None else x0
        if isinstance(nudge, Clamp):

            def kkt(y):
                x, multiplier = y[: -self.n_outputs].reshape(x0.shape), y[-self.n_outputs :]
                lagrangian = lambda x: (
                    self.energy(x, w, inputs) + multiplier @ (self.output(x) - nudge.values)
                )
                return jnp.concatenate(
                    [jax.grad(lagrangian)(x).ravel(), self.output(x) - nudge.values]
                )

            y = newton(
                kkt,
                jnp.concatenate([x0.ravel(), jnp.zeros(self.n_outputs)]),
                self.rtol,
                self.max_steps,
            )
            return y[: -self.n_outputs].reshape(x0.shape)
        gradient = lambda y: jax.grad(self.total_energy)(
            y.reshape(x0.shape), w, inputs, nudge
        ).ravel()
        return newton(gradient, x0.ravel(), self.rtol, self.max_steps).reshape(x0.shape)

    def initial_state(self):
        """The rest positions of the free nodes."""
        return jnp.asarray(self.graph.positions[self.free_nodes])

    def project(self, w):
        """k <- max(k, min_stiffness)."""
        return jnp.maximum(w, self.min_stiffness)

    def init(self, key):
        """Stiffnesses uniform in [0.5, 1.5]."""
        return jax.random.uniform(key, (self.graph.n_edges,), minval=0.5, maxval=1.5)

    def check_parameters(self, w):
        if np.shape(w) != (self.graph.n_edges,):
            raise ValueError(
                f"stiffnesses must have shape ({self.graph.n_edges},), one per edge, got "
                f"{np.shape(w)}."
            )
        require_finite("stiffnesses", w)
        values = concrete(w)
        if values is not None and np.any(values < 0):
            bad = np.flatnonzero(values < 0)
            raise ValueError(
                f"stiffnesses must be >= 0, got negative values on edges {bad[:10].tolist()} "
                f"(min {values.min()!r}); use network.project(w) to clip them to "
                f"{self.min_stiffness}."
            )


def newton(residual, y0, tolerance: float, steps: int):
    """Newton's method for residual(y) = 0 (``optimistix.Newton``, dense Jacobians), stopping
    once every component of the step is below tolerance (1 + |y_i|) and of the residual below
    tolerance, after at most ``steps`` iterations; differentiable by the implicit function
    theorem. NaN unless |residual| <= sqrt(tolerance) (1 + |y|) at the end."""
    solution = optx.root_find(
        lambda y, _: residual(y),
        optx.Newton(rtol=tolerance, atol=tolerance),
        y0,
        max_steps=steps,
        throw=False,  # a solve that used every step is judged by its residual below
    )
    y = solution.value
    return poison(
        y, jnp.linalg.norm(residual(y)) <= jnp.sqrt(tolerance) * (1.0 + jnp.linalg.norm(y))
    )
