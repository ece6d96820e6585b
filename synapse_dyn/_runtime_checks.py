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


def finite(x: PyTree[Array]) -> bool:
    """False when ``x`` is concrete and a floating element is not finite; True otherwise
    (under a trace the NaN travels on to the caller's check)."""
    leaves = [a for a in jax.tree.leaves(x) if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    ok = concrete(jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves])))
    return ok is None or bool(np.all(ok))


def raise_unless_finite(x: PyTree[Array], message: str) -> None:
    """Raise ``RuntimeCheckError(message)`` unless ``finite(x)``."""
    if not finite(x):
        raise RuntimeCheckError(message)
