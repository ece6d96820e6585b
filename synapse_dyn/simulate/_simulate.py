"""The one verb, ``simulate`` (the package docstring has the equations), and the per-cycle
update of a synapse from a diffrax solve, ``cycle_update_ode``."""

import warnings
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from synapse_dyn._checks import (
    concrete,
    require_finite,
    require_moderate,
    require_positive,
    require_x64,
)
from synapse_dyn._tracing import traced
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.memory import Synapse
from synapse_dyn.tasks import Task

from .integrate import _Integrator, _raise_on_failure, _SynapseField, _thermal
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
    substeps: int = 8,
    quadrature_rtol: float | None = None,
    saveat: Float[ArrayLike, " n"] | diffrax.SaveAt | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 1_000_000,
    progress: bool = False,
    checkpoint: str | None = None,
    resume: bool = False,
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
      graded intervals per stretch between the protocol's corners; the error estimate (the rule
      against its embedded rule on every other node) is recorded per cycle in
      ``TCLRun.quadrature_error``, and with ``quadrature_rtol`` set the substeps are doubled per
      chunk of cycles until it is below that (docs/tcl.md for the accuracy). Parameters are
      projected onto their physical range after every cycle. With ``checkpoint=PATH`` the state
      and the records so far are saved (after a chunk of 25 cycles, at most every 5 s, and at
      the end; arrays and a JSON header, no pickle) with the configuration's fingerprint;
      ``resume=True`` continues from PATH when it exists (refusing a checkpoint of another
      configuration) and returns exactly what the uninterrupted run would, records of the
      earlier cycles included (``synapse_dyn.io.load_state(PATH)`` gives ``(state0, t0)`` for a
      manual restart). If a variable turns non-finite the run stops naming it (and its index),
      the cycle and time, and the last good state stays in PATH.
    * ``mode="relaxation"``: the network state is an ODE variable too,
      dx/dt = -dF/dx / tau_network, solved with diffrax (default Kvaerno5: the memory is stiff);
      one solve, so ``checkpoint`` is refused (split the run with ``state0``).

    Agnostic EP (``rule=rules.AgnosticEP(...)``, ``protocol=simulate.AgnosticProtocol(...)``,
    ``synapse=None``): the network state and the parameters relax with finite mobilities
    while the nudge and the control knobs follow the protocol, one mini-batch of ``task`` per
    example; returns an ``AgnosticRun`` (per-example knob work, nudge work, heat, energy
    change; ``simulate/agnostic.py``).

    Thermal noise (``noise=synapse_dyn.noise.Thermal(kT)``): the SDE dy = f dt + sqrt(2 mu kT)
    dW, fluctuation-dissipation amplitude, acts on the network state x in relaxation mode,
    whose mobility is mu = 1 / tau_network, or on the memory z at synapse level, whose
    mobility must be stated (``Thermal(kT, mobility=mu)``: z has no energy); it is solved with fixed
    steps ``dt`` (Heun), the Brownian path fixed by ``noise_seed`` (``brownian`` "virtual":
    the same path at any dt; "increments": faster, same path only on the same grid).

    Raises ``SimulationError`` if the solver fails or a state becomes non-finite.
    """
    require_x64("simulate")
    t0_value, t1_value = concrete(t0), concrete(t1)
    require_finite("t0", t0_value)
    require_finite("t1", t1_value)
    if t0_value is not None and t1_value is not None and not t1_value > t0_value:
        raise ValueError(f"t1 must be later than t0, got t0 = {t0!r}, t1 = {t1!r}.")
    require_positive("rtol", rtol)
    require_positive("atol", atol)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
    require_moderate("synapse", synapse)
    require_moderate("protocol", protocol)
    as_arrays = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, dtype=float), tree)  # noqa: E731
    # Python floats in the modules become arrays, so new parameter values reuse the
    # compiled solve instead of tracing it again.
    synapse = as_arrays(synapse)
    integrator = _Integrator(
        solver, rtol, atol, max_steps, _thermal(noise, noise_seed, dt, brownian)
    )
    if network is not None and _is_agnostic(rule):  # AEqProp in physical time
        from .agnostic import simulate_agnostic

        if noise is not None:
            raise ValueError(
                "thermal noise is not modelled in an agnostic (AEqProp) run: drop noise=, or "
                "use mode='relaxation' with a contrastive rule."
            )

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
            quadrature_rtol=quadrature_rtol,
            progress=progress,
            checkpoint=checkpoint,
            resume=resume,
        )
    if checkpoint is not None or resume:
        raise ValueError(
            "checkpoint= saves network-level runs; a synapse-level run is one diffrax solve: "
            "keep states with saveat, or split it with t0/t1 and w0."
        )
    if noise is not None and noise.mobility is None:
        raise ValueError(
            "thermal noise on a synapse's memory z needs its mobility: the memory has no "
            "energy, so kT alone does not fix the noise; pass Thermal(kT, mobility=mu), mu in "
            "z^2 / (kT time unit) (a memory of time tau then has variance mu kT tau)."
        )
    _require_steps(protocol, t0_value, t1_value, max_steps)
    protocol = as_arrays(protocol)
    if saveat is None:
        saveat = diffrax.SaveAt(t1=True)
    elif not isinstance(saveat, diffrax.SaveAt):
        require_finite("saveat", saveat)
        saveat = diffrax.SaveAt(ts=jnp.asarray(saveat, dtype=float))
    require_finite("w0", w0)
    w0 = jnp.asarray(w0, dtype=float)
    y0 = (synapse.memory.steady_state(protocol(t0) + jnp.zeros_like(w0)), w0)
    field = _SynapseField(synapse, protocol)
    return integrator.solve(
        field, y0, protocol, t0, t1, saveat, diffrax.Tsit5(), mask=(True, False)
    )


def _require_steps(protocol, t0, t1, max_steps) -> None:
    """Refuse a run whose protocol has more periods (each needing a solver step at its
    corners) than ``max_steps``, before its corners are listed."""
    period = None if protocol.period is None else concrete(protocol.period)
    if period is None or t0 is None or t1 is None or not period > 0:
        return
    periods = (t1 - t0) / period
    if periods > max_steps:
        raise ValueError(
            f"[t0, t1] spans {periods:.3g} protocol periods, more than max_steps = {max_steps} "
            "(the solver steps at least once per period); raise max_steps or shorten the run."
        )


def _is_agnostic(rule) -> bool:
    from synapse_dyn.rules import AgnosticEP

    return isinstance(rule, AgnosticEP)


def cycle_update_ode(
    synapse: Synapse,
    signal: AbstractProtocol,
    warmup_cycles: int = 2,
    rtol: float = 1e-12,
    atol: float = 1e-12,
) -> Float[Array, ""]:
    """Delta = integral over one period of g(u) from a diffrax solve of the memory ODE and
    the weight together (after ``warmup_cycles`` periods to reach the periodic steady state):
    Delta = -(w(end) - w(end - T)) / learning_rate. Compiled once per memory and
    nonlinearity (and number of protocol corners): the protocol's values, the end time and
    the tolerances enter the solve as traced values.

    Where g jumps (a dead zone's threshold) and u stays on the jump over a stretch of the
    cycle (the slow ramp of a sawtooth at A = A_max), Delta depends on the side of the jump
    that rounding puts u on: the exact fast path (``synapses.cycle_update``) counts u within
    ``THRESHOLD_TIE`` of the threshold as dead, which this solve resolves at the default rtol
    1e-12 (at rtol 1e-9: 0.936 instead of 0.963 of A at tau_fast 1, tau_slow 9). With rtol
    above 1e-11 it warns when u spends more than 1% of the cycle within 1e-6 (relative) of a
    jump of g."""
    require_x64("cycle_update_ode")
    period = float(signal.period)
    t1 = (warmup_cycles + 1) * period
    synapse, signal = traced(synapse), traced(signal)
    jumps = signal.jump_times(0.0, t1)
    solution, u = _cycle_update_ode(
        synapse,
        signal,
        jnp.asarray(t1),
        jnp.asarray(period),
        jnp.asarray(signal.breakpoints(0.0, t1)),
        jnp.asarray(jumps) if len(jumps) else None,
        jnp.asarray(rtol, dtype=float),
        jnp.asarray(atol, dtype=float),
    )
    _raise_on_failure(solution)
    if rtol > 1e-11:
        _warn_on_jumps(synapse.nonlinearity, np.asarray(u), rtol)
    weights = solution.ys[1]
    return -(weights[-1] - weights[0]) / synapse.learning_rate


_TIE_SAMPLES = 2001


@eqx.filter_jit
def _cycle_update_ode(synapse, signal, t1, period, step_ts, jump_ts, rtol, atol):
    """The solve, saving the last cycle densely, and u there."""
    field = _SynapseField(synapse, signal)
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=rtol, atol=atol), step_ts=step_ts, jump_ts=jump_ts
    )
    ts = jnp.linspace(t1 - period, t1, _TIE_SAMPLES)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=t1,
        dt0=None,
        y0=(synapse.memory.steady_state(signal(0.0)), jnp.zeros(())),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=1_000_000,
        throw=False,
    )
    return solution, jax.vmap(synapse.memory.output)(solution.ys[0], jax.vmap(signal)(ts))


def _warn_on_jumps(nonlinearity, u, rtol):
    """Warn when u spends > 1% of the cycle within 1e-6 (relative) of a jump of g."""
    edges = np.asarray(nonlinearity.pieces()[0])[1:-1]
    for edge in edges:
        scale = 1e-6 * max(abs(edge), 1e-300)
        sides = np.asarray(nonlinearity(jnp.array([edge - 2 * scale, edge + 2 * scale])))
        if abs(sides[1] - sides[0]) <= 1e-3 * max(abs(edge), 1e-300):
            continue  # g continuous there: a tie does not matter
        near = np.mean(np.abs(u - edge) <= scale)
        if near > 0.01:
            warnings.warn(
                f"u stays within 1e-6 of a jump of g (at u = {edge:.6g}) for {100 * near:.0f}% "
                f"of the cycle (an amplitude at A_max): the ODE's update at rtol = {rtol:g} "
                "depends on rounding there; pass rtol=1e-12 (the default) or use "
                "synapses.cycle_update, which resolves the tie exactly.",
                stacklevel=2,
            )
