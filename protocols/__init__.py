"""Time-dependent drives for synapse-dyn.

A protocol p(t) is a JAX-traceable function of time (an equinox module, so it can be
vmapped over its parameters) that also reports its corners, so diffrax can be told where
the drive is not smooth. The TCL sawtooth ramps fast from the free to the clamped value and
slowly back; in a network simulation it drives the nudge beta(t) or the clamp eta(t), and in
the synapse-level analysis it is the synaptic current s(t) itself.
"""

from ._base import AbstractProtocol, Offset, Repeat, Scale, Sequence
from ._shapes import Constant, PiecewiseLinear, Sawtooth, Square, sample, triangle

__all__ = [
    "AbstractProtocol",
    "Constant",
    "Offset",
    "PiecewiseLinear",
    "Repeat",
    "Sawtooth",
    "Scale",
    "Sequence",
    "Square",
    "sample",
    "triangle",
]
