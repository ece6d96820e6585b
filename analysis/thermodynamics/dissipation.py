"""Dissipation of Markov jump processes (Schnakenberg): entropy production rate, entropy flow
into the medium, system (Shannon) entropy, and the dissipation of a Markov synapse at rest and
along a protocol.

Units: entropies in k_B, energies in kT, rates per unit time of the rate matrix given (see
docs/thermodynamics.md for every sign convention). Heat flows INTO the medium when positive.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_finite
from synapse_dyn.io import describe
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.markov import (
    AbstractMarkovMemory,
    check_rate_matrix,
    check_reversible,
    stationary_distribution,
)


def entropy_production_rate(
    matrix: Float[ArrayLike, "... n n"], occupation: Float[ArrayLike, "... n"] | None = None
) -> Float[Array, "..."]:
    """Schnakenberg's total entropy production rate of a master equation dp/dt = M p,

        sigma = sum_{i<j} (J_ij - J_ji) ln(J_ij / J_ji),   J_ij = M[i, j] p_j,

    in k_B per unit time of M, for the occupation p (default: the steady state, where it is
    the dissipation rate in kT per unit time). Pairs with no transition in either direction
    contribute nothing. A one-way transition (rate j -> i > 0, i -> j = 0) makes sigma
    infinite: concrete input is refused with a ValueError naming the transition
    (``check_reversible``); inside jit, where it cannot be refused, it gives +inf.
    """
    check_rate_matrix(matrix)
    check_reversible(matrix)
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


def medium_entropy_rate(
    matrix: Float[ArrayLike, "... n n"], occupation: Float[ArrayLike, "... n"]
) -> Float[Array, "..."]:
    """Entropy flow into the medium (heat / kT per unit time),
    sum_{i != j} J_ij ln(M[i, j] / M[j, i]); equals the total rate in steady state."""
    return jnp.vectorize(_medium, signature="(n,n),(n)->()")(
        jnp.asarray(matrix, float), jnp.asarray(occupation, float)
    )


def _medium(matrix, p):
    off = ~jnp.eye(matrix.shape[0], dtype=bool)
    both = off & (matrix > 0) & (matrix.T > 0)
    ratio = jnp.log(jnp.where(both, matrix, 1.0)) - jnp.log(jnp.where(both, matrix.T, 1.0))
    return jnp.sum(jnp.where(both, matrix * p[None, :] * ratio, 0.0))


def shannon_entropy(occupation: Float[ArrayLike, "... n"]) -> Float[Array, "..."]:
    """S = -sum_i p_i ln p_i (k_B), the system entropy of a distribution."""
    p = jnp.asarray(occupation, float)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


# one program per memory type (a new jit wrapper per call compiled anew: 18 times in the
# quick energy_accuracy figure)
_steady_rate = eqx.filter_jit(lambda memory, s: entropy_production_rate(memory.rate_matrix(s)))


def steady_dissipation(
    memory: AbstractMarkovMemory, currents: Float[ArrayLike, " s"]
) -> xr.Dataset:
    """Steady-state entropy production rate sigma(s) of a Markov synapse held at constant
    currents s, in kT per simulation time unit (time_scale x the rate in Markov units)."""
    currents = np.atleast_1d(np.asarray(currents, dtype=float))
    require_finite("currents", currents)
    sigma = np.asarray(_steady_rate(memory, currents))
    ds = xr.Dataset(
        {
            "dissipation": (
                "current",
                sigma,
                {"units": "kT / time", "long_name": "steady-state entropy production rate"},
            )
        },
        coords={
            "current": (
                "current",
                currents,
                {"units": "current", "long_name": "synaptic current s"},
            )
        },
    )
    return describe(ds, "Steady dissipation of a Markov synapse", {"memory": repr(memory)})


def protocol_dissipation(
    memory: AbstractMarkovMemory,
    protocol: AbstractProtocol,
    *,
    t1: float,
    t0: float = 0.0,
    n_save: int = 201,
    occupation: Float[ArrayLike, " n"] | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-11,
    solver: diffrax.AbstractSolver | None = None,
) -> xr.Dataset:
    """Entropy production of a Markov synapse driven by s(t) = protocol(t): the master
    equation dp/dt = M(s(t)) p solved with diffrax (default: the implicit Kvaerno3, as
    ladders are stiff; the protocol's corners declared), with the cumulative total entropy
    production int sigma dt and entropy flow into the medium int sigma_m dt integrated
    alongside, from ``occupation`` (default: the steady state at s(t0)).
    Identity: total = Delta S_system + medium, with S_system = -sum p ln p."""
    if not float(t1) > float(t0):
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    if occupation is not None:
        require_finite("occupation", occupation)
        occupation = jnp.asarray(occupation, float)
    corners = protocol.breakpoints(float(t0), float(t1))
    ts = jnp.linspace(t0, t1, n_save)
    p, total, medium, sigma, sigma_medium, current = (
        np.asarray(y)
        for y in _driven(
            memory,
            protocol,
            occupation,
            ts,
            jnp.asarray(corners) if len(corners) else None,
            rtol,
            atol,
            solver or diffrax.Kvaerno3(),
        )
    )
    variables = {
        "entropy_production_rate": (
            sigma,
            "kT / time",
            "total entropy production rate sigma(t)",
        ),
        "medium_entropy_rate": (
            sigma_medium,
            "kT / time",
            "entropy flow into the medium (heat rate / kT)",
        ),
        "system_entropy": (shannon_entropy(p), "k_B", "system (Shannon) entropy -sum p ln p"),
        "entropy_production": (total, "kT", "cumulative total entropy production"),
        "medium_entropy": (medium, "kT", "cumulative heat into the medium / kT"),
        "current": (current, "current", "synaptic current s(t)"),
        "output": (p @ np.asarray(memory.observable), "1", "observable c.p(t) (e.g. the activity)"),
    }
    ds = xr.Dataset(
        {
            name: ("time", np.asarray(value), {"units": units, "long_name": long_name})
            for name, (value, units, long_name) in variables.items()
        },
        coords={"time": ("time", np.asarray(ts), {"units": "time", "long_name": "time"})},
    )
    config = {"memory": repr(memory), "protocol": repr(protocol), "t0": t0, "t1": t1}
    return describe(ds, "Entropy production of a Markov synapse along a protocol", config)


@eqx.filter_jit
def _driven(memory, protocol, p0, ts, step_ts, rtol, atol, solver):
    """The solve behind ``protocol_dissipation``, jitted as one program."""
    p0 = memory.steady_state(protocol(ts[0])) if p0 is None else p0

    def field(t, state, args):
        p, _, _ = state
        matrix = memory.rate_matrix(protocol(t))
        return matrix @ p, _schnakenberg(matrix, p), _medium(matrix, p)

    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol), step_ts=step_ts
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver,
        ts[0],
        ts[-1],
        None,
        (p0, jnp.zeros(()), jnp.zeros(())),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=1_000_000,
    )
    p, total, medium = solution.ys
    current = jax.vmap(protocol)(ts)
    matrices = memory.rate_matrix(current)
    return (
        p,
        total,
        medium,
        jax.vmap(_schnakenberg)(matrices, p),
        jax.vmap(_medium)(matrices, p),
        current,
    )
