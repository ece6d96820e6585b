"""Quantum equilibrium propagation (Scellier, arXiv 2406.00879): networks whose state is the
ground state of a Hamiltonian H(theta), energy = ground-state energy, synaptic current =
<dH/dtheta> (Hellmann-Feynman), learned by the EP estimator of ``synapse_dyn.rules.EP``.

Substrates:
  * ``TransverseFieldIsing`` (ising.py): qubits on any graph; ground states by exact
    diagonalisation (dense / sparse Lanczos, up to ~20 qubits) or DMRG (chains, ladders, 64+
    qubits); expectations exact or from projective shots. Not JAX-traceable (SciPy, quimb):
    it learns through ``ep_gradient`` (learning.py), which applies the EP rule's own phase
    strengths, and is checked against ``exact_gradient`` (adjoint perturbation theory).
  * ``QuantumOscillatorNetwork`` (oscillator.py): coupled harmonic oscillators, Gaussian
    ground states in closed form, a JAX ``AbstractNetwork``: ``rules.update(network, w, batch,
    rules.EP(beta, variant))`` works as for the classical substrates.
  * ``schrodinger_nudge`` (dynamics.py): the nudge ramped in physical time, the state evolved
    by the Schrodinger equation (diffrax), and the adiabatic theorem's diabatic error.

Why quimb rather than TeNPy for the tensor networks: quimb is pure Python on numpy/scipy (pip
installs it with no compiled extension of its own), its ``SparseOperatorBuilder`` turns an
arbitrary list of Pauli terms (any couplings J_ab, not only nearest neighbours) into an MPO by
a finite-state-machine construction, ``DMRG2`` finds the ground state from that MPO, and its
MPS objects give local expectations and sequential sampling (our shot model) directly. TeNPy
needs a model class per lattice and is organised around infinite/unit-cell systems; the
arbitrary-graph MPO is what this package needs.
"""

from .dynamics import diabatic_error, linear_ramp_prediction, schrodinger_nudge
from .ising import (
    DegenerateGroundStateWarning,
    GroundState,
    TransverseFieldIsing,
    chain,
    from_couplings,
    ladder,
)
from .learning import ep_gradient, evaluate, exact_gradient, iris_two_class, train
from .oscillator import QuantumOscillatorNetwork

__all__ = [
    "DegenerateGroundStateWarning",
    "GroundState",
    "TransverseFieldIsing",
    "chain",
    "diabatic_error",
    "ep_gradient",
    "evaluate",
    "exact_gradient",
    "from_couplings",
    "iris_two_class",
    "ladder",
    "linear_ramp_prediction",
    "QuantumOscillatorNetwork",
    "schrodinger_nudge",
    "train",
]
