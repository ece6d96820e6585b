"""Measurements into self-describing xarray datasets: synapse response curves and learning
ranges, piecewise-linear fits, and the paper's figures (``analysis.figures``)."""

from . import sweeps
from .fits import ThreeSegmentFit, fit_three_segments
from .response import REGIMES, learning_range, response_curves

__all__ = [
    "REGIMES",
    "ThreeSegmentFit",
    "fit_three_segments",
    "learning_range",
    "response_curves",
    "sweeps",
]
