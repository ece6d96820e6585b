"""Thermodynamics of learning: dissipation of Markov synapses, resistor networks and Langevin
trajectories, and the Landauer-like cost of a weight update.

Units: energies in kT (k_B T = 1 unless a temperature is given), entropies in k_B, times in
the simulation's time unit (rate matrices in their own time unit; see docs/thermodynamics.md
for every sign convention). Heat is counted positive when it flows INTO the environment.
"""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn.synapses.markov import check_rate_matrix, stationary_distribution


def entropy_production_rate(
    matrix: Float[ArrayLike, "... n n"], occupation: Float[ArrayLike, "... n"] | None = None
) -> Float[Array, "..."]:
    """Schnakenberg's total entropy production rate of a master equation dp/dt = M p,

        sigma = sum_{i<j} (J_ij - J_ji) ln(J_ij / J_ji),   J_ij = M[i, j] p_j,

    in k_B per unit time of M, for the occupation p (default: the steady state, where it is
    the dissipation rate in kT per unit time). Pairs with no transition in either direction
    contribute nothing; a one-way transition carrying flux gives +inf.
    """
    check_rate_matrix(matrix)
    matrix = jnp.asarray(matrix, dtype=float)
    p = (
        stationary_distribution(matrix)
        if occupation is None
        else jnp.asarray(occupation, dtype=float)
    )
    return jnp.vectorize(_schnakenberg, signature="(n,n),(n)->()")(matrix, p)


def _schnakenberg(matrix, p):
    flux = matrix * p[None, :]
    off = ~jnp.eye(matrix.shape[0], dtype=bool)
    both = off & (flux > 0) & (flux.T > 0)
    safe = lambda a: jnp.log(jnp.where(both, a, 1.0))  # noqa: E731
    log_ratio = safe(matrix) + safe(p[None, :]) - safe(matrix.T) - safe(p[:, None])
    one_way = off & ((flux > 0) != (flux.T > 0))
    terms = jnp.where(both, (flux - flux.T) * log_ratio, jnp.where(one_way, jnp.inf, 0.0))
    return 0.5 * jnp.sum(terms)
