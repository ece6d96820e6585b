"""Explicit learning rules behind one call, ``update(network, w, batch, rule)``:
equilibrium propagation (``EP``: positive, negative, centered, random sign), coupled learning
(``CpL``), contrastive learning (``CL``), the exact gradient by implicit differentiation
(``ExactGradient``) and truncated backpropagation through the solver's sweeps (``TBP``).
Sign convention: g_hat estimates dL/dw and parameters move as w <- project(w - alpha g_hat)."""

from ._base import AbstractRule, batch_estimate, evaluate, update, validate
from .contrastive import CL, EP, AbstractContrastiveRule, CpL, primitive
from .exact import ExactGradient, implicit_gradient
from .tbp import TBP

__all__ = [
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
    "update",
    "validate",
]
