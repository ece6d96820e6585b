"""Values that enter compiled programs as data. ``eqx.filter_jit`` keeps every Python float of
its arguments static, so a model with a new time constant or threshold would compile a new
program; inner loops pass their modules through ``traced`` to compile once per structure."""

import jax
import jax.numpy as jnp


def traced(tree):
    """``tree`` with every Python float leaf as a 0-d float array (ints, bools and strings,
    which set shapes and branches, stay static)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=float) if type(x) is float else x, tree)
