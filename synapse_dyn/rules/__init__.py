"""Explicit learning rules behind one call, ``update(network, w, batch, rule)``:
equilibrium propagation (``EP``: positive, negative, centered, random sign), coupled learning
(``CpL``), contrastive learning (``CL``), the exact gradient by implicit differentiation
(``ExactGradient``), truncated backpropagation through the solver's sweeps (``TBP``) and agnostic
EP (``AgnosticEP``: the step made by control knobs).
Sign convention: g_hat estimates dL/dw and parameters move as w <- project(w - alpha g_hat)."""

from ._base import AbstractRule, batch_estimate, evaluate, update, validate
from .agnostic import AgnosticEP, AgnosticPhases, secant
from .contrastive import CL, EP, AbstractContrastiveRule, CpL, primitive
from .exact import ExactGradient, implicit_gradient
from .tbp import TBP

__all__ = [
    "AgnosticEP",
    "AgnosticPhases",
    "CL",
    "EP",
    "batch_estimate",
    "AbstractContrastiveRule",
    "AbstractRule",
    "CpL",
    "ExactGradient",
    "TBP",
    "evaluate",
    "implicit_gradient",
    "primitive",
    "secant",
    "update",
    "validate",
]
