"""Elastic spring networks in 2D, for allostery: strain a source edge, control target edges.

Nodes at positions p (rest positions from the graph), springs on the edges with stiffness
k >= 0 (the learnable parameters) and rest length l = the rest distance. Energy
    E = 1/2 sum_e k_e (r_e - l_e)^2,   r_e = |p_i - p_j|,
local current dE/dk_e = 1/2 (r_e - l_e)^2. Inputs are the strains eps of the source edges:
their two end nodes are held symmetrically about the edge midpoint at distance l (1 + eps)
(this also fixes translations and rotation). The state x is the positions of all other
nodes; the outputs are the strains (r_t - l_t)/l_t of the target edges.

Equilibria solve grad F = 0 by Newton's method from the rest configuration or from ``x0``;
a clamp of the target strains is solved as the Lagrangian system grad E + J^T lambda = 0,
o(x) = c by Newton on (x, lambda). Two solvers:

* dense (default, small networks): ``optimistix.Newton`` with dense Jacobians;
* ``SparseDirect()`` (10^3-10^5 nodes): the springs' Hessian H = sum_e K_e (2 x 2 blocks
  K_e = k_e [(1 - l_e/r_e) I + (l_e/r_e) n_e n_e^T] on the edge's two nodes, sparse) is
  factorised by SuperLU, and the nudge or the constraint, which act on the target edges'
  nodes alone, enter through the Woodbury identity and a Schur complement on W = H^-1 P
  (P: those nodes' coordinates). Chord iterations use the factorisation of the Hessian at
  rest (sources unstrained) while each step shrinks the last one by ``CONTRACTION`` or more,
  then Newton steps refactorise at every point. Every free state from rest and every
  perturbed state (each nudge level of a TCL cycle) of one set of stiffnesses share that
  factorisation, and so do later stiffnesses within ``STAND_IN`` of it (``sparse_factor``):
  a TCL cycle on a 10^4-node lattice factorises nothing while its stiffnesses move less than
  5 %.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from synapse_dyn._checks import concrete, require_finite, require_positive
from synapse_dyn._runtime_checks import poison

from ._base import AbstractNetwork, Clamp, SoftNudge
from .graphs import Graph
from .sparse import SparseDirect, sparse_factor

# a chord step must shrink the previous one by this factor, or Newton takes over: a Newton
# step factorises the Hessian of every nudge level, the cost of tens of chord steps (the rest
# Hessian's chord steps for a nudge shrink by up to 0.5 for a step or two, then faster)
CONTRACTION = 0.75
# a chord step may use a factorised rest Hessian whose stiffnesses are within this relative
# distance of the current ones (``sparse_factor``): it shrinks the linear error by this factor
STAND_IN = 0.05


class ElasticNetwork(AbstractNetwork):
    """A 2D spring network with source edges (inputs: strains) and target edges (outputs).
    ``solver``: None for dense Newton (small networks), ``SparseDirect()`` for the sparse
    path (10^3-10^5 nodes; see the module docstring)."""

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
    solver: SparseDirect | None
    # the sparse path: (row, col) of every spring's Hessian entry on the free coordinates
    # (x.ravel()), which entry of which edge's 2 x 2 block it is (flat index), its sign, and
    # the coordinates of the target edges' nodes (P)
    hessian_rows: np.ndarray
    hessian_cols: np.ndarray
    hessian_entries: np.ndarray
    hessian_signs: np.ndarray
    target_dofs: np.ndarray
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
        solver: SparseDirect | None = None,
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
        if solver is not None and not isinstance(solver, SparseDirect):
            raise ValueError(
                f"solver must be None (dense Newton) or SparseDirect(), got {solver!r}."
            )
        self.solver = solver
        self._sparsity(graph)
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

    def _sparsity(self, graph: Graph) -> None:
        """The sparse Hessian's pattern on the free coordinates (dof 2 slot + axis)."""
        slot = np.full(graph.n_nodes, -1)
        slot[self.free_nodes] = np.arange(self.free_nodes.size)
        edges = np.arange(graph.n_edges)
        parts: list[tuple[np.ndarray, ...]] = []
        s, r = graph.senders, graph.receivers
        for a, b, sign in ((s, s, 1.0), (r, r, 1.0), (s, r, -1.0), (r, s, -1.0)):
            keep = (slot[a] >= 0) & (slot[b] >= 0)
            for i in range(2):
                for j in range(2):
                    parts.append(
                        (
                            2 * slot[a][keep] + i,
                            2 * slot[b][keep] + j,
                            4 * edges[keep] + 2 * i + j,
                            np.full(keep.sum(), sign),
                        )
                    )
        rows, cols, entries, signs = (np.concatenate(column) for column in zip(*parts, strict=True))
        self.hessian_rows, self.hessian_cols = rows.astype(np.int32), cols.astype(np.int32)
        self.hessian_entries, self.hessian_signs = entries.astype(np.int32), signs
        nodes = np.unique(self.target_slots)
        self.target_dofs = np.stack([2 * nodes, 2 * nodes + 1], -1).ravel().astype(np.int32)

    def _check_rigid(self, stiffness):
        """Raise if the network has a zero mode at rest (nodes free to move at no cost): the
        smallest eigenvalue of the rest Hessian sum_e k_e n_e n_e^T on the free nodes
        (shift-invert Lanczos on the sparse matrix: one sparse factorisation, also at 10^5
        nodes) below 1e-9 times the Gershgorin bound of the largest."""
        g = self.graph
        unit = (g.positions[g.senders] - g.positions[g.receivers]) / self.rest_lengths[:, None]
        blocks = stiffness[:, None, None] * unit[:, :, None] * unit[:, None, :]
        n = 2 * self.free_nodes.size
        matrix = sp.csc_matrix(
            (self._on_pattern(blocks), (self.hessian_rows, self.hessian_cols)), shape=(n, n)
        )
        largest = float(abs(matrix).sum(axis=1).max())
        value, vector = spla.eigsh(matrix, k=1, sigma=-1e-6 * largest, which="LM")
        if value[0] < 1e-9 * largest:
            weight = np.linalg.norm(vector[:, 0].reshape(-1, 2), axis=1)
            free = self.free_nodes
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
        if self.solver is not None:
            return self._sparse_solve(w, inputs, nudge, x0)
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

    def spring_hessian(self, x, w, inputs):
        """d^2E/dx^2 on the sparse pattern: per spring the block K_e = d^2/dd^2 [k_e/2 (|d| -
        l_e)^2] at d = p_i - p_j, +K_e on the (i, i) and (j, j) blocks, -K_e on (i, j), (j, i)
        (entries on source nodes dropped)."""
        p = self.positions(x, inputs)
        d = p[self.graph.senders] - p[self.graph.receivers]
        spring = lambda d, k, rest: 0.5 * k * (jnp.linalg.norm(d) - rest) ** 2  # noqa: E731
        blocks = jax.vmap(jax.hessian(spring))(d, w, jnp.asarray(self.rest_lengths))
        return self._on_pattern(blocks)

    def _on_pattern(self, blocks):
        """The sparse pattern's values from the springs' 2 x 2 blocks (n_edges, 2, 2)."""
        return self.hessian_signs * blocks.reshape(-1)[self.hessian_entries]

    def _sparse_solve(self, w, inputs, nudge, x0):
        """Newton steps on y = x (and lambda for a clamp) for grad L(y) = 0, L = E + phi with
        phi the nudge beta C(o) or the constraint lambda . (o - c), which act on the target
        edges' coordinates x_T = P^T x alone. A step solves
        [[H + P B P^T, J^T], [J, 0]] dy = -grad L (the last row and column for a clamp only)
        with the factorised springs' Hessian H, B = d^2 phi/dx_T^2, J = do/dx: Woodbury,
        (H + P B P^T)^-1 v = u - W^T (I + B Q)^-1 B u_T with u = H^-1 v, W^T = H^-1 P,
        Q = P^T W^T; then the Schur complement S = J G, G = (H + P B P^T)^-1 J^T, for lambda.
        Chord steps use the Hessian at rest (the sources unstrained) under w, or a factorised one
        within ``STAND_IN`` of it (``sparse_factor``): one factorisation serves every sample of
        a batch, every nudge level, and the later solves while the stiffnesses change little.
        """
        x0 = self.initial_state() if x0 is None else x0
        n, m = x0.size, self.n_outputs if isinstance(nudge, Clamp) else 0
        targets = self.target_dofs
        unit = jnp.zeros((targets.size, n)).at[jnp.arange(targets.size), targets].set(1.0)
        state = lambda y: y[:n].reshape(x0.shape)  # noqa: E731

        def coupling(y):
            o = self.output(state(y))
            if isinstance(nudge, Clamp):
                return y[n:] @ (o - nudge.values)
            if isinstance(nudge, SoftNudge):
                return nudge.beta * nudge.cost(o, nudge.target)
            return jnp.zeros(())

        lagrangian = lambda y: self.energy(state(y), w, inputs) + coupling(y)  # noqa: E731

        def step(y, residual, projection, solved):
            """The step at y (``residual`` = grad L there) from u = H^-1 grad_x L (``solved``)
            and W (``projection``)."""
            if nudge is None:
                return -solved
            block = jax.hessian(lambda t: coupling(y.at[targets].set(t)))(y[targets])  # B
            capacitance = jnp.eye(targets.size) + block @ projection[:, targets]

            def inverse(v):  # (H + P B P^T)^-1 from H^-1 v
                return v - projection.T @ jnp.linalg.solve(capacitance, block @ v[targets])

            dx = -inverse(solved)
            if not m:
                return dx
            jacobian = jax.jacobian(lambda t: self.output(state(y.at[targets].set(t))))(y[targets])
            gain = inverse(projection.T @ jacobian.T)  # G
            multiplier = jnp.linalg.solve(
                jacobian @ gain[targets], residual[n:] + jacobian @ dx[targets]
            )
            return jnp.concatenate([dx - gain @ multiplier, multiplier])

        def size(dy, y):
            return jnp.max(jnp.abs(dy)) / (1.0 + jnp.max(jnp.abs(y)))

        def factorise(x, inputs, within=0.0):
            hessian = self.spring_hessian(x, w, inputs)
            return sparse_factor(self.hessian_rows, self.hessian_cols, hessian, within)

        def chord(y):
            """Steps with the rest Hessian's factorisation while they contract."""
            factor = factorise(self.initial_state(), jnp.zeros_like(inputs), STAND_IN)
            projection = factor.solve(unit) if nudge is not None else unit

            def body(carry):
                y, previous, count, _ = carry
                residual = jax.grad(lagrangian)(y)
                dy = step(y, residual, projection, factor.solve(residual[:n]))
                change = size(dy, y + dy)
                return y + dy, change, count + 1, (count > 0) & (change > CONTRACTION * previous)

            def going(carry):
                _, change, count, slow = carry
                return (change > self.rtol) & ~slow & (count < 4 * self.max_steps)

            return jax.lax.while_loop(going, body, (y, jnp.inf, 0, False))[:2]

        def newton(y, change):
            """Steps with the factorisation at every point."""

            def body(carry):
                y, _, count = carry
                residual = jax.grad(lagrangian)(y)
                rhs = residual[None, :n]
                rhs = rhs if nudge is None else jnp.concatenate([rhs, unit])
                solved = factorise(state(y), inputs).solve(rhs)
                dy = step(y, residual, solved[1:], solved[0])
                return y + dy, size(dy, y + dy), count + 1

            going = lambda carry: (carry[1] > self.rtol) & (carry[2] < self.max_steps)  # noqa: E731
            return jax.lax.while_loop(going, body, (y, change, 0))[0]

        def solve(residual, y0):
            del residual
            return newton(*chord(y0))

        def tangent_solve(linear, rhs):
            operator = lx.FunctionLinearOperator(linear, jax.eval_shape(lambda: rhs))
            return lx.linear_solve(operator, rhs, lx.GMRES(rtol=1e-13, atol=1e-15)).value

        y0 = jnp.concatenate([x0.ravel(), jnp.zeros(m)])
        y = jax.lax.custom_root(jax.grad(lagrangian), y0, solve, tangent_solve)
        converged = jnp.linalg.norm(jax.grad(lagrangian)(y)) <= jnp.sqrt(self.rtol) * (
            1.0 + jnp.linalg.norm(y)
        )
        return poison(state(y), converged)

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
