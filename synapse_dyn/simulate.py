"""The one verb: ``simulate`` integrates a learning system through time with diffrax.

Synapse level (no network): the protocol is the synaptic current itself, s(t) = protocol(t),
and the state is (z, w) with
    dz/dt = f(z, s(t)),    dw/dt = -alpha g(u(z, s(t))),
the memory starting at its steady state for s(t0) and the weight at ``w0``.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from protocols import AbstractProtocol
from synapse_dyn._checks import concrete, require_finite

from .synapses.memory import Synapse


class SimulationError(RuntimeError):
    """The solver failed (step-size collapse, too many steps, non-finite state)."""


def simulate(
    synapse: Synapse,
    protocol: AbstractProtocol,
    *,
    t1: float,
    t0: float = 0.0,
    w0: Float[ArrayLike, "..."] = 0.0,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
) -> diffrax.Solution:
    """Integrate memory and weight from ``t0`` to ``t1`` under the drive ``protocol``.

    ``saveat``: an array of times, a ``diffrax.SaveAt``, or None for the end point only.
    The protocol's corners are declared to the step-size controller (``step_ts``) and its
    jumps as ``jump_ts``. Returns the diffrax solution, ``ys = (z, w)``; raises
    ``SimulationError`` naming the time reached if the solver fails.
    """
    t0_value, t1_value = concrete(t0), concrete(t1)
    if t0_value is not None and t1_value is not None and not t1_value > t0_value:
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    require_finite("w0", w0)
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    # Python floats in the modules become arrays, so a new parameter value reuses the compiled
    # solve instead of tracing it again.
    field = _SynapseField(*jax.tree.map(lambda x: jnp.asarray(x, dtype=float), (synapse, protocol)))
    w0 = jnp.asarray(w0, dtype=float)
    z0 = synapse.memory.steady_state(protocol(t0) + jnp.zeros_like(w0))
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol),
        step_ts=_or_none(protocol.breakpoints(float(t0), float(t1))),
        jump_ts=_or_none(protocol.jump_times(float(t0), float(t1))),
    )
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        solver or diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=(z0, w0),
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    _raise_on_failure(solution)
    return solution


class _SynapseField(eqx.Module):
    """d(z, w)/dt for a synapse driven directly by s(t) = protocol(t)."""

    synapse: Synapse
    protocol: AbstractProtocol

    def __call__(self, t, state, args):
        z, _ = state
        s = self.protocol(t)
        memory = self.synapse.memory
        velocity = -self.synapse.learning_rate * self.synapse.nonlinearity(memory.output(z, s))
        return memory.vector_field(z, s), velocity


def _or_none(times):
    return jnp.asarray(times) if len(times) else None


def _raise_on_failure(solution: diffrax.Solution) -> None:
    if concrete(solution.result._value) is None:
        return  # traced (inside jit): diffrax's own error channel applies
    if solution.result != diffrax.RESULTS.successful:
        reached = solution.stats.get("num_steps", "?")
        raise SimulationError(
            f"the solver failed after {reached} steps: {solution.result}. Loosen rtol/atol, "
            "raise max_steps, or check the inputs for NaN."
        )
