"""Failures found while a compiled program runs (a state that is not finite, a solver that did
not converge) are data: the failing computation returns NaN (``poison``), and the Python
function the user called finds it and raises ``RuntimeCheckError`` naming the quantity and the
fix (``raise_unless_finite``).

Why not ``eqx.error_if`` or the solvers' ``throw=True``: they are host callbacks, and JAX's
persistent compilation cache stores no program that has one ("Not writing persistent cache
entry ... because it uses host callbacks"), so every run compiled the training and TCL
programs anew. Why not ``jax.experimental.checkify``, which carries messages out: it refuses
while loops under vmap ("Checkify does not support batched while-loops"), and every batched
solve here is one.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, PyTree

from synapse_dyn._checks import concrete


class RuntimeCheckError(RuntimeError):
    """A compiled computation failed; the message names the quantity and the fix."""


def poison(x: PyTree[Array], ok: Bool[Array, "..."]) -> PyTree[Array]:
    """``x`` where ``ok`` (broadcast against each leaf), NaN elsewhere in its floating leaves."""
    return jax.tree.map(
        lambda a: jnp.where(ok, a, jnp.nan) if jnp.issubdtype(a.dtype, jnp.inexact) else a, x
    )


def all_finite(x: PyTree[Array]) -> Bool[Array, ""]:
    """Whether every floating element of ``x`` is finite."""
    leaves = [a for a in jax.tree.leaves(x) if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


def raise_unless_finite(x: PyTree[Array], message: str) -> None:
    """Raise ``RuntimeCheckError(message)`` unless ``x`` is finite; nothing under a trace
    (there the NaN travels on to the caller's check)."""
    finite = concrete(all_finite(x))
    if finite is not None and not np.all(finite):
        raise RuntimeCheckError(message)
