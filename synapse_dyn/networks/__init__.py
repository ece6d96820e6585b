"""Energy-based physical networks on one interface (``AbstractNetwork``): energy E(x; w,
inputs), local synaptic current dE/dw, equilibrium under a soft nudge or a clamp, a
relaxation vector field and projection of parameters onto their physical range.

Substrates: ``ResistorNetwork`` (linear resistor / flow networks on any graph),
``DiodeNetwork`` (deep resistive networks with ideal diodes, exact block coordinate descent),
``HopfieldNetwork`` (layered Hopfield network of EP), ``ElasticNetwork`` (2D spring networks
for allostery). ``Circuit`` (resistors, diodes, sources and VCVS, ``compile_relu``) is solved
exactly but has no energy once it has a VCVS, so it is not an ``AbstractNetwork``."""

from ._base import MSE, AbstractCost, AbstractNetwork, Clamp, CrossEntropy, SoftNudge
from .circuits import (
    VCVS,
    Circuit,
    CurrentSources,
    Diodes,
    Resistors,
    VoltageSources,
    compile_relu,
    drn_circuit,
    read_network,
)
from .diode import DiodeNetwork
from .elastic import ElasticNetwork
from .graphs import Graph, from_networkx, lattice, layered_graph, random_graph, triangular_lattice
from .hopfield import HopfieldNetwork
from .layered import AbstractLayeredNetwork
from .resistor import ResistorNetwork, SparseDirect

__all__ = [
    "AbstractCost",
    "AbstractLayeredNetwork",
    "AbstractNetwork",
    "Circuit",
    "CurrentSources",
    "Diodes",
    "Clamp",
    "CrossEntropy",
    "DiodeNetwork",
    "ElasticNetwork",
    "Graph",
    "HopfieldNetwork",
    "MSE",
    "ResistorNetwork",
    "Resistors",
    "SoftNudge",
    "SparseDirect",
    "VCVS",
    "VoltageSources",
    "compile_relu",
    "drn_circuit",
    "from_networkx",
    "lattice",
    "layered_graph",
    "random_graph",
    "read_network",
    "triangular_lattice",
]
