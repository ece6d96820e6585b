"""The one verb: ``simulate`` integrates a learning system through time with diffrax.

Synapse level (``network=None``): the protocol is the synaptic current itself,
s(t) = protocol(t), and the state is (z, w):

    dz/dt = f(z, s(t)),    dw/dt = -alpha g(u(z, s(t))).

Network level (Temporal Contrastive Learning): the protocol p(t) in [0, 1] drives the
perturbation of ``rule`` (the EP nudge beta(t) = eps_k beta p(t), or the coupled-learning
clamp eta(t) = eps_k eta p(t)), cycle k presenting mini-batch k of the task's ``Schedule`` with
sign eps_k. Every parameter w_ij sees its local current, the batch mean of
s_ij = dE/dw_ij at the network state x(t), and

    dz_ij/dt = f(z_ij, s_ij),    dw_ij/dt = -(alpha / (eps_k b)) g(u_ij),

so that per cycle w moves by -alpha times the rule's estimate of dL/dw in the ideal regime
(the division by the signed strength is the paper's 1/beta). The network is either
quasi-static (``mode="quasistatic"``: x(t) is the perturbed equilibrium at every instant, the
parameters move once per cycle, after which the network re-settles and the memory follows
the current change adiabatically) or relaxes at its own speed (``mode="relaxation"``:
dx/dt = -dF/dx / tau_network, EP only, everything continuous).
Within each cycle the inputs move linearly to the next batch's over the last ``blend`` of
the cycle (while the nudge is small), so the free current changes slowly and stays inside
the dead zone instead of jumping.
"""

from ._simulate import cycle_update_ode, simulate
from .integrate import SimulationError, Thermalised
from .network import Schedule, TCLRun, cycle_signs

__all__ = [
    "Schedule",
    "SimulationError",
    "TCLRun",
    "Thermalised",
    "cycle_signs",
    "cycle_update_ode",
    "simulate",
]
