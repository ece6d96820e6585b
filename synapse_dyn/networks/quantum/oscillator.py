"""Quantum harmonic oscillator networks: the quantum analogue of a (1D) spring network.

Nodes carry displacements x; anchor nodes are classical: input nodes are held at ``inputs``,
ground nodes at 0; the free nodes f are quantum oscillators of mass m_f. Springs of stiffness
k_e >= 0 (the learnable parameters) on the graph's edges (a, b):

    H = sum_f p_f^2 / (2 m_f) + 1/2 sum_e k_e (x_a - x_b - l_e)^2
      = sum_f p_f^2 / (2 m_f) + 1/2 x^T K x - b^T x + const    (free coordinates),

K the stiffness (Laplacian) block of the free nodes, b the pull of the anchors and of the
rest lengths l_e (structure, default 0): the linear terms. With l = 0 the classical energy is
the ResistorNetwork's co-content (x for the potentials, k for the conductances), so the
classical limit is that network's EP.

Ground state: a Gaussian of mean mu = K^-1 b (the classical equilibrium) and position
covariance Sigma = (hbar/2) M^-1/2 Omega^-1 M^-1/2, Omega = (M^-1/2 K M^-1/2)^1/2 (the normal
mode frequencies); energy E_cl(mu) + (hbar/2) tr Omega (zero-point term). The state of the
network is (mu, Sigma); for a pure Gaussian state without x-p correlations

    <H> = hbar^2/8 tr(M^-1 Sigma^-1) + E_cl(mu) + 1/2 tr(K Sigma),

minimised by the ground state, so the synaptic current (Hellmann-Feynman) is
<dH/dk_e> = 1/2 (mu_a - mu_b - l_e)^2 + 1/2 Var(x_a - x_b): classical plus zero-point.
The EP nudge beta C with the cost operator C = 1/2 sum_o (x_o - y_o)^2 keeps H quadratic
(K + beta P_o, b + beta y); the loss is <C> = 1/2 |mu_o - y|^2 + 1/2 sum_o Sigma_oo.
Units: hbar in energy x time, stiffness in energy / length^2, masses in energy x time^2 /
length^2 (any consistent set; the defaults are dimensionless, m = hbar = 1).
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_finite, require_positive
from synapse_dyn._runtime_checks import poison
from synapse_dyn.networks._base import MSE, AbstractNetwork, Clamp, SoftNudge
from synapse_dyn.networks.graphs import Graph
from synapse_dyn.networks.resistor import ResistorNetwork

GaussianState = tuple[Float[Array, " n_free"], Float[Array, "n_free n_free"]]


class QuantumOscillatorNetwork(AbstractNetwork):
    """Coupled quantum oscillators (module docstring); state (mean, covariance) of the free
    nodes' displacements. Works with ``rules.update`` and ``rules.EP`` (soft MSE nudges only:
    a clamp of a quantum coordinate is not a Hamiltonian term)."""

    failure: ClassVar[str] = (
        "the stiffness matrix is not positive definite (a floppy mode, or a negative nudge "
        "beta larger than the output stiffness): lower beta."
    )

    springs: ResistorNetwork
    masses: Float[np.ndarray, " n_free"]
    rest_lengths: Float[np.ndarray, " n_edges"]
    hbar: float = eqx.field(static=True)

    def __init__(
        self,
        graph: Graph,
        input_nodes,
        output_nodes,
        ground_nodes=(),
        masses: Float[ArrayLike, "..."] = 1.0,
        hbar: float = 1.0,
        rest_lengths: Float[ArrayLike, "..."] = 0.0,
        min_stiffness: float = 1e-6,
    ):
        require_positive("hbar", hbar)
        self.springs = ResistorNetwork(
            graph, input_nodes, output_nodes, ground_nodes, min_conductance=min_stiffness
        )
        masses = np.broadcast_to(np.asarray(masses, dtype=float), (self.springs.n_free,))
        require_positive("masses", masses)
        self.masses = masses.copy()
        rest_lengths = np.broadcast_to(np.asarray(rest_lengths, dtype=float), (graph.n_edges,))
        require_finite("rest_lengths", rest_lengths)
        self.rest_lengths = rest_lengths.copy()
        self.hbar = float(hbar)

    @property
    def n_inputs(self) -> int:
        return self.springs.n_inputs

    @property
    def n_outputs(self) -> int:
        return self.springs.n_outputs

    @property
    def relaxation_time(self) -> float:
        return self.springs.relaxation_time

    # ---- structure ------------------------------------------------------------------------

    def stiffness_matrix(self, w, nudge: SoftNudge | None = None) -> Float[Array, "f f"]:
        """K (free block of the weighted Laplacian), plus beta at the outputs under a nudge."""
        g, free = self.springs.graph, self.springs.free_nodes
        s, r = g.senders, g.receivers
        full = (
            jnp.zeros((g.n_nodes, g.n_nodes))
            .at[s, r]
            .add(-w)
            .at[r, s]
            .add(-w)
            .at[s, s]
            .add(w)
            .at[r, r]
            .add(w)
        )
        matrix = full[jnp.ix_(free, free)]
        if isinstance(nudge, SoftNudge):
            slots = self.springs.output_slots
            matrix = matrix.at[slots, slots].add(nudge.beta)
        return matrix

    def normal_modes(self, stiffness: Float[Array, "f f"]):
        """(omega, U): frequencies and eigenvectors of M^-1/2 K M^-1/2 (omega NaN unless K
        is positive definite)."""
        scale = 1.0 / jnp.sqrt(jnp.asarray(self.masses))
        squared, vectors = jnp.linalg.eigh(scale[:, None] * stiffness * scale[None, :])
        return poison(jnp.sqrt(squared), squared[0] > 0.0), vectors

    def ground_covariance(self, stiffness: Float[Array, "f f"]) -> Float[Array, "f f"]:
        """Sigma = (hbar/2) M^-1/2 Omega^-1 M^-1/2."""
        omega, vectors = self.normal_modes(stiffness)
        scale = 1.0 / jnp.sqrt(jnp.asarray(self.masses))
        root = scale[:, None] * vectors
        return 0.5 * self.hbar * (root / omega[None, :]) @ root.T

    def zero_point_energy(self, w, nudge: SoftNudge | None = None) -> Float[Array, ""]:
        """(hbar/2) tr Omega = sum of hbar omega / 2 over the normal modes."""
        return 0.5 * self.hbar * jnp.sum(self.normal_modes(self.stiffness_matrix(w, nudge))[0])

    def _spring_variances(self, covariance):
        """Var(x_a - x_b) per edge (anchors have no variance)."""
        g, free = self.springs.graph, self.springs.free_nodes
        full = jnp.zeros((g.n_nodes, g.n_nodes)).at[jnp.ix_(free, free)].set(covariance)
        s, r = g.senders, g.receivers
        return full[s, s] + full[r, r] - 2.0 * full[s, r]

    # ---- AbstractNetwork --------------------------------------------------------------------

    def energy(self, x: GaussianState, w, inputs):
        """<H> of the Gaussian state (module docstring)."""
        mean, covariance = x
        kinetic = (
            self.hbar**2
            / 8.0
            * jnp.trace(jnp.linalg.solve(covariance, jnp.diag(1.0 / jnp.asarray(self.masses))))
        )
        potential = 0.5 * jnp.sum(w * self._spring_variances(covariance))
        return kinetic + self.classical_energy(mean, w, inputs) + potential

    def classical_energy(self, mean, w, inputs) -> Float[Array, ""]:
        """E_cl = 1/2 sum_e k_e (x_a - x_b - l_e)^2 at the mean displacements."""
        return 0.5 * jnp.sum(w * self._stretches(mean, inputs) ** 2)

    def _stretches(self, mean, inputs):
        return self.springs.drops(self.springs.potentials(mean, inputs)) - self.rest_lengths

    def synaptic_current(self, x: GaussianState, w, inputs):
        """<dH/dk_e> = 1/2 (mu_a - mu_b - l_e)^2 + 1/2 Var(x_a - x_b)."""
        mean, covariance = x
        return 0.5 * self._stretches(mean, inputs) ** 2 + 0.5 * self._spring_variances(covariance)

    def total_energy(self, x: GaussianState, w, inputs, nudge=None):
        """<H + beta C>, <C> = 1/2 |mu_o - y|^2 + 1/2 sum_o Sigma_oo."""
        energy = self.energy(x, w, inputs)
        if isinstance(nudge, SoftNudge):
            energy = energy + nudge.beta * self.loss(x, nudge.target)
        return energy

    def loss(self, x: GaussianState, target) -> Float[Array, ""]:
        """<C> = 1/2 |mu_o - y|^2 + 1/2 sum_o Var(x_o)."""
        mean, covariance = x
        slots = self.springs.output_slots
        return 0.5 * jnp.sum((mean[slots] - target) ** 2) + 0.5 * jnp.sum(covariance[slots, slots])

    def output(self, x: GaussianState):
        """o = <x_o>."""
        return self.springs.output(x[0])

    def clamp(self, x, values):
        raise TypeError(_NO_CLAMP)

    def solve(self, w, inputs, nudge=None, x0=None) -> GaussianState:
        """The ground state: mean = the classical (nudged) equilibrium, -K^-1 dE/dx(0) (the
        energy is quadratic), covariance from the normal modes of the (nudged) K."""
        if isinstance(nudge, Clamp):
            raise TypeError(_NO_CLAMP)
        if isinstance(nudge, SoftNudge) and not isinstance(nudge.cost, MSE):
            raise TypeError(
                "the oscillator network takes the MSE cost only: C = 1/2 (x_o - y)^2 keeps H "
                "quadratic (a Gaussian ground state)."
            )
        w = jnp.asarray(w, dtype=float)
        stiffness = self.stiffness_matrix(w, nudge)
        force = jax.grad(self.classical_energy)(jnp.zeros(self.springs.n_free), w, inputs)
        if isinstance(nudge, SoftNudge):  # d/dx of beta/2 |x_o - y|^2 at x = 0
            force = force.at[self.springs.output_slots].add(-nudge.beta * nudge.target)
        covariance = self.ground_covariance(stiffness)  # NaN unless K is positive definite
        return -jnp.linalg.solve(stiffness, force), covariance

    def initial_state(self) -> GaussianState:
        n = self.springs.n_free
        return jnp.zeros(n), 0.5 * self.hbar * jnp.eye(n)

    def project(self, w):
        return self.springs.project(w)

    def init(self, key):
        return self.springs.init(key)

    def check_parameters(self, w):
        """Stiffnesses as the springs' conductances: (n_edges,), finite, >= 0, no node cut off."""
        require_finite("stiffnesses", w)
        self.springs.check_parameters(w)


_NO_CLAMP = (
    "a quantum oscillator network has no clamp (holding a quantum coordinate fixed is not a "
    "Hamiltonian term); use rules.EP (soft nudge)."
)
