"""Synaptic memory: kernels, memory ODEs, nonlinearities and the per-cycle weight update.

A TCL synapse filters its local current s(t) through a memory kernel K (u = K * s, a smoothed
time derivative with zero area for perfect adaptation) and moves its weight as
dw/dt = -alpha g(u), with g a threshold nonlinearity.
"""

from .cycle import (
    CycleResponse,
    cycle_response,
    cycle_update,
    kernel_weights,
    occupation_sum,
    periodic_response,
    wraps_needed,
)
from .kernels import (
    AbstractKernel,
    EColiKernel,
    SampledKernel,
    SineKernel,
    StateSpaceKernel,
    normalise,
    sampled_moments,
)
from .memory import AbstractLinearMemory, AbstractMemory, EColiCascade, IntegralFeedback, Synapse
from .nonlinearities import AbstractNonlinearity, Cubic, DeadZone, Identity

__all__ = [
    "AbstractKernel",
    "AbstractLinearMemory",
    "AbstractMemory",
    "AbstractNonlinearity",
    "Cubic",
    "CycleResponse",
    "DeadZone",
    "EColiCascade",
    "EColiKernel",
    "Identity",
    "IntegralFeedback",
    "SampledKernel",
    "SineKernel",
    "StateSpaceKernel",
    "Synapse",
    "cycle_response",
    "cycle_update",
    "kernel_weights",
    "normalise",
    "occupation_sum",
    "periodic_response",
    "sampled_moments",
    "wraps_needed",
]

from .markov import (  # noqa: E402
    AbstractMarkovMemory,
    MarkovLadder,
    check_rate_matrix,
    check_reversible,
    esa_rate_matrix,
    stationary_distribution,
)

__all__ += [
    "AbstractMarkovMemory",
    "MarkovLadder",
    "check_rate_matrix",
    "check_reversible",
    "esa_rate_matrix",
    "stationary_distribution",
]
