"""Energy-based physical networks on one interface (``AbstractNetwork``): energy E(x; w,
inputs), local synaptic current dE/dw, equilibrium under a soft nudge or a clamp, a
relaxation vector field and projection of parameters onto their physical range.

Substrates: ``ResistorNetwork`` (linear resistor / flow networks on any graph)."""

from ._base import AbstractCost, AbstractNetwork, Clamp, CrossEntropy, MSE, SoftNudge
from .graphs import Graph, from_networkx, lattice, layered_graph, random_graph
from .resistor import ResistorNetwork

__all__ = [
    "AbstractCost",
    "AbstractNetwork",
    "Clamp",
    "CrossEntropy",
    "Graph",
    "MSE",
    "ResistorNetwork",
    "SoftNudge",
    "from_networkx",
    "lattice",
    "layered_graph",
    "random_graph",
]
