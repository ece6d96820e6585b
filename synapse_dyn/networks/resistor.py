"""Linear resistor (flow) networks on any graph.

Node potentials v; edge conductances g >= 0 (the learnable parameters w); voltage sources set
the input nodes to ``inputs`` and ground nodes to 0; the state x is the potentials of the free
nodes. Energy (co-content, half the dissipated power)
    E(x; g, inputs) = 1/2 sum_e g_e (v_i - v_j)^2,
whose stationarity at free nodes is Kirchhoff's current law: (L(g) v)_i = 0, L the weighted
Laplacian. The equilibrium is one linear solve on the free nodes, A x = b with
A = L_ff and b = -L_fs v_s (lineax; dense Cholesky for small networks, matrix-free Jacobi
preconditioned CG on edge lists for large ones). The local synaptic current is
dE/dg_e = 1/2 (v_i - v_j)^2.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from synapse_dyn._checks import concrete, require_finite, require_positive
from synapse_dyn._runtime_checks import poison

from ._base import AbstractNetwork, Clamp, Nudge, SoftNudge
from .graphs import Graph
from .sparse import SparseDirect, sparse_solve
from .spice import netlist


class ResistorNetwork(AbstractNetwork):
    """A linear resistor network with voltage sources on ``input_nodes``, grounded
    ``ground_nodes`` and read-out at ``output_nodes`` (potentials).

    ``solver``: a lineax solver (default dense Cholesky); ``lx.CG`` selects the matrix-free
    path (Jacobi-preconditioned), ``SparseDirect()`` a sparse direct solve. Conductances
    are projected onto [``min_conductance``, inf) when training, so the Laplacian stays
    nonsingular.
    """

    graph: Graph
    input_nodes: Int[np.ndarray, " n_in"]
    output_nodes: Int[np.ndarray, " n_out"]
    ground_nodes: Int[np.ndarray, " n_ground"]
    free_nodes: Int[np.ndarray, " n_free"]
    output_slots: Int[np.ndarray, " n_out"]
    solver: lx.AbstractLinearSolver | SparseDirect
    min_conductance: float
    relaxation_time: float
    n_inputs: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)
    n_free: int = eqx.field(static=True)
    cost_iterations: int = eqx.field(static=True)

    def __init__(
        self,
        graph: Graph,
        input_nodes,
        output_nodes,
        ground_nodes=(),
        solver: lx.AbstractLinearSolver | SparseDirect | None = None,
        min_conductance: float = 1e-6,
        relaxation_time: float = 1.0,
        cost_iterations: int = 50,
    ):
        n = graph.n_nodes
        sets = {}
        for name, nodes in (
            ("input_nodes", input_nodes),
            ("output_nodes", output_nodes),
            ("ground_nodes", ground_nodes),
        ):
            nodes = np.asarray(nodes, dtype=np.int32).ravel()
            bad = nodes[(nodes < 0) | (nodes >= n)]
            if bad.size:
                raise ValueError(
                    f"{name} {bad.tolist()} are not nodes of the graph (0 .. {n - 1})."
                )
            if np.unique(nodes).size != nodes.size:
                raise ValueError(
                    f"{name} contains repeated nodes {nodes.tolist()}; list each once."
                )
            sets[name] = nodes
        fixed = np.concatenate([sets["input_nodes"], sets["ground_nodes"]])
        if fixed.size == 0:
            raise ValueError(
                "the network needs at least one input or ground node to fix the potential."
            )
        if np.unique(fixed).size != fixed.size:
            raise ValueError("a node cannot be both an input and a ground node.")
        clash = np.intersect1d(sets["output_nodes"], fixed)
        if clash.size:
            raise ValueError(
                f"output nodes {clash.tolist()} are also inputs or ground; outputs must be "
                "free nodes."
            )
        if sets["output_nodes"].size == 0:
            raise ValueError("the network needs at least one output node.")
        floating = graph.components_without(fixed)
        if floating.size:
            raise ValueError(
                f"nodes {floating[:20].tolist()}{' ...' if floating.size > 20 else ''} have no "
                "path to an input or ground node; connect them or ground one node of each "
                "component."
            )
        require_positive("min_conductance", min_conductance)
        require_positive("relaxation_time", relaxation_time)
        free = np.setdiff1d(np.arange(n), fixed).astype(np.int32)
        self.graph = graph
        self.input_nodes = sets["input_nodes"]
        self.output_nodes = sets["output_nodes"]
        self.ground_nodes = sets["ground_nodes"]
        self.free_nodes = free
        self.output_slots = np.searchsorted(free, sets["output_nodes"]).astype(np.int32)
        self.solver = lx.Cholesky() if solver is None else solver
        self.min_conductance = float(min_conductance)
        self.relaxation_time = float(relaxation_time)
        self.n_inputs = int(sets["input_nodes"].size)
        self.n_outputs = int(sets["output_nodes"].size)
        self.n_free = int(free.size)
        self.cost_iterations = int(cost_iterations)

    # ---- state <-> node potentials ------------------------------------------------------

    def potentials(
        self, x: Float[Array, " n_free"], inputs: Float[Array, " n_in"]
    ) -> Float[Array, " n"]:
        """All node potentials v: free nodes from x, sources at ``inputs``, ground at 0."""
        v = jnp.zeros(self.graph.n_nodes, dtype=jnp.result_type(x, inputs, float))
        return v.at[self.free_nodes].set(x).at[self.input_nodes].set(inputs)

    def drops(self, v: Float[Array, " n"]) -> Float[Array, " n_edges"]:
        """Edge voltage drops v_i - v_j."""
        return v[self.graph.senders] - v[self.graph.receivers]

    def currents(self, v: Float[Array, " n"], g: Float[Array, " n_edges"]) -> Float[Array, " n"]:
        """Net current leaving each node through the resistors, (L(g) v)_i."""
        flow = g * self.drops(v)
        n = self.graph.n_nodes
        return jax.ops.segment_sum(flow, self.graph.senders, n) - jax.ops.segment_sum(
            flow, self.graph.receivers, n
        )

    # ---- AbstractNetwork ----------------------------------------------------------------

    def energy(self, x, w, inputs):
        """E = 1/2 sum_e g_e (v_i - v_j)^2."""
        return 0.5 * jnp.sum(w * self.drops(self.potentials(x, inputs)) ** 2)

    def power(self, x, w, inputs):
        """Joule power dissipated at state x, P = sum_e g_e (v_i - v_j)^2 = 2 E >= 0 (heat into
        the environment per time), in potential^2 x conductance: the energy unit, a power."""
        return jnp.sum(w * self.drops(self.potentials(x, inputs)) ** 2)

    def synaptic_current(self, x, w, inputs):
        """dE/dg_e = 1/2 (v_i - v_j)^2."""
        del w
        return 0.5 * self.drops(self.potentials(x, inputs)) ** 2

    def output(self, x):
        return x[self.output_slots]

    def clamp(self, x, values):
        return x.at[self.output_slots].set(values)

    def solve(self, w, inputs, nudge: Nudge = None, x0=None):
        """Solve (M A M + D) x = r on the free nodes: M masks clamped outputs (which keep
        their values), D adds the soft nudge's curvature beta c at the outputs; for a
        non-quadratic cost the right-hand side is re-linearised ``cost_iterations`` times
        (majorise-minimise, exact in one step for the MSE)."""
        w = jnp.asarray(w, dtype=float)
        zero = jnp.zeros(self.n_free)
        solve_mask = jnp.ones(self.n_free)
        pinned = zero
        if isinstance(nudge, Clamp):
            solve_mask = self.clamp(solve_mask, jnp.zeros(self.n_outputs))
            pinned = self.clamp(zero, nudge.values)
        # b = -(L v_fixed)_f with clamped outputs counted as fixed
        b = -self.currents(self.potentials(pinned, inputs), w)[self.free_nodes]
        rhs = solve_mask * b + pinned
        extra = zero
        if isinstance(nudge, SoftNudge):
            extra = self.clamp(zero, nudge.majoriser_curvature() * jnp.ones(self.n_outputs))
        solve = self._linear_solver(w, solve_mask, extra)

        guess = self.initial_state() if x0 is None else jnp.asarray(x0, dtype=float)
        if not isinstance(nudge, SoftNudge):
            return solve(rhs, guess)
        beta, cost, y = nudge.beta, nudge.cost, nudge.target

        def majorise_minimise(x):
            o = self.output(x)
            force = nudge.majoriser_curvature() * o - beta * cost.grad(o, y)
            return solve(rhs + self.clamp(zero, force), x)

        iterations = 1 if cost.quadratic else self.cost_iterations
        return jax.lax.fori_loop(0, iterations, lambda _, x: majorise_minimise(x), guess)

    def _linear_solver(self, w, solve_mask, extra):
        """solve(rhs, guess) for the masked system (M A M + diag(1 - M + D)) x = rhs."""
        degree = jax.ops.segment_sum(
            w, self.graph.senders, self.graph.n_nodes
        ) + jax.ops.segment_sum(w, self.graph.receivers, self.graph.n_nodes)
        diagonal = solve_mask * degree[self.free_nodes] + (1 - solve_mask) + extra
        zeros_in = jnp.zeros(len(self.input_nodes))

        def matvec(x):
            laplacian = self.currents(self.potentials(solve_mask * x, zeros_in), w)[self.free_nodes]
            return solve_mask * laplacian + (1 - solve_mask + extra) * x

        tags = (lx.symmetric_tag, lx.positive_semidefinite_tag)
        if isinstance(self.solver, lx.CG):
            operator = lx.FunctionLinearOperator(
                matvec, jax.ShapeDtypeStruct((self.n_free,), w.dtype), tags=tags
            )
            # the preconditioner and the initial guess do not change the solution: no tangents
            jacobi = lx.TaggedLinearOperator(
                lx.DiagonalLinearOperator(jax.lax.stop_gradient(1.0 / diagonal)),
                lx.positive_semidefinite_tag,
            )

            def conjugate_gradients(rhs, guess):
                solution = lx.linear_solve(
                    operator,
                    rhs,
                    self.solver,
                    options={"preconditioner": jacobi, "y0": jax.lax.stop_gradient(guess)},
                    throw=False,
                )
                return poison(solution.value, solution.result == lx.RESULTS.successful)

            return conjugate_gradients
        # off-diagonal entries -g_e between free end nodes (fixed ends contribute 0 anywhere)
        slots = jnp.minimum(
            jnp.searchsorted(jnp.asarray(self.free_nodes), jnp.arange(self.graph.n_nodes)),
            self.n_free - 1,
        )
        is_free = jnp.zeros(self.graph.n_nodes, bool).at[self.free_nodes].set(True)
        s, r = self.graph.senders, self.graph.receivers
        off = (
            jnp.where(is_free[s] & is_free[r], -w, 0.0)
            * solve_mask[slots[s]]
            * solve_mask[slots[r]]
        )
        rows = jnp.concatenate([slots[s], slots[r], jnp.arange(self.n_free)])
        cols = jnp.concatenate([slots[r], slots[s], jnp.arange(self.n_free)])
        values = jnp.concatenate([off, off, diagonal])
        if isinstance(self.solver, SparseDirect):
            return lambda rhs, guess: jax.lax.custom_linear_solve(
                matvec, rhs, lambda _, b: sparse_solve(rows, cols, values, b), symmetric=True
            )
        matrix = jnp.zeros((self.n_free, self.n_free)).at[rows, cols].add(values)
        # throw=False: no host callback (synapse_dyn._runtime_checks); singular shows as NaN
        return lambda rhs, guess: (
            lx.linear_solve(
                lx.MatrixLinearOperator(matrix, tags), rhs, self.solver, throw=False
            ).value
        )

    def thevenin(
        self, w: Float[Array, " n_edges"], inputs: Float[Array, "batch n_in"]
    ) -> tuple[Float[Array, "batch n_free"], "Thevenin"]:
        """The free equilibria of a batch of inputs and the network seen from its outputs
        (``Thevenin``), from one batched solve: with a direct solver, one factorisation of
        A(w) serves the batch and the n_out columns G = A^-1 E."""
        w = jnp.asarray(w, dtype=float)
        zero = jnp.zeros(self.n_free)
        sources = jax.vmap(lambda i: -self.currents(self.potentials(zero, i), w)[self.free_nodes])
        # E^T: a unit current injected at each output
        units = (
            jnp.zeros((self.n_outputs, self.n_free))
            .at[jnp.arange(self.n_outputs), self.output_slots]
            .set(1.0)
        )
        solve = self._linear_solver(w, jnp.ones(self.n_free), zero)
        states = jax.vmap(lambda rhs: solve(rhs, zero))(jnp.concatenate([sources(inputs), units]))
        self.check_state(states)
        batch = len(inputs)
        return states[:batch], Thevenin(self, states[batch:].T)

    def initial_state(self):
        """Zero potential at every free node (the CG start without ``x0``)."""
        return jnp.zeros(self.n_free)

    def project(self, w):
        """g <- max(g, min_conductance)."""
        return jnp.maximum(w, self.min_conductance)

    def init(self, key):
        """Conductances uniform in [0.5, 1.5]."""
        return jax.random.uniform(key, (self.graph.n_edges,), minval=0.5, maxval=1.5)

    def check_parameters(self, w):
        """Conductances: shape (n_edges,), finite, >= 0, and no node cut off from every source
        and ground by zero conductances."""
        if np.shape(w) != (self.graph.n_edges,):
            raise ValueError(
                f"conductances must have shape ({self.graph.n_edges},), one per edge, got "
                f"{np.shape(w)}."
            )
        require_finite("conductances", w)
        values = concrete(w)
        if values is None:
            return
        negative = np.flatnonzero(values < 0)
        if negative.size:
            raise ValueError(
                f"conductances must be >= 0, got negative values on edges {negative[:10].tolist()} "
                f"(min {values.min()!r}); use network.project(w) to clip them to "
                f"{self.min_conductance}."
            )
        fixed = np.concatenate([self.input_nodes, self.ground_nodes])
        floating = self.graph.components_without(fixed, active=values > 0)
        if floating.size:
            raise ValueError(
                f"with these conductances nodes {floating[:20].tolist()} have no path to an input "
                "or ground node (their edges have zero conductance); use network.project(w)."
            )

    # ---- SPICE --------------------------------------------------------------------------

    def to_spice(self, w: Float[ArrayLike, " n_edges"], inputs: Float[ArrayLike, " n_in"]) -> str:
        """A SPICE netlist of the free equilibrium: resistors R = 1/g, DC voltage sources on
        the inputs, ground nodes tied to node 0, an operating-point analysis."""
        return netlist(self, np.asarray(w, float), np.asarray(inputs, float))


class Thevenin(eqx.Module):
    """A resistor network seen from its output nodes, its sources at their values: a current
    c injected at the outputs moves the free equilibrium x_free to x_free + G c, the outputs
    to o_free + S c, with G = A^-1 E (E: the output columns) and S = E^T G the transfer
    resistances between the outputs. A soft nudge or a clamp acts on the outputs alone, so
    its equilibrium is a problem in the n_out currents: exact, no further solve of the network.
    ``output`` and ``equilibrium`` answer as the network's own (for ``rule.perturb``)."""

    network: ResistorNetwork
    gain: Float[Array, "n_free n_out"]  # G

    def output(self, x: Float[Array, " n_free"]) -> Float[Array, " n_out"]:
        return self.network.output(x)

    def equilibrium(
        self, w: Float[Array, " n_edges"], inputs: Float[Array, " n_in"], nudge: Nudge, x0
    ) -> Float[Array, " n_free"]:
        """The equilibrium under ``nudge`` from ``x0``, the free equilibrium of these w and
        inputs (``thevenin``'s states). Clamp at values v: c = S^-1 (v - o_free). Soft nudge:
        the majorise-minimise iterations of ``ResistorNetwork.solve`` in the currents,
        (I + kappa S) c' = kappa (o - o_free) - beta dC/do(o), o = o_free + S c (kappa the
        majoriser curvature; one step, exact, for the MSE)."""
        del w, inputs
        if nudge is None:
            return x0
        o_free = self.output(x0)
        coupling = self.gain[self.network.output_slots]  # S
        if isinstance(nudge, Clamp):
            currents = jnp.linalg.solve(coupling, nudge.values - o_free)
        else:
            kappa = nudge.majoriser_curvature()
            system = jnp.eye(self.network.n_outputs) + kappa * coupling

            def majorise_minimise(_, c):
                o = o_free + coupling @ c
                force = kappa * (o - o_free) - nudge.beta * nudge.cost.grad(o, nudge.target)
                return jnp.linalg.solve(system, force)

            iterations = 1 if nudge.cost.quadratic else self.network.cost_iterations
            currents = jax.lax.fori_loop(
                0, iterations, majorise_minimise, jnp.zeros(self.network.n_outputs)
            )
        return x0 + self.gain @ currents
