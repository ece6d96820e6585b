"""The one verb, ``simulate`` (the package docstring has the equations), and the per-cycle
update of a synapse from a diffrax solve, ``cycle_update_ode``."""

from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from synapse_dyn._checks import concrete, require_finite, require_x64
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.memory import Synapse
from synapse_dyn.tasks import Task

from .integrate import _Integrator, _SynapseField, _thermal
from .network import Schedule, _simulate_network


def simulate(
    synapse: Synapse,
    protocol: AbstractProtocol,
    *,
    t1: float,
    t0: float = 0.0,
    network: eqx.Module | None = None,
    rule: eqx.Module | None = None,
    task: Task | Schedule | None = None,
    w0: PyTree[ArrayLike] = 0.0,
    state0: tuple | None = None,
    mode: Literal["quasistatic", "relaxation"] = "quasistatic",
    seed: int = 0,
    levels: int = 9,
    substeps: int = 6,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    progress: bool = False,
    checkpoint: str | None = None,
    noise: eqx.Module | None = None,
    noise_seed: int = 0,
    dt: float | None = None,
    brownian: str = "virtual",
):
    """Integrate a learning system from ``t0`` to ``t1`` under ``protocol`` (module docstring
    for the equations).

    Synapse level (no ``network``): returns the diffrax solution, ``ys = (z, w)`` at
    ``saveat`` (an array of times, a ``diffrax.SaveAt``, or None for the end point), ``w0``
    the initial weight. The protocol's corners are declared to the step-size controller.

    Network level: give ``network``, ``rule`` (``rules.EP`` or ``rules.CpL``, variant
    positive, negative or random), ``task`` (a ``tasks.Task``: its training split, one sample
    per cycle in order; or a ``Schedule`` for mini-batches, shuffling and the blend) and the
    initial parameters ``w0`` (or ``state0`` from a previous run, to resume); the protocol
    must be periodic with values in [0, 1] and [t0, t1] a whole number of cycles. Returns a
    ``TCLRun``.

    * ``mode="quasistatic"``: the network sits at its perturbed equilibrium; it is solved at
      ``levels`` evenly spaced nudge strengths per cycle, the current is linear in the nudge
      between them, and the linear memory is propagated exactly (``cycle_response``: matrix
      exponentials, once per configuration), the weights integrating g(u) with ``substeps``
      graded intervals per stretch between the protocol's corners (docs/tcl.md for the
      accuracy). Parameters are projected
      onto their physical range after every cycle. With ``checkpoint=PATH`` the state is
      saved every 25 cycles (``synapse_dyn.io.load_state(PATH)`` gives ``(state0, t0)`` to
      resume); if a variable turns non-finite the run stops naming it, the cycle and time,
      and the last good state stays in PATH.
    * ``mode="relaxation"``: the network state is an ODE variable too,
      dx/dt = -dF/dx / tau_network, solved with diffrax (default Kvaerno5: the memory is stiff).

    Agnostic EP (``rule=rules.AgnosticEP(...)``, ``protocol=simulate.AgnosticProtocol(...)``,
    ``synapse=None``): the network state and the parameters relax with finite mobilities
    while the nudge and the control knobs follow the protocol, one mini-batch of ``task`` per
    example; returns an ``AgnosticRun`` (per-example knob work, nudge work, heat, energy
    change; ``simulate/agnostic.py``).

    Thermal noise (``noise=synapse_dyn.noise.Thermal(kT, mobility)``): the SDE
    dy = f dt + sqrt(2 mobility kT) dW, fluctuation-dissipation amplitude, acts on the memory z
    at synapse level and on the network state x in relaxation mode; it is solved with fixed
    steps ``dt`` (Heun), the Brownian path fixed by ``noise_seed`` (``brownian`` "virtual":
    the same path at any dt; "increments": faster, same path only on the same grid).

    Raises ``SimulationError`` if the solver fails or a state becomes non-finite.
    """
    require_x64("simulate")
    t0_value, t1_value = concrete(t0), concrete(t1)
    if t0_value is not None and t1_value is not None and not t1_value > t0_value:
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    as_arrays = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, dtype=float), tree)  # noqa: E731
    # Python floats in the modules become arrays, so new parameter values reuse the
    # compiled solve instead of tracing it again.
    synapse = as_arrays(synapse)
    integrator = _Integrator(
        solver, rtol, atol, max_steps, _thermal(noise, noise_seed, dt, brownian)
    )
    if network is not None and _is_agnostic(rule):  # AEqProp in physical time
        from .agnostic import simulate_agnostic

        schedule = Schedule.from_task(task) if isinstance(task, Task) else task
        return simulate_agnostic(
            protocol,
            float(t0),
            float(t1),
            integrator,
            network=network,
            rule=rule,
            schedule=schedule,
            w0=w0,
            state0=state0,
        )
    if network is not None:
        if saveat is not None:
            raise ValueError(
                "saveat applies to a synapse-level run; a network run records every cycle (the "
                "TCLRun fields) and returns its final state: drop saveat, or split the run with "
                "state0 to keep intermediate states."
            )
        return _simulate_network(
            synapse,
            protocol,
            float(t0),
            float(t1),
            integrator,
            network=network,
            rule=rule,
            task=task,
            w0=w0,
            state0=state0,
            mode=mode,
            seed=seed,
            levels=levels,
            substeps=substeps,
            progress=progress,
            checkpoint=checkpoint,
        )
    protocol = as_arrays(protocol)
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    require_finite("w0", w0)
    w0 = jnp.asarray(w0, dtype=float)
    y0 = (synapse.memory.steady_state(protocol(t0) + jnp.zeros_like(w0)), w0)
    field = _SynapseField(synapse, protocol)
    return integrator.solve(
        field, y0, protocol, t0, t1, saveat, diffrax.Tsit5(), mask=(True, False)
    )


def _is_agnostic(rule) -> bool:
    from synapse_dyn.rules import AgnosticEP

    return isinstance(rule, AgnosticEP)


def cycle_update_ode(
    synapse: Synapse,
    signal: AbstractProtocol,
    warmup_cycles: int = 2,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> Float[Array, ""]:
    """Delta = integral over one period of g(u) from a diffrax solve of the memory ODE and
    the weight together (after ``warmup_cycles`` periods to reach the periodic steady state):
    Delta = -(w(end) - w(end - T)) / learning_rate."""
    period = float(signal.period)
    t1 = (warmup_cycles + 1) * period
    solution = simulate(
        synapse, signal, t1=t1, saveat=jnp.array([t1 - period, t1]), rtol=rtol, atol=atol
    )
    weights = solution.ys[1]
    return -(weights[1] - weights[0]) / synapse.learning_rate
